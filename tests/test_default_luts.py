"""The 6S LUTs shipped in the package (gpumaja/data/luts): physics and an external reference case.

Expectations come from outside the code under test: the Py6S reference case quoted in
../shared/data/README.md (S2A B04, continental, AOT 0.2, sun 35°, view 5°, sea level, TOA 0.10 ->
surface 0.08746 with Py6S's default mid-latitude summer gases), Rayleigh optical depths (Bodhaine et
al. 1999: 0.2353 at 443 nm, 0.0155 at 865 nm), and the MAJA GIPP's Rayleigh-only values (maja-l2a.md §4).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpumaja.atmosphere.gas import gas_correction
from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.errors import InputError
from gpumaja.io.lutfile import default_lut_path, load_lut

SENSORS = ("S2A", "S2B", "L8")


def _lut(sensor):
    try:
        return load_lut(default_lut_path(sensor))
    except InputError as exc:
        pytest.skip(f"default LUT not built: {exc}")


def _toc(lut, band, toa, sz, vz, dphi, alt, aot):
    ml = lut.reduce(sz, {band: vz}, {band: dphi}, (band,))
    t = np.asarray(toa, np.float32).reshape(1, 1, -1)
    n = t.shape[-1]
    return apply_minilut(t, np.full((1, n), alt, np.float32), np.full((1, n), aot, np.float32), ml)[0, 0]


@pytest.mark.parametrize("sensor", SENSORS)
def test_default_lut_loads_with_its_sensor_and_bands(sensor):
    lut = _lut(sensor)
    assert lut.sensor == sensor
    expected = ("B1", "B2", "B3", "B4", "B5", "B6", "B7") if sensor == "L8" else (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    assert lut.bands == expected
    assert lut.tables.meta["aerosol_model"] == "continental"


def test_py6s_reference_case_through_gas_and_toc():
    """README of shared/data: 0.10 TOA -> 0.08746 surface (Py6S, with its default gases)."""
    lut = _lut("S2A")
    m = 1 / math.cos(math.radians(35.0)) + 1 / math.cos(math.radians(5.0))
    # Py6S default profile = 6S mid-latitude summer: 2.93 g/cm2 water vapour, 0.319 cm-atm ozone
    toas = gas_correction(np.full((1, 1, 1), 0.10, np.float32), np.zeros((1, 1), np.float32),
                          np.full((1, 1), 2.93, np.float32), lut.smac(("B04",)), np.array([m], np.float32), 0.319)
    rho = _toc(lut, "B04", toas[0, 0], 35.0, 5.0, 0.0, 0.0, 0.2)
    assert rho[0] == pytest.approx(0.08746, abs=0.002)


@pytest.mark.parametrize("sensor,band,tau_r", [("S2A", "B01", 0.2353), ("S2A", "B8A", 0.0155),
                                               ("L8", "B1", 0.2353), ("L8", "B5", 0.0155)])
def test_direct_transmission_at_zenith_is_rayleigh(sensor, band, tau_r):
    lut = _lut(sensor)
    ml = lut.reduce(0.0, {band: 0.0}, {band: 0.0}, (band,))
    # sea level, AOT 0: exp(-tau_R), band-integrated (a few % wide band: 3 % tolerance on tau)
    assert ml.dirt_sun[0, 0, 0] == pytest.approx(math.exp(-tau_r), abs=0.03 * tau_r)
    # diffuse part positive, total below 1
    assert 0 < ml.dift_sun[0, 0, 0] < 1 - ml.dirt_sun[0, 0, 0]


def test_rayleigh_only_agrees_with_the_maja_gipp(gipp_dir):
    """At AOT 0 both LUTs are Rayleigh scattering: the GIPP's nadir values of maja-l2a.md §4
    (443 nm: TOA* 0.01 -> -0.1016, 0.29 -> 0.239; 865 nm: 0.01 -> 0.0043)."""
    lut = _lut("S2A")
    blue = _toc(lut, "B01", [0.01, 0.29], 0.0, 0.0, 0.0, 0.0, 0.0)
    nir = _toc(lut, "B8A", [0.01], 0.0, 0.0, 0.0, 0.0, 0.0)
    assert blue[0] == pytest.approx(-0.1016, abs=0.01)
    assert blue[1] == pytest.approx(0.239, abs=0.01)
    assert nir[0] == pytest.approx(0.0043, abs=0.002)


@pytest.mark.parametrize("sensor", SENSORS)
def test_more_aerosol_means_darker_surface_for_the_same_dark_toa(sensor):
    lut = _lut(sensor)
    band = lut.bands[0]
    r = [_toc(lut, band, [0.12], 40.0, 5.0, 60.0, 0.0, aot)[0] for aot in (0.0, 0.1, 0.3, 0.6)]
    assert all(a > b for a, b in zip(r, r[1:]))


@pytest.mark.parametrize("sensor", SENSORS)
def test_higher_ground_means_less_rayleigh_path(sensor):
    lut = _lut(sensor)
    band = lut.bands[0]
    low, high = (_toc(lut, band, [0.15], 40.0, 5.0, 60.0, alt, 0.1)[0] for alt in (0.0, 3000.0))
    assert high > low


def test_s2_water_vapour_table_is_physical():
    lut = _lut("S2A")
    w = lut.water_vapour(40.0, 5.0, np.array([0.2, 0.5, 0.8], np.float32))
    assert np.all(np.diff(w) < 0)  # more absorption in B9 (lower ratio) = more water
    # SMAC water law of B9 (a = -0.68, n = 0.475, maja-l2a.md §3.3): t = 0.5 at W m ~ 1, m ~ 2.3
    assert 0.2 < float(w[1]) < 1.0


def test_s2_water_vapour_table_agrees_with_the_maja_gipp(gipp_dir):
    from gpumaja.io.gipp import load_gipp_lut

    ratios = np.linspace(0.1, 0.8, 8).astype(np.float32)
    ours = _lut("S2A").water_vapour(40.0, 5.0, ratios)
    gipp = load_gipp_lut(gipp_dir, "S2A").water_vapour(40.0, 5.0, ratios)
    assert np.max(np.abs(ours - gipp)) < 0.3  # g/cm2
