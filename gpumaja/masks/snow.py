"""Snow mask on the coarse grid and its correction against clouds (maja-l2a.md §1.6).

1. Each TOCR band used (green, red, SWIR1) gets the first-order slope correction
   ρ · cos θs / max(cos i, slope_min_cos_i), cos i being the solar incidence on the DTM slope (§3.7).
2. NDSI = (green − SWIR1) / (green + SWIR1); snow if NDSI > ndsi_threshold AND red >
   snow_red_reflectance_threshold AND SWIR1 < snow_swir1_reflectance_threshold, not edge and (when a
   water mask is given: nominal mode with Use_Water_Mask) not water.
3. A binary closing with a ball of radius se_snow_radius (gpumaja.masks.morphology), then edge and
   water pixels are cleared again (the closing may bridge across them; snow on nodata is meaningless).
4. Correction (`snow_mask_correction`): each 8-connected snow label is dilated by one pixel; if every
   pixel of its dilation ring is cloudy or edge, the label is removed from snow and added to the refl
   cloud mask ("snow" inside thick clouds).

Slope and aspect follow gpumaja.model.terrain: degrees, aspect = downslope direction clockwise from
north; azimuths are the direction toward the sun, clockwise from north.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from gpumaja.backend import array_module
from gpumaja.masks.morphology import closing, dilate, ndimage_for
from gpumaja.model.params import L2Params

# The dilation of a snow label in the correction: one pixel with the 3x3 ball = its 8-neighbourhood.
_RING_RADIUS = 1


def cos_incidence(
    slope: Any, aspect: Any, sun_zenith_deg: Any, sun_azimuth_deg: Any, xp: ModuleType | None = None
):
    """cos i = cos θs cos S + sin θs sin S cos(φs − A) (§3.7); slope S and aspect A in degrees.

    The sun angles may be scalars or arrays broadcastable to the slope's shape. Returns float32.
    """
    xp = xp or array_module(slope)
    s = xp.deg2rad(xp.asarray(slope, dtype=xp.float64))
    a = xp.deg2rad(xp.asarray(aspect, dtype=xp.float64))
    tz = xp.deg2rad(xp.asarray(sun_zenith_deg, dtype=xp.float64))
    ta = xp.deg2rad(xp.asarray(sun_azimuth_deg, dtype=xp.float64))
    cos_i = xp.cos(tz) * xp.cos(s) + xp.sin(tz) * xp.sin(s) * xp.cos(ta - a)
    return cos_i.astype(xp.float32)


def slope_factor(cos_sun_zenith: Any, cos_i: Any, params: L2Params, xp: ModuleType | None = None):
    """cos θs / max(cos i, slope_min_cos_i): the first-order slope correction of the snow test (§1.6)."""
    xp = xp or array_module(cos_i)
    ci = xp.asarray(cos_i, dtype=xp.float32)
    return xp.asarray(cos_sun_zenith, dtype=xp.float32) / xp.maximum(ci, xp.float32(params.slope_min_cos_i))


def snow_mask(
    tocr_green: Any,
    tocr_red: Any,
    tocr_swir1: Any,
    cos_sun_zenith: Any,
    cos_incidence: Any,
    edge: Any,
    water: Any | None,
    params: L2Params,
    xp: ModuleType | None = None,
):
    """Bool snow mask (§1.6) before the cloud correction; `water` None = not used (INIT mode)."""
    xp = xp or array_module(tocr_green)
    g, r, s = (xp.asarray(b, dtype=xp.float32) for b in (tocr_green, tocr_red, tocr_swir1))
    if not (g.shape == r.shape == s.shape) or g.ndim != 2:
        raise ValueError(f"snow_mask: green {g.shape}, red {r.shape}, swir1 {s.shape} must be equal 2-D shapes")
    k = slope_factor(cos_sun_zenith, cos_incidence, params, xp)
    g, r, s = g * k, r * k, s * k
    den = g + s
    nonzero = den != 0
    ndsi = xp.where(nonzero, (g - s) / xp.where(nonzero, den, xp.float32(1)), xp.float32(0))
    snow = (
        (ndsi > params.ndsi_threshold)
        & (r > params.snow_red_reflectance_threshold)
        & (s < params.snow_swir1_reflectance_threshold)
    )
    excluded = xp.asarray(edge).astype(bool, copy=False)
    if water is not None:
        excluded = excluded | xp.asarray(water).astype(bool, copy=False)
    snow &= ~excluded
    return closing(snow, params.se_snow_radius, xp) & ~excluded


def snow_mask_correction(snow: Any, cloud: Any, edge: Any, xp: ModuleType | None = None):
    """(snow, extra_cloud): move snow labels entirely surrounded by cloud or edge into the cloud mask (§1.6).

    Labels are 8-connected; the ring of a label is its one-pixel 8-neighbourhood dilation minus the
    label. Pixels outside the array count as edge. A label is moved when it has at least one ring
    pixel inside the array and none of its ring pixels is clear (neither cloud nor edge); a label
    with no ring inside the array (the whole image is snow) stays snow. `extra_cloud` holds the moved
    pixels, to be ORed into the refl mask by the caller.
    """
    xp = xp or array_module(snow)
    sn = xp.asarray(snow).astype(bool, copy=False)
    cl = xp.asarray(cloud).astype(bool, copy=False)
    ed = xp.asarray(edge).astype(bool, copy=False)
    if sn.ndim != 2 or cl.shape != sn.shape or ed.shape != sn.shape:
        raise ValueError(f"snow_mask_correction: snow {sn.shape}, cloud {cl.shape}, edge {ed.shape} "
                         "must be equal 2-D shapes")
    if not bool(sn.any()):
        return sn.copy(), xp.zeros_like(sn)
    labels, n = ndimage_for(xp).label(sn, structure=xp.ones((3, 3), dtype=bool))
    n = int(n)
    clear = ~sn & ~cl & ~ed
    # Snow pixels with a non-snow neighbour (their label has a ring in the image), and with a clear one.
    has_ring = dilate(~sn, _RING_RADIUS, xp) & sn
    sees_clear = dilate(clear, _RING_RADIUS, xp) & sn
    ring_count = xp.bincount(labels[has_ring].ravel(), minlength=n + 1)
    clear_count = xp.bincount(labels[sees_clear].ravel(), minlength=n + 1)
    move = (ring_count > 0) & (clear_count == 0)
    move[0] = False
    extra = move[labels] & sn
    return sn & ~extra, extra
