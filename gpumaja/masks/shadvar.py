"""Shadows of clouds outside the image ("shadvar", CLM bit 6), NOMINAL mode (maja-l2a.md §1.10).

A cloud beyond the tile border can shade pixels near the border on the sun side. MAJA
(`vnsAppCloudShadVar`, `vnsOutsideCloudsShadowMaskGenerator`, `cloud_mask_computation.py`):

1. `outside_cloud_zone`: the pixels whose sun-ward ray, up to `max_cloud_altitude`, leaves the image
   footprint: only there can an outside cloud cast a shadow.
2. `shadvar_mask`: in that zone, outside the in-image shadows (§1.9), the pixels darker than the
   composite by more than a threshold, thr = min(quantile_{shad_var_percentile}(darkening),
   shad_var_darkening_max), darkening = TOCR / RCR in the shadow band (as §1.9); the candidates are
   labelled, a label is dropped when more than shad_var_composite_label_ratio % of its pixels were
   shadow in the previous cloud mask, and the remaining pixels that correlate with the history (the
   §1.3 test on the shadow band, `gpumaja.masks.cloud_mt.correlated_with_history`) are removed.

The orchestrator runs shadvar only when the in-image shadow mask (§1.9) has at least one pixel (the
check of MAJA's `cloud_mask_computation.py`): that check is the caller's, not done here.

Choices of ours, documented here:
- The zone is per pixel: the horizontal displacement (max_cloud_altitude − altitude) · tan θs (metres,
  0 where the ground is above max_cloud_altitude; NaN altitude counts as 0 m) is laid from the pixel
  centre toward the sun azimuth (clockwise from north, rows growing southward); the pixel is in the
  zone when that end point lies outside [0, cy] × [0, cx] (pixel-edge coordinates). MAJA translates
  the whole edge mask by one displacement computed at the image centre (viewing parallax included);
  the viewing parallax is left out here.
- The quantile is the exact order statistic with linear interpolation between neighbours (NumPy's
  default "linear" rule) rather than MAJA's 1000-bin histogram.
- Labels are 4-connected (MAJA's ITK default), as in `gpumaja.masks.cloud_mt`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module
from gpumaja.masks.cloud_mt import correlated_with_history, label_components
from gpumaja.model.params import L2Params


def outside_cloud_zone(shape: tuple[int, int], resolution_m: float, altitude: Any, sun_zenith_deg: Any,
                       sun_azimuth_deg: Any, params: L2Params, xp: ModuleType = np) -> Any:
    """(cy, cx) bool: pixels that a cloud outside the image, at most `max_cloud_altitude` high, can shade.

    altitude (m), sun_zenith_deg and sun_azimuth_deg (degrees, azimuth clockwise from north) are
    scalars or (cy, cx) arrays. The sun-ward horizontal displacement of a cloud at max_cloud_altitude
    above the pixel, L = max(max_cloud_altitude − altitude, 0) · tan θs / resolution_m coarse pixels,
    is laid from the pixel centre (j + 0.5, i + 0.5) along (−cos φs, sin φs) (rows grow southward);
    the pixel is in the zone when the end point falls outside the footprint [0, cy] × [0, cx].
    """
    cy, cx = (int(s) for s in shape)
    if resolution_m <= 0:
        raise ValueError(f"outside_cloud_zone: resolution_m must be > 0, got {resolution_m!r}")
    alt = xp.asarray(altitude, dtype=xp.float64)
    alt = xp.where(xp.isnan(alt), 0.0, alt)
    height = xp.maximum(params.max_cloud_altitude - alt, 0.0)
    sz = xp.asarray(sun_zenith_deg, dtype=xp.float64) * (math.pi / 180.0)
    sa = xp.asarray(sun_azimuth_deg, dtype=xp.float64) * (math.pi / 180.0)
    length = height * xp.tan(sz) / float(resolution_m)
    rows = xp.arange(cy, dtype=xp.float64)[:, None] + 0.5
    cols = xp.arange(cx, dtype=xp.float64)[None, :] + 0.5
    y_end = rows - xp.cos(sa) * length
    x_end = cols + xp.sin(sa) * length
    zone = (y_end < 0.0) | (y_end > cy) | (x_end < 0.0) | (x_end > cx)
    return xp.broadcast_to(zone, (cy, cx)).copy()


def linear_quantile(values: Any, q: float, xp: ModuleType) -> float:
    """The q-quantile (0 <= q <= 1) of a 1-D array, linear between order statistics (NaN if empty).

    Computed from the two neighbouring sorted values on the host, so NumPy and CuPy agree exactly.
    """
    n = int(values.size)
    if n == 0:
        return float("nan")
    s = xp.sort(values.astype(xp.float64))
    pos = q * (n - 1)
    k = min(math.floor(pos), n - 1)
    lo = float(s[k])
    hi = float(s[min(k + 1, n - 1)])
    frac = pos - k
    return lo + frac * (hi - lo)


def shadvar_mask(darkening: Any, zone: Any, in_image_shadow: Any, previous_cld_shadow: Any,
                 current_shadow_band: Any, edge: Any, composite_ref: Any, sto: Any, sto_days: Sequence[int],
                 day: int, params: L2Params, backend: Backend | None = None) -> Any:
    """(cy, cx) bool shadvar mask (§1.10, CLM bit 6, undilated).

    darkening: TOCR / composite RCR in the shadow band, NaN where not computable (cloud, edge,
    composite water or nodata; §1.9 step 1); zone: `outside_cloud_zone`; in_image_shadow: the §1.9
    shadow mask; previous_cld_shadow: the pixels that were shadow (or shadvar) in the previous
    date's cloud mask (the composite CLD); current_shadow_band: this date's TOCR in the shadow band;
    edge: this date's edge; composite_ref: the composite RCR in the shadow band; sto / sto_days: the
    composite STO stack (it holds the correlation band, `correl_band`, which equals `shadow_band` by
    default, as in MAJA).

    thr = min(quantile_{shad_var_percentile %}(darkening over zone, valid, not in-image shadow),
    shad_var_darkening_max); candidates darker than thr are labelled (4-connected); a label whose
    previous-shadow fraction exceeds shad_var_composite_label_ratio % is dropped; the remaining pixels
    that correlate with the history (§1.3) are removed. Call only when in_image_shadow has a pixel.
    """
    xp = backend.xp if backend is not None else array_module(darkening)
    dark = xp.asarray(darkening, dtype=xp.float32)
    shape = dark.shape
    masks = {}
    for name, m in (("zone", zone), ("in_image_shadow", in_image_shadow),
                    ("previous_cld_shadow", previous_cld_shadow), ("edge", edge)):
        a = xp.asarray(m).astype(bool, copy=False)
        if a.shape != shape:
            raise ValueError(f"shadvar_mask: {name} has shape {a.shape}, darkening has {shape}")
        masks[name] = a
    valid = masks["zone"] & ~masks["in_image_shadow"] & ~masks["edge"] & ~xp.isnan(dark)
    if not bool(valid.any()):
        return xp.zeros(shape, dtype=bool)
    q = linear_quantile(dark[valid], params.shad_var_percentile / 100.0, xp)
    thr = min(q, params.shad_var_darkening_max)
    cand = valid & (dark.astype(xp.float64) < thr)
    labels, n = label_components(cand, xp)
    if n == 0:
        return cand
    size = xp.bincount(labels.ravel(), minlength=n + 1).astype(xp.float64)
    n_prev = xp.bincount(labels[cand & masks["previous_cld_shadow"]].ravel(), minlength=n + 1).astype(xp.float64)
    drop = n_prev > (params.shad_var_composite_label_ratio / 100.0) * size
    drop[0] = False
    kept = cand & ~drop[labels]
    if not bool(kept.any()):
        return kept
    corr = correlated_with_history(kept, current_shadow_band, masks["edge"], composite_ref, sto, sto_days, day,
                                   params, backend)
    return kept & ~corr
