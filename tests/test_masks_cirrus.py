"""Cirrus mask and flag (maja-l2a.md §1.5): quadratic altitude law with the P21 gain/offset."""

from __future__ import annotations

import numpy as np
import pytest

from gpumaja.masks.cirrus import cirrus_flag, cirrus_mask, cirrus_percent, cirrus_threshold
from gpumaja.model.params import L2Params

P = L2Params()  # offset 0.007, gain 0.000012, alt_ref 2000


def test_threshold_at_0_and_2000_m():
    # 0 m: 0.007. 2000 m: 0.000012 x 2000^2 / 2000 + 0.007 = 0.024 + 0.007 = 0.031.
    # 4000 m: 0.000012 x 16e6 / 2000 + 0.007 = 0.096 + 0.007 = 0.103 (quadratic, not 0.055).
    t = cirrus_threshold(np.array([0.0, 2000.0, 4000.0]), P)
    np.testing.assert_allclose(t, [0.007, 0.031, 0.103], rtol=1e-12)


def test_mask_at_0_and_2000_m():
    rho = np.array([[0.006, 0.008, 0.030, 0.032]], np.float32)
    flat = np.zeros_like(rho)
    high = np.full_like(rho, 2000.0)
    valid = np.ones(rho.shape, bool)
    assert cirrus_mask(rho, flat, valid, P)[0].tolist() == [False, True, True, True]
    assert cirrus_mask(rho, high, valid, P)[0].tolist() == [False, False, False, True]
    valid[0, 3] = False
    assert cirrus_mask(rho, high, valid, P)[0].tolist() == [False, False, False, False]
    # Scalar altitude broadcasts.
    assert cirrus_mask(rho, np.float32(2000.0), np.ones(rho.shape, bool), P)[0].tolist() == [
        False, False, False, True]


def test_flag():
    mask = np.zeros((10, 10), bool)
    valid = np.ones((10, 10), bool)
    mask[:2] = True  # 20 %
    assert cirrus_percent(mask, valid) == pytest.approx(20.0)
    assert not cirrus_flag(mask, valid, P)  # P16 min_percent 100: the flag is off
    p10 = P.replace(min_percent_mask_cirrus=10.0)
    assert cirrus_flag(mask, valid, p10)
    valid[2:] = False  # only the 20 cirrus pixels are valid -> 100 %
    assert cirrus_percent(mask, valid) == pytest.approx(100.0)
    assert not cirrus_flag(mask, valid, P)  # 100 is not > 100
    assert not cirrus_flag(mask, np.zeros_like(valid), p10)  # no valid pixel


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(1)
    rho = (rng.random((50, 60)) * 0.05).astype(np.float32)
    alt = (rng.random((50, 60)) * 3000).astype(np.float32)
    valid = rng.random((50, 60)) < 0.9
    got = cirrus_mask(cp.asarray(rho), cp.asarray(alt), cp.asarray(valid), P)
    assert isinstance(got, cp.ndarray)
    np.testing.assert_array_equal(got.get(), cirrus_mask(rho, alt, valid, P))
