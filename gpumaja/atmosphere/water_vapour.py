"""Water vapour map on the coarse grid (maja-l2a.md §3.4).

Steps, in the order of MAJA's WaterAmountImageGenerator and WaterVaporPostProcessing:

1. W = LUT_WATV(θs, θv of the WV band at the image centre, ρ_TOA(B9) / ρ_TOA(B8A)), g/cm².
2. Nodata: reference (B8A) reflectance < `REFERENCE_REFLECTANCE_MIN` (1e-6, MAJA's guard against a
   division by ~0), a non-finite input, a non-finite W, or W < 0.
3. W > `water_vapor_max` (8.0) is clipped to 8.0.
4. Pixels whose reference reflectance < `water_vapor_reflectance_threshold_ref` or whose WV-band
   reflectance < `water_vapor_reflectance_threshold_wv` are discarded like nodata (the ratio is
   unreliable over dark surfaces).
5. Every discarded or nodata pixel inside the image (`valid`) is gap-filled by the mean of the kept
   values in a window growing from `water_vapor_init_window_radius` to
   `water_vapor_max_window_radius` (`gpumaja.atmosphere.gapfill`: the radius doubles); what is still
   empty gets `water_amount_default`. Filled pixels are flagged (IAB bit 0,
   `gpumaja.model.l2a.IAB_WV_INTERPOLATED`).
6. Pixels outside the image (`valid` False) are NaN and not flagged.

`water_vapor_se_valid_radius` (MAJA `WaterVaporSEValidRadius`) is not used: its role is not
documented in the sources read (§3.4 only lists its value).

Landsat has no water-vapour band: `constant_water_vapour` gives `water_amount_default` everywhere,
not flagged (MAJA's VAPMASK is 0 in that case, WaterVaporPostProcessing).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.atmosphere.gapfill import gap_fill_mean
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

# MAJA: rho_TOA(reference band) < 1e-6 -> water vapour nodata (§3.4); a numerical guard, not a GIPP value
REFERENCE_REFLECTANCE_MIN = 1e-6

WatvLUT = Callable[[float, float, Any], Any]


def water_vapour_map(
    toa_wv: Any,
    toa_ref: Any,
    lut_watv: WatvLUT,
    sun_zenith: float,
    view_zenith: float,
    valid: Any,
    params: L2Params,
    xp: ModuleType = np,
) -> tuple[Any, Any]:
    """Water vapour (g/cm²) and its "interpolated" flag on the coarse grid (maja-l2a.md §3.4).

    toa_wv, toa_ref: (cy, cx) gas-uncorrected TOA reflectance of the WV band (S2 B09) and of its
    reference band (B8A). lut_watv(sun_zenith, view_zenith, ratio) -> W, array in array out
    (`AtmosphereLUT.water_vapour`; NaN or negative = no value). sun_zenith, view_zenith: degrees, at
    the image centre, view zenith of the WV band. valid: (cy, cx) bool, False outside the image.

    Returns (wv float32, interpolated bool), both (cy, cx), arrays of `xp`: wv is NaN where not
    valid; interpolated is True where the value comes from gap filling or the default.
    """
    toa_wv = xp.asarray(toa_wv, dtype=xp.float32)
    toa_ref = xp.asarray(toa_ref, dtype=xp.float32)
    valid = xp.asarray(valid, dtype=bool)
    if toa_wv.ndim != 2 or toa_wv.shape != toa_ref.shape or toa_wv.shape != valid.shape:
        raise InputError(
            f"water_vapour_map: toa_wv {toa_wv.shape}, toa_ref {toa_ref.shape} and valid {valid.shape} "
            "must be the same (cy, cx) shape"
        )

    ref = toa_ref.astype(xp.float64)
    wvb = toa_wv.astype(xp.float64)
    usable = valid & xp.isfinite(ref) & xp.isfinite(wvb) & (ref >= REFERENCE_REFLECTANCE_MIN)
    ratio = xp.where(usable, wvb / xp.where(usable, ref, 1.0), 0.0)
    w = xp.asarray(lut_watv(float(sun_zenith), float(view_zenith), ratio), dtype=xp.float64)
    if w.shape != ratio.shape:
        raise InputError(f"water_vapour_map: the WATV LUT returned shape {w.shape} for ratios of shape {ratio.shape}")

    estimated = usable & xp.isfinite(w) & (w >= 0.0)
    w = xp.minimum(w, float(params.water_vapor_max))
    bright = (ref >= params.water_vapor_reflectance_threshold_ref) & (wvb >= params.water_vapor_reflectance_threshold_wv)
    kept = estimated & bright

    filled, found = gap_fill_mean(
        xp.where(kept, w, 0.0), kept, params.water_vapor_init_window_radius,
        params.water_vapor_max_window_radius, xp, what="water_vapour_map",
    )
    out = xp.where(found, filled, float(params.water_amount_default))
    out = xp.where(valid, out, xp.nan).astype(xp.float32)
    interpolated = valid & ~kept
    return out, interpolated


def constant_water_vapour(shape: tuple[int, int], params: L2Params, xp: ModuleType = np) -> tuple[Any, Any]:
    """`water_amount_default` everywhere, not flagged: (wv float32, interpolated bool all False).

    For sensors without a water-vapour band (Landsat 8/9) or when the user asks for the constant.
    """
    shape = tuple(int(n) for n in shape)
    wv = xp.full(shape, params.water_amount_default, dtype=xp.float32)
    return wv, xp.zeros(shape, dtype=bool)
