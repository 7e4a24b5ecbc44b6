"""Load a tile series as TOA reflectance, one resolution group at a time.

Reads the DN of every band (io), converts them on the chosen backend with the `dn_to_toa` kernel or
its NumPy twin (radiometry), and builds the group's xarray Dataset (model). Pixels stay on the
backend's device: with the GPU backend the Dataset holds CuPy arrays.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import nvtx
import xarray as xr

from gpumaja.backend import CPU, Backend
from gpumaja.io.bands import read_dn
from gpumaja.model.series import TileSeries, group_dataset
from gpumaja.radiometry.toa import dn_to_toa


def load_group(
    series: TileSeries,
    group: str,
    backend: Backend = CPU,
    on_date: Callable[[int], None] | None = None,
) -> xr.Dataset:
    """TOA Dataset (time, band, y, x) of `group`; `on_date(i)` is called after each date is loaded."""
    xp = backend.xp
    bands = series.bands(group)
    grid = series.grids[group]
    toa = xp.empty((len(series), len(bands), grid.height, grid.width), np.float32)
    flags = xp.empty(toa.shape, np.uint8)
    for i, product in enumerate(series.products):
        with nvtx.annotate(f"load {group} {product.product_id}", domain="gpumaja"):
            dn = np.stack([read_dn(product, b.name) for b in bands])
            rad = [product.radiometry[b.name] for b in bands]
            t, f = dn_to_toa(
                xp.asarray(dn),
                np.array([r.gain for r in rad], np.float32),
                np.array([r.offset for r in rad], np.float32),
                np.array([r.sun_factor for r in rad], np.float32),
                nodata=product.nodata_dn,
                saturated=product.saturated_dn,
                backend=backend,
            )
            toa[i] = t
            flags[i] = f
        if on_date is not None:
            on_date(i)
    return group_dataset(series, group, toa, flags)
