// Gaseous absorption (SMAC form): transmission t_g and TOA* = TOA / t_g (maja-l2a.md §3.3).
//
// gpumaja-instantiate: gas_transmission gas_correction
//
// For pixel i and band b (band-major stacks [nbands][npix]), in float32:
//
//     Pt   = (1 - k h)^e                          k = 0.0065 / 288.15 per metre, e = 5.31 (= P / 1013.25)
//     W    = water_vapour (water_default where NaN, 0 where negative)
//     expo = o3_term[b]                           a_O3 (U_O3 m_b)^n_O3, computed once per band on the host
//          + a_H2O (W m_b)^n_H2O
//          + sum over g in O2, CO2, CH4, NO2, CO of  a_g (Pt^p_g m_b)^n_g
//     t_g  = exp(expo)
//
// coef[b][19]: the first 19 SMAC rows of band b, classic SMAC order (gpumaja.atmosphere.minilut.SMAC_ROWS):
// 0 a_h2o, 1 n_h2o, 2 a_o3, 3 n_o3, 4 a_o2, 5 n_o2, 6 p_o2, 7 a_co2, 8 n_co2, 9 p_co2, 10 a_ch4,
// 11 n_ch4, 12 p_ch4, 13 a_no2, 14 n_no2, 15 p_no2, 16 a_co, 17 n_co, 18 p_co. A gas whose a
// coefficient is 0 contributes exactly 0 (its power is not evaluated: no 0^0 or 0 * inf).
// The terms are added in that order, as in the NumPy twin gpumaja.atmosphere.gas.gas_transmission_numpy.
//
// gas_correction writes toa_star = toa / t_g, NaN where t_g == 0 (underflow) or toa is NaN.
// water_vapour is a per-pixel map, or one value (wv_scalar != 0: wv[0] for every pixel).
//
// Launch: 1-D grid-stride loop over pixels (32-bit index, npix < 2^31), one thread per pixel looping
// over bands; 64-bit band offsets.

#define GPUMAJA_SMAC_NGAS 19

__device__ __forceinline__ float gpumaja_gas_term(const float a, const float base, const float n)
{
    return a != 0.0f ? a * powf(base, n) : 0.0f;
}

__device__ __forceinline__ float gpumaja_gas_exponent(const float* __restrict__ c, const float o3_term,
                                                      const float m, const float pt, const float w)
{
    float expo = o3_term;
    expo += gpumaja_gas_term(__ldg(c + 0), w * m, __ldg(c + 1));
    // (a, n, p) triplets of O2, CO2, CH4, NO2, CO
    for (int g = 4; g < GPUMAJA_SMAC_NGAS; g += 3) {
        const float a = __ldg(c + g);
        if (a != 0.0f) expo += a * powf(powf(pt, __ldg(c + g + 2)) * m, __ldg(c + g + 1));
    }
    return expo;
}

__device__ __forceinline__ float gpumaja_pressure_ratio(const float h, const float k, const float e)
{
    return powf(1.0f - k * h, e);
}

__device__ __forceinline__ float gpumaja_water(const float* __restrict__ wv, const int wv_scalar,
                                               const unsigned int i, const float water_default)
{
    float w = wv_scalar ? wv[0] : wv[i];
    if (w != w) w = water_default;
    return w < 0.0f ? 0.0f : w;
}

extern "C" __global__ void gas_transmission(const float* __restrict__ altitude,
                                            const float* __restrict__ wv,
                                            const int wv_scalar,
                                            const float water_default,
                                            const float* __restrict__ coef,
                                            const float* __restrict__ o3_term,
                                            const float* __restrict__ air_mass,
                                            const float k,
                                            const float e,
                                            const int nbands,
                                            const int npix,
                                            float* __restrict__ t_g)
{
    const unsigned int n = (unsigned int)npix;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float pt = gpumaja_pressure_ratio(altitude[i], k, e);
        const float w = gpumaja_water(wv, wv_scalar, i, water_default);
        for (int b = 0; b < nbands; ++b) {
            const float expo = gpumaja_gas_exponent(coef + b * GPUMAJA_SMAC_NGAS, __ldg(o3_term + b),
                                                    __ldg(air_mass + b), pt, w);
            t_g[(size_t)b * npix + i] = expf(expo);
        }
    }
}

extern "C" __global__ void gas_correction(const float* __restrict__ toa,
                                          const float* __restrict__ altitude,
                                          const float* __restrict__ wv,
                                          const int wv_scalar,
                                          const float water_default,
                                          const float* __restrict__ coef,
                                          const float* __restrict__ o3_term,
                                          const float* __restrict__ air_mass,
                                          const float k,
                                          const float e,
                                          const int nbands,
                                          const int npix,
                                          float* __restrict__ toa_star)
{
    const float qnan = __int_as_float(0x7fc00000);
    const unsigned int n = (unsigned int)npix;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float pt = gpumaja_pressure_ratio(altitude[i], k, e);
        const float w = gpumaja_water(wv, wv_scalar, i, water_default);
        for (int b = 0; b < nbands; ++b) {
            const size_t o = (size_t)b * npix + i;
            const float expo = gpumaja_gas_exponent(coef + b * GPUMAJA_SMAC_NGAS, __ldg(o3_term + b),
                                                    __ldg(air_mass + b), pt, w);
            const float tg = expf(expo);
            toa_star[o] = tg == 0.0f ? qnan : __fdiv_rn(toa[o], tg);
        }
    }
}
