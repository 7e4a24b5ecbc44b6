// Device functions shared by the LUT kernels (lut_interp.cu, surface.cu, slope.cu): cells and weights on
// irregular increasing axes, exact-at-node linear interpolation, bilinear (altitude, AOT) look-ups.
// Included textually by gpumaja/kernels.py (`#include "lut_device.cuh"` is replaced by this file with
// #line directives), so NVRTC needs no include path. Arithmetic uses __f*_rn intrinsics (no FMA) so the
// NumPy twins in gpumaja/atmosphere/toc.py reproduce it bit for bit.
#pragma once

// Cell of x on a strictly increasing axis a[0..n-1]: the largest i in [0, n-2] with a[i] <= x (0 below
// the axis, n-2 at or above its last node) = clip(searchsorted(a, x, "right") - 1, 0, n - 2).
__device__ __forceinline__ int gpumaja_axis_cell(const float* __restrict__ a, const int n, const float x)
{
    int lo = 0;
    int hi = n - 1;
    while (hi - lo > 1) {
        const int mid = (lo + hi) >> 1;
        if (__ldg(a + mid) <= x) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

// Linear weight of x in cell i: (x - a[i]) / (a[i+1] - a[i]); outside [0, 1] when x is off the axis.
__device__ __forceinline__ float gpumaja_axis_weight(const float* __restrict__ a, const int i, const float x)
{
    const float a0 = __ldg(a + i);
    return __fdiv_rn(__fsub_rn(x, a0), __fsub_rn(__ldg(a + i + 1), a0));
}

// Cell and weight of x clamped to [a[0], a[n-1]] (x must not be NaN).
__device__ __forceinline__ void gpumaja_axis_clamped(const float* __restrict__ a, const int n, float x,
                                                     int* i, float* w)
{
    const float first = __ldg(a);
    const float last = __ldg(a + n - 1);
    x = x < first ? first : (x > last ? last : x);
    *i = gpumaja_axis_cell(a, n, x);
    *w = gpumaja_axis_weight(a, *i, x);
}

// v0 (1 - w) + v1 w: exact at the nodes (w = 0 gives v0, w = 1 gives v1).
__device__ __forceinline__ float gpumaja_lerp(const float v0, const float v1, const float w)
{
    return __fadd_rn(__fmul_rn(v0, __fsub_rn(1.0f, w)), __fmul_rn(v1, w));
}

// Bilinear interpolation of one band's (n_alt, n_aot) table at the cells (ia, wa), (it, wt).
__device__ __forceinline__ float gpumaja_interp_alt_aot(const float* __restrict__ table, const int n_aot,
                                                        const int ia, const float wa,
                                                        const int it, const float wt)
{
    const float* r0 = table + ia * n_aot + it;
    const float* r1 = r0 + n_aot;
    const float v0 = gpumaja_lerp(__ldg(r0), __ldg(r0 + 1), wt);
    const float v1 = gpumaja_lerp(__ldg(r1), __ldg(r1 + 1), wt);
    return gpumaja_lerp(v0, v1, wa);
}
