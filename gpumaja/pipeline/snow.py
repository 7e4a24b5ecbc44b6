"""`gpumaja snow` driver: LIS per-date snow maps (L2B) from MUSCATE L2A products (wasp-l3a-and-lis-snow.md §2).

Sentinel-2: FRE B3 (green) and B4 (red) at 10 m aggregated to 20 m (the mean of each 2x2 block; LIS
resamples them with a cubic kernel), B11 (SWIR), CLM_R2 and MG2_R2 at 20 m. Landsat 8/9: B3, B4, B6 and
the masks at 30 m. The DEM is resampled bilinearly onto the product grid (`io.dem.read_dem`). The
detection itself is `gpumaja.snow.lis.detect_snow` (CUDA kernels `snow_pass1` / `snow_pass2`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

from gpumaja.backend import Backend
from gpumaja.errors import InputError
from gpumaja.io.l2a_inputs import expand_l2a_inputs, read_group
from gpumaja.io.muscate_mtd import read_mtd
from gpumaja.model.lis_params import LisParams
from gpumaja.model.snow import SnowMap
from gpumaja.pipeline.stages import Stages

log = logging.getLogger(__name__)

S2_BANDS = {"green": "B3", "red": "B4", "swir": "B11"}
LANDSAT_BANDS = {"green": "B3", "red": "B4", "swir": "B6"}


def _is_landsat(meta: dict) -> bool:
    return str(meta["platform"]).upper().startswith("LANDSAT")


def read_snow_inputs(meta: dict) -> dict:
    """Green, red, SWIR reflectance, CLM, MG2 and nodata of one L2A product on its snow grid
    (S2: 20 m; Landsat: 30 m), as NumPy arrays."""
    import numpy as np

    if _is_landsat(meta):
        gd = read_group(meta, "XS", [LANDSAT_BANDS[k] for k in ("green", "red", "swir")], need_aot=False)
        green, red, swir = gd.reflectance
        return {"grid": gd.grid, "green": green, "red": red, "swir": swir, "clm": gd.clm, "mg2": gd.mg2,
                "nodata": gd.nodata | np.isnan(swir), "landsat": True}
    r2 = read_group(meta, "R2", [S2_BANDS["swir"]], need_aot=False)
    r1 = read_group(meta, "R1", [S2_BANDS["green"], S2_BANDS["red"]], need_aot=False)
    h, w = r2.grid.shape
    if r1.grid.shape != (2 * h, 2 * w):
        raise InputError(f"R1 grid {r1.grid.shape} is not twice the R2 grid {r2.grid.shape}", meta["path"])
    vis = r1.reflectance[:, :2 * h, :2 * w].reshape(2, h, 2, w, 2).mean(axis=(2, 4)).astype(np.float32)
    swir = r2.reflectance[0]
    return {"grid": r2.grid, "green": vis[0], "red": vis[1], "swir": swir, "clm": r2.clm, "mg2": r2.mg2,
            "nodata": r2.nodata | np.isnan(swir), "landsat": False}


def run_snow(
    products: Sequence[str | Path], dem: Path | None, out_dir: Path, backend: Backend,
    params: LisParams | None = None, overwrite: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> list[dict]:
    """One LIS snow product per L2A product in `out_dir`; one summary dict each. Without a DEM the
    altitude is a flat 0 m, no snowline exists and pass 2 does not run (a warning says so)."""
    import numpy as np

    from gpumaja.io.dem import read_dem
    from gpumaja.io.snow_product import snow_product_name, write_snow
    from gpumaja.snow.lis import detect_snow

    params = params or LisParams()
    metas = [read_mtd(p) for p in expand_l2a_inputs(products)]
    metas.sort(key=lambda m: m["acquired"])
    usable = []
    for m in metas:
        if not m["valid"]:
            log.warning("skipped %s: not valid (metadata only)", m["product_id"])
            continue
        usable.append(m)
    if not usable:
        raise InputError("no valid L2A product among the inputs", Path(str(products[0])) if products else None)
    if dem is None:
        log.warning("no --dem: the snowline cannot be computed, pass 2 of the snow detection is skipped")
    summaries = []
    dem_cache: dict = {}
    for i, meta in enumerate(usable):
        if on_progress:
            on_progress(i, len(usable), meta["product_id"])
        stages = Stages(backend)
        t0 = time.perf_counter()
        with stages("read"):
            inp = read_snow_inputs(meta)
            grid = inp["grid"]
            if dem is not None:
                if grid not in dem_cache:
                    dem_cache[grid] = read_dem(dem, grid).altitude
                altitude = dem_cache[grid]
            else:
                altitude = np.zeros(grid.shape, np.float32)
        platform = str(meta["platform"]).upper().replace("-", "")
        if inp["landsat"]:
            platform = platform.split("OLI")[0] if "OLI" in platform else platform
        snow_map_stub = SnowMap(str(meta["tile"] or ""), platform, meta["acquired"], grid,
                                np.zeros(grid.shape, np.uint8))
        name = snow_product_name(snow_map_stub)
        if (Path(out_dir) / name).exists() and not overwrite:
            raise InputError(f"snow product {name} already exists (use --overwrite to replace it)", Path(out_dir))
        xp = backend.xp
        factor = params.dark_cloud_factor_landsat if inp["landsat"] else params.dark_cloud_factor_s2
        with stages("snow detection"):
            det = detect_snow(xp.asarray(inp["green"]), xp.asarray(inp["red"]), xp.asarray(inp["swir"]),
                              xp.asarray(inp["clm"]), xp.asarray(altitude), xp.asarray(inp["nodata"]),
                              params, factor, backend, mg2=xp.asarray(inp["mg2"]))
        with stages("download"):
            snw, fsc, expert = (backend.to_numpy(a) for a in (det.snw, det.fsc, det.expert))
        m = SnowMap(str(meta["tile"] or ""), platform, meta["acquired"], grid, snw, fsc, expert,
                    float(det.snowline_m), float(det.snow_percent), float(det.cloud_percent),
                    meta["product_id"], asdict(params))
        with stages("write"):
            path = write_snow(m, out_dir, overwrite=overwrite)
        summaries.append({
            "product": str(path), "source": meta["product_id"],
            "acquired": meta["acquired"].isoformat().replace("+00:00", "Z"), "platform": platform,
            "snow_percent": round(m.snow_percent, 3), "cloud_percent": round(m.cloud_percent, 3),
            "snowline_m": m.snowline_m, "pass2": bool(det.pass2_ran),
            "seconds": {**{k: round(v, 3) for k, v in stages.times.items()},
                        "total": round(time.perf_counter() - t0, 3)},
        })
    return summaries


__all__ = ["read_snow_inputs", "run_snow"]
