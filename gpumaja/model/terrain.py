"""Terrain on a grid: altitude, slope and aspect (pure compute; reading a DEM is gpumaja.io.dem).

Slope and aspect follow Horn (1981), the 3x3 weighted finite difference GDAL's ``gdaldem slope`` and
``gdaldem aspect`` use, with the border handled by edge replication (so the outermost ring sees a
one-sided half-weighted gradient instead of NaN). Conventions:

- slope: degrees from horizontal, in [0, 90);
- aspect: direction the slope *faces* (the downslope direction), degrees clockwise from north, in
  [0, 360); a plane rising toward the east faces west, aspect 270. Flat cells (slope 0) get aspect 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpumaja.model.grids import Grid


@dataclass(frozen=True, eq=False)
class Terrain:
    altitude: np.ndarray  # (rows, cols) float32 metres above the geoid/ellipsoid of the DEM
    slope: np.ndarray  # (rows, cols) float32 degrees
    aspect: np.ndarray  # (rows, cols) float32 degrees clockwise from north, downslope direction, [0, 360)
    grid: Grid
    source: str  # DEM path, or "flat" when no DEM was given

    def __post_init__(self) -> None:
        for name in ("altitude", "slope", "aspect"):
            a = getattr(self, name)
            if a.shape != self.grid.shape:
                raise ValueError(f"terrain {name} shape {a.shape} differs from the grid's {self.grid.shape}")

    @property
    def is_flat(self) -> bool:
        return self.source == "flat"


def slope_aspect(altitude: np.ndarray, res: float | tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """Horn slope and aspect (degrees, float32) of a north-up altitude array.

    `res` is the pixel size in the altitude's unit (metres): one number for square pixels or
    (x size, y size). Row 0 is the northern edge. NaN altitudes propagate to their neighbours.
    """
    z = np.asarray(altitude, np.float64)
    if z.ndim != 2:
        raise ValueError(f"altitude must be 2-D, got shape {z.shape}")
    xres, yres = (float(res), float(res)) if np.isscalar(res) else (float(res[0]), float(res[1]))
    if not (xres > 0 and yres > 0):
        raise ValueError(f"pixel size must be positive, got {res}")
    p = np.pad(z, 1, mode="edge")
    a, b, c = p[:-2, :-2], p[:-2, 1:-1], p[:-2, 2:]  # north row: NW, N, NE
    d, f = p[1:-1, :-2], p[1:-1, 2:]  # W, E
    g, h, i = p[2:, :-2], p[2:, 1:-1], p[2:, 2:]  # south row: SW, S, SE
    dz_east = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * xres)
    dz_north = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * yres)
    slope = np.degrees(np.arctan(np.hypot(dz_east, dz_north)))
    # The downslope direction is minus the gradient; azimuth = atan2(east, north), clockwise from north.
    aspect = np.degrees(np.arctan2(-dz_east, -dz_north)) % 360.0
    aspect = np.where(slope > 0, aspect, 0.0)
    aspect = np.where(aspect >= 360.0, 0.0, aspect)
    return slope.astype(np.float32), aspect.astype(np.float32)


def flat_terrain(grid: Grid) -> Terrain:
    """Sea-level flat terrain on `grid` (altitude 0 m, slope 0, aspect 0)."""
    zeros = np.zeros(grid.shape, np.float32)
    return Terrain(zeros, zeros.copy(), zeros.copy(), grid, "flat")
