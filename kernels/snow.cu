// LIS per-date snow detection, pixel passes (wasp-l3a-and-lis-snow.md §2.2, §2.3, §2.4).
//
// gpumaja-instantiate: snow_pass1 snow_pass2
//
// NumPy twins: gpumaja.snow.lis.snow_pass1_numpy and snow_pass2_numpy (same formulas, same operation
// order, same precision). Compile with --fmad=false (the wrappers do): no multiply-add is contracted,
// so every float/double operation is one IEEE round-to-nearest operation, as in NumPy, and the kernels
// give the twins' bits. NDSI = (G - S) / (G + S) is computed in float32 on both sides (IEEE division,
// NVRTC's default --prec-div=true), and compared with float32 thresholds: the masks are bit-identical.
//
// Intermediate byte `bits` written by snow_pass1 and read by snow_pass2 (mirrored in Python as
// gpumaja.snow.lis.BIT_*; tests/test_snow_lis.py checks the two agree):
//     bit 0 (  1) pass-1 snow        NOT all_cloud AND NDSI > n1 AND red > r1
//     bit 1 (  2) all_cloud          CLM > 0
//     bit 2 (  4) cloud_refine       (all_cloud AND red_nn > r_D) OR CLM & (shadow_in|shadow_out|high_cloud)
//     bit 3 (  8) back-to-cloud      all_cloud AND red > r_B
//     bit 4 ( 16) nodata             nodata mask != 0 OR green, red or SWIR is NaN; when set, no other bit is
// SNOW_ALL expert byte written by snow_pass2 (LIS ComputeSnowMask: reference bit n = value 2^(n-1)):
//       1 pass-1 snow, 2 pass-2 snow, 4 pass-1 clouds (= all_cloud, no pass 1.5), 8 refined clouds
//       (cloud_refine), 16 all_cloud, 32 bad slope-correction flag (MG2 >= div_slope_thres); 0 on nodata.
//       Bit 2 is the pass-2 test on its own, as LIS's pass2 mask: a pass-1 snow pixel above z_s has 1|2.
//
// snow_pass2, per pixel (nodata wins first):
//     pass2 = run_pass2 AND NOT cloud_refine [AND NOT all_cloud if strict] AND (double)DEM > z_s
//             AND NDSI > n2 AND red > r2
//     snow  = pass1 OR pass2
//     SNW   = nodata ? code_nodata : snow ? code_snow : (cloud_refine OR back) ? code_cloud : 0
//     FSC   = snow: clamp(rint(100 * min(gain * (double)NDSI + offset, 1)), fsc_min, fsc_max)
//             (rint: round half to even, as np.rint); else SNW's cloud / nodata code, or 0.
//
// Launch: 1-D grid-stride loop, one thread per pixel, 32-bit index (the wrappers refuse n >= 2^31).

#define SNOW_BIT_PASS1 1u
#define SNOW_BIT_ALL_CLOUD 2u
#define SNOW_BIT_CLOUD_REFINE 4u
#define SNOW_BIT_BACK_TO_CLOUD 8u
#define SNOW_BIT_NODATA 16u

#define EXPERT_PASS1_SNOW 1u
#define EXPERT_PASS2_SNOW 2u
#define EXPERT_PASS1_CLOUD 4u
#define EXPERT_REFINED_CLOUD 8u
#define EXPERT_ALL_CLOUD 16u
#define EXPERT_BAD_SLOPE 32u

extern "C" __global__ void snow_pass1(const float* __restrict__ green,
                                      const float* __restrict__ red,
                                      const float* __restrict__ swir,
                                      const float* __restrict__ red_nn,
                                      const unsigned char* __restrict__ clm,
                                      const unsigned char* __restrict__ nodata,
                                      const int n,
                                      const float ndsi_pass1,
                                      const float red_pass1,
                                      const float red_dark_cloud,
                                      const float red_back_to_cloud,
                                      const int refine_clm_bits,
                                      unsigned char* __restrict__ bits)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        const float g = green[i];
        const float r = red[i];
        const float s = swir[i];
        if (nodata[i] != 0 || isnan(g) || isnan(r) || isnan(s)) {
            bits[i] = (unsigned char)SNOW_BIT_NODATA;
            continue;
        }
        const unsigned int c = (unsigned int)clm[i];
        const bool all_cloud = c != 0u;
        const float ndsi = (g - s) / (g + s);
        const bool pass1 = !all_cloud && (ndsi > ndsi_pass1) && (r > red_pass1);
        const bool refine = (all_cloud && (red_nn[i] > red_dark_cloud)) || ((c & (unsigned int)refine_clm_bits) != 0u);
        const bool back = all_cloud && (r > red_back_to_cloud);
        unsigned int b = 0u;
        if (pass1) b |= SNOW_BIT_PASS1;
        if (all_cloud) b |= SNOW_BIT_ALL_CLOUD;
        if (refine) b |= SNOW_BIT_CLOUD_REFINE;
        if (back) b |= SNOW_BIT_BACK_TO_CLOUD;
        bits[i] = (unsigned char)b;
    }
}

extern "C" __global__ void snow_pass2(const float* __restrict__ green,
                                      const float* __restrict__ red,
                                      const float* __restrict__ swir,
                                      const float* __restrict__ dem,
                                      const unsigned char* __restrict__ bits,
                                      const unsigned char* __restrict__ mg2,
                                      const int n,
                                      const double z_s,
                                      const int run_pass2,
                                      const int strict_cloud_mask,
                                      const float ndsi_pass2,
                                      const float red_pass2,
                                      const double fsc_gain,
                                      const double fsc_offset,
                                      const int fsc_min,
                                      const int fsc_max,
                                      const int has_mg2,
                                      const int mg2_bad_slope,
                                      const int code_snow,
                                      const int code_cloud,
                                      const int code_nodata,
                                      unsigned char* __restrict__ snw,
                                      unsigned char* __restrict__ fsc,
                                      unsigned char* __restrict__ expert)
{
    const unsigned int nn = (unsigned int)n;
    const unsigned int stride = blockDim.x * gridDim.x;
    for (unsigned int i = blockIdx.x * blockDim.x + threadIdx.x; i < nn; i += stride) {
        const unsigned int b = (unsigned int)bits[i];
        if ((b & SNOW_BIT_NODATA) != 0u) {
            snw[i] = (unsigned char)code_nodata;
            fsc[i] = (unsigned char)code_nodata;
            expert[i] = 0;
            continue;
        }
        const bool pass1 = (b & SNOW_BIT_PASS1) != 0u;
        const bool all_cloud = (b & SNOW_BIT_ALL_CLOUD) != 0u;
        const bool refine = (b & SNOW_BIT_CLOUD_REFINE) != 0u;
        const bool back = (b & SNOW_BIT_BACK_TO_CLOUD) != 0u;
        const float g = green[i];
        const float r = red[i];
        const float s = swir[i];
        const float ndsi = (g - s) / (g + s);
        bool pass2 = false;
        if (run_pass2 != 0) {
            pass2 = !refine && !(strict_cloud_mask != 0 && all_cloud) && ((double)dem[i] > z_s) &&
                    (ndsi > ndsi_pass2) && (r > red_pass2);
        }
        const bool snow = pass1 || pass2;
        unsigned char code;
        unsigned char f;
        if (snow) {
            code = (unsigned char)code_snow;
            const double lin = fsc_gain * (double)ndsi + fsc_offset;
            const double capped = lin < 1.0 ? lin : 1.0;
            double pct = rint(100.0 * capped);  // percent
            pct = pct < (double)fsc_min ? (double)fsc_min : (pct > (double)fsc_max ? (double)fsc_max : pct);
            f = (unsigned char)(int)pct;
        } else if (refine || back) {
            code = (unsigned char)code_cloud;
            f = (unsigned char)code_cloud;
        } else {
            code = 0;
            f = 0;
        }
        unsigned int e = 0u;
        if (pass1) e |= EXPERT_PASS1_SNOW;
        if (pass2) e |= EXPERT_PASS2_SNOW;
        if (all_cloud) e |= EXPERT_PASS1_CLOUD | EXPERT_ALL_CLOUD;
        if (refine) e |= EXPERT_REFINED_CLOUD;
        if (has_mg2 != 0 && (int)mg2[i] >= mg2_bad_slope) e |= EXPERT_BAD_SLOPE;
        snw[i] = code;
        fsc[i] = f;
        expert[i] = (unsigned char)e;
    }
}
