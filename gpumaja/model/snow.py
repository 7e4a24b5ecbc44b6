"""Snow products in memory: one date's LIS snow map (L2B) and one period's snow cover duration (L3B).

`SnowMap` is what `pipeline.snow` produces and `io.snow_product` writes and reads back; `SnowDuration`
is what `pipeline.scd` produces and `io.scd_product` writes. Arrays are NumPy on `grid`. Codes follow
wasp-l3a-and-lis-snow.md §2.3 (SNW 0/100/205/255) and §2.4 (FSC 0..100/205/255).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

from gpumaja.model.grids import Grid


@dataclass(eq=False)
class SnowMap:
    tile: str  # "T31TCJ" (Landsat: path-row "198-030")
    platform: str  # "SENTINEL2A", "LANDSAT8", ...
    acquired: datetime
    grid: Grid  # 20 m (S2) or 30 m (Landsat)
    snw: np.ndarray  # (ny, nx) uint8 SNW codes: 0 no snow, 100 snow, 205 cloud, 255 nodata
    fsc: np.ndarray | None = None  # (ny, nx) uint8 FSC_TOC: 0 no snow, 1..100 %, 205 cloud, 255 nodata
    expert: np.ndarray | None = None  # (ny, nx) uint8 SNOW_ALL bits (see gpumaja.snow.lis)
    snowline_m: float = -1.0  # z_s from the DEM histogram (LIS metadata ZS), -1 when no bin qualifies
    snow_percent: float = 0.0  # share of all pixels, 0..100
    cloud_percent: float = 0.0
    source_product: str = ""  # the L2A product id
    params: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for n in ("snw", "fsc", "expert"):
            a = getattr(self, n)
            if a is not None and a.shape != self.grid.shape:
                raise ValueError(f"{n} has shape {a.shape}, expected {self.grid.shape}")


@dataclass(eq=False)
class SnowDuration:
    tile: str
    mission: str  # "S2" or "S2L8" (Landsat densified)
    start: date  # first day of the period (day index 0)
    stop: date  # last day (inclusive)
    grid: Grid
    scd: np.ndarray  # (ny, nx) uint16 snow cover days
    sod: np.ndarray  # (ny, nx) uint16 first day (index from `start`) of the longest snow period, 0 if SCD <= 10
    smod: np.ndarray  # (ny, nx) uint16 last day of the longest snow period, 0 if SCD <= 10
    nobs: np.ndarray  # (ny, nx) uint16 clear observations
    inputs: list[str] = field(default_factory=list)  # product ids used, in date order
    input_dates: list[date] = field(default_factory=list)
    params: dict = field(default_factory=dict)

    @property
    def n_days(self) -> int:
        return (self.stop - self.start).days + 1

    def __post_init__(self) -> None:
        for n in ("scd", "sod", "smod", "nobs"):
            if getattr(self, n).shape != self.grid.shape:
                raise ValueError(f"{n} has shape {getattr(self, n).shape}, expected {self.grid.shape}")
