"""Shared plumbing of the per-pixel atmospheric kernels (lut_interp, gas, surface, slope).

- `use_gpu`: the wrappers run the CUDA kernel when `backend.is_gpu`, or, without a backend, when any
  array argument is a CuPy array (like `gpumaja.radiometry.toa.dn_to_toa`).
- `grid_1d`: a 1-D grid for the kernels' grid-stride loops (one thread per pixel, all bands).
- `pixel_chunks`: the NumPy twins work on chunks of pixels so that a 10 m tile does not allocate a
  dozen full-size temporaries at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module, to_numpy
from gpumaja.errors import InputError

BLOCK = 256
MAX_BLOCKS = 1 << 16  # grid-stride loops: enough blocks to fill any current GPU
CHUNK_PIXELS = 1 << 20  # NumPy twins: pixels per working chunk
MAX_PIXELS = 2**31 - 1  # kernels index pixels with 32-bit ints


def is_cupy(a: Any) -> bool:
    return array_module(a).__name__ == "cupy"


def use_gpu(backend: Backend | None, *arrays: Any) -> bool:
    """True when the CUDA kernel should run: backend.is_gpu, or no backend and a CuPy argument."""
    if backend is not None:
        return backend.is_gpu
    return any(is_cupy(a) for a in arrays)


def host(a: Any, dtype=np.float32) -> np.ndarray:
    """`a` as a NumPy array of `dtype` (brings a CuPy array back to the host)."""
    return np.asarray(to_numpy(a), dtype=dtype)


def device(a: Any, dtype=np.float32):
    """`a` as a C-contiguous CuPy array of `dtype` on the current device."""
    import cupy

    return cupy.ascontiguousarray(cupy.asarray(a), dtype=dtype)


def check_pixels(where: str, npix: int) -> None:
    if npix > MAX_PIXELS:
        raise InputError(f"{where}: {npix} pixels per band exceed the kernels' 32-bit indexing")


def grid_1d(npix: int) -> tuple[tuple[int], tuple[int]]:
    """(grid, block) for a grid-stride loop over npix pixels."""
    return (max(1, min(MAX_BLOCKS, (npix + BLOCK - 1) // BLOCK)),), (BLOCK,)


def pixel_chunks(npix: int, chunk: int = CHUNK_PIXELS) -> Iterator[slice]:
    for start in range(0, npix, chunk):
        yield slice(start, min(npix, start + chunk))


def check_image(where: str, name: str, shape: tuple[int, ...], expected: tuple[int, ...]) -> None:
    if tuple(shape) != tuple(expected):
        raise InputError(f"{where}: {name} has shape {tuple(shape)}, expected {tuple(expected)}")


def check_stack(where: str, name: str, shape: tuple[int, ...], nbands: int | None = None) -> tuple[int, ...]:
    """A (bands, y, x) stack's shape; nbands checks the band count (e.g. the mini-LUT's)."""
    if len(shape) != 3:
        raise InputError(f"{where}: {name} must be a (bands, y, x) stack, got shape {tuple(shape)}")
    if nbands is not None and shape[0] != nbands:
        raise InputError(
            f"{where}: {name} has {shape[0]} bands but the mini-LUT has {nbands} "
            "(pass lut.subset(bands) in the stack's band order)"
        )
    return tuple(shape)


def per_band(where: str, name: str, values: Any, nbands: int) -> np.ndarray:
    """One float64 value per band (a scalar is repeated)."""
    a = np.asarray(to_numpy(values), dtype=np.float64).reshape(-1)
    if a.size == 1:
        a = np.repeat(a, nbands)
    if a.size != nbands:
        raise InputError(f"{where}: {name} has {a.size} values for {nbands} bands")
    return a
