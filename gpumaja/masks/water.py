"""Single-date water test and the water mask of a date stack (maja-l2a.md §1.7, MG2 bit 0).

A pixel is *tested* on a date if it is not cloud, not edge, not in topographic shadow and its DTM
slope is at most water_slope_threshold. MAJA's slope is in radians (StartMaja stores it as
radians × 100, §3.7), so the threshold 0.15 means 0.15 rad ≈ 8.6°; the slope passed here is in
degrees (gpumaja.model.terrain's convention) and converted to radians before the comparison.

A tested pixel is *possible water* if NDVI = (NIR − red) / (NIR + red) on TOCR < water_ndvi_threshold
AND red < water_red_reflectance_threshold. (The sunglint branch, the PWA/TWA stacks of up to
Water_Mask_Number dates and the SRTM water bonus belong to the nominal mode: not here.)

The water mask is the set of pixels whose possible-water count reaches Min_Percent_Possible_Water
(50 %) of their tested count. With one date (INIT mode) that is exactly the possible-water mask.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params

# Min_Percent_Possible_Water (maja-l2a.md §1.7). Not yet a field of L2Params: see `water_mask`.
MIN_PERCENT_POSSIBLE_WATER = 50.0


def water_mask_single_date(
    tocr_red: Any,
    tocr_nir: Any,
    cloud: Any,
    edge: Any,
    topo_shadow: Any,
    slope: Any,
    params: L2Params,
    xp: ModuleType | None = None,
):
    """(possible_water, tested) bool masks of one date (§1.7); `slope` in degrees."""
    xp = xp or array_module(tocr_red)
    red = xp.asarray(tocr_red)
    nir = xp.asarray(tocr_nir)
    if red.shape != nir.shape or red.ndim != 2:
        raise ValueError(f"water_mask_single_date: red {red.shape} and nir {nir.shape} must be equal 2-D shapes")
    sl = xp.asarray(slope)
    slope_ok = xp.deg2rad(sl.astype(xp.float64, copy=False)) <= params.water_slope_threshold
    tested = slope_ok
    for m in (cloud, edge, topo_shadow):
        tested = tested & ~xp.asarray(m).astype(bool, copy=False)
    den = nir + red
    nonzero = den != 0
    ndvi = xp.where(nonzero, (nir - red) / xp.where(nonzero, den, 1), xp.nan)
    possible = tested & (ndvi < params.water_ndvi_threshold) & (red < params.water_red_reflectance_threshold)
    return possible, tested


def water_mask(
    possible_count: Any,
    tested_count: Any,
    min_percent: float = MIN_PERCENT_POSSIBLE_WATER,
    xp: ModuleType | None = None,
):
    """Water where possible-water dates >= min_percent % of tested dates (and at least one test).

    Counts are per-pixel integers over the stored date stack; for one date pass the two bool masks
    of `water_mask_single_date` (water = possible water).
    """
    xp = xp or array_module(possible_count)
    p = xp.asarray(possible_count).astype(xp.int32)
    t = xp.asarray(tested_count).astype(xp.int32)
    frac = float(min_percent) / 100.0
    if not 0.0 <= frac <= 1.0 or math.isnan(frac):
        raise ValueError(f"water_mask: min_percent must lie in [0, 100], got {min_percent!r}")
    return (t > 0) & (p >= frac * t)
