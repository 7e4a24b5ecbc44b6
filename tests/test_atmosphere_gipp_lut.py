"""GippLUT (AtmosphereLUT over a MAJA GIPP set): ReduceLut, SMAC, water vapour (maja-l2a.md §3.1, §3.3, §3.4).

Expectations at grid nodes come from the raw files read here with np.fromfile (little-endian float32, C order
following LUT_Indexes, maja-l2a.md §4); between nodes from hand-written interpolation formulas; physics from
the reference's sanity checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gpumaja.atmosphere.gipp_lut import GippLUT, GippTables
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.errors import InputError
from gpumaja.io.gipp import load_gipp_lut

TOC_SHAPE = (11, 4, 7, 4, 25, 20)
TS = np.arange(11) * 7.5  # TOCR / DIRT solar zenith and zenith axes
TV = np.array([0.0, 7.0, 13.0, 20.0])
DPHI = np.arange(7) * 30.0
BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
NM = dict(zip(BANDS, (443, 490, 560, 665, 705, 740, 780, 840, 865, 940, 1380, 1600, 2200)))


def _raw(gipp_dir: Path, kind: str, band: str | None, shape) -> np.ndarray:
    folder = next(gipp_dir.glob(f"S2A_TEST_GIP_{kind}_L_CONTINEN_*.DBL.DIR"))
    name = f"_bande_{NM[band]}" if band else ".dat"
    (path,) = [p for p in folder.iterdir() if p.name.endswith(name)]
    return np.fromfile(path, dtype="<f4").reshape(shape)


@pytest.fixture(scope="module")
def lut(gipp_dir) -> GippLUT:
    return load_gipp_lut(gipp_dir, "S2A")


def _angles(value: float) -> dict[str, float]:
    return {b: value for b in BANDS}


def test_protocol_attributes(lut, gipp_dir):
    assert lut.sensor == "S2A"
    assert lut.bands == BANDS
    assert lut.source == f"MAJA GIPP S2A CONTINEN 10005 ({gipp_dir})"
    assert isinstance(lut.tables, GippTables)


def test_reduce_at_nodes_returns_the_stored_values(lut, gipp_dir):
    its, itv, iphi = 4, 2, 5  # θs 30, θv 13, Δφ 150
    vz = {b: TV[(itv + k) % 4] for k, b in enumerate(BANDS)}  # a different node per band
    ra = {b: DPHI[(iphi + k) % 7] for k, b in enumerate(BANDS)}
    m = lut.reduce(TS[its], vz, ra)
    assert isinstance(m, MiniLUT) and m.bands == BANDS
    assert m.toc.shape == (13, 4, 25, 20) and m.toc.dtype == np.float32
    np.testing.assert_array_equal(m.altitude, [0, 1000, 2000, 3000])
    for k, b in enumerate(BANDS):
        toc = _raw(gipp_dir, "L2TOCR", b, TOC_SHAPE)
        dirt = _raw(gipp_dir, "L2DIRT", b, (11, 4, 25))
        dift = _raw(gipp_dir, "L2DIFT", b, (11, 4, 25))
        albd = _raw(gipp_dir, "L2ALBD", b, (4, 25))
        jv, jphi = (itv + k) % 4, (iphi + k) % 7
        assert np.array_equal(m.toc[k], toc[its, jv, jphi]), b  # bit-exact
        iv = int(np.flatnonzero(TS == TV[jv])[0]) if TV[jv] in TS else None
        if iv is not None:  # θv = 0 is a DIRT node; 7, 13, 20 are not
            assert np.array_equal(m.dirt_view[k], dirt[iv]) and np.array_equal(m.dift_view[k], dift[iv])
        assert np.array_equal(m.dirt_sun[k], dirt[its]) and np.array_equal(m.dift_sun[k], dift[its])
        assert np.array_equal(m.albedo[k], albd)


def test_reduce_between_nodes_is_multilinear(lut, gipp_dir):
    b = "B04"
    ts, tv, dphi = 33.75, 10.0, 45.0  # 1/2 between 30 and 37.5; 1/2 of 7..13; 1/2 of 30..60
    m = lut.reduce(ts, {b: tv}, {b: dphi}, bands=(b,))
    toc = _raw(gipp_dir, "L2TOCR", b, TOC_SHAPE).astype(np.float64)
    cube = toc[4:6, 1:3, 1:3]  # the 8 corners
    expected = cube.mean(axis=(0, 1, 2))
    np.testing.assert_allclose(m.toc[0], expected, rtol=0, atol=2e-7)
    dirt = _raw(gipp_dir, "L2DIRT", b, (11, 4, 25)).astype(np.float64)
    # θv = 10 lies in [7.5, 15] of the DIRT zenith axis: t = 1/3
    np.testing.assert_allclose(m.dirt_view[0], dirt[1] * (2 / 3) + dirt[2] / 3, rtol=0, atol=2e-7)
    np.testing.assert_allclose(m.dirt_sun[0], 0.5 * (dirt[4] + dirt[5]), rtol=0, atol=2e-7)


def test_reduce_band_subset_order_and_errors(lut):
    m = lut.reduce(20.0, {"B12": 5.0, "B02": 5.0}, {"B12": 90.0, "B02": 90.0}, bands=("B12", "B02"))
    full = lut.reduce(20.0, _angles(5.0), _angles(90.0))
    assert m.bands == ("B12", "B02")
    assert np.array_equal(m.toc, full.toc[[12, 1]])
    with pytest.raises(InputError, match="no viewing zenith given for band B03"):
        lut.reduce(20.0, {"B12": 5.0}, _angles(0.0), bands=("B12", "B03"))
    with pytest.raises(InputError, match="no band 'B13'"):
        lut.reduce(20.0, _angles(5.0), _angles(0.0), bands=("B13",))


def test_reduce_clamps_and_folds_angles(lut):
    edge = lut.reduce(75.0, _angles(20.0), _angles(180.0))
    beyond = lut.reduce(80.0, _angles(25.0), _angles(200.0))  # 200 folds to 160, not 180
    folded = lut.reduce(80.0, _angles(25.0), _angles(160.0))
    assert np.array_equal(beyond.toc, folded.toc)
    clamped = lut.reduce(80.0, _angles(25.0), _angles(180.0))
    assert np.array_equal(clamped.toc, edge.toc)


def test_reduce_physics(lut):
    """maja-l2a.md §4: nadir, h = 0, τ = 0 values, the θv = 0 Δφ independence, and the Δφ convention."""
    nadir = lut.reduce(0.0, _angles(0.0), _angles(0.0))
    b1, b8a = BANDS.index("B01"), BANDS.index("B8A")
    assert nadir.toc[b1, 0, 0, 3] == pytest.approx(-0.1016, abs=1e-4)
    assert nadir.toc[b1, 0, 0, 7] == pytest.approx(0.239, abs=1e-3)
    assert nadir.toc[b8a, 0, 0, 3] == pytest.approx(0.0043, abs=1e-4)
    assert nadir.toc[b8a, 0, 8, 3] == pytest.approx(-0.053, abs=1e-3)
    assert nadir.dirt_view[b1, 0, 0] == pytest.approx(0.7906, abs=1e-4)
    assert nadir.dirt_view[b1, 3, 0] == pytest.approx(0.8505, abs=1e-4)
    assert nadir.albedo[b1, 0, 0] == pytest.approx(0.1765, abs=1e-4)
    a = lut.reduce(40.0, _angles(0.0), _angles(10.0))
    b = lut.reduce(40.0, _angles(0.0), _angles(170.0))
    np.testing.assert_allclose(a.toc, b.toc, rtol=0, atol=1e-6)  # θv = 0: Δφ-free up to rounding
    # Δφ = 0 is backscattering (AtmosphereLUT protocol): with θs 45, θv 20 the scattering angle is 155° at
    # Δφ = 0 and 115° at 180°; the Rayleigh phase function 3/4 (1 + cos²Θ) is larger at 155°, so more path
    # reflectance and a lower surface reflectance at Δφ = 0 for the same TOA* (443 nm, τ = 0).
    back = lut.reduce(45.0, _angles(20.0), _angles(0.0))
    fwd = lut.reduce(45.0, _angles(20.0), _angles(180.0))
    assert back.toc[b1, 0, 0, 5] < fwd.toc[b1, 0, 0, 5] - 0.02


def test_smac(lut):
    s = lut.smac(("B10", "B09", "B01"))
    assert s.shape == (3, 49) and s.dtype == np.float32
    assert s[0, 0] == pytest.approx(-2.99987, abs=1e-5)
    assert s[1, 0] == pytest.approx(-0.6772856, abs=1e-6)
    assert s[2, 27] == pytest.approx(0.2373, abs=1e-6)


def test_water_vapour_at_nodes_and_between(lut, gipp_dir):
    watv = _raw(gipp_dir, "L2WATV", None, (11, 4, 101))
    ratio_axis = lut.tables.watv_axes[2]
    w = lut.water_vapour(0.0, 0.0, ratio_axis)
    assert w.dtype == np.float32
    first_negative = int(np.argmax(watv[0, 0] < 0))
    assert 0 < first_negative < 100  # the table turns negative at high ratios (~0.86)
    assert np.array_equal(w[:first_negative], watv[0, 0, :first_negative])  # node values, bit-exact
    assert np.all(np.isnan(w[first_negative:]))  # negative -> NaN
    assert watv[0, 0, 100] == pytest.approx(-0.10, abs=0.005)
    assert w[0] == pytest.approx(25.7, abs=0.05) and w[10] == pytest.approx(5.9, abs=0.05)
    # between nodes: θs 10.5 (1/2 of 7..14), θv 10 (1/2 of 7..13), ratio 0.105 (1/2 of 0.10..0.11)
    out = lut.water_vapour(10.5, 10.0, np.array([[0.105]]))
    assert out.shape == (1, 1)
    expected = watv[1:3, 1:3, 9:11].astype(np.float64).mean()
    assert out[0, 0] == pytest.approx(expected, abs=1e-5)


def test_water_vapour_is_decreasing_and_handles_nan(lut):
    r = np.linspace(0.01, 0.8, 200)
    w = lut.water_vapour(35.0, 8.0, r)
    assert np.all(np.isfinite(w)) and np.all(np.diff(w) < 0)
    out = lut.water_vapour(35.0, 8.0, np.array([np.nan, 0.001, 5.0]))
    assert np.isnan(out[0])
    assert out[1] == pytest.approx(lut.water_vapour(35.0, 8.0, np.array([0.01]))[0])  # clamped
    assert np.isnan(out[2])  # clamped to 1.01 -> negative -> NaN


@pytest.mark.gpu
def test_water_vapour_cupy_matches_numpy(lut):
    import cupy as cp

    rng = np.random.default_rng(3)
    r = rng.uniform(0.0, 1.1, (64, 64))
    r[0, 0] = np.nan
    ref = lut.water_vapour(42.0, 6.0, r)
    got = lut.water_vapour(42.0, 6.0, cp.asarray(r))
    assert isinstance(got, cp.ndarray) and got.dtype == cp.float32
    np.testing.assert_array_equal(cp.asnumpy(got), ref)
