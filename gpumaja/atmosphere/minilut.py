"""The reduced LUT of one date ("mini-LUT", maja-l2a.md §3.1 ReduceLut) and the LUT protocol.

Every atmospheric LUT gpumaja reads -- a MAJA GIPP set (`gpumaja.io.gipp`) or our own 6S-built LUT
(`gpumaja.lut`) -- implements `AtmosphereLUT`. Its `reduce` interpolates the angle dimensions at one
date's sun and viewing geometry and returns a `MiniLUT`: per band, tables over (altitude, AOT) and the
inverse TOC table over (altitude, AOT, TOA*). Everything per pixel (TOCR, AOT inversion, SRE, FRE)
then interpolates only these small tables (kernels/lut_interp.cu and its NumPy twin).

Axes are strictly increasing float32 arrays (not necessarily regular). Values outside an axis are
clamped to its ends for altitude and AOT, and linearly extrapolated along TOA* (the GIPP TOA axis
starts at -0.2 for this reason; a TOA* beyond the last node keeps the last segment's slope).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True, eq=False)
class MiniLUT:
    bands: tuple[str, ...]  # band names, in the order of the first table axis
    altitude: np.ndarray  # (n_alt,) metres
    aot: np.ndarray  # (n_aot,) AOT at 550 nm
    toa: np.ndarray  # (n_toa,) TOA* reflectance (gas-corrected)
    toc: np.ndarray  # (nb, n_alt, n_aot, n_toa) surface reflectance, uniform Lambertian surface
    dirt_view: np.ndarray  # (nb, n_alt, n_aot) direct transmission at the band's viewing zenith
    dift_view: np.ndarray  # (nb, n_alt, n_aot) diffuse transmission at the viewing zenith
    dirt_sun: np.ndarray  # (nb, n_alt, n_aot) direct transmission at the solar zenith
    dift_sun: np.ndarray  # (nb, n_alt, n_aot) diffuse transmission at the solar zenith
    albedo: np.ndarray  # (nb, n_alt, n_aot) atmospheric spherical albedo

    def __post_init__(self) -> None:
        nb = len(self.bands)
        na, nt, nr = len(self.altitude), len(self.aot), len(self.toa)
        if self.toc.shape != (nb, na, nt, nr):
            raise ValueError(f"MiniLUT.toc has shape {self.toc.shape}, expected {(nb, na, nt, nr)}")
        for name in ("dirt_view", "dift_view", "dirt_sun", "dift_sun", "albedo"):
            if getattr(self, name).shape != (nb, na, nt):
                raise ValueError(f"MiniLUT.{name} has shape {getattr(self, name).shape}, expected {(nb, na, nt)}")
        for name in ("altitude", "aot", "toa"):
            axis = getattr(self, name)
            if axis.ndim != 1 or axis.size < 2 or np.any(np.diff(axis) <= 0):
                raise ValueError(f"MiniLUT.{name} must be a strictly increasing axis of >= 2 values")

    def index(self, band: str) -> int:
        try:
            return self.bands.index(band)
        except ValueError:
            raise KeyError(f"the mini-LUT has no band {band!r} (it has {', '.join(self.bands)})") from None

    def subset(self, bands: tuple[str, ...] | list[str]) -> MiniLUT:
        """The same tables for `bands` only, in that order."""
        idx = [self.index(b) for b in bands]
        return MiniLUT(
            tuple(bands), self.altitude, self.aot, self.toa, self.toc[idx],
            self.dirt_view[idx], self.dift_view[idx], self.dirt_sun[idx], self.dift_sun[idx], self.albedo[idx],
        )

    @property
    def aot_max(self) -> float:
        return float(self.aot[-1])


class AtmosphereLUT(Protocol):
    """What the L2A chain needs from an atmospheric LUT set (one sensor, one aerosol model)."""

    sensor: str  # platform key: "S2A" | "S2B" | "S2C" | "L8" | "L9"
    source: str  # human-readable origin, e.g. "MAJA GIPP S2A CONTINEN 10005" or "gpumaja 6S v1.1 ..."
    bands: tuple[str, ...]  # bands with TOC tables, product band names ("B01" ... / "B1" ...)

    def reduce(
        self,
        sun_zenith: float,
        view_zenith: dict[str, float],
        relative_azimuth: dict[str, float],
        bands: tuple[str, ...] | None = None,
    ) -> MiniLUT:
        """Interpolate the angle dimensions: degrees; relative azimuth = |sun az - view az| folded to
        [0, 180] (0 = sun behind the sensor, backscattering). `bands` defaults to all TOC bands."""
        ...

    def smac(self, bands: tuple[str, ...]) -> np.ndarray:
        """(nb, 49) float32 SMAC coefficients, classic SMAC row order (maja-l2a.md §3.3): 0 a_h2o,
        1 n_h2o, 2 a_o3, 3 n_o3, 4 a_o2, 5 n_o2, 6 p_o2, 7 a_co2, 8 n_co2, 9 p_co2, 10 a_ch4,
        11 n_ch4, 12 p_ch4, 13 a_no2, 14 n_no2, 15 p_no2, 16 a_co, 17 n_co, 18 p_co, ..."""
        ...

    def water_vapour(self, sun_zenith: float, view_zenith: float, ratio):
        """Water vapour (g/cm2) from rho_TOA(WV band) / rho_TOA(reference band); array in, array out
        (NumPy or CuPy); NaN where the table gives a negative value. None if the LUT has no WATV."""
        ...


def fold_relative_azimuth(sun_azimuth: float, view_azimuth: float) -> float:
    """|sun az - view az| folded into [0, 180] degrees."""
    d = abs((float(sun_azimuth) - float(view_azimuth)) % 360.0)
    return 360.0 - d if d > 180.0 else d


# SMAC row indices used by the gas correction (classic SMAC order)
SMAC_ROWS = {
    "a_h2o": 0, "n_h2o": 1, "a_o3": 2, "n_o3": 3, "a_o2": 4, "n_o2": 5, "p_o2": 6,
    "a_co2": 7, "n_co2": 8, "p_co2": 9, "a_ch4": 10, "n_ch4": 11, "p_ch4": 12,
    "a_no2": 13, "n_no2": 14, "p_no2": 15, "a_co": 16, "n_co": 17, "p_co": 18,
}
SMAC_NCOEF = 49
