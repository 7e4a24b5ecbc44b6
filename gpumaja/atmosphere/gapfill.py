"""Gap filling by the mean of valid neighbours in a growing square window (maja-l2a.md §3.4, §3.5).

MAJA fills the holes of its water-vapour map (§3.4, `Water_Vapor_Init/Max_Window_Radius` = 2 / 16
coarse px) and of its AOT grid (§3.5 post-processing, `Init/Max_Window_Radius` = 2 / 16 AOT-grid px)
the same way: a hole takes the mean of the valid values in a (2r+1)x(2r+1) window centred on it,
with r starting at the initial radius and growing until the window holds a valid value or r passes
the maximum radius.

Growth rule (our choice; the MAJA sources read do not show it): r doubles, capped at the maximum,
so the radii tried are 2, 4, 8, 16 for the defaults and the maximum is always tried last. An initial
radius of 0 grows to 1. Every hole is filled from the *original* valid values only (filled values
never feed later, wider windows).

Window sums are box filters (`scipy.ndimage.uniform_filter` or `cupyx.scipy.ndimage.uniform_filter`,
mode "constant" with 0 outside the image, float64) on value*valid and on valid, so the function runs
unchanged on NumPy or CuPy arrays.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.errors import InputError


def ndimage_module(xp: ModuleType) -> ModuleType:
    """scipy.ndimage for NumPy, cupyx.scipy.ndimage for CuPy."""
    if xp.__name__ == "cupy":
        import cupyx.scipy.ndimage as ndi

        return ndi
    import scipy.ndimage as ndi

    return ndi


def window_radii(init_radius: int, max_radius: int, what: str = "gap filling") -> list[int]:
    """Radii tried by `gap_fill_mean`: init, then doubling, capped at (and ending with) max."""
    r0, rmax = int(init_radius), int(max_radius)
    if r0 != init_radius or rmax != max_radius or r0 < 0 or rmax < r0:
        raise InputError(
            f"{what}: window radii must be integers with 0 <= init <= max, got init={init_radius!r}, "
            f"max={max_radius!r}"
        )
    radii = [r0]
    while radii[-1] < rmax:
        radii.append(min(rmax, max(2 * radii[-1], radii[-1] + 1)))
    return radii


def gap_fill_mean(
    values: Any, valid: Any, init_radius: int, max_radius: int, xp: ModuleType = np, what: str = "gap filling"
) -> tuple[Any, Any]:
    """Fill the pixels where `valid` is False with the mean of valid `values` in a growing window.

    values, valid: (ny, nx) arrays (NumPy or CuPy, same module as `xp`). Returns (filled float64,
    found bool): `filled` equals `values` where valid, the window mean where a hole found valid
    neighbours at some radius <= max_radius, and NaN elsewhere; `found` is True where `filled` is
    defined (valid pixels included).
    """
    values = xp.asarray(values, dtype=xp.float64)
    valid = xp.asarray(valid, dtype=bool)
    if values.ndim != 2 or values.shape != valid.shape:
        raise InputError(f"{what}: values {values.shape} and valid {valid.shape} must be the same 2-D shape")
    ndi = ndimage_module(xp)
    weight = valid.astype(xp.float64)
    weighted = xp.where(valid, values, 0.0)
    filled = xp.where(valid, values, xp.nan)
    found = valid.copy()
    for r in window_radii(init_radius, max_radius, what):
        holes = ~found
        if not bool(holes.any()):
            break
        size = 2 * r + 1
        s = ndi.uniform_filter(weighted, size=size, mode="constant", cval=0.0)
        c = ndi.uniform_filter(weight, size=size, mode="constant", cval=0.0)
        # c is the valid fraction of the window: at least one valid pixel <=> c * size^2 >= 1
        hit = holes & (c * float(size * size) > 0.5)
        filled = xp.where(hit, s / xp.where(hit, c, 1.0), filled)
        found = found | hit
    return filled, found
