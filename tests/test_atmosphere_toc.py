"""apply_minilut / interp_alt_aot: NumPy twin against hand values, affine tables, SciPy's interpolator and
the physical forward model; the CUDA kernel against the twin."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.interpolate import RegularGridInterpolator

from gpumaja import kernels
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.atmosphere.toc import apply_minilut, apply_minilut_numpy, axis_cell, interp_alt_aot
from gpumaja.backend import CPU
from gpumaja.errors import InputError
from tests.atmosphere_luts import forward_model, random_minilut, realistic_minilut, smooth_field


def _lut_from_toc(toc: np.ndarray, alt, aot, toa) -> MiniLUT:
    nb, na, nt, _ = toc.shape
    ones = np.ones((nb, na, nt), np.float32)
    return MiniLUT(
        tuple(f"B{b}" for b in range(nb)), np.asarray(alt, np.float32), np.asarray(aot, np.float32),
        np.asarray(toa, np.float32), np.asarray(toc, np.float32), ones, ones, ones, ones, ones,
    )


# ----------------------------------------------------------------------------------------------
# axis cells


def test_axis_cell_semantics():
    axis = np.array([0.0, 1.0, 3.0, 7.0], np.float32)
    x = np.array([-2.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.0, 9.0], np.float32)
    i, w = axis_cell(axis, x, clamp=False)
    assert i.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(w, [-2.0, 0.0, 0.5, 0.0, 0.5, 0.0, 1.0, 1.5])
    i, w = axis_cell(axis, x, clamp=True)
    assert i.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    np.testing.assert_allclose(w, [0.0, 0.0, 0.5, 0.0, 0.5, 0.0, 1.0, 1.0])


# ----------------------------------------------------------------------------------------------
# apply_minilut, NumPy twin


def test_hand_values_on_a_2x2x2_table():
    # corners v[ia, it, ir]; the centre of the cell is the mean of the 8 corners
    toc = np.arange(8, dtype=np.float32).reshape(1, 2, 2, 2)
    lut = _lut_from_toc(toc, [0.0, 1000.0], [0.0, 0.5], [0.0, 1.0])
    alt = np.array([[500.0, 0.0, 250.0]], np.float32)
    aot = np.array([[0.25, 0.5, 0.0]], np.float32)
    toa = np.array([[[0.5, 1.0, 0.25]]], np.float32)
    out = apply_minilut(toa, alt, aot, lut)
    # v = 4 ia + 2 it + ir is affine in the indices: v = 4 (h / 1000) + 2 (aot / 0.5) + toa
    assert out.dtype == np.float32 and out.shape == (1, 1, 3)
    np.testing.assert_allclose(out[0, 0], [3.5, 3.0, 1.25], rtol=0, atol=1e-6)


def test_exact_at_the_nodes():
    lut = random_minilut(seed=1)
    nb, na, nt, nr = lut.toc.shape
    alt = np.repeat(lut.altitude[:, None], nt, axis=1)
    aot = np.repeat(lut.aot[None, :], na, axis=0)
    for k in range(nr):
        toa = np.full((nb, na, nt), lut.toa[k], np.float32)
        out = apply_minilut_numpy(toa, alt, aot, lut)
        np.testing.assert_array_equal(out, lut.toc[:, :, :, k])


def test_affine_table_clamps_altitude_aot_and_extrapolates_toa():
    c0, c1, c2, c3 = 0.02, 1.0e-4, 0.3, 0.9
    lut0 = random_minilut(seed=2, nb=2)
    alt_ax, aot_ax, toa_ax = (a.astype(np.float64) for a in (lut0.altitude, lut0.aot, lut0.toa))
    A, T, R = np.meshgrid(alt_ax, aot_ax, toa_ax, indexing="ij")
    table = np.stack([c0 + c1 * A + c2 * T + c3 * R, -c0 + 2 * c1 * A - c2 * T + 0.5 * c3 * R])
    lut = _lut_from_toc(table, alt_ax, aot_ax, toa_ax)

    rng = np.random.default_rng(3)
    shape = (40, 50)
    alt = rng.uniform(alt_ax[0] - 800, alt_ax[-1] + 800, shape).astype(np.float32)
    aot = rng.uniform(aot_ax[0] - 0.2, aot_ax[-1] + 0.5, shape).astype(np.float32)
    toa = rng.uniform(toa_ax[0] - 0.4, toa_ax[-1] + 0.6, (2,) + shape).astype(np.float32)
    out = apply_minilut(toa, alt, aot, lut)

    a = np.clip(alt.astype(np.float64), alt_ax[0], alt_ax[-1])
    t = np.clip(aot.astype(np.float64), aot_ax[0], aot_ax[-1])
    r = toa.astype(np.float64)  # not clamped: linear extrapolation keeps the affine law
    expected = np.stack([c0 + c1 * a + c2 * t + c3 * r[0], -c0 + 2 * c1 * a - c2 * t + 0.5 * c3 * r[1]])
    np.testing.assert_allclose(out, expected, rtol=0, atol=5e-6)
    # the test does reach both sides of every axis
    assert (alt < alt_ax[0]).any() and (alt > alt_ax[-1]).any()
    assert (toa < toa_ax[0]).any() and (toa > toa_ax[-1]).any()


def test_random_table_matches_scipy_regular_grid_interpolator():
    lut = random_minilut(seed=4, nb=3)
    rng = np.random.default_rng(5)
    shape = (30, 31)
    alt = rng.uniform(lut.altitude[0] - 300, lut.altitude[-1] + 300, shape).astype(np.float32)
    aot = rng.uniform(lut.aot[0] - 0.1, lut.aot[-1] + 0.1, shape).astype(np.float32)
    toa = rng.uniform(lut.toa[0] - 0.2, lut.toa[-1] + 0.2, (3,) + shape).astype(np.float32)
    out = apply_minilut(toa, alt, aot, lut)
    a = np.clip(alt, lut.altitude[0], lut.altitude[-1]).astype(np.float64)
    t = np.clip(aot, lut.aot[0], lut.aot[-1]).astype(np.float64)
    for b in range(3):
        f = RegularGridInterpolator(
            (lut.altitude.astype(np.float64), lut.aot.astype(np.float64), lut.toa.astype(np.float64)),
            lut.toc[b].astype(np.float64), method="linear", bounds_error=False, fill_value=None,
        )
        expected = f(np.stack([a.ravel(), t.ravel(), toa[b].astype(np.float64).ravel()], axis=-1))
        np.testing.assert_allclose(out[b].ravel(), expected, rtol=0, atol=2e-5)


def test_each_band_uses_its_own_table():
    toa_ax = np.array([0.0, 1.0], np.float32)
    ramp = np.broadcast_to(toa_ax, (2, 2, 2)).astype(np.float32)
    table = np.stack([ramp, 2.0 * ramp + 0.1])  # band 0: toc = toa; band 1: toc = 2 toa + 0.1
    lut = _lut_from_toc(table, [0.0, 1.0], [0.0, 1.0], toa_ax)
    toa = np.full((2, 3, 4), 0.3, np.float32)
    out = apply_minilut(toa, np.zeros((3, 4), np.float32), np.zeros((3, 4), np.float32), lut)
    np.testing.assert_allclose(out[0], 0.3, atol=1e-7)
    np.testing.assert_allclose(out[1], 0.7, atol=1e-6)
    sub = lut.subset(("B1", "B0"))  # the caller's stack order decides which table a band uses
    out2 = apply_minilut(toa, np.zeros((3, 4), np.float32), np.zeros((3, 4), np.float32), sub)
    np.testing.assert_array_equal(out2, out[::-1])


def test_nan_inputs():
    lut = random_minilut(seed=6, nb=2)
    alt = np.full((2, 3), 500.0, np.float32)
    aot = np.full((2, 3), 0.3, np.float32)
    toa = np.full((2, 2, 3), 0.1, np.float32)
    alt[0, 0] = np.nan
    aot[1, 1] = np.nan
    toa[1, 0, 2] = np.nan
    out = apply_minilut(toa, alt, aot, lut)
    nan = np.isnan(out)
    assert nan[:, 0, 0].all() and nan[:, 1, 1].all()
    assert nan[1, 0, 2] and not nan[0, 0, 2]
    assert nan.sum() == 5


def test_realistic_lut_inverts_the_forward_model():
    """TOA* of a uniform Lambertian surface from the physical model, inverted by the reduced mini-LUT,
    gives the surface reflectance back (up to the LUT's interpolation error)."""
    from tests.atmosphere_luts import SUN_AZIMUTH, SUN_ZENITH, VIEW_AZIMUTH, VIEW_ZENITH

    lut = realistic_minilut()
    fwd = forward_model()
    rng = np.random.default_rng(7)
    shape = (25, 30)
    alt = smooth_field(rng, shape, 0.0, 3500.0)
    aot = smooth_field(rng, shape, 0.02, 0.8)
    rho = rng.uniform(0.0, 0.6, (len(lut.bands),) + shape)
    toa_star = np.empty(rho.shape, np.float32)
    for b, band in enumerate(lut.bands):
        t = fwd.terms(band, SUN_ZENITH, VIEW_ZENITH[band], SUN_AZIMUTH - VIEW_AZIMUTH[band], alt, aot, 2.0)
        toa_star[b] = fwd.toa_from_terms(t, rho[b], rho[b]) / t.t_gas
    out = apply_minilut(toa_star, alt, aot, lut)
    np.testing.assert_allclose(out, rho, rtol=0, atol=3e-3)  # observed 1.3e-3 (B02)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), alt_pad=st.floats(-2000, 2000), aot_pad=st.floats(-0.5, 0.5))
def test_property_convex_inside_the_toa_axis(seed, alt_pad, aot_pad):
    """With TOA* on the axis every weight is in [0, 1]: the result lies within the band's table range."""
    lut = random_minilut(seed=seed % 1000, nb=2)
    rng = np.random.default_rng(seed)
    shape = (5, 6)
    alt = (rng.uniform(lut.altitude[0], lut.altitude[-1], shape) + alt_pad).astype(np.float32)
    aot = (rng.uniform(lut.aot[0], lut.aot[-1], shape) + aot_pad).astype(np.float32)
    toa = rng.uniform(lut.toa[0], lut.toa[-1], (2,) + shape).astype(np.float32)
    out = apply_minilut(toa, alt, aot, lut)
    for b in range(2):
        assert out[b].min() >= lut.toc[b].min() - 1e-6
        assert out[b].max() <= lut.toc[b].max() + 1e-6


def test_explicit_cpu_backend_returns_numpy():
    lut = random_minilut(nb=1)
    out = apply_minilut(np.zeros((1, 2, 2), np.float32), np.zeros((2, 2)), np.zeros((2, 2)), lut, backend=CPU)
    assert type(out) is np.ndarray and out.dtype == np.float32


@pytest.mark.parametrize(
    "toa_shape, alt_shape, aot_shape, match",
    [
        ((2, 3, 4), (3, 4), (3, 4), "2 bands but the mini-LUT has 1"),
        ((1, 3, 4), (3, 5), (3, 4), "altitude has shape"),
        ((1, 3, 4), (3, 4), (4, 3), "aot has shape"),
        ((3, 4), (3, 4), (3, 4), r"\(bands, y, x\)"),
    ],
)
def test_shape_errors(toa_shape, alt_shape, aot_shape, match):
    lut = random_minilut(nb=1)
    with pytest.raises(InputError, match=match):
        apply_minilut(np.zeros(toa_shape, np.float32), np.zeros(alt_shape), np.zeros(aot_shape), lut)


# ----------------------------------------------------------------------------------------------
# interp_alt_aot


def test_interp_alt_aot_affine_and_clamped():
    alt_ax = np.array([0.0, 500.0, 2000.0, 3000.0], np.float32)
    aot_ax = np.array([0.0, 0.1, 0.4, 1.0, 1.5], np.float32)
    A, T = np.meshgrid(alt_ax.astype(np.float64), aot_ax.astype(np.float64), indexing="ij")
    table = np.stack([0.9 - 2e-5 * A - 0.3 * T, 0.1 + 1e-5 * A + 0.05 * T]).astype(np.float32)
    alt = np.array([[-100.0, 0.0, 250.0], [1700.0, 3000.0, 5000.0]], np.float32)
    aot = np.array([[0.05, 2.0, 0.7], [-0.1, 1.2, 0.3]], np.float32)
    out = interp_alt_aot(table, alt, aot, alt_ax, aot_ax)
    a = np.clip(alt.astype(np.float64), 0.0, 3000.0)
    t = np.clip(aot.astype(np.float64), 0.0, 1.5)
    expected = np.stack([0.9 - 2e-5 * a - 0.3 * t, 0.1 + 1e-5 * a + 0.05 * t])
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, expected, rtol=0, atol=2e-6)
    alt[0, 0] = np.nan
    assert np.isnan(interp_alt_aot(table, alt, aot, alt_ax, aot_ax)[:, 0, 0]).all()


def test_interp_alt_aot_rejects_a_table_of_the_wrong_shape():
    with pytest.raises(InputError, match="table has shape"):
        interp_alt_aot(np.zeros((2, 3, 3)), np.zeros((2, 2)), np.zeros((2, 2)), np.arange(4.0), np.arange(3.0))


# ----------------------------------------------------------------------------------------------
# The interpolation device functions: one header, inlined by the loader into each LUT kernel


def test_lut_kernels_share_one_device_header():
    kernels.kernel_source.cache_clear()
    header = (kernels.kernel_dir() / "lut_device.cuh").read_text()
    for name in ("lut_interp", "surface", "slope"):
        raw = (kernels.kernel_dir() / f"{name}.cu").read_text()
        assert raw.count('#include "lut_device.cuh"') == 1
        assert "gpumaja_axis_cell(" not in raw.replace('#include "lut_device.cuh"', "").split("__global__")[0]
        expanded = kernels.kernel_source(name)
        assert not any(ln.lstrip().startswith("#include") for ln in expanded.splitlines())
        assert expanded.count("__device__ __forceinline__ int gpumaja_axis_cell(") == 1
        assert header.splitlines()[-1] in expanded


def test_lut_interp_kernel_does_not_fuse_multiply_add():
    from tests.test_kernels_compile import _PROBLEM

    if _PROBLEM is not None:
        pytest.skip(f"NVRTC is not usable: {_PROBLEM}")
    for name in ("lut_interp", "surface"):
        ptx = kernels.nvrtc_compile(name, "compute_80", kernels.declared_instances(name))
        assert not re.search(r"\bfma\.\w+\.f32\b", ptx), name


# ----------------------------------------------------------------------------------------------
# GPU: the CUDA kernel against the NumPy twin


@pytest.fixture
def cp():
    import cupy

    return cupy


def _assert_close(cp, got, ref):
    assert type(got) is cp.ndarray and got.dtype == cp.float32 and got.shape == ref.shape
    got = cp.asnumpy(got)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan)
    assert np.max(np.abs(got[~nan] - ref[~nan]), initial=0.0) <= 1e-6


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(3, 257, 301), (1, 1, 1), (3, 5, 1), (3, 1000, 1031)])
def test_gpu_matches_numpy_random(cp, shape):
    nb = shape[0]
    lut = random_minilut(seed=sum(shape), nb=nb)
    rng = np.random.default_rng(sum(shape))
    ny, nx = shape[1:]
    alt = rng.uniform(lut.altitude[0] - 500, lut.altitude[-1] + 500, (ny, nx)).astype(np.float32)
    aot = rng.uniform(lut.aot[0] - 0.1, lut.aot[-1] + 0.3, (ny, nx)).astype(np.float32)
    toa = rng.uniform(lut.toa[0] - 0.3, lut.toa[-1] + 0.3, shape).astype(np.float32)
    # some nodes exactly, and NaNs
    alt.flat[::7] = lut.altitude[rng.integers(0, lut.altitude.size, alt.flat[::7].size)]
    toa.flat[::5] = lut.toa[rng.integers(0, lut.toa.size, toa.flat[::5].size)]
    alt.flat[3::97] = np.nan
    aot.flat[5::89] = np.nan
    toa.flat[11::53] = np.nan
    ref = apply_minilut_numpy(toa, alt, aot, lut)
    got = apply_minilut(cp.asarray(toa), cp.asarray(alt), cp.asarray(aot), lut)
    _assert_close(cp, got, ref)


@pytest.mark.gpu
def test_gpu_matches_numpy_realistic(cp):
    lut = realistic_minilut()
    rng = np.random.default_rng(11)
    shape = (512, 640)
    alt = smooth_field(rng, shape, -50.0, 4200.0)
    aot = smooth_field(rng, shape, 0.0, 1.6)
    toa = np.stack([smooth_field(rng, shape, 0.0, 0.6) for _ in lut.bands])
    ref = apply_minilut_numpy(toa, alt, aot, lut)
    got = apply_minilut(toa, alt, aot, lut, backend=_gpu_backend(cp))
    _assert_close(cp, got, ref)


@pytest.mark.gpu
def test_gpu_non_contiguous_and_float64_inputs(cp):
    lut = random_minilut(seed=12, nb=2)
    rng = np.random.default_rng(12)
    toa = cp.asarray(rng.uniform(0, 1, (2, 40, 60)))  # float64
    alt = cp.asarray(rng.uniform(0, 2000, (60, 80)))[:, ::2].T  # strided, transposed view (40, 60)
    aot = cp.asarray(rng.uniform(0, 1, (40, 60)))
    ref = apply_minilut_numpy(cp.asnumpy(toa), cp.asnumpy(alt), cp.asnumpy(aot), lut)
    got = apply_minilut(toa, alt, aot, lut)
    _assert_close(cp, got, ref)


def _gpu_backend(cp):
    from gpumaja.backend import Backend

    return Backend("gpu", cp, "test GPU")
