"""`gpumaja demo`: the main job on an embedded default, on any machine.

For now: synthesise a small Sentinel-2 series, read it back as a tile series, convert it to TOA
reflectance on the chosen backend and report what was read and how long each step took. Later issues
extend it to L2A, L3A and snow.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import typer
from rich.table import Table

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout
from gpumaja.cli.info import describe
from gpumaja.cli.synth import run_synth
from gpumaja.io.dem import load_terrain
from gpumaja.io.series import assemble_series, open_products
from gpumaja.model.series import TileSeries
from gpumaja.pipeline.toa import load_group
from gpumaja.radiometry.toa import FLAG_NODATA

log = logging.getLogger(__name__)


def demo(
    out: Path = typer.Option(Path("gpumaja-demo"), "--out", help="Working folder for the demo's products."),
    dates: int = typer.Option(4, "--dates", min=1, max=50, help="Number of synthetic dates."),
    size: int = typer.Option(600, "--size", min=60, help="Tile size in 10 m pixels (a multiple of 6)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Run the chain on a synthetic series: synth, read, TOA on the chosen device, summary."""
    backend = select_backend(device.value)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    paths = run_synth(out, dates, size, seed)
    timings["synth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    products = assemble_series(open_products(paths))
    series = TileSeries(tuple(products))
    # the synthetic landscape's DEM, reprojected onto the coarse processing grid with slope and aspect
    terrain = load_terrain(str(out / "truth" / "dem.tif"), series.coarse_grid)
    timings["read_metadata_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    stats = {}
    with progress_bar("TOA reflectance", len(series) * len(series.groups)) as advance:
        for group in series.groups:
            ds = load_group(series, group, backend, on_date=lambda _i: advance())
            toa = backend.to_numpy(ds["toa"].data)
            nodata = (backend.to_numpy(ds["flags"].data) & FLAG_NODATA) != 0
            stats[group] = {
                "bands": list(ds.band.values),
                "shape": list(toa.shape),
                "mean_toa": np.round(np.nanmean(toa, axis=(2, 3)), 5).tolist(),
                "nodata_percent": np.round(nodata.mean(axis=(1, 2, 3)) * 100, 3).tolist(),
            }
    timings["toa_s"] = time.perf_counter() - t0

    truth = json.loads((out / "truth" / "truth.json").read_text())
    info = describe(products, None, dedupe=False)
    result = {
        "backend": backend.description,
        "out": str(out),
        "series": info["series"],
        "coarse_grid": {"resolution_m": series.coarse_grid.resolution, "shape": list(series.coarse_grid.shape)},
        "terrain": {
            "altitude_m": [round(float(terrain.altitude.min()), 1), round(float(terrain.altitude.max()), 1)],
            "mean_slope_deg": round(float(terrain.slope.mean()), 2),
        },
        "dates": [
            {
                "acquired": d["acquired"],
                "platform": d["platform"],
                "mean_sun_zenith": d["mean_sun_zenith"],
                "cloud_percent_truth": _cloud_percent(truth, i),
            }
            for i, d in enumerate(info["products"])
        ],
        "toa": stats,
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if json_out:
        print_json(result)
        return
    table = Table(title=f"gpumaja demo: tile {series.tile}, {len(series)} dates, {backend.description}")
    for col in ("date (UTC)", "sat", "sun zen °", "cloud %", *(f"TOA {b}" for b in stats[series.groups[0]]["bands"])):
        table.add_column(col)
    for i, d in enumerate(result["dates"]):
        means = stats[series.groups[0]]["mean_toa"][i]
        table.add_row(d["acquired"][:16].replace("T", " "), d["platform"].replace("SENTINEL-", "S"),
                      f"{d['mean_sun_zenith']:.2f}",
                      f"{d['cloud_percent_truth']:.1f}" if d["cloud_percent_truth"] is not None else "-",
                      *(f"{m:.4f}" for m in means))
    stdout.print(table)
    t = result["terrain"]
    stdout.print(f"terrain on the {series.coarse_grid.resolution:g} m grid: altitude {t['altitude_m'][0]:.0f}–"
                 f"{t['altitude_m'][1]:.0f} m, mean slope {t['mean_slope_deg']:.1f}°")
    stdout.print("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in result["timings"].items()))


def _cloud_percent(truth: dict, i: int) -> float | None:
    dates = truth.get("dates", [])
    if i < len(dates) and isinstance(dates[i], dict):
        return dates[i].get("cloud_percent")
    return None
