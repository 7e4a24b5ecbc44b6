"""Grids as value objects: which pixels on which map (CRS, affine transform, shape).

A `Grid` is north-up (no rotation) and immutable, so two products are on the same grid exactly when
their grids compare equal. The coarse processing grid of the L2A chain (120 m by default, 240 m
allowed; reference maja-l2a.md "Processing geometry") is derived from a full-resolution grid by
`Grid.coarsen`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from affine import Affine

COARSE_RESOLUTIONS_M = (240.0, 120.0)
DEFAULT_COARSE_RESOLUTION_M = 120.0  # MAJA 4.2's default; Theia's MUSCATE configuration: 240 m


@dataclass(frozen=True)
class Grid:
    crs: str  # "EPSG:32631" where an EPSG code exists, else WKT
    transform: Affine
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"grid shape must be positive, got {self.height}x{self.width}")
        if self.transform.b != 0 or self.transform.d != 0:
            raise ValueError("only north-up grids (no rotation) are supported")
        if self.transform.e >= 0:
            raise ValueError("grid transform must have a negative y pixel size (north-up)")

    @classmethod
    def from_origin(cls, crs: str, x0: float, y0: float, res: float, width: int, height: int) -> Grid:
        """Grid whose upper-left corner is (x0, y0) with square pixels of `res` map units."""
        return cls(crs, Affine(res, 0.0, x0, 0.0, -res, y0), width, height)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.height, self.width)

    @property
    def resolution(self) -> float:
        """Pixel size in map units (x size; pixels are square on every grid gpumaja makes)."""
        return abs(self.transform.a)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in map units."""
        left, top = self.transform.c, self.transform.f
        return (left, top + self.height * self.transform.e, left + self.width * self.transform.a, top)

    def xy_centres(self) -> tuple[list[float], list[float]]:
        """Map coordinates of pixel centres: (x of each column, y of each row)."""
        t = self.transform
        xs = [t.c + (i + 0.5) * t.a for i in range(self.width)]
        ys = [t.f + (j + 0.5) * t.e for j in range(self.height)]
        return xs, ys

    def rescaled(self, res: float) -> Grid:
        """Same footprint at another pixel size; the footprint must be a whole number of new pixels."""
        left, bottom, right, top = self.bounds
        w, h = (right - left) / res, (top - bottom) / res
        if not (math.isclose(w, round(w), abs_tol=1e-6) and math.isclose(h, round(h), abs_tol=1e-6)):
            raise ValueError(f"footprint {right - left:g}x{top - bottom:g} m is not a multiple of {res:g} m")
        return Grid.from_origin(self.crs, left, top, res, int(round(w)), int(round(h)))

    def coarsen(self, res: float = DEFAULT_COARSE_RESOLUTION_M) -> Grid:
        """The coarse processing grid over this footprint: same upper-left corner, `res` pixels,
        covering the whole footprint (the last row/column may extend past it)."""
        if res < self.resolution:
            raise ValueError(f"coarse resolution {res:g} m is finer than the grid's {self.resolution:g} m")
        left, bottom, right, top = self.bounds
        w = max(1, math.ceil((right - left) / res - 1e-9))
        h = max(1, math.ceil((top - bottom) / res - 1e-9))
        return Grid.from_origin(self.crs, left, top, res, w, h)

    def contains(self, other: Grid) -> bool:
        """True when `other`'s footprint lies inside this one's (same CRS)."""
        if other.crs != self.crs:
            return False
        l0, b0, r0, t0 = self.bounds
        l1, b1, r1, t1 = other.bounds
        eps = 1e-6 * max(self.resolution, 1.0)
        return l1 >= l0 - eps and r1 <= r0 + eps and b1 >= b0 - eps and t1 <= t0 + eps

    def __str__(self) -> str:  # pragma: no cover - display only
        left, bottom, right, top = self.bounds
        return f"{self.crs} {self.height}x{self.width} @ {self.resolution:g} UL=({left:g}, {top:g})"
