"""Cloud shadows by geometric projection (maja-l2a.md §1.9): geometry by hand, threshold, the three
label-selection passes, end to end on a synthetic scene, and the CUDA kernel against its NumPy twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.backend import CPU
from gpumaja.errors import InputError
from gpumaja.masks.morphology import dilate
from gpumaja.masks.shadow import (
    SHADOW_RAYS_PER_CHUNK,
    _max_steps,
    _ray_fields,
    candidate_heights,
    cloud_labels,
    cloud_shadows,
    darkening,
    darkening_threshold,
    histogram_quantile,
    project_shadow_zones,
    select_shadows,
    shadow_zone_pairs,
)
from gpumaja.model.params import L2Params

PARAMS = L2Params()


def _one_altitude(h: float) -> L2Params:
    return PARAMS.replace(delta_h_min=h, delta_h_max=h, delta_h_step=250.0)


def _zones(labels, dem, sz, sa, vz, va, res, params, backend=CPU):
    return project_shadow_zones(labels, dem, sz, sa, vz, va, res, params, backend)


def _pairs(zone):
    """(label, flat pixel) pairs of a zone image whose zones do not overlap."""
    pix = np.flatnonzero(zone.ravel() > 0)
    return zone.ravel()[pix].astype(np.int32), pix


def _single(shape, pos, label=5):
    lab = np.zeros(shape, dtype=np.int32)
    lab[pos] = label
    return lab


def _expected_pixel(pos, dh, sz, sa, vz, va, res):
    """Landing pixel on flat ground, by hand: nadir toward the satellite by dh·tan(vz), then away from the
    sun by dh·tan(sz); north = -row, east = +col."""
    r = pos[0] + dh * math.tan(math.radians(vz)) * -math.cos(math.radians(va)) / res
    c = pos[1] + dh * math.tan(math.radians(vz)) * math.sin(math.radians(va)) / res
    r += dh * math.tan(math.radians(sz)) * math.cos(math.radians(sa)) / res
    c -= dh * math.tan(math.radians(sz)) * math.sin(math.radians(sa)) / res
    return math.floor(r + 0.5), math.floor(c + 0.5)


# --- geometry -----------------------------------------------------------------------------------------


def test_candidate_heights_default_33():
    h = candidate_heights(PARAMS)
    assert h.size == 33 and h[0] == 0.0 and h[-1] == 8000.0 and np.all(np.diff(h) == 250.0)


def test_sun_in_the_south_shadow_lands_north():
    # sun zenith 45, azimuth 180: a cloud 2400 m above flat ground at 240 m/px -> 10 px north
    lab = _single((40, 40), (30, 20))
    z = _zones(lab, np.zeros((40, 40)), 45.0, 180.0, 0.0, 0.0, 240.0, _one_altitude(2400.0))
    assert list(zip(*np.nonzero(z))) == [(20, 20)]
    assert z[20, 20] == 5


def test_sun_in_the_east_shadow_lands_west():
    lab = _single((40, 40), (20, 30))
    z = _zones(lab, np.zeros((40, 40)), 45.0, 90.0, 0.0, 0.0, 240.0, _one_altitude(2400.0))
    assert list(zip(*np.nonzero(z))) == [(20, 20)]


@pytest.mark.parametrize(("sz", "sa"), [(30.0, 135.0), (60.0, 200.0), (20.0, 330.0), (50.0, 10.0)])
def test_flat_ground_any_sun(sz, sa):
    dem = np.full((80, 80), 150.0)
    pos = (40, 40)
    z = _zones(_single((80, 80), pos), dem, sz, sa, 0.0, 0.0, 240.0, _one_altitude(3000.0))
    assert list(zip(*np.nonzero(z))) == [_expected_pixel(pos, 2850.0, sz, sa, 0.0, 0.0, 240.0)]


@pytest.mark.parametrize(("vz", "va"), [(16.7, 90.0), (10.0, 0.0), (8.0, 250.0)])
def test_view_parallax(vz, va):
    # tan(16.7°) * 2400 / 240 ~ 3.0 px toward a satellite in the east, then 10 px north (sun south)
    pos = (30, 20)
    z = _zones(_single((40, 40), pos), np.zeros((40, 40)), 45.0, 180.0, vz, va, 240.0, _one_altitude(2400.0))
    expect = _expected_pixel(pos, 2400.0, 45.0, 180.0, vz, va, 240.0)
    assert list(zip(*np.nonzero(z))) == [expect]
    if va == 90.0:
        assert expect == (20, 23)


def test_scalar_and_array_angles_agree():
    rng = np.random.default_rng(3)
    lab = (rng.random((30, 30)) < 0.05).astype(np.int32) * 2
    dem = np.full((30, 30), 100.0)
    a = _zones(lab, dem, 35.0, 160.0, 6.0, 100.0, 240.0, PARAMS)
    b = _zones(lab, dem, *(np.full((30, 30), v) for v in (35.0, 160.0, 6.0, 100.0)), 240.0, PARAMS)
    np.testing.assert_array_equal(a, b)


def test_ridge_stops_the_ray_on_the_slope():
    # terrain rising northward from row 30 by g = 100 m per pixel; sun south at 45°, cloud at 5000 m at
    # row 30. The ray is at h - s·res/tan(sz) after s px, the slope at g·s: they meet at
    # s* = h / (g + res / tan(sz)) = 5000 / 340 = 14.7 px (flat ground: 5000/240 = 20.8 px).
    ny, nx, r0, g, h, res = 40, 10, 30, 100.0, 5000.0, 240.0
    dem = np.repeat((np.maximum(0, r0 - np.arange(ny)) * g)[:, None], nx, axis=1).astype(float)
    lab = _single((ny, nx), (r0, 5))
    z = _zones(lab, dem, 45.0, 180.0, 0.0, 0.0, res, _one_altitude(h))
    s_star = h / (g + res / math.tan(math.radians(45.0)))
    expect = math.floor(r0 - s_star + 0.5)
    assert expect == 15
    assert list(zip(*np.nonzero(z))) == [(expect, 5)]
    flat = _zones(lab, np.zeros((ny, nx)), 45.0, 180.0, 0.0, 0.0, res, _one_altitude(h))
    assert list(zip(*np.nonzero(flat))) == [(math.floor(r0 - h / res + 0.5), 5)]  # 9: farther from the cloud


def test_cloud_below_ground_is_put_1m_above_it():
    # DTM 3000 m, candidate altitude 1000 m: dh = max(1000 - 3000, 1) = 1 m -> the shadow is under the cloud
    lab = _single((20, 20), (10, 10))
    z = _zones(lab, np.full((20, 20), 3000.0), 45.0, 180.0, 0.0, 0.0, 240.0, _one_altitude(1000.0))
    assert list(zip(*np.nonzero(z))) == [(10, 10)]


def test_union_over_altitudes_is_a_streak():
    # res 250 m = delta_h_step, sun 45° south: altitude k·250 m lands k px north; 0..8000 m -> 33 px
    # (the 0 m altitude, raised to 1 m, lands on the cloud pixel itself)
    lab = _single((45, 20), (40, 10), label=3)
    z = _zones(lab, np.zeros((45, 20)), 45.0, 180.0, 0.0, 0.0, 250.0, PARAMS)
    length = round(PARAMS.delta_h_max * math.tan(math.radians(45.0)) / 250.0)
    expect = np.zeros((45, 20), dtype=np.int32)
    expect[40 - length: 41, 10] = 3
    np.testing.assert_array_equal(z, expect)
    assert length == 32 and int((z > 0).sum()) == 33


@pytest.mark.parametrize(("a", "b"), [(7, 3), (3, 7)])
def test_overlapping_zones_image_and_pairs(a, b):
    # altitudes 2400 and 4800 m, sun south at 45°: row 30 lands on rows 20 and 10, row 40 on 30 and 20
    params = PARAMS.replace(delta_h_min=2400.0, delta_h_max=4800.0, delta_h_step=2400.0)
    lab = np.zeros((45, 10), dtype=np.int32)
    lab[30, 4] = a
    lab[40, 4] = b
    z = _zones(lab, np.zeros((45, 10)), 45.0, 180.0, 0.0, 0.0, 240.0, params)
    assert z[20, 4] == max(a, b)
    assert z[10, 4] == a and z[30, 4] == b
    assert int((z > 0).sum()) == 3
    # the pairs keep each label's own zone: (20, 4) belongs to both
    lab, pix = shadow_zone_pairs(lab, np.zeros((45, 10)), 45.0, 180.0, 0.0, 0.0, 240.0, params, CPU)
    got = set(zip(lab.tolist(), pix.tolist()))
    assert got == {(a, 10 * 10 + 4), (a, 20 * 10 + 4), (b, 20 * 10 + 4), (b, 30 * 10 + 4)}


def test_shadow_outside_the_image_is_dropped():
    lab = _single((20, 20), (3, 10))
    z = _zones(lab, np.zeros((20, 20)), 45.0, 180.0, 0.0, 0.0, 240.0, _one_altitude(2400.0))
    assert not z.any()


def test_sun_at_zenith_shadow_under_the_nadir():
    lab = _single((20, 20), (10, 10))
    z = _zones(lab, np.zeros((20, 20)), 0.0, 180.0, 0.0, 0.0, 240.0, PARAMS)
    assert list(zip(*np.nonzero(z))) == [(10, 10)]


@settings(max_examples=25, deadline=None)
@given(sz=st.floats(5.0, 70.0), sa=st.floats(0.0, 359.9), ground=st.floats(-100.0, 1500.0))
def test_flat_streak_stays_on_the_anti_sun_ray(sz, sa, ground):
    # flat ground, nadir view: every landing pixel lies within half a pixel diagonal of the ray from the
    # cloud pixel away from the sun, no farther than (delta_h_max - ground) · tan(sz) / res
    n, res, pos = 121, 240.0, (60, 60)
    z = _zones(_single((n, n), pos), np.full((n, n), ground), sz, sa, 0.0, 0.0, res, PARAMS)
    rr, cc = np.nonzero(z)
    assert rr.size > 0
    ur, uc = math.cos(math.radians(sa)), -math.sin(math.radians(sa))
    along = (rr - pos[0]) * ur + (cc - pos[1]) * uc
    across = (rr - pos[0]) * uc - (cc - pos[1]) * ur
    assert np.all(np.abs(across) <= math.sqrt(0.5) + 1e-9)
    assert np.all(along >= -math.sqrt(0.5) - 1e-9)
    assert along.max() <= (PARAMS.delta_h_max - ground) * math.tan(math.radians(sz)) / res + math.sqrt(0.5) + 1e-9


def test_bad_inputs():
    lab = _single((10, 10), (5, 5))
    with pytest.raises(InputError):
        _zones(lab, np.zeros((10, 10)), 90.0, 180.0, 0.0, 0.0, 240.0, PARAMS)
    dem = np.zeros((10, 10))
    dem[0, 0] = np.nan
    with pytest.raises(InputError):
        _zones(lab, dem, 40.0, 180.0, 0.0, 0.0, 240.0, PARAMS)
    with pytest.raises(InputError):
        _zones(lab, np.zeros((9, 10)), 40.0, 180.0, 0.0, 0.0, 240.0, PARAMS)


def test_no_cloud_no_zone():
    z = _zones(np.zeros((10, 10), np.int32), np.zeros((10, 10)), 40.0, 180.0, 5.0, 90.0, 240.0, PARAMS)
    assert z.dtype == np.int32 and not z.any()


# --- darkening and threshold --------------------------------------------------------------------------


def test_darkening():
    t = np.array([[0.1, 0.2, 0.3, 0.4, np.nan]], dtype=np.float32)
    r = np.array([[0.2, 0.0, np.nan, 0.4, 0.2]], dtype=np.float32)
    v = np.array([[True, True, True, False, True]])
    d = darkening(t, r, v, np)
    assert d.dtype == np.float32
    assert d[0, 0] == np.float32(0.1) / np.float32(0.2)
    assert np.isnan(d[0, 1:]).all()


def test_histogram_quantile_uniform():
    v = np.linspace(0.0, 1.0, 10001)
    for p in (0.1, 0.3, 0.5, 0.9):
        assert abs(histogram_quantile(v, p, np) - p) <= 1.5e-3


def test_histogram_quantile_small_by_hand():
    # 4 values, bins of width 0.3/1000 over [0.1, 0.4]: the median's bin holds 0.2 and its cumulative
    # count reaches 2 = 0.5·4 exactly, so q is that bin's upper edge: 0.2 < q <= 0.2 + width
    q = histogram_quantile(np.array([0.4, 0.1, 0.3, 0.2]), 0.5, np)
    assert 0.2 < q <= 0.2 + 0.3 / 1000 + 1e-12
    assert histogram_quantile(np.array([np.nan, np.nan]), 0.5, np) is None
    assert histogram_quantile(np.full(7, 0.7), 0.2, np) == pytest.approx(0.7)


@pytest.mark.parametrize(("cc", "p"), [(0.0, 0.1), (0.02, 0.1), (0.15, 0.3), (0.3, 0.6)])
def test_darkening_threshold_percentile(cc, p):
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.permutation(np.linspace(0.0, 1.0, 20000)), [np.nan] * 50]).astype(np.float32)
    expect = min(float(np.quantile(d[np.isfinite(d)], p)), PARAMS.proj_shad_darkening_max)
    assert darkening_threshold(d, cc, PARAMS, np) == pytest.approx(expect, abs=2e-3)


def test_darkening_threshold_cap_and_empty():
    d = np.linspace(0.0, 1.0, 1001).astype(np.float32)
    assert darkening_threshold(d, 0.45, PARAMS, np) == PARAMS.proj_shad_darkening_max  # p = 0.9 -> 0.9 > 0.8
    assert darkening_threshold(np.full(10, np.nan, np.float32), 0.1, PARAMS, np) == PARAMS.proj_shad_darkening_max


# --- label selection (passes 1-3) ---------------------------------------------------------------------


def _toy_selection():
    """Labels (cloud pixels) in the top rows, their zones elsewhere; darkening set by hand."""
    shape = (20, 40)
    labels = np.zeros(shape, np.int32)
    zone = np.zeros(shape, np.int32)
    dark = np.full(shape, 1.0, np.float32)
    labels[0, 0:4] = 1  # small: ratio 1.0
    labels[1, 0:20] = 2  # big: ratio 0.5
    labels[2, 0:20] = 3
    labels[3, 0:6] = 4  # small
    labels[4, 0:20] = 5
    # label 1: 3 candidates (dark 0.3) + 2 bright zone pixels -> kept (3 <= 4)
    zone[6, 0:5] = 1
    dark[6, 0:3] = 0.3
    # label 2: 8 candidates -> kept (8 <= 10)
    zone[7, 0:8] = 2
    dark[7, 0:8] = 0.5
    # label 3: 30 candidates 0.10 .. 0.39 -> rejected (30 > 10) twice, pass 3 keeps the 10 darkest
    zone[8, 0:30] = 3
    dark[8, 0:30] = np.random.default_rng(1).permutation(0.10 + 0.01 * np.arange(30))
    # label 4: 8 candidates for 6 cloud px -> rejected (8 > 6, then 8 > 3), pass 3 keeps 0.5·6 = 3
    zone[9, 0:8] = 4
    dark[9, 0:8] = 0.2 + 0.05 * np.arange(8)
    # label 5: exactly ratio · n_cloud = 10 candidates -> kept
    zone[10, 0:10] = 5
    dark[10, 0:10] = 0.4
    return labels, zone, dark


def test_three_passes():
    labels, zone, dark = _toy_selection()
    s = select_shadows(labels, *_pairs(zone), dark, 0.8, PARAMS, np)
    expect = np.zeros_like(s)
    expect[6, 0:3] = True
    expect[7, 0:8] = True
    expect[8] = (zone[8] == 3) & (dark[8] < 0.195)  # the 10 darkest: 0.10 .. 0.19
    expect[9, 0:3] = True
    expect[10, 0:10] = True
    assert int(expect[8].sum()) == 10
    np.testing.assert_array_equal(s, expect)


def test_pass3_keeps_about_half_the_cloud():
    rng = np.random.default_rng(5)
    labels = np.zeros((30, 60), np.int32)
    labels[0:4, 0:25] = 1  # 100 cloud pixels
    zone = np.zeros_like(labels)
    zone[10:30, 0:60] = 1  # 1200 zone pixels, all darkened below thr
    dark = rng.uniform(0.05, 0.75, labels.shape).astype(np.float32)
    s = select_shadows(labels, *_pairs(zone), dark, 0.8, PARAMS, np)
    assert abs(int(s.sum()) - 50) <= 2
    kept = dark[s]
    assert kept.max() < np.sort(dark[zone > 0])[55]  # the darkest ones


def test_a_pixel_in_two_zones_counts_for_both_labels():
    """MAJA keeps one zone per label: a shared pixel is a candidate of both labels in pass 1."""
    labels = np.zeros((12, 12), np.int32)
    labels[0, 0:5] = 1  # 5 cloud px: ratio max (1.0) -> at most 5 candidates
    labels[1:3, 0:10] = 2  # 20 cloud px: ratio min (0.5) -> at most 10
    dark = np.full(labels.shape, 0.9, np.float32)  # not candidates (thr 0.8)
    dark[6, 0:4] = (0.1, 0.2, 0.3, 0.7)  # label 1's own zone
    dark[7, 0:2] = 0.3  # shared by both zones
    dark[8, 0:4] = 0.5  # label 2's own zone
    flat = lambda r, c0, c1: [r * 12 + c for c in range(c0, c1)]  # noqa: E731
    l1 = sorted(flat(6, 0, 4) + flat(7, 0, 2))
    l2 = sorted(flat(7, 0, 2) + flat(8, 0, 4))
    pair_label = np.array([1] * len(l1) + [2] * len(l2), np.int32)
    pair_pixel = np.array(l1 + l2, np.int64)
    s = select_shadows(labels, pair_label, pair_pixel, dark, 0.8, PARAMS, np)
    # pass 1: label 1 has 6 candidates > 5 -> rejected; label 2 has 6 <= 10 -> kept (rows 7 and 8).
    # pass 2: label 1 without the kept shared pixels has 4 > 0.5 * 5 -> rejected.
    # pass 3: label 1 keeps its candidates up to the 0.5 * 5 / 4 = 0.625 quantile of (0.1, 0.2, 0.3, 0.7):
    # 0.1, 0.2 and 0.3, not 0.7. (With one image where the larger label takes the shared pixels, label 1
    # would have had 4 <= 5 candidates and kept 0.7 too.)
    expect = np.zeros_like(s)
    expect[6, 0:3] = True
    expect[7, 0:2] = True
    expect[8, 0:4] = True
    np.testing.assert_array_equal(s, expect)


def test_select_shadows_refuses_bad_pairs():
    labels = np.zeros((4, 4), np.int32)
    labels[0, 0] = 1
    dark = np.zeros((4, 4), np.float32)
    with pytest.raises(InputError, match="pair"):
        select_shadows(labels, np.array([1, 1], np.int32), np.array([3], np.int64), dark, 0.8, PARAMS, np)
    with pytest.raises(InputError, match="outside"):
        select_shadows(labels, np.array([1], np.int32), np.array([16], np.int64), dark, 0.8, PARAMS, np)


# --- end to end ---------------------------------------------------------------------------------------

SUN_Z, SUN_A, VIEW_Z, VIEW_A, RES, GROUND = 30.0, 150.0, 5.0, 100.0, 240.0, 200.0


def _scene(cloud_alt: float, radius: int = 5, seed: int = 0):
    """Flat 60x60 scene: a round cloud at `cloud_alt`, its true shadow (reflectance halved) placed by the
    geometry by hand, and a darkened lake south-west of it (toward no shadow zone)."""
    ny = nx = 60
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:ny, :nx]
    cloud = (yy - 30) ** 2 + (xx - 38) ** 2 <= radius**2
    dr, dc = (v - 30 if i == 0 else v - 38
              for i, v in enumerate(_expected_pixel((30, 38), cloud_alt - GROUND, SUN_Z, SUN_A, VIEW_Z, VIEW_A, RES)))
    shadow = np.zeros_like(cloud)
    shadow[np.nonzero(cloud)[0] + dr, np.nonzero(cloud)[1] + dc] = True
    lake = np.zeros_like(cloud)
    lake[45:55, 3:13] = True
    rcr = (0.1 + 0.1 * rng.random((ny, nx))).astype(np.float32)
    tocr = rcr * (1.0 + 0.03 * rng.standard_normal((ny, nx))).astype(np.float32)
    tocr[shadow | lake] *= 0.5
    tocr[cloud] = 0.6
    return {
        "clouds": cloud,
        "clouds_dilated": dilate(cloud, 1),
        "tocr_shadow_band": tocr.astype(np.float32),
        "rcr_shadow_band": rcr,
        "edge": np.zeros_like(cloud),
        "composite_water": np.zeros_like(cloud),
        "altitude": np.full((ny, nx), GROUND),
        "sun_zenith": SUN_Z,
        "sun_azimuth": SUN_A,
        "view_zenith": np.full((ny, nx), VIEW_Z),
        "view_azimuth": VIEW_A,
        "resolution_m": RES,
    }, shadow & ~cloud, lake


def _f1(pred, truth):
    tp = int((pred & truth).sum())
    return 2 * tp / (int(pred.sum()) + int(truth.sum()))


@pytest.mark.parametrize("alt", [1500.0, 2000.0])
def test_end_to_end_shadow_recovered_and_lake_not_flagged(alt):
    scene, truth, lake = _scene(alt)
    s = cloud_shadows(**scene, params=PARAMS, backend=CPU)
    assert s.dtype == bool
    assert _f1(s, truth) > 0.8
    assert not (s & lake).any()
    assert not (s & scene["clouds"]).any()
    if alt == 1500.0:  # the visible shadow is <= 0.5 x the cloud: pass 1 keeps it whole
        assert truth.sum() <= 0.5 * scene["clouds"].sum()
        np.testing.assert_array_equal(s, truth)


def test_end_to_end_high_cloud_trimmed_to_half_the_cloud():
    # 6000 m: the shadow is clear of the cloud and as big as it (> 0.5 n_cloud), so passes 1/2 reject
    # it and pass 3 keeps its ~0.5 n_cloud darkest pixels, all of them true shadow (MAJA's behaviour)
    scene, truth, lake = _scene(6000.0)
    s = cloud_shadows(**scene, params=PARAMS, backend=CPU)
    n_cloud = int(scene["clouds"].sum())
    assert truth.sum() > 0.5 * n_cloud
    assert abs(int(s.sum()) - 0.5 * n_cloud) <= 3
    assert int((s & ~truth).sum()) == 0
    assert not (s & lake).any()


def test_no_cloud_no_shadow():
    scene, _, _ = _scene(2000.0)
    scene["clouds"] = np.zeros_like(scene["clouds"])
    scene["clouds_dilated"] = scene["clouds"]
    assert not cloud_shadows(**scene, params=PARAMS, backend=CPU).any()


def test_cloud_labels_8_connected_on_undilated():
    c = np.zeros((10, 10), bool)
    c[2, 2] = c[3, 3] = True  # diagonal neighbours: one label
    c[2, 6] = True  # joined to the first only through the dilation
    c[8, 8] = True
    d = dilate(c, 1)
    lab = cloud_labels(c, d, np)
    assert lab.dtype == np.int32
    assert lab[2, 2] == lab[3, 3] == lab[2, 6] and lab[8, 8] not in (0, lab[2, 2])
    assert (lab > 0).sum() == 4
    lab0 = cloud_labels(c, c, np)
    assert lab0[2, 6] != lab0[2, 2]


def _scalar_rays(labels, dem, sz, sa, vz, va, res, heights):
    """Per-ray scalar re-statement of kernels/shadow.cu (one loop iteration = one GPU thread)."""
    ny, nx = dem.shape
    zone = np.zeros((ny, nx), np.int64)

    def sample(r, c):
        r0, c0 = math.floor(r), math.floor(c)
        fr, fc = r - r0, c - c0
        i0, j0 = min(max(r0, 0), ny - 1), min(max(c0, 0), nx - 1)
        i1, j1 = min(max(r0 + 1, 0), ny - 1), min(max(c0 + 1, 0), nx - 1)
        return (1 - fr) * ((1 - fc) * dem[i0, j0] + fc * dem[i0, j1]) + fr * ((1 - fc) * dem[i1, j0] + fc * dem[i1, j1])

    for (pr, pc) in zip(*np.nonzero(labels)):
        t_v = math.tan(math.radians(vz[pr, pc]))
        vr = -t_v * math.cos(math.radians(va[pr, pc])) / res
        vc = t_v * math.sin(math.radians(va[pr, pc])) / res
        sr, sc = math.cos(math.radians(sa[pr, pc])), -math.sin(math.radians(sa[pr, pc]))
        drop = res / math.tan(math.radians(sz[pr, pc]))
        for h in heights:
            dh = max(h - dem[pr, pc], 1.0)
            zs = dem[pr, pc] + dh
            rn, cn = pr + dh * vr, pc + dh * vc
            prev = None
            for k in range(10_000):
                r, c = rn + k * sr, cn + k * sc
                if (r < -0.5 and sr <= 0) or (r > ny - 0.5 and sr >= 0) or (c < -0.5 and sc <= 0) or (
                        c > nx - 0.5 and sc >= 0):
                    break
                d = zs - k * drop - sample(r, c)
                if d <= 0:
                    if prev is None:
                        rl, cl = r, c
                    else:
                        t = prev[2] / (prev[2] - d)
                        rl, cl = prev[0] + t * sr, prev[1] + t * sc
                    i, j = math.floor(rl + 0.5), math.floor(cl + 0.5)
                    if 0 <= i < ny and 0 <= j < nx:
                        zone[i, j] = max(zone[i, j], labels[pr, pc])
                    break
                prev = (r, c, d)
    return zone


@pytest.mark.parametrize("seed", [0, 1])
def test_vectorised_twin_matches_scalar_rays(seed):
    labels, dem, sz, sa, vz, va = _random_case(seed, shape=(26, 30))
    params = PARAMS.replace(delta_h_step=1000.0)
    z = project_shadow_zones(labels, dem, sz, sa, vz, va, 240.0, params, CPU)
    expect = _scalar_rays(labels, dem, sz, sa, vz, va, 240.0, np.arange(0.0, 8000.0 + 1.0, 1000.0))
    assert z.any()
    np.testing.assert_array_equal(z, expect)


@pytest.mark.parametrize("seed", [0, 1])
def test_zone_pairs_are_each_labels_own_zone(seed):
    # overlapping zones: every label's zone, marched alone by the scalar reference, gives its pairs
    labels, dem, sz, sa, vz, va = _random_case(seed, shape=(26, 30))
    params = PARAMS.replace(delta_h_step=1000.0)
    heights = np.arange(0.0, 8000.0 + 1.0, 1000.0)
    lab, pix = shadow_zone_pairs(labels, dem, sz, sa, vz, va, 240.0, params, CPU)
    expect = set()
    for k in np.unique(labels[labels > 0]).tolist():
        own = _scalar_rays(np.where(labels == k, labels, 0), dem, sz, sa, vz, va, 240.0, heights)
        expect |= {(k, int(p)) for p in np.flatnonzero(own.ravel())}
    got = list(zip(lab.tolist(), pix.tolist()))
    assert got == sorted(got) and len(set(got)) == len(got)  # sorted by label then pixel, distinct
    assert set(got) == expect


# --- GPU ----------------------------------------------------------------------------------------------


def _random_case(seed: int, shape=(64, 72)):
    rng = np.random.default_rng(seed)
    dem = ndi.gaussian_filter(rng.standard_normal(shape), 6.0)
    dem = (dem - dem.min()) / (np.ptp(dem) or 1.0) * 2500.0
    blobs = ndi.gaussian_filter(rng.standard_normal(shape), 2.0) > 0.25
    labels, _ = ndi.label(blobs, structure=np.ones((3, 3)))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    sz = 20.0 + 50.0 * yy / shape[0]
    sa = 100.0 + 100.0 * xx / shape[1]
    vz = 11.0 * xx / shape[1]
    va = np.where(xx < shape[1] // 2, 100.0, 285.0)
    return labels.astype(np.int32), dem, sz, sa, vz, va


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gpu_projection_matches_numpy_random(seed):
    import cupy

    from gpumaja.backend import select_backend

    labels, dem, sz, sa, vz, va = _random_case(seed)
    z_np = project_shadow_zones(labels, dem, sz, sa, vz, va, 240.0, PARAMS, CPU)
    z_gpu = project_shadow_zones(cupy.asarray(labels), cupy.asarray(dem), *(cupy.asarray(a) for a in (sz, sa, vz, va)),
                                 240.0, PARAMS, select_backend("gpu"))
    assert isinstance(z_gpu, cupy.ndarray) and z_gpu.dtype == cupy.int32
    np.testing.assert_array_equal(z_gpu.get(), z_np)
    assert z_np.any()
    lab_np, pix_np = shadow_zone_pairs(labels, dem, sz, sa, vz, va, 240.0, PARAMS, CPU)
    lab_gpu, pix_gpu = shadow_zone_pairs(cupy.asarray(labels), dem, sz, sa, vz, va, 240.0, PARAMS,
                                         select_backend("gpu"))
    np.testing.assert_array_equal(lab_gpu.get(), lab_np)
    np.testing.assert_array_equal(pix_gpu.get(), pix_np)


@pytest.mark.gpu
def test_gpu_cloud_shadows_matches_numpy_realistic():
    import cupy

    from gpumaja.backend import select_backend

    gpu = select_backend("gpu")
    for alt in (2000.0, 6000.0):
        scene, _, _ = _scene(alt)
        s_np = cloud_shadows(**scene, params=PARAMS, backend=CPU)
        dev = {k: (cupy.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in scene.items()}
        s_gpu = cloud_shadows(**dev, params=PARAMS, backend=gpu)
        assert isinstance(s_gpu, cupy.ndarray)
        np.testing.assert_array_equal(s_gpu.get(), s_np)
    # a bigger, hilly case with many labels
    labels, dem, sz, sa, vz, va = _random_case(7, shape=(200, 220))
    z_np = project_shadow_zones(labels, dem, sz, sa, vz, va, 240.0, PARAMS, CPU)
    z_gpu = project_shadow_zones(cupy.asarray(labels), dem, sz, sa, vz, va, 240.0, PARAMS, gpu)
    np.testing.assert_array_equal(z_gpu.get(), z_np)


# --- chunks of rays -----------------------------------------------------------------------------------


def _chunk_runs(labels: np.ndarray, pixels_per_chunk: int) -> tuple[int, int]:
    """(number of chunks, number of labels whose cloud pixels fall in several chunks) when the cloud pixels
    are taken in raster order `pixels_per_chunk` at a time."""
    lab = labels.ravel()[np.flatnonzero(labels.ravel())]
    chunk = np.arange(lab.size) // pixels_per_chunk
    split = sum(np.unique(chunk[lab == k]).size > 1 for k in np.unique(lab).tolist())
    return int(chunk[-1]) + 1, int(split)


@pytest.mark.parametrize("seed", [0, 2])
@pytest.mark.parametrize(("rays_per_chunk", "pixels_per_chunk"), [(7, 1), (3 * 33 + 5, 3)])
def test_chunked_zone_pairs_equal_unchunked(seed, rays_per_chunk, pixels_per_chunk):
    labels, dem, sz, sa, vz, va = _random_case(seed)
    assert 33 * int((labels > 0).sum()) < SHADOW_RAYS_PER_CHUNK  # by default: one chunk
    n_chunks, n_split = _chunk_runs(labels, pixels_per_chunk)
    assert n_chunks >= 50 and n_split >= 3
    whole = shadow_zone_pairs(labels, dem, sz, sa, vz, va, 240.0, PARAMS, CPU)
    chunked = shadow_zone_pairs(labels, dem, sz, sa, vz, va, 240.0, PARAMS, CPU, rays_per_chunk=rays_per_chunk)
    assert np.unique(whole[0]).size >= 5
    for a, b in zip(whole, chunked):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_chunked_zone_pairs_are_each_labels_own_zone():
    # 9 altitudes, one cloud pixel per chunk: the pairs are those of the scalar reference, label by label
    labels, dem, sz, sa, vz, va = _random_case(1, shape=(26, 30))
    params = PARAMS.replace(delta_h_step=1000.0)
    heights = np.arange(0.0, 8000.0 + 1.0, 1000.0)
    n_chunks, n_split = _chunk_runs(labels, 1)
    assert n_chunks == int((labels > 0).sum()) >= 20 and n_split >= 2
    lab, pix = shadow_zone_pairs(labels, dem, sz, sa, vz, va, 240.0, params, CPU, rays_per_chunk=7)
    expect = set()
    for k in np.unique(labels[labels > 0]).tolist():
        own = _scalar_rays(np.where(labels == k, labels, 0), dem, sz, sa, vz, va, 240.0, heights)
        expect |= {(k, int(p)) for p in np.flatnonzero(own.ravel())}
    got = list(zip(lab.tolist(), pix.tolist()))
    assert got == sorted(set(got))
    assert set(got) == expect


def _ray_end(pr: int, pc: int, h: float, dem: np.ndarray, sz: float, sa: float, vz: float, va: float,
             res: float) -> tuple[int, int]:
    """Scalar march of one ray, without a step cap: (the step at which it lands or leaves the image, the
    flat landing pixel or -1)."""
    ny, nx = dem.shape

    def dtm(r: float, c: float) -> float:
        r0, c0 = math.floor(r), math.floor(c)
        fr, fc = r - r0, c - c0
        i0, j0 = min(max(r0, 0), ny - 1), min(max(c0, 0), nx - 1)
        i1, j1 = min(max(r0 + 1, 0), ny - 1), min(max(c0 + 1, 0), nx - 1)
        return (1 - fr) * ((1 - fc) * dem[i0, j0] + fc * dem[i0, j1]) + fr * ((1 - fc) * dem[i1, j0] + fc * dem[i1, j1])

    t_v = math.tan(math.radians(vz))
    vr, vc = -t_v * math.cos(math.radians(va)) / res, t_v * math.sin(math.radians(va)) / res
    sr, sc = math.cos(math.radians(sa)), -math.sin(math.radians(sa))
    drop = res / math.tan(math.radians(sz))
    dh = max(h - dem[pr, pc], 1.0)
    zs = dem[pr, pc] + dh
    rn, cn = pr + dh * vr, pc + dh * vc
    prev = None
    k = 0
    while True:
        r, c = rn + k * sr, cn + k * sc
        if (r < -0.5 and sr <= 0) or (r > ny - 0.5 and sr >= 0) or (c < -0.5 and sc <= 0) or (
                c > nx - 0.5 and sc >= 0):
            return k, -1
        d = zs - k * drop - dtm(r, c)
        if d <= 0:
            t = 0.0 if prev is None else prev[2] / (prev[2] - d)
            rl, cl = (r, c) if prev is None else (prev[0] + t * sr, prev[1] + t * sc)
            i, j = math.floor(rl + 0.5), math.floor(cl + 0.5)
            return k, (i * nx + j if 0 <= i < ny and 0 <= j < nx else -1)
        prev = (r, c, d)
        k += 1


def _wall_case():
    """30 x 30 DTM at -5000 m with a 9000 m wall on row 0 and column 0; sun and satellite both in the
    south-east (azimuth 135), sun 89° from the zenith, view 60°: the nadir of a cloud lies up to
    13000 m · tan 60° / 240 m = 93.8 px south-east of its pixel and the ray crosses back the whole image
    north-west, one pixel per step, descending 240 / tan 89° = 4.2 m per step, to land on the wall."""
    n = 30
    dem = np.full((n, n), -5000.0)
    dem[0, :] = 9000.0
    dem[:, 0] = 9000.0
    labels = np.zeros((n, n), np.int32)
    labels[29, 29] = 1
    labels[29, 20] = labels[28, 20] = labels[20, 29] = 2
    labels[25, 25] = labels[15, 15] = 3
    return labels, dem, 89.0, 135.0, 60.0, 135.0, 240.0


def test_chunk_march_cap_keeps_the_latest_landing():
    # a chunk of the corner pixel alone caps its march at ceil(13000 tan 60° / 240 + hypot(30, 30)) + 2 =
    # ceil(93.82 + 42.43) + 2 = 139 steps (the bound of _chunk_zone_keys' docstring); its 8000 m ray
    # lands on the wall at step 135 (scalar march without a cap), the last pair of label 1
    labels, dem, sz, sa, vz, va, res = _wall_case()
    params = _one_altitude(8000.0)
    corner = _ray_fields(np.array([29]), np.array([29]), dem.shape, sz, sa, vz, va, res)
    cap = _max_steps(corner, candidate_heights(params), np.array([-5000.0]), dem.shape)
    assert cap == math.ceil(13000.0 * math.tan(math.radians(60.0)) / 240.0 + math.hypot(30, 30)) + 2 == 139
    ends = {(int(r), int(c)): _ray_end(int(r), int(c), 8000.0, dem, sz, sa, vz, va, res)
            for r, c in zip(*np.nonzero(labels))}
    assert 135 == ends[(29, 29)][0] <= cap and ends[(29, 29)][1] >= 0
    expect = {(int(labels[rc]), p) for rc, (_, p) in ends.items() if p >= 0}
    for rays in (1, 2, None):  # one or two cloud pixels per chunk, or one chunk
        lab, pix = shadow_zone_pairs(labels, dem, sz, sa, vz, va, res, params, CPU, rays_per_chunk=rays)
        assert set(zip(lab.tolist(), pix.tolist())) == expect
    # all 33 altitudes: every ray lands, at step <= 135, and one-pixel chunks give the one-chunk pairs
    steps = [_ray_end(r, c, h, dem, sz, sa, vz, va, res)[0] for r, c in ends for h in candidate_heights(PARAMS)]
    assert max(steps) == 135
    whole = shadow_zone_pairs(labels, dem, sz, sa, vz, va, res, PARAMS, CPU)
    chunked = shadow_zone_pairs(labels, dem, sz, sa, vz, va, res, PARAMS, CPU, rays_per_chunk=1)
    for a, b in zip(whole, chunked):
        np.testing.assert_array_equal(a, b)


def test_rays_per_chunk_must_be_positive():
    labels, dem, sz, sa, vz, va, res = _wall_case()
    with pytest.raises(InputError, match="rays_per_chunk"):
        shadow_zone_pairs(labels, dem, sz, sa, vz, va, res, PARAMS, CPU, rays_per_chunk=0)


@pytest.mark.gpu
@pytest.mark.parametrize("rays_per_chunk", [7, 3 * 33 + 5, None])
def test_gpu_chunked_zone_pairs_equal_numpy_unchunked(rays_per_chunk):
    import cupy

    from gpumaja.backend import select_backend

    gpu = select_backend("gpu")
    cases = [(*_random_case(seed), 240.0) for seed in (0, 2)] + [_wall_case()]
    for labels, dem, sz, sa, vz, va, res in cases:
        lab_np, pix_np = shadow_zone_pairs(labels, dem, sz, sa, vz, va, res, PARAMS, CPU)
        dev = [cupy.asarray(a) if isinstance(a, np.ndarray) else a for a in (labels, dem, sz, sa, vz, va)]
        for lab_in in (dev[0], labels):  # device labels, and host labels with the GPU backend
            lab_g, pix_g = shadow_zone_pairs(lab_in, *dev[1:], res, PARAMS, gpu, rays_per_chunk=rays_per_chunk)
            assert isinstance(lab_g, cupy.ndarray) and isinstance(pix_g, cupy.ndarray)
            assert lab_g.dtype == cupy.int32 and pix_g.dtype == cupy.int64
            np.testing.assert_array_equal(lab_g.get(), lab_np)
            np.testing.assert_array_equal(pix_g.get(), pix_np)
