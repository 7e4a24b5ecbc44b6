"""`gpumaja info`: what the products are (tile, dates, platforms, sizes, mean angles, nodata %)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import typer

from gpumaja.backend import Backend, select_backend
from gpumaja.cli.common import Device, print_json, progress_bar
from gpumaja.errors import SeriesError
from gpumaja.io.bands import read_dn
from gpumaja.io.products import open_product
from gpumaja.io.series import assemble_series, expand_inputs
from gpumaja.model.product import L1CProduct
from gpumaja.radiometry.toa import FLAG_NODATA, dn_to_toa

log = logging.getLogger(__name__)


def nodata_percent(product: L1CProduct, backend: Backend) -> dict[str, float]:
    """Percentage of no-data pixels per resolution group (a pixel is no data if any band of it is)."""
    result = {}
    for group in sorted(product.grids):
        bands = [b.name for b in product.bands if b.group == group]
        dn = backend.xp.asarray(np.stack([read_dn(product, b) for b in bands]))
        ones = np.ones(len(bands), np.float32)
        _, flags = dn_to_toa(dn, ones, 0 * ones, ones, product.nodata_dn, product.saturated_dn, backend)
        nodata = ((flags & FLAG_NODATA) != 0).any(axis=0)
        result[group] = round(float(nodata.mean()) * 100.0, 4)
    return result


def describe(products: list[L1CProduct], backend: Backend | None, dedupe: bool) -> dict:
    entries = []
    with progress_bar("reading products", len(products)) as advance:
        for p in products:
            d = p.describe()
            if backend is not None:
                d["nodata_percent"] = nodata_percent(p, backend)
            entries.append(d)
            advance()
    summary: dict = {"count": len(products)}
    try:
        series = assemble_series(products, dedupe=dedupe)
        summary.update(
            one_series=True,
            tile=series[0].tile,
            sensor=series[0].sensor,
            first=series[0].acquired.isoformat().replace("+00:00", "Z"),
            last=series[-1].acquired.isoformat().replace("+00:00", "Z"),
        )
    except SeriesError as exc:
        summary.update(one_series=False, why=str(exc))
    return {"products": entries, "series": summary}


def print_product(d: dict) -> None:
    """One product as a short key/value block on stdout."""
    grids = "  ".join(f"{g} {v['height']}x{v['width']}@{v['resolution_m']:g}m" for g, v in d["grids"].items())
    crs = next(iter(d["grids"].values()))["crs"]
    vz = d["mean_view_zenith"]
    lines = [
        d["product"],
        f"  platform {d['platform']}  tile {d['tile']}  orbit {d['orbit']}  baseline {d['processing_baseline']}",
        f"  acquired {d['acquired']}",
        f"  grids    {grids}  ({crs})",
        f"  sun      zenith {d['mean_sun_zenith']:.3f}°  azimuth {d['mean_sun_azimuth']:.3f}°  "
        f"elevation {d['mean_sun_elevation']:.3f}°",
    ]
    if vz:
        lines.append(f"  view     zenith {min(vz.values()):.2f}–{max(vz.values()):.2f}° over {len(vz)} bands")
    if "nodata_percent" in d:
        lines.append("  nodata % " + "  ".join(f"{g} {v:.2f}" for g, v in d["nodata_percent"].items()))
    print("\n".join(lines))


def info(
    inputs: list[Path] = typer.Argument(..., help="Products (.SAFE folders or .zip, Landsat folders or MTL files) "
                                         "or folders of products."),
    json_out: bool = typer.Option(False, "--json", help="Print JSON on stdout."),
    pixels: bool = typer.Option(True, "--pixels/--no-pixels", help="Read the pixels to report nodata %."),
    dedupe: bool = typer.Option(False, "--dedupe", help="Treat duplicate acquisitions as one (newest kept)."),
    device: Device = typer.Option(Device.auto, "--device", help="Compute device for the pixel statistics."),
) -> None:
    """Describe products: tile, dates, platforms, sizes, mean angles, nodata %."""
    backend = select_backend(device.value) if pixels else None
    products = sorted((open_product(p) for p in expand_inputs(inputs)), key=lambda p: p.acquired)
    result = describe(products, backend, dedupe)
    if json_out:
        print_json(result)
        return
    for d in result["products"]:
        print_product(d)
    s = result["series"]
    if s["one_series"]:
        print(f"one series: tile {s['tile']}, {s['count']} date(s) from {s['first']} to {s['last']}")
    else:
        print(f"not one series: {s['why']}")
