"""environment_correction (SRE) and environment_reflectance (rho_env): NumPy twin against the §3.6 formula,
a brute-force box mean and the physical forward model; the CUDA kernel against the twin."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.atmosphere.surface_reflectance import (
    environment_correction,
    environment_correction_numpy,
    environment_reflectance,
)
from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.backend import CPU
from gpumaja.errors import InputError
from tests.atmosphere_luts import forward_model, random_minilut, realistic_minilut, smooth_field

ALT = np.array([0.0, 1000.0, 3000.0], np.float32)
AOT = np.array([0.0, 0.2, 0.5, 1.5], np.float32)


def _lut(dirt, dift, albedo) -> MiniLUT:
    """A mini-LUT whose (altitude, AOT) tables are the given (nb, 3, 4) arrays (or constants per band)."""
    shape = (len(dirt), ALT.size, AOT.size)

    def tab(v):
        a = np.asarray(v, np.float32)
        return np.broadcast_to(a[:, None, None] if a.ndim == 1 else a, shape).astype(np.float32)

    d, f, s = tab(dirt), tab(dift), tab(albedo)
    toc = np.zeros(shape + (2,), np.float32)
    return MiniLUT(tuple(f"B{b}" for b in range(shape[0])), ALT, AOT, np.array([0.0, 1.0], np.float32),
                   toc, d, f, d, f, s)


def _sre(ru, re, tdir, tdif, s):
    """maja-l2a.md §3.6, in float64."""
    return (ru * (tdir + tdif) * (1 - re * s) / (1 - ru * s) - re * tdif) / tdir


# ----------------------------------------------------------------------------------------------
# SRE, NumPy twin


def test_hand_value():
    # T_dir 0.8, T_dif 0.1, S 0.15, rho_unif 0.2, rho_env 0.1:
    # (0.2 * 0.9 * (1 - 0.015) / (1 - 0.03) - 0.1 * 0.1) / 0.8 = (0.18 * 0.985 / 0.97 - 0.01) / 0.8
    lut = _lut([0.8], [0.1], [0.15])
    ru = np.full((1, 2, 2), 0.2, np.float32)
    re = np.full((1, 2, 2), 0.1, np.float32)
    out = environment_correction(ru, re, np.full((2, 2), 500.0, np.float32), np.full((2, 2), 0.3, np.float32), lut)
    assert out.dtype == np.float32 and out.shape == (1, 2, 2)
    np.testing.assert_allclose(out, (0.18 * 0.985 / 0.97 - 0.01) / 0.8, rtol=1e-6)
    np.testing.assert_allclose(out, 0.2159793814, rtol=1e-6)


def test_no_environment_term():
    # rho_env = 0: SRE = rho_unif T / ((1 - rho_unif S) T_dir)
    lut = _lut([0.7, 0.5], [0.2, 0.25], [0.1, 0.3])
    rng = np.random.default_rng(0)
    ru = rng.uniform(0, 0.9, (2, 5, 6)).astype(np.float32)
    out = environment_correction(ru, np.zeros_like(ru), np.zeros((5, 6)), np.zeros((5, 6)), lut)
    t = np.array([0.9, 0.75])[:, None, None]
    s = np.array([0.1, 0.3])[:, None, None]
    tdir = np.array([0.7, 0.5])[:, None, None]
    np.testing.assert_allclose(out, ru * t / ((1 - ru * s) * tdir), rtol=2e-6)


def test_tables_interpolated_bilinearly_and_clamped():
    A, T = np.meshgrid(ALT.astype(np.float64), AOT.astype(np.float64), indexing="ij")
    dirt = (0.9 - 2e-5 * A - 0.3 * T)[None]
    dift = (0.05 + 1e-5 * A + 0.1 * T)[None]
    alb = (0.1 - 1e-5 * A + 0.08 * T)[None]
    lut = _lut(dirt, dift, alb)
    rng = np.random.default_rng(1)
    alt = rng.uniform(-500, 4000, (6, 7)).astype(np.float32)
    aot = rng.uniform(-0.2, 2.0, (6, 7)).astype(np.float32)
    ru = rng.uniform(0, 0.6, (1, 6, 7)).astype(np.float32)
    re = rng.uniform(0, 0.6, (1, 6, 7)).astype(np.float32)
    out = environment_correction(ru, re, alt, aot, lut)
    a = np.clip(alt.astype(np.float64), 0, 3000)
    t = np.clip(aot.astype(np.float64), 0, 1.5)
    expected = _sre(ru.astype(np.float64), re.astype(np.float64), 0.9 - 2e-5 * a - 0.3 * t,
                    0.05 + 1e-5 * a + 0.1 * t, 0.1 - 1e-5 * a + 0.08 * t)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_uniform_environment_is_the_identity():
    """rho_env = rho_unif = rho gives SRE = rho. Proof: (1 - rho S) / (1 - rho S) = 1, so
    SRE = (rho (T_dir + T_dif) - rho T_dif) / T_dir = rho T_dir / T_dir = rho. In float32, x / x == 1
    exactly, and the remaining cancellation costs a few ulps times T / T_dir."""
    lut = random_minilut(seed=3, nb=3)
    rng = np.random.default_rng(3)
    rho = rng.uniform(-0.05, 1.0, (3, 20, 25)).astype(np.float32)
    alt = rng.uniform(0, 1500, (20, 25)).astype(np.float32)
    aot = rng.uniform(0, 1.2, (20, 25)).astype(np.float32)
    out = environment_correction(rho, rho, alt, aot, lut)
    np.testing.assert_allclose(out, rho, rtol=3e-6, atol=3e-7)


@settings(max_examples=50, deadline=None)
@given(
    rho=st.floats(0.0, 1.0),
    tdir=st.floats(0.3, 0.95),
    tdif=st.floats(0.0, 0.4),
    s=st.floats(0.0, 0.4),
)
def test_property_identity_for_uniform_surroundings(rho, tdir, tdif, s):
    lut = _lut([tdir], [tdif], [s])
    r = np.full((1, 1, 3), rho, np.float32)
    out = environment_correction(r, r, np.zeros((1, 3)), np.full((1, 3), 0.4), lut)
    np.testing.assert_allclose(out, r, rtol=1e-5, atol=1e-6)


def test_brighter_surroundings_darken_the_pixel():
    """Adjacency adds light from the environment: removing it lowers SRE when rho_env > rho_unif."""
    lut = realistic_minilut()
    nb = len(lut.bands)
    ru = np.full((nb, 1, 2), 0.05, np.float32)
    re = np.stack([np.full((nb, 1), 0.05), np.full((nb, 1), 0.4)], axis=-1).astype(np.float32)
    out = environment_correction(ru, re, np.zeros((1, 2)), np.full((1, 2), 0.3), lut)
    assert (out[:, 0, 1] < out[:, 0, 0]).all()


def test_nan_propagation():
    lut = random_minilut(seed=4, nb=2)
    ru = np.full((2, 2, 3), 0.2, np.float32)
    re = np.full((2, 2, 3), 0.1, np.float32)
    alt = np.full((2, 3), 100.0, np.float32)
    aot = np.full((2, 3), 0.2, np.float32)
    alt[0, 0] = np.nan
    aot[0, 1] = np.nan
    re[1, 1, 1] = np.nan
    ru[0, 1, 2] = np.nan
    out = environment_correction(ru, re, alt, aot, lut)
    nan = np.isnan(out)
    assert nan[:, 0, 0].all() and nan[:, 0, 1].all() and nan[1, 1, 1] and nan[0, 1, 2]
    assert nan.sum() == 6


def test_recovers_the_surface_of_the_forward_model():
    """TOA of a pixel rho_s in surroundings rho_e (physical model, §3.6 coupling), inverted by the mini-LUT
    then corrected with the true rho_e, gives rho_s back (up to the LUT's interpolation error)."""
    from tests.atmosphere_luts import SUN_AZIMUTH, SUN_ZENITH, VIEW_AZIMUTH, VIEW_ZENITH

    lut = realistic_minilut()
    fwd = forward_model()
    rng = np.random.default_rng(5)
    shape = (20, 24)
    alt = smooth_field(rng, shape, 0.0, 3000.0)
    aot = smooth_field(rng, shape, 0.02, 0.6)
    nb = len(lut.bands)
    rho_s = rng.uniform(0.0, 0.5, (nb,) + shape)
    rho_e = rng.uniform(0.0, 0.5, (nb,) + shape)
    toa_star = np.empty((nb,) + shape, np.float32)
    for b, band in enumerate(lut.bands):
        t = fwd.terms(band, SUN_ZENITH, VIEW_ZENITH[band], SUN_AZIMUTH - VIEW_AZIMUTH[band], alt, aot, 2.0)
        toa_star[b] = fwd.toa_from_terms(t, rho_s[b], rho_e[b]) / t.t_gas
    rho_unif = apply_minilut(toa_star, alt, aot, lut)
    sre = environment_correction(rho_unif, rho_e.astype(np.float32), alt, aot, lut)
    assert np.abs(rho_unif - rho_s).max() > 0.04  # the adjacency effect is there (0.2 in B02)...
    np.testing.assert_allclose(sre, rho_s, rtol=0, atol=3e-3)  # ...and removed (observed 1.2e-3)


def test_explicit_cpu_backend_and_shape_errors():
    lut = random_minilut(nb=2)
    z = np.zeros((2, 3, 4), np.float32)
    out = environment_correction(z, z, np.zeros((3, 4)), np.zeros((3, 4)), lut, backend=CPU)
    assert type(out) is np.ndarray
    with pytest.raises(InputError, match="rho_env has shape"):
        environment_correction(z, z[:, :2], np.zeros((3, 4)), np.zeros((3, 4)), lut)
    with pytest.raises(InputError, match="3 bands but the mini-LUT has 2"):
        environment_correction(np.zeros((3, 3, 4)), np.zeros((3, 3, 4)), np.zeros((3, 4)), np.zeros((3, 4)), lut)
    with pytest.raises(InputError, match="aot has shape"):
        environment_correction(z, z, np.zeros((3, 4)), np.zeros((4, 3)), lut)


# ----------------------------------------------------------------------------------------------
# rho_env: box mean over valid pixels


def _brute_env(v: np.ndarray, radius: int, valid: np.ndarray | None) -> np.ndarray:
    nb, ny, nx = v.shape
    out = np.full(v.shape, np.nan)
    for b in range(nb):
        for y in range(ny):
            for x in range(nx):
                win = v[b, max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1]
                ok = ~np.isnan(win)
                if valid is not None:
                    ok &= valid[max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1]
                if ok.any():
                    out[b, y, x] = win[ok].mean()
    return out


@pytest.mark.parametrize("radius", [0, 1, 2, 4])
def test_environment_reflectance_matches_a_brute_force_box_mean(radius):
    rng = np.random.default_rng(radius)
    v = rng.uniform(0, 0.6, (2, 13, 17)).astype(np.float32)
    v[0, 3, 4] = np.nan
    v[1, 5:8, 6:9] = np.nan
    valid = rng.random((13, 17)) > 0.3
    valid[:, :6] = False  # a wide invalid strip: windows with no valid pixel -> NaN
    out = environment_reflectance(v, radius, valid)
    assert out.dtype == np.float32 and out.shape == v.shape
    expected = _brute_env(v.astype(np.float64), radius, valid)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-7)
    assert np.isnan(out).any()


def test_environment_reflectance_hand_values_and_2d():
    v = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], np.float32)
    out = environment_reflectance(v, 1)
    # corner (0, 0): mean of 1, 2, 4, 5; centre column (0, 1): mean of all six
    np.testing.assert_allclose(out, [[3.0, 3.5, 4.0], [3.0, 3.5, 4.0]], rtol=1e-7)
    valid = np.array([[True, False, True], [False, False, False]])
    np.testing.assert_allclose(environment_reflectance(v, 1, valid), [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    assert np.isnan(environment_reflectance(v, 0, valid)[1]).all()


@settings(max_examples=30, deadline=None)
@given(value=st.floats(0.0, 1.0), radius=st.integers(0, 5), seed=st.integers(0, 1000))
def test_property_constant_field_stays_constant(value, radius, seed):
    rng = np.random.default_rng(seed)
    v = np.full((1, 9, 11), value, np.float32)
    valid = rng.random((9, 11)) > 0.5
    valid[4, 5] = True
    out = environment_reflectance(v, radius, valid)
    finite = ~np.isnan(out)
    assert finite[0, 4, 5]
    np.testing.assert_allclose(out[finite], np.float32(value), rtol=1e-6, atol=1e-7)


def test_environment_reflectance_errors():
    with pytest.raises(InputError, match="radius"):
        environment_reflectance(np.zeros((1, 3, 3)), -1)
    with pytest.raises(InputError, match="valid has shape"):
        environment_reflectance(np.zeros((1, 3, 3)), 1, np.ones((2, 3), bool))


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
@pytest.mark.parametrize("shape", [(3, 301, 257), (1, 1, 1), (10, 33, 7)])
def test_gpu_matches_numpy_random(cp, shape):
    nb, ny, nx = shape
    lut = random_minilut(seed=sum(shape), nb=nb)
    rng = np.random.default_rng(sum(shape))
    ru = rng.uniform(-0.05, 1.0, shape).astype(np.float32)
    re = rng.uniform(0.0, 0.8, shape).astype(np.float32)
    alt = rng.uniform(lut.altitude[0] - 300, lut.altitude[-1] + 300, (ny, nx)).astype(np.float32)
    aot = rng.uniform(lut.aot[0] - 0.1, lut.aot[-1] + 0.2, (ny, nx)).astype(np.float32)
    alt.flat[::11] = lut.altitude[0]
    ru.flat[::23] = np.nan
    re.flat[::29] = np.nan
    alt.flat[2::31] = np.nan
    aot.flat[3::37] = np.nan
    ref = environment_correction_numpy(ru, re, alt, aot, lut)
    got = environment_correction(*(cp.asarray(a) for a in (ru, re, alt, aot)), lut)
    _assert_close(cp, got, ref)


@pytest.mark.gpu
def test_gpu_matches_numpy_realistic(cp):
    from gpumaja.backend import Backend

    lut = realistic_minilut()
    nb = len(lut.bands)
    rng = np.random.default_rng(8)
    shape = (480, 520)
    alt = smooth_field(rng, shape, 0.0, 4000.0)
    aot = smooth_field(rng, shape, 0.0, 1.5)
    ru = np.stack([smooth_field(rng, shape, 0.0, 0.5) for _ in range(nb)])
    re = np.stack([smooth_field(rng, shape, 0.02, 0.4) for _ in range(nb)])
    ref = environment_correction_numpy(ru, re, alt, aot, lut)
    got = environment_correction(ru, re, alt, aot, lut, backend=Backend("gpu", cp, "test GPU"))
    _assert_close(cp, got, ref)


@pytest.mark.gpu
@pytest.mark.parametrize("radius", [0, 3, 10])
def test_gpu_environment_reflectance_matches_numpy(cp, radius):
    rng = np.random.default_rng(radius)
    v = rng.uniform(0, 0.6, (4, 120, 97)).astype(np.float32)
    v[:, 10:20, 30:50] = np.nan
    valid = rng.random((120, 97)) > 0.2
    valid[60:, :40] = False
    ref = environment_reflectance(v, radius, valid)
    got = environment_reflectance(cp.asarray(v), radius, cp.asarray(valid))
    assert type(got) is cp.ndarray
    got = cp.asnumpy(got)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=2e-7, atol=1e-7)
