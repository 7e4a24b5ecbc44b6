"""Mono-temporal ("refl") cloud test on the coarse grid: CLM bit 2 (maja-l2a.md §1.1).

For each coarse pixel that is neither nodata nor snow (`excluded`), cloud if

- the pixel is saturated in blue, red, NIR or SWIR (`saturated`, computed by the caller), or
- on TOCR: blue > cloud_blue_reflectance_threshold AND red > cloud_red_reflectance_threshold AND
  nir_red_ratio_min · red < NIR < nir_red_ratio_max · red AND (when the sensor has a SWIR band)
  NIR > nir_swir_ratio_min · SWIR1 (the "DLR/ATCOR" condition of MAJA 1.0).

Only the INIT (one date) branch is here: the nominal-mode water branch (composite water mask eroded
by se_input_masks_radius AND SWIR2 > water_reflectance_threshold) needs the composite. NaN
reflectances compare false, so a NaN pixel is cloud only through `saturated`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params


def refl_cloud(
    tocr_blue: Any,
    tocr_red: Any,
    tocr_nir: Any,
    tocr_swir1: Any | None,
    saturated: Any,
    excluded: Any,
    params: L2Params,
    xp: ModuleType | None = None,
):
    """Bool refl cloud mask (§1.1, INIT branch); `tocr_swir1` None for sensors without SWIR."""
    xp = xp or array_module(tocr_blue)
    blue, red, nir = (xp.asarray(a) for a in (tocr_blue, tocr_red, tocr_nir))
    shape = blue.shape
    for name, a in (("red", red), ("nir", nir)):
        if a.shape != shape:
            raise ValueError(f"refl_cloud: {name} has shape {a.shape}, blue has {shape}")
    test = (
        (blue > params.cloud_blue_reflectance_threshold)
        & (red > params.cloud_red_reflectance_threshold)
        & (nir < params.nir_red_ratio_max * red)
        & (nir > params.nir_red_ratio_min * red)
    )
    if tocr_swir1 is not None:
        swir = xp.asarray(tocr_swir1)
        if swir.shape != shape:
            raise ValueError(f"refl_cloud: swir1 has shape {swir.shape}, blue has {shape}")
        test &= nir > params.nir_swir_ratio_min * swir
    sat = xp.asarray(saturated).astype(bool, copy=False)
    exc = xp.asarray(excluded).astype(bool, copy=False)
    return (test | sat) & ~exc
