// Environment (adjacency) correction: rho_unif -> surface reflectance SRE (maja-l2a.md §3.6).
//
// gpumaja-instantiate: environment_correction
//
// For pixel i and band b of band-major contiguous stacks [nbands][npix], with T_dir, T_dif (direct and
// diffuse transmission at the band's viewing zenith) and S (spherical albedo) interpolated bilinearly in
// the mini-LUT's (altitude, AOT) tables (both clamped to their axes):
//
//     T   = T_dir + T_dif
//     SRE = (rho_unif * T * ((1 - rho_env * S) / (1 - rho_unif * S)) - rho_env * T_dif) / T_dir
//
// NaN in any input gives NaN (NaN altitude or AOT: every band). The denominators are not guarded
// (MAJA's ComputeFinalResultEnvironmentCorrection skips the division when |1 - rho_unif S| or |T_dir|
// is below an epsilon; with S < 1, rho_unif <= 1 and T_dir > 0 they do not vanish; a zero gives
// inf/NaN). Every operation is an explicit round-to-nearest intrinsic, in the order of the NumPy twin
// gpumaja.atmosphere.surface_reflectance.environment_correction_numpy, so both give the same bits.
//
// The device functions between the BEGIN/END markers are a verbatim copy of kernels/lut_interp.cu's
// (NVRTC compiles each .cu on its own, without an include path); tests/test_atmosphere_toc.py checks it.
//
// Launch: 1-D grid-stride loop over pixels (32-bit index, npix < 2^31), one thread per pixel looping
// over bands; 64-bit band offsets.

#include "lut_device.cuh"
extern "C" __global__ void environment_correction(const float* __restrict__ rho_unif,
                                                  const float* __restrict__ rho_env,
                                                  const float* __restrict__ altitude,
                                                  const float* __restrict__ aot,
                                                  const float* __restrict__ alt_axis,
                                                  const int n_alt,
                                                  const float* __restrict__ aot_axis,
                                                  const int n_aot,
                                                  const float* __restrict__ dirt,
                                                  const float* __restrict__ dift,
                                                  const float* __restrict__ albedo,
                                                  const int nbands,
                                                  const int npix,
                                                  float* __restrict__ sre)
{
    const float qnan = __int_as_float(0x7fc00000);
    const int band_size = n_alt * n_aot;
    const unsigned int n = (unsigned int)npix;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float h = altitude[i];
        const float t = aot[i];
        if (h != h || t != t) {
            for (int b = 0; b < nbands; ++b) sre[(size_t)b * npix + i] = qnan;
            continue;
        }
        int ia, it;
        float wa, wt;
        gpumaja_axis_clamped(alt_axis, n_alt, h, &ia, &wa);
        gpumaja_axis_clamped(aot_axis, n_aot, t, &it, &wt);
        for (int b = 0; b < nbands; ++b) {
            const size_t o = (size_t)b * npix + i;
            const float t_dir = gpumaja_interp_alt_aot(dirt + b * band_size, n_aot, ia, wa, it, wt);
            const float t_dif = gpumaja_interp_alt_aot(dift + b * band_size, n_aot, ia, wa, it, wt);
            const float s = gpumaja_interp_alt_aot(albedo + b * band_size, n_aot, ia, wa, it, wt);
            const float ru = rho_unif[o];
            const float re = rho_env[o];
            const float tt = __fadd_rn(t_dir, t_dif);
            const float frac = __fdiv_rn(__fsub_rn(1.0f, __fmul_rn(re, s)), __fsub_rn(1.0f, __fmul_rn(ru, s)));
            const float num = __fsub_rn(__fmul_rn(__fmul_rn(ru, tt), frac), __fmul_rn(re, t_dif));
            sre[o] = __fdiv_rn(num, t_dir);
        }
    }
}
