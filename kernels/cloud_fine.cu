// Fine-resolution evidence for the coarse cloud and shadow masks (docs/l2a.md "Cloud masks at 10/20 m"; ours, not MAJA's).
//
// gpumaja-instantiate: fine_cloud_support fine_shadow_support
//
// NumPy twins: gpumaja.masks.cloud_fine.fine_cloud_support_numpy and fine_shadow_support_numpy (same formulas, same operation order,
// float64). Compiled with --fmad=false (the wrapper does), so the kernel gives the twin's bits.
//
// fine_cloud_support: one thread per pixel of a 10/20 m group (grid-stride loop, 32-bit index).
//   hot = B - 0.5 R of today's TOCR (default AOT) in the fine blue/red bands at the pixel;
//   ref = the composite's B - 0.5 R in the same bands (coarse RCR, bilinear on the fine grid);
//   age = the composite age there (days since the last clear observation).
//     thr = min(max_thr, min_thr * (1 + age / forgetting))   (the refl_var threshold, maja-l2a.md §1.2)
//     d   = hot - ref
//     out = (d > thr ? 1 : 0) | (d > thr - delta ? 2 : 0)
//   Any NaN input (no composite value, edge) -> out = 3: no fine evidence, the coarse decision stands.

#include "cloud_threshold.cuh"

extern "C" __global__ void fine_cloud_support(const float* __restrict__ hot,
                                              const float* __restrict__ ref,
                                              const float* __restrict__ age_days,
                                              const int n,
                                              const double min_thr,
                                              const double max_thr,
                                              const double forgetting,
                                              const double delta,
                                              unsigned char* __restrict__ out)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        const double h = (double)hot[i];
        const double r = (double)ref[i];
        const double dt = (double)age_days[i];
        unsigned char o = 3;
        if (!(isnan(h) || isnan(r) || isnan(dt))) {
            const double thr = gpumaja_refl_var_threshold(dt, min_thr, max_thr, forgetting);
            const double d = h - r;
            o = (unsigned char)((d > thr ? 1 : 0) | (d > thr - delta ? 2 : 0));
        }
        out[i] = o;
    }
}

// fine_shadow_support: one thread per pixel of a 10/20 m group (grid-stride loop, 32-bit index).
//   red = today's reflectance in the fine red band at the pixel, ref = the composite's in the same band
//   (coarse, bilinear on the fine grid): surface TOC / RTC by default, TOCR / RCR with
//   fine_shadow_darkening = "rayleigh" (gpumaja.pipeline.fine_evidence); the darkening of
//   maja-l2a.md §1.9 at the pixel:
//     out = 1 if red < max_darkening * ref (dark), else 0
//   Any NaN input or ref <= 0 -> out = 2: no fine evidence, the coarse decision stands.
extern "C" __global__ void fine_shadow_support(const float* __restrict__ red,
                                               const float* __restrict__ ref,
                                               const int n,
                                               const double max_darkening,
                                               unsigned char* __restrict__ out)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        const double r = (double)red[i];
        const double c = (double)ref[i];
        unsigned char o = 2;
        if (!(isnan(r) || isnan(c)) && c > 0.0) {
            o = r < max_darkening * c ? 1 : 0;
        }
        out[i] = o;
    }
}
