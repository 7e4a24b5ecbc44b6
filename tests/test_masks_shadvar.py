"""Shadows of clouds outside the image (maja-l2a.md §1.10): zone geometry by hand, the darkening
threshold, the previous-mask label rule, the correlation removal, and GPU == CPU (marked gpu)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage

from gpumaja.backend import CPU, Backend
from gpumaja.masks.shadvar import linear_quantile, outside_cloud_zone, shadvar_mask
from gpumaja.model.params import L2Params

P = L2Params()  # max_cloud_altitude 8000 m, percentile 30 %, darkening max 0.2, label ratio 80 %
RES = 240.0


def _zenith_for(length_px: float, height_m: float = P.max_cloud_altitude) -> float:
    """Sun zenith (deg) for which a cloud height_m above the ground is length_px coarse px away."""
    return math.degrees(math.atan(length_px * RES / height_m))


def test_zone_sun_south_east():
    # azimuth 135 deg (south-east), horizontal reach 2 sqrt(2) px -> 2 px south and 2 px east
    zone = outside_cloud_zone((10, 12), RES, 0.0, _zenith_for(2 * math.sqrt(2)), 135.0, P)
    expected = np.zeros((10, 12), bool)
    expected[8:, :] = True  # 2 southern rows
    expected[:, 10:] = True  # 2 eastern columns
    np.testing.assert_array_equal(zone, expected)


@pytest.mark.parametrize(("azimuth", "rows", "cols"), [
    (180.0, slice(7, 10), slice(None)),  # south: 3 bottom rows
    (0.0, slice(0, 3), slice(None)),  # north: 3 top rows
    (90.0, slice(None), slice(9, 12)),  # east: 3 right columns
    (270.0, slice(None), slice(0, 3)),  # west: 3 left columns
])
def test_zone_cardinal_directions(azimuth, rows, cols):
    zone = outside_cloud_zone((10, 12), RES, 0.0, _zenith_for(3.0), azimuth, P)
    expected = np.zeros((10, 12), bool)
    expected[rows, cols] = True
    np.testing.assert_array_equal(zone, expected)


def test_zone_width_shrinks_with_altitude_and_accepts_arrays():
    shape = (10, 12)
    sz = _zenith_for(4.0)  # 4 px at 0 m; at 4000 m the cloud is 4000 m above -> 2 px
    alt = np.zeros(shape)
    alt[5:, :] = 4000.0  # southern half high
    zone = outside_cloud_zone(shape, RES, alt, np.full(shape, sz), np.full(shape, 90.0), P)
    expected = np.zeros(shape, bool)
    expected[:5, 8:] = True  # low ground: 4 eastern columns
    expected[5:, 10:] = True  # high ground: 2 eastern columns
    np.testing.assert_array_equal(zone, expected)
    high = outside_cloud_zone(shape, RES, 9000.0, sz, 90.0, P)  # ground above the highest cloud
    assert not high.any()
    assert not outside_cloud_zone(shape, RES, 0.0, 0.0, 90.0, P).any()  # sun at zenith


def test_linear_quantile():
    v = np.arange(11, dtype=np.float32)  # 0..10
    assert linear_quantile(v, 0.3, np) == pytest.approx(3.0)
    assert linear_quantile(v, 0.35, np) == pytest.approx(3.5)
    assert linear_quantile(v, 1.0, np) == 10.0
    assert math.isnan(linear_quantile(np.zeros(0), 0.3, np))


def _no_history(shape):
    return {"current_shadow_band": np.full(shape, 0.05, np.float32), "edge": np.zeros(shape, bool),
            "composite_ref": None, "sto": None, "sto_days": (), "day": 100}


def test_threshold_is_quantile_capped_by_darkening_max():
    shape = (10, 10)
    dark = (0.005 + 0.01 * np.arange(100)).astype(np.float32).reshape(shape)  # 0.005 .. 0.995, no ties
    zone = np.ones(shape, bool)
    none = np.zeros(shape, bool)
    # quantile_30 = 0.005 + 0.297 = 0.302 > 0.2 -> thr 0.2: values 0.005 .. 0.195 (20 pixels)
    m = shadvar_mask(dark, zone, none, none, params=P, backend=CPU, **_no_history(shape))
    np.testing.assert_array_equal(m, np.arange(100).reshape(shape) < 20)
    # darkening max 0.5 -> thr = quantile 0.302: 0.005 .. 0.295 (30 pixels)
    m = shadvar_mask(dark, zone, none, none, params=P.replace(shad_var_darkening_max=0.5), backend=CPU,
                     **_no_history(shape))
    assert int(m.sum()) == 30 and m.ravel()[:30].all()
    # in-image shadows leave the statistics and the result: the 10 darkest pixels masked ->
    # quantile_30 of 0.105 .. 0.995 = 0.105 + 0.3 * 0.89 = 0.372 -> thr 0.2 still; 0.105 .. 0.195 remain
    shadow = np.zeros(shape, bool)
    shadow[0, :] = True
    m = shadvar_mask(dark, zone, shadow, none, params=P, backend=CPU, **_no_history(shape))
    expected = (np.arange(100).reshape(shape) < 20) & ~shadow
    np.testing.assert_array_equal(m, expected)
    # outside the zone nothing is detected, and NaN darkening never is
    zone2 = zone.copy()
    zone2[1, :] = False
    dark2 = dark.copy()
    dark2[0, 0] = np.nan
    m = shadvar_mask(dark2, zone2, none, none, params=P, backend=CPU, **_no_history(shape))
    assert not m[1].any() and not m[0, 0]


def _two_blob_scene():
    shape = (16, 20)
    dark = np.ones(shape, np.float32)
    zone = np.ones(shape, bool)
    dark[2:4, 2:7] = 0.1  # blob A: 10 pixels
    dark[10:12, 10:15] = 0.1  # blob B: 10 pixels
    prev = np.zeros(shape, bool)
    prev[2:4, 2:7] = True
    prev[3, 6] = False  # A: 9 / 10 = 90 % previous shadow > 80 % -> dropped
    prev[10:12, 10:15] = True
    prev[11, 13:15] = False  # B: 8 / 10 = 80 %, not > 80 % -> kept
    return shape, dark, zone, prev


def test_label_dropped_when_mostly_previous_shadow():
    shape, dark, zone, prev = _two_blob_scene()
    m = shadvar_mask(dark, zone, np.zeros(shape, bool), prev, params=P, backend=CPU, **_no_history(shape))
    expected = np.zeros(shape, bool)
    expected[10:12, 10:15] = True
    np.testing.assert_array_equal(m, expected)


def _texture(shape, seed):
    rng = np.random.default_rng(seed)
    t = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    return ((t - t.mean()) / t.std()).astype(np.float32)


def test_correlated_pixels_are_removed():
    shape, dark, zone, _ = _two_blob_scene()
    prev = np.zeros(shape, bool)
    comp = (0.08 + 0.02 * _texture(shape, 1)).astype(np.float32)
    current = (0.08 + 0.02 * _texture(shape, 2)).astype(np.float32)  # unrelated to the composite ...
    current[6:16, 6:20] = 0.3 * comp[6:16, 6:20]  # ... except around blob B: same texture, darker
    edge = np.zeros(shape, bool)
    m = shadvar_mask(dark, zone, np.zeros(shape, bool), prev, current, edge, comp, None, (), 100, P, CPU)
    expected = np.zeros(shape, bool)
    expected[2:4, 2:7] = True  # A: no correlation with the composite -> a shadow
    np.testing.assert_array_equal(m, expected)  # B correlates -> removed
    # the same through the STO stack (composite nodata), with a same-day layer that must be skipped
    sto = np.stack([current, comp])
    nan = np.full(shape, np.nan, np.float32)
    m2 = shadvar_mask(dark, zone, np.zeros(shape, bool), prev, current, edge, nan, sto, (100, 90), 100, P, CPU)
    np.testing.assert_array_equal(m2, expected)


def test_empty_zone_gives_empty_mask():
    shape = (8, 8)
    z = np.zeros(shape, bool)
    m = shadvar_mask(np.full(shape, 0.1, np.float32), z, z, z, params=P, backend=CPU, **_no_history(shape))
    assert m.dtype == bool and not m.any()
    with pytest.raises(ValueError, match="shape"):
        shadvar_mask(np.ones(shape, np.float32), np.ones((4, 4), bool), z, z, params=P, backend=CPU,
                     **_no_history(shape))


# --- GPU -------------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_gpu_zone_and_shadvar_match_cpu():
    import cupy

    gpu = Backend("gpu", cupy, "test GPU")
    shape = (48, 56)
    rng = np.random.default_rng(0)
    alt = rng.uniform(0, 2000, shape)
    sz = np.full(shape, 38.0)
    sa = np.full(shape, 150.0)
    zone_c = outside_cloud_zone(shape, RES, alt, sz, sa, P, np)
    zone_g = outside_cloud_zone(shape, RES, cupy.asarray(alt), cupy.asarray(sz), cupy.asarray(sa), P, cupy)
    np.testing.assert_array_equal(zone_g.get(), zone_c)
    assert zone_c.any()

    comp = (0.08 + 0.02 * _texture(shape, 3)).astype(np.float32)
    current = (0.08 + 0.02 * _texture(shape, 4)).astype(np.float32)
    current[30:, 30:] = 0.4 * comp[30:, 30:]
    dark = (current / comp).astype(np.float32)
    dark[rng.random(shape) < 0.05] = np.nan
    in_shadow = np.zeros(shape, bool)
    in_shadow[5:9, 5:9] = True
    prev = rng.random(shape) < 0.3
    edge = np.zeros(shape, bool)
    edge[:, :2] = True
    sto = np.stack([current, comp, np.full(shape, np.nan, np.float32)])
    params = P.replace(shad_var_darkening_max=0.9, shad_var_percentile=40.0)
    cpu = shadvar_mask(dark, zone_c, in_shadow, prev, current, edge, comp, sto, (7, 5), 7, params, CPU)
    g = [cupy.asarray(a) for a in (dark, zone_c, in_shadow, prev, current, edge, comp, sto)]
    res = shadvar_mask(*g[:7], g[7], (7, 5), 7, params, gpu)
    np.testing.assert_array_equal(res.get(), cpu)
