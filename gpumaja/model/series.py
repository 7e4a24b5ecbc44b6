"""The tile series: products of one tile sorted by date, and its xarray form per resolution group.

`TileSeries` holds the per-date metadata (no pixels), the group grids and the coarse processing grid
(120 m default, 240 m allowed; maja-l2a.md "Processing geometry"). `group_dataset` builds, from
TOA stacks already computed, the xarray Dataset of one resolution group:

    toa          (time, band, y, x)   float32 TOA reflectance, NaN = no data
    flags        (time, band, y, x)   uint8, bit 0 no data, bit 1 saturated
    sun_zenith   (time, ay, ax)       degrees, on the angle grid (ay, ax = angle-cell centres)
    sun_azimuth  (time, ay, ax)
    view_zenith  (time, band, ay, ax) per-band viewing angles, detectors merged
    view_azimuth (time, band, ay, ax)

with per-date coordinates (platform, orbit, product_id, processing_baseline, quantification) and
per-date-and-band ones (gain, offset, sun_factor, solar_irradiance). Arrays may be NumPy or CuPy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import xarray as xr

from gpumaja.model.bands import Band, group_bands
from gpumaja.model.grids import COARSE_RESOLUTIONS_M, DEFAULT_COARSE_RESOLUTION_M, Grid
from gpumaja.model.product import L1CProduct


@dataclass(frozen=True, eq=False)
class TileSeries:
    products: tuple[L1CProduct, ...]  # sorted by acquisition time, checked by io.series.assemble_series
    coarse_resolution: float = DEFAULT_COARSE_RESOLUTION_M
    _bands: dict[str, tuple[Band, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.products:
            raise ValueError("a tile series needs at least one product")
        if self.coarse_resolution not in COARSE_RESOLUTIONS_M:
            raise ValueError(
                f"coarse resolution must be one of {', '.join(f'{r:g}' for r in COARSE_RESOLUTIONS_M)} m, "
                f"got {self.coarse_resolution:g}"
            )
        first = self.products[0]
        bands = {
            g: tuple(b for b in bs if b.name in first.band_files)
            for g, bs in group_bands(first.sensor).items()
        }
        object.__setattr__(self, "_bands", {g: bs for g, bs in bands.items() if bs})

    @property
    def sensor(self) -> str:
        return self.products[0].sensor

    @property
    def tile(self) -> str:
        return self.products[0].tile

    @property
    def dates(self) -> list[datetime]:
        return [p.acquired for p in self.products]

    @property
    def groups(self) -> tuple[str, ...]:
        return tuple(self._bands)

    def bands(self, group: str) -> tuple[Band, ...]:
        return self._bands[group]

    @property
    def grids(self) -> dict[str, Grid]:
        return {g: self.products[0].grids[g] for g in self.groups}

    @property
    def coarse_grid(self) -> Grid:
        """The coarse processing grid over the finest group's footprint."""
        finest = min(self.grids.values(), key=lambda g: g.resolution)
        return finest.coarsen(self.coarse_resolution)

    def __len__(self) -> int:
        return len(self.products)


def _angle_coords(grid: Grid) -> dict[str, np.ndarray]:
    xs, ys = grid.xy_centres()
    return {"ay": np.asarray(ys), "ax": np.asarray(xs)}


def group_dataset(series: TileSeries, group: str, toa, flags) -> xr.Dataset:
    """The Dataset of `group` from stacks toa/flags of shape (time, band, y, x) (NumPy or CuPy)."""
    products = series.products
    bands = series.bands(group)
    grid = series.grids[group]
    expected = (len(products), len(bands), grid.height, grid.width)
    if tuple(toa.shape) != expected or tuple(flags.shape) != expected:
        raise ValueError(f"group {group}: stacks must be {expected}, got {toa.shape} and {flags.shape}")
    sun_grid = products[0].sun.grid
    for p in products:
        if p.sun.grid != sun_grid or any(p.view[b.name].grid != p.view[bands[0].name].grid for b in bands):
            raise ValueError(f"{p.product_id}: angle grids differ from {products[0].product_id}")
    view_grid = products[0].view[bands[0].name].grid
    names = [b.name for b in bands]

    def per_band(attr: str) -> np.ndarray:
        return np.array([[getattr(p.radiometry[n], attr) for n in names] for p in products], np.float64)

    xs, ys = grid.xy_centres()
    ds = xr.Dataset(
        data_vars={
            "toa": (("time", "band", "y", "x"), toa),
            "flags": (("time", "band", "y", "x"), flags),
            "sun_zenith": (("time", "ay", "ax"), np.stack([p.sun.zenith for p in products])),
            "sun_azimuth": (("time", "ay", "ax"), np.stack([p.sun.azimuth for p in products])),
            "view_zenith": (
                ("time", "band", "vy", "vx"),
                np.stack([np.stack([p.view[n].zenith for n in names]) for p in products]),
            ),
            "view_azimuth": (
                ("time", "band", "vy", "vx"),
                np.stack([np.stack([p.view[n].azimuth for n in names]) for p in products]),
            ),
        },
        coords={
            "time": np.array([np.datetime64(p.acquired.replace(tzinfo=None), "ns") for p in products]),
            "band": names,
            "y": np.asarray(ys),
            "x": np.asarray(xs),
            **_angle_coords(sun_grid),
            **{"v" + k[1]: v for k, v in _angle_coords(view_grid).items()},
            "wavelength_nm": ("band", [b.wavelength_nm for b in bands]),
            "platform": ("time", [p.platform for p in products]),
            "orbit": ("time", [p.orbit if p.orbit is not None else -1 for p in products]),
            "product_id": ("time", [p.product_id for p in products]),
            "processing_baseline": ("time", [p.processing_baseline for p in products]),
            "quantification": ("time", [p.quantification for p in products]),
            "gain": (("time", "band"), per_band("gain")),
            "offset": (("time", "band"), per_band("offset")),
            "sun_factor": (("time", "band"), per_band("sun_factor")),
            "solar_irradiance": (("time", "band"), per_band("solar_irradiance")),
        },
        attrs={
            "tile": series.tile,
            "sensor": series.sensor,
            "group": group,
            "crs": grid.crs,
            "transform": tuple(grid.transform)[:6],
            "resolution_m": grid.resolution,
            "coarse_resolution_m": series.coarse_resolution,
        },
    )
    return ds
