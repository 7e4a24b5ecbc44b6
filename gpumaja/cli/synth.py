"""`gpumaja synth`: write a synthetic Sentinel-2 L1C series (real SAFE products) and its truth."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import typer

from gpumaja.cli.common import print_json, progress_bar, stdout
from gpumaja.synth import generate_series
from gpumaja.synth.scene import REVISIT_DAYS


def run_synth(out: Path, dates: int, size: int, seed: int, start: date | None = None,
              forward: str = "6s", revisit_days: int = REVISIT_DAYS) -> list[Path]:
    # generate_series reports: "landscape", then three steps per date, then "done"
    with progress_bar(f"synthesising {dates} date(s) of {size}x{size} px", 3 * dates + 2) as advance:
        return generate_series(out, dates=dates, size=size, seed=seed, start=start, forward=forward,
                               revisit_days=revisit_days,
                               progress=lambda step: advance(1, description=f"synth: {step}"))


def synth(
    out: Path = typer.Option(..., "--out", help="Folder to write the SAFE products and truth/ into."),
    dates: int = typer.Option(6, "--dates", min=1, max=400, help="Number of acquisition dates."),
    size: int = typer.Option(600, "--size", min=60, help="Tile size in 10 m pixels (a multiple of 6)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed, same series)."),
    start: datetime = typer.Option(None, "--start", formats=["%Y-%m-%d"], help="First date (default 2024-01-05)."),
    forward: str = typer.Option("6s", "--forward", help="TOA radiative transfer: '6s' (the shipped 6S LUT's "
                                "tables) or 'analytic' (single-layer delta-Eddington)."),
    revisit: int = typer.Option(REVISIT_DAYS, "--revisit", min=1, max=366,
                                help="Days between two dates (5 = the S2A+S2B revisit)."),
    json_out: bool = typer.Option(False, "--json", help="Print the written products as JSON on stdout."),
) -> None:
    """Write a realistic synthetic L1C time series (SAFE + JP2) with a truth folder."""
    paths = run_synth(out, dates, size, seed, start.date() if start else None, forward, revisit)
    if json_out:
        print_json({"out": str(out), "products": [str(p) for p in paths], "truth": str(out / "truth")})
    else:
        for p in paths:
            stdout.print(str(p))
        stdout.print(f"truth: {out / 'truth'}")
