// Slope (terrain) correction: SRE -> flat reflectance FRE, and the MG2 sun flags (maja-l2a.md §3.7).
//
// gpumaja-instantiate: slope_correction
//
// Per pixel i with slope S and aspect A (radians; A = the downslope direction, clockwise from north),
// sun zenith θs and azimuth φs, and per band b with viewing zenith θv(b) and azimuth φv(b) (azimuths:
// direction from the pixel toward the sun / the sensor, clockwise from north):
//
//     cos i = cos θs cos S + sin θs sin S cos(φs - A);  if cos i < min_cos_i: cos i = min_cos_i, MG2 |= 64
//     ratio = cos i / cos θs (clamped cos i, as MAJA);  if ratio < min_cos_ratio:             MG2 |= 128
//     sky = (1 + cos S) / 2, ground = (1 - cos S) / 2                 (Kondratiev view factors)
//     for each band with SRE >= 0:
//         cos e = cos θv cos S + sin θv sin S cos(φv - A), clamped below at min_cos_e
//         f     = (cos i + cos e) / (cos θs + cos θv)
//         T     = T_dir + T_dif        (T_dir, T_dif at the SOLAR zenith: MiniLUT.dirt_sun / dift_sun)
//         FRE   = (SRE T f) / (T_dir ratio + T_dif sky + T rho_env ground)
//     SRE < 0 or NaN: FRE = SRE (MAJA writes 0 there).
//
// Flat pixels (S == 0) get FRE = SRE exactly, bit for bit (the formula reduces to SRE T / T there, which
// float rounding need not return exactly); their MG2 flags are still computed from cos i = cos θs.
// NaN slope/aspect/altitude/AOT/rho_env give NaN FRE on tilted pixels (for bands with SRE >= 0) and no
// flag. Host-side per-scene constants: cos θs, sin θs, φs; per band cos θv, sin θv, φv and
// cos θs + cos θv (float64 rounded to float32). cosf/sinf are the only non-IEEE-exact operations; every
// other one is an explicit round-to-nearest intrinsic in the order of the NumPy twin
// gpumaja.atmosphere.slope.slope_correction_numpy.
//
// The device functions between the BEGIN/END markers are a verbatim copy of kernels/lut_interp.cu's
// (NVRTC compiles each .cu on its own, without an include path); tests/test_atmosphere_toc.py checks it.
//
// Launch: 1-D grid-stride loop over pixels (32-bit index, npix < 2^31), one thread per pixel looping
// over bands; 64-bit band offsets.

#include "lut_device.cuh"
#define GPUMAJA_MG2_SUN_TOO_LOW 64
#define GPUMAJA_MG2_TANGENT_SUN 128

extern "C" __global__ void slope_correction(const float* __restrict__ sre,
                                            const float* __restrict__ rho_env,
                                            const float* __restrict__ altitude,
                                            const float* __restrict__ aot,
                                            const float* __restrict__ slope,
                                            const float* __restrict__ aspect,
                                            const float cos_sun_zenith,
                                            const float sin_sun_zenith,
                                            const float sun_azimuth,
                                            const float* __restrict__ cos_view_zenith,
                                            const float* __restrict__ sin_view_zenith,
                                            const float* __restrict__ view_azimuth,
                                            const float* __restrict__ brdf_denominator,
                                            const float* __restrict__ alt_axis,
                                            const int n_alt,
                                            const float* __restrict__ aot_axis,
                                            const int n_aot,
                                            const float* __restrict__ dirt,
                                            const float* __restrict__ dift,
                                            const float min_cos_i,
                                            const float min_cos_e,
                                            const float min_cos_ratio,
                                            const int nbands,
                                            const int npix,
                                            float* __restrict__ fre,
                                            unsigned char* __restrict__ mg2)
{
    const float qnan = __int_as_float(0x7fc00000);
    const int band_size = n_alt * n_aot;
    const unsigned int n = (unsigned int)npix;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float s = slope[i];
        const float a = aspect[i];
        const float cos_s = cosf(s);
        const float sin_s = sinf(s);
        float cos_i = __fadd_rn(__fmul_rn(cos_sun_zenith, cos_s),
                                __fmul_rn(__fmul_rn(sin_sun_zenith, sin_s), cosf(__fsub_rn(sun_azimuth, a))));
        unsigned char flags = 0;
        if (cos_i < min_cos_i) {
            cos_i = min_cos_i;
            flags |= GPUMAJA_MG2_SUN_TOO_LOW;
        }
        const float ratio = __fdiv_rn(cos_i, cos_sun_zenith);
        if (ratio < min_cos_ratio) flags |= GPUMAJA_MG2_TANGENT_SUN;
        mg2[i] = flags;

        if (s == 0.0f) {  // flat: no terrain effect, FRE is SRE bit for bit
            for (int b = 0; b < nbands; ++b) fre[(size_t)b * npix + i] = sre[(size_t)b * npix + i];
            continue;
        }
        const float h = altitude[i];
        const float t = aot[i];
        const bool bad = (h != h) || (t != t);
        int ia = 0, it = 0;
        float wa = 0.0f, wt = 0.0f;
        if (!bad) {
            gpumaja_axis_clamped(alt_axis, n_alt, h, &ia, &wa);
            gpumaja_axis_clamped(aot_axis, n_aot, t, &it, &wt);
        }
        const float sky = __fmul_rn(__fadd_rn(1.0f, cos_s), 0.5f);
        const float ground = __fmul_rn(__fsub_rn(1.0f, cos_s), 0.5f);
        for (int b = 0; b < nbands; ++b) {
            const size_t o = (size_t)b * npix + i;
            const float r = sre[o];
            if (!(r >= 0.0f)) {  // negative or NaN: unchanged
                fre[o] = r;
                continue;
            }
            if (bad) {
                fre[o] = qnan;
                continue;
            }
            float cos_e = __fadd_rn(__fmul_rn(__ldg(cos_view_zenith + b), cos_s),
                                    __fmul_rn(__fmul_rn(__ldg(sin_view_zenith + b), sin_s),
                                              cosf(__fsub_rn(__ldg(view_azimuth + b), a))));
            if (cos_e < min_cos_e) cos_e = min_cos_e;
            const float f_brdf = __fdiv_rn(__fadd_rn(cos_i, cos_e), __ldg(brdf_denominator + b));
            const float t_dir = gpumaja_interp_alt_aot(dirt + b * band_size, n_aot, ia, wa, it, wt);
            const float t_dif = gpumaja_interp_alt_aot(dift + b * band_size, n_aot, ia, wa, it, wt);
            const float tt = __fadd_rn(t_dir, t_dif);
            const float num = __fmul_rn(__fmul_rn(r, tt), f_brdf);
            const float den = __fadd_rn(__fadd_rn(__fmul_rn(t_dir, ratio), __fmul_rn(t_dif, sky)),
                                        __fmul_rn(__fmul_rn(tt, rho_env[o]), ground));
            fre[o] = __fdiv_rn(num, den);
        }
    }
}
