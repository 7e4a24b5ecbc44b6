// Cloud-shadow projection, "unknown cloud altitude" algorithm (maja-l2a.md §1.9 step 3).
//
// gpumaja-instantiate: shadow_landing
//
// NumPy twin: gpumaja.masks.shadow.shadow_landing_numpy (same steps, same float64 operations in the
// same order). Compile with --fmad=false (the wrapper does): every operation below is then a separately
// rounded IEEE float64 +, -, *, / or floor, as in NumPy, so kernel and twin give the same integer zones.
//
// One thread per (cloud pixel i, candidate altitude a); t = i * n_alt + a. Per cloud pixel the host
// passes, in float64 and already gathered at the cloud pixels (so no trigonometry runs on the device):
//   pix_row, pix_col   the pixel's row / column (pixel centres at integers, row 0 = north)
//   dem_at_pix         the DTM at the pixel (m)
//   view_row, view_col horizontal shift toward the satellite, in pixels per metre of cloud height
//                      (tan(view zenith) * (-cos(view az), sin(view az)) / resolution)
//   sun_row, sun_col   unit step (one pixel) away from the sun: (cos(sun az), -sin(sun az))
//   sun_drop           metres the ray descends per step: resolution / tan(sun zenith) (inf at zenith 0)
// For altitude h = heights[a]:
//   dh = h - DTM, raised to min_height (1 m);   z_start = DTM + dh
//   nadir (step 0) = pixel + dh * (view_row, view_col)       (the cloud appears displaced away from the
//                                                           satellite: its true position is toward it)
//   step k: position = nadir + k * (sun_row, sun_col), ray altitude z_k = z_start - k * sun_drop,
//           d_k = z_k - DEM(position) with DEM bilinear, edge-clamped (constant outside the image).
//   The ray lands at the first k with d_k <= 0: at the nadir if k = 0, else at the linear crossing
//   prev + t * step, t = d_{k-1} / (d_{k-1} - d_k). The landing pixel is (floor(row + 0.5),
//   floor(col + 0.5)); landing[t] = row * nx + col if it lies inside the image, else -1 (one write per
//   thread, no atomics: deterministic). The host turns the landings into (label, pixel) pairs, one
//   potential shadow zone per cloud label as MAJA (a pixel may be in several labels' zones).
//   The march gives up (no landing) when the position is outside the image footprint
//   [-0.5, n - 0.5] and moving further out along that axis (a straight ray never comes back), or after
//   max_steps steps (a safety net: finite inputs always land or leave before).

__device__ __forceinline__ double gpumaja_dem_bilinear(const double* __restrict__ dem, int ny, int nx, double r,
                                                       double c)
{
    const double r0 = floor(r);
    const double c0 = floor(c);
    const double fr = r - r0;
    const double fc = c - c0;
    int i0 = (int)r0;
    int j0 = (int)c0;
    int i1 = i0 + 1;
    int j1 = j0 + 1;
    i0 = min(max(i0, 0), ny - 1);
    i1 = min(max(i1, 0), ny - 1);
    j0 = min(max(j0, 0), nx - 1);
    j1 = min(max(j1, 0), nx - 1);
    const double z00 = dem[(size_t)i0 * nx + j0];
    const double z01 = dem[(size_t)i0 * nx + j1];
    const double z10 = dem[(size_t)i1 * nx + j0];
    const double z11 = dem[(size_t)i1 * nx + j1];
    return (1.0 - fr) * ((1.0 - fc) * z00 + fc * z01) + fr * ((1.0 - fc) * z10 + fc * z11);
}

// True when the position is outside the footprint and moving further out along that axis.
__device__ __forceinline__ bool gpumaja_leaving(double r, double c, double sr, double sc, int ny, int nx)
{
    return (r < -0.5 && sr <= 0.0) || (r > ny - 0.5 && sr >= 0.0) || (c < -0.5 && sc <= 0.0)
           || (c > nx - 0.5 && sc >= 0.0);
}

extern "C" __global__ void shadow_landing(const double* __restrict__ pix_row,
                                             const double* __restrict__ pix_col,
                                             const double* __restrict__ dem_at_pix,
                                             const double* __restrict__ view_row,
                                             const double* __restrict__ view_col,
                                             const double* __restrict__ sun_row,
                                             const double* __restrict__ sun_col,
                                             const double* __restrict__ sun_drop,
                                             const int n_pix,
                                             const double* __restrict__ heights,
                                             const int n_alt,
                                             const double* __restrict__ dem,
                                             const int ny,
                                             const int nx,
                                             const double min_height,
                                             const int max_steps,
                                             int* __restrict__ landing)
{
    const long long n_rays = (long long)n_pix * (long long)n_alt;
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long t = (long long)blockIdx.x * blockDim.x + threadIdx.x; t < n_rays; t += stride) {
        const int i = (int)(t / n_alt);
        const int a = (int)(t - (long long)i * n_alt);
        const double z0 = dem_at_pix[i];
        double dh = heights[a] - z0;
        if (dh < min_height) dh = min_height;
        const double z_start = z0 + dh;
        const double rn = pix_row[i] + dh * view_row[i];
        const double cn = pix_col[i] + dh * view_col[i];
        const double sr = sun_row[i];
        const double sc = sun_col[i];
        const double drop = sun_drop[i];

        bool landed = false;
        double rl = 0.0, cl = 0.0;
        double rp = rn, cp = cn, dp = 0.0;
        for (int k = 0; k <= max_steps; ++k) {
            const double kd = (double)k;
            const double r = rn + kd * sr;
            const double c = cn + kd * sc;
            if (gpumaja_leaving(r, c, sr, sc, ny, nx)) break;
            const double zk = (k == 0) ? z_start : z_start - kd * drop;
            const double d = zk - gpumaja_dem_bilinear(dem, ny, nx, r, c);
            if (d <= 0.0) {
                if (k == 0) {
                    rl = r;
                    cl = c;
                } else {
                    const double tt = dp / (dp - d);
                    rl = rp + tt * sr;
                    cl = cp + tt * sc;
                }
                landed = true;
                break;
            }
            rp = r;
            cp = c;
            dp = d;
        }
        int out = -1;
        if (landed) {
            const double rf = floor(rl + 0.5);
            const double cf = floor(cl + 0.5);
            if (rf >= 0.0 && rf <= (double)(ny - 1) && cf >= 0.0 && cf <= (double)(nx - 1)) {
                out = (int)rf * nx + (int)cf;
            }
        }
        landing[t] = out;
    }
}
