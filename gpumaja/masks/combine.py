"""Combination and dilation of the cloud masks (maja-l2a.md §1.8, §1.11) and the CLM / MG2 bytes (§1.12).

- all_clouds = refl ∪ refl_var ∪ extension ∪ cirrus (refl_var and extension: nominal mode; CLA, the
  stereo mask, is empty for S2/Landsat);
- all = all_clouds ∪ shadow ∪ shadvar;
- every mask is dilated with a ball of radius se_cloud_radius (coarse px), then zeroed on edge.

Dilation distributes over union, so the dilated all_clouds is the union of the dilated parts: the
bits of one CLM byte stay consistent (bit 1 set wherever one of bits 2, 3, 4, 7 is).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.masks.morphology import dilate
from gpumaja.model import l2a
from gpumaja.model.params import L2Params

# Mask names of `combine_clouds`'s result and their CLM bit (maja-l2a.md §1.12, gpumaja.model.l2a).
CLM_BITS = {
    "all": l2a.CLM_ALL,
    "all_clouds": l2a.CLM_ALL_CLOUDS,
    "refl": l2a.CLM_REFL,
    "refl_var": l2a.CLM_REFL_VAR,
    "extension": l2a.CLM_EXTENSION,
    "shadow": l2a.CLM_SHADOW,
    "shadvar": l2a.CLM_SHADVAR,
    "cirrus": l2a.CLM_CIRRUS,
}


def combine_clouds(
    refl: Any,
    cirrus: Any | None,
    shadows: Any | None,
    params: L2Params,
    edge: Any,
    xp: ModuleType | None = None,
    *,
    refl_var: Any | None = None,
    extension: Any | None = None,
    shadvar: Any | None = None,
) -> dict[str, Any]:
    """Dilated, edge-zeroed masks keyed as CLM_BITS: the given parts plus "all_clouds" and "all".

    Parts given as None are left out of the result (their CLM bit stays 0).
    """
    xp = xp or array_module(refl)
    ed = xp.asarray(edge).astype(bool, copy=False)
    parts = {"refl": refl, "refl_var": refl_var, "extension": extension, "cirrus": cirrus,
             "shadow": shadows, "shadvar": shadvar}
    raw = {}
    for name, m in parts.items():
        if m is None:
            continue
        a = xp.asarray(m).astype(bool, copy=False)
        if a.shape != ed.shape:
            raise ValueError(f"combine_clouds: {name} has shape {a.shape}, edge has {ed.shape}")
        raw[name] = a
    clouds = xp.zeros(ed.shape, dtype=bool)
    for name in ("refl", "refl_var", "extension", "cirrus"):
        if name in raw:
            clouds = clouds | raw[name]
    everything = clouds
    for name in ("shadow", "shadvar"):
        if name in raw:
            everything = everything | raw[name]
    raw["all_clouds"] = clouds
    raw["all"] = everything
    r = params.se_cloud_radius
    return {name: dilate(a, r, xp) & ~ed for name, a in raw.items()}


def _pack(masks: dict[str, Any | None], bits: dict[str, int], what: str):
    present = {k: v for k, v in masks.items() if v is not None}
    unknown = sorted(set(masks) - set(bits))
    if unknown:
        raise ValueError(f"{what}: unknown mask name(s) {', '.join(unknown)}; expected {', '.join(bits)}")
    if not present:
        raise ValueError(f"{what}: no mask given")
    first = next(iter(present.values()))
    xp = array_module(first)
    shape = xp.asarray(first).shape
    out = xp.zeros(shape, dtype=xp.uint8)
    for name, m in present.items():
        a = xp.asarray(m).astype(bool, copy=False)
        if a.shape != shape:
            raise ValueError(f"{what}: {name} has shape {a.shape}, expected {shape}")
        out |= a.astype(xp.uint8) * xp.uint8(bits[name])
    return out


def clm_bits(masks: dict[str, Any]):
    """The CLM byte (§1.12) from masks keyed as CLM_BITS; missing (or None) masks give 0 bits."""
    return _pack(masks, CLM_BITS, "clm_bits")


MG2_BITS = {
    "water": l2a.MG2_WATER,
    "all_clouds": l2a.MG2_ALL_CLOUDS,
    "snow": l2a.MG2_SNOW,
    "shadows": l2a.MG2_SHADOW,
    "topo_shadow": l2a.MG2_TOPO_SHADOW,
    "hidden": l2a.MG2_HIDDEN,
    "sun_too_low": l2a.MG2_SUN_TOO_LOW,
    "tangent_sun": l2a.MG2_TANGENT_SUN,
}


def mg2_bits(
    water: Any | None,
    all_clouds: Any | None,
    snow: Any | None,
    shadows: Any | None,
    topo_shadow: Any | None,
    hidden: Any | None,
    sun_too_low: Any | None,
    tangent_sun: Any | None,
):
    """The MG2 byte (§1.12); `shadows` = shadow ∪ shadvar; None masks give 0 bits (at least one given)."""
    return _pack({"water": water, "all_clouds": all_clouds, "snow": snow, "shadows": shadows,
                  "topo_shadow": topo_shadow, "hidden": hidden, "sun_too_low": sun_too_low,
                  "tangent_sun": tangent_sun}, MG2_BITS, "mg2_bits")
