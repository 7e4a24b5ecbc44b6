// Annual snow cover duration (LIS snow_annual_map, L3B): SCD / SOD / SMOD per pixel.
// wasp-l3a-and-lis-snow.md §3 "Binarisation per date", "Gap filling", "Products".
// NumPy twin: gpumaja/snow/duration.py snow_duration_numpy (same inputs, same outputs, bit-identical:
// integer arithmetic only).
//
// snow_duration: one thread per pixel (grid-stride loop, 32-bit pixel index; the stack offset
// t * hw + i is computed in 64 bits since T * H * W may pass 2^31).
//   codes     (n_obs, hw) uint8 contiguous: the per-date SNW/FSC codes, one observation per day
//             (same-day products already merged), sorted by day.
//   obs_days  (n_obs,) int32, strictly ascending: day index relative to the period start (day 0);
//             negative or >= n_days for margin dates.
//   Binarisation: valid (clear) <=> code <= max_valid (100); snow <=> valid AND
//             (fsc_counts_as_snow ? code > no_snow : code == snow_code).
//   Gap filling (linear, GF rules): for each output day d in [0, n_days), with (t1, y1) the last valid
//   observation at or before d and (t2, y2) the first valid one after d:
//     both exist:     v = y1 + (y2 - y1) (d - t1) / (t2 - t1)   (an observation day, t1 == d, gives y1)
//     only (t1, y1):  v = y1   (constant extrapolation after the last valid observation)
//     only (t2, y2):  v = y2   (before the first valid observation)
//     none:           v = 0
//   snow day <=> v >= thr_num / thr_den, evaluated as
//     thr_den * (y1 (t2 - t1) + (y2 - y1)(d - t1)) >= thr_num (t2 - t1)   (64-bit integers)
//   SCD = number of snow days; SOD / SMOD = first / last day of the longest run of consecutive snow
//   days (ties: the first one), only where SCD > min_snow_days, else 0.

extern "C" __global__ void snow_duration(const unsigned char* __restrict__ codes,
                                         const int* __restrict__ obs_days,
                                         const int n_obs,
                                         const int hw,
                                         const int n_days,
                                         const int max_valid,
                                         const int no_snow,
                                         const int snow_code,
                                         const int fsc_counts_as_snow,
                                         const long long thr_num,
                                         const long long thr_den,
                                         const int min_snow_days,
                                         unsigned short* __restrict__ scd,
                                         unsigned short* __restrict__ sod,
                                         unsigned short* __restrict__ smod)
{
    const unsigned int nn = (unsigned int)hw;
    const unsigned int stride = blockDim.x * gridDim.x;
    const unsigned long long plane = (unsigned long long)nn;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        // first valid observation: the "next" one for the days before it
        int kn = 0;
        int code = 0;
        while (kn < n_obs) {
            code = (int)codes[(unsigned long long)kn * plane + i];
            if (code <= max_valid) break;
            ++kn;
        }
        long long t2 = 0;
        int y2 = 0;
        if (kn < n_obs) {
            t2 = (long long)obs_days[kn];
            y2 = fsc_counts_as_snow ? (code > no_snow) : (code == snow_code);
        }
        bool has_prev = false;
        long long t1 = 0;
        int y1 = 0;
        int count = 0, cur_len = 0, best_len = 0, best_end = 0;
        for (int d = 0; d < n_days; ++d) {
            // consume the valid observations dated <= d
            while (kn < n_obs && t2 <= (long long)d) {
                has_prev = true;
                t1 = t2;
                y1 = y2;
                ++kn;
                while (kn < n_obs) {
                    code = (int)codes[(unsigned long long)kn * plane + i];
                    if (code <= max_valid) break;
                    ++kn;
                }
                if (kn < n_obs) {
                    t2 = (long long)obs_days[kn];
                    y2 = fsc_counts_as_snow ? (code > no_snow) : (code == snow_code);
                }
            }
            const bool has_next = kn < n_obs;
            bool snow;
            if (has_prev && has_next) {
                const long long dt = t2 - t1;
                const long long lhs = thr_den * ((long long)y1 * dt + (long long)(y2 - y1) * ((long long)d - t1));
                snow = lhs >= thr_num * dt;
            } else if (has_prev) {
                snow = thr_den * (long long)y1 >= thr_num;
            } else if (has_next) {
                snow = thr_den * (long long)y2 >= thr_num;
            } else {
                snow = false;
            }
            if (snow) {
                ++count;
                ++cur_len;
                if (cur_len > best_len) {
                    best_len = cur_len;
                    best_end = d;
                }
            } else {
                cur_len = 0;
            }
        }
        scd[i] = (unsigned short)count;
        if (count > min_snow_days) {
            sod[i] = (unsigned short)(best_end - best_len + 1);
            smod[i] = (unsigned short)best_end;
        } else {
            sod[i] = 0;
            smod[i] = 0;
        }
    }
}
