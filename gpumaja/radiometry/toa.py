"""Digital numbers to top-of-atmosphere reflectance (kernel `kernels/toa.cu`, NumPy twin here).

For band b of a Level-1 stack (see `gpumaja.model.product`):

    rho_toa = (DN * gain[b] + offset[b]) / sun_factor[b]

computed as three float32 operations, `(float32(DN) * gain + offset) * inv_sun_factor` with
`inv_sun_factor = float32(1 / float64(sun_factor))`, without fused multiply-add, on the GPU and in the
NumPy twin alike, so both give the same bits.

- DN == nodata (or NaN for a float DN array): reflectance NaN, flag bit FLAG_NODATA.
- DN == saturated: flag bit FLAG_SATURATED; the reflectance is still computed.

`dn_to_toa` runs the CUDA kernel when `dn` is a CuPy array or `backend.is_gpu`, else
`dn_to_toa_numpy`. uint16 and float32 DNs go to the kernel as they are; any other dtype is converted
to float32 first (exact for integer DNs below 2^24).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module

FLAG_NODATA = 1  # flags bit 0: DN == nodata (reflectance NaN)
FLAG_SATURATED = 2  # flags bit 1: DN == saturated (reflectance still computed)

_KERNEL_FILE = "toa"
_INSTANCE = {np.dtype(np.uint16): "dn_to_toa<unsigned short>", np.dtype(np.float32): "dn_to_toa<float>"}
_BLOCK = 256
_MAX_BLOCKS_PER_BAND = 4096


def _band_params(gain, offset, sun_factor, nbands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-band float32 gain, offset and 1/sun_factor (scalars broadcast to every band)."""

    def per_band(values, what: str) -> np.ndarray:
        a = np.asarray(values, dtype=np.float64).reshape(-1)
        if a.size == 1:
            a = np.repeat(a, nbands)
        if a.size != nbands:
            raise ValueError(f"dn_to_toa: {what} has {a.size} values for {nbands} bands")
        return a

    g = per_band(gain, "gain").astype(np.float32)
    o = per_band(offset, "offset").astype(np.float32)
    s = per_band(sun_factor, "sun_factor")
    if np.any(s == 0) or not np.all(np.isfinite(s)):
        raise ValueError(f"dn_to_toa: sun_factor must be finite and non-zero, got {s.tolist()}")
    inv = (1.0 / s).astype(np.float32)
    return g, o, inv


def _dn_dtype(dtype: np.dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return dtype if dtype in _INSTANCE else np.dtype(np.float32)


def _check_shape(dn) -> None:
    if dn.ndim < 2:
        raise ValueError(f"dn_to_toa: dn must be (bands, y, x) or (bands, n), got shape {dn.shape}")


def dn_to_toa_numpy(
    dn: np.ndarray,
    gain: Any,
    offset: Any,
    sun_factor: Any = 1.0,
    nodata: int = 0,
    saturated: int = 65535,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of the `dn_to_toa` kernel: (toa float32, flags uint8), both of dn's shape."""
    dn = np.asarray(dn)
    _check_shape(dn)
    dn = dn.astype(_dn_dtype(dn.dtype), copy=False)
    nbands = dn.shape[0]
    g, o, inv = _band_params(gain, offset, sun_factor, nbands)
    bshape = (nbands,) + (1,) * (dn.ndim - 1)

    toa = dn.astype(np.float32)
    toa *= g.reshape(bshape)
    toa += o.reshape(bshape)
    toa *= inv.reshape(bshape)

    nodata_mask = dn == nodata
    if dn.dtype.kind == "f":
        nodata_mask |= np.isnan(dn)
    flags = np.zeros(dn.shape, dtype=np.uint8)
    flags[dn == saturated] = FLAG_SATURATED
    flags[nodata_mask] = FLAG_NODATA
    toa[nodata_mask] = np.nan
    return toa, flags


def _dn_to_toa_gpu(dn, gain, offset, sun_factor, nodata: int, saturated: int):
    import cupy
    import nvtx

    from gpumaja.kernels import declared_instances, get_function

    with nvtx.annotate("dn_to_toa", domain="gpumaja"):
        dn = cupy.asarray(dn)
        _check_shape(dn)
        dn = cupy.ascontiguousarray(dn, dtype=_dn_dtype(dn.dtype))
        nbands = int(dn.shape[0])
        npix = int(dn.size // nbands) if nbands else 0
        if npix >= 2**31:
            raise ValueError(f"dn_to_toa: {npix} pixels per band exceed the kernel's 32-bit indexing")
        if nbands > 65535:
            raise ValueError(f"dn_to_toa: {nbands} bands exceed the kernel's grid (65535)")
        g, o, inv = (cupy.asarray(a) for a in _band_params(gain, offset, sun_factor, nbands))
        toa = cupy.empty(dn.shape, dtype=cupy.float32)
        flags = cupy.empty(dn.shape, dtype=cupy.uint8)
        if dn.size == 0:
            return toa, flags
        kernel = get_function(
            _KERNEL_FILE, _INSTANCE[dn.dtype], name_expressions=declared_instances(_KERNEL_FILE)
        )
        gx = min(_MAX_BLOCKS_PER_BAND, (npix + _BLOCK - 1) // _BLOCK)
        kernel(
            (gx, nbands),
            (_BLOCK,),
            (
                dn,
                g,
                o,
                inv,
                np.int32(nodata),
                np.int32(saturated),
                np.int32(nbands),
                np.int32(npix),
                toa,
                flags,
            ),
        )
        return toa, flags


def dn_to_toa(
    dn: Any,
    gain: Any,
    offset: Any,
    sun_factor: Any = 1.0,
    nodata: int = 0,
    saturated: int = 65535,
    backend: Backend | None = None,
) -> tuple[Any, Any]:
    """TOA reflectance and flags of a DN stack.

    dn: (bands, y, x) or (bands, n) array (NumPy or CuPy). gain, offset, sun_factor: one value per band
    (or a scalar for all). Returns (toa float32, flags uint8) of dn's shape, on the GPU (CuPy) when dn is
    a CuPy array or `backend.is_gpu`, else NumPy. An explicit CPU backend brings a CuPy input back to
    the host.
    """
    on_gpu = backend.is_gpu if backend is not None else array_module(dn).__name__ == "cupy"
    if on_gpu:
        return _dn_to_toa_gpu(dn, gain, offset, sun_factor, int(nodata), int(saturated))
    if array_module(dn).__name__ == "cupy":
        dn = dn.get()
    return dn_to_toa_numpy(dn, gain, offset, sun_factor, nodata, saturated)
