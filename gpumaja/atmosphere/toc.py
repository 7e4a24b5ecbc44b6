"""Mini-LUT interpolation: gas-corrected TOA* -> surface reflectance rho_unif (kernel `kernels/lut_interp.cu`).

maja-l2a.md §3.1 (ReduceLut, `LUT_Interpolation` = LINEAR) and §3.6 (rho_unif = mini-LUT(h, tau, rho*)):
for band b of a (bands, y, x) stack,

    toc[b] = trilinear interpolation of lut.toc[b] (altitude, AOT, TOA*) at (altitude, aot, toa_star[b])

- altitude and AOT are clamped to the ends of their axes; TOA* is linearly extrapolated from the
  first / last segment (the conventions of `gpumaja.atmosphere.minilut`);
- NaN in any input gives NaN;
- band b of the stack uses lut.toc[b]: pass `lut.subset(bands)` in the stack's band order.

All arithmetic is float32, one rounding per operation, no fused multiply-add, in the same order on the
GPU and in the NumPy twin (`apply_minilut_numpy`), so both give the same bits:

    w     = (x - a[i]) / (a[i+1] - a[i])               (per axis; i = the cell of x)
    lerp  = v0 * (1 - w) + v1 * w                      (exact at the nodes)
    toc   = lerp(lerp(lerp(c000, c001, w_toa), lerp(c010, c011, w_toa), w_aot),
                 lerp(lerp(c100, c101, w_toa), lerp(c110, c111, w_toa), w_aot), w_alt)

`interp_alt_aot` is the same bilinear interpolation over (altitude, AOT) of the mini-LUT's 2-D tables
(transmissions, spherical albedo), used by the environment (§3.6) and slope (§3.7) corrections; their
kernels carry the same device functions (see kernels/lut_interp.cu).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpumaja.atmosphere import _dispatch as dispatch
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import Backend
from gpumaja.errors import InputError

_KERNEL_FILE = "lut_interp"
_WHERE = "apply_minilut"


# --------------------------------------------------------------------------------------------------
# Interpolation primitives (NumPy twins of the device functions of kernels/lut_interp.cu)


def axis_cell(axis: np.ndarray, x: np.ndarray, clamp: bool) -> tuple[np.ndarray, np.ndarray]:
    """Cell index i (intp) and float32 weight w of x on a strictly increasing float32 axis.

    i = clip(searchsorted(axis, x, "right") - 1, 0, n - 2); w = (x - axis[i]) / (axis[i+1] - axis[i]).
    With clamp, x is first clipped to [axis[0], axis[-1]] (w in [0, 1]); without, w extrapolates.
    NaN x gives a NaN weight.
    """
    a = np.asarray(axis, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    if clamp:
        x = np.clip(x, a[0], a[-1])
    i = np.clip(np.searchsorted(a, x, side="right") - 1, 0, a.size - 2)
    a0 = a[i]
    w = (x - a0) / (a[i + 1] - a0)
    return i, w.astype(np.float32, copy=False)


def lerp(v0: np.ndarray, v1: np.ndarray, w: np.ndarray) -> np.ndarray:
    """v0 (1 - w) + v1 w in float32 (two products, one sum: the kernels' order)."""
    return v0 * (np.float32(1.0) - w) + v1 * w


@dataclass(frozen=True)
class AltAotCells:
    """Cells and weights of pixels on the mini-LUT's (altitude, AOT) axes (clamped)."""

    ia: np.ndarray
    wa: np.ndarray
    it: np.ndarray
    wt: np.ndarray

    def interp(self, table: np.ndarray) -> np.ndarray:
        """Bilinear interpolation of one band's (n_alt, n_aot) float32 table at these cells."""
        v0 = lerp(table[self.ia, self.it], table[self.ia, self.it + 1], self.wt)
        v1 = lerp(table[self.ia + 1, self.it], table[self.ia + 1, self.it + 1], self.wt)
        return lerp(v0, v1, self.wa)


def alt_aot_cells(alt_axis: np.ndarray, aot_axis: np.ndarray, altitude: np.ndarray, aot: np.ndarray) -> AltAotCells:
    ia, wa = axis_cell(alt_axis, altitude, clamp=True)
    it, wt = axis_cell(aot_axis, aot, clamp=True)
    return AltAotCells(ia, wa, it, wt)


def interp_alt_aot(
    table: np.ndarray, altitude: Any, aot: Any, alt_axis: np.ndarray, aot_axis: np.ndarray
) -> np.ndarray:
    """Bilinear interpolation of per-band (nb, n_alt, n_aot) tables at per-pixel (altitude, aot).

    NumPy only (the kernels interpolate inline). altitude and aot have one shape (e.g. (ny, nx)); both
    are clamped to their axes. Returns float32 (nb, *altitude.shape), NaN where altitude or aot is NaN.
    """
    tab = np.asarray(table, dtype=np.float32)
    h = dispatch.host(altitude)
    t = dispatch.host(aot)
    if tab.ndim != 3 or tab.shape[1:] != (len(alt_axis), len(aot_axis)):
        raise InputError(
            f"interp_alt_aot: table has shape {tab.shape}, expected (bands, {len(alt_axis)}, {len(aot_axis)})"
        )
    dispatch.check_image("interp_alt_aot", "aot", t.shape, h.shape)
    cells = alt_aot_cells(alt_axis, aot_axis, h, t)
    bad = np.isnan(h) | np.isnan(t)
    out = np.empty((tab.shape[0],) + h.shape, dtype=np.float32)
    for b in range(tab.shape[0]):
        v = cells.interp(tab[b])
        v[bad] = np.nan
        out[b] = v
    return out


# --------------------------------------------------------------------------------------------------
# apply_minilut


def _lut_arrays(lut: MiniLUT) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.ascontiguousarray(lut.altitude, dtype=np.float32),
        np.ascontiguousarray(lut.aot, dtype=np.float32),
        np.ascontiguousarray(lut.toa, dtype=np.float32),
        np.ascontiguousarray(lut.toc, dtype=np.float32),
    )


def _check(toa_star, altitude, aot, lut: MiniLUT) -> tuple[int, int, int]:
    nb, ny, nx = dispatch.check_stack(_WHERE, "toa_star", np.shape(toa_star), len(lut.bands))
    dispatch.check_image(_WHERE, "altitude", np.shape(altitude), (ny, nx))
    dispatch.check_image(_WHERE, "aot", np.shape(aot), (ny, nx))
    return nb, ny, nx


def apply_minilut_numpy(
    toa_star: np.ndarray, altitude: np.ndarray, aot: np.ndarray, lut: MiniLUT, backend: Backend | None = None
) -> np.ndarray:
    """NumPy twin of the `apply_minilut` kernel: float32 (nb, ny, nx) surface reflectance rho_unif."""
    nb, ny, nx = _check(toa_star, altitude, aot, lut)
    alt_axis, aot_axis, toa_axis, table = _lut_arrays(lut)
    npix = ny * nx
    x_all = dispatch.host(toa_star).reshape(nb, npix)
    h_all = dispatch.host(altitude).reshape(npix)
    t_all = dispatch.host(aot).reshape(npix)
    out = np.empty((nb, npix), dtype=np.float32)
    for sl in dispatch.pixel_chunks(npix):
        h, t = h_all[sl], t_all[sl]
        cells = alt_aot_cells(alt_axis, aot_axis, h, t)
        ia, wa, it, wt = cells.ia, cells.wa, cells.it, cells.wt
        bad_pixel = np.isnan(h) | np.isnan(t)
        for b in range(nb):
            x = x_all[b, sl]
            ir, wr = axis_cell(toa_axis, x, clamp=False)
            tb = table[b]
            v00 = lerp(tb[ia, it, ir], tb[ia, it, ir + 1], wr)
            v01 = lerp(tb[ia, it + 1, ir], tb[ia, it + 1, ir + 1], wr)
            v10 = lerp(tb[ia + 1, it, ir], tb[ia + 1, it, ir + 1], wr)
            v11 = lerp(tb[ia + 1, it + 1, ir], tb[ia + 1, it + 1, ir + 1], wr)
            v = lerp(lerp(v00, v01, wt), lerp(v10, v11, wt), wa)
            v[bad_pixel | np.isnan(x)] = np.nan
            out[b, sl] = v
    return out.reshape(nb, ny, nx)


def _apply_minilut_gpu(toa_star, altitude, aot, lut: MiniLUT):
    import cupy
    import nvtx

    from gpumaja.kernels import get_function

    with nvtx.annotate("apply_minilut", domain="gpumaja"):
        nb, ny, nx = _check(toa_star, altitude, aot, lut)
        npix = ny * nx
        dispatch.check_pixels(_WHERE, npix)
        x = dispatch.device(toa_star)
        h = dispatch.device(altitude)
        t = dispatch.device(aot)
        alt_axis, aot_axis, toa_axis, table = (cupy.asarray(a) for a in _lut_arrays(lut))
        out = cupy.empty((nb, ny, nx), dtype=cupy.float32)
        if out.size == 0:
            return out
        kernel = get_function(_KERNEL_FILE, "apply_minilut")
        grid, block = dispatch.grid_1d(npix)
        kernel(
            grid,
            block,
            (
                x, h, t,
                alt_axis, np.int32(alt_axis.size),
                aot_axis, np.int32(aot_axis.size),
                toa_axis, np.int32(toa_axis.size),
                table, np.int32(nb), np.int32(npix),
                out,
            ),
        )
        return out


def apply_minilut(toa_star: Any, altitude: Any, aot: Any, lut: MiniLUT, backend: Backend | None = None) -> Any:
    """Surface reflectance under the uniform-Lambertian assumption, rho_unif (maja-l2a.md §3.6).

    toa_star: (nb, ny, nx) gas-corrected TOA reflectance; altitude (m) and aot: (ny, nx); lut: the
    date's mini-LUT with its bands in the stack's order (`lut.subset(bands)`). Returns float32
    (nb, ny, nx), CuPy when `backend.is_gpu` (or, without a backend, when an input is CuPy), else NumPy.
    """
    if dispatch.use_gpu(backend, toa_star, altitude, aot):
        return _apply_minilut_gpu(toa_star, altitude, aot, lut)
    return apply_minilut_numpy(toa_star, altitude, aot, lut)
