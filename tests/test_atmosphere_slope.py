"""slope_correction (FRE, MG2 sun flags): NumPy twin against the §3.7 formula written out in float64 and
hand geometries; the CUDA kernel against the twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.atmosphere.slope import slope_correction, slope_correction_numpy
from gpumaja.backend import CPU
from gpumaja.errors import InputError
from gpumaja.model.l2a import MG2_SUN_TOO_LOW, MG2_TANGENT_SUN
from gpumaja.model.params import L2Params
from gpumaja.model.terrain import slope_aspect
from tests.atmosphere_luts import (
    SUN_AZIMUTH,
    SUN_ZENITH,
    VIEW_AZIMUTH,
    VIEW_ZENITH,
    random_minilut,
    realistic_minilut,
    smooth_field,
)

P = L2Params()
ALT = np.array([0.0, 2000.0], np.float32)
AOT = np.array([0.0, 1.0], np.float32)


def _lut(dirt_sun, dift_sun, nb: int = 1) -> MiniLUT:
    """Constant solar transmissions per band; the viewing ones are deliberately different (unused by §3.7)."""
    shape = (nb, 2, 2)

    def tab(v):
        return np.broadcast_to(np.asarray(v, np.float32).reshape(-1, 1, 1), shape).astype(np.float32)

    junk = np.full(shape, 0.123, np.float32)
    return MiniLUT(tuple(f"B{b}" for b in range(nb)), ALT, AOT, np.array([0.0, 1.0], np.float32),
                   np.zeros(shape + (2,), np.float32), junk, junk, tab(dirt_sun), tab(dift_sun), junk)


def _fre(sre, env, tdir, tdif, ts, ps, tv, pv, slope, aspect, min_cos_i, min_cos_e):
    """maja-l2a.md §3.7 in float64; angles in degrees."""
    ts, ps, tv, pv, s, a = (np.radians(np.asarray(x, np.float64)) for x in (ts, ps, tv, pv, slope, aspect))
    cos_i = np.maximum(np.cos(ts) * np.cos(s) + np.sin(ts) * np.sin(s) * np.cos(ps - a), min_cos_i)
    cos_e = np.maximum(np.cos(tv) * np.cos(s) + np.sin(tv) * np.sin(s) * np.cos(pv - a), min_cos_e)
    f = (cos_i + cos_e) / (np.cos(ts) + np.cos(tv))
    t = tdir + tdif
    den = tdir * cos_i / np.cos(ts) + tdif * (1 + np.cos(s)) / 2 + t * env * (1 - np.cos(s)) / 2
    return np.where(sre >= 0, sre * t * f / den, sre)


def _run(sre, env, slope_deg, aspect_deg, ts, ps, tv, pv, lut, min_cos_i=P.slope_min_cos_i,
         min_cos_e=P.min_cos_e, min_cos_ratio=P.min_cos_ratio, alt=None, aot=None, backend=None):
    shape = np.shape(slope_deg)
    alt = np.full(shape, 500.0, np.float32) if alt is None else alt
    aot = np.full(shape, 0.2, np.float32) if aot is None else aot
    return slope_correction(
        sre, env, alt, aot, np.radians(slope_deg).astype(np.float32), np.radians(aspect_deg).astype(np.float32),
        ts, ps, tv, pv, lut, min_cos_i, min_cos_e, min_cos_ratio, backend=backend,
    )


def test_flags_on_hand_geometries():
    """θs = 60°, φs = 150°; aspect 330° faces away from the sun, 150° toward it:
    S = 30° away: cos i = cos60 cos30 - sin60 sin30 = 0      -> clamped to 0.05 (64); 0.05/0.5 = 0.1 (128)
    S = 20° away: cos i = 0.5 * 0.9397 - 0.8660 * 0.3420 = 0.1736; ratio 0.347                   -> none
    S = 25° away: cos i = 0.5 * 0.9063 - 0.8660 * 0.4226 = 0.0872; ratio 0.174 < 0.2             -> 128
    S = 60° toward: cos i = cos(60 - 60) = 1                                                       -> none
    flat: cos i = cos θs = 0.5                                                                     -> none"""
    slope = np.array([[0.0, 30.0, 20.0, 25.0, 60.0]])
    aspect = np.array([[0.0, 330.0, 330.0, 330.0, 150.0]])
    sre = np.full((1, 1, 5), 0.2, np.float32)
    _, mg2 = _run(sre, sre, slope, aspect, 60.0, 150.0, [5.0], [100.0], _lut([0.8], [0.1]),
                  min_cos_i=0.05, min_cos_ratio=0.2)
    assert mg2.dtype == np.uint8
    assert mg2.tolist() == [[0, MG2_SUN_TOO_LOW | MG2_TANGENT_SUN, 0, MG2_TANGENT_SUN, 0]]
    # with MAJA's defaults (0.2, 0.2) the clamped cos i / cos θs >= 0.2: only "sun too low"
    _, mg2 = _run(sre, sre, slope, aspect, 60.0, 150.0, [5.0], [100.0], _lut([0.8], [0.1]))
    assert mg2.tolist() == [[0, MG2_SUN_TOO_LOW, MG2_SUN_TOO_LOW, MG2_SUN_TOO_LOW, 0]]


def test_fre_matches_the_formula():
    rng = np.random.default_rng(0)
    shape = (6, 7)
    slope = rng.uniform(0.5, 50.0, shape)
    aspect = rng.uniform(0.0, 360.0, shape)
    sre = rng.uniform(0.0, 0.7, (2,) + shape).astype(np.float32)
    env = rng.uniform(0.0, 0.5, (2,) + shape).astype(np.float32)
    tv, pv = [3.0, 9.0], [100.0, 290.0]
    lut = _lut([0.75, 0.6], [0.12, 0.2], nb=2)
    fre, _ = _run(sre, env, slope, aspect, 42.0, 160.0, tv, pv, lut)
    for b in range(2):
        expected = _fre(sre[b].astype(np.float64), env[b].astype(np.float64), [0.75, 0.6][b], [0.12, 0.2][b],
                        42.0, 160.0, tv[b], pv[b], slope, aspect, P.slope_min_cos_i, P.min_cos_e)
        np.testing.assert_allclose(fre[b], expected, rtol=3e-6, atol=1e-7)


def test_slope_facing_the_sun_gets_full_incidence():
    """Aspect = sun azimuth and slope = sun zenith: cos i = 1 (terrain.py: aspect = downslope direction,
    clockwise from north; sun azimuth = direction toward the sun)."""
    ts, ps = 38.0, 152.0
    sre = np.full((1, 1, 1), 0.3, np.float32)
    env = np.full((1, 1, 1), 0.1, np.float32)
    tdir, tdif = 0.8, 0.1
    fre, mg2 = _run(sre, env, np.array([[ts]]), np.array([[ps]]), ts, ps, [0.0], [0.0], _lut([tdir], [tdif]))
    cs, s = math.cos(math.radians(ts)), math.radians(ts)
    # θv = 0: cos e = cos S
    expected = 0.3 * 0.9 * (1 + math.cos(s)) / (cs + 1) / (
        tdir / cs + tdif * (1 + math.cos(s)) / 2 + 0.9 * 0.1 * (1 - math.cos(s)) / 2
    )
    np.testing.assert_allclose(fre[0, 0, 0], expected, rtol=2e-6)
    assert fre[0, 0, 0] < 0.3 and mg2[0, 0] == 0  # a sunlit slope is brighter than flat ground
    fre_away, _ = _run(sre, env, np.array([[15.0]]), np.array([[ps + 180.0]]), ts, ps, [0.0], [0.0],
                       _lut([tdir], [tdif]))
    assert fre_away[0, 0, 0] > 0.3  # a shaded slope is darker


def test_cos_e_clamped():
    """S = 85° facing away from the sensor (θv = 10°): cos e = cos10 cos85 - sin10 sin85 = -0.087 -> 0.1."""
    sre = np.full((1, 1, 1), 0.2, np.float32)
    env = np.full((1, 1, 1), 0.2, np.float32)
    fre, _ = _run(sre, env, np.array([[85.0]]), np.array([[290.0]]), 30.0, 10.0, [10.0], [110.0],
                  _lut([0.7], [0.2]))
    ts, s = math.radians(30.0), math.radians(85.0)
    cos_i = max(math.cos(ts) * math.cos(s) + math.sin(ts) * math.sin(s) * math.cos(math.radians(10.0 - 290.0)), 0.2)
    f = (cos_i + 0.1) / (math.cos(ts) + math.cos(math.radians(10.0)))
    den = 0.7 * cos_i / math.cos(ts) + 0.2 * (1 + math.cos(s)) / 2 + 0.9 * 0.2 * (1 - math.cos(s)) / 2
    np.testing.assert_allclose(fre[0, 0, 0], 0.2 * 0.9 * f / den, rtol=3e-6)


def test_flat_terrain_returns_sre_bit_for_bit():
    lut = random_minilut(seed=1, nb=3)
    rng = np.random.default_rng(1)
    shape = (30, 40)
    sre = rng.uniform(-0.1, 1.2, (3,) + shape).astype(np.float32)
    sre.flat[::37] = np.nan
    env = rng.uniform(0.0, 0.6, (3,) + shape).astype(np.float32)
    alt = rng.uniform(0, 1000, shape).astype(np.float32)
    aot = rng.uniform(0, 1, shape).astype(np.float32)
    fre, mg2 = slope_correction(sre, env, alt, aot, np.zeros(shape, np.float32),
                                rng.uniform(0, 6.3, shape).astype(np.float32), 40.0, 150.0,
                                [3.0, 5.0, 7.0], [100.0, 105.0, 110.0], lut, 0.2, 0.1, 0.2)
    np.testing.assert_array_equal(fre, sre)
    assert not mg2.any()


def test_flat_terrain_with_a_low_sun_is_flagged_but_unchanged():
    # θs = 80°: cos θs = 0.174 < 0.2 -> "sun too low", ratio = 0.2 / 0.174 > 0.2 -> no tangent flag
    sre = np.full((1, 2, 2), 0.25, np.float32)
    fre, mg2 = _run(sre, sre * 0.5, np.zeros((2, 2)), np.zeros((2, 2)), 80.0, 170.0, [5.0], [100.0],
                    _lut([0.5], [0.2]))
    np.testing.assert_array_equal(fre, sre)
    assert (mg2 == MG2_SUN_TOO_LOW).all()


def test_negative_and_nan_sre_kept():
    sre = np.array([[[-0.02, np.nan, 0.3]]], np.float32)
    fre, _ = _run(sre, np.full_like(sre, 0.1), np.full((1, 3), 30.0), np.full((1, 3), 10.0), 40.0, 150.0,
                  [5.0], [100.0], _lut([0.8], [0.1]))
    assert fre[0, 0, 0] == np.float32(-0.02) and np.isnan(fre[0, 0, 1]) and fre[0, 0, 2] != np.float32(0.3)


def test_nan_inputs_on_tilted_pixels():
    sre = np.full((1, 1, 4), 0.3, np.float32)
    env = np.full((1, 1, 4), 0.1, np.float32)
    alt = np.array([[np.nan, 100.0, 100.0, 100.0]], np.float32)
    aot = np.array([[0.1, np.nan, 0.1, 0.1]], np.float32)
    env[0, 0, 2] = np.nan
    slope = np.array([[20.0, 20.0, 20.0, np.nan]])
    fre, mg2 = _run(sre, env, slope, np.full((1, 4), 10.0), 40.0, 150.0, [5.0], [100.0], _lut([0.8], [0.1]),
                    alt=alt, aot=aot)
    assert np.isnan(fre).all()
    assert mg2[0, 3] == 0


def test_uses_the_solar_transmissions_interpolated_in_altitude_and_aot():
    # dirt_sun = 0.9 - 0.2 aot, dift_sun = 0.05 + 0.1 aot (no altitude dependence); aot = 0.5 (mid-cell)
    _, T = np.meshgrid(ALT, AOT, indexing="ij")
    lut = MiniLUT(("B0",), ALT, AOT, np.array([0.0, 1.0], np.float32), np.zeros((1, 2, 2, 2), np.float32),
                  np.full((1, 2, 2), 0.5, np.float32), np.full((1, 2, 2), 0.5, np.float32),
                  (0.9 - 0.2 * T)[None].astype(np.float32), (0.05 + 0.1 * T)[None].astype(np.float32),
                  np.full((1, 2, 2), 0.1, np.float32))
    sre = np.full((1, 1, 1), 0.3, np.float32)
    env = np.full((1, 1, 1), 0.15, np.float32)
    fre, _ = _run(sre, env, np.array([[25.0]]), np.array([[200.0]]), 35.0, 140.0, [6.0], [95.0], lut,
                  aot=np.full((1, 1), 0.5, np.float32))
    expected = _fre(0.3, 0.15, 0.8, 0.1, 35.0, 140.0, 6.0, 95.0, 25.0, 200.0, 0.2, 0.1)
    np.testing.assert_allclose(fre[0, 0, 0], expected, rtol=3e-6)


@settings(max_examples=40, deadline=None)
@given(ts=st.floats(0.0, 85.0), sre=st.floats(-0.2, 1.5), env=st.floats(0.0, 1.0), seed=st.integers(0, 999))
def test_property_flat_is_identity(ts, sre, env, seed):
    lut = random_minilut(seed=seed, nb=1)
    s = np.full((1, 2, 3), sre, np.float32)
    fre, _ = _run(s, np.full_like(s, env), np.zeros((2, 3)), np.full((2, 3), 123.0), ts, 180.0, [8.0], [100.0],
                  lut)
    np.testing.assert_array_equal(fre, s)


def test_explicit_cpu_backend_and_errors():
    lut = _lut([0.8], [0.1])
    z = np.zeros((1, 2, 2), np.float32)
    fre, mg2 = _run(z, z, np.zeros((2, 2)), np.zeros((2, 2)), 30.0, 150.0, [5.0], [100.0], lut, backend=CPU)
    assert type(fre) is np.ndarray and type(mg2) is np.ndarray
    with pytest.raises(InputError, match="sun_zenith"):
        _run(z, z, np.zeros((2, 2)), np.zeros((2, 2)), 90.0, 150.0, [5.0], [100.0], lut)
    with pytest.raises(InputError, match="view_zenith has 2 values for 1 bands"):
        _run(z, z, np.zeros((2, 2)), np.zeros((2, 2)), 30.0, 150.0, [5.0, 6.0], [100.0], lut)
    with pytest.raises(InputError, match="slope has shape"):
        _run(z, z, np.zeros((2, 3)), np.zeros((2, 2)), 30.0, 150.0, [5.0], [100.0], lut,
             alt=np.zeros((2, 2), np.float32), aot=np.zeros((2, 2), np.float32))
    with pytest.raises(InputError, match="rho_env has shape"):
        _run(z, z[:, :1], np.zeros((2, 2)), np.zeros((2, 2)), 30.0, 150.0, [5.0], [100.0], lut)


# ----------------------------------------------------------------------------------------------
# GPU: the CUDA kernel against the NumPy twin


@pytest.fixture
def cp():
    import cupy

    return cupy


def _near_threshold(slope, aspect, ts, ps, min_cos_i, min_cos_ratio, eps=1e-5) -> np.ndarray:
    """Pixels whose float64 cos i (or ratio) is within eps of a threshold: there the last bit of cosf vs
    NumPy's cos decides the flag, so GPU and CPU may legitimately differ."""
    t, p = math.radians(ts), math.radians(ps)
    s, a = slope.astype(np.float64), aspect.astype(np.float64)
    cos_i = math.cos(t) * np.cos(s) + math.sin(t) * np.sin(s) * np.cos(p - a)
    ratio = np.maximum(cos_i, min_cos_i) / math.cos(t)
    return (np.abs(cos_i - min_cos_i) < eps) | (np.abs(ratio - min_cos_ratio) < eps)


def _compare(cp, got, ref, near, rtol, atol=1e-6):
    fre, mg2 = got
    fre_ref, mg2_ref = ref
    assert type(fre) is cp.ndarray and fre.dtype == cp.float32 and fre.shape == fre_ref.shape
    assert type(mg2) is cp.ndarray and mg2.dtype == cp.uint8 and mg2.shape == mg2_ref.shape
    fre, mg2 = cp.asnumpy(fre), cp.asnumpy(mg2)
    np.testing.assert_array_equal(mg2[~near], mg2_ref[~near])
    nan = np.isnan(fre_ref)
    np.testing.assert_array_equal(np.isnan(fre), nan)
    np.testing.assert_allclose(fre[~nan], fre_ref[~nan], rtol=rtol, atol=atol)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(3, 211, 305), (1, 1, 1), (10, 17, 9)])
@pytest.mark.parametrize("min_cos_i", [0.2, 0.05])
def test_gpu_matches_numpy_random(cp, shape, min_cos_i):
    nb, ny, nx = shape
    lut = random_minilut(seed=sum(shape), nb=nb)
    rng = np.random.default_rng(sum(shape))
    sre = rng.uniform(-0.1, 1.0, shape).astype(np.float32)
    env = rng.uniform(0.0, 0.6, shape).astype(np.float32)
    alt = rng.uniform(lut.altitude[0] - 300, lut.altitude[-1] + 300, (ny, nx)).astype(np.float32)
    aot = rng.uniform(lut.aot[0] - 0.1, lut.aot[-1] + 0.2, (ny, nx)).astype(np.float32)
    slope = rng.uniform(0.0, 1.3, (ny, nx)).astype(np.float32)
    slope.flat[::9] = 0.0  # flat pixels
    aspect = rng.uniform(0.0, 2 * np.pi, (ny, nx)).astype(np.float32)
    sre.flat[::41] = np.nan
    env.flat[::43] = np.nan
    alt.flat[::47] = np.nan
    slope.flat[5::53] = np.nan
    tv = rng.uniform(0.0, 12.0, nb)
    pv = rng.uniform(0.0, 360.0, nb)
    args = (45.0, 160.0, tv, pv, lut, min_cos_i, 0.1, 0.2)
    ref = slope_correction_numpy(sre, env, alt, aot, slope, aspect, *args)
    got = slope_correction(*(cp.asarray(a) for a in (sre, env, alt, aot, slope, aspect)), *args)
    near = _near_threshold(slope, aspect, 45.0, 160.0, min_cos_i, 0.2)
    assert near.sum() <= max(3, near.size // 1000)
    _compare(cp, got, ref, near, rtol=2e-6)
    flat = slope == 0
    np.testing.assert_array_equal(cp.asnumpy(got[0])[:, flat], sre[:, flat])  # bit for bit on the GPU too


@pytest.mark.gpu
def test_gpu_matches_numpy_realistic_dem(cp):
    from gpumaja.backend import Backend

    lut = realistic_minilut()
    nb = len(lut.bands)
    rng = np.random.default_rng(21)
    shape = (400, 450)
    dem = smooth_field(rng, shape, 200.0, 2800.0)
    dem[:80, :120] = 1500.0  # a plateau: slope exactly 0
    slope_deg, aspect_deg = slope_aspect(dem, 20.0)
    slope, aspect = np.radians(slope_deg).astype(np.float32), np.radians(aspect_deg).astype(np.float32)
    assert (slope == 0).sum() > 1000 and slope.max() > 0.3
    aot = smooth_field(rng, shape, 0.05, 0.6)
    sre = np.stack([smooth_field(rng, shape, 0.0, 0.5) for _ in range(nb)])
    env = np.stack([smooth_field(rng, shape, 0.02, 0.4) for _ in range(nb)])
    tv = [VIEW_ZENITH[b] for b in lut.bands]
    pv = [VIEW_AZIMUTH[b] for b in lut.bands]
    args = (SUN_ZENITH, SUN_AZIMUTH, tv, pv, lut, P.slope_min_cos_i, P.min_cos_e, P.min_cos_ratio)
    ref = slope_correction_numpy(sre, env, dem, aot, slope, aspect, *args)
    got = slope_correction(sre, env, dem, aot, slope, aspect, *args, backend=Backend("gpu", cp, "test GPU"))
    near = _near_threshold(slope, aspect, SUN_ZENITH, SUN_AZIMUTH, P.slope_min_cos_i, P.min_cos_ratio)
    _compare(cp, got, ref, near, rtol=1e-6)
