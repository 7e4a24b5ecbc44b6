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

// BEGIN gpumaja-lut-device
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
// END gpumaja-lut-device

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
