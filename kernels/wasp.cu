// WASP (L3A) total weight and running weighted synthesis (wasp-l3a-and-lis-snow.md §1.3, §1.5).
//
// gpumaja-instantiate: wasp_weight wasp_update
//
// NumPy twins: gpumaja.l3a.synthesis.wasp_weight_numpy and wasp_update_numpy (same float32 operations
// in the same order). The wrappers compile with --fmad=false so that no multiply-add is contracted:
// every float operation is then an IEEE round-to-nearest float32 operation, as in NumPy, and the
// kernels give the twins' bits. One thread per pixel, grid-stride loop, 32-bit indices (the wrappers
// refuse nb * n >= 2^31).
//
// wasp_weight (§1.3): W = |W_aot · W_cld · W_sensor · W_date|, evaluated as
//   ((W_aot * W_cld) * W_sensor) * W_date, with
//   W_aot = W_min                                            AOT NaN (no data)
//         = 0                                                AOT < 0
//         = W_min + (W_max - W_min) * (1 - AOT / AOT_MAX)    AOT < AOT_MAX
//         = W_min                                            otherwise
//   W = 0 where W_cld is NaN or < 0 (WASP's WEIGHT_NO_DATA, which the update treats as 0).
//
// wasp_update (§1.5): the synthesis state (refl (nb, n), weight, wday, flag, blue_s) is updated in
// place with one date (cur (nb, n), w_cur, masks, blue_c, day). Per pixel, with wp = stored W and
// wc = current W (each taken as 0 when NaN or <= 0):
//   no valid current band: nothing changes.
//   LAND (no cloud, snow or water bit):
//     band b current valid: previous valid and wp > 0 -> (wp rp + wc rc) / (wp + wc), else rc;
//     band b current NaN: unchanged.
//     W and D from the first band k whose current value is valid: previous R[k] valid and wp > 0 ->
//       W = wp + wc, D = (wp Dp + wc day) / (wp + wc); else W = wc, D = day.  F = LAND.
//   SNOW / WATER (no cloud; water wins):
//     wp == 0: R = current where valid (previous kept elsewhere), W = 0, D = day, F = SNOW | WATER,
//              blue = blue_c.
//     wp > 0:  bands whose previous R is NaN take the current value; F = LAND.
//   CLOUD:
//     F == NODATA: R = current, W = 0, D = day, F = CLOUD, blue = blue_c.
//     F == CLOUD:  if blue_c is valid and (stored blue NaN or blue_c < stored blue): R = current where
//                  valid, D = day, blue = blue_c (minimum-blue rule).
//     F == LAND:   bands whose previous R is NaN take the current value.
//     otherwise (SNOW, WATER): unchanged.
// The FLG codes come in as arguments (gpumaja.model.l3a.FLG_*).

extern "C" __global__ void wasp_weight(const float* __restrict__ aot,
                                       const float* __restrict__ w_cloud,
                                       const int n,
                                       const float w_min,
                                       const float w_max,
                                       const float aot_max,
                                       const float w_sensor,
                                       const float w_date,
                                       float* __restrict__ out)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int stride = blockDim.x * gridDim.x;
    const float span = w_max - w_min;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        const float a = aot[i];
        float wa;
        if (isnan(a)) {
            wa = w_min;
        } else if (a < 0.0f) {
            wa = 0.0f;
        } else if (a < aot_max) {
            wa = w_min + span * (1.0f - a / aot_max);
        } else {
            wa = w_min;
        }
        const float wc = w_cloud[i];
        float w = 0.0f;
        if (wc >= 0.0f) {
            w = fabsf(((wa * wc) * w_sensor) * w_date);
        }
        out[i] = w;
    }
}

extern "C" __global__ void wasp_update(float* __restrict__ refl,
                                       float* __restrict__ weight,
                                       float* __restrict__ wday,
                                       unsigned char* __restrict__ flag,
                                       float* __restrict__ blue_s,
                                       const float* __restrict__ cur,
                                       const float* __restrict__ w_cur,
                                       const unsigned char* __restrict__ cloud,
                                       const unsigned char* __restrict__ snow,
                                       const unsigned char* __restrict__ water,
                                       const float* __restrict__ blue_c,
                                       const int n,
                                       const int nb,
                                       const float day,
                                       const int flg_cloud,
                                       const int flg_snow,
                                       const int flg_water,
                                       const int flg_land,
                                       const int flg_nodata)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int nbands = (unsigned int)nb;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        int k = -1;
        for (unsigned int b = 0; b < nbands; ++b) {
            if (!isnan(cur[b * nn + i])) {
                k = (int)b;
                break;
            }
        }
        if (k < 0) continue;  // no valid current band: the date brings nothing to this pixel

        float wp = weight[i];
        if (!(wp > 0.0f)) wp = 0.0f;
        float wc = w_cur[i];
        if (!(wc > 0.0f)) wc = 0.0f;
        const int f = (int)flag[i];
        const bool is_cloud = cloud[i] != 0;
        const bool is_snow = snow[i] != 0;
        const bool is_water = water[i] != 0;

        if (!is_cloud && !is_snow && !is_water) {  // LAND
            const bool prev_k = !isnan(refl[(unsigned int)k * nn + i]);
            const float s = wp + wc;
            for (unsigned int b = 0; b < nbands; ++b) {
                const unsigned int j = b * nn + i;
                const float rc = cur[j];
                if (isnan(rc)) continue;
                const float rp = refl[j];
                if (!isnan(rp) && wp > 0.0f) {
                    refl[j] = (wp * rp + wc * rc) / s;
                } else {
                    refl[j] = rc;
                }
            }
            if (prev_k && wp > 0.0f) {
                wday[i] = (wp * wday[i] + wc * day) / s;
                weight[i] = s;
            } else {
                wday[i] = day;
                weight[i] = wc;
            }
            flag[i] = (unsigned char)flg_land;
        } else if (!is_cloud) {  // SNOW or WATER
            if (wp == 0.0f) {
                for (unsigned int b = 0; b < nbands; ++b) {
                    const unsigned int j = b * nn + i;
                    const float rc = cur[j];
                    if (!isnan(rc)) refl[j] = rc;
                }
                weight[i] = 0.0f;
                wday[i] = day;
                flag[i] = (unsigned char)(is_water ? flg_water : flg_snow);
                blue_s[i] = blue_c[i];
            } else {
                for (unsigned int b = 0; b < nbands; ++b) {
                    const unsigned int j = b * nn + i;
                    if (isnan(refl[j])) refl[j] = cur[j];
                }
                flag[i] = (unsigned char)flg_land;
            }
        } else {  // CLOUD
            if (f == flg_nodata) {
                for (unsigned int b = 0; b < nbands; ++b) {
                    const unsigned int j = b * nn + i;
                    refl[j] = cur[j];
                }
                weight[i] = 0.0f;
                wday[i] = day;
                flag[i] = (unsigned char)flg_cloud;
                blue_s[i] = blue_c[i];
            } else if (f == flg_cloud) {
                const float bc = blue_c[i];
                const float bs = blue_s[i];
                if (!isnan(bc) && (isnan(bs) || bc < bs)) {
                    for (unsigned int b = 0; b < nbands; ++b) {
                        const unsigned int j = b * nn + i;
                        const float rc = cur[j];
                        if (!isnan(rc)) refl[j] = rc;
                    }
                    wday[i] = day;
                    blue_s[i] = bc;
                }
            } else if (f == flg_land) {
                for (unsigned int b = 0; b < nbands; ++b) {
                    const unsigned int j = b * nn + i;
                    if (isnan(refl[j])) refl[j] = cur[j];
                }
            }
        }
    }
}
