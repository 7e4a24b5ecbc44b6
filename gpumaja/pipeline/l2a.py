"""`gpumaja l2a` driver: the input dates of each tile as one series (backward initialisation, then
nominal forward: `gpumaja.pipeline.l2a_series`) -> one MUSCATE product per date.

All checks that can fail on the user's input run before anything is written (preflight): every
product opens and has its angle grids, a LUT exists for every platform (and is of that sensor),
the DEM covers every tile. Products are written under a temporary name and renamed when complete
(`gpumaja.io.muscate.write_l2a`), so an interrupted or failed run leaves no partial product.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from gpumaja.backend import Backend
from gpumaja.errors import InputError
from gpumaja.io.dem import load_terrain
from gpumaja.io.muscate import product_name_of
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
    on_product: Callable[[int, int, str], None] | None = None, resume: bool = False, mode: str = "auto",
    cache: Path | None = None, decode_workers: int | None = None, decoder: str | None = None,
) -> list[dict]:
    """Process the input dates as one series per tile (`gpumaja.pipeline.l2a_series`: backward
    initialisation then nominal forward, maja-l2a.md §2; mode="init": each date alone in INIT mode);
    one summary dict per product written. `on_product(i, n, product_id)` is called before each of
    the n processing steps. `resume` continues an interrupted run from its checkpoint in `out`.
    `cache`, `decode_workers`, `decoder`: band decoding (`l2a_series.run_series`, `io.decode`)."""
    from gpumaja.pipeline.l2a_series import run_series

    params = params or L2Params()
    products = open_inputs(inputs)
    luts = LUTCache(gipp, lut_file)
    preflight(products, luts, dem, params)  # existing products / checkpoints: l2a_series.prepare_tiles
    return run_series(products, luts, params, backend, out, dem, resume=resume, overwrite=overwrite,
                      on_step=on_product, mode=mode, cache=cache, decode_workers=decode_workers,
                      decoder=decoder)
