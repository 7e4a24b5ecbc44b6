"""refl cloud test (maja-l2a.md §1.1) on hand-made pixels with the default (P21/P16) thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from gpumaja.masks.cloud_mono import refl_cloud
from gpumaja.model.params import L2Params

P = L2Params()  # blue 0.24, red 0.15, NIR/red in (0.8, 2), NIR/SWIR > 1


def _px(*rows):
    """Columns blue, red, nir, swir of each row -> four (1, n) float32 arrays."""
    a = np.array(rows, np.float32).T
    return [c[None, :] for c in a]


def test_hand_pixels():
    blue, red, nir, swir = _px(
        (0.25, 0.20, 0.22, 0.18),  # 0: cloud: 0.25>0.24, 0.2>0.15, 0.16<0.22<0.4, 0.22>0.18
        (0.25, 0.20, 0.50, 0.18),  # 1: NIR 0.5 > 2 x red = 0.4 -> vegetation, not cloud
        (0.23, 0.20, 0.22, 0.18),  # 2: blue below 0.24
        (0.25, 0.14, 0.20, 0.18),  # 3: red below 0.15
        (0.25, 0.20, 0.15, 0.10),  # 4: NIR 0.15 < 0.8 x red = 0.16
        (0.25, 0.20, 0.22, 0.30),  # 5: NIR 0.22 < SWIR 0.30 (DLR condition fails)
        (0.60, 0.55, 0.58, 0.40),  # 6: bright thick cloud
    )
    zeros = np.zeros_like(blue, dtype=bool)
    got = refl_cloud(blue, red, nir, swir, zeros, zeros, P)
    assert got.dtype == bool
    assert got[0].tolist() == [True, False, False, False, False, False, True]
    # Without SWIR (sensor without the band) pixel 5 becomes cloud.
    got = refl_cloud(blue, red, nir, None, zeros, zeros, P)
    assert got[0].tolist() == [True, False, False, False, False, True, True]


def test_saturation_and_exclusion():
    blue, red, nir, swir = _px((0.1, 0.1, 0.5, 0.1), (0.1, 0.1, 0.5, 0.1), (0.25, 0.20, 0.22, 0.18),
                               (np.nan, np.nan, np.nan, np.nan))
    sat = np.array([[True, False, False, True]])
    exc = np.array([[False, False, True, False]])
    got = refl_cloud(blue, red, nir, swir, sat, exc, P)
    # saturated -> cloud whatever the reflectance; excluded (nodata or snow) -> never cloud; a NaN
    # pixel is cloud only through saturation.
    assert got[0].tolist() == [True, False, False, True]


def test_thresholds_come_from_params():
    blue, red, nir, swir = _px((0.23, 0.20, 0.22, 0.18))
    z = np.zeros((1, 1), bool)
    assert not refl_cloud(blue, red, nir, swir, z, z, P).any()
    assert refl_cloud(blue, red, nir, swir, z, z, P.replace(cloud_blue_reflectance_threshold=0.22)).all()


def test_shape_mismatch():
    a = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="nir"):
        refl_cloud(a, a, np.zeros((3, 2), np.float32), None, a > 0, a > 0, P)


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(0)
    b, r, n, s = (rng.random((64, 64)).astype(np.float32) * 0.6 for _ in range(4))
    sat, exc = rng.random((64, 64)) < 0.05, rng.random((64, 64)) < 0.1
    want = refl_cloud(b, r, n, s, sat, exc, P)
    got = refl_cloud(*(cp.asarray(x) for x in (b, r, n, s, sat, exc)), P)
    assert isinstance(got, cp.ndarray)
    np.testing.assert_array_equal(got.get(), want)
