"""`gpumaja snow`: LIS per-date snow maps (SNW, FSC) of MUSCATE L2A products."""

from __future__ import annotations

from pathlib import Path

import typer

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout


def snow(
    inputs: list[Path] = typer.Argument(..., help="MUSCATE L2A products (Sentinel-2 or Landsat 8/9), or folders of them."),
    dem: Path = typer.Option(..., "--dem", help="DEM GeoTIFF (any CRS) covering the products (for the snowline)."),
    out: Path = typer.Option(..., "--out", help="Folder to write one L2B-SNOW product per date into."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace products that exist."),
    json_out: bool = typer.Option(False, "--json", help="Print one summary per product as JSON on stdout."),
) -> None:
    """Let-It-Snow snow detection per date: SNW (0/100/205/255), FSC, expert mask, quicklook, MTD, STAC."""
    from gpumaja.model.lis_params import LisParams
    from gpumaja.pipeline.snow import run_snow

    backend = select_backend(device.value)
    with progress_bar("snow", None) as advance:
        def on_progress(i: int, n: int, name: str) -> None:
            advance(0 if i == 0 else 1, description=f"snow {i + 1}/{n} {name[:40]}", total=n)

        summaries = run_snow(inputs, dem, out, backend, LisParams(), overwrite=overwrite, on_progress=on_progress)
        advance(1, description=f"snow done: {len(summaries)} product(s)")
    if json_out:
        print_json({"backend": backend.description, "products": summaries})
        return
    for s in summaries:
        line = "-" if s["snowline_m"] < 0 else f"{s['snowline_m']:.0f} m"
        stdout.print(f"{s['product']}  snow {s['snow_percent']:.1f} %  cloud {s['cloud_percent']:.1f} %  "
                     f"snowline {line}  {s['seconds']['total']:.1f} s")
