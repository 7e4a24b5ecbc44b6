"""Cloud masks at 10/20 m: the coarse masks kept only where the fine pixel itself shows the cloud (or shadow).

Ours, not MAJA's (`L2Params.fine_cloud_masks`, docs/l2a.md "Cloud masks at 10/20 m"). MAJA decides
every cloud test on the coarse grid and brings the masks to 10/20 m by bilinear interpolation
followed by > 0.25 (maja-l2a.md §1.11): a 120 m cell flagged because a cloud covers part of it flags
all of its 10/20 m pixels. Here a fine pixel inside the resampled masks keeps a cloud bit only if the
same evidence MAJA used on the coarse grid holds at the pixel:

- refl, refl_var, extension (CLM bits 2, 3, 4): the HOT difference of §1.2 between today's TOCR at
  the pixel and the composite (coarse RCR, bilinear), in the fine blue/red bands (S2 B02/B04: the
  coarse test's B01 is a 60 m band), above the refl_var threshold thr(Δt) for refl and refl_var, above
  the extension's thr(Δt) − delta_threshold for the extension. Where the composite has no value (INIT
  mode, nodata) there is no evidence and the coarse decision stands.
- cirrus (bit 7): MAJA's cirrus test (§1.5) on the cirrus band at its own resolution (S2 B10: 60 m),
  nearest-neighbour on the fine grid.
- shadow (bit 5): the darkening of §1.9 at the pixel in the shadow band (by default today's TOC at the
  date's AOT over the composite's RTC; TOCR over RCR with `fine_shadow_darkening = "rayleigh"`;
  `pipeline.fine_evidence` makes both) below proj_shad_darkening_max (0.8): a pixel of the resampled shadow mask stays where
  it holds (or is unknown); a pixel within one coarse cell of a shadow cell joins the mask where it
  holds and the pixel is not cloud.

Bits 1 (all clouds) and 0 (all) are rebuilt from the kept evidence inside their resampled masks, so
that the bits of one byte stay consistent. The cloud bits can only lose pixels: nothing outside MAJA's
resampled masks becomes cloud; the shadow bit grows by at most one coarse cell. The composite, the
coarse shadows and the AOT still use the coarse masks.

`fine_cloud_support` and `fine_shadow_support` are CUDA kernels (kernels/cloud_fine.cu) with the NumPy
twins `fine_cloud_support_numpy` and `fine_shadow_support_numpy`; `refine_fine_masks` is array code
for either backend.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module
from gpumaja.model.params import L2Params

_KERNEL_FILE = "cloud_fine"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK_1D = 256
_MAX_BLOCKS = 4096

SUPPORT_VAR = 1  # the pixel passes the refl_var threshold (refl, refl_var)
SUPPORT_EXT = 2  # the pixel passes the extension threshold


def _inputs(xp: ModuleType, hot, ref, age_days):
    a = [xp.asarray(v, dtype=xp.float32) for v in (hot, ref, age_days)]
    if not (a[0].shape == a[1].shape == a[2].shape) or a[0].ndim != 2:
        raise ValueError(f"fine_cloud_support: hot, ref and age_days must be 2-D of one shape, got "
                         f"{a[0].shape}, {a[1].shape}, {a[2].shape}")
    return a


def fine_cloud_support_numpy(hot, ref, age_days, params: L2Params) -> np.ndarray:
    """NumPy twin of the `fine_cloud_support` kernel: uint8, SUPPORT_VAR | SUPPORT_EXT bits (3 = no evidence)."""
    h, r, age = (np.asarray(v, dtype=np.float64) for v in _inputs(np, *(np.asarray(x) for x in (hot, ref, age_days))))
    out = np.full(h.shape, SUPPORT_VAR | SUPPORT_EXT, np.uint8)
    ok = ~(np.isnan(h) | np.isnan(r) | np.isnan(age))
    with np.errstate(invalid="ignore", over="ignore"):
        grown = params.min_threshold_var_blue * (1.0 + age / params.cloud_forgetting_duration)
        thr = np.where(grown < params.max_threshold_var_blue, grown, params.max_threshold_var_blue)
        d = h - r
        bits = (d > thr).astype(np.uint8) * np.uint8(SUPPORT_VAR) | (
            (d > thr - params.delta_threshold).astype(np.uint8) * np.uint8(SUPPORT_EXT))
    out[ok] = bits[ok]
    return out


def _launch_per_pixel(name: str, inputs, scalars: tuple) -> Any:
    """Run kernel `name` of kernels/cloud_fine.cu, one thread per pixel of the 2-D float32 `inputs`
    (CuPy, one shape): (*inputs, n, *scalars, out) -> uint8 out of that shape."""
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate(name, domain="gpumaja"):
        arrays = [cupy.ascontiguousarray(a) for a in inputs]
        shape = arrays[0].shape
        n = arrays[0].size
        if n >= 2**31:
            raise ValueError(f"{name}: {shape} pixels exceed the kernel's 32-bit indexing")
        out = cupy.empty(shape, dtype=cupy.uint8)
        if n == 0:
            return out
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function(name)
        grid = (min(_MAX_BLOCKS, (n + _BLOCK_1D - 1) // _BLOCK_1D),)
        kernel(grid, (_BLOCK_1D,), (*arrays, np.int32(n), *scalars, out))
        return out


def _fine_cloud_support_gpu(hot, ref, age_days, params: L2Params):
    import cupy

    scalars = tuple(np.float64(v) for v in (params.min_threshold_var_blue, params.max_threshold_var_blue,
                                             params.cloud_forgetting_duration, params.delta_threshold))
    return _launch_per_pixel("fine_cloud_support", _inputs(cupy, hot, ref, age_days), scalars)


def fine_cloud_support(hot: Any, ref: Any, age_days: Any, params: L2Params, backend: Backend | None = None) -> Any:
    """Per fine pixel, which coarse cloud bits its own reflectance supports (uint8, same shape).

    hot: B − 0.5 R of today's TOCR in the fine blue/red bands; ref: the composite's B − 0.5 R there
    (NaN = no composite value); age_days: the composite age (days). Bit SUPPORT_VAR: the HOT
    difference exceeds the refl_var threshold thr(Δt) (maja-l2a.md §1.2); bit SUPPORT_EXT: it exceeds
    thr − delta_threshold. A NaN input gives both bits (no evidence against the coarse decision). The
    CUDA kernel runs when `backend.is_gpu` (or, without a backend, for CuPy input); else the twin.
    """
    on_gpu = backend.is_gpu if backend is not None else array_module(hot) is not np
    if on_gpu:
        return _fine_cloud_support_gpu(hot, ref, age_days, params)
    return fine_cloud_support_numpy(hot, ref, age_days, params)


SHADOW_NOT_DARK, SHADOW_DARK, SHADOW_NO_EVIDENCE = 0, 1, 2


def fine_shadow_support_numpy(red, ref, max_darkening: float) -> np.ndarray:
    """NumPy twin of the `fine_shadow_support` kernel: uint8 SHADOW_DARK where red < max_darkening ·
    ref, SHADOW_NOT_DARK elsewhere, SHADOW_NO_EVIDENCE where an input is NaN or ref <= 0."""
    r, c = (v.astype(np.float64) for v in _shadow_inputs(np, np.asarray(red), np.asarray(ref)))
    out = np.full(r.shape, SHADOW_NO_EVIDENCE, np.uint8)
    with np.errstate(invalid="ignore"):
        ok = ~(np.isnan(r) | np.isnan(c)) & (c > 0.0)
        dark = r < max_darkening * c
    out[ok] = np.where(dark[ok], SHADOW_DARK, SHADOW_NOT_DARK).astype(np.uint8)
    return out


def _shadow_inputs(xp: ModuleType, red, ref):
    r, c = (xp.asarray(v, dtype=xp.float32) for v in (red, ref))
    if r.shape != c.shape or r.ndim != 2:
        raise ValueError(f"fine_shadow_support: red and ref must be 2-D of one shape, got {r.shape}, {c.shape}")
    return r, c


def _fine_shadow_support_gpu(red, ref, max_darkening: float):
    import cupy

    return _launch_per_pixel("fine_shadow_support", _shadow_inputs(cupy, red, ref), (np.float64(max_darkening),))


def fine_shadow_support(red: Any, ref: Any, max_darkening: float, backend: Backend | None = None) -> Any:
    """Per fine pixel, whether its own darkening (§1.9: today's red over the composite's in the shadow
    band, surface TOC / RTC or TOCR / RCR as the caller chose) is below `max_darkening`: SHADOW_DARK / SHADOW_NOT_DARK, SHADOW_NO_EVIDENCE where unknown
    (uint8). The CUDA kernel runs when `backend.is_gpu` (or, without a backend, for CuPy input)."""
    on_gpu = backend.is_gpu if backend is not None else array_module(red) is not np
    if on_gpu:
        return _fine_shadow_support_gpu(red, ref, max_darkening)
    return fine_shadow_support_numpy(red, ref, max_darkening)


def refine_fine_masks(fine: dict[str, Any], cloud_parts: Any, support: Any | None, cirrus: Any | None,
                      xp: ModuleType, shadow_support: Any | None = None, shadow_zone: Any | None = None
                      ) -> dict[str, Any]:
    """The resampled masks of one group (keys of `combine.CLM_BITS`), kept where the fine evidence holds.

    cloud_parts: refl ∪ refl_var ∪ extension resampled like the others (bool); support: the
    `fine_cloud_support` bits (None = no evidence: those parts stand); cirrus: the cirrus test at the
    cirrus band's resolution on this grid (None = the resampled cirrus stands); shadow_support: the
    `fine_shadow_support` codes (None: the shadow bit stands) and shadow_zone: the pixels within one
    coarse cell of a shadow cell (the shadow mask resampled with threshold 0). A shadow pixel stays
    where it is dark (or has no evidence); a dark pixel of the zone that is not cloud joins it.
    Returns a new dict.
    """
    out = dict(fine)
    if support is None:
        var_ok = ext_ok = xp.ones(cloud_parts.shape, bool)
    else:
        var_ok = (support & np.uint8(SUPPORT_VAR)) > 0
        ext_ok = (support & np.uint8(SUPPORT_EXT)) > 0
    ext_before = fine.get("extension")
    for name in ("refl", "refl_var"):
        if fine.get(name) is not None:
            out[name] = fine[name] & var_ok
    if ext_before is not None:
        out["extension"] = ext_before & ext_ok
    cloudy = var_ok if ext_before is None else var_ok | (ext_ok & ext_before)
    cloudy = cloudy & cloud_parts
    cir = fine.get("cirrus")
    if cir is not None and cirrus is not None:
        cir = cir & cirrus
        out["cirrus"] = cir
    if cir is not None:
        cloudy = cloudy | cir
    out["all_clouds"] = fine["all_clouds"] & cloudy
    grown = None
    if shadow_support is not None and fine.get("shadow") is not None:
        dark = shadow_support == np.uint8(SHADOW_DARK)
        unknown = shadow_support == np.uint8(SHADOW_NO_EVIDENCE)
        kept = fine["shadow"] & (dark | unknown)
        zone = fine["shadow"] if shadow_zone is None else shadow_zone
        grown = zone & dark & ~out["all_clouds"] & ~fine["shadow"]
        out["shadow"] = kept | grown
    if fine.get("all") is not None:
        keep = cloudy
        for name in ("shadow", "shadvar"):
            if out.get(name) is not None:
                keep = keep | out[name]
        out["all"] = fine["all"] & keep
        if grown is not None:
            out["all"] = out["all"] | grown
    return out
