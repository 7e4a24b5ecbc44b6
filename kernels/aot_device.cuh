// Device functions shared by the AOT inversions (aot.cu: multispectral, aot_st.cu: spectro-temporal),
// maja-l2a.md §3.5. Included textually by gpumaja.kernels.kernel_source.
#pragma once

#define LM_LAMBDA0 1.0e-3
#define LM_LAMBDA_FACTOR 10.0

// Cell of x on a strictly increasing axis: i in [0, n-2] with axis[i] <= x < axis[i+1] (last cell
// for x >= axis[n-2]; first cell for x < axis[0]); w = (x - axis[i]) / (axis[i+1] - axis[i]), not
// clamped (the caller clamps x first where the axis is clamped).
__device__ __forceinline__ void gpumaja_locate(const float* __restrict__ axis, int n, double x, int* i, double* w)
{
    int k = 0;
    while (k < n - 2 && (double)axis[k + 1] <= x) ++k;
    const double a0 = (double)axis[k];
    const double a1 = (double)axis[k + 1];
    *i = k;
    *w = (x - a0) / (a1 - a0);
}

// Bilinear (altitude, TOA*) value of table[n_alt][n_aot][n_toa] at AOT node k.
__device__ __forceinline__ double gpumaja_toc_at(const float* __restrict__ table, int n_aot, int n_toa,
                                                 int ia, double wa, int it, double wt, int k)
{
    const size_t r0 = ((size_t)ia * n_aot + k) * n_toa + it;
    const size_t r1 = ((size_t)(ia + 1) * n_aot + k) * n_toa + it;
    const double v0 = (1.0 - wt) * (double)table[r0] + wt * (double)table[r0 + 1];
    const double v1 = (1.0 - wt) * (double)table[r1] + wt * (double)table[r1 + 1];
    return (1.0 - wa) * v0 + wa * v1;
}
