// Multi-temporal cloud test and neighbourhood correlation on the coarse grid (maja-l2a.md §1.2, §1.3).
//
// gpumaja-instantiate: refl_var window_correlation
//
// NumPy twins: gpumaja.masks.cloud_mt.refl_var_numpy and window_correlation_numpy (same formulas, same
// operation order, float64). Compile with --fmad=false (the wrappers do) so that no multiply-add is
// contracted: every double operation is then an IEEE round-to-nearest operation, as in NumPy, and the
// kernels give the twins' bits.
//
// refl_var: one thread per coarse pixel (grid-stride loop, 32-bit index).
//   D = current TOCR, c = composite RCR; dt = age_days (days since the composite pixel was last clear)
//     thr  = min(max_thr, min_thr * (1 + dt / forgetting))
//     dB   = B_D - B_c,  dR = R_D - R_c
//     rB   = (B_D - B_c) / (B_D + B_c),  rN = (N_D - N_c) / (N_D + N_c)
//     dHOT = (B_D - 0.5 R_D) - (B_c - 0.5 R_c)
//     ratio = rN < k_nir_blue * rB  AND  dR < k_red_blue * dB
//     shadow_like = min_red_ratio > 0 AND R_c > 0 AND R_D < min_red_ratio * R_c  (our guard, docs/l2a.md;
//                   min_red_ratio = 0 is MAJA 4.x)
//     refl_var = ratio AND NOT shadow_like AND dHOT > thr;  ext = same with dHOT > thr - delta
//   excluded, or any NaN input (reflectances or age) -> 0 in both outputs.
//
// window_correlation: one thread per coarse pixel (2-D grid). For a pixel with where != 0, over the
// (2 radius + 1)^2 window (coordinates clamped into the image: ITK's zero-flux Neumann boundary, as
// MAJA's neighbourhood iterators; an edge pixel may therefore count several times), the pixels with
// valid != 0 (the wrapper folds current edge, reference nodata and NaN of either image into `valid`):
//     n < min_pixels -> NaN ("nodata")
//     two passes: means ma, mb; then va = sum (a-ma)^2 / n, vb = sum (b-mb)^2 / n, cov = sum (a-ma)(b-mb) / n
//     va <= flat_eps or vb <= flat_eps -> 0, else r = cov / sqrt(va * vb)
//   Offsets are visited dy = -radius..radius (outer), dx = -radius..radius (inner): the twin sums in
//   the same order. where == 0 -> NaN.

#include "cloud_threshold.cuh"

extern "C" __global__ void refl_var(const float* __restrict__ blue_d,
                                    const float* __restrict__ red_d,
                                    const float* __restrict__ nir_d,
                                    const float* __restrict__ blue_c,
                                    const float* __restrict__ red_c,
                                    const float* __restrict__ nir_c,
                                    const double* __restrict__ age_days,
                                    const unsigned char* __restrict__ excluded,
                                    const int n,
                                    const double min_thr,
                                    const double max_thr,
                                    const double forgetting,
                                    const double k_nir_blue,
                                    const double k_red_blue,
                                    const double delta,
                                    const double min_red_ratio,
                                    unsigned char* __restrict__ out_var,
                                    unsigned char* __restrict__ out_ext)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        const double bd = (double)blue_d[i];
        const double rd = (double)red_d[i];
        const double nd = (double)nir_d[i];
        const double bc = (double)blue_c[i];
        const double rc = (double)red_c[i];
        const double nc = (double)nir_c[i];
        const double dt = age_days[i];
        unsigned char v = 0, e = 0;
        const bool finite = !(isnan(bd) || isnan(rd) || isnan(nd) || isnan(bc) || isnan(rc) || isnan(nc) || isnan(dt));
        if (excluded[i] == 0 && finite) {
            const double thr = gpumaja_refl_var_threshold(dt, min_thr, max_thr, forgetting);
            const double db = bd - bc;
            const double dr = rd - rc;
            const double rb = (bd - bc) / (bd + bc);
            const double rn = (nd - nc) / (nd + nc);
            const double dhot = (bd - 0.5 * rd) - (bc - 0.5 * rc);
            const bool shadow_like = (min_red_ratio > 0.0) && (rc > 0.0) && (rd < min_red_ratio * rc);
            const bool ratio = (rn < k_nir_blue * rb) && (dr < k_red_blue * db) && !shadow_like;
            v = (ratio && dhot > thr) ? 1 : 0;
            e = (ratio && dhot > thr - delta) ? 1 : 0;
        }
        out_var[i] = v;
        out_ext[i] = e;
    }
}

extern "C" __global__ void window_correlation(const float* __restrict__ current,
                                              const float* __restrict__ reference,
                                              const unsigned char* __restrict__ valid,
                                              const unsigned char* __restrict__ where,
                                              const int cy,
                                              const int cx,
                                              const int radius,
                                              const int min_pixels,
                                              const double flat_eps,
                                              float* __restrict__ out)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x;
    const int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= cx || y >= cy) return;
    const int idx = y * cx + x;
    const float qnan = __int_as_float(0x7fc00000);
    if (where[idx] == 0) {
        out[idx] = qnan;
        return;
    }
    int n = 0;
    double sa = 0.0, sb = 0.0;
    for (int dy = -radius; dy <= radius; ++dy) {
        int yy = y + dy;
        yy = yy < 0 ? 0 : (yy > cy - 1 ? cy - 1 : yy);
        for (int dx = -radius; dx <= radius; ++dx) {
            int xx = x + dx;
            xx = xx < 0 ? 0 : (xx > cx - 1 ? cx - 1 : xx);
            const int k = yy * cx + xx;
            if (valid[k] == 0) continue;
            sa = sa + (double)current[k];
            sb = sb + (double)reference[k];
            ++n;
        }
    }
    if (n < min_pixels) {
        out[idx] = qnan;
        return;
    }
    const double dn = (double)n;
    const double ma = sa / dn;
    const double mb = sb / dn;
    double saa = 0.0, sbb = 0.0, sab = 0.0;
    for (int dy = -radius; dy <= radius; ++dy) {
        int yy = y + dy;
        yy = yy < 0 ? 0 : (yy > cy - 1 ? cy - 1 : yy);
        for (int dx = -radius; dx <= radius; ++dx) {
            int xx = x + dx;
            xx = xx < 0 ? 0 : (xx > cx - 1 ? cx - 1 : xx);
            const int k = yy * cx + xx;
            if (valid[k] == 0) continue;
            const double a = (double)current[k] - ma;
            const double b = (double)reference[k] - mb;
            saa = saa + a * a;
            sbb = sbb + b * b;
            sab = sab + a * b;
        }
    }
    const double va = saa / dn;
    const double vb = sbb / dn;
    double r = 0.0;
    if (va > flat_eps && vb > flat_eps) {
        r = (sab / dn) / sqrt(va * vb);
    }
    out[idx] = (float)r;
}
