"""Block mean of a reflectance stack onto the coarse processing grid (kernel `kernels/coarse.cu`).

MAJA runs its cloud, aerosol and water-vapour estimations on a coarse grid (240 m for Sentinel-2: a
factor 24 from 10 m, 12 from 20 m; or 120 m), which it obtains by resampling in its
CloudMaskUndersampling / ReduceLut steps. gpumaja uses a plain block mean instead:

- output shape (bands, ceil(H / f), ceil(W / f)); the last row / column of coarse cells may be partial
  blocks, which average the pixels they hold inside the image;
- NaN marks an invalid fine pixel; a coarse cell is the mean of its valid pixels;
- a coarse cell whose valid fraction (valid pixels / pixels of its block inside the image) is below
  `min_valid_fraction` is NaN. The default 0.5 is our choice, not a MAJA parameter. A cell with no
  valid pixel is always NaN.

Sums are accumulated in float64 and the mean rounded once to float32 on both GPU and CPU, so the two
agree to ~1 ulp whatever the summation order. Also returned: the number of valid pixels per coarse
cell and band (int32).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module

DEFAULT_MIN_VALID_FRACTION = 0.5

_KERNEL_FILE = "coarse"
_BLOCK = (32, 8)
_CHUNK_PIXELS = 1 << 24  # NumPy twin: fine pixels per float64 working chunk (~128 MiB)


def _prepare(shape: tuple[int, ...], factor: int, min_valid_fraction: float) -> tuple[int, float]:
    if len(shape) not in (2, 3):
        raise ValueError(f"block_mean: stack must be (bands, H, W) or (H, W), got shape {shape}")
    f = int(factor)
    if f != factor or f < 1:
        raise ValueError(f"block_mean: factor must be a positive integer, got {factor!r}")
    frac = float(min_valid_fraction)
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"block_mean: min_valid_fraction must lie in [0, 1], got {min_valid_fraction!r}")
    return f, frac


def coarse_shape(height: int, width: int, factor: int) -> tuple[int, int]:
    """(ceil(height / factor), ceil(width / factor))."""
    return -(-height // factor), -(-width // factor)


def block_mean_numpy(
    stack: np.ndarray,
    factor: int,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of the `block_mean` kernel: (mean float32, count int32) on the coarse grid."""
    a = np.asarray(stack, dtype=np.float32)
    f, frac = _prepare(a.shape, factor, min_valid_fraction)
    squeeze = a.ndim == 2
    if squeeze:
        a = a[None]
    nb, h, w = a.shape
    hc, wc = coarse_shape(h, w, f)
    mean = np.full((nb, hc, wc), np.nan, dtype=np.float32)
    count = np.zeros((nb, hc, wc), dtype=np.int32)

    cols_in = np.minimum(f, w - np.arange(wc) * f)
    rows_per_chunk = max(1, _CHUNK_PIXELS // max(1, f * f * wc))  # coarse rows per chunk
    for b in range(nb):
        for r0 in range(0, hc, rows_per_chunk):
            r1 = min(hc, r0 + rows_per_chunk)
            block = a[b, r0 * f : min(r1 * f, h)]
            valid = ~np.isnan(block)
            vals = np.where(valid, block, np.float32(0)).astype(np.float64)
            pad = ((0, (r1 - r0) * f - block.shape[0]), (0, wc * f - w))
            if pad[0][1] or pad[1][1]:
                vals = np.pad(vals, pad)
                valid = np.pad(valid, pad)
            s = vals.reshape(r1 - r0, f, wc, f).sum(axis=(1, 3))
            c = valid.reshape(r1 - r0, f, wc, f).sum(axis=(1, 3), dtype=np.int32)
            rows_in = np.minimum(f, h - np.arange(r0, r1) * f)
            n_in = (rows_in[:, None] * cols_in[None, :]).astype(np.float64)
            ok = (c > 0) & ~(c.astype(np.float64) < frac * n_in)
            m = np.full(c.shape, np.nan, dtype=np.float32)
            m[ok] = (s[ok] / c[ok]).astype(np.float32)
            mean[b, r0:r1] = m
            count[b, r0:r1] = c
    if squeeze:
        return mean[0], count[0]
    return mean, count


def _block_mean_gpu(stack, f: int, frac: float):
    import cupy
    import nvtx

    from gpumaja.kernels import get_function

    with nvtx.annotate("block_mean", domain="gpumaja"):
        a = cupy.ascontiguousarray(cupy.asarray(stack), dtype=cupy.float32)
        squeeze = a.ndim == 2
        if squeeze:
            a = a[None]
        nb, h, w = (int(n) for n in a.shape)
        if h * w >= 2**31:
            raise ValueError(f"block_mean: {h}x{w} pixels per band exceed the kernel's 32-bit indexing")
        if nb > 65535:
            raise ValueError(f"block_mean: {nb} bands exceed the kernel's grid (65535)")
        hc, wc = coarse_shape(h, w, f)
        mean = cupy.empty((nb, hc, wc), dtype=cupy.float32)
        count = cupy.empty((nb, hc, wc), dtype=cupy.int32)
        if mean.size:
            kernel = get_function(_KERNEL_FILE, "block_mean")
            grid = ((wc + _BLOCK[0] - 1) // _BLOCK[0], (hc + _BLOCK[1] - 1) // _BLOCK[1], nb)
            kernel(
                grid,
                _BLOCK,
                (
                    a,
                    np.int32(nb),
                    np.int32(h),
                    np.int32(w),
                    np.int32(f),
                    np.float64(frac),
                    np.int32(hc),
                    np.int32(wc),
                    mean,
                    count,
                ),
            )
        if squeeze:
            return mean[0], count[0]
        return mean, count


def block_mean(
    stack: Any,
    factor: int,
    min_valid_fraction: float = DEFAULT_MIN_VALID_FRACTION,
    backend: Backend | None = None,
) -> tuple[Any, Any]:
    """Mean of the valid (non-NaN) pixels of each factor x factor block, and their count.

    stack: float (bands, H, W) or (H, W), NumPy or CuPy. Returns (mean float32, count int32) of shape
    (bands, ceil(H / factor), ceil(W / factor)) (no band axis for a 2-D input), CuPy when stack is a
    CuPy array or `backend.is_gpu`, else NumPy.
    """
    f, frac = _prepare(tuple(np.shape(stack)), factor, min_valid_fraction)
    on_gpu = backend.is_gpu if backend is not None else array_module(stack).__name__ == "cupy"
    if on_gpu:
        return _block_mean_gpu(stack, f, frac)
    if array_module(stack).__name__ == "cupy":
        stack = stack.get()
    return block_mean_numpy(stack, f, frac)
