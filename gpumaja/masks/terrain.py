"""Terrain masks of the DTM processing: topographic (cast) shadow and hidden faces (maja-l2a.md §1.12),
and the "sun too low" / "tangent sun" flags of the slope correction (§3.7). MG2 bits 4-7.

MAJA (DTMProcessingImageFilter) starts from the point at a reference altitude above each pixel along
the sun (resp. viewing) direction, intersects the ray coming back down with the DTM, and flags the
pixel when that first intersection lies more than Distance_Threshold (240 m) from the pixel, on the
sun (resp. satellite) side. Equivalently, gpumaja marches from every pixel toward the sun (resp. the
satellite), all pixels at once: at horizontal distances s = k · resolution (k = 1, 2, ...; one DEM
pixel per step) it samples the DEM bilinearly and flags the pixel if, at some s >= distance_threshold_m,
the terrain is above the ray, i.e. DEM(s) > z0 + s / tan θ (θ the zenith angle). Terrain closer than
distance_threshold_m is ignored, as in MAJA (a face turned away from the sun but shorter than the
threshold is left to the cos i flags). The march stops when no ray can still meet the terrain
(s > relief / cot θ_max, relief = DEM max − min), at the image diagonal, or at `max_distance_m`.
Rays leaving the image footprint (beyond half a pixel past the outermost centres) meet nothing.
Unlike MAJA, which starts its rays at SOLHRef/VIEHRef (4000/3000 m), the ray has no top, so a summit
higher than that still casts its shadow.

Geometry: row 0 is north; azimuths are degrees clockwise from north toward the sun (resp. the
satellite); zenith angles in degrees, scalars or per-pixel arrays.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params


def _bilinear_sample(z, rr, cc, xp: ModuleType):
    """z at fractional (row, col) positions, edge-clamped; NaN outside the footprint [-0.5, n - 0.5]."""
    ny, nx = z.shape
    inside = (rr >= -0.5) & (rr <= ny - 0.5) & (cc >= -0.5) & (cc <= nx - 0.5)
    r0 = xp.floor(rr)
    c0 = xp.floor(cc)
    fr = rr - r0
    fc = cc - c0
    r0i = xp.clip(r0, 0, ny - 1).astype(xp.int64)
    r1i = xp.clip(r0 + 1, 0, ny - 1).astype(xp.int64)
    c0i = xp.clip(c0, 0, nx - 1).astype(xp.int64)
    c1i = xp.clip(c0 + 1, 0, nx - 1).astype(xp.int64)
    v = ((1 - fr) * ((1 - fc) * z[r0i, c0i] + fc * z[r0i, c1i])
         + fr * ((1 - fc) * z[r1i, c0i] + fc * z[r1i, c1i]))
    return xp.where(inside, v, xp.nan)


def occluded(
    altitude: Any,
    resolution_m: float,
    zenith_deg: Any,
    azimuth_deg: Any,
    distance_threshold_m: float,
    max_distance_m: float | None = None,
    xp: ModuleType | None = None,
):
    """Bool: the terrain hides the direction (zenith, azimuth) from the pixel (see the module docstring)."""
    xp = xp or array_module(altitude)
    z = xp.asarray(altitude, dtype=xp.float64)
    if z.ndim != 2:
        raise ValueError(f"terrain: altitude must be 2-D, got shape {z.shape}")
    res = float(resolution_m)
    if not res > 0:
        raise ValueError(f"terrain: resolution must be positive, got {resolution_m!r}")
    ny, nx = z.shape
    out = xp.zeros((ny, nx), dtype=bool)
    if z.size == 0 or not bool(xp.isfinite(z).any()):
        return out
    relief = float(xp.nanmax(z)) - float(xp.nanmin(z))
    if not relief > 0:
        return out
    zen = xp.deg2rad(xp.broadcast_to(xp.asarray(zenith_deg, dtype=xp.float64), z.shape))
    az = xp.deg2rad(xp.broadcast_to(xp.asarray(azimuth_deg, dtype=xp.float64), z.shape))
    sin_z = xp.sin(zen)
    # Ray rise per metre of horizontal distance: cot θ (a vertical ray never meets the terrain).
    rise = xp.where(sin_z > 0, xp.cos(zen) / xp.where(sin_z > 0, sin_z, 1.0), xp.inf)
    min_rise = float(rise.min())
    s_max = math.hypot(ny, nx) * res
    if min_rise > 0:
        s_max = min(s_max, relief / min_rise)
    if max_distance_m is not None:
        s_max = min(s_max, float(max_distance_m))
    n_steps = math.floor(s_max / res)
    rows = xp.arange(ny, dtype=xp.float64)[:, None]
    cols = xp.arange(nx, dtype=xp.float64)[None, :]
    drow = -xp.cos(az)  # north = up = decreasing row
    dcol = xp.sin(az)
    k0 = max(1, math.ceil(float(distance_threshold_m) / res))
    for k in range(k0, n_steps + 1):
        s = k * res
        terrain = _bilinear_sample(z, rows + k * drow, cols + k * dcol, xp)
        out |= terrain > z + s * rise
    return out & xp.isfinite(z)


def terrain_flags(
    altitude: Any,
    resolution_m: float,
    sun_zenith: Any,
    sun_azimuth: Any,
    view_zenith: Any,
    view_azimuth: Any,
    params: L2Params,
    xp: ModuleType | None = None,
    edge: Any | None = None,
    max_distance_m: float | None = None,
):
    """(topo_shadow, hidden) bool masks (MG2 bits 4/5, §1.12) on the DTM's grid; False on `edge`."""
    xp = xp or array_module(altitude)
    shadow = occluded(altitude, resolution_m, sun_zenith, sun_azimuth, params.distance_threshold_m,
                      max_distance_m, xp)
    hidden = occluded(altitude, resolution_m, view_zenith, view_azimuth, params.distance_threshold_m,
                      max_distance_m, xp)
    if edge is not None:
        keep = ~xp.asarray(edge).astype(bool, copy=False)
        shadow &= keep
        hidden &= keep
    return shadow, hidden


def sun_incidence_flags(cos_i: Any, cos_sun_zenith: Any, params: L2Params, xp: ModuleType | None = None):
    """(sun_too_low, tangent_sun) of the slope correction (§3.7, MG2 bits 6 and 7).

    sun_too_low: cos i < slope_min_cos_i (where FRE clamps cos i); tangent_sun: cos i / cos θs <
    min_cos_ratio.
    """
    xp = xp or array_module(cos_i)
    ci = xp.asarray(cos_i, dtype=xp.float32)
    cs = xp.asarray(cos_sun_zenith, dtype=xp.float32)
    too_low = ci < params.slope_min_cos_i
    tangent = ci < params.min_cos_ratio * cs
    return too_low, xp.broadcast_to(tangent, ci.shape).copy()
