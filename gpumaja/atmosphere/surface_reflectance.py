"""Environment (adjacency) correction: rho_unif -> SRE (kernel `kernels/surface.cu`), maja-l2a.md §3.6.

- `environment_reflectance`: rho_env, the box mean of the coarse TOC over (2R+1)^2 coarse pixels
  (R = `L2Params.env_corr_radius`), over valid pixels only (MAJA's EnvironmentCorrection); the caller
  resamples it to 10/20 m.
- `environment_correction`: per pixel and band, with T_dir, T_dif (transmissions at the band's viewing
  zenith: `MiniLUT.dirt_view`, `dift_view`) and S (`MiniLUT.albedo`) interpolated bilinearly at the
  pixel's (altitude, AOT), clamped to the axes,

      SRE = [rho_unif (T_dir + T_dif) (1 - rho_env S) / (1 - rho_unif S) - rho_env T_dif] / T_dir

  computed in float32 as  T = T_dir + T_dif;  frac = (1 - rho_env S) / (1 - rho_unif S);
  SRE = ((rho_unif T) frac - rho_env T_dif) / T_dir, one rounding per operation and no fused
  multiply-add, on the GPU and in the NumPy twin alike (same bits). NaN propagates.

With rho_env = rho_unif the correction is the identity: frac = 1 and
SRE = (rho T - rho T_dif) / T_dir = rho (T_dir + T_dif - T_dif) / T_dir = rho.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpumaja.atmosphere import _dispatch as dispatch
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.atmosphere.toc import alt_aot_cells
from gpumaja.backend import Backend, array_module
from gpumaja.errors import InputError

_KERNEL_FILE = "surface"
_WHERE = "environment_correction"


# --------------------------------------------------------------------------------------------------
# rho_env: box mean over valid coarse pixels


def environment_reflectance(toc_coarse: Any, radius: int, valid: Any = None, xp: Any = None) -> Any:
    """Mean of the valid TOC over the (2R+1) x (2R+1) coarse window around each pixel (§3.6).

    toc_coarse: (nb, cy, cx) (or (cy, cx)) coarse TOC reflectance; valid: (cy, cx) bool (None: every
    pixel); a NaN value is invalid in its band too. The sum of the valid values and their count are both
    box-filtered with zero padding (`uniform_filter`, mode "constant"), so a window reaching over the
    image edge or over invalid pixels is normalised by the number of valid pixels it holds. Every pixel,
    valid or not, gets the mean of the valid pixels of its window; NaN where the window has none.
    xp: numpy or cupy (default: the array's module); float64 accumulation, float32 result.
    """
    r = int(radius)
    if r != radius or r < 0:
        raise InputError(f"environment_reflectance: radius must be a non-negative integer, got {radius!r}")
    xp = xp if xp is not None else array_module(toc_coarse)
    if xp.__name__ == "cupy":
        from cupyx.scipy.ndimage import uniform_filter
    else:
        from scipy.ndimage import uniform_filter
    v = xp.asarray(toc_coarse, dtype=xp.float64)
    squeeze = v.ndim == 2
    if squeeze:
        v = v[None]
    if v.ndim != 3:
        raise InputError(f"environment_reflectance: toc_coarse must be (bands, y, x), got shape {v.shape}")
    ok = ~xp.isnan(v)
    if valid is not None:
        m = xp.asarray(valid, dtype=bool)
        if m.shape != v.shape[1:]:
            raise InputError(f"environment_reflectance: valid has shape {m.shape}, expected {v.shape[1:]}")
        ok &= m[None]
    size = (1, 2 * r + 1, 2 * r + 1)
    total = uniform_filter(xp.where(ok, v, 0.0), size=size, mode="constant", cval=0.0)
    count = uniform_filter(ok.astype(xp.float64), size=size, mode="constant", cval=0.0)
    # uniform_filter returns window means (sums / (2R+1)^2) from running sums; a window without valid
    # pixels can hold a rounding residue instead of 0, hence the half-a-pixel threshold on the count.
    has = count * float((2 * r + 1) ** 2) > 0.5
    env = xp.where(has, total / xp.where(has, count, 1.0), xp.nan).astype(xp.float32)
    return env[0] if squeeze else env


# --------------------------------------------------------------------------------------------------
# SRE


def _check(rho_unif, rho_env, altitude, aot, lut: MiniLUT) -> tuple[int, int, int]:
    nb, ny, nx = dispatch.check_stack(_WHERE, "rho_unif", np.shape(rho_unif), len(lut.bands))
    dispatch.check_image(_WHERE, "rho_env", np.shape(rho_env), (nb, ny, nx))
    dispatch.check_image(_WHERE, "altitude", np.shape(altitude), (ny, nx))
    dispatch.check_image(_WHERE, "aot", np.shape(aot), (ny, nx))
    return nb, ny, nx


def _tables(lut: MiniLUT) -> tuple[np.ndarray, ...]:
    return tuple(
        np.ascontiguousarray(a, dtype=np.float32)
        for a in (lut.altitude, lut.aot, lut.dirt_view, lut.dift_view, lut.albedo)
    )


def sre_formula(rho_unif, rho_env, t_dir, t_dif, s):
    """The §3.6 formula in float32, the kernel's order of operations (arrays of one shape)."""
    one = np.float32(1.0)
    tt = t_dir + t_dif
    frac = (one - rho_env * s) / (one - rho_unif * s)
    return ((rho_unif * tt) * frac - rho_env * t_dif) / t_dir


def environment_correction_numpy(
    rho_unif: np.ndarray,
    rho_env: np.ndarray,
    altitude: np.ndarray,
    aot: np.ndarray,
    lut: MiniLUT,
    backend: Backend | None = None,
) -> np.ndarray:
    """NumPy twin of the `environment_correction` kernel: float32 (nb, ny, nx) SRE."""
    nb, ny, nx = _check(rho_unif, rho_env, altitude, aot, lut)
    alt_axis, aot_axis, dirt, dift, albedo = _tables(lut)
    npix = ny * nx
    ru_all = dispatch.host(rho_unif).reshape(nb, npix)
    re_all = dispatch.host(rho_env).reshape(nb, npix)
    h_all = dispatch.host(altitude).reshape(npix)
    t_all = dispatch.host(aot).reshape(npix)
    out = np.empty((nb, npix), dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for sl in dispatch.pixel_chunks(npix):
            h, t = h_all[sl], t_all[sl]
            cells = alt_aot_cells(alt_axis, aot_axis, h, t)
            bad = np.isnan(h) | np.isnan(t)
            for b in range(nb):
                v = sre_formula(
                    ru_all[b, sl], re_all[b, sl], cells.interp(dirt[b]), cells.interp(dift[b]),
                    cells.interp(albedo[b]),
                )
                v[bad] = np.nan
                out[b, sl] = v
    return out.reshape(nb, ny, nx)


def _environment_correction_gpu(rho_unif, rho_env, altitude, aot, lut: MiniLUT):
    import cupy
    import nvtx

    from gpumaja.kernels import get_function

    with nvtx.annotate("environment_correction", domain="gpumaja"):
        nb, ny, nx = _check(rho_unif, rho_env, altitude, aot, lut)
        npix = ny * nx
        dispatch.check_pixels(_WHERE, npix)
        ru, re, h, t = (dispatch.device(a) for a in (rho_unif, rho_env, altitude, aot))
        alt_axis, aot_axis, dirt, dift, albedo = (cupy.asarray(a) for a in _tables(lut))
        out = cupy.empty((nb, ny, nx), dtype=cupy.float32)
        if out.size == 0:
            return out
        grid, block = dispatch.grid_1d(npix)
        get_function(_KERNEL_FILE, "environment_correction")(
            grid,
            block,
            (
                ru, re, h, t,
                alt_axis, np.int32(alt_axis.size), aot_axis, np.int32(aot_axis.size),
                dirt, dift, albedo, np.int32(nb), np.int32(npix),
                out,
            ),
        )
        return out


def environment_correction(
    rho_unif: Any, rho_env: Any, altitude: Any, aot: Any, lut: MiniLUT, backend: Backend | None = None
) -> Any:
    """Surface reflectance corrected for adjacency effects, SRE (maja-l2a.md §3.6).

    rho_unif: (nb, ny, nx) uniform-Lambertian TOC (`apply_minilut`); rho_env: (nb, ny, nx) environment
    reflectance at the same resolution; altitude (m), aot: (ny, nx); lut: the mini-LUT with its bands in
    the stack's order. Returns float32 (nb, ny, nx), CuPy when `backend.is_gpu` (or, without a backend,
    when an input is CuPy), else NumPy.
    """
    if dispatch.use_gpu(backend, rho_unif, rho_env, altitude, aot):
        return _environment_correction_gpu(rho_unif, rho_env, altitude, aot, lut)
    return environment_correction_numpy(rho_unif, rho_env, altitude, aot, lut)
