"""interp_multilinear: hand values, exactness at nodes, affine reproduction (hypothesis), clamping, NaN."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.atmosphere.interp import cell_weights, interp_multilinear


def _axis(draw, n: int) -> np.ndarray:
    steps = draw(st.lists(st.floats(0.05, 10.0), min_size=n - 1, max_size=n - 1))
    start = draw(st.floats(-50.0, 50.0))
    return np.concatenate([[start], start + np.cumsum(steps)])


@st.composite
def _grids(draw, max_dims: int = 4):
    k = draw(st.integers(1, max_dims))
    sizes = [draw(st.integers(2, 5)) for _ in range(k)]
    axes = [_axis(draw, n) for n in sizes]
    return axes


def test_hand_values_1d_and_2d():
    ax = np.array([0.0, 1.0, 3.0])
    tab = np.array([10.0, 20.0, 40.0])
    out = interp_multilinear(tab, [ax], [np.array([0.0, 0.5, 1.0, 2.0, 3.0])])
    np.testing.assert_allclose(out, [10.0, 15.0, 20.0, 30.0, 40.0])
    # bilinear on the unit square: f = 1 + 2x + 3y + 4xy, exact for bilinear interpolation
    x = y = np.array([0.0, 1.0])
    tab2 = np.array([[1.0, 4.0], [3.0, 10.0]])
    out = interp_multilinear(tab2, [x, y], [0.25, 0.5])
    assert out == pytest.approx(1 + 2 * 0.25 + 3 * 0.5 + 4 * 0.25 * 0.5)


def test_trailing_dimensions_and_broadcasting():
    ax = np.array([0.0, 2.0])
    tab = np.stack([np.arange(6.0).reshape(2, 3), 10 + np.arange(6.0).reshape(2, 3)])  # (2, 2, 3)
    out = interp_multilinear(tab, [ax], [np.array([[1.0], [2.0]])])
    assert out.shape == (2, 1, 2, 3)
    np.testing.assert_allclose(out[0, 0], 5 + np.arange(6.0).reshape(2, 3))
    np.testing.assert_allclose(out[1, 0], 10 + np.arange(6.0).reshape(2, 3))


def test_clamps_outside_the_axes():
    ax = np.array([1.0, 2.0, 4.0])
    tab = np.array([1.0, 3.0, 7.0], dtype=np.float32)
    out = interp_multilinear(tab, [ax], [np.array([-100.0, 0.999, 4.0001, 1e9])])
    assert out.dtype == np.float32
    assert out.tolist() == [1.0, 1.0, 7.0, 7.0]


def test_nan_coordinate_gives_nan_and_zero_weight_ignores_nan_neighbours():
    ax = np.array([0.0, 1.0, 2.0])
    tab = np.array([1.0, np.nan, 5.0])
    out = interp_multilinear(tab, [ax], [np.array([np.nan, 0.0, 2.0, 0.5])])
    assert np.isnan(out[0])
    assert out[1] == 1.0 and out[2] == 5.0  # the NaN neighbour has weight exactly 0
    assert np.isnan(out[3])


def test_single_node_axis():
    tab = np.array([[2.0, 4.0]])  # axis 0 has one node
    out = interp_multilinear(tab, [np.array([5.0]), np.array([0.0, 1.0])], [7.0, 0.5])
    assert out == pytest.approx(3.0)


def test_bad_arguments():
    with pytest.raises(ValueError, match="coordinate"):
        interp_multilinear(np.zeros(3), [np.arange(3.0)], [])
    with pytest.raises(ValueError, match="nodes"):
        interp_multilinear(np.zeros(3), [np.arange(4.0)], [0.0])


def test_cell_weights_at_nodes_are_exact():
    ax = np.array([0.0, 0.0625, 0.125, 1.5], dtype=np.float32)
    lo, hi, t = cell_weights(ax, ax.astype(np.float64))
    assert t.tolist() == [0.0, 0.0, 0.0, 1.0]
    assert lo.tolist() == [0, 1, 2, 2] and hi.tolist() == [1, 2, 3, 3]


@settings(max_examples=60, deadline=None)
@given(axes=_grids(), data=st.data())
def test_exact_at_nodes(axes, data):
    shape = tuple(a.size for a in axes) + (3,)
    seed = data.draw(st.integers(0, 2**31 - 1))
    tab = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    axes32 = [a.astype(np.float32) for a in axes]
    idx = [data.draw(st.integers(0, a.size - 1)) for a in axes]
    out = interp_multilinear(tab, axes32, [a[i] for a, i in zip(axes32, idx)])
    assert out.dtype == np.float32
    assert np.array_equal(out, tab[tuple(idx)])  # bit-exact


@settings(max_examples=60, deadline=None)
@given(axes=_grids(), data=st.data())
def test_reproduces_affine_functions(axes, data):
    k = len(axes)
    coef = np.array(data.draw(st.lists(st.floats(-5, 5), min_size=k, max_size=k)))
    c0 = data.draw(st.floats(-5, 5))
    grids = np.meshgrid(*axes, indexing="ij")
    tab = c0 + sum(c * g for c, g in zip(coef, grids))
    npts = 20
    rng = np.random.default_rng(data.draw(st.integers(0, 2**31 - 1)))
    pts = [rng.uniform(a[0], a[-1], npts) for a in axes]
    out = interp_multilinear(tab, axes, pts)
    expected = c0 + sum(c * p for c, p in zip(coef, pts))
    scale = 1.0 + np.abs(c0) + sum(abs(c) * np.abs(a).max() for c, a in zip(coef, axes))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-10 * scale)


@pytest.mark.gpu
def test_cupy_matches_numpy():
    import cupy as cp

    rng = np.random.default_rng(7)
    axes = [np.array([0.0, 1.0, 2.5, 4.0]), np.array([-1.0, 0.0, 3.0])]
    tab = rng.normal(size=(4, 3, 5)).astype(np.float32)
    pts = [rng.uniform(-1, 5, 1000), rng.uniform(-2, 4, 1000)]
    pts[0][:4] = axes[0]  # nodes too
    ref = interp_multilinear(tab, axes, pts)
    got = interp_multilinear(cp.asarray(tab), axes, [cp.asarray(p) for p in pts])
    assert isinstance(got, cp.ndarray) and got.dtype == cp.float32
    np.testing.assert_array_equal(cp.asnumpy(got), ref)
