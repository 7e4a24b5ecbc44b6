"""`gpumaja l2a` driver: for each input date, read -> L2A (INIT mode) -> MUSCATE product.

All checks that can fail on the user's input run before anything is written (preflight): every
product opens and has its angle grids, a LUT exists for every platform (and is of that sensor),
the DEM covers every tile. Products are written under a temporary name and renamed when complete
(`gpumaja.io.muscate.write_l2a`), so an interrupted or failed run leaves no partial product.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from gpumaja.backend import Backend
from gpumaja.errors import InputError
from gpumaja.io.dem import load_terrain
from gpumaja.io.muscate import product_name, product_name_of, write_l2a
from gpumaja.io.products import open_product
from gpumaja.io.series import expand_inputs
from gpumaja.model.l2a import L2AResult
from gpumaja.model.params import L2Params
from gpumaja.model.product import L1CProduct
from gpumaja.pipeline.l2a_date import process_date
from gpumaja.pipeline.l2a_inputs import _check_angles, read_date
from gpumaja.pipeline.luts import LUTCache
from gpumaja.pipeline.stages import Stages

log = logging.getLogger(__name__)


def preflight(products: Sequence[L1CProduct], luts: LUTCache, dem: Path | None, params: L2Params,
              out: Path | None = None, overwrite: bool = False) -> None:
    for p in products:
        if out is not None and not overwrite and (out / product_name_of(p)).exists():
            raise InputError(f"product {product_name_of(p)} already exists (use --overwrite to replace it)", out)
        _check_angles(p)
        luts.for_platform(p.platform)
        if dem is not None:
            finest = min(p.grids.values(), key=lambda g: g.resolution)
            load_terrain(dem, finest.coarsen(params.coarse_resolution_m))


def open_inputs(inputs: Sequence[str | Path]) -> list[L1CProduct]:
    products = [open_product(p) for p in expand_inputs(inputs)]
    return sorted(products, key=lambda p: p.acquired)


def process_product(
    product: L1CProduct, luts: LUTCache, params: L2Params, backend: Backend, dem: Path | None = None,
) -> tuple[L2AResult, dict[str, float]]:
    """L2A of one date in memory, with the per-stage times."""
    stages = Stages(backend)
    with stages("read"):
        inp = read_date(product, backend, dem, params.coarse_resolution_m)
    result = process_date(inp, luts.for_platform(product.platform), params, backend, stages)
    return result, stages.times


def run_l2a(
    inputs: Sequence[str | Path], out: Path, backend: Backend, params: L2Params | None = None,
    dem: Path | None = None, gipp: Path | None = None, lut_file: Path | None = None, overwrite: bool = False,
    on_product: Callable[[int, int, str], None] | None = None,
) -> list[dict]:
    """Process every input date; one summary dict per product written."""
    params = params or L2Params()
    products = open_inputs(inputs)
    luts = LUTCache(gipp, lut_file)
    preflight(products, luts, dem, params, out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    summaries = []
    for i, product in enumerate(products):
        if on_product:
            on_product(i, len(products), product.product_id)
        t0 = time.perf_counter()
        result, times = process_product(product, luts, params, backend, dem)
        t1 = time.perf_counter()
        path = write_l2a(result, out, overwrite=overwrite)
        t2 = time.perf_counter()
        summaries.append({
            "input": str(product.path), "product": str(path), "name": product_name(result),
            "acquired": product.acquired.isoformat().replace("+00:00", "Z"), "platform": product.platform,
            "valid": result.valid, "cloud_percent": round(result.cloud_percent, 2),
            "snow_percent": round(result.snow_percent, 2), "mean_aot": _r(result.mean_aot),
            "mean_water_vapour": _r(result.mean_water_vapour), "lut": result.lut_source,
            "seconds": {"compute": round(t1 - t0, 3), "write": round(t2 - t1, 3),
                        **{k: round(v, 3) for k, v in times.items()}},
        })
        log.info("%s -> %s (cloud %.1f %%, AOT %.3f)", product.product_id, path.name, result.cloud_percent,
                 result.mean_aot)
    return summaries


def _r(x: float) -> float | None:
    return None if x != x else round(float(x), 4)
