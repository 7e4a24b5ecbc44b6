"""Multi-date water mask from the PWA/TWA stacks of the composite (maja-l2a.md §1.7, MG2 bit 0).

Each date contributes two bool masks from :func:`gpumaja.masks.water.water_mask_single_date`:
*possible water* (NDVI and red tests) and *tested* (not cloud, edge or topographic shadow, gentle
slope). The composite (:class:`gpumaja.composite.CompositeState`) keeps them, newest first, in
``pwa`` / ``twa`` stacks of at most ``Water_Mask_Number`` dates (§1.7).

A pixel is water on date D if, over a window of ``Water_Mask_Number`` dates ending at D (D itself and
the newest ``water_mask_number - 1`` stored layers), it was tested at least once and

    (number of dates where it was possible water AND tested) / (number of dates where it was tested)
        >= Min_Percent_Possible_Water / 100.

Possible water counts only on dates where the pixel was tested (a possible-water flag on an untested
date is ignored). The window equals the stack the composite stores after D's update (today pushed on
front, truncated to ``water_mask_number``), so the decision of D and the stored state agree. With an
empty stack (INIT mode) water = possible water of D.

Not implemented: the SRTM/SWBD water-database bonus (the database mask Gaussian-smoothed with
σ = SRTM_Sigma_Smoothing px adding SRTM_Percent = 51 %, §1.7): gpumaja has no water-database input,
and the reference marks its combination formula as not fully read [U]. The sunglint branch of the
possible-water test belongs to the single-date test, not here.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params


def _window_layers(n_stack: int, params: L2Params) -> int:
    """How many stored layers join today's mask: Water_Mask_Number dates in all, today included."""
    if params.water_mask_number < 1:
        raise ValueError(f"water_mask_number must be >= 1, got {params.water_mask_number!r}")
    return min(n_stack, params.water_mask_number - 1)


def water_mask_multi_date(
    possible_water_today: Any,
    tested_today: Any,
    pwa: Any,
    twa: Any,
    params: L2Params,
    xp: ModuleType | None = None,
):
    """Bool (cy, cx) water mask of today from today's masks and the previous dates' PWA/TWA (§1.7).

    ``possible_water_today`` / ``tested_today``: (cy, cx) bool, today's
    :func:`~gpumaja.masks.water.water_mask_single_date` output. ``pwa`` / ``twa``: (n, cy, cx) bool
    stacks of previous dates, newest first (``CompositeState.pwa`` / ``.twa``; n may be 0). Only the
    newest ``params.water_mask_number - 1`` layers are used (window of Water_Mask_Number dates).
    Water where the tested count is >= 1 and possible-and-tested count * 100 >=
    ``params.min_percent_possible_water`` * tested count (integer counts, exact comparison).
    The SRTM/SWBD water-database bonus of MAJA is not implemented (no water-database input).
    """
    xp = xp or array_module(possible_water_today)
    p_today = xp.asarray(possible_water_today).astype(bool, copy=False)
    t_today = xp.asarray(tested_today).astype(bool, copy=False)
    p_stack = xp.asarray(pwa).astype(bool, copy=False)
    t_stack = xp.asarray(twa).astype(bool, copy=False)
    if p_today.ndim != 2 or p_today.shape != t_today.shape:
        raise ValueError(f"water_mask_multi_date: today's masks {p_today.shape} / {t_today.shape} "
                         "must be equal 2-D shapes")
    if p_stack.shape != t_stack.shape or p_stack.ndim != 3 or p_stack.shape[1:] != p_today.shape:
        raise ValueError(f"water_mask_multi_date: pwa {p_stack.shape} and twa {t_stack.shape} must be "
                         f"(n, {p_today.shape[0]}, {p_today.shape[1]})")
    pct = float(params.min_percent_possible_water)
    if not 0.0 <= pct <= 100.0:  # also rejects NaN
        raise ValueError(f"min_percent_possible_water must lie in [0, 100], got {pct!r}")
    n = _window_layers(p_stack.shape[0], params)
    tested = t_today.astype(xp.int32)
    possible = (p_today & t_today).astype(xp.int32)
    if n:
        tested = tested + t_stack[:n].sum(axis=0, dtype=xp.int32)
        possible = possible + (p_stack[:n] & t_stack[:n]).sum(axis=0, dtype=xp.int32)
    # counts are small integers: both products are exact in float64
    return (tested > 0) & (possible.astype(xp.float64) * 100.0 >= pct * tested.astype(xp.float64))
