"""Read everything one date's L2A needs: TOA per resolution group and terrain per grid.

This is the only part of the L2A chain that opens files (band files through `io.bands`, the DEM
through `io.dem`). The compute (`gpumaja.pipeline.l2a_date`) receives arrays already on the backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import nvtx

from gpumaja.backend import Backend
from gpumaja.errors import CorruptFileError
from gpumaja.io.bands import read_dn
from gpumaja.io.dem import load_terrain
from gpumaja.model.bands import group_bands
from gpumaja.model.grids import Grid
from gpumaja.model.product import L1CProduct
from gpumaja.model.terrain import Terrain, flat_terrain
from gpumaja.radiometry.toa import FLAG_SATURATED, dn_to_toa


@dataclass(eq=False)
class GroupTOA:
    name: str
    grid: Grid
    bands: tuple[str, ...]
    toa: Any  # (nb, ny, nx) float32 on the backend, NaN = nodata
    saturated: Any  # (nb, ny, nx) bool on the backend


@dataclass(eq=False)
class DateInputs:
    product: L1CProduct
    groups: dict[str, GroupTOA]  # every group of the product (S2: R1, R2, R3)
    coarse_grid: Grid
    terrain: dict[str, Terrain]  # group name and "coarse" -> terrain on that grid (NumPy)
    dem_source: str


def _check_angles(product: L1CProduct) -> None:
    """The chain needs the sun and the per-band viewing geometry (MAJA refuses products without
    angle grids: maja-l2a.md §6); the readers fill missing cells, but an all-NaN grid is an error."""
    label = product.path
    if not np.isfinite(product.sun.mean_zenith) or not np.isfinite(product.sun.mean_azimuth):
        raise CorruptFileError("the product has no usable sun angle grid", label)
    missing = [b for b in product.band_files if b not in product.view
               or not np.isfinite(product.view[b].mean_zenith)]
    if missing:
        raise CorruptFileError(f"no viewing angle grid for band(s) {', '.join(sorted(missing))}", label)


def read_group(product: L1CProduct, group: str, bands: tuple[str, ...], backend: Backend) -> GroupTOA:
    xp = backend.xp
    with nvtx.annotate(f"read {group}", domain="gpumaja"):
        dn = np.stack([read_dn(product, b) for b in bands])
    rad = [product.radiometry[b] for b in bands]
    with nvtx.annotate(f"toa {group}", domain="gpumaja"):
        toa, flags = dn_to_toa(
            xp.asarray(dn), np.array([r.gain for r in rad], np.float32), np.array([r.offset for r in rad], np.float32),
            np.array([r.sun_factor for r in rad], np.float32), nodata=product.nodata_dn,
            saturated=product.saturated_dn, backend=backend,
        )
    return GroupTOA(group, product.grids[group], bands, toa, (flags & FLAG_SATURATED) != 0)


def read_date(
    product: L1CProduct, backend: Backend, dem: str | Path | None = None, coarse_resolution: float = 240.0,
    groups: tuple[str, ...] | None = None,
) -> DateInputs:
    """TOA of every group of `product` and the terrain on each group grid and on the coarse grid."""
    _check_angles(product)
    out: dict[str, GroupTOA] = {}
    for g, bands in group_bands(product.sensor).items():
        if groups is not None and g not in groups:
            continue
        names = tuple(b.name for b in bands if b.name in product.band_files)
        if names:
            out[g] = read_group(product, g, names, backend)
    finest = min(out.values(), key=lambda t: t.grid.resolution).grid
    coarse = finest.coarsen(coarse_resolution)
    with nvtx.annotate("dem", domain="gpumaja"):
        terrain = {"coarse": load_terrain(dem, coarse)}
        for g, t in out.items():
            if g != "R3":  # 60 m bands are only used at the coarse grid
                terrain[g] = load_terrain(dem, t.grid) if dem is not None else flat_terrain(t.grid)
    return DateInputs(product, out, coarse, terrain, str(dem) if dem is not None else "flat 0 m (no DEM)")
