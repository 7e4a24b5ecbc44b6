"""Binary morphology on the coarse grid and the coarse -> 10/20 m resampling of masks and fields.

Dilation and closing (maja-l2a.md §1.6, §1.8) use a flat "ball" structuring element of radius r in
the ITK/OTB sense MAJA's orchestrator uses (``BinaryMorphologicalOperation``, structype ball): the
offsets (dy, dx) with dy² + dx² <= (r + 0.5)², i.e. the pixels whose centres fall inside an ellipse of
full axis length 2r + 1 centred on the middle of the centre pixel. r = 1 is therefore the full 3x3
square (8-connectivity), r = 2 the 5x5 square without its four corners. r = 0 is the identity.
Pixels outside the array count as False (the mask is zero-extended).

Resampling (§1.11) is bilinear at fine pixel centres from coarse pixel centres, pixel-is-area
alignment: coarse pixel (j, i) covers fine pixels [j f, (j + 1) f) x [i f, (i + 1) f) with f =
coarse_res / fine_res (an integer: 24 for 240 -> 10 m, 12 for 240 -> 20 m, 8 for 240 -> 30 m), so
fine pixel y sits at coarse coordinate (y + 0.5) / f - 0.5; outside the outermost coarse centres the
edge value is held (edge clamp). The fine grid may be smaller than (cy f, cx f): it is then the
top-left crop. Interpolation is separable (rows, then columns, in float32) and processed in bands
of fine rows so that a 10980 x 10980 mask never holds a full-size float array.

All functions take NumPy or CuPy arrays and return arrays of the same kind (scipy.ndimage /
cupyx.scipy.ndimage for the morphology).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params

# Fine rows interpolated at once: bounds the float32 temporaries to a few x rows x width x 4 bytes.
_ROWS_PER_CHUNK = 512


# connected components of the cloud masks (extension, shadow and shadvar labels): 4-connectivity, as
# MAJA's itk::ConnectedComponentImageFilter with its default (face connected)
LABEL_STRUCTURE = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], dtype=bool)

def ndimage_for(xp: ModuleType) -> ModuleType:
    """scipy.ndimage for NumPy, cupyx.scipy.ndimage for CuPy."""
    if xp is np:
        import scipy.ndimage

        return scipy.ndimage
    import cupyx.scipy.ndimage

    return cupyx.scipy.ndimage


def _radius(radius: int) -> int:
    r = int(radius)
    if r != radius or r < 0:
        raise ValueError(f"morphology: radius must be a non-negative integer, got {radius!r}")
    return r


def disk(radius: int) -> np.ndarray:
    """The (2r+1, 2r+1) bool ITK "ball" structuring element: dy² + dx² <= (r + 0.5)²."""
    r = _radius(radius)
    d = np.arange(-r, r + 1)
    return (d[:, None] ** 2 + d[None, :] ** 2) <= (r + 0.5) ** 2


def _as_bool_2d(mask: Any, xp: ModuleType, what: str):
    m = xp.asarray(mask).astype(bool, copy=False)
    if m.ndim != 2:
        raise ValueError(f"{what}: mask must be 2-D, got shape {m.shape}")
    return m


def dilate(mask: Any, radius: int, xp: ModuleType | None = None):
    """Binary dilation by disk(radius) (§1.8); radius 0 returns a copy."""
    xp = xp or array_module(mask)
    m = _as_bool_2d(mask, xp, "dilate")
    r = _radius(radius)
    if r == 0 or m.size == 0:
        return m.copy()
    return ndimage_for(xp).binary_dilation(m, structure=xp.asarray(disk(r)))


def erode(mask: Any, radius: int, xp: ModuleType | None = None):
    """Binary erosion by disk(radius); pixels outside the array count as False."""
    xp = xp or array_module(mask)
    m = _as_bool_2d(mask, xp, "erode")
    r = _radius(radius)
    if r == 0 or m.size == 0:
        return m.copy()
    return ndimage_for(xp).binary_erosion(m, structure=xp.asarray(disk(r)), border_value=0)


def closing(mask: Any, radius: int, xp: ModuleType | None = None):
    """Binary closing (dilation then erosion) by disk(radius) with a safe border (§1.6).

    The mask is padded with radius False pixels before and cropped after, as ITK's closing filter
    does, so the result is the closing of the zero-extended mask: it contains the mask (no border
    erosion) and closing it again changes nothing.
    """
    xp = xp or array_module(mask)
    m = _as_bool_2d(mask, xp, "closing")
    r = _radius(radius)
    if r == 0 or m.size == 0:
        return m.copy()
    nd = ndimage_for(xp)
    se = xp.asarray(disk(r))
    p = xp.pad(m, r, mode="constant", constant_values=False)
    p = nd.binary_dilation(p, structure=se)
    p = nd.binary_erosion(p, structure=se, border_value=0)
    return p[r:-r, r:-r]


# --- resampling -------------------------------------------------------------------------------------


def _factor(factor: int) -> int:
    f = int(factor)
    if f != factor or f < 1:
        raise ValueError(f"resample: factor must be a positive integer, got {factor!r}")
    return f


def _out_shape(coarse_shape: tuple[int, int], f: int, shape: tuple[int, int] | None) -> tuple[int, int]:
    cy, cx = coarse_shape
    if shape is None:
        return cy * f, cx * f
    ny, nx = (int(s) for s in shape)
    if not (0 <= ny <= cy * f and 0 <= nx <= cx * f):
        raise ValueError(f"resample: fine shape {tuple(shape)} exceeds the coarse grid {coarse_shape} x {f}")
    return ny, nx


def axis_weights(n_out: int, n_in: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis: (i0, i1, w0, w1) for fine pixels 0..n_out-1 (host arrays).

    Fine pixel k lies at coarse coordinate u = (k + 0.5) / f - 0.5; i0 = floor(u), i1 = i0 + 1, both
    clamped to [0, n_in - 1], w1 = u - floor(u), w0 = 1 - w1 (float32).
    """
    u = (np.arange(n_out, dtype=np.float64) + 0.5) / f - 0.5
    base = np.floor(u)
    w1 = u - base
    i0 = np.clip(base, 0, n_in - 1).astype(np.int64)
    i1 = np.clip(base + 1, 0, n_in - 1).astype(np.int64)
    return i0, i1, (1.0 - w1).astype(np.float32), w1.astype(np.float32)


def _interp_rows(a, taps, xp: ModuleType):
    i0, i1, w0, w1 = taps
    return a[i0, :] * w0[:, None] + a[i1, :] * w1[:, None]


def _interp_cols(a, taps, xp: ModuleType):
    i0, i1, w0, w1 = taps
    return a[:, i0] * w0[None, :] + a[:, i1] * w1[None, :]


def _device_taps(n_out: int, n_in: int, f: int, xp: ModuleType):
    return tuple(xp.asarray(t) for t in axis_weights(n_out, n_in, f))


def resample_mask(
    mask: Any,
    factor: int,
    shape: tuple[int, int] | None = None,
    threshold: float = L2Params.mask_resampling_threshold,
    xp: ModuleType | None = None,
):
    """Coarse (cy, cx) bool mask -> fine bool mask: bilinear of the 0/1 mask, then > threshold (§1.11).

    `factor` is coarse_res / fine_res (integer); `shape` the fine grid (default (cy f, cx f); smaller
    = top-left crop). `threshold` defaults to L2Params.mask_resampling_threshold (0.25).
    """
    xp = xp or array_module(mask)
    m = _as_bool_2d(mask, xp, "resample_mask")
    f = _factor(factor)
    ny, nx = _out_shape(m.shape, f, shape)
    out = xp.zeros((ny, nx), dtype=bool)
    if ny == 0 or nx == 0 or m.size == 0:
        return out
    a = m.astype(xp.float32)
    ty = axis_weights(ny, m.shape[0], f)
    tx = _device_taps(nx, m.shape[1], f, xp)
    thr = np.float32(threshold)
    for y0 in range(0, ny, _ROWS_PER_CHUNK):
        y1 = min(ny, y0 + _ROWS_PER_CHUNK)
        rows = _interp_rows(a, tuple(xp.asarray(t[y0:y1]) for t in ty), xp)  # (rows, cx)
        out[y0:y1] = _interp_cols(rows, tx, xp) > thr
    return out


def resample_float(
    field: Any,
    factor: int,
    shape: tuple[int, int] | None = None,
    xp: ModuleType | None = None,
):
    """Coarse (cy, cx) continuous field -> fine float32 field, same bilinear alignment as resample_mask.

    NaN-aware: the weights are renormalised over the valid (non-NaN) coarse neighbours with a non-zero
    weight; a fine pixel is NaN only where all of them are NaN. Used for AOT, water vapour, altitude
    and the environment reflectance (§3.6).
    """
    xp = xp or array_module(field)
    a = xp.asarray(field)
    if a.ndim != 2:
        raise ValueError(f"resample_float: field must be 2-D, got shape {a.shape}")
    f = _factor(factor)
    ny, nx = _out_shape(a.shape, f, shape)
    out = xp.full((ny, nx), xp.nan, dtype=xp.float32)
    if ny == 0 or nx == 0 or a.size == 0:
        return out
    a = a.astype(xp.float32, copy=False)
    valid = ~xp.isnan(a)
    vals = xp.where(valid, a, xp.float32(0))
    wts = valid.astype(xp.float32)
    ty = axis_weights(ny, a.shape[0], f)
    tx = _device_taps(nx, a.shape[1], f, xp)
    for y0 in range(0, ny, _ROWS_PER_CHUNK):
        y1 = min(ny, y0 + _ROWS_PER_CHUNK)
        t = tuple(xp.asarray(v[y0:y1]) for v in ty)
        num = _interp_cols(_interp_rows(vals, t, xp), tx, xp)
        den = _interp_cols(_interp_rows(wts, t, xp), tx, xp)
        ok = den > 0
        out[y0:y1] = xp.where(ok, num / xp.where(ok, den, xp.float32(1)), xp.float32(xp.nan))
    return out
