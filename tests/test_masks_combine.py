"""Cloud mask combination/dilation (maja-l2a.md §1.8, §1.11) and the CLM/MG2 bytes (§1.12)."""

from __future__ import annotations

import numpy as np
import pytest

from gpumaja.masks.combine import clm_bits, combine_clouds, mg2_bits
from gpumaja.model.params import L2Params

P = L2Params(se_cloud_radius=1)  # P16/P18t's radius 1 (3x3 ball); the default is P17's 0


def _m(shape, *pts):
    a = np.zeros(shape, bool)
    for p in pts:
        a[p] = True
    return a


def test_combine_and_dilate():
    shape = (7, 9)
    refl = _m(shape, (1, 1))
    cirrus = _m(shape, (5, 7))
    shadows = _m(shape, (3, 4))
    edge = _m(shape, (0, 0), (0, 1))
    out = combine_clouds(refl, cirrus, shadows, P, edge)
    assert set(out) == {"refl", "cirrus", "shadow", "all_clouds", "all"}
    want_refl = np.zeros(shape, bool)
    want_refl[0:3, 0:3] = True
    want_refl[0, 0:2] = False  # zeroed on edge
    assert (out["refl"] == want_refl).all()
    want_cirrus = np.zeros(shape, bool)
    want_cirrus[4:7, 6:9] = True
    assert (out["cirrus"] == want_cirrus).all()
    want_shadow = np.zeros(shape, bool)
    want_shadow[2:5, 3:6] = True
    assert (out["shadow"] == want_shadow).all()
    assert (out["all_clouds"] == (want_refl | want_cirrus)).all()
    assert (out["all"] == (want_refl | want_cirrus | want_shadow)).all()
    # P17 radius 0: no dilation, only the edge zeroing.
    out0 = combine_clouds(refl, cirrus, None, P.replace(se_cloud_radius=0), edge)
    assert (out0["all"] == (refl | cirrus)).all() and "shadow" not in out0


def test_combine_optional_parts():
    shape = (6, 6)
    z = np.zeros(shape, bool)
    out = combine_clouds(z, None, None, P, z, refl_var=_m(shape, (2, 2)), shadvar=_m(shape, (5, 5)))
    assert out["all_clouds"].sum() == 9 and out["all_clouds"][1:4, 1:4].all()
    assert out["all"].sum() == 9 + 4
    assert "cirrus" not in out and "extension" not in out


def test_clm_bits():
    shape = (1, 8)
    names = ["all", "all_clouds", "refl", "refl_var", "extension", "shadow", "shadvar", "cirrus"]
    masks = {n: _m(shape, (0, i)) for i, n in enumerate(names)}
    assert clm_bits(masks)[0].tolist() == [1, 2, 4, 8, 16, 32, 64, 128]
    masks["all"] = np.ones(shape, bool)
    assert clm_bits(masks)[0].tolist() == [1, 3, 5, 9, 17, 33, 65, 129]
    # Missing masks give 0 bits.
    b = clm_bits({"refl": _m(shape, (0, 2)), "all_clouds": _m(shape, (0, 2))})
    assert b.dtype == np.uint8 and b[0].tolist() == [0, 0, 6, 0, 0, 0, 0, 0]
    with pytest.raises(ValueError, match="unknown"):
        clm_bits({"clouds": np.zeros(shape, bool)})
    with pytest.raises(ValueError, match="no mask"):
        clm_bits({})


def test_clm_from_combine_is_consistent():
    shape = (6, 6)
    out = combine_clouds(_m(shape, (1, 1)), _m(shape, (4, 4)), _m(shape, (1, 4)), P, np.zeros(shape, bool))
    b = clm_bits(out)
    # Every refl or cirrus pixel also has bits 0 and 1; every shadow pixel bit 0.
    assert (((b & 4) > 0) <= ((b & 3) == 3)).all()
    assert (((b & 128) > 0) <= ((b & 3) == 3)).all()
    assert (((b & 32) > 0) <= ((b & 1) == 1)).all()
    assert b[1, 1] == 1 | 2 | 4 and b[4, 4] == 1 | 2 | 128 and b[0, 4] == 1 | 32


def test_mg2_bits():
    shape = (1, 8)
    ms = [_m(shape, (0, i)) for i in range(8)]
    assert mg2_bits(*ms)[0].tolist() == [1, 2, 4, 8, 16, 32, 64, 128]
    b = mg2_bits(ms[0], None, ms[0], None, None, None, None, ms[7])
    assert b.dtype == np.uint8 and b[0].tolist() == [1 | 4, 0, 0, 0, 0, 0, 0, 128]
    with pytest.raises(ValueError, match="shape"):
        mg2_bits(ms[0], np.zeros((2, 2), bool), None, None, None, None, None, None)


@pytest.mark.gpu
def test_gpu_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(7)
    shape = (50, 40)
    refl, cirrus, shadows, edge = (rng.random(shape) < 0.05 for _ in range(4))
    want = combine_clouds(refl, cirrus, shadows, P, edge)
    got = combine_clouds(*(cp.asarray(x) for x in (refl, cirrus, shadows)), P, cp.asarray(edge))
    for k in want:
        assert isinstance(got[k], cp.ndarray)
        np.testing.assert_array_equal(got[k].get(), want[k])
    np.testing.assert_array_equal(clm_bits(got).get(), clm_bits(want))
    args = [rng.random(shape) < 0.3 for _ in range(8)]
    np.testing.assert_array_equal(mg2_bits(*(cp.asarray(a) for a in args)).get(), mg2_bits(*args))
