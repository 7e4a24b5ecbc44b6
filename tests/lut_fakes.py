"""A deterministic stand-in for 6S, for the LUT builder tests (gpumaja/lut/build.py).

`fake_runner(case)` returns what `gpumaja.lut.sixs.run_case` returns, from closed-form functions of the
case written here (independent of the code under test):

- path reflectance with the azimuth/view-zenith form the LUT assumes (gpumaja/lut/grid.py):
  path = c + (a0 - c) x + a1 s cos(dphi) + a2 s^2 cos(2 dphi), x = (1/cos tv - 1)/(1/cos 12 - 1),
  s = sin tv / sin 12, with a1, a2 vanishing at theta_s = 0 (no azimuth at the zenith);
- total transmission T(theta) = exp(-0.6 tau / cos theta) (the same function up and down), spherical
  albedo 0.3 tau / (1 + tau), total optical depth tau;
- gas transmissions following the SMAC laws with the coefficients of `SMAC_TRUTH`:
  water exp(a (W m)^n), ozone exp(a (U m)^n), other gases exp(a (P~^p m)^n), with
  m = 1/cos theta_s + 1 (nadir view) and P~ = (1 - 0.0065 h / 288.15)^5.31.
"""

from __future__ import annotations

import math
import zlib

from gpumaja.lut.sixs import Case

VIEW_OFF = 12.0


def band_factor(band: str) -> float:
    return 1.0 + 0.03 * (zlib.crc32(band.encode()) % 10)


def tau_total(band: str, alt_m: float, aot: float) -> float:
    f = band_factor(band)
    return 0.1 * f * math.exp(-alt_m / 8000.0) + 1.1 * aot / f


def transmission(band: str, theta: float, alt_m: float, aot: float) -> float:
    return math.exp(-0.6 * tau_total(band, alt_m, aot) / math.cos(math.radians(theta)))


def albedo(band: str, alt_m: float, aot: float) -> float:
    t = tau_total(band, alt_m, aot)
    return 0.3 * t / (1.0 + t)


def path_terms(band: str, sz: float, alt_m: float, aot: float) -> tuple[float, float, float, float]:
    """c (nadir), a0, a1, a2 of the path reflectance at one sun zenith."""
    f = band_factor(band)
    p = math.exp(-alt_m / 8000.0)
    c = (0.02 * f * p + 0.04 * aot) / math.sqrt(math.cos(math.radians(sz)))
    a0 = 1.1 * c + 0.001
    s = math.sin(math.radians(sz))
    return c, a0, 0.01 * (aot + 0.1) * s, 0.004 * s * s


def path(band: str, sz: float, vz: float, dphi: float, alt_m: float, aot: float) -> float:
    c, a0, a1, a2 = path_terms(band, sz, alt_m, aot)
    off = math.radians(VIEW_OFF)
    tv = math.radians(vz)
    x = (1.0 / math.cos(tv) - 1.0) / (1.0 / math.cos(off) - 1.0)
    s = math.sin(tv) / math.sin(off)
    d = math.radians(dphi)
    return c + (a0 - c) * x + a1 * s * math.cos(d) + a2 * s * s * math.cos(2.0 * d)


def smac_truth(band: str) -> dict[str, tuple[float, float, float]]:
    """gas -> (a, n, p) of the SMAC law used to make the gas transmissions of `band` (p unused for
    water and ozone; co does not absorb)."""
    f = band_factor(band)
    return {
        "water": (-0.15 if band in ("B09", "B9") else -0.01 * f, 0.7, 0.0),
        "ozone": (-0.05 * f, 0.95, 0.0),
        "oxyg": (-0.003 * f, 0.6, 0.8),
        "co2": (-0.002 * f, 0.5, 1.2),
        "ch4": (-0.001 * f, 0.55, 0.9),
        "no2": (-0.0005 * f, 0.95, 0.3),
        "co": (0.0, 0.0, 0.0),
    }


def pressure_ratio_by_hand(alt_m: float) -> float:
    return (1.0 - 0.0065 * alt_m / 288.15) ** 5.31


def gas_transmissions(band: str, sz: float, alt_m: float, water: float, ozone: float) -> dict[str, float]:
    m = 1.0 / math.cos(math.radians(sz)) + 1.0
    pr = pressure_ratio_by_hand(alt_m)
    out = {}
    for gas, (a, n, p) in smac_truth(band).items():
        if a == 0.0:
            out[gas] = 1.0
        elif gas == "water":
            out[gas] = math.exp(a * (water * m) ** n)
        elif gas == "ozone":
            out[gas] = math.exp(a * (ozone * m) ** n)
        else:
            out[gas] = math.exp(a * (pr ** p * m) ** n)
    return out


def fake_runner(case: Case) -> dict[str, float]:
    if case.kind == "gas":
        return gas_transmissions(case.band, case.sun_zenith, case.altitude_m, case.water, case.ozone)
    b, alt, aot = case.band, case.altitude_m, case.aot
    return {
        "path": path(b, case.sun_zenith, case.view_zenith, case.rel_azimuth, alt, aot),
        "t_down": transmission(b, case.sun_zenith, alt, aot),
        "t_up": transmission(b, case.view_zenith, alt, aot),
        "albedo": albedo(b, alt, aot),
        "tau": tau_total(b, alt, aot),
    }


def tiny_tables(sensor: str = "L8", bands: tuple[str, ...] = ("B1", "B2"), seed: int = 0, watv: bool = False):
    """A small hand-made `SixSTables` (random but physically ordered values) for file round trips and
    for a LUT of the wrong sensor."""
    import numpy as np

    from gpumaja.atmosphere.sixs_lut import SixSTables

    rng = np.random.default_rng(seed)
    f32 = np.float32
    nb, ns, na, nt = len(bands), 3, 2, 3

    def u(lo, hi, *shape):
        return rng.uniform(lo, hi, shape).astype(f32)

    return SixSTables(
        sensor=sensor, bands=tuple(bands), sun_zenith=np.array([0.0, 40.0, 70.0], f32), view_zenith_off=12.0,
        rel_azimuth=np.array([0.0, 90.0, 180.0], f32), altitude=np.array([0.0, 3000.0], f32),
        aot=np.array([0.0, 0.2, 1.0], f32), path_nadir=u(0.01, 0.1, nb, ns, na, nt),
        path_off=u(0.01, 0.1, nb, ns, 3, na, nt), t_sun=u(0.6, 0.95, nb, ns, na, nt),
        t_view_off=u(0.6, 0.95, nb, na, nt), albedo=u(0.02, 0.2, nb, na, nt), tau=u(0.05, 0.5, nb, na, nt),
        gas_bands=tuple(bands), smac_table=u(-0.1, 1.0, nb, 49),
        watv_table=u(0.0, 5.0, 11, 3, 101) if watv else None,
        watv_sun_zenith=np.arange(0.0, 76.0, 7.5).astype(f32), watv_view_zenith=np.array([0.0, 6.0, 12.0], f32),
        watv_ratio=np.round(np.arange(0.01, 1.0101, 0.01), 2).astype(f32),
        wv_band=bands[-1] if watv else None, wv_reference_band=bands[0] if watv else None,
        meta={"builder": "tests", "grid": {"aot": [0.0, 0.2, 1.0]}},
    )
