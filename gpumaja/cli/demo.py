"""`gpumaja demo`: the main job on an embedded default, on any machine.

Synthesise a small Sentinel-2 series over a winter (real SAFE products, a DEM with a snowy mountain,
and the truth), then run the whole chain on it: L2A on every date (MAJA backward initialisation then
nominal mode, the default 6S LUT shipped in the package, the synthetic DEM) -> one WASP L3A synthesis
at the middle date -> one LIS snow map per date -> the snow cover duration (SCD/SOD/SMOD/NOBS) over
the series' period, with quicklooks and a PNG map of SCD; print what was found next to the truth and
how long each step took.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout
from gpumaja.cli.synth import run_synth
from gpumaja.model.lis_params import LisParams, ScdParams
from gpumaja.model.params import L2Params
from gpumaja.model.wasp_params import WaspParams
from gpumaja.pipeline.l2a import run_l2a
from gpumaja.pipeline.l3a import run_l3a
from gpumaja.pipeline.scd import run_scd
from gpumaja.pipeline.snow import run_snow

log = logging.getLogger(__name__)


def demo(
    out: Path = typer.Option(Path("gpumaja-demo"), "--out", help="Working folder for the demo's products."),
    dates: int = typer.Option(9, "--dates", min=3, max=50, help="Number of synthetic dates."),
    revisit: int = typer.Option(10, "--revisit", min=1, max=60, help="Days between synthetic dates."),
    size: int = typer.Option(600, "--size", min=60, help="Tile size in 10 m pixels (a multiple of 6)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Synthetic winter L1C series -> L2A (MUSCATE) -> L3A (WASP) -> snow maps (LIS) -> snow cover duration."""
    backend = select_backend(device.value)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    synth_dir = out / "L1C"
    paths = run_synth(synth_dir, dates, size, seed, revisit_days=revisit)
    timings["synth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress_bar("L2A", len(paths)) as advance:
        summaries = run_l2a(paths, out / "L2A", backend, L2Params(), dem=synth_dir / "truth" / "dem.tif",
                            overwrite=True, on_product=lambda i, n, name: advance(
                                0 if i == 0 else 1, description=f"L2A step {i + 1}/{n} {name[:24]}", total=n))
        advance(1, description="L2A done")
    timings["l2a_s"] = time.perf_counter() - t0
    l2a_products = [Path(x["product"]) for x in summaries if x["valid"]]
    acquired = sorted(date.fromisoformat(x["acquired"][:10]) for x in summaries)
    middle = acquired[0] + (acquired[-1] - acquired[0]) / 2

    t0 = time.perf_counter()
    with progress_bar("L3A", None) as advance:
        l3a = run_l3a(l2a_products, middle, out / "L3A", backend, WaspParams(), overwrite=True,
                      on_progress=lambda i, n, name: advance(0 if i == 0 else 1, description=f"L3A date {i + 1}/{n}",
                                                             total=n))
        advance(1, description="L3A done")
    timings["l3a_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress_bar("snow", None) as advance:
        snow = run_snow(l2a_products, synth_dir / "truth" / "dem.tif", out / "SNOW", backend, LisParams(),
                        overwrite=True, on_progress=lambda i, n, name: advance(
                            0 if i == 0 else 1, description=f"snow {i + 1}/{n}", total=n))
        advance(1, description="snow done")
    timings["snow_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress_bar("SCD", None) as advance:
        scd = run_scd([Path(x["product"]) for x in snow], acquired[0], acquired[-1], out / "SCD", backend,
                      ScdParams(), overwrite=True, on_progress=lambda i, n, name: advance(
                          0 if i == 0 else 1, description=f"SCD stacking {i + 1}/{n}", total=n))
        advance(1, description="SCD done")
    timings["scd_s"] = time.perf_counter() - t0
    snow_by_date = {x["acquired"][:10]: x for x in snow}

    truth = json.loads((synth_dir / "truth" / "truth.json").read_text())
    by_date = {d["acquired"][:10]: d for d in truth.get("dates", [])}
    rows = []
    for s in summaries:
        t = by_date.get(s["acquired"][:10], {})
        qkl = sorted(Path(s["product"]).glob("*_QKL_ALL.jpg"))
        rows.append({
            "acquired": s["acquired"], "platform": s["platform"], "product": s["product"],
            "valid": s["valid"], "quicklook": str(qkl[0]) if qkl else None,
            "cloud_percent": s["cloud_percent"],
            "cloud_percent_truth": _sum(t, "cloud_percent", "cirrus_percent"),
            "snow_percent": s["snow_percent"], "snow_percent_truth": t.get("snow_percent"),
            "snow_map_snow_percent": snow_by_date.get(s["acquired"][:10], {}).get("snow_percent"),
            "snowline_m": snow_by_date.get(s["acquired"][:10], {}).get("snowline_m"),
            "snow_line_truth_m": t.get("snow_line_m"),
            "mean_aot": s["mean_aot"], "mean_aot_truth": t.get("mean_aot"),
            "mean_water_vapour": s["mean_water_vapour"], "mean_water_vapour_truth": t.get("mean_water_vapour"),
            "compute_s": s["seconds"]["compute"], "write_s": s["seconds"]["write"],
        })
    result = {
        "backend": backend.description, "out": str(out), "luts": sorted({s["lut"] for s in summaries}),
        "products": rows, "l3a": _l3a_summary(l3a), "snow": snow, "scd": _scd_summary(scd),
        "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if json_out:
        print_json(result)
        return
    table = Table(title=f"gpumaja demo: {len(rows)} dates, {size}x{size} px, {backend.description}")
    for col in ("date (UTC)", "sat", "cloud % (truth)", "snow % (truth)", "LIS snow %", "snowline m (truth)",
                "AOT (truth)", "WV g/cm² (truth)", "s"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["acquired"][:16].replace("T", " "), r["platform"].replace("SENTINEL-", "S"),
            f"{r['cloud_percent']:.1f} ({_f(r['cloud_percent_truth'], 1)})",
            f"{r['snow_percent']:.1f} ({_f(r['snow_percent_truth'], 1)})",
            _f(r["snow_map_snow_percent"], 1),
            f"{_line(r['snowline_m'])} ({_f(r['snow_line_truth_m'], 0)})",
            f"{_f(r['mean_aot'], 3)} ({_f(r['mean_aot_truth'], 3)})",
            f"{_f(r['mean_water_vapour'], 2)} ({_f(r['mean_water_vapour_truth'], 2)})",
            f"{r['compute_s']:.1f}")
    stdout.print(table)
    stdout.print("LUT: " + "; ".join(result["luts"]))
    for r in rows:
        stdout.print(f"{r['product']}" + ("" if r["valid"] else "  (too cloudy: metadata only)"))
        if r["quicklook"]:
            stdout.print(f"  quicklook: {r['quicklook']}")
    la = result["l3a"]
    stdout.print(f"L3A {la['synthesis_date']}: {la['product']}")
    stdout.print(f"  {len(la['inputs'])} dates, land filled {la['filled_percent']:.1f} %, cloud "
                 f"{la['cloud_percent']:.1f} %, snow {la['snow_percent']:.1f} %; quicklook: {la['quicklook']}")
    sc = result["scd"]
    stdout.print(f"SCD {sc['start']}..{sc['stop']}: {sc['product']}")
    stdout.print(f"  mean SCD {sc['mean_scd_days']} days, mean NOBS {sc['mean_nobs']}; map: {sc['map']}")
    stdout.print("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in result["timings"].items()))


def _l3a_summary(s: dict) -> dict:
    qkl = sorted(Path(s["product"]).glob("*_QKL_ALL.jpg"))
    keys = ("product", "synthesis_date", "inputs", "filled_percent", "cloud_percent", "snow_percent", "seconds")
    return {**{k: s[k] for k in keys}, "quicklook": str(qkl[0]) if qkl else None}


def _scd_summary(s: dict) -> dict:
    png = sorted(Path(s["product"]).glob("*.png"))
    keys = ("product", "start", "stop", "n_inputs", "n_days", "mean_scd_days", "mean_nobs", "seconds")
    return {**{k: s[k] for k in keys}, "map": str(png[0]) if png else None}


def _line(x) -> str:
    return "-" if x is None or x < 0 else f"{x:.0f}"


def _sum(d: dict, *keys: str) -> float | None:
    vals = [d.get(k) for k in keys]
    return None if any(v is None for v in vals) else float(sum(vals))


def _f(x, nd: int) -> str:
    return "-" if x is None else f"{x:.{nd}f}"
