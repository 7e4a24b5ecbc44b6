"""Cloud masks at 10/20 m (`gpumaja.masks.cloud_fine`, ours; docs/l2a.md "Cloud masks at 10/20 m"):
the support kernel's twin on hand-computed values, the refinement rules, the GPU kernel against the twin
on random and real inputs."""

from __future__ import annotations

import numpy as np
import pytest

from gpumaja.masks.cloud_fine import (
    SHADOW_DARK,
    SHADOW_NO_EVIDENCE,
    SHADOW_NOT_DARK,
    SUPPORT_EXT,
    SUPPORT_VAR,
    fine_cloud_support,
    fine_cloud_support_numpy,
    fine_shadow_support,
    fine_shadow_support_numpy,
    refine_fine_masks,
)
from gpumaja.model.params import L2Params

P = L2Params()  # min_threshold_var_blue 0.018, max 0.060, forgetting 45 d, delta 0.005
BOTH = SUPPORT_VAR | SUPPORT_EXT


def test_thresholds_by_hand():
    # age 0: thr = 0.018, extension 0.013; age 45: thr = 0.036; age 1000: thr capped at 0.060
    hot = np.array([[0.120, 0.115, 0.110, 0.130, 0.159, 0.161]], np.float32)
    ref = np.full(hot.shape, 0.100, np.float32)
    age = np.array([[0, 0, 0, 45, 1000, 1000]], np.float32)
    got = fine_cloud_support_numpy(hot, ref, age, P)
    # d = 0.020 > 0.018 -> both; 0.015 in (0.013, 0.018] -> extension only; 0.010 -> none;
    # 0.030 < 0.036 - 0.005 -> none; 0.059 in (0.055, 0.060] -> extension only; 0.061 -> both
    np.testing.assert_array_equal(got, [[BOTH, SUPPORT_EXT, 0, 0, SUPPORT_EXT, BOTH]])


def test_no_composite_value_is_no_evidence():
    hot = np.array([[0.1, np.nan, 0.1]], np.float32)
    ref = np.array([[np.nan, 0.2, 0.2]], np.float32)
    age = np.array([[0, 0, np.nan]], np.float32)
    np.testing.assert_array_equal(fine_cloud_support_numpy(hot, ref, age, P), [[BOTH, BOTH, BOTH]])


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one shape"):
        fine_cloud_support_numpy(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((3, 2)), P)


def _masks(**bits):
    shape = (1, 8)
    out = {k: np.zeros(shape, bool) for k in ("refl", "refl_var", "extension", "cirrus", "shadow", "shadvar")}
    for k, cols in bits.items():
        out[k][0, cols] = True
    parts = out["refl"] | out["refl_var"] | out["extension"]
    out["all_clouds"] = parts | out["cirrus"]
    out["all"] = out["all_clouds"] | out["shadow"] | out["shadvar"]
    return out, parts


def test_refinement_rules():
    fine, parts = _masks(refl=[0], refl_var=[1, 2], extension=[3, 4], cirrus=[5, 6], shadow=[2, 7])
    support = np.array([[0, BOTH, 0, SUPPORT_EXT, 0, 0, 0, 0]], np.uint8)
    cirrus = np.array([[0, 0, 0, 0, 0, 1, 0, 0]], bool)
    out = refine_fine_masks(fine, parts, support, cirrus, np)
    np.testing.assert_array_equal(out["refl"][0], [0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["refl_var"][0], [0, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["extension"][0], [0, 0, 0, 1, 0, 0, 0, 0])  # the lower threshold
    np.testing.assert_array_equal(out["cirrus"][0], [0, 0, 0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(out["all_clouds"][0], [0, 1, 0, 1, 0, 1, 0, 0])
    # the shadows stand (pixel 2 lost its cloud bit but keeps its shadow and "all")
    np.testing.assert_array_equal(out["shadow"][0], fine["shadow"][0])
    np.testing.assert_array_equal(out["all"][0], [0, 1, 1, 1, 0, 1, 0, 1])
    assert fine["refl"][0, 0]  # the input is not modified


def test_refinement_only_removes_and_keeps_the_bits_consistent():
    rng = np.random.default_rng(4)
    shape = (40, 50)
    fine = {k: rng.random(shape) < 0.3 for k in ("refl", "refl_var", "extension", "cirrus", "shadow", "shadvar")}
    parts = fine["refl"] | fine["refl_var"] | fine["extension"]
    fine["all_clouds"] = parts | fine["cirrus"] | (rng.random(shape) < 0.05)  # bilinear of a union: a superset
    fine["all"] = fine["all_clouds"] | fine["shadow"] | fine["shadvar"]
    support = rng.integers(0, 4, shape).astype(np.uint8)
    cirrus = rng.random(shape) < 0.5
    out = refine_fine_masks(fine, parts, support, cirrus, np)
    for k, v in out.items():
        assert not (v & ~fine[k]).any(), k
    cloud_bits = out["refl"] | out["refl_var"] | out["extension"] | out["cirrus"]
    assert not (cloud_bits & ~out["all_clouds"]).any()
    assert not ((out["all_clouds"] | out["shadow"] | out["shadvar"]) & ~out["all"]).any()


def test_no_support_and_no_cirrus_keeps_the_parts():
    fine, parts = _masks(refl=[0], refl_var=[1], extension=[2], cirrus=[3])
    out = refine_fine_masks(fine, parts, None, None, np)
    for k in fine:
        np.testing.assert_array_equal(out[k], fine[k], err_msg=k)


def test_init_mode_refines_cirrus_only():
    fine, parts = _masks(refl=[0], cirrus=[0, 3, 4])
    out = refine_fine_masks(fine, parts, None, np.array([[0, 0, 0, 1, 0, 0, 0, 0]], bool), np)
    np.testing.assert_array_equal(out["refl"][0], fine["refl"][0])
    np.testing.assert_array_equal(out["cirrus"][0], [0, 0, 0, 1, 0, 0, 0, 0])
    np.testing.assert_array_equal(out["all_clouds"][0], [1, 0, 0, 1, 0, 0, 0, 0])


def test_shadow_support_by_hand():
    red = np.array([[0.079, 0.0801, 0.081, 0.05, np.nan, 0.05, 0.05]], np.float32)
    ref = np.array([[0.1, 0.1, 0.1, np.nan, 0.1, 0.0, -0.1]], np.float32)
    # 0.8 x float32(0.1) = 0.0800000012 in float64: 0.079 is below it, 0.0801 and 0.081 are not
    np.testing.assert_array_equal(
        fine_shadow_support_numpy(red, ref, 0.8),
        [[SHADOW_DARK, SHADOW_NOT_DARK, SHADOW_NOT_DARK] + [SHADOW_NO_EVIDENCE] * 4])


def test_shadow_rules():
    fine, parts = _masks(refl=[0], shadow=[1, 2, 3])
    zone = np.array([[1, 1, 1, 1, 1, 1, 0, 0]], bool)  # within one coarse cell of a shadow cell
    D, N, U = SHADOW_DARK, SHADOW_NOT_DARK, SHADOW_NO_EVIDENCE
    shadow_support = np.array([[D, D, N, U, D, N, D, D]], np.uint8)
    out = refine_fine_masks(fine, parts, None, None, np, shadow_support, zone)
    # kept: 1 (dark), 3 (no evidence); dropped: 2 (not dark); grown: 4 (dark, in the zone, not cloud);
    # not grown: 0 (cloud), 5 (not dark), 6 and 7 (outside the zone)
    np.testing.assert_array_equal(out["shadow"][0], [0, 1, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(out["all"][0], [1, 1, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(out["all_clouds"][0], fine["all_clouds"][0])


def _gpu():
    from gpumaja.backend import select_backend

    return select_backend("gpu")


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1])
def test_gpu_fine_cloud_support_matches_twin(seed):
    import cupy

    rng = np.random.default_rng(seed)
    shape = (211, 173)
    hot = rng.uniform(-0.05, 0.3, shape).astype(np.float32)
    ref = (hot - rng.uniform(-0.02, 0.1, shape)).astype(np.float32)
    age = rng.integers(0, 200, shape).astype(np.float32)
    hot[rng.random(shape) < 0.02] = np.nan
    ref[rng.random(shape) < 0.05] = np.nan
    age[rng.random(shape) < 0.02] = np.nan
    want = fine_cloud_support_numpy(hot, ref, age, P)
    got = fine_cloud_support(cupy.asarray(hot), cupy.asarray(ref), cupy.asarray(age), P, _gpu())
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(got.get(), want)


@pytest.mark.gpu
def test_gpu_fine_cloud_support_matches_twin_on_a_real_scene(s2_safe_dir):
    """B02 / B04 TOA of a real L1C at 10 m against its own 120 m block means resampled bilinearly
    (a composite-like reference), so the differences are real sub-cell texture."""
    import cupy

    rasterio = pytest.importorskip("rasterio")
    from gpumaja.masks.morphology import resample_float
    from gpumaja.radiometry.coarse import block_mean_numpy

    safe = sorted(s2_safe_dir.glob("*.SAFE"))[0]
    bands = []
    for b in ("B02", "B04"):
        with rasterio.open(sorted(safe.glob(f"GRANULE/*/IMG_DATA/*_{b}.jp2"))[0]) as ds:
            bands.append((ds.read(1).astype(np.float32) - 1000.0) / 10000.0)
    hot = bands[0] - np.float32(0.5) * bands[1]
    coarse, _ = block_mean_numpy(hot[None], 12)
    ref = resample_float(coarse[0], 12, hot.shape, np) - np.float32(0.015)
    age = np.full(hot.shape, 20.0, np.float32)
    want = fine_cloud_support_numpy(hot, ref, age, P)
    assert 0 < int((want == BOTH).sum()) < want.size  # the real texture crosses the threshold
    got = fine_cloud_support(cupy.asarray(hot), cupy.asarray(ref), cupy.asarray(age), P, _gpu())
    np.testing.assert_array_equal(got.get(), want)


@pytest.mark.gpu
def test_gpu_fine_shadow_support_matches_twin():
    import cupy

    rng = np.random.default_rng(7)
    shape = (157, 203)
    ref = rng.uniform(-0.01, 0.3, shape).astype(np.float32)
    red = (ref * rng.uniform(0.3, 1.3, shape)).astype(np.float32)
    red[rng.random(shape) < 0.02] = np.nan
    ref[rng.random(shape) < 0.02] = np.nan
    for k in (0.8, 0.2):
        want = fine_shadow_support_numpy(red, ref, k)
        got = fine_shadow_support(cupy.asarray(red), cupy.asarray(ref), k, _gpu())
        np.testing.assert_array_equal(got.get(), want)
