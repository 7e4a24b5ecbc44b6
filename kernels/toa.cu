// Digital numbers -> top-of-atmosphere reflectance, with nodata / saturation flags.
//
// gpumaja-instantiate: dn_to_toa<unsigned short> dn_to_toa<float>
//
// For band b and pixel i of a band-major contiguous stack dn[nbands][npix]:
//
//     toa[b][i] = (float(dn) * gain[b] + offset[b]) * inv_sun_factor[b]      (float32, round-to-nearest)
//
// i.e. rho_toa = (DN * gain + offset) / sun_factor (gpumaja/model/product.py), with
//   Sentinel-2:  gain = 1 / QUANTIFICATION_VALUE, offset = RADIO_ADD_OFFSET / QUANTIFICATION_VALUE,
//                inv_sun_factor = 1
//   Landsat C2:  gain = REFLECTANCE_MULT_BAND_n, offset = REFLECTANCE_ADD_BAND_n,
//                inv_sun_factor = 1 / sin(SUN_ELEVATION)
// Every operation is an explicit __fmul_rn / __fadd_rn so that NVCC/NVRTC never contracts the
// multiply-add into an FMA: the NumPy twin (gpumaja.radiometry.toa.dn_to_toa_numpy) performs the same
// three IEEE float32 operations in the same order and gets bit-identical results.
//
// flags[b][i]: bit 0 (1) = nodata  (dn == nodata, or dn is NaN for float input) -> toa = NaN
//              bit 1 (2) = saturated (dn == saturated); the reflectance is still computed.
//
// Launch: grid (gx, nbands), 1-D blocks; blockIdx.y selects the band, a grid-stride loop over x covers
// the band's npix pixels (32-bit index inside a band, 64-bit band offset, so nbands * npix may exceed
// 2^31 as long as npix does not).

// dn == value, compared exactly: in int for integer DNs (no wrap-around of an out-of-range value),
// in float for float DNs (as NumPy compares a float32 array with a Python int).
__device__ __forceinline__ bool gpumaja_dn_equals(unsigned short v, int value) { return (int)v == value; }
__device__ __forceinline__ bool gpumaja_dn_equals(float v, int value) { return v == (float)value; }

__device__ __forceinline__ bool gpumaja_dn_is_nan(unsigned short) { return false; }
__device__ __forceinline__ bool gpumaja_dn_is_nan(float v) { return v != v; }

template <typename T>
__global__ void dn_to_toa(const T* __restrict__ dn,
                          const float* __restrict__ gain,
                          const float* __restrict__ offset,
                          const float* __restrict__ inv_sun_factor,
                          const int nodata,
                          const int saturated,
                          const int nbands,
                          const int npix,
                          float* __restrict__ toa,
                          unsigned char* __restrict__ flags)
{
    const int band = blockIdx.y;
    if (band >= nbands) return;
    const size_t base = (size_t)band * (size_t)npix;
    const float g = gain[band];
    const float o = offset[band];
    const float s = inv_sun_factor[band];
    const float qnan = __int_as_float(0x7fc00000);

    // unsigned: i + stride < 2^32 since npix < 2^31 and stride < 2^31, so the loop never wraps
    const unsigned int n = (unsigned int)npix;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const T v = dn[base + i];
        unsigned char f = 0;
        float r;
        if (gpumaja_dn_equals(v, nodata) || gpumaja_dn_is_nan(v)) {
            f = 1;
            r = qnan;
        } else {
            if (gpumaja_dn_equals(v, saturated)) f = 2;
            r = __fmul_rn(__fadd_rn(__fmul_rn((float)v, g), o), s);
        }
        toa[base + i] = r;
        flags[base + i] = f;
    }
}
