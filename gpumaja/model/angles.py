"""Sun and viewing angle grids.

Angle grids are coarse (5 km for Sentinel-2 MTD_TL.xml, ANG-file derived for Landsat). Values are in
degrees, zenith and azimuth, on a grid whose points are the *centres* of `grid`'s cells. For
Sentinel-2 the first value of the MTD_TL.xml 23x23 list lies on the tile's upper-left corner, so the
angle grid's transform is the tile UL shifted by half a step up and left (see io/safe.py).
`mean_zenith`/`mean_azimuth` are the product's own mean values where the metadata gives them (S2
Mean_Sun_Angle / Mean_Viewing_Incidence_Angle, Landsat SUN_ELEVATION/SUN_AZIMUTH), else the NaN-mean
of the grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gpumaja.model.grids import Grid


@dataclass(frozen=True, eq=False)
class AngleGrid:
    zenith: np.ndarray  # (rows, cols) float32 degrees, no NaN after the reader's filling
    azimuth: np.ndarray  # (rows, cols) float32 degrees in [0, 360)
    grid: Grid  # cell centres = angle sample points
    mean_zenith: float = field(default=float("nan"))
    mean_azimuth: float = field(default=float("nan"))

    def __post_init__(self) -> None:
        if self.zenith.shape != self.azimuth.shape or self.zenith.shape != self.grid.shape:
            raise ValueError(
                f"angle grid shapes differ: zenith {self.zenith.shape}, azimuth {self.azimuth.shape}, "
                f"grid {self.grid.shape}"
            )
        if np.isnan(self.mean_zenith):
            object.__setattr__(self, "mean_zenith", float(np.nanmean(self.zenith)))
        if np.isnan(self.mean_azimuth):
            object.__setattr__(self, "mean_azimuth", float(circular_mean_deg(self.azimuth)))

    @classmethod
    def constant(cls, zenith: float, azimuth: float, grid: Grid) -> AngleGrid:
        z = np.full(grid.shape, zenith, np.float32)
        a = np.full(grid.shape, azimuth % 360.0, np.float32)
        return cls(z, a, grid, float(zenith), float(azimuth % 360.0))


def circular_mean_deg(angles: np.ndarray, axis: int | None = None):
    """Mean of angles in degrees on the circle, in [0, 360); NaNs ignored.

    A float when `axis` is None, else an array reduced along `axis` (NaN where all inputs are NaN).
    """
    a = np.deg2rad(np.asarray(angles, np.float64))
    m = np.degrees(np.arctan2(np.nanmean(np.sin(a), axis=axis), np.nanmean(np.cos(a), axis=axis))) % 360.0
    return float(m) if axis is None else m


def fill_nan_nearest(values: np.ndarray) -> np.ndarray:
    """Fill NaN cells with the value of the nearest valid cell (Euclidean, in grid cells).

    Used for viewing-angle grids whose edge cells lie outside every detector's footprint and for
    sun grids with missing cells. An all-NaN array is returned unchanged.
    """
    values = np.asarray(values, np.float32)
    nan = np.isnan(values)
    if not nan.any() or nan.all():
        return values.copy()
    from scipy import ndimage

    _, (iy, ix) = ndimage.distance_transform_edt(nan, return_indices=True)
    return values[iy, ix]


def angles_on_grid(angles: AngleGrid, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """(zenith, azimuth) float32 (rows, cols) of `grid`'s cell centres, bilinear in the angle grid's
    cell-centre coordinates (clamped at its border); azimuth interpolated as a unit vector, so that
    359° and 1° average to 0°. Both grids must share a CRS."""
    if angles.grid.crs != grid.crs:
        raise ValueError(f"angles_on_grid: angle grid CRS {angles.grid.crs} differs from {grid.crs}")
    xs, ys = grid.xy_centres()
    inv = ~angles.grid.transform
    xs, ys = np.asarray(xs, np.float64), np.asarray(ys, np.float64)
    cols = inv.a * xs + inv.b * ys[0] + inv.c - 0.5  # fractional angle-grid cell-centre index
    rows = inv.d * xs[0] + inv.e * ys + inv.f - 0.5
    ny, nx = angles.grid.shape

    def weights(f, n):
        f = np.clip(f, 0.0, n - 1.0)
        i0 = np.minimum(np.floor(f).astype(int), max(n - 2, 0))
        return i0, np.minimum(i0 + 1, n - 1), (f - i0)

    r0, r1, wr = weights(rows, ny)
    c0, c1, wc = weights(cols, nx)

    def interp(a):
        a = np.asarray(a, np.float64)
        top = a[r0][:, c0] * (1 - wc) + a[r0][:, c1] * wc
        bot = a[r1][:, c0] * (1 - wc) + a[r1][:, c1] * wc
        return top * (1 - wr[:, None]) + bot * wr[:, None]

    az = np.deg2rad(np.asarray(angles.azimuth, np.float64))
    zen = interp(angles.zenith)
    azi = (np.degrees(np.arctan2(interp(np.sin(az)), interp(np.cos(az)))) % 360.0).astype(np.float32)
    azi[azi >= np.float32(360.0)] = 0.0  # -1e-9 % 360 rounds to 360 in float32
    return zen.astype(np.float32), azi
