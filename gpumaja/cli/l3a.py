"""`gpumaja l3a`: WASP weighted monthly synthesis (L3A) of MUSCATE L2A products."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from pathlib import Path

import typer

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout


def l3a(
    inputs: list[Path] = typer.Argument(..., help="MUSCATE L2A products (folders or MTD_ALL.xml; Theia's or "
                                        "gpumaja's), or folders of them; one tile."),
    synthesis_date: datetime = typer.Option(..., "--date", formats=["%Y-%m-%d"],
                                            help="Synthesis (central) date, e.g. 2024-04-15."),
    half_window: int = typer.Option(23, "--half-window", min=1, max=183,
                                    help="Days either side of --date (WASP default 23: a 46-day window)."),
    out: Path = typer.Option(..., "--out", help="Folder to write the L3A product into."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    no_directional: bool = typer.Option(False, "--no-directional", help="Skip the directional (BRDF) "
                                        "normalisation of land pixels."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the product if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Weighted average synthesis (WASP) around --date: FRC, FLG, WGT, DTS, quicklook, MTD, STAC."""
    from gpumaja.model.wasp_params import WaspParams
    from gpumaja.pipeline.l3a import run_l3a

    params = replace(WaspParams(), half_window_days=half_window, directional_correction=not no_directional)
    backend = select_backend(device.value)
    with progress_bar("L3A", None) as advance:
        def on_progress(i: int, n: int, name: str) -> None:
            advance(0 if i == 0 else 1, description=f"L3A date {i + 1}/{n} {name[:40]}", total=n)

        summary = run_l3a(inputs, synthesis_date.date(), out, backend, params, overwrite=overwrite,
                          on_progress=on_progress)
        advance(1, description="L3A done")
    summary["backend"] = backend.description
    if json_out:
        print_json(summary)
        return
    stdout.print(f"{summary['product']}")
    stdout.print(f"  {len(summary['inputs'])} date(s) used, {len(summary['excluded'])} excluded; land filled "
                 f"{summary['filled_percent']:.1f} %, cloud {summary['cloud_percent']:.1f} %, snow "
                 f"{summary['snow_percent']:.1f} %; {summary['seconds']['total']:.1f} s")
    for e in summary["excluded"]:
        stdout.print(f"  excluded {e['product_id']}: {e['reason']}")
