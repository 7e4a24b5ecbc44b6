"""One L3A (WASP monthly synthesis) in memory: what `pipeline.l3a` produces and `io.l3a_writer` writes.

Arrays are NumPy on the group grid. Reflectance is float32 with NaN = no data; the writer quantifies
(x10000, int16, nodata -10000). `day` is the weighted mean acquisition day counted from 1 January of
the synthesis date's year (0-based, so it is the day of year when the window stays in that year and
negative for December of the previous year; see docs/l3a.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from gpumaja.model.grids import Grid

# FLG values (wasp-l3a-and-lis-snow.md §1.6)
FLG_NODATA = 0
FLG_CLOUD = 1
FLG_SNOW = 2
FLG_WATER = 3
FLG_LAND = 4


@dataclass(eq=False)
class L3AGroup:
    """One resolution group: R1 = B2, B3, B4, B8 at 10 m; R2 = B5, B6, B7, B8A, B11, B12 at 20 m."""

    name: str  # "R1" | "R2"
    grid: Grid
    bands: tuple[str, ...]  # gpumaja band names in file order, e.g. ("B02", "B03", "B04", "B08")
    reflectance: np.ndarray  # (nb, ny, nx) float32 composite FRC reflectance, NaN = no data
    weight: np.ndarray  # (ny, nx) float32 accumulated weight W (0 where never seen clear), NaN = no data
    day: np.ndarray  # (ny, nx) float32 weighted mean day (see the module doc), NaN = no data
    flag: np.ndarray  # (ny, nx) uint8 FLG

    def __post_init__(self) -> None:
        shape = self.grid.shape
        if self.reflectance.shape != (len(self.bands), *shape):
            raise ValueError(f"{self.name}: reflectance shape {self.reflectance.shape} does not match "
                             f"{len(self.bands)} bands on a {shape} grid")
        for n in ("weight", "day", "flag"):
            if getattr(self, n).shape != shape:
                raise ValueError(f"{self.name}: {n} has shape {getattr(self, n).shape}, expected {shape}")


@dataclass(frozen=True)
class L3AInput:
    """One contributing L2A product."""

    product_id: str
    platform: str  # "SENTINEL2A", "SENTINEL2B", ...
    acquired: datetime
    path: str


@dataclass(eq=False)
class L3AResult:
    tile: str  # "T31TCJ"
    platform: str  # SENTINEL2X when S2A and S2B are mixed, else SENTINEL2A / SENTINEL2B
    synthesis_date: date
    half_window_days: int
    crs: str
    groups: dict[str, L3AGroup]
    inputs: list[L3AInput]
    params: dict  # WaspParams as a dict (what was used)
    cloud_percent: float  # FLG_R2 == 1 share of all pixels, 0..100 (§1.6)
    snow_percent: float  # FLG_R2 == 2 share
    production_date: datetime | None = None
    extra: dict = field(default_factory=dict)

    @property
    def period(self) -> tuple[date, date]:
        from datetime import timedelta

        h = timedelta(days=self.half_window_days)
        return self.synthesis_date - h, self.synthesis_date + h
