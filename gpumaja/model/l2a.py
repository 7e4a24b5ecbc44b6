"""One date's L2A result in memory: what the pipeline produces and the MUSCATE writer writes.

Pixels are NumPy arrays on the group grid (the pipeline copies them back from the device before
writing). Reflectances are float32 with NaN = no data; the writer quantifies them (×10000, int16,
nodata -10000). Masks follow maja-l2a.md §1.12 bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gpumaja.model.grids import Grid
from gpumaja.model.product import L1CProduct

# CLM bits (maja-l2a.md §1.12)
CLM_ALL = 1  # bit 0: all clouds + all shadows (dilated)
CLM_ALL_CLOUDS = 2  # bit 1: refl | refl_var | extension | cirrus
CLM_REFL = 4  # bit 2: mono-temporal threshold
CLM_REFL_VAR = 8  # bit 3: multi-temporal
CLM_EXTENSION = 16  # bit 4
CLM_SHADOW = 32  # bit 5: shadows of clouds inside the image
CLM_SHADVAR = 64  # bit 6: shadows of clouds outside the image
CLM_CIRRUS = 128  # bit 7

# MG2 bits (maja-l2a.md §1.12; bits 4/5 follow the MTD template: see docs/l2a.md)
MG2_WATER = 1
MG2_ALL_CLOUDS = 2
MG2_SNOW = 4
MG2_SHADOW = 8
MG2_TOPO_SHADOW = 16
MG2_HIDDEN = 32
MG2_SUN_TOO_LOW = 64
MG2_TANGENT_SUN = 128

# IAB bits
IAB_WV_INTERPOLATED = 1
IAB_AOT_INTERPOLATED = 2


@dataclass(eq=False)
class L2AGroup:
    """Outputs of one resolution group (S2: R1 = 10 m, R2 = 20 m; Landsat: R1 = 30 m)."""

    name: str  # "R1" | "R2"
    grid: Grid
    bands: tuple[str, ...]  # product band names in file order, e.g. ("B02", "B03", "B04", "B08")
    sre: np.ndarray  # (nb, ny, nx) float32 surface reflectance with adjacency correction, NaN = nodata
    fre: np.ndarray  # (nb, ny, nx) float32 SRE + slope correction, NaN = nodata
    water_vapour: np.ndarray  # (ny, nx) float32 g/cm2, NaN = nodata
    aot: np.ndarray  # (ny, nx) float32 AOT at 550 nm, NaN = nodata
    clm: np.ndarray  # (ny, nx) uint8, CLM bits
    mg2: np.ndarray  # (ny, nx) uint8, MG2 bits
    sat: np.ndarray  # (ny, nx) uint8, bit i = band i of `bands` saturated
    edg: np.ndarray  # (ny, nx) uint8, 1 = outside the image / nodata
    iab: np.ndarray  # (ny, nx) uint8, IAB bits

    def __post_init__(self) -> None:
        shape = self.grid.shape
        if self.sre.shape != (len(self.bands), *shape) or self.fre.shape != self.sre.shape:
            raise ValueError(f"{self.name}: SRE/FRE shape {self.sre.shape} does not match "
                             f"{len(self.bands)} bands on a {shape} grid")
        for n in ("water_vapour", "aot", "clm", "mg2", "sat", "edg", "iab"):
            if getattr(self, n).shape != shape:
                raise ValueError(f"{self.name}: {n} has shape {getattr(self, n).shape}, expected {shape}")


@dataclass(eq=False)
class L2AResult:
    """Everything the MUSCATE writer needs for one date."""

    product: L1CProduct  # the input L1 product (platform, date, tile, angles, radiometry)
    groups: dict[str, L2AGroup]  # "R1", "R2"
    cloud_percent: float  # CLM bit 1 (all clouds) share of valid pixels, coarse grid, 0..100
    snow_percent: float  # snow share of valid pixels, 0..100
    nodata_percent: float
    lut_source: str  # AtmosphereLUT.source
    aot_method: str  # "MULTISPECTRAL" (INIT mode), later "SPECTROTEMPORAL"
    params: dict  # L2Params.to_dict() actually used
    mean_aot: float = float("nan")
    mean_water_vapour: float = float("nan")
    quality: dict[str, bool] = field(default_factory=lambda: {
        "RainDetected": False, "HotSpotDetected": False, "SunGlintDetected": False})
    software_version: str = ""

    @property
    def valid(self) -> bool:
        """False when the product is too cloudy (or empty): MAJA then writes the metadata only."""
        max_cloud = float(self.params.get("max_cloud_percentage", 90.0))
        max_nodata = float(self.params.get("max_no_data_percentage", 99.0))
        return self.cloud_percent <= max_cloud and self.nodata_percent <= max_nodata
