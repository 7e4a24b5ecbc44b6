"""Per-date metadata of one Level-1 product, independent of its file format.

An `L1CProduct` is what every reader returns: where the band files are, which grid each resolution
group lies on, how to turn digital numbers into TOA reflectance, and the sun/view angle grids. It
holds no pixels; `gpumaja.io.bands.read_dn` reads them.

TOA reflectance of a valid pixel is, for every sensor:

    rho_toa = (DN * gain + offset) / sun_factor

- Sentinel-2: gain = 1 / QUANTIFICATION_VALUE, offset = RADIO_ADD_OFFSET / QUANTIFICATION_VALUE
  (RADIO_ADD_OFFSET = -1000 from processing baseline 04.00 on, 0 before), sun_factor = 1 (the L1C is
  already reflectance).
- Landsat Collection 2: gain = REFLECTANCE_MULT_BAND_n, offset = REFLECTANCE_ADD_BAND_n,
  sun_factor = sin(SUN_ELEVATION) (USGS sun-elevation correction at the scene centre).
DN == nodata_dn (0) is no data; DN == saturated_dn (65535 for S2) is saturated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from gpumaja.model.angles import AngleGrid
from gpumaja.model.bands import Band, bands_of
from gpumaja.model.grids import Grid


@dataclass(frozen=True)
class BandRadiometry:
    gain: float
    offset: float
    sun_factor: float = 1.0
    solar_irradiance: float = float("nan")  # W m-2 um-1 as the metadata gives it (S2: E0, not U-corrected), NaN if absent


@dataclass(frozen=True, eq=False)
class L1CProduct:
    path: Path  # the product as the user gave it (SAFE dir, .zip, Landsat folder)
    sensor: str  # "S2" | "LANDSAT"
    platform: str  # "SENTINEL-2A", "SENTINEL-2B", "SENTINEL-2C", "LANDSAT_8", "LANDSAT_9"
    tile: str  # "T31TCJ" (MGRS, S2) or "198030" (WRS-2 path/row, Landsat)
    acquired: datetime  # sensing time, timezone-aware UTC
    orbit: int | None  # S2 relative orbit (R051 -> 51); Landsat WRS path
    processing_baseline: str  # "05.10" (S2), "C2" / "PRE-COLLECTION" (Landsat)
    product_id: str  # product name, e.g. the SAFE name without ".SAFE"
    band_files: dict[str, str]  # band name -> path readable by rasterio (may be /vsizip/...)
    radiometry: dict[str, BandRadiometry]
    grids: dict[str, Grid]  # resolution group -> grid the group's bands are delivered on
    sun: AngleGrid
    view: dict[str, AngleGrid]  # band name -> viewing angles, detectors merged
    nodata_dn: int = 0
    saturated_dn: int = 65535
    quantification: float = 10000.0  # S2 QUANTIFICATION_VALUE; 1 for Landsat (gain carries the scale)
    tile_grid: Grid | None = None  # the full tile grid at the finest resolution (S2: from MTD_TL.xml)
    extra: dict[str, str] = field(default_factory=dict)  # reader-specific facts for `gpumaja info`

    @property
    def bands(self) -> tuple[Band, ...]:
        """Bands this product carries, in sensor band order."""
        return tuple(b for b in bands_of(self.sensor) if b.name in self.band_files)

    @property
    def date_key(self) -> str:
        """Acquisition identity used to find duplicates: platform + sensing time to the second."""
        return f"{self.platform}_{self.acquired:%Y%m%dT%H%M%S}"

    def describe(self) -> dict:
        """A JSON-able summary (what `gpumaja info` prints)."""
        return {
            "product": self.product_id,
            "path": str(self.path),
            "sensor": self.sensor,
            "platform": self.platform,
            "tile": self.tile,
            "acquired": self.acquired.isoformat().replace("+00:00", "Z"),
            "orbit": self.orbit,
            "processing_baseline": self.processing_baseline,
            "bands": [b.name for b in self.bands],
            "grids": {
                g: {
                    "crs": grid.crs,
                    "resolution_m": grid.resolution,
                    "width": grid.width,
                    "height": grid.height,
                    "bounds": list(grid.bounds),
                }
                for g, grid in sorted(self.grids.items())
            },
            "mean_sun_zenith": round(self.sun.mean_zenith, 6),
            "mean_sun_azimuth": round(self.sun.mean_azimuth, 6),
            "mean_sun_elevation": round(90.0 - self.sun.mean_zenith, 6),
            "mean_view_zenith": {b: round(a.mean_zenith, 6) for b, a in self.view.items()},
            "mean_view_azimuth": {b: round(a.mean_azimuth, 6) for b, a in self.view.items()},
            "radiometry": {
                b: {"gain": r.gain, "offset": r.offset, "sun_factor": r.sun_factor,
                    "solar_irradiance": r.solar_irradiance}
                for b, r in self.radiometry.items()
            },
            **({"extra": dict(self.extra)} if self.extra else {}),
        }
