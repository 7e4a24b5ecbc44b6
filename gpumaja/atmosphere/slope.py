"""Slope (terrain) correction: SRE -> FRE and the MG2 sun flags (kernel `kernels/slope.cu`), maja-l2a.md §3.7.

MAJA's InternalSlopeCorrectionImageFilter. Per pixel with slope S and aspect A (radians; A is the
direction the slope faces, downslope, clockwise from north: the convention of
`gpumaja.model.terrain`, whose degrees the caller converts), and per band b:

    cos i = cos θs cos S + sin θs sin S cos(φs - A), clamped below at min_cos_i   -> MG2 bit 6 (64)
    ratio = cos i / cos θs  (the clamped cos i, as MAJA)         ratio < min_cos_ratio -> MG2 bit 7 (128)
    cos e = cos θv cos S + sin θv sin S cos(φv - A), clamped below at min_cos_e
    f     = (cos i + cos e) / (cos θs + cos θv)
    T     = T_dir + T_dif        (at the SOLAR zenith: MiniLUT.dirt_sun / dift_sun, bilinear in (h, AOT))
    FRE   = SRE T f / [T_dir ratio + T_dif (1 + cos S)/2 + T rho_env (1 - cos S)/2]     where SRE >= 0

Azimuths are the directions from the pixel toward the sun / the sensor, clockwise from north (the
Sentinel-2 and Landsat metadata conventions), so a slope facing the sun (A = φs) with S = θs has
cos i = 1.

Choices, documented:
- SRE < 0 (or NaN): FRE = SRE. MAJA's filter writes 0 there.
- Flat pixels (S == 0): FRE = SRE bit for bit (the formula is SRE T / T there, which float rounding need
  not return exactly). Their flags are still computed (cos i = cos θs), so with θs > acos(min_cos_i)
  ~ 78.5° a flat pixel is flagged "sun too low" while its FRE stays SRE (MAJA would apply the clamped
  cos i to it too).
- With the default thresholds (min_cos_i = min_cos_ratio = 0.2) the tangent-sun flag never fires, since
  the clamped cos i / cos θs >= 0.2; this is MAJA's behaviour, kept.

float32 throughout; the per-scene trigonometry (θs, θv, cos θs + cos θv) is done on the host in float64
and rounded once; per pixel, cos/sin are the only operations whose last bit may differ between the
kernel (cosf/sinf) and the NumPy twin; all others are single IEEE roundings in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpumaja.atmosphere import _dispatch as dispatch
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.atmosphere.toc import alt_aot_cells
from gpumaja.backend import Backend
from gpumaja.errors import InputError
from gpumaja.model.l2a import MG2_SUN_TOO_LOW, MG2_TANGENT_SUN

_KERNEL_FILE = "slope"
_WHERE = "slope_correction"


@dataclass(frozen=True)
class _Geometry:
    """Per-scene float32 constants of the kernel."""

    cos_sz: np.float32
    sin_sz: np.float32
    sun_az: np.float32  # radians
    cos_vz: np.ndarray  # (nb,)
    sin_vz: np.ndarray
    view_az: np.ndarray  # radians
    brdf_den: np.ndarray  # cos θs + cos θv


def _geometry(sun_zenith, sun_azimuth, view_zenith, view_azimuth, nb: int) -> _Geometry:
    tz = np.deg2rad(float(sun_zenith))
    if not (np.isfinite(tz) and 0.0 <= float(sun_zenith) < 90.0):
        raise InputError(f"{_WHERE}: sun_zenith must lie in [0, 90) degrees, got {sun_zenith!r}")
    vz = np.deg2rad(dispatch.per_band(_WHERE, "view_zenith", view_zenith, nb))
    va = np.deg2rad(dispatch.per_band(_WHERE, "view_azimuth", view_azimuth, nb))
    if not (np.all(np.isfinite(vz)) and np.all(np.isfinite(va)) and np.isfinite(float(sun_azimuth))):
        raise InputError(f"{_WHERE}: sun/view angles must be finite")
    return _Geometry(
        np.float32(np.cos(tz)),
        np.float32(np.sin(tz)),
        np.float32(np.deg2rad(float(sun_azimuth))),
        np.cos(vz).astype(np.float32),
        np.sin(vz).astype(np.float32),
        va.astype(np.float32),
        (np.cos(tz) + np.cos(vz)).astype(np.float32),
    )


def _check(sre, rho_env, altitude, aot, slope, aspect, lut: MiniLUT) -> tuple[int, int, int]:
    nb, ny, nx = dispatch.check_stack(_WHERE, "sre", np.shape(sre), len(lut.bands))
    dispatch.check_image(_WHERE, "rho_env", np.shape(rho_env), (nb, ny, nx))
    for name, a in (("altitude", altitude), ("aot", aot), ("slope", slope), ("aspect", aspect)):
        dispatch.check_image(_WHERE, name, np.shape(a), (ny, nx))
    return nb, ny, nx


def _tables(lut: MiniLUT) -> tuple[np.ndarray, ...]:
    return tuple(
        np.ascontiguousarray(a, dtype=np.float32) for a in (lut.altitude, lut.aot, lut.dirt_sun, lut.dift_sun)
    )


def slope_correction_numpy(
    sre: np.ndarray,
    rho_env: np.ndarray,
    altitude: np.ndarray,
    aot: np.ndarray,
    slope: np.ndarray,
    aspect: np.ndarray,
    sun_zenith: float,
    sun_azimuth: float,
    view_zenith: Any,
    view_azimuth: Any,
    lut: MiniLUT,
    min_cos_i: float,
    min_cos_e: float,
    min_cos_ratio: float,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of the `slope_correction` kernel: (FRE float32 (nb, ny, nx), MG2 bits uint8 (ny, nx))."""
    nb, ny, nx = _check(sre, rho_env, altitude, aot, slope, aspect, lut)
    g = _geometry(sun_zenith, sun_azimuth, view_zenith, view_azimuth, nb)
    alt_axis, aot_axis, dirt, dift = _tables(lut)
    mci, mce, mcr = np.float32(min_cos_i), np.float32(min_cos_e), np.float32(min_cos_ratio)
    one, half = np.float32(1.0), np.float32(0.5)
    npix = ny * nx
    sre_all = dispatch.host(sre).reshape(nb, npix)
    env_all = dispatch.host(rho_env).reshape(nb, npix)
    h_all = dispatch.host(altitude).reshape(npix)
    t_all = dispatch.host(aot).reshape(npix)
    s_all = dispatch.host(slope).reshape(npix)
    a_all = dispatch.host(aspect).reshape(npix)
    fre = np.empty((nb, npix), dtype=np.float32)
    mg2 = np.zeros(npix, dtype=np.uint8)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sl in dispatch.pixel_chunks(npix):
            s, a = s_all[sl], a_all[sl]
            cos_s, sin_s = np.cos(s), np.sin(s)
            cos_i = g.cos_sz * cos_s + (g.sin_sz * sin_s) * np.cos(g.sun_az - a)
            low = cos_i < mci
            cos_i = np.where(low, mci, cos_i)
            ratio = cos_i / g.cos_sz
            flags = np.where(low, np.uint8(MG2_SUN_TOO_LOW), np.uint8(0))
            flags |= np.where(ratio < mcr, np.uint8(MG2_TANGENT_SUN), np.uint8(0))
            mg2[sl] = flags

            h, t = h_all[sl], t_all[sl]
            bad = np.isnan(h) | np.isnan(t)
            cells = alt_aot_cells(alt_axis, aot_axis, h, t)
            flat = s == 0
            sky = (one + cos_s) * half
            ground = (one - cos_s) * half
            for b in range(nb):
                r = sre_all[b, sl]
                cos_e = g.cos_vz[b] * cos_s + (g.sin_vz[b] * sin_s) * np.cos(g.view_az[b] - a)
                cos_e = np.where(cos_e < mce, mce, cos_e)
                f_brdf = (cos_i + cos_e) / g.brdf_den[b]
                t_dir = cells.interp(dirt[b])
                t_dif = cells.interp(dift[b])
                tt = t_dir + t_dif
                num = (r * tt) * f_brdf
                den = (t_dir * ratio + t_dif * sky) + (tt * env_all[b, sl]) * ground
                v = num / den
                v[bad] = np.nan
                keep = flat | ~(r >= 0)  # flat pixels, negative or NaN SRE: FRE = SRE
                v[keep] = r[keep]
                fre[b, sl] = v
    return fre.reshape(nb, ny, nx), mg2.reshape(ny, nx)


def _slope_correction_gpu(sre, rho_env, altitude, aot, slope, aspect, g: _Geometry, lut: MiniLUT,
                          min_cos_i: float, min_cos_e: float, min_cos_ratio: float):
    import cupy
    import nvtx

    from gpumaja.kernels import get_function

    with nvtx.annotate("slope_correction", domain="gpumaja"):
        nb, ny, nx = _check(sre, rho_env, altitude, aot, slope, aspect, lut)
        npix = ny * nx
        dispatch.check_pixels(_WHERE, npix)
        d_sre, d_env, h, t, s, a = (dispatch.device(x) for x in (sre, rho_env, altitude, aot, slope, aspect))
        alt_axis, aot_axis, dirt, dift = (cupy.asarray(x) for x in _tables(lut))
        fre = cupy.empty((nb, ny, nx), dtype=cupy.float32)
        mg2 = cupy.empty((ny, nx), dtype=cupy.uint8)
        if npix == 0:
            return fre, mg2
        grid, block = dispatch.grid_1d(npix)
        get_function(_KERNEL_FILE, "slope_correction")(
            grid,
            block,
            (
                d_sre, d_env, h, t, s, a,
                g.cos_sz, g.sin_sz, g.sun_az,
                cupy.asarray(g.cos_vz), cupy.asarray(g.sin_vz), cupy.asarray(g.view_az), cupy.asarray(g.brdf_den),
                alt_axis, np.int32(alt_axis.size), aot_axis, np.int32(aot_axis.size), dirt, dift,
                np.float32(min_cos_i), np.float32(min_cos_e), np.float32(min_cos_ratio),
                np.int32(nb), np.int32(npix),
                fre, mg2,
            ),
        )
        return fre, mg2


def slope_correction(
    sre: Any,
    rho_env: Any,
    altitude: Any,
    aot: Any,
    slope: Any,
    aspect: Any,
    sun_zenith: float,
    sun_azimuth: float,
    view_zenith: Any,
    view_azimuth: Any,
    lut: MiniLUT,
    min_cos_i: float,
    min_cos_e: float,
    min_cos_ratio: float,
    backend: Backend | None = None,
) -> tuple[Any, Any]:
    """Flat reflectance FRE and the MG2 sun flags (maja-l2a.md §3.7).

    sre, rho_env: (nb, ny, nx); altitude (m), aot, slope (rad), aspect (rad, downslope direction clockwise
    from north): (ny, nx); sun_zenith, sun_azimuth: degrees; view_zenith, view_azimuth: (nb,) degrees
    (or one value); lut: the mini-LUT with its bands in the stack's order; thresholds from L2Params
    (slope_min_cos_i, min_cos_e, min_cos_ratio). Returns (FRE float32 (nb, ny, nx), MG2 uint8 (ny, nx)
    holding only bits 6 (sun too low) and 7 (tangent sun)), CuPy when `backend.is_gpu` (or, without a
    backend, when an input is CuPy), else NumPy.
    """
    if dispatch.use_gpu(backend, sre, rho_env, altitude, aot, slope, aspect):
        nb = _check(sre, rho_env, altitude, aot, slope, aspect, lut)[0]
        g = _geometry(sun_zenith, sun_azimuth, view_zenith, view_azimuth, nb)
        return _slope_correction_gpu(sre, rho_env, altitude, aot, slope, aspect, g, lut,
                                     min_cos_i, min_cos_e, min_cos_ratio)
    return slope_correction_numpy(sre, rho_env, altitude, aot, slope, aspect, sun_zenith, sun_azimuth,
                                  view_zenith, view_azimuth, lut, min_cos_i, min_cos_e, min_cos_ratio)
