"""gas_transmission / gas_correction: NumPy twin against the closed form, against the independent SMAC
implementation of gpumaja.synth.atmosphere, and the CUDA kernel against the twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.atmosphere.gas import (
    gas_correction,
    gas_correction_numpy,
    gas_transmission,
    gas_transmission_numpy,
    pressure_ratio,
)
from gpumaja.atmosphere.minilut import SMAC_NCOEF, SMAC_ROWS
from gpumaja.backend import CPU
from gpumaja.errors import InputError
from gpumaja.synth import atmosphere as synth


def _smac(rows: list[dict[str, float]]) -> np.ndarray:
    c = np.zeros((len(rows), SMAC_NCOEF), np.float32)
    for b, row in enumerate(rows):
        for name, value in row.items():
            c[b, SMAC_ROWS[name]] = value
    return c


ALL_GASES = {
    "a_h2o": -0.02, "n_h2o": 0.6, "a_o3": -0.05, "n_o3": 0.99,
    "a_o2": -0.003, "n_o2": 0.9, "p_o2": 2.8, "a_co2": -0.01, "n_co2": 0.74, "p_co2": 1.36,
    "a_ch4": -0.004, "n_ch4": 0.87, "p_ch4": 1.13, "a_no2": -0.0017, "n_no2": 0.94, "p_no2": 1.03,
    "a_co": -0.0005, "n_co": 0.8, "p_co": 1.5,
}


def _closed_form(c: dict[str, float], h: float, w: float, m: float, o3: float) -> float:
    pt = (1.0 - 0.0065 * h / 288.15) ** 5.31  # P / 1013.25
    e = c["a_o3"] * (o3 * m) ** c["n_o3"] + c["a_h2o"] * (w * m) ** c["n_h2o"]
    for g in ("o2", "co2", "ch4", "no2", "co"):
        e += c[f"a_{g}"] * (pt ** c[f"p_{g}"] * m) ** c[f"n_{g}"]
    return math.exp(e)


def test_pressure_ratio_hand_values():
    np.testing.assert_allclose(pressure_ratio(np.float32(0.0)), 1.0, rtol=0, atol=0)
    # 1 - 0.0065 * 1000 / 288.15 = 0.977442304...; ^5.31 = 0.88604...
    np.testing.assert_allclose(pressure_ratio(np.float32(1000.0)), 0.9774423 ** 5.31, rtol=2e-6)
    np.testing.assert_allclose(pressure_ratio(np.float32(3000.0)), (1 - 19.5 / 288.15) ** 5.31, rtol=2e-6)


def test_closed_form_at_sea_level_air_mass_two():
    """h = 0 (P~ = 1), m = 2, U_H2O = 2, U_O3 = 0.3: every pressure term is a_g 2^n_g."""
    smac = _smac([ALL_GASES])
    c = ALL_GASES
    expected = math.exp(
        c["a_o3"] * 0.6 ** c["n_o3"] + c["a_h2o"] * 4.0 ** c["n_h2o"]
        + sum(c[f"a_{g}"] * 2.0 ** c[f"n_{g}"] for g in ("o2", "co2", "ch4", "no2", "co"))
    )
    t_g = gas_transmission(np.zeros((2, 3), np.float32), 2.0, smac, [2.0], 0.3)
    assert t_g.shape == (1, 2, 3) and t_g.dtype == np.float32
    np.testing.assert_allclose(t_g, expected, rtol=2e-6)


def test_closed_form_per_pixel_altitude_and_water():
    rows = [ALL_GASES, {"a_h2o": -0.68, "n_h2o": 0.475}, {"a_o2": -0.00013, "n_o2": 0.96, "p_o2": 2.88}]
    smac = _smac(rows)
    alt = np.array([[0.0, 500.0, 1500.0], [2500.0, 3800.0, 120.0]], np.float32)
    wv = np.array([[0.5, 1.0, 2.0], [3.0, 4.5, 0.0]], np.float32)
    m = [2.1, 2.3, 2.05]
    t_g = gas_transmission_numpy(alt, wv, smac, m, 0.35)
    for b, row in enumerate(rows):
        c = {k: row.get(k, 0.0) for k in SMAC_ROWS}
        exp = [[_closed_form(c, float(alt[i, j]), float(wv[i, j]), m[b], 0.35) for j in range(3)] for i in range(2)]
        np.testing.assert_allclose(t_g[b], exp, rtol=3e-6)


def test_matches_the_synthetic_forward_model_smac():
    """gpumaja.synth.atmosphere.gas_transmission is an independent SMAC implementation (float64)."""
    bands = ("B02", "B03", "B04", "B07", "B8A", "B09", "B11", "B12")
    smac = _smac([dict(zip(SMAC_ROWS, synth.SMAC_GAS[b])) for b in bands])
    ts = 41.0
    tv = np.array([3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    m = 1 / np.cos(np.radians(ts)) + 1 / np.cos(np.radians(tv))
    rng = np.random.default_rng(0)
    alt = rng.uniform(0, 4000, (20, 30)).astype(np.float32)
    wv = rng.uniform(0.2, 5.0, (20, 30)).astype(np.float32)
    t_g = gas_transmission(alt, wv, smac, m, 0.31)
    for b, band in enumerate(bands):
        expected = synth.gas_transmission(band, ts, tv[b], wv.astype(np.float64), 0.31, alt.astype(np.float64))
        np.testing.assert_allclose(t_g[b], expected, rtol=5e-6)


def test_water_vapour_nan_default_scalar_and_negative():
    smac = _smac([{"a_h2o": -0.1, "n_h2o": 0.5}])
    alt = np.zeros((1, 4), np.float32)
    wv = np.array([[1.0, np.nan, -0.5, 3.0]], np.float32)
    t_g = gas_transmission(alt, wv, smac, 2.0, 0.3, water_default=1.5)
    expected = [math.exp(-0.1 * (w * 2.0) ** 0.5) for w in (1.0, 1.5, 0.0, 3.0)]
    np.testing.assert_allclose(t_g[0, 0], expected, rtol=2e-6)
    assert t_g[0, 0, 2] == 1.0  # a negative amount is no water
    scalar = gas_transmission(alt, 3.0, smac, 2.0, 0.3)
    np.testing.assert_allclose(scalar, math.exp(-0.1 * 6.0 ** 0.5), rtol=2e-6)
    default = gas_transmission(alt, np.nan, smac, 2.0, 0.3)  # default water_default = L2Params 2.0
    np.testing.assert_allclose(default, math.exp(-0.1 * 4.0 ** 0.5), rtol=2e-6)


def test_zero_coefficient_contributes_nothing():
    """a = 0 with a zero base and a negative exponent would be 0 * inf = NaN if evaluated."""
    smac = _smac([{"n_h2o": -1.0, "n_o3": -2.0, "n_o2": -1.0, "p_o2": 1.0}])
    t_g = gas_transmission(np.zeros((2, 2), np.float32), 0.0, smac, 2.0, 0.0)
    np.testing.assert_array_equal(t_g, 1.0)


def test_gas_correction_divides_and_flags():
    smac = _smac([ALL_GASES, {"a_h2o": -1.0e4, "n_h2o": 1.0}])  # band 1: t_g underflows to 0
    alt = np.array([[0.0, 800.0, 1600.0]], np.float32)
    toa = np.array([[[0.1, np.nan, 0.5]], [[0.2, 0.3, 0.4]]], np.float32)
    out = gas_correction(toa, alt, 2.0, smac, [2.2, 2.2], 0.3)
    c = ALL_GASES
    for j in (0, 2):
        np.testing.assert_allclose(out[0, 0, j], toa[0, 0, j] / _closed_form(c, float(alt[0, j]), 2.0, 2.2, 0.3),
                                   rtol=3e-6)
    assert np.isnan(out[0, 0, 1])
    assert np.isnan(out[1]).all()


@settings(max_examples=40, deadline=None)
@given(
    a=st.lists(st.floats(-0.5, 0.0), min_size=7, max_size=7),
    n=st.lists(st.floats(0.3, 1.0), min_size=7, max_size=7),
    h=st.floats(0.0, 5000.0),
    w=st.floats(0.0, 7.0),
    m=st.floats(2.0, 6.0),
)
def test_property_absorption_only_attenuates(a, n, h, w, m):
    row = {"a_h2o": a[0], "n_h2o": n[0], "a_o3": a[1], "n_o3": n[1]}
    for k, g in enumerate(("o2", "co2", "ch4", "no2", "co")):
        row.update({f"a_{g}": a[k + 2], f"n_{g}": n[k + 2], f"p_{g}": 1.0 + 0.3 * k})
    smac = _smac([row])
    alt = np.full((1, 2), h, np.float32)
    wv = np.array([[w, w + 1.0]], np.float32)
    t_g = gas_transmission(alt, wv, smac, m, 0.3)
    assert ((t_g > 0) & (t_g <= 1)).all()
    assert t_g[0, 0, 1] <= t_g[0, 0, 0]  # more water, less transmission
    toa = np.full((1, 1, 2), 0.2, np.float32)
    assert (gas_correction(toa, alt, wv, smac, m, 0.3) >= toa * (1 - 1e-7)).all()


def test_explicit_cpu_backend_returns_numpy():
    smac = _smac([ALL_GASES])
    out = gas_correction(np.ones((1, 2, 2), np.float32), np.zeros((2, 2)), 2.0, smac, 2.0, 0.3, backend=CPU)
    assert type(out) is np.ndarray and out.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"smac": np.zeros((2, 19))}, r"expected \(bands, 49\)"),
        ({"air_mass": [2.0, 2.0, 2.0]}, "air_mass has 3 values for 2 bands"),
        ({"air_mass": [2.0, -1.0]}, "air_mass must be finite and positive"),
        ({"water_vapour": np.zeros((3, 3))}, "water_vapour has shape"),
        ({"ozone": -0.1}, "ozone"),
        ({"altitude": np.zeros(4)}, r"altitude must be a \(y, x\) image"),
    ],
)
def test_gas_transmission_input_errors(kwargs, match):
    args = {"altitude": np.zeros((2, 2)), "water_vapour": 2.0, "smac": np.zeros((2, 49)),
            "air_mass": [2.0, 2.0], "ozone": 0.3}
    args.update(kwargs)
    with pytest.raises(InputError, match=match):
        gas_transmission(**args)


def test_gas_correction_band_count_error():
    with pytest.raises(InputError, match="3 bands but smac has 2"):
        gas_correction(np.zeros((3, 2, 2)), np.zeros((2, 2)), 2.0, np.zeros((2, 49)), 2.0, 0.3)


# ----------------------------------------------------------------------------------------------
# GPU: the CUDA kernels against the NumPy twins


@pytest.fixture
def cp():
    import cupy

    return cupy


def _s2_smac(bands) -> np.ndarray:
    return _smac([dict(zip(SMAC_ROWS, synth.SMAC_GAS[b])) for b in bands])


def _assert_close(cp, got, ref, rtol=1e-6, atol=1e-6):
    assert type(got) is cp.ndarray and got.dtype == cp.float32 and got.shape == ref.shape
    got = cp.asnumpy(got)
    nan = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_allclose(got[~nan], ref[~nan], rtol=rtol, atol=atol)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(13, 300, 411), (1, 1, 1), (4, 7, 3)])
def test_gpu_matches_numpy_random(cp, shape):
    nb, ny, nx = shape
    rng = np.random.default_rng(sum(shape))
    smac = rng.uniform(-0.05, 0.0, (nb, SMAC_NCOEF)).astype(np.float32)
    for g in ("n_h2o", "n_o3", "n_o2", "n_co2", "n_ch4", "n_no2", "n_co"):
        smac[:, SMAC_ROWS[g]] = rng.uniform(0.3, 1.0, nb)
    for g in ("p_o2", "p_co2", "p_ch4", "p_no2", "p_co"):
        smac[:, SMAC_ROWS[g]] = rng.uniform(1.0, 3.0, nb)
    smac[rng.random((nb, SMAC_NCOEF)) < 0.2] = 0.0  # some absent gases
    m = rng.uniform(2.0, 4.0, nb)
    alt = rng.uniform(-100, 4500, (ny, nx)).astype(np.float32)
    wv = rng.uniform(-0.5, 6.0, (ny, nx)).astype(np.float32)
    wv.flat[::13] = np.nan
    toa = rng.uniform(0.0, 1.0, shape).astype(np.float32)
    toa.flat[::17] = np.nan
    ref_t = gas_transmission_numpy(alt, wv, smac, m, 0.3, 1.7)
    _assert_close(cp, gas_transmission(cp.asarray(alt), cp.asarray(wv), smac, m, 0.3, 1.7), ref_t)
    ref = gas_correction_numpy(toa, alt, wv, smac, m, 0.3, 1.7)
    _assert_close(cp, gas_correction(cp.asarray(toa), cp.asarray(alt), cp.asarray(wv), smac, m, 0.3, 1.7), ref)


@pytest.mark.gpu
def test_gpu_matches_numpy_realistic_s2(cp):
    from gpumaja.backend import Backend
    from tests.atmosphere_luts import smooth_field

    bands = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")
    smac = _s2_smac(bands)
    m = 1 / np.cos(np.radians(35.0)) + 1 / np.cos(np.radians(np.linspace(2.0, 10.0, len(bands))))
    rng = np.random.default_rng(5)
    shape = (600, 500)
    alt = smooth_field(rng, shape, 0.0, 3000.0)
    wv = smooth_field(rng, shape, 0.5, 4.0)
    toa = np.stack([smooth_field(rng, shape, 0.02, 0.5) for _ in bands])
    gpu = Backend("gpu", cp, "test GPU")
    ref = gas_correction_numpy(toa, alt, wv, smac, m, 0.3)
    _assert_close(cp, gas_correction(toa, alt, wv, smac, m, 0.3, backend=gpu), ref)
    ref_s = gas_correction_numpy(toa, alt, 2.4, smac, m, 0.3)  # one water-vapour value for the scene
    _assert_close(cp, gas_correction(toa, alt, 2.4, smac, m, 0.3, backend=gpu), ref_s)
