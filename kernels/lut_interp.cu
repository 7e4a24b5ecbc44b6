// Mini-LUT interpolation: TOA* -> uniform-Lambertian surface reflectance (maja-l2a.md §3.1, §3.6).
//
// gpumaja-instantiate: apply_minilut
//
// For pixel i and band b of band-major contiguous stacks [nbands][npix]:
//
//     toc[b][i] = trilinear interpolation of table[b] (n_alt, n_aot, n_toa) at
//                 (altitude[i], aot[i], toa_star[b][i])
//
// over strictly increasing float32 axes (gpumaja.atmosphere.minilut.MiniLUT). Altitude and AOT are
// clamped to their axis ends; TOA* is extrapolated linearly from the first / last segment. NaN in any
// input gives NaN. Every arithmetic operation is an explicit round-to-nearest intrinsic (no FMA
// contraction), in the order of the NumPy twin gpumaja.atmosphere.toc.apply_minilut_numpy, so both
// give the same bits.
//
// The device functions between the BEGIN/END markers below are the interpolation primitives of the
// mini-LUT. surface.cu and slope.cu hold identical copies (NVRTC compiles each .cu on its own, without
// an include path); tests/test_atmosphere_toc.py checks the copies are identical.
//
// Launch: 1-D grid-stride loop over pixels (32-bit index, npix < 2^31), one thread per pixel looping
// over bands; 64-bit band offsets.

#include "lut_device.cuh"

extern "C" __global__ void apply_minilut(const float* __restrict__ toa_star,
                                         const float* __restrict__ altitude,
                                         const float* __restrict__ aot,
                                         const float* __restrict__ alt_axis,
                                         const int n_alt,
                                         const float* __restrict__ aot_axis,
                                         const int n_aot,
                                         const float* __restrict__ toa_axis,
                                         const int n_toa,
                                         const float* __restrict__ table,
                                         const int nbands,
                                         const int npix,
                                         float* __restrict__ toc)
{
    const float qnan = __int_as_float(0x7fc00000);
    const int band_size = n_alt * n_aot * n_toa;
    const int aot_stride = n_aot * n_toa;

    // unsigned: i + stride < 2^32 since npix < 2^31 and stride < 2^31, so the loop never wraps
    const unsigned int n = (unsigned int)npix;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float h = altitude[i];
        const float t = aot[i];
        if (h != h || t != t) {
            for (int b = 0; b < nbands; ++b) toc[(size_t)b * npix + i] = qnan;
            continue;
        }
        int ia, it;
        float wa, wt;
        gpumaja_axis_clamped(alt_axis, n_alt, h, &ia, &wa);
        gpumaja_axis_clamped(aot_axis, n_aot, t, &it, &wt);
        for (int b = 0; b < nbands; ++b) {
            const size_t o = (size_t)b * npix + i;
            const float x = toa_star[o];
            if (x != x) {
                toc[o] = qnan;
                continue;
            }
            const int ir = gpumaja_axis_cell(toa_axis, n_toa, x);
            const float wr = gpumaja_axis_weight(toa_axis, ir, x);
            const float* c00 = table + b * band_size + ia * aot_stride + it * n_toa + ir;  // (ia, it)
            const float* c01 = c00 + n_toa;                                                 // (ia, it+1)
            const float* c10 = c00 + aot_stride;                                            // (ia+1, it)
            const float* c11 = c10 + n_toa;                                                 // (ia+1, it+1)
            const float v00 = gpumaja_lerp(__ldg(c00), __ldg(c00 + 1), wr);
            const float v01 = gpumaja_lerp(__ldg(c01), __ldg(c01 + 1), wr);
            const float v10 = gpumaja_lerp(__ldg(c10), __ldg(c10 + 1), wr);
            const float v11 = gpumaja_lerp(__ldg(c11), __ldg(c11 + 1), wr);
            const float v0 = gpumaja_lerp(v00, v01, wt);
            const float v1 = gpumaja_lerp(v10, v11, wt);
            toc[o] = gpumaja_lerp(v0, v1, wa);
        }
    }
}
