"""Cloud masks at 10/20 m: the coarse masks kept only where the fine pixel itself shows the cloud.

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

Bits 1 (all clouds) and 0 (all) are rebuilt from the kept evidence inside their resampled masks, so
that the bits of one byte stay consistent. The masks can only lose pixels: nothing outside MAJA's
resampled masks becomes cloud. The composite, the shadows and the AOT still use the coarse masks.

`fine_cloud_support` is a CUDA kernel (kernels/cloud_fine.cu) with the NumPy twin
`fine_cloud_support_numpy`; `refine_fine_masks` is array code for either backend.
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


def _fine_cloud_support_gpu(hot, ref, age_days, params: L2Params):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("fine_cloud_support", domain="gpumaja"):
        h, r, age = (cupy.ascontiguousarray(a) for a in _inputs(cupy, hot, ref, age_days))
        n = h.size
        if n >= 2**31:
            raise ValueError(f"fine_cloud_support: {h.shape} pixels exceed the kernel's 32-bit indexing")
        out = cupy.empty(h.shape, dtype=cupy.uint8)
        if n == 0:
            return out
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("fine_cloud_support")
        grid = (min(_MAX_BLOCKS, (n + _BLOCK_1D - 1) // _BLOCK_1D),)
        kernel(grid, (_BLOCK_1D,), (
            h, r, age, np.int32(n), np.float64(params.min_threshold_var_blue),
            np.float64(params.max_threshold_var_blue), np.float64(params.cloud_forgetting_duration),
            np.float64(params.delta_threshold), out,
        ))
        return out


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


def refine_fine_masks(fine: dict[str, Any], cloud_parts: Any, support: Any | None, cirrus: Any | None,
                      xp: ModuleType) -> dict[str, Any]:
    """The resampled masks of one group (keys of `combine.CLM_BITS`), kept where the fine evidence holds.

    cloud_parts: refl ∪ refl_var ∪ extension resampled like the others (bool); support: the
    `fine_cloud_support` bits (None = no evidence: those parts stand); cirrus: the cirrus test at the
    cirrus band's resolution on this grid (None = the resampled cirrus stands). Returns a new dict.
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
    if fine.get("all") is not None:
        keep = cloudy
        for name in ("shadow", "shadvar"):
            if fine.get(name) is not None:
                keep = keep | fine[name]
        out["all"] = fine["all"] & keep
    return out
