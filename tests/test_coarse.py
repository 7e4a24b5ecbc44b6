"""block_mean: NumPy twin against hand-computed values and properties, the CUDA kernel against the twin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.backend import CPU
from gpumaja.radiometry import coarse as coarse_mod
from gpumaja.radiometry.coarse import (
    DEFAULT_MIN_VALID_FRACTION,
    block_mean,
    block_mean_numpy,
    coarse_shape,
)

NAN = np.nan


def _reference(stack: np.ndarray, f: int, frac: float):
    """Loop-per-cell reference: mean of the valid pixels of each (possibly partial) block."""
    nb, h, w = stack.shape
    hc, wc = coarse_shape(h, w, f)
    mean = np.full((nb, hc, wc), np.nan, np.float32)
    count = np.zeros((nb, hc, wc), np.int32)
    for b in range(nb):
        for i in range(hc):
            for j in range(wc):
                blk = stack[b, i * f : (i + 1) * f, j * f : (j + 1) * f].astype(np.float64)
                valid = ~np.isnan(blk)
                count[b, i, j] = valid.sum()
                if valid.sum() and valid.sum() >= frac * blk.size:
                    mean[b, i, j] = blk[valid].mean()
    return mean, count


def test_default_fraction():
    assert DEFAULT_MIN_VALID_FRACTION == 0.5


def test_hand_values_full_blocks():
    a = np.array(
        [
            [1, 2, 5, 6],
            [3, 4, 7, 8],
            [NAN, NAN, NAN, 1],
            [NAN, 9, NAN, NAN],
        ],
        dtype=np.float32,
    )
    mean, count = block_mean(a, 2)
    assert mean.dtype == np.float32 and count.dtype == np.int32
    assert mean.shape == (2, 2) and count.shape == (2, 2)
    assert count.tolist() == [[4, 4], [1, 1]]
    assert mean[0].tolist() == [2.5, 6.5]
    assert np.isnan(mean[1]).all()  # 1 of 4 valid < 0.5
    mean, count = block_mean(a, 2, min_valid_fraction=0.25)
    assert mean[1].tolist() == [9.0, 1.0]


def test_threshold_is_inclusive():
    a = np.array([[1, 3], [NAN, NAN]], dtype=np.float32)
    mean, count = block_mean(a, 2, min_valid_fraction=0.5)  # 2 of 4 valid: exactly 0.5, kept
    assert mean.tolist() == [[2.0]] and count.tolist() == [[2]]
    mean, _ = block_mean(a, 2, min_valid_fraction=0.51)
    assert np.isnan(mean).all()


def test_partial_edge_blocks():
    a = np.arange(25, dtype=np.float32).reshape(5, 5)
    a[0, 0] = NAN
    mean, count = block_mean(a, 2)
    assert mean.shape == (3, 3)
    assert count.tolist() == [[3, 4, 2], [4, 4, 2], [2, 2, 1]]
    expected = [[(1 + 5 + 6) / 3, 5.0, 6.5], [13.0, 15.0, 16.5], [20.5, 22.5, 24.0]]
    np.testing.assert_allclose(mean, expected, rtol=1e-7)
    # an edge block with 1 pixel inside the image, valid: fraction 1/1
    b = np.ones((3, 3), np.float32)
    b[2, :2] = NAN
    mean, count = block_mean(b, 2)
    assert count.tolist() == [[4, 2], [0, 1]]
    assert np.isnan(mean[1, 0]) and mean[1, 1] == 1.0 and mean[0, 1] == 1.0


def test_three_dimensional_stack_per_band():
    a = np.stack([np.full((6, 6), 2.0, np.float32), np.full((6, 6), NAN, np.float32)])
    a[1, :3, :3] = 7.0
    mean, count = block_mean(a, 3)
    assert mean.shape == (2, 2, 2)
    assert (mean[0] == 2.0).all() and (count[0] == 9).all()
    assert mean[1, 0, 0] == 7.0 and np.isnan(mean[1]).sum() == 3
    assert count[1].tolist() == [[9, 0], [0, 0]]


def test_matches_reference_random():
    rng = np.random.default_rng(0)
    a = rng.normal(0.2, 0.1, (3, 53, 41)).astype(np.float32)
    a[rng.random(a.shape) < 0.4] = NAN
    for f in (1, 2, 5, 8, 24, 60):
        for frac in (0.0, 0.5, 0.9):
            mean, count = block_mean(a, f, frac)
            ref_mean, ref_count = _reference(a, f, frac)
            np.testing.assert_array_equal(count, ref_count)
            np.testing.assert_allclose(mean, ref_mean, rtol=1e-6, equal_nan=True)


def test_chunking_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(1)
    a = rng.random((2, 100, 77)).astype(np.float32)
    a[a < 0.3] = NAN
    whole = block_mean_numpy(a, 6)
    monkeypatch.setattr(coarse_mod, "_CHUNK_PIXELS", 1)
    chunked = block_mean_numpy(a, 6)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


@pytest.mark.parametrize(
    "factor, frac, match",
    [
        (0, 0.5, "factor"),
        (2.5, 0.5, "factor"),
        (2, 1.5, "min_valid_fraction"),
        (2, -0.1, "min_valid_fraction"),
    ],
)
def test_validation(factor, frac, match):
    with pytest.raises(ValueError, match=match):
        block_mean(np.ones((4, 4), np.float32), factor, frac)


def test_rejects_wrong_rank():
    with pytest.raises(ValueError, match="shape"):
        block_mean(np.ones(4, np.float32), 2)


def test_explicit_cpu_backend():
    mean, count = block_mean(np.ones((1, 4, 4)), 2, backend=CPU)
    assert type(mean) is np.ndarray and mean.dtype == np.float32 and (mean == 1).all()
    assert type(count) is np.ndarray and (count == 4).all()


# ----------------------------------------------------------------------------------------------
# Properties

_shapes = st.tuples(st.integers(1, 3), st.integers(1, 40), st.integers(1, 40))
_values = st.floats(-1e3, 1e3, width=32, allow_nan=False)


def _values_or_nan(lo: float, hi: float):
    return st.one_of(st.floats(lo, hi, width=32), st.just(float("nan")))


@settings(max_examples=60, deadline=None)
@given(shape=_shapes, f=st.integers(1, 13), c=_values)
def test_property_constant_stack(shape, f, c):
    mean, count = block_mean(np.full(shape, c, np.float32), f)
    assert (mean == np.float32(c)).all()
    assert count.sum() == np.prod(shape)


@settings(max_examples=60, deadline=None)
@given(a=hnp.arrays(np.float32, _shapes, elements=_values_or_nan(-1e3, 1e3)))
def test_property_factor_one_is_identity(a):
    mean, count = block_mean(a, 1, min_valid_fraction=1.0)
    np.testing.assert_array_equal(mean, a)  # NaN in the same places
    np.testing.assert_array_equal(count, (~np.isnan(a)).astype(np.int32))


@settings(max_examples=40, deadline=None)
@given(shape=_shapes, f=st.integers(1, 9), frac=st.floats(0.0, 1.0))
def test_property_all_nan(shape, f, frac):
    mean, count = block_mean(np.full(shape, np.nan, np.float32), f, frac)
    assert np.isnan(mean).all() and (count == 0).all()


@settings(max_examples=60, deadline=None)
@given(
    nb=st.integers(1, 3),
    hc=st.integers(1, 6),
    wc=st.integers(1, 6),
    f=st.integers(1, 8),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_mean_of_means_full_blocks(nb, hc, wc, f, seed):
    a = np.random.default_rng(seed).uniform(-1.0, 1.0, (nb, hc * f, wc * f)).astype(np.float32)
    mean, count = block_mean(a, f)
    assert (count == f * f).all()
    np.testing.assert_allclose(
        mean.astype(np.float64).mean(axis=(1, 2)),
        a.astype(np.float64).mean(axis=(1, 2)),
        rtol=1e-5,
        atol=1e-6,
    )


@settings(max_examples=60, deadline=None)
@given(
    a=hnp.arrays(np.float32, _shapes, elements=_values_or_nan(0.0, 1.0)),
    f=st.integers(1, 9),
)
def test_property_count_weighted_mean_is_global_mean(a, f):
    valid = ~np.isnan(a)
    assume(valid.any())
    mean, count = block_mean(a, f, min_valid_fraction=0.0)
    assert count.sum() == valid.sum()
    assert (np.isnan(mean) == (count == 0)).all()
    m = np.nan_to_num(mean.astype(np.float64))
    np.testing.assert_allclose(
        (m * count).sum(axis=(1, 2)),
        np.where(valid, a, 0).astype(np.float64).sum(axis=(1, 2)),
        rtol=1e-6,
        atol=1e-5,
    )


# ----------------------------------------------------------------------------------------------
# Real 13-band TOA array (s2cloudless test input)


@pytest.fixture(scope="module")
def s2cloudless_stack(shared_data):
    path = shared_data / "real" / "s2_l1c_array_s2cloudless" / "input_arrays.npz"
    if not path.is_file():
        pytest.skip(f"shared data not available: {path}")
    with np.load(path) as z:
        im = z["s2_im"]
    assert im.shape == (1, 856, 512, 13) and im.dtype == np.float32
    stack = np.ascontiguousarray(np.moveaxis(im[0], -1, 0))  # (13, 856, 512)
    rng = np.random.default_rng(13)
    stack[rng.random(stack.shape) < 0.1] = np.nan  # scattered holes
    stack[:, 100:160, 200:300] = np.nan  # a cloud-mask-like rectangle
    stack[3, 500:530, :] = np.nan  # one band missing a stripe
    return stack


def test_real_stack_numpy_matches_reference(s2cloudless_stack):
    sub = s2cloudless_stack[:2, :200, :150]
    for f in (12, 24):
        mean, count = block_mean(sub, f)
        ref_mean, ref_count = _reference(sub, f, 0.5)
        np.testing.assert_array_equal(count, ref_count)
        np.testing.assert_allclose(mean, ref_mean, rtol=1e-6, equal_nan=True)
    mean, count = block_mean(s2cloudless_stack, 24)
    assert mean.shape == (13, 36, 22)  # ceil(856 / 24), ceil(512 / 24)
    assert np.isnan(mean[:, 5, 9]).all()  # inside the NaN rectangle


# ----------------------------------------------------------------------------------------------
# GPU: the CUDA kernel against the NumPy twin


@pytest.fixture
def cp():
    import cupy

    return cupy


def _assert_gpu_matches(cp, d_stack, stack, f, frac, **kw):
    mean, count = block_mean(d_stack, f, frac, **kw)
    assert type(mean) is cp.ndarray and type(count) is cp.ndarray
    assert mean.dtype == cp.float32 and count.dtype == cp.int32
    ref_mean, ref_count = block_mean_numpy(stack, f, frac)
    assert mean.shape == ref_mean.shape and count.shape == ref_count.shape
    np.testing.assert_array_equal(cp.asnumpy(count), ref_count)
    got = cp.asnumpy(mean)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref_mean))
    np.testing.assert_allclose(got, ref_mean, rtol=1e-6, atol=0, equal_nan=True)


def _random_stack(rng, shape, hole_frac=0.3):
    a = rng.normal(0.15, 0.08, shape).astype(np.float32)
    a[rng.random(shape) < hole_frac] = np.nan
    # some fully invalid blocks and whole rows, so both NaN reasons occur
    a[..., : min(30, shape[-2]), : min(30, shape[-1])] = np.nan
    return a


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(3, 1003, 777), (1, 25, 49), (13, 240, 241)])
@pytest.mark.parametrize("f", [1, 2, 7, 12, 24])
@pytest.mark.parametrize("frac", [0.0, 0.5, 1.0])
def test_gpu_matches_numpy_random(cp, shape, f, frac):
    rng = np.random.default_rng(hash((shape, f)) % 2**32)
    stack = _random_stack(rng, shape, hole_frac=0.3 if frac < 1.0 else 0.02)
    _assert_gpu_matches(cp, cp.asarray(stack), stack, f, frac)


@pytest.mark.gpu
def test_gpu_two_dimensional_and_non_contiguous(cp):
    rng = np.random.default_rng(11)
    stack = _random_stack(rng, (2, 301, 199))
    _assert_gpu_matches(cp, cp.asarray(stack[0]), stack[0], 24, 0.5)
    view = cp.asarray(stack)[:, ::2, ::3]
    _assert_gpu_matches(cp, view, stack[:, ::2, ::3], 5, 0.5)


@pytest.mark.gpu
def test_gpu_float64_input_is_cast(cp):
    stack = _random_stack(np.random.default_rng(12), (2, 50, 50)).astype(np.float64)
    _assert_gpu_matches(cp, cp.asarray(stack), stack, 8, 0.5)


@pytest.mark.gpu
def test_gpu_backend_moves_numpy_input(cp):
    from gpumaja.backend import select_backend

    stack = _random_stack(np.random.default_rng(14), (2, 97, 101))
    _assert_gpu_matches(cp, stack, stack, 12, 0.5, backend=select_backend("gpu"))


@pytest.mark.gpu
def test_gpu_real_s2cloudless_stack(cp, s2cloudless_stack):
    d = cp.asarray(s2cloudless_stack)
    for f in (12, 24, 5):
        for frac in (0.5, 0.95):
            _assert_gpu_matches(cp, d, s2cloudless_stack, f, frac)
