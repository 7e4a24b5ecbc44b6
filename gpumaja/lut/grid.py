"""The node grid of our 6S LUT, chosen so that a full build takes minutes to an hour on 2 cores.

What one 6S run returns (gpumaja/lut/sixs.py) decides the design:

- the transmissions T(theta) and the spherical albedo do not depend on the azimuth, and one run gives
  T at both its solar and its viewing zenith: the solar-zenith nodes give T(theta) at every zenith
  for free;
- only the path reflectance depends on all of (theta_s, theta_v, dphi, altitude, AOT). Over the
  narrow viewing cone of Sentinel-2 (theta_v <= ~12 deg) and Landsat (<= 7.5 deg) it is sampled at
  nadir and at theta_v = 12 deg for dphi = 0, 90, 180 deg, which fixes exactly the first three terms
  of its Fourier series in dphi (a0 + a1 cos dphi + a2 cos 2 dphi), the natural expansion of a path
  radiance in azimuth; in theta_v the m-th term goes as sin^m theta_v and a0 as (1/cos theta_v - 1)
  (gpumaja/atmosphere/sixs_lut.py). A run at theta_s = 0 has no azimuth dependence: 2 geometries.

Defaults: (6 solar zeniths x 4 geometries + 2 at the zenith) x 3 altitudes x 5 AOTs = 390 runs per
band; S2 has 11 bands with TOC tables (4290 runs + 468 gas runs), Landsat 8 7 (2730 + 288). At
~0.25 s a run on one core, that is ~10-20 min per sensor on 2 cores. Accuracy against direct 6S runs off the nodes is reported in docs/validation.md.
"""

from __future__ import annotations

from dataclasses import dataclass

SUN_ZENITH = (0.0, 30.0, 45.0, 55.0, 63.0, 70.0, 76.0)
VIEW_ZENITH_OFF_NADIR = 12.0
REL_AZIMUTH = (0.0, 90.0, 180.0)
ALTITUDE_M = (0.0, 2000.0, 4500.0)
AOT = (0.0, 0.15, 0.35, 0.7, 1.5)

# gas runs: airmass from the solar zenith (nadir view), water vapour and ozone amounts
GAS_SUN_ZENITH = (0.0, 40.0, 60.0, 70.0)
GAS_WATER = (0.3, 1.0, 2.0, 3.5, 5.0, 7.0)
GAS_OZONE = (0.25, 0.40)
GAS_ALTITUDE_M = (0.0, 2500.0)
GAS_REFERENCE_WATER = 2.0


@dataclass(frozen=True)
class BuildGrid:
    sun_zenith: tuple[float, ...] = SUN_ZENITH
    view_zenith: float = VIEW_ZENITH_OFF_NADIR
    rel_azimuth: tuple[float, ...] = REL_AZIMUTH
    altitude_m: tuple[float, ...] = ALTITUDE_M
    aot: tuple[float, ...] = AOT

    def geometries(self, sun_zenith: float) -> list[tuple[float, float]]:
        """(view zenith, relative azimuth) pairs run at one solar zenith."""
        if sun_zenith == 0.0:
            return [(0.0, 0.0), (self.view_zenith, 0.0)]
        return [(0.0, 0.0)] + [(self.view_zenith, a) for a in self.rel_azimuth]

    def to_dict(self) -> dict:
        return {
            "sun_zenith": list(self.sun_zenith), "view_zenith": self.view_zenith,
            "rel_azimuth": list(self.rel_azimuth), "altitude_m": list(self.altitude_m), "aot": list(self.aot),
        }


# A small grid for tests and smoke builds (seconds, not minutes).
SMOKE_GRID = BuildGrid(sun_zenith=(0.0, 40.0, 70.0), altitude_m=(0.0, 3000.0), aot=(0.0, 0.2, 1.0))
