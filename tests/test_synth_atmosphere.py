"""Physics checks of the synthetic forward model (gpumaja.synth.atmosphere)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.synth import atmosphere as atm


@pytest.fixture(scope="module")
def lut() -> atm.ForwardLUT:
    return atm.default_lut()


def test_rayleigh_optical_depth_443_and_lambda_minus_4():
    assert atm.rayleigh_optical_depth(443.0) == pytest.approx(0.236, abs=0.002)
    t1, t2 = atm.rayleigh_optical_depth(443.0), atm.rayleigh_optical_depth(865.0)
    exponent = np.log(t1 / t2) / np.log(865.0 / 443.0)
    assert 3.9 < exponent < 4.2


def test_rayleigh_scales_with_pressure():
    ratio = atm.rayleigh_optical_depth(560.0, 2000.0) / atm.rayleigh_optical_depth(560.0, 0.0)
    assert ratio == pytest.approx(atm.pressure_hpa(2000.0) / 1013.25)
    assert 0.77 < ratio < 0.81


def test_delta_eddington_conserves_energy_without_absorption():
    for tau, g, mu in ((0.1, 0.0, 0.9), (0.5, 0.65, 0.4), (20.0, 0.85, 0.6)):
        r, t = atm.delta_eddington(tau, 1.0, g, mu)
        assert r + t == pytest.approx(1.0, abs=1e-6)
    r, t = atm.delta_eddington(0.5, 0.8, 0.65, 0.5)
    assert r + t < 0.95  # absorbing layer loses energy


def test_path_reflectance_blue_above_nir_and_grows_with_aot(lut):
    for aot in (0.0, 0.1, 0.4):
        blue = lut.path_reflectance("B02", 60, 5, 90, 0, aot)
        nir = lut.path_reflectance("B8A", 60, 5, 90, 0, aot)
        assert blue > nir
    for band in ("B01", "B02", "B04", "B8A", "B11", "B12"):
        values = [float(lut.path_reflectance(band, 45, 5, 60, 200, a)) for a in (0.0, 0.1, 0.3, 0.6, 1.0)]
        assert np.all(np.diff(values) > 0), (band, values)


def test_toa_over_dark_surface_grows_with_aot(lut):
    for band in ("B02", "B04", "B8A", "B12"):
        values = [float(lut.toa(0.02, 0.02, band, 50, 5, 60, 0, a, 1.5)) for a in (0.0, 0.2, 0.5, 1.0)]
        assert np.all(np.diff(values) > 0), (band, values)


def test_toa_over_bright_surface_falls_with_aot_and_transmission_below_one(lut):
    for band in ("B04", "B8A", "B11"):
        values = [float(lut.toa(0.5, 0.5, band, 40, 5, 60, 0, a, 1.0)) for a in (0.0, 0.2, 0.5, 1.0)]
        assert np.all(np.diff(values) < 0), (band, values)
    t = lut.terms("B8A", 40, 5, 60, 0, np.array([0.0, 0.5, 1.0]), 1.0)
    tt = (t.t_dir_down + t.t_dif_down) * (t.t_dir_up + t.t_dif_up)
    assert np.all(tt < 1.0) and np.all(np.diff(tt) < 0)
    assert np.all(t.t_dif_down > 0) and np.all(np.diff(t.t_dir_down) < 0)


def test_gas_transmission_water_vapour_b09_vs_b04():
    wv = np.array([0.5, 1.5, 3.0])
    b09 = atm.gas_transmission("B09", 40, 5, wv, 0.3)
    b04 = atm.gas_transmission("B04", 40, 5, wv, 0.3)
    assert np.all(np.diff(b09) < 0) and b09[-1] / b09[0] < 0.6
    assert np.ptp(b04) < 0.02
    assert atm.gas_transmission("B10", 40, 5, 1.0, 0.3) < 0.05  # the 1375 nm band sees no ground
    assert atm.gas_transmission("B03", 40, 5, 1.0, 0.4) < atm.gas_transmission("B03", 40, 5, 1.0, 0.25)


def test_lut_matches_the_exact_model_at_and_between_nodes(lut):
    exact = atm.path_reflectance_exact(442.7, 60.0, 6.0, 90.0, 1000.0, 0.2)
    assert lut.path_reflectance("B01", 60.0, 6.0, 90.0, 1000.0, 0.2) == pytest.approx(exact, rel=1e-9)
    between = atm.path_reflectance_exact(664.6, 52.0, 7.0, 75.0, 700.0, 0.27)
    assert lut.path_reflectance("B04", 52.0, 7.0, 75.0, 700.0, 0.27) == pytest.approx(between, rel=0.02)


@settings(max_examples=60, deadline=None)
@given(
    rho=st.floats(0.0, 0.9), env=st.floats(0.0, 0.9), band=st.sampled_from(atm.S2_BAND_NAMES),
    ts=st.floats(0.0, 78.0), tv=st.floats(0.0, 12.0), dphi=st.floats(-360.0, 360.0),
    alt=st.floats(0.0, 3500.0), aot=st.floats(0.0, 1.2), wv=st.floats(0.2, 4.0),
)
def test_inverse_recovers_surface_reflectance(lut, rho, env, band, ts, tv, dphi, alt, aot, wv):
    toa = lut.toa(rho, env, band, ts, tv, dphi, alt, aot, wv, 0.3)
    back = lut.surface_reflectance(toa, env, band, ts, tv, dphi, alt, aot, wv, 0.3)
    assert back == pytest.approx(rho, abs=1e-9)
    uniform = lut.toa(rho, rho, band, ts, tv, dphi, alt, aot, wv, 0.3)
    assert lut.surface_reflectance(uniform, None, band, ts, tv, dphi, alt, aot, wv, 0.3) == pytest.approx(
        rho, abs=1e-9)


def test_shadow_darkens_and_vectorises(lut):
    rho = np.full((4, 5), 0.2)
    sun = np.linspace(0, 1, 20).reshape(4, 5)
    toa = lut.toa(rho, 0.2, "B04", 60, 5, 90, 100, 0.1, 1.0, sun=sun)
    assert toa.shape == (4, 5)
    assert np.all(np.diff(toa.ravel()) > 0)
    assert toa.ravel()[-1] == pytest.approx(float(lut.toa(0.2, 0.2, "B04", 60, 5, 90, 100, 0.1, 1.0)))


def test_adjacency_brighter_environment_brightens_dark_pixel(lut):
    dark_env = lut.toa(0.02, 0.02, "B8A", 50, 5, 60, 0, 0.3, 1.0)
    bright_env = lut.toa(0.02, 0.4, "B8A", 50, 5, 60, 0, 0.3, 1.0)
    assert bright_env > dark_env
