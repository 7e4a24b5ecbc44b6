// The time-dependent threshold of MAJA's multi-temporal cloud test (maja-l2a.md §1.2), shared by
// cloud_mt.cu (refl_var, coarse grid) and cloud_fine.cu (fine_cloud_support, 10/20 m). Included
// textually by gpumaja/kernels.py. double arithmetic, compiled with --fmad=false: the NumPy twins
// (gpumaja.masks.cloud_mt.refl_var_numpy, gpumaja.masks.cloud_fine.fine_cloud_support_numpy) compute
// the same expression in float64.
#pragma once

// thr = min(max_thr, min_thr * (1 + age / forgetting)); age: days since the composite pixel was clear
__device__ __forceinline__ double gpumaja_refl_var_threshold(const double age, const double min_thr,
                                                             const double max_thr, const double forgetting)
{
    const double grown = min_thr * (1.0 + age / forgetting);
    return grown < max_thr ? grown : max_thr;
}
