"""Multi-temporal cloud tests (maja-l2a.md §1.2-1.4): hand-computed cases, a realistic textured scene,
and the CUDA kernels against their NumPy twins (marked gpu)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.backend import CPU, Backend
from gpumaja.masks import cloud_mt
from gpumaja.masks.cloud_mt import (
    cloud_extension,
    correlated_with_history,
    multitemporal_clouds,
    refl_var_numpy,
    refl_var_test,
    window_correlation,
    window_correlation_numpy,
)
from gpumaja.model.params import L2Params

P = L2Params()
# Round thresholds for hand checks: thr(dt) = 0.02 (1 + dt/30), capped at 0.05.
PH = P.replace(min_threshold_var_blue=0.02, max_threshold_var_blue=0.05, cloud_forgetting_duration=30.0,
               k_nir_blue=1.2, k_red_blue=1.5, delta_threshold=0.005)


def _px(*values) -> np.ndarray:
    return np.array([values], dtype=np.float32)


# --- §1.2 refl_var -----------------------------------------------------------------------------------


def _refl_var_row(blue_d, red_d, nir_d, blue_c, red_c, nir_c, age, excluded=None, params=PH):
    n = len(blue_d)
    exc = np.zeros((1, n), bool) if excluded is None else np.array([excluded], bool)
    return refl_var_test(_px(*blue_d), _px(*red_d), _px(*nir_d), _px(*blue_c), _px(*red_c), _px(*nir_c),
                         np.array([age], dtype=np.int32), exc, params, CPU)


def test_refl_var_threshold_grows_with_age_and_is_capped():
    # Composite B=0.05 R=0.04 N=0.30; current red and NIR unchanged, blue + d -> dHOT = d,
    # rN = 0 < 1.2 rB (rB > 0), dR = 0 < 1.5 dB.
    bc, rc, nc = 0.05, 0.04, 0.30
    cases = [  # (dHOT, age, expected): thr = min(0.05, 0.02 (1 + age / 30))
        (0.030, 0, True),  # thr 0.02
        (0.030, 30, False),  # thr 0.04
        (0.045, 30, True),  # thr 0.04
        (0.045, 60, False),  # thr min(0.06, 0.05) = 0.05
        (0.055, 60, True),  # 0.055 < 0.06 but the cap 0.05 applies
        (0.055, 3000, True),  # still capped at 0.05
        (0.048, 3000, False),
    ]
    d = [c[0] for c in cases]
    var, ext = _refl_var_row([bc + x for x in d], [rc] * len(d), [nc] * len(d), [bc] * len(d), [rc] * len(d),
                             [nc] * len(d), [c[1] for c in cases])
    assert var[0].tolist() == [c[2] for c in cases]
    assert ext[0][var[0]].all()


def test_extension_candidate_between_thr_minus_delta_and_thr():
    bc, rc, nc = 0.05, 0.04, 0.30
    d = [0.025, 0.017, 0.014]  # age 0: thr 0.02, thr - delta 0.015
    var, ext = _refl_var_row([bc + x for x in d], [rc] * 3, [nc] * 3, [bc] * 3, [rc] * 3, [nc] * 3, [0, 0, 0])
    assert var[0].tolist() == [True, False, False]
    assert ext[0].tolist() == [True, True, False]


def test_ratio_conditions():
    # 0: the hand example of the docstring: dB 0.10, dR 0.08 < 0.15, rB 0.5, rN 0.05/0.65 < 0.6, dHOT 0.06.
    # 1: NIR rises (vegetation growth): rB = 0.03/0.13 = 0.231, rN = 0.3/0.9 = 0.333 > 1.2 rB = 0.277.
    # 2: red rises faster than 1.5 x blue: dB 0.20, dR 0.31 > 0.30, yet dHOT = 0.20 - 0.155 = 0.045 > thr.
    var, ext = _refl_var_row([0.15, 0.08, 0.25], [0.12, 0.04, 0.35], [0.35, 0.60, 0.30],
                             [0.05, 0.05, 0.05], [0.04, 0.04, 0.04], [0.30, 0.30, 0.30], [0, 0, 0])
    assert var[0].tolist() == [True, False, False]
    assert ext[0].tolist() == [True, False, False]


def test_shadow_like_pixel_is_not_a_refl_var_cloud():
    # A cloud shadow under a hazier sky (the case measured on the synthetic series, docs/l2a.md):
    # composite B 0.05, R 0.08, N 0.30; now B 0.06 (haze adds what the shadow takes), R 0.04, N 0.15.
    # dB 0.01, dR -0.04 < 1.5 dB, rB 0.0909, rN -1/3 < 1.2 rB, dHOT = 0.01 + 0.02 = 0.03 > thr 0.02:
    # MAJA 4.x (ratio 0) calls it refl_var. Red fell to 0.5 of the composite: with the guard at 0.8 it
    # is in neither mask. Pixel 1 (red at 0.85 of the composite, so above 0.8: B 0.075, R 0.068,
    # dHOT = 0.025 + 0.006 = 0.031 > thr) stays a cloud. Pixel 2 has a composite red of 0 (no ratio to
    # take; B 0.095 so that dB 0.045, dR 0.04 < 1.5 dB, rB 0.31, dHOT = 0.075 - 0.05 = 0.025 > thr): the
    # guard does not apply.
    bd, rd, nd = [0.06, 0.075, 0.095], [0.04, 0.068, 0.04], [0.15, 0.15, 0.15]
    bc, rc, nc = [0.05, 0.05, 0.05], [0.08, 0.08, 0.0], [0.30, 0.30, 0.30]
    maja = PH.replace(refl_var_min_red_ratio=0.0)
    var, ext = _refl_var_row(bd, rd, nd, bc, rc, nc, [0, 0, 0], params=maja)
    assert var[0].tolist() == [True, True, True]
    var, ext = _refl_var_row(bd, rd, nd, bc, rc, nc, [0, 0, 0], params=PH.replace(refl_var_min_red_ratio=0.8))
    assert var[0].tolist() == [False, True, True]
    assert ext[0].tolist() == [False, True, True]
    assert P.refl_var_min_red_ratio == P.proj_shad_darkening_max  # the documented default


def test_excluded_and_nan_are_false():
    nan = float("nan")
    var, ext = _refl_var_row([0.15, 0.15, 0.15, nan, 0.15], [0.12] * 5, [0.35] * 5,
                             [0.05, 0.05, nan, 0.05, 0.05], [0.04] * 5, [0.30] * 5, [0] * 5,
                             excluded=[False, True, False, False, False])
    assert var[0].tolist() == [True, False, False, False, True]
    assert ext[0].tolist() == [True, False, False, False, True]


def test_refl_var_default_p21_hand_value():
    # default (P21 at 120 m): thr = min(0.060, 0.018 (1 + 45/45)) = 0.036 at 45 days;
    # dHOT = 0.035 -> clear, 0.04 -> cloud
    var, _ = _refl_var_row([0.085, 0.09], [0.04, 0.04], [0.3, 0.3], [0.05, 0.05], [0.04, 0.04], [0.3, 0.3],
                           [45, 45], params=P)
    assert var[0].tolist() == [False, True]
    # P21 at 240 m: thr = min(0.060, 0.016 (1 + 45/45)) = 0.032; dHOT = 0.03 -> clear, 0.035 -> cloud
    var, _ = _refl_var_row([0.08, 0.085], [0.04, 0.04], [0.3, 0.3], [0.05, 0.05], [0.04, 0.04], [0.3, 0.3],
                           [45, 45], params=P.replace(min_threshold_var_blue=0.016))
    assert var[0].tolist() == [False, True]


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float32, (6, 4, 5), elements=st.floats(0.0, 1.0, width=32)),
       hnp.arrays(np.int32, (4, 5), elements=st.integers(0, 200)))
def test_refl_var_implies_extension_candidate(bands, age):
    var, ext = refl_var_numpy(*bands, age, np.zeros((4, 5), bool), P)
    assert not (var & ~ext).any()


# --- §1.3 window correlation -------------------------------------------------------------------------

P7 = P.replace(n_correl=3, min_pixel_correl=15)


def _grid7():
    x = np.arange(49, dtype=np.float32).reshape(7, 7)
    return (x * 0.01 + 0.05) * (1 + 0.1 * np.sin(x)).astype(np.float32)  # not a plane: a generic texture


def test_correlation_perfect_anti_flat():
    cur = _grid7()
    r_pos = window_correlation(cur, 2 * cur + 1, None, None, P7, CPU)
    r_neg = window_correlation(cur, 0.3 - cur, None, None, P7, CPU)
    r_flat = window_correlation(cur, np.full((7, 7), 0.2, np.float32), None, None, P7, CPU)
    assert r_pos[3, 3] == pytest.approx(1.0, abs=1e-6)
    assert r_neg[3, 3] == pytest.approx(-1.0, abs=1e-6)
    assert r_flat[3, 3] == 0.0
    assert window_correlation(np.full((7, 7), 0.1, np.float32), cur, None, None, P7, CPU)[3, 3] == 0.0


def test_correlation_generic_value_matches_pearson():
    rng = np.random.default_rng(3)
    a = rng.random((7, 7)).astype(np.float32)
    b = (a + rng.random((7, 7))).astype(np.float32)
    r = window_correlation(a, b, None, None, P7, CPU)[3, 3]
    assert r == pytest.approx(np.corrcoef(a.ravel().astype(float), b.ravel().astype(float))[0, 1], abs=1e-6)


def test_correlation_excludes_edge_and_reference_nodata():
    cur = _grid7()
    ref = (3 * cur - 0.1).astype(np.float32)
    edge = np.zeros((7, 7), bool)
    edge[0, :] = True
    cur_bad = cur.copy()
    cur_bad[0, :] = 5.0  # garbage under the edge
    ref_bad = ref.copy()
    ref_bad[6, :3] = np.nan  # reference nodata
    ref_bad[5, 0] = -7.0
    nodata = np.zeros((7, 7), bool)
    nodata[5, 0] = True
    r = window_correlation(cur_bad, ref_bad, edge, nodata, P7, CPU)
    assert r[3, 3] == pytest.approx(1.0, abs=1e-6)
    # without the masks, the garbage spoils the correlation
    assert window_correlation(cur_bad, np.where(nodata, ref_bad, ref), None, None, P7, CPU)[3, 3] < 0.9


def test_correlation_needs_min_pixels():
    cur = _grid7()
    ref = 2 * cur
    edge = np.zeros(49, bool)
    edge[:35] = True  # 14 valid pixels left
    r14 = window_correlation(cur, ref, edge.reshape(7, 7), None, P7, CPU)[3, 3]
    edge[34] = False  # 15 valid pixels
    r15 = window_correlation(cur, ref, edge.reshape(7, 7), None, P7, CPU)[3, 3]
    assert np.isnan(r14)
    assert r15 == pytest.approx(1.0, abs=1e-6)


def test_correlation_border_windows_are_clamped():
    rng = np.random.default_rng(5)
    a = rng.random((10, 12)).astype(np.float32)
    b = rng.random((10, 12)).astype(np.float32)
    r = window_correlation(a, b, None, None, P7, CPU)
    # window of (0, 0): rows/cols -3..3 clamped into the image (zero-flux Neumann), 49 samples
    pa = np.pad(a.astype(float), 3, mode="edge")[0:7, 0:7].ravel()
    pb = np.pad(b.astype(float), 3, mode="edge")[0:7, 0:7].ravel()
    assert r[0, 0] == pytest.approx(np.corrcoef(pa, pb)[0, 1], abs=1e-6)
    ia, ib = a[2:9, 4:11].astype(float).ravel(), b[2:9, 4:11].astype(float).ravel()
    assert r[5, 7] == pytest.approx(np.corrcoef(ia, ib)[0, 1], abs=1e-6)


def test_correlation_where_mask():
    cur = _grid7()
    where = np.zeros((7, 7), bool)
    where[3, 3] = where[1, 2] = True
    r = window_correlation(cur, 2 * cur, None, None, P7, CPU, where=where)
    assert np.isnan(r[~where]).all()
    full = window_correlation(cur, 2 * cur, None, None, P7, CPU)
    np.testing.assert_array_equal(r[where], full[where])


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, (2, 6, 8), elements=st.floats(0.0, 1.0, width=32)),
       st.floats(0.5, 4.0), st.floats(-1.0, 1.0))
def test_correlation_invariants(ab, gain, offset):
    a, b = ab
    p = P.replace(n_correl=2, min_pixel_correl=5)
    r = window_correlation_numpy(a, b, None, None, p)
    ok = ~np.isnan(r)
    assert (np.abs(r[ok]) <= 1.0 + 1e-6).all()
    r_sym = window_correlation_numpy(b, a, None, None, p)
    np.testing.assert_allclose(r_sym, r, atol=1e-5, equal_nan=True)
    b2 = (gain * b.astype(np.float64) + offset).astype(np.float32)
    r_aff = window_correlation_numpy(a, b2, None, None, p)
    big = ok & (np.abs(r) > 0) & (np.abs(r_aff) > 0)  # flat windows give 0 on both sides
    np.testing.assert_allclose(r_aff[big], r[big], atol=2e-3)


# --- §1.3 correlation against the history -----------------------------------------------------------


def _texture(shape, seed, sigma=1.5):
    rng = np.random.default_rng(seed)
    t = scipy.ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return ((t - t.mean()) / t.std()).astype(np.float32)


def test_history_skips_same_day_and_empty_layers():
    shape = (16, 16)
    cur = 0.1 + 0.02 * _texture(shape, 1)
    other = 0.1 + 0.02 * _texture(shape, 2)
    edge = np.zeros(shape, bool)
    cand = np.zeros(shape, bool)
    cand[6:10, 6:10] = True
    sto = np.full((4, *shape), np.nan, np.float32)
    sto[0] = cur  # dated today: must be skipped
    sto[1] = other
    sto[3] = cur  # beyond sto_days: empty by definition
    got = correlated_with_history(cand, cur, edge, other, sto, (100, 90, 80), 100, P, CPU)
    assert not got.any()
    got = correlated_with_history(cand, cur, edge, other, sto, (99, 90, 80), 100, P, CPU)
    np.testing.assert_array_equal(got, cand)


def test_history_stops_at_first_correlating_layer(monkeypatch):
    shape = (20, 20)
    cur = 0.1 + 0.02 * _texture(shape, 1)
    noise = [0.1 + 0.02 * _texture(shape, s) for s in (2, 3, 4)]
    edge = np.zeros(shape, bool)
    cand = np.zeros(shape, bool)
    cand[3:6, 3:6] = True  # region A: correlates with layer 1 only
    cand[13:16, 13:16] = True  # region B: with layer 2 only
    la = noise[1].copy()
    la[:10, :10] = cur[:10, :10]
    lb = noise[2].copy()
    lb[10:, 10:] = cur[10:, 10:]
    sto = np.stack([cur, la, lb, cur])  # layer 0 is today's
    calls = []
    real = cloud_mt.window_correlation

    def spy(current, reference, ci, ri, params, backend=None, *, where=None):
        calls.append(where.copy())
        return real(current, reference, ci, ri, params, backend, where=where)

    monkeypatch.setattr(cloud_mt, "window_correlation", spy)
    got = correlated_with_history(cand, cur, edge, noise[0], sto, (50, 40, 30, 20), 50, P, CPU)
    np.testing.assert_array_equal(got, cand)
    # composite, layer 1, layer 2 (layer 0 skipped as same day; layer 3 never reached)
    assert len(calls) == 3
    np.testing.assert_array_equal(calls[0], cand)
    np.testing.assert_array_equal(calls[1], cand)
    region_b = np.zeros(shape, bool)
    region_b[13:16, 13:16] = True
    np.testing.assert_array_equal(calls[2], region_b)


# --- §1.4 cloud extension ----------------------------------------------------------------------------


def _extension_scene():
    shape = (20, 24)
    refl = np.zeros(shape, bool)
    refl_var = np.zeros(shape, bool)
    cand = np.zeros(shape, bool)
    corr = np.zeros(shape, bool)
    # label A: refl_var 3x3 + 5 extension pixels, 3 correlated -> 3/14 = 21 % > 20 %: those 3 go
    refl_var[1:4, 1:4] = True
    cand[1:4, 1:4] = True
    cand[4, 1:4] = True
    cand[1:3, 4] = True
    corr[4, 1:4] = True
    # label B: refl_var 4x4 + 4 extension pixels, 1 correlated -> 1/20 = 5 %: kept
    refl_var[1:5, 10:14] = True
    cand[1:5, 9:14] = True
    corr[1, 9] = True
    # label C: refl_var 2x4 + 2 extension pixels, both correlated -> 2/10 = 20 %, not > 20 %: kept
    refl_var[10:12, 1:5] = True
    cand[10:12, 1:6] = True
    corr[10:12, 5] = True
    # a candidate blob far from any cloud: dropped
    cand[15:18, 15:18] = True
    # a candidate blob that only touches a refl cloud, without holding a refl pixel: dropped (MAJA keeps
    # the components that hold a refl / refl_var pixel)
    refl[8:10, 18:20] = True
    cand[8:10, 20:22] = True
    # a refl cloud whose candidate component holds it: kept
    refl[14:16, 1:3] = True
    cand[14:17, 1:3] = True
    return refl, refl_var, cand, corr


def test_extension_label_rules():
    refl, refl_var, cand, corr = _extension_scene()
    ext = cloud_extension(cand, refl, refl_var, corr, P, np)
    expected = np.zeros_like(ext)
    expected[1:3, 4] = True  # A: uncorrelated extension pixels stay
    expected[1:5, 9] = True  # B: all four, the correlated one included
    expected[10:12, 5] = True  # C: ratio exactly 20 %
    expected[16, 1:3] = True  # refl-held component
    np.testing.assert_array_equal(ext, expected)


def test_extension_callable_sees_only_extension_pixels():
    refl, refl_var, cand, corr = _extension_scene()
    seen = []

    def correlated(mask):
        seen.append(mask.copy())
        return corr

    ext = cloud_extension(cand, refl, refl_var, correlated, P, np)
    np.testing.assert_array_equal(ext, cloud_extension(cand, refl, refl_var, corr, P, np))
    assert len(seen) == 1
    assert not (seen[0] & (refl | refl_var)).any()
    assert not seen[0][15:18, 15:18].any() and not seen[0][8:10, 20:22].any()
    assert seen[0][4, 1:4].all() and seen[0][16, 1:3].all()


def test_components_are_4_connected_as_maja():
    """MAJA labels with ITK's default (face connected): a candidate pixel that touches a refl cloud only
    by a corner is its own component, which holds no cloud pixel, so it is not an extension; the same
    pixel sharing an edge with the cloud is kept (maja-l2a.md §1.4)."""
    refl = np.zeros((6, 6), bool)
    refl[1:3, 1:3] = True
    no_var = np.zeros_like(refl)
    never = np.zeros_like(refl)
    diagonal = refl.copy()
    diagonal[3, 3] = True  # corner contact with (2, 2)
    ext = cloud_extension(diagonal, refl, no_var, never, P, np)
    assert not ext[3, 3]
    edge = refl.copy()
    edge[3, 2] = True  # shares an edge with (2, 2)
    ext = cloud_extension(edge, refl, no_var, never, P, np)
    assert ext[3, 2] and ext.sum() == 1


def test_extension_ratio_parameter():
    refl, refl_var, cand, corr = _extension_scene()
    ext = cloud_extension(cand, refl, refl_var, corr, P.replace(discarded_pixels_ratio_min=19.0), np)
    assert not ext[10:12, 5].any()  # C at 20 % > 19 % now loses its correlated pixels
    assert ext[1:5, 9].all()


# --- end to end on a textured scene ------------------------------------------------------------------


def _scene(seed=0, shape=(64, 64)):
    t = _texture(shape, seed, sigma=2.0)
    rcr = {"blue": 0.06 + 0.015 * t, "red": 0.06 + 0.03 * t, "nir": 0.28 + 0.05 * t}
    rcr["correl"] = rcr["red"]
    rng = np.random.default_rng(seed + 100)
    tocr = {k: (v + rng.normal(0, 0.001, shape)).astype(np.float32) for k, v in rcr.items() if k != "correl"}
    tocr["correl"] = tocr["red"]
    return {k: v.astype(np.float32) for k, v in rcr.items()}, tocr


def _add_cloud(tocr, shape, centre, radius, seed):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    d = np.hypot(yy - centre[0], xx - centre[1])
    alpha = np.clip((radius + 3 - d) / 3.0, 0.0, 1.0)  # 1 inside radius, soft 3 px edge
    own = _texture(shape, seed, sigma=1.0)  # the cloud's own texture, unrelated to the ground
    cloud = {"blue": 0.35 + 0.03 * own, "red": 0.33 + 0.03 * own, "nir": 0.36 + 0.03 * own}
    out = {k: ((1 - alpha) * tocr[k] + alpha * cloud[k]).astype(np.float32) for k in ("blue", "red", "nir")}
    out["correl"] = out["red"]
    return out, d


def _run(tocr, rcr, shape, refl=None, age=10):
    z = np.zeros(shape, bool)
    sto = np.full((P.number_of_stack_images, *shape), np.nan, np.float32)
    return multitemporal_clouds(z if refl is None else refl, tocr, rcr, z, z, z, z,
                                np.full(shape, age, np.int32), sto, (), 500, P, CPU)


def test_end_to_end_cloud_on_textured_land():
    shape = (64, 64)
    rcr, tocr = _scene()
    cloudy, d = _add_cloud(tocr, shape, (30, 34), 9, seed=7)
    out = _run(cloudy, rcr, shape)
    core = d <= 9
    clear = d > 14
    assert out["refl_var"][core].mean() > 0.95
    assert not out["refl_var"][clear].any()
    assert not out["extension"][clear].any()
    assert not out["refl"].any()
    ext = out["extension"]
    assert not (ext & out["refl_var"]).any()
    # the clear date alone gives nothing
    clear_out = _run(tocr, rcr, shape)
    assert not clear_out["refl_var"].any() and not clear_out["extension"].any()


def test_uniform_brightening_is_rejected_by_correlation():
    # an AOT-like change: blue +0.04, red +0.02, NIR +0.01 everywhere, the ground texture intact
    shape = (64, 64)
    rcr, tocr = _scene(seed=2)
    hazy = {"blue": tocr["blue"] + np.float32(0.04), "red": tocr["red"] + np.float32(0.02),
            "nir": tocr["nir"] + np.float32(0.01)}
    hazy["correl"] = hazy["red"]
    z = np.zeros(shape, bool)
    var, _ = refl_var_test(hazy["blue"], hazy["red"], hazy["nir"], rcr["blue"], rcr["red"], rcr["nir"],
                           np.full(shape, 10, np.int32), z, P, CPU)
    assert var.mean() > 0.99  # the radiometric test alone flags the whole scene ...
    refl = np.zeros(shape, bool)
    refl[20:30, 20:30] = True  # ... and a refl (mono-temporal) false alarm on the same texture
    out = _run(hazy, rcr, shape, refl=refl)
    assert not out["refl_var"].any()  # ... the correlation with the composite rejects it
    assert not out["refl"].any()
    assert not out["extension"].any()


def test_multitemporal_exclusions():
    shape = (32, 32)
    rcr, tocr = _scene(seed=4, shape=shape)
    cloudy, d = _add_cloud(tocr, shape, (16, 16), 6, seed=9)
    snow = np.zeros(shape, bool)
    snow[16, 16] = True
    nodata = np.zeros(shape, bool)
    nodata[:, :3] = True
    water = np.zeros(shape, bool)
    water[10, 20] = True
    z = np.zeros(shape, bool)
    sto = np.full((2, *shape), np.nan, np.float32)
    out = multitemporal_clouds(z, cloudy, rcr, z, snow, water, nodata, np.full(shape, 5, np.int32), sto, (), 9,
                               P, CPU)
    assert not out["refl_var"][15:18, 15:18].any()  # dilated snow (radius 1 = 3x3)
    assert not out["refl_var"][9:12, 19:22].any()  # dilated water
    assert out["refl_var"][d <= 6].sum() > 50
    with pytest.raises(ValueError, match="roles"):
        multitemporal_clouds(z, {"blue": z}, rcr, z, snow, water, nodata, 0, sto, (), 9, P, CPU)


# --- GPU: kernels against the NumPy twins ------------------------------------------------------------


def _gpu() -> Backend:
    import cupy

    return Backend("gpu", cupy, "test GPU")


@pytest.mark.gpu
@pytest.mark.parametrize("seed,min_red_ratio", [(0, 0.8), (1, 0.8), (2, 0.0)])
def test_gpu_refl_var_matches_twin_random(seed, min_red_ratio):
    import cupy

    params = P.replace(refl_var_min_red_ratio=min_red_ratio)
    rng = np.random.default_rng(seed)
    shape = (97, 131)
    bands = [rng.uniform(0.0, 0.5, shape).astype(np.float32) for _ in range(6)]
    bands[0][rng.random(shape) < 0.02] = np.nan
    bands[4][rng.random(shape) < 0.02] = np.nan
    age = rng.integers(0, 200, shape).astype(np.int32)
    exc = rng.random(shape) < 0.1
    var_c, ext_c = refl_var_numpy(*bands, age, exc, params)
    var_g, ext_g = refl_var_test(*[cupy.asarray(b) for b in bands], cupy.asarray(age), cupy.asarray(exc), params,
                                 _gpu())
    assert isinstance(var_g, cupy.ndarray)
    np.testing.assert_array_equal(var_g.get(), var_c)
    np.testing.assert_array_equal(ext_g.get(), ext_c)


@pytest.mark.gpu
def test_gpu_refl_var_matches_twin_realistic():
    import cupy

    shape = (64, 64)
    rcr, tocr = _scene(seed=3)
    cloudy, _ = _add_cloud(tocr, shape, (20, 40), 8, seed=11)
    age = np.full(shape, 37, np.int32)
    exc = np.zeros(shape, bool)
    exc[:, :2] = True
    args = [cloudy["blue"], cloudy["red"], cloudy["nir"], rcr["blue"], rcr["red"], rcr["nir"], age, exc]
    var_c, ext_c = refl_var_numpy(*args, P)
    var_g, ext_g = refl_var_test(*[cupy.asarray(a) for a in args], P, _gpu())
    np.testing.assert_array_equal(var_g.get(), var_c)
    np.testing.assert_array_equal(ext_g.get(), ext_c)


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1])
def test_gpu_window_correlation_matches_twin(seed):
    import cupy

    rng = np.random.default_rng(seed)
    shape = (83, 101)
    a = (0.1 + 0.02 * _texture(shape, seed)).astype(np.float32)
    b = (0.5 * a + 0.01 * rng.standard_normal(shape)).astype(np.float32) if seed else rng.random(shape).astype(
        np.float32)
    b[rng.random(shape) < 0.1] = np.nan
    b[10:20, 10:20] = 0.2  # flat reference patch -> 0
    edge = rng.random(shape) < 0.05
    edge[:, :5] = True
    where = rng.random(shape) < 0.5
    for w in (None, where):
        r_c = window_correlation_numpy(a, b, edge, None, P, where=w)
        r_g = window_correlation(cupy.asarray(a), cupy.asarray(b), cupy.asarray(edge), None, P, _gpu(),
                                 where=None if w is None else cupy.asarray(w))
        r_g = r_g.get()
        np.testing.assert_array_equal(np.isnan(r_g), np.isnan(r_c))
        np.testing.assert_allclose(r_g, r_c, atol=1e-6, equal_nan=True)


@pytest.mark.gpu
def test_gpu_multitemporal_matches_cpu():
    import cupy

    shape = (64, 64)
    rcr, tocr = _scene(seed=5)
    cloudy, _ = _add_cloud(tocr, shape, (30, 30), 10, seed=12)
    z = np.zeros(shape, bool)
    age = np.full(shape, 12, np.int32)
    sto = np.full((3, *shape), np.nan, np.float32)
    sto[0] = cloudy["red"]
    sto[1] = rcr["red"]
    days = (500, 480)
    cpu = multitemporal_clouds(z, cloudy, rcr, z, z, z, z, age, sto, days, 500, P, CPU)
    g = {k: cupy.asarray(v) for k, v in cloudy.items()}
    gr = {k: cupy.asarray(v) for k, v in rcr.items()}
    gz = cupy.asarray(z)
    gpu = multitemporal_clouds(gz, g, gr, gz, gz, gz, gz, cupy.asarray(age), cupy.asarray(sto), days, 500, P,
                               _gpu())
    for k in ("refl", "refl_var", "extension"):
        np.testing.assert_array_equal(gpu[k].get(), cpu[k])
