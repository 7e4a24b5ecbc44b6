"""`gpumaja demo`: the main job on an embedded default, on any machine.

Synthesise a small Sentinel-2 series (real SAFE products, a DEM and the truth), run the L2A chain
on each date (MAJA INIT mode, the default 6S LUT shipped in the package, the synthetic DEM) and write
MUSCATE products with their quicklooks; print what was found next to the truth and how long each
step took. Later issues extend it to L3A and snow.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import typer
from rich.table import Table

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout
from gpumaja.cli.synth import run_synth
from gpumaja.model.params import L2Params
from gpumaja.pipeline.l2a import run_l2a

log = logging.getLogger(__name__)


def demo(
    out: Path = typer.Option(Path("gpumaja-demo"), "--out", help="Working folder for the demo's products."),
    dates: int = typer.Option(4, "--dates", min=1, max=50, help="Number of synthetic dates."),
    size: int = typer.Option(600, "--size", min=60, help="Tile size in 10 m pixels (a multiple of 6)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
) -> None:
    """Synthetic L1C series -> L2A MUSCATE products (SRE, FRE, ATB, masks, quicklook, STAC), vs truth."""
    backend = select_backend(device.value)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    synth_dir = out / "L1C"
    paths = run_synth(synth_dir, dates, size, seed)
    timings["synth_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    with progress_bar("L2A", len(paths)) as advance:
        summaries = run_l2a(paths, out / "L2A", backend, L2Params(), dem=synth_dir / "truth" / "dem.tif",
                            overwrite=True, on_product=lambda i, n, name: advance(
                                0 if i == 0 else 1, description=f"L2A step {i + 1}/{n} {name[:24]}", total=n))
        advance(1, description="L2A done")
    timings["l2a_s"] = time.perf_counter() - t0

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
            "mean_aot": s["mean_aot"], "mean_aot_truth": t.get("mean_aot"),
            "mean_water_vapour": s["mean_water_vapour"], "mean_water_vapour_truth": t.get("mean_water_vapour"),
            "compute_s": s["seconds"]["compute"], "write_s": s["seconds"]["write"],
        })
    result = {
        "backend": backend.description, "out": str(out), "luts": sorted({s["lut"] for s in summaries}),
        "products": rows, "timings": {k: round(v, 3) for k, v in timings.items()},
    }
    if json_out:
        print_json(result)
        return
    table = Table(title=f"gpumaja demo: {len(rows)} dates, {size}x{size} px, {backend.description}")
    for col in ("date (UTC)", "sat", "cloud % (truth)", "snow % (truth)", "AOT (truth)", "WV g/cm² (truth)", "s"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["acquired"][:16].replace("T", " "), r["platform"].replace("SENTINEL-", "S"),
            f"{r['cloud_percent']:.1f} ({_f(r['cloud_percent_truth'], 1)})",
            f"{r['snow_percent']:.1f} ({_f(r['snow_percent_truth'], 1)})",
            f"{_f(r['mean_aot'], 3)} ({_f(r['mean_aot_truth'], 3)})",
            f"{_f(r['mean_water_vapour'], 2)} ({_f(r['mean_water_vapour_truth'], 2)})",
            f"{r['compute_s']:.1f}")
    stdout.print(table)
    stdout.print("LUT: " + "; ".join(result["luts"]))
    for r in rows:
        stdout.print(f"{r['product']}" + ("" if r["valid"] else "  (too cloudy: metadata only)"))
        if r["quicklook"]:
            stdout.print(f"  quicklook: {r['quicklook']}")
    stdout.print("timings: " + ", ".join(f"{k} {v:.2f}" for k, v in result["timings"].items()))


def _sum(d: dict, *keys: str) -> float | None:
    vals = [d.get(k) for k in keys]
    return None if any(v is None for v in vals) else float(sum(vals))


def _f(x, nd: int) -> str:
    return "-" if x is None else f"{x:.{nd}f}"
