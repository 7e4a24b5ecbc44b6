"""Cirrus mask from the 1.38 µm band and the global cirrus flag: CLM bit 7 (maja-l2a.md §1.5).

On TOA (not gas- or Rayleigh-corrected) reflectance of the cirrus band at coarse resolution, with the
DTM altitude h in metres, a pixel is cirrus if

    ρ_TOA(cirrus) > cirrus_mask_threshold_gain · h² / cirrus_alt_ref + cirrus_mask_threshold_offset

(MAJA 4's quadratic law; the division by the reference altitude keeps the old linear law's threshold
at h = cirrus_alt_ref when gain is unchanged). The global cirrus flag is raised when the cirrus share
of valid pixels exceeds min_percent_mask_cirrus %; the composite is then not updated.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params


def cirrus_threshold(altitude: Any, params: L2Params, xp: ModuleType | None = None):
    """gain · h² / alt_ref + offset, per pixel (same shape as `altitude`)."""
    xp = xp or array_module(altitude)
    h = xp.asarray(altitude)
    return params.cirrus_mask_threshold_gain * (h * h) / params.cirrus_alt_ref + params.cirrus_mask_threshold_offset


def cirrus_mask(
    toa_cirrus: Any, altitude: Any, valid: Any, params: L2Params, xp: ModuleType | None = None
):
    """Bool cirrus mask (§1.5): TOA cirrus reflectance above the altitude-dependent threshold, on valid pixels."""
    xp = xp or array_module(toa_cirrus)
    rho = xp.asarray(toa_cirrus)
    h = xp.asarray(altitude)
    if h.shape != rho.shape and h.ndim != 0:
        raise ValueError(f"cirrus_mask: altitude shape {h.shape} differs from the cirrus band's {rho.shape}")
    ok = xp.asarray(valid).astype(bool, copy=False)
    return (rho > cirrus_threshold(h, params, xp)) & ok


def cirrus_percent(mask: Any, valid: Any, xp: ModuleType | None = None) -> float:
    """Cirrus share of valid pixels, in % (0 when no pixel is valid)."""
    xp = xp or array_module(mask)
    ok = xp.asarray(valid).astype(bool, copy=False)
    n_valid = int(xp.count_nonzero(ok))
    if n_valid == 0:
        return 0.0
    return 100.0 * int(xp.count_nonzero(xp.asarray(mask).astype(bool, copy=False) & ok)) / n_valid


def cirrus_flag(mask: Any, valid: Any, params: L2Params, xp: ModuleType | None = None) -> bool:
    """Global cirrus flag (§1.5): cirrus % of valid pixels > min_percent_mask_cirrus."""
    return cirrus_percent(mask, valid, xp) > params.min_percent_mask_cirrus
