"""Read everything one date's L2A needs: TOA per resolution group and terrain per grid.

This is the only part of the L2A chain that opens files (band files through `io.bands`, the DEM
through `io.dem`). The compute (`gpumaja.pipeline.l2a_date`) receives arrays already on the backend.

Band files are decoded by the `io.decode.DecodePool` given to `read_date`/`read_group`, else the one
made current with `using_decoder` (the series read-ahead sets it on its reader thread and
`prefetch_date` queues the next dates' bands on it), else one after the other in the calling thread.
With a pool on the GPU, the DN reach the device through pinned buffers on a copy stream
(`pipeline.transfer`) or are decoded there (nvImageCodec).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import nvtx

from gpumaja.backend import Backend
from gpumaja.errors import CorruptFileError
from gpumaja.io.bands import read_dn
from gpumaja.io.decode import DecodePool
from gpumaja.io.dem import load_terrain
from gpumaja.model.bands import group_bands
from gpumaja.model.grids import Grid
from gpumaja.model.params import L2Params
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


_DECODER: contextvars.ContextVar[DecodePool | None] = contextvars.ContextVar("gpumaja_decoder", default=None)


@contextmanager
def using_decoder(pool: DecodePool | None) -> Iterator[None]:
    """Make `pool` the decoder of read_date/read_group calls in this thread/context."""
    token = _DECODER.set(pool)
    try:
        yield
    finally:
        _DECODER.reset(token)


def date_bands(product: L1CProduct, groups: tuple[str, ...] | None = None) -> dict[str, tuple[str, ...]]:
    """{group: band names of `product` in it} for the groups read_date reads."""
    out = {}
    for g, bands in group_bands(product.sensor).items():
        if groups is not None and g not in groups:
            continue
        names = tuple(b.name for b in bands if b.name in product.band_files)
        if names:
            out[g] = names
    return out


def prefetch_date(product: L1CProduct, pool: DecodePool, groups: tuple[str, ...] | None = None) -> None:
    """Queue the decoding of every band read_date will read on `pool`."""
    for bands in date_bands(product, groups).values():
        pool.prefetch(product, bands)


def read_group(product: L1CProduct, group: str, bands: tuple[str, ...], backend: Backend,
               decoder: DecodePool | None = None) -> GroupTOA:
    xp = backend.xp
    decoder = decoder or _DECODER.get()
    with nvtx.annotate(f"read {group}", domain="gpumaja"):
        if decoder is not None:
            dn = decoder.decode_stack(product, bands, backend)
        else:
            dn = xp.asarray(np.stack([read_dn(product, b) for b in bands]))
    rad = [product.radiometry[b] for b in bands]
    with nvtx.annotate(f"toa {group}", domain="gpumaja"):
        toa, flags = dn_to_toa(
            dn, np.array([r.gain for r in rad], np.float32), np.array([r.offset for r in rad], np.float32),
            np.array([r.sun_factor for r in rad], np.float32), nodata=product.nodata_dn,
            saturated=product.saturated_dn, backend=backend,
        )
    return GroupTOA(group, product.grids[group], bands, toa, (flags & FLAG_SATURATED) != 0)


def read_date(
    product: L1CProduct, backend: Backend, dem: str | Path | None = None, coarse_resolution: float | None = None,
    groups: tuple[str, ...] | None = None, decoder: DecodePool | None = None,
) -> DateInputs:
    """TOA of every group of `product` and the terrain on each group grid and on the coarse grid.
    `decoder`: the pool decoding the band files (default: module docstring); `coarse_resolution`:
    default `L2Params.coarse_resolution_m`."""
    _check_angles(product)
    if coarse_resolution is None:
        coarse_resolution = L2Params().coarse_resolution_m
    decoder = decoder or _DECODER.get()
    out: dict[str, GroupTOA] = {}
    bands_of_group = date_bands(product, groups)
    if decoder is not None:  # every group's bands queued at once: the pool decodes across groups
        for names in bands_of_group.values():
            decoder.prefetch(product, names)
    for g, names in bands_of_group.items():
        out[g] = read_group(product, g, names, backend, decoder)
    finest = min(out.values(), key=lambda t: t.grid.resolution).grid
    coarse = finest.coarsen(coarse_resolution)
    with nvtx.annotate("dem", domain="gpumaja"):
        terrain = {"coarse": load_terrain(dem, coarse)}
        for g, t in out.items():
            if g != "R3":  # 60 m bands are only used at the coarse grid
                terrain[g] = load_terrain(dem, t.grid) if dem is not None else flat_terrain(t.grid)
    return DateInputs(product, out, coarse, terrain, str(dem) if dem is not None else "flat 0 m (no DEM)")
