"""`gpumaja scd`: annual snow cover duration (SCD, SOD, SMOD, NOBS) from per-date snow maps."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import typer

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout
from gpumaja.errors import InputError


def scd(
    inputs: list[Path] = typer.Argument(..., help="Snow products (gpumaja snow or Theia/LIS L2B-SNOW folders), "
                                        "or folders of them; Landsat maps densify the Sentinel-2 series."),
    year: int = typer.Option(None, "--year", min=1972, max=2200, help="Hydrological year: --year 2018 = "
                             "2017-09-01 .. 2018-08-31."),
    start: datetime = typer.Option(None, "--start", formats=["%Y-%m-%d"], help="Period start (instead of --year)."),
    stop: datetime = typer.Option(None, "--stop", formats=["%Y-%m-%d"], help="Period end, inclusive."),
    out: Path = typer.Option(..., "--out", help="Folder to write the SCD product into."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the product if it exists."),
    json_out: bool = typer.Option(False, "--json", help="Print the summary as JSON on stdout."),
) -> None:
    """Snow cover duration over a hydrological year (or --start/--stop): daily interpolation per pixel."""
    from gpumaja.model.lis_params import ScdParams
    from gpumaja.pipeline.scd import run_scd
    from gpumaja.snow.duration import period_for_year

    params = ScdParams()
    if year is not None and (start is not None or stop is not None):
        raise InputError("give either --year or --start/--stop, not both")
    if year is not None:
        p_start, p_stop = period_for_year(year, params)
    elif start is not None and stop is not None:
        p_start, p_stop = start.date(), stop.date()
    else:
        raise InputError("give --year (hydrological year) or both --start and --stop")
    backend = select_backend(device.value)
    with progress_bar("SCD", None) as advance:
        def on_progress(i: int, n: int, name: str) -> None:
            advance(0 if i == 0 else 1, description=f"SCD stacking {i + 1}/{n}", total=n)

        summary = run_scd(inputs, p_start, p_stop, out, backend, params, overwrite=overwrite,
                          on_progress=on_progress)
        advance(1, description="SCD done")
    summary["backend"] = backend.description
    if json_out:
        print_json(summary)
        return
    stdout.print(summary["product"])
    stdout.print(f"  {summary['n_inputs']} map(s) ({summary['n_landsat']} Landsat), {summary['n_days']} days, "
                 f"mean SCD {summary['mean_scd_days']} days, mean NOBS {summary['mean_nobs']}; "
                 f"{summary['seconds']['total']:.1f} s")
