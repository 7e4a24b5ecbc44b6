// Block mean of a float32 stack onto a coarser grid (integer factor), NaN = invalid.
//
// gpumaja-instantiate: block_mean
//
// in[nbands][H][W] (contiguous) -> mean[nbands][Hc][Wc] float32, count[nbands][Hc][Wc] int32,
// Hc = ceil(H / f), Wc = ceil(W / f). Coarse cell (b, cy, cx) covers the fine pixels
// rows [cy*f, min(cy*f + f, H)) x cols [cx*f, min(cx*f + f, W)) -- edge cells are partial blocks that
// use only the pixels inside the image. With n_in the number of those pixels and count the number of
// them that are not NaN:
//
//     mean = (sum of valid pixels) / count,   computed in double, rounded once to float32
//     mean = NaN  if count == 0 or count < min_valid_fraction * n_in   (compared in double)
//
// Accumulating in double makes the result independent of the summation order to well below float32
// precision, so the NumPy twin (gpumaja.radiometry.coarse.block_mean_numpy) agrees to ~1 ulp.
//
// Launch: one thread per output cell and band; 2-D blocks over (cx, cy), grid z = band.
// 32-bit indexing inside one band, 64-bit band offsets.

extern "C" __global__ void block_mean(const float* __restrict__ in,
                                      const int nbands,
                                      const int height,
                                      const int width,
                                      const int factor,
                                      const double min_valid_fraction,
                                      const int out_height,
                                      const int out_width,
                                      float* __restrict__ mean,
                                      int* __restrict__ count)
{
    const int cx = blockIdx.x * blockDim.x + threadIdx.x;
    const int cy = blockIdx.y * blockDim.y + threadIdx.y;
    const int band = blockIdx.z;
    if (cx >= out_width || cy >= out_height || band >= nbands) return;

    const float* src = in + (size_t)band * (size_t)height * (size_t)width;
    const int y0 = cy * factor;
    const int x0 = cx * factor;
    const int y1 = min(y0 + factor, height);
    const int x1 = min(x0 + factor, width);

    double sum = 0.0;
    int valid = 0;
    for (int y = y0; y < y1; ++y) {
        const float* row = src + (size_t)y * (size_t)width;
        for (int x = x0; x < x1; ++x) {
            const float v = row[x];
            if (v == v) {  // not NaN
                sum += (double)v;
                ++valid;
            }
        }
    }
    const int n_in = (y1 - y0) * (x1 - x0);
    const size_t o = (size_t)band * (size_t)out_height * (size_t)out_width + (size_t)cy * out_width + cx;
    float m;
    if (valid == 0 || (double)valid < min_valid_fraction * (double)n_in) {
        m = __int_as_float(0x7fc00000);
    } else {
        m = (float)(sum / (double)valid);
    }
    mean[o] = m;
    count[o] = valid;
}
