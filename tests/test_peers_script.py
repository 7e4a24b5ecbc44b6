"""scripts/peers.py: the resampling it relies on, and each peer (s2cloudless, ukis-csmask) on a tiny TOA scene.

The peers are not gpumaja dependencies: their tests skip when the package is not importable.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

REPO = Path(__file__).resolve().parents[1]


def _load_peers():
    spec = importlib.util.spec_from_file_location("gpumaja_scripts_peers", REPO / "scripts" / "peers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


peers = _load_peers()

# Typical TOA reflectance of green vegetation and of a thick low cloud (B01..B12)
VEG = {"B01": 0.13, "B02": 0.10, "B03": 0.09, "B04": 0.06, "B05": 0.10, "B06": 0.22, "B07": 0.27,
       "B08": 0.30, "B8A": 0.31, "B09": 0.12, "B10": 0.002, "B11": 0.19, "B12": 0.09}
CLOUD = {"B01": 0.55, "B02": 0.55, "B03": 0.55, "B04": 0.56, "B05": 0.57, "B06": 0.58, "B07": 0.58,
         "B08": 0.58, "B8A": 0.58, "B09": 0.30, "B10": 0.04, "B11": 0.42, "B12": 0.30}
N = 128  # 20 m px: 2.56 km


def _scene(n: int = N, far_px: int = 40):
    """All bands at 20 m: textured vegetation, a bright white cloud block (soft edges, lumpy inside) of
    n/2 x n/2 px near the upper-left corner. Returns (toa, block, far) with `far` the vegetation at least
    `far_px` px from the block (800 m: beyond s2cloudless's 160 m pixel + 2 px dilation at 160 m)."""
    rng = np.random.default_rng(0)
    lo, hi = n // 16, n // 16 + n // 2
    block = np.zeros((n, n), bool)
    block[lo:hi, lo:hi] = True
    cover = ndimage.gaussian_filter(block.astype(float), 4)
    cover *= 1 + 0.2 * ndimage.gaussian_filter(rng.standard_normal((n, n)), 3)
    texture = 1 + 0.05 * rng.standard_normal((n, n))
    toa = {b: (cover * CLOUD[b] + (1 - cover) * VEG[b] * texture).astype(np.float32) for b in VEG}
    far = ~ndimage.binary_dilation(block, iterations=far_px)
    return toa, block, far


# ---------------------------------------------------------------------------------------------------
# Resampling (no peer needed)
# ---------------------------------------------------------------------------------------------------


def test_area_resample_block_mean_and_20_to_30_m():
    a = np.arange(36, dtype=np.float64).reshape(6, 6)
    # 20 m -> 60 m: 3x3 block means
    want = a.reshape(2, 3, 2, 3).mean(axis=(1, 3))
    np.testing.assert_allclose(peers.area_resample(a, 20.0, (2, 2), 60.0), want)
    # 20 m -> 30 m along one axis: pixel 0 = a0 + a1/2 over 1.5 px, pixel 1 = a1/2 + a2
    row = np.array([[3.0, 6.0, 9.0]])
    got = peers.area_resample(row, 20.0, (1, 2), 30.0)
    np.testing.assert_allclose(got, [[(3 * 20 + 6 * 10) / 30, (6 * 10 + 9 * 20) / 30]])
    # a partial last destination pixel averages what it covers; beyond the source: NaN
    got = peers.area_resample(np.array([[1.0, 2.0, 3.0]]), 20.0, (1, 3), 40.0)
    np.testing.assert_allclose(got[0, :2], [1.5, 3.0])
    assert np.isnan(got[0, 2])


def test_area_resample_ignores_nan():
    a = np.array([[1.0, np.nan], [3.0, 5.0]])
    np.testing.assert_allclose(peers.area_resample(a, 10.0, (1, 1), 20.0), [[3.0]])
    assert np.isnan(peers.area_resample(np.full((2, 2), np.nan), 10.0, (1, 1), 20.0)).all()


def test_nearest_back_to_20_m():
    # 30 m pixel centres: 20 m pixel j centre at 20 j + 10 -> 30 m index floor((20 j + 10) / 30)
    assert peers.nearest_index(6, 20.0, 4, 30.0).tolist() == [0, 1, 1, 2, 3, 3]
    assert peers.nearest_index(10, 20.0, 2, 160.0).tolist() == [0] * 8 + [1, 1]


def test_band_resolution_from_shape():
    g = (128, 128)
    assert peers.band_resolution("B02", np.zeros((256, 256)), g, 20.0, None) == 10.0
    assert peers.band_resolution("B8A", np.zeros((128, 128)), g, 20.0, None) == 20.0
    with pytest.raises(ValueError, match="resolution"):
        peers.band_resolution("B01", np.zeros((43, 42)), g, 20.0, None)
    assert peers.band_resolution("B01", np.zeros((43, 43)), g, 20.0, {"B01": 60.0}) == 60.0


# ---------------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------------


def test_s2cloudless_flags_the_block():
    pytest.importorskip("s2cloudless")
    toa, block, far = _scene()
    # Sentinel Hub's way: 160 m, averaged over 4 px, dilated by 2 px (at 160 m: 640 m and 320 m)
    prob, mask = peers.s2cloudless_mask(toa, (N, N))
    assert prob.shape == mask.shape == (N, N) and prob.dtype == np.float32 and mask.dtype == bool
    assert far.sum() > 1000
    assert mask[block].mean() > 0.95 and mask[far].mean() < 0.05
    assert np.nanmean(prob[block]) > 0.8 and np.nanmean(prob[far]) < 0.3
    # per pixel at 20 m (no averaging, no dilation): the vegetation is mostly not cloud
    prob, mask = peers.s2cloudless_mask(toa, (N, N), resolution_m=20.0, average_over=None, dilation_size=None)
    assert mask[block].mean() > 0.95 and mask[~block].mean() < 0.2


def test_s2cloudless_native_resolutions_and_nodata():
    pytest.importorskip("s2cloudless")
    toa20, block, far = _scene(132)  # 132 x 20 m = 2640 m: 44 px at 60 m, 16.5 px at 160 m
    toa = {}
    for b, a in toa20.items():
        res = {"B02": 10, "B03": 10, "B04": 10, "B08": 10, "B01": 60, "B09": 60, "B10": 60}.get(b, 20)
        toa[b] = np.kron(a, np.ones((2, 2), np.float32)) if res == 10 else (
            a.reshape(44, 3, 44, 3).mean(axis=(1, 3)) if res == 60 else a)
    nodata = np.zeros((132, 132), bool)
    nodata[-8:, :] = True  # a no-data strip at the bottom (away from the block)
    toa["B8A"] = np.where(nodata, np.nan, toa["B8A"]).astype(np.float32)
    prob, mask = peers.s2cloudless_mask(toa, (132, 132))
    assert mask.shape == (132, 132)
    assert np.isnan(prob[nodata]).all() and not mask[nodata].any()
    assert np.isfinite(prob[~nodata]).all()
    assert mask[block].mean() > 0.95 and mask[far & ~nodata].mean() < 0.05


def test_ukis_csmask_flags_the_block():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("ukis_csmask")
    toa, block, far = _scene()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # images < 256 px: CSmask pads them itself
        cloud, shadow = peers.ukis_csmask_mask(toa, (N, N))
    assert cloud.shape == shadow.shape == (N, N) and cloud.dtype == shadow.dtype == bool
    assert cloud[block].mean() > 0.9
    assert cloud[far].mean() < 0.05 and cloud[~block].mean() < 0.3
    assert not (cloud & shadow).any()
    assert shadow.mean() < 0.05  # no shadow was drawn
    # a no-data strip (NaN in one band) is neither cloud nor shadow; the block is still found
    toa["B11"][-10:, :] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        cloud, shadow = peers.ukis_csmask_mask(toa, (N, N))
    assert not cloud[-10:].any() and not shadow[-10:].any()
    assert cloud[block].mean() > 0.9


def test_missing_band_is_reported():
    toa, _, _ = _scene(24)
    del toa["B10"]
    with pytest.raises(KeyError, match="B10"):
        peers.stack_bands(toa, peers.S2CLOUDLESS_BANDS, (24, 24), 20.0, 160.0)
