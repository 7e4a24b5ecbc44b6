"""`gpumaja scd` driver: annual snow cover duration (LIS snow_annual_map, wasp-l3a-and-lis-snow.md §3).

Reads the per-date snow maps of one tile (gpumaja's `gpumaja snow` products or Theia/LIS L2B-SNOW
folders), keeps those within [start - margin, stop + margin], reprojects Landsat maps onto the
Sentinel-2 grid by nearest neighbour (densification), stacks the codes (T, H, W) uint8 on the device
(S2 before Landsat on a shared day, the merge priority) and computes SCD, SOD, SMOD and NOBS with
`gpumaja.snow.duration.snow_duration` (CUDA kernel `snow_duration`): daily linear interpolation per
pixel, no daily stack ever materialised.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path

import numpy as np

from gpumaja.backend import Backend
from gpumaja.errors import InputError, MissingFileError
from gpumaja.model.lis_params import ScdParams
from gpumaja.model.snow import SnowDuration
from gpumaja.pipeline.stages import Stages

log = logging.getLogger(__name__)


def expand_snow_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """Snow product folders: the inputs themselves, or the product folders inside an input folder."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise MissingFileError("input not found", p)
        if p.is_dir() and ("L2B-SNOW" in p.name or any(p.glob("*_SNW_*.tif"))):
            out.append(p)
            continue
        if p.is_dir():
            found = sorted(c for c in p.iterdir() if c.is_dir() and "L2B-SNOW" in c.name
                           and not c.name.startswith("."))
            if not found:
                raise MissingFileError("no snow product (*L2B-SNOW* folder) in this folder", p)
            out.extend(found)
            continue
        raise InputError("not a snow product folder", p)
    return out


def _is_landsat(platform: str) -> bool:
    return platform.upper().startswith("LANDSAT")


def run_scd(
    snow_products: Sequence[str | Path], start: date, stop: date, out_dir: Path, backend: Backend,
    params: ScdParams | None = None, overwrite: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """SCD/SOD/SMOD/NOBS of the period [start, stop] (inclusive) written to `out_dir`; a summary dict."""
    from gpumaja.io.reproject import reproject_codes
    from gpumaja.io.scd_product import scd_product_name, write_scd
    from gpumaja.io.snow_product import read_snow
    from gpumaja.snow.duration import select_inputs, snow_duration

    params = params or ScdParams()
    if stop < start:
        raise InputError(f"the period ends ({stop}) before it starts ({start})")
    t0 = time.perf_counter()
    stages = Stages(backend)
    paths = expand_snow_inputs(snow_products)
    with stages("read"):
        maps = [read_snow(p) for p in paths]
    keep = select_inputs([m.acquired.date() for m in maps], start, stop, params)
    dropped = [paths[i].name for i in range(len(maps)) if i not in set(keep)]
    if dropped:
        log.info("%d snow product(s) outside the period and its %d-day margin ignored", len(dropped),
                 params.date_margin_days)
    maps = [maps[i] for i in keep]
    used_paths = [paths[i] for i in keep]
    s2 = [m for m in maps if not _is_landsat(m.platform)]
    if not s2:
        raise InputError(f"no Sentinel-2 snow product within {start}..{stop} ± {params.date_margin_days} days "
                         "(the Sentinel-2 grid is the output grid)", Path(str(snow_products[0])))
    tiles = {m.tile for m in s2}
    if len(tiles) != 1:
        raise InputError(f"the Sentinel-2 inputs cover several tiles ({', '.join(sorted(tiles))})",
                         Path(str(snow_products[0])))
    grid = s2[0].grid
    for m, p in zip(maps, used_paths):
        if not _is_landsat(m.platform) and m.grid != grid:
            raise InputError(f"grid {m.grid} differs from the first Sentinel-2 map's {grid}", p)
    tile = next(iter(tiles))
    landsat_used = any(_is_landsat(m.platform) for m in maps)
    mission = "S2L8" if landsat_used else "S2"
    # stack order: by day, Sentinel-2 before Landsat on a shared day (merge priority, §3)
    order = sorted(range(len(maps)), key=lambda i: (maps[i].acquired.date(), _is_landsat(maps[i].platform),
                                                     maps[i].acquired))
    xp = backend.xp
    n_days = (stop - start).days + 1
    with stages("stack"):
        stack = xp.empty((len(order), *grid.shape), dtype=xp.uint8)
        for k, i in enumerate(order):
            m = maps[i]
            if on_progress:
                on_progress(k, len(order), used_paths[i].name)
            codes = m.snw
            if m.grid != grid:
                codes = reproject_codes(codes, m.grid, grid)
            stack[k] = xp.asarray(codes)
        obs_days = np.array([(maps[i].acquired.date() - start).days for i in order], np.int32)
    if out_dir is not None:
        probe = SnowDuration(tile, mission, start, stop, grid, *(np.zeros(grid.shape, np.uint16),) * 4)
        if (Path(out_dir) / scd_product_name(probe)).exists() and not overwrite:
            raise InputError(f"{scd_product_name(probe)} already exists (use --overwrite to replace it)",
                             Path(out_dir))
    with stages("duration"):
        res = snow_duration(stack, obs_days, n_days, params, backend)
    with stages("download"):
        scd, sod, smod, nobs = (backend.to_numpy(a) for a in (res.scd, res.sod, res.smod, res.nobs))
    d = SnowDuration(tile, mission, start, stop, grid, scd, sod, smod, nobs,
                     inputs=[used_paths[i].name for i in order],
                     input_dates=[maps[i].acquired.date() for i in order], params=asdict(params))
    with stages("write"):
        path = write_scd(d, out_dir, overwrite=overwrite)
    seen = nobs > 0
    return {
        "product": str(path), "tile": tile, "mission": mission, "start": start.isoformat(),
        "stop": stop.isoformat(), "n_inputs": len(order), "n_landsat": sum(_is_landsat(m.platform) for m in maps),
        "n_days": n_days, "ignored_outside_period": dropped,
        "mean_scd_days": round(float(scd[seen].mean()), 2) if seen.any() else None,
        "mean_nobs": round(float(nobs.mean()), 2),
        "seconds": {**{k: round(v, 3) for k, v in stages.times.items()}, "total": round(time.perf_counter() - t0, 3)},
    }


__all__ = ["expand_snow_inputs", "run_scd"]
