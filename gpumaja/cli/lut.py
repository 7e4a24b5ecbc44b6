"""`gpumaja lut build`: our atmospheric LUT for one sensor, with the real 6S code (extra `lut`)."""

from __future__ import annotations

import logging
import time
from enum import Enum
from pathlib import Path

import typer

from gpumaja.cli.common import print_json, progress_bar, stdout
from gpumaja.errors import InputError

app = typer.Typer(help="Build or inspect atmospheric LUTs.", no_args_is_help=True)
log = logging.getLogger(__name__)


class Sensor(str, Enum):
    S2A = "S2A"
    S2B = "S2B"
    S2C = "S2C"
    L8 = "L8"
    L9 = "L9"


class GridChoice(str, Enum):
    default = "default"
    smoke = "smoke"


@app.command("build")
def build(
    sensor: Sensor = typer.Option(..., "--sensor", help="Sensor whose spectral responses to use."),
    out: Path = typer.Option(None, "--out", help="LUT file to write (default gpumaja_6S_<SENSOR>_CONTINEN.npz)."),
    jobs: int = typer.Option(2, "--jobs", "-j", min=1, help="6S processes run in parallel."),
    grid: GridChoice = typer.Option(GridChoice.default, "--grid", help="'smoke' = a tiny grid for tests."),
    cache: Path = typer.Option(None, "--cache", help="Resume file (default: <out>.partial.jsonl)."),
    keep_cache: bool = typer.Option(False, "--keep-cache", help="Keep the resume file after success."),
    json_out: bool = typer.Option(False, "--json", help="Print a summary as JSON on stdout."),
) -> None:
    """Run 6S over the LUT grid (resumable: rerun the same command after an interruption)."""
    from gpumaja.io.lutfile import save_lut
    from gpumaja.lut import grid as G
    from gpumaja.lut.build import build_lut
    from gpumaja.lut.sensors import sensor_spec
    from gpumaja.lut.sixs import SixSUnavailable, sixs_executable

    try:
        sixs_executable()
    except SixSUnavailable as exc:
        raise InputError(str(exc)) from exc
    spec = sensor_spec(sensor.value)
    if spec.srf_substituted:
        log.warning("%s: %s", spec.key, spec.srf_source)
    out = out or Path(f"gpumaja_6S_{spec.key}_CONTINEN.npz")
    cache = cache or out.with_name(out.name + ".partial.jsonl")
    g = G.SMOKE_GRID if grid == GridChoice.smoke else G.BuildGrid()
    t0 = time.time()
    state = {"last": 0}
    with progress_bar(f"6S runs for {spec.key}", None) as advance:
        def on_done(done: int, total: int) -> None:
            advance(done - state["last"], description=f"6S runs for {spec.key} ({done}/{total})")
            state["last"] = done

        tables = build_lut(spec, cache, g, jobs=jobs, on_done=on_done)
    save_lut(tables, out)
    if not keep_cache:
        cache.unlink(missing_ok=True)
    summary = {"sensor": spec.key, "out": str(out), "runs": tables.meta["n_runs"], "seconds": round(time.time() - t0, 1),
               "bands": list(tables.bands), "srf_source": spec.srf_source}
    if json_out:
        print_json(summary)
    else:
        stdout.print(f"{out}: {summary['runs']} 6S runs, {summary['seconds']} s")
