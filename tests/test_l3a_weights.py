"""WASP weights (wasp-l3a-and-lis-snow.md §1.3): hand-checked AOT / date / sensor weights, the cloud
weight's shape (1 far from clouds, 0 inside a big cloud field, monotone in between), the bilinear
upsampling, and the CPU / GPU agreement of the cloud weight (marked gpu)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.l3a.weights import (
    aot_weight,
    cloud_blurs,
    cloud_weight,
    cloud_weight_map,
    coarse_factor,
    date_weight,
    sensor_weight,
    upsample_coarse,
)
from gpumaja.model.wasp_params import WaspParams

P = WaspParams()
P_INT = WaspParams(date_weight_integer_division=True)


# --- §1.3b AOT -------------------------------------------------------------------------------------------


def test_aot_weight_hand_values():
    # W_min 0.33, W_max 1, AOT_MAX 0.8: 0 -> 1; 0.4 -> 0.33 + 0.67 * 0.5 = 0.665; 0.8 and beyond -> 0.33;
    # negative -> 0; NaN (no data) -> W_min.
    w = aot_weight(np.array([0.0, 0.4, 0.8, 1.2, -1.0, np.nan], dtype=np.float32), P)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w, [1.0, 0.665, 0.33, 0.33, 0.0, 0.33], rtol=0, atol=1e-7)


def test_aot_weight_is_continuous_and_decreasing_on_0_aotmax():
    a = np.linspace(0, 1.0, 101, dtype=np.float32)
    w = aot_weight(a, P)
    assert np.all(np.diff(w) <= 0)
    assert w[a < P.aot_max].min() >= P.aot_weight_min


def test_aot_weight_keeps_shape():
    a = np.full((3, 4), 0.2, dtype=np.float32)
    assert aot_weight(a, P).shape == (3, 4)


# --- §1.3c, §1.3d --------------------------------------------------------------------------------------


def test_sensor_weight():
    assert sensor_weight("SENTINEL2A", P) == 1.0
    assert sensor_weight("SENTINEL2X", P) == 1.0
    assert sensor_weight("sentinel2b", P) == 1.0
    assert sensor_weight("VENUS", P) == pytest.approx(0.33)
    assert sensor_weight("LANDSAT8", P) == pytest.approx(0.33)


@pytest.mark.parametrize(("dt", "intent", "integer"), [
    (0, 1.0, 1.0),
    (11.5, 0.75, 1.0),  # 1 - (11.5/23) 0.5 ; int(11.5) // 23 = 0
    (-11.5, 0.75, 1.0),
    (23, 0.5, 0.5),
    (30, 0.5, 0.5),  # intent clamped; 30 // 23 = 1
    (46, 0.5, 0.0),  # the released code: 1 - 2 * 0.5
])
def test_date_weight(dt, intent, integer):
    assert date_weight(dt, P) == pytest.approx(intent, abs=1e-12)
    assert date_weight(dt, P_INT) == pytest.approx(integer, abs=1e-12)


def test_date_weight_rejects_zero_window():
    with pytest.raises(ValueError, match="half_window_days"):
        date_weight(1, WaspParams(half_window_days=0))


def test_coarse_factor():
    assert coarse_factor(10, P) == 24
    assert coarse_factor(20, P) == 12
    with pytest.raises(ValueError):
        coarse_factor(70, P)


# --- upsampling -------------------------------------------------------------------------------------------


@given(value=st.floats(-10, 10, allow_nan=False, width=32), ch=st.integers(1, 5), cw=st.integers(1, 5),
       f=st.integers(1, 7), data=st.data())
@settings(max_examples=40, deadline=None)
def test_upsample_of_a_constant_is_the_constant(value, ch, cw, f, data):
    ny = data.draw(st.integers(max(1, (ch - 1) * f + 1), ch * f))
    nx = data.draw(st.integers(max(1, (cw - 1) * f + 1), cw * f))
    out = upsample_coarse(np.full((ch, cw), value, dtype=np.float32), (ny, nx), f)
    assert out.shape == (ny, nx) and out.dtype == np.float32
    assert np.all(out == np.float32(value))


def test_upsample_hand_values():
    # factor 2, coarse [[0, 4]]: coarse centres at fine x = 0.5 and 2.5; fine x = 0, 1, 2, 3 ->
    # clamp (0), 0 + 0.25 * 4 = 1, 0.75 * 4 = 3, clamp (4).
    out = upsample_coarse(np.array([[0.0, 4.0]], dtype=np.float32), (2, 4), 2)
    np.testing.assert_array_equal(out, [[0, 1, 3, 4], [0, 1, 3, 4]])
    # along y as well: coarse [[0], [8]], factor 4: centres at 1.5 and 5.5; y = 2 -> 8 * 0.5 / 4 = 1.
    col = upsample_coarse(np.array([[0.0], [8.0]], dtype=np.float32), (8, 1), 4)[:, 0]
    np.testing.assert_allclose(col, [0, 0, 1, 3, 5, 7, 8, 8])


def test_upsample_rejects_a_too_large_shape():
    with pytest.raises(ValueError, match="exceeds"):
        upsample_coarse(np.zeros((2, 2), np.float32), (5, 4), 2)


# --- §1.3a cloud weight -----------------------------------------------------------------------------------


def test_cloud_weight_combination():
    gs = np.array([0.0, 0.5, 1.0, 0.2, 1.2], dtype=np.float32)
    gl = np.array([0.0, 0.5, 0.1, 1.0, 0.0], dtype=np.float32)
    np.testing.assert_allclose(cloud_weight(gs, gl), [1.0, 0.25, 0.0, 0.0, 0.0], atol=1e-7)


def test_cloud_blurs_downsample_by_block_fraction():
    f = 4
    c = np.zeros((8, 10), dtype=bool)  # coarse grid 2 x 3, last column of blocks 2 pixels wide
    c[0:4, 0:3] = True  # 12 / 16 cloudy -> cloud
    c[4:8, 4:5] = True  # 4 / 16 -> clear
    c[0:4, 8:10] = True  # partial block, 8 / 8 -> cloud
    p0 = WaspParams(sigma_small_px=1e-6, sigma_large_px=1e-6)  # no blur: see the re-binarised grid
    gs, gl = cloud_blurs(c, None, f, p0)
    np.testing.assert_array_equal(gl, gs)
    assert gs.shape == (2, 3) and gs.dtype == np.float32
    np.testing.assert_array_equal(gs, [[1, 0, 1], [0, 0, 0]])
    # Invalid pixels do not count: 2 cloudy out of 3 valid pixels in the block -> cloud.
    c2 = np.zeros((4, 4), dtype=bool)
    c2[0, 0:2] = True
    valid = np.zeros((4, 4), dtype=bool)
    valid[0, 0:3] = True
    gs2, _ = cloud_blurs(c2, valid, 4, p0)
    assert gs2[0, 0] == 1


def test_cloud_blurs_kernel_width_is_capped():
    # kernel_width_px 5: radius 2 coarse pixels, whatever sigma; a single cloudy coarse pixel reaches
    # only 2 pixels away.
    p = WaspParams(kernel_width_px=5, sigma_small_px=3.0, sigma_large_px=10.0)
    c = np.zeros((9, 9), dtype=bool)
    c[4, 4] = True
    gs, gl = cloud_blurs(c, None, 1, p)
    for g in (gs, gl):
        assert g[4, 6] > 0 and g[4, 7] == 0 and g[4, 1] == 0
        assert g.sum() == pytest.approx(1.0, rel=1e-5)


def test_cloud_weight_far_inside_and_monotone():
    f = 24
    n_coarse = 120
    c = np.zeros((n_coarse * f // 4, n_coarse * f), dtype=bool)  # 720 x 2880 fine pixels, 30 x 120 coarse
    c[:, : 30 * f] = True  # a cloud field 30 coarse pixels (7.2 km) wide on the left
    w = cloud_weight_map(c, None, f, P)
    assert w.shape == c.shape and w.dtype == np.float32
    row = w[c.shape[0] // 2]
    # deep inside the cloud field (>= 4 sigma_large from its edge): 0
    assert np.all(row[: 5 * f] < 1e-6)
    # far away (beyond the truncated large kernel, 4 sigma_large = 40 coarse px): exactly 1
    assert np.all(row[(30 + 42) * f:] == 1.0)
    # monotone with the distance to the cloud edge
    assert np.all(np.diff(row) >= 0)
    assert 0.0 < row[(30 + 3) * f] < row[(30 + 15) * f] < 1.0


def test_cloud_weight_no_clouds_is_one():
    c = np.zeros((50, 70), dtype=bool)
    w = cloud_weight_map(c, None, 12, P)
    assert np.all(w == 1.0)


@pytest.mark.gpu
def test_cloud_weight_map_gpu_matches_cpu():
    import cupy

    rng = np.random.default_rng(3)
    f = 24
    # blobs: a smoothed random field thresholded
    import scipy.ndimage

    field = scipy.ndimage.gaussian_filter(rng.random((40, 50)), 3)
    c = np.kron(field > np.quantile(field, 0.7), np.ones((f, f), dtype=bool))[:950, :1190]
    valid = np.ones(c.shape, dtype=bool)
    valid[:, :30] = False
    cpu = cloud_weight_map(c, valid, f, P, np)
    gpu = cloud_weight_map(cupy.asarray(c), cupy.asarray(valid), f, P, cupy)
    assert isinstance(gpu, cupy.ndarray)
    np.testing.assert_allclose(gpu.get(), cpu, atol=1e-5, rtol=0)
