"""`gpumaja l2a`: Level-2A (MAJA science) of the input dates, one series per tile, written as MUSCATE products."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from gpumaja.backend import select_backend
from gpumaja.cli.common import Device, print_json, progress_bar, stdout


class SeriesMode(str, Enum):
    auto = "auto"
    init = "init"


class Decoder(str, Enum):
    auto = "auto"
    rasterio = "rasterio"
    nvimgcodec = "nvimgcodec"


def l2a(
    inputs: list[Path] = typer.Argument(..., help="L1C products: SAFE folders/.zip, Landsat folders, or folders of them."),
    out: Path = typer.Option(..., "--out", help="Folder to write one MUSCATE product per date into."),
    dem: Path = typer.Option(None, "--dem", help="DEM GeoTIFF (any CRS) covering the tile; default flat 0 m."),
    gipp: Path = typer.Option(None, "--gipp", help="MAJA GIPP folder (LUTs) instead of gpumaja's default 6S LUT."),
    lut: Path = typer.Option(None, "--lut", help="A LUT file built with 'gpumaja lut build'."),
    params: Path = typer.Option(None, "--params", help="Parameter overrides: TOML file or a MAJA L2COMM .EEF."),
    device: Device = typer.Option(Device.auto, "--device", help="auto: the GPU if CuPy sees one, else the CPU."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace products (and an interrupted run's "
                                   "checkpoint) that already exist in --out."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted run from its checkpoint in "
                                "--out/.gpumaja (same inputs and options)."),
    mode: SeriesMode = typer.Option(SeriesMode.auto, "--mode", help="auto: each tile's dates as one series "
                                    "(backward initialisation, then nominal mode with the composite); init: "
                                    "each date alone (MAJA INIT mode)."),
    cache: Path = typer.Option(None, "--cache", help="Folder of decoded band files: the first run decodes each "
                               "JPEG 2000 band once and stores its DN there, later runs read them from it."),
    decode_workers: int = typer.Option(None, "--decode-workers", min=1, help="Threads decoding band files "
                                       "(default: GPUMAJA_DECODE_WORKERS, else the number of CPUs)."),
    decoder: Decoder = typer.Option(None, "--decoder", help="JPEG 2000 decoder (default: GPUMAJA_DECODER, else "
                                    "auto: nvImageCodec on the GPU when installed, else rasterio/OpenJPEG)."),
    json_out: bool = typer.Option(False, "--json", help="Print one summary per product as JSON on stdout."),
) -> None:
    """Atmospheric correction and masks of a time series (MAJA backward + nominal modes, or each date alone
    with --mode init): SRE, FRE, ATB, MASKS, MTD per date."""
    from gpumaja.io.params import read_params
    from gpumaja.model.params import L2Params
    from gpumaja.pipeline.l2a import run_l2a

    p = read_params(params) if params is not None else L2Params()
    backend = select_backend(device.value)
    with progress_bar("L2A", None) as advance:
        def on_product(i: int, n: int, name: str) -> None:
            advance(0 if i == 0 else 1, description=f"L2A step {i + 1}/{n} {name}", total=n)

        summaries = run_l2a(inputs, out, backend, p, dem=dem, gipp=gipp, lut_file=lut, overwrite=overwrite,
                            on_product=on_product, resume=resume, mode=mode.value, cache=cache,
                            decode_workers=decode_workers, decoder=decoder.value if decoder else None)
        advance(1, description=f"L2A done: {len(summaries)} product(s)")
    if json_out:
        print_json({"backend": backend.description, "products": summaries})
        return
    for s in summaries:
        state = "" if s["valid"] else "  (too cloudy: metadata only)"
        stdout.print(f"{s['product']}  {s['mode']}  cloud {s['cloud_percent']:.1f} %  AOT {s['mean_aot']}  "
                     f"WV {s['mean_water_vapour']}  {s['seconds']['compute']:.1f} s{state}")
