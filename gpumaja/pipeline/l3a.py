"""`gpumaja l3a` driver: WASP weighted monthly synthesis of MUSCATE L2A products (wasp-l3a-and-lis-snow.md §1).

Per input date and resolution group (R1 = B2 B3 B4 B8 at 10 m, R2 = B5 B6 B7 B8A B11 B12 at 20 m):
read FRE + CLM/MG2 + ATB (`io.l2a_inputs`), cloud weight from the two Gaussian blurs of the R1 cloud
mask at 240 m (`l3a.weights`), AOT, sensor and date weights, the directional normalisation of land
pixels (`l3a.directional`, angles from the MTD: `io.muscate_angles`), then the running weighted
synthesis (`l3a.synthesis`, CUDA kernels `wasp_weight` / `wasp_update`). The synthesis state stays on
the device for the whole run; the next date is read on a CPU thread while the device works.

Deviations from the released WASP (docs/l3a.md): inputs outside [date - H, date + H] are excluded
(WASP composites whatever it is given); dates are processed in `synthesis_order` (the result does not
depend on the command-line order; the snow/water observation closest to the synthesis date wins);
R2 uses the product's R2 masks and ATB rather than R1's resampled by 0.5.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np

from gpumaja.backend import Backend
from gpumaja.errors import InputError
from gpumaja.io.l2a_inputs import expand_l2a_inputs, read_group
from gpumaja.io.muscate_angles import read_muscate_angles
from gpumaja.io.muscate_mtd import read_mtd
from gpumaja.model.angles import angles_on_grid
from gpumaja.model.l3a import FLG_CLOUD, FLG_LAND, FLG_SNOW, L3AGroup, L3AInput, L3AResult
from gpumaja.model.wasp_params import WASP_R1_BANDS, WASP_R2_BANDS, WaspParams
from gpumaja.pipeline.stages import Stages

log = logging.getLogger(__name__)

GROUP_BANDS = {"R1": WASP_R1_BANDS, "R2": WASP_R2_BANDS}
MG2_WATER_BIT, MG2_SNOW_BIT = 0, 2  # wasp-l3a-and-lis-snow.md §1.1 mask table
CLM_SUMMARY_BIT = 0


def muscate_id(band: str) -> str:
    """gpumaja band name -> MUSCATE band id: B02 -> B2, B8A -> B8A."""
    return band[0] + band[1:].lstrip("0") if band[1:].isdigit() else band


def _day_number(acquired: datetime, synthesis_date: date) -> int:
    """Days from 1 January of the synthesis date's year (0-based day of year within that year)."""
    return (acquired.date() - date(synthesis_date.year, 1, 1)).days


def _platform_of(platforms: set[str]) -> str:
    if len(platforms) == 1:
        return next(iter(platforms))
    return "SENTINEL2X"


def select_inputs(metas: list[dict], synthesis_date: date, half_window: int) -> tuple[list[dict], list[dict]]:
    """(used, excluded) products: excluded = outside the window, not valid, or not Sentinel-2."""
    used, excluded = [], []
    for m in metas:
        delta = (m["acquired"].date() - synthesis_date).days
        reason = None
        if not str(m["platform"]).upper().startswith("SENTINEL2"):
            reason = f"platform {m['platform']} is not Sentinel-2 (WASP composites Sentinel-2 only)"
        elif abs(delta) > half_window:
            reason = f"acquired {delta:+d} days from the synthesis date (window ±{half_window})"
        elif not m["valid"]:
            reason = "not valid (metadata only: too cloudy or no data)"
        if reason:
            excluded.append({"product_id": m["product_id"], "path": str(m["path"]), "reason": reason})
        else:
            used.append(m)
    return used, excluded


def _read_date(meta: dict) -> dict:
    groups = {g: read_group(meta, g, [muscate_id(b) for b in GROUP_BANDS[g]]) for g in ("R1", "R2")}
    sun, views = read_muscate_angles(meta["path"], meta, groups["R1"].grid)
    return {"meta": meta, "groups": groups, "sun": sun, "views": views}


def _check_grids(first: dict | None, data: dict) -> dict:
    grids = {g: d.grid for g, d in data["groups"].items()}
    if first is None:
        r1, r2 = grids["R1"], grids["R2"]
        if r1.shape != (2 * r2.shape[0], 2 * r2.shape[1]):
            raise InputError(f"R1 grid {r1.shape} is not twice the R2 grid {r2.shape}", data["meta"]["path"])
        return grids
    for g, grid in grids.items():
        if grid != first[g]:
            raise InputError(f"{g} grid {grid} differs from the first input's {first[g]} (one tile, one grid)",
                             data["meta"]["path"])
    return first


def run_l3a(
    products: Sequence[str | Path], synthesis_date: date, out_dir: Path, backend: Backend,
    params: WaspParams | None = None, overwrite: bool = False,
    on_progress: Callable[[int, int, str], None] | None = None,
) -> dict:
    """WASP synthesis of `products` centred on `synthesis_date`, written to `out_dir`; a summary dict."""
    from gpumaja.io.l3a_writer import l3a_product_name, write_l3a
    from gpumaja.l3a.directional import directional_factor, normalise
    from gpumaja.l3a.synthesis import new_state, synthesis_order, total_weight, update_synthesis
    from gpumaja.l3a.weights import (
        cloud_blurs,
        cloud_weight,
        date_weight,
        sensor_weight,
        upsample_coarse,
    )

    params = params or WaspParams()
    xp = backend.xp
    t_start = time.perf_counter()
    metas = [read_mtd(p) for p in expand_l2a_inputs(products)]
    used, excluded = select_inputs(metas, synthesis_date, params.half_window_days)
    for e in excluded:
        log.warning("excluded %s: %s", e["product_id"], e["reason"])
    if not used:
        raise InputError(f"no usable L2A product within ±{params.half_window_days} days of {synthesis_date}",
                         Path(str(products[0])) if products else None)
    tiles = {m["tile"] for m in used}
    if len(tiles) != 1:
        raise InputError(f"the inputs cover several tiles ({', '.join(sorted(map(str, tiles)))}); "
                         "a synthesis is one tile", Path(str(used[0]["path"])))
    tile = next(iter(tiles))
    central = _day_number(datetime.combine(synthesis_date, datetime.min.time()), synthesis_date)
    days = [_day_number(m["acquired"], synthesis_date) for m in used]
    order = synthesis_order(days, [m["product_id"] for m in used], float(central))
    used = [used[i] for i in order]
    platform = _platform_of({str(m["platform"]).upper() for m in used})
    inputs = [L3AInput(m["product_id"], str(m["platform"]), m["acquired"], str(m["path"].parent)) for m in used]

    stages = Stages(backend)
    grids = None
    states: dict = {}
    factor = {}
    with ThreadPoolExecutor(max_workers=1) as pool:
        futures = [pool.submit(_read_date, m) for m in used[:1]]
        for i, meta in enumerate(used):
            if on_progress:
                on_progress(i, len(used), meta["product_id"])
            with stages("read"):
                data = futures[i].result()
            if i + 1 < len(used):
                futures.append(pool.submit(_read_date, used[i + 1]))
            grids = _check_grids(grids, data)
            if not states:
                for g in ("R1", "R2"):
                    states[g] = new_state(len(GROUP_BANDS[g]), grids[g].shape, xp)
                    factor[g] = int(round(params.coarse_resolution_m / grids[g].resolution))
            day = float(_day_number(meta["acquired"], synthesis_date))
            w_date = date_weight(day - central, params)
            w_sensor = sensor_weight(str(meta["platform"]), params)
            raw_blue_r1 = xp.asarray(data["groups"]["R1"].reflectance[0])  # FRE_B2 before normalisation
            with stages("cloud weight"):
                r1 = data["groups"]["R1"]
                cloud_r1 = xp.asarray((r1.clm >> CLM_SUMMARY_BIT) & 1, dtype=bool)
                valid_r1 = ~xp.asarray(r1.nodata)
                g_small, g_large = cloud_blurs(cloud_r1, valid_r1, factor["R1"], params, xp)
            for g in ("R1", "R2"):
                gd = data["groups"][g]
                shape = grids[g].shape
                with stages("weights"):
                    w_cloud = cloud_weight(upsample_coarse(g_small, shape, factor[g], xp),
                                           upsample_coarse(g_large, shape, factor[g], xp), xp)
                    weight = total_weight(xp.asarray(gd.aot), w_cloud, w_sensor, w_date, params, backend)
                with stages("directional"):
                    clm = xp.asarray(gd.clm)
                    mg2 = xp.asarray(gd.mg2)
                    cloud = ((clm >> CLM_SUMMARY_BIT) & 1).astype(bool)
                    water = ((mg2 >> MG2_WATER_BIT) & 1).astype(bool)
                    snow = ((mg2 >> MG2_SNOW_BIT) & 1).astype(bool)
                    nodata = xp.asarray(gd.nodata)
                    refl = xp.asarray(gd.reflectance)
                    refl[:, nodata] = xp.nan
                    land = ~(cloud | water | snow | nodata)
                    if params.directional_correction:
                        sz, sa = (xp.asarray(a) for a in angles_on_grid(data["sun"], grids[g]))
                        out = []
                        for bi, band in enumerate(GROUP_BANDS[g]):
                            view = data["views"].get(muscate_id(band))
                            if view is None:
                                raise InputError(f"no viewing angles for band {muscate_id(band)}", meta["path"])
                            vz, va = (xp.asarray(a) for a in angles_on_grid(view, grids[g]))
                            f = directional_factor(sz, sa, vz, va, band, params, xp)
                            out.append(normalise(refl[bi], f, land, xp))
                        refl = xp.stack(out).astype(xp.float32)
                    if g == "R1":
                        blue = refl[0]  # the directionally corrected B2 (§1.5)
                    else:  # raw FRE_B2 brought to 20 m: the mean of each 2x2 block (WASP: nearest neighbour)
                        h, w = shape
                        blue = raw_blue_r1[:2 * h, :2 * w].reshape(h, 2, w, 2).mean(axis=(1, 3)).astype(xp.float32)
                with stages("synthesis"):
                    update_synthesis(states[g], refl, weight, day, cloud, snow, water, blue, backend)

    with stages("download"):
        groups = {}
        for g in ("R1", "R2"):
            st = states[g]
            groups[g] = L3AGroup(g, grids[g], GROUP_BANDS[g], backend.to_numpy(st.reflectance),
                                 backend.to_numpy(st.weight), backend.to_numpy(st.day),
                                 backend.to_numpy(st.flag))
    flg2 = groups["R2"].flag
    result = L3AResult(
        tile=tile, platform=platform, synthesis_date=synthesis_date,
        half_window_days=params.half_window_days, crs=grids["R1"].crs, groups=groups, inputs=inputs,
        params=asdict(params), cloud_percent=round(100.0 * float((flg2 == FLG_CLOUD).mean()), 2),
        snow_percent=round(100.0 * float((flg2 == FLG_SNOW).mean()), 2),
        production_date=datetime.now(timezone.utc),
    )
    name = l3a_product_name(result)
    with stages("write"):
        path = write_l3a(result, out_dir, overwrite=overwrite)
    counts = {int(k): int(v) for k, v in zip(*np.unique(flg2, return_counts=True))}
    return {
        "product": str(path), "name": name, "synthesis_date": synthesis_date.isoformat(), "tile": tile,
        "platform": platform, "inputs": [i.product_id for i in inputs], "excluded": excluded,
        "filled_percent": round(100.0 * float((flg2 == FLG_LAND).mean()), 2),
        "flag_counts_r2": counts, "cloud_percent": result.cloud_percent, "snow_percent": result.snow_percent,
        "seconds": {**{k: round(v, 3) for k, v in stages.times.items()},
                    "total": round(time.perf_counter() - t_start, 3)},
    }


__all__ = ["muscate_id", "run_l3a", "select_inputs"]
