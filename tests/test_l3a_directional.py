"""WASP directional normalisation (wasp-l3a-and-lis-snow.md §1.4): exactly 1 at a nadir view, one
geometry against the formula written out independently here from the reference text, and the
land-only / keep-if-negative rules of `normalise`."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.l3a.directional import brdf_model, directional_factor, normalise
from gpumaja.model.wasp_params import WASP_BRDF_COEFFICIENTS, WaspParams

P = WaspParams()


def reference_model(theta_s, phi_s, theta_v, phi_v, v0, r0, xi0_deg=1.5):
    """M = 1 + kV FV + kR FR, written from the §1.4 text with the math module."""
    r = math.radians
    ts, tv, phi = r(theta_s), r(theta_v), r(phi_s - phi_v)
    cos_xi = math.cos(ts) * math.cos(tv) + math.sin(ts) * math.sin(tv) * math.cos(phi)
    xi = math.acos(cos_xi)
    delta = math.sqrt(math.tan(ts) ** 2 + math.tan(tv) ** 2 - 2 * math.tan(ts) * math.tan(tv) * math.cos(phi))
    m = 1 / math.cos(ts) + 1 / math.cos(tv)
    cos_t = min(1.0, max(-1.0, (1 / m) * math.sqrt(delta**2 + (math.tan(ts) * math.tan(tv) * math.sin(phi)) ** 2)))
    t = math.acos(cos_t)
    fv = (m / math.pi) * (t - math.sin(t) * cos_t - math.pi) + (1 + cos_xi) / (2 * math.cos(ts) * math.cos(tv))
    fr = (4 / (3 * math.pi)) * ((math.pi / 2 - xi) * cos_xi + math.sin(xi)) / (math.cos(ts) + math.cos(tv)) \
        * (1 + 1 / (1 + xi / math.radians(xi0_deg))) - 1 / 3
    return 1 + v0 * fv + r0 * fr


@pytest.mark.parametrize("band", sorted(WASP_BRDF_COEFFICIENTS))
def test_factor_is_exactly_one_at_nadir_view(band):
    rng = np.random.default_rng(0)
    ts = rng.uniform(0, 75, 500)
    ps = rng.uniform(0, 360, 500)
    pv = rng.uniform(0, 360, 500)
    f = directional_factor(ts, ps, np.zeros(500), pv, band, P)
    assert np.all(f == 1.0)


@given(ts=st.floats(0, 80), ps=st.floats(-360, 360), pv=st.floats(-360, 360))
@settings(max_examples=50, deadline=None)
def test_factor_is_exactly_one_at_nadir_view_scalars(ts, ps, pv):
    assert directional_factor(ts, ps, 0.0, pv, "B04", P) == 1.0


@pytest.mark.parametrize(("ts", "ps", "tv", "pv", "band"), [
    (40.0, 150.0, 8.0, 100.0, "B04"),
    (30.0, 160.0, 10.0, 290.0, "B02"),  # forward scattering side
    (55.0, 170.0, 11.0, 110.0, "B12"),
])
def test_factor_matches_the_formula_of_the_reference(ts, ps, tv, pv, band):
    v0, r0 = WASP_BRDF_COEFFICIENTS[band]
    expected = reference_model(ts, 0, 0, 0, v0, r0) / reference_model(ts, ps, tv, pv, v0, r0)
    assert directional_factor(ts, ps, tv, pv, band, P) == pytest.approx(expected, rel=1e-12)
    assert brdf_model(ts, ps, tv, pv, v0, r0, P) == pytest.approx(reference_model(ts, ps, tv, pv, v0, r0),
                                                                  rel=1e-12)


def test_model_at_the_hot_spot_is_finite():
    # view direction = sun direction: ξ = 0 (cos ξ may round above 1)
    m = brdf_model(37.0, 123.0, 37.0, 123.0, 0.481, 0.102, P)
    assert np.isfinite(m)
    assert m == pytest.approx(reference_model(37.0, 123.0, 37.0, 123.0, 0.481, 0.102), rel=1e-9)


def test_hot_spot_width_is_a_parameter():
    narrow = brdf_model(37.0, 123.0, 35.0, 123.0, 0.481, 0.102, P)
    wide = brdf_model(37.0, 123.0, 35.0, 123.0, 0.481, 0.102, WaspParams(hotspot_xi0_deg=5.0))
    assert wide == pytest.approx(reference_model(37.0, 123.0, 35.0, 123.0, 0.481, 0.102, xi0_deg=5.0), rel=1e-12)
    assert wide > narrow


def test_unknown_band_is_refused():
    with pytest.raises(ValueError, match="B01"):
        directional_factor(30, 0, 5, 0, "B01", P)


def test_factor_broadcasts_over_angle_grids():
    ts = np.full((3, 4), 40.0)
    vz = np.linspace(0, 10, 12).reshape(3, 4)
    f = directional_factor(ts, 150.0, vz, 100.0, "B08", P)
    assert f.shape == (3, 4)
    v0, r0 = WASP_BRDF_COEFFICIENTS["B08"]
    assert f[2, 3] == pytest.approx(reference_model(40, 0, 0, 0, v0, r0) / reference_model(40, 150, 10, 100, v0, r0),
                                    rel=1e-12)


def test_normalise_land_only_and_keeps_negative_or_nan():
    rho = np.array([[0.1, 0.2, 0.3], [0.4, np.nan, 0.5]], dtype=np.float32)
    land = np.array([[True, False, True], [True, True, True]])
    factor = np.array([[1.5, 1.5, -2.0], [np.nan, 1.5, 0.5]])
    out = normalise(rho, factor, land)
    assert out.dtype == np.float32
    expected = np.array([[0.15, 0.2, 0.3], [0.4, np.nan, 0.25]], dtype=np.float32)
    np.testing.assert_allclose(out, expected, rtol=1e-6, equal_nan=True)
    assert np.isnan(rho[1, 1])  # input untouched
    assert rho[0, 0] == np.float32(0.1)


def test_normalise_with_a_scalar_factor():
    rho = np.full((2, 2), 0.2, dtype=np.float32)
    out = normalise(rho, 1.1, np.ones((2, 2), dtype=bool))
    np.testing.assert_allclose(out, 0.22, rtol=1e-6)
