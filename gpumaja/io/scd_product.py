"""Write and read one snow cover duration synthesis (`SnowDuration`, LIS L3B) as a product folder.

Layout (wasp-l3a-and-lis-snow.md §3 "Products" and "tmp outputs"; name = `scd_product_name(d)` =
`LIS_{MISSION}-SNOW-L3B_{TILE}_{start}_{stop}_V1-0`, dates YYYYMMDD, MISSION "S2" or "S2L8"):

    <name>/LIS_{MISSION}-SNOW-SCD_{TILE}_{start}_{stop}_V1-0.tif   uint16 snow cover days
    <name>/LIS_{MISSION}-SNOW-SOD_..._V1-0.tif                     uint16 first day of the longest period
    <name>/LIS_{MISSION}-SNOW-SMOD_..._V1-0.tif                    uint16 last day of the longest period
    <name>/LIS_{MISSION}-SNOW-NOBS_..._V1-0.tif                    uint16 clear observations
    <name>/<name>_MTD.json        period, inputs with their dates, parameters, statistics
    <name>/input_dates.txt        YYYYMMDD of each input date, one a line (§3 "tmp outputs")
    <name>/output_dates.txt       YYYYMMDD of every day of the period
    <name>/<name>_SCD.png         colour map of SCD (0 brown .. n_days light blue, NOBS == 0 black)
    <name>/<name>.json            STAC item

The rasters are DEFLATE COGs without a nodata value (0 is a valid count; a pixel without any clear
observation has NOBS == 0); SCD and NOBS get average overviews, SOD and SMOD (day indices) nearest.
Difference from LIS >= 1.7: no production counter suffix (`..._V1-0_<counter>.tif`) and no NSP.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from gpumaja import __version__
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.cog import write_cog
from gpumaja.io.product_common import json_safe, read_raster, write_rgb_image
from gpumaja.io.product_folder import write_product_folder
from gpumaja.io.quicklook import subsample_step
from gpumaja.model.lis_params import ScdParams
from gpumaja.model.snow import SnowDuration

SCD_VERSION_TAG = "V1-0"
LAYERS = ("SCD", "SOD", "SMOD", "NOBS")
OVERVIEW_RESAMPLING = {"SCD": "average", "SOD": "nearest", "SMOD": "nearest", "NOBS": "average"}
LAYER_TITLES = {
    "SCD": "Snow cover duration (days)",
    "SOD": "Snow onset date: first day of the longest snow period (days since the period start)",
    "SMOD": "Snow melt-out date: last day of the longest snow period (days since the period start)",
    "NOBS": "Number of clear observations",
}
# SCD map colours (R, G, B): linear from NO_SNOW_COLOUR (0 days) to FULL_SNOW_COLOUR (n_days)
NO_SNOW_COLOUR = (130, 85, 40)  # brown
FULL_SNOW_COLOUR = (225, 240, 255)  # white-blue
NO_OBSERVATION_COLOUR = (0, 0, 0)
_NAME_RE = re.compile(r"^LIS_(?P<mission>[A-Z0-9]+)-SNOW-L3B_(?P<tile>.+)_(?P<start>\d{8})_(?P<stop>\d{8})_"
                      r"V(?P<version>\d+-\d+)$")


# ---------------------------------------------------------------------------------------- names
def _period(d: SnowDuration) -> str:
    return f"{d.tile}_{d.start:%Y%m%d}_{d.stop:%Y%m%d}_{SCD_VERSION_TAG}"


def scd_product_name(d: SnowDuration) -> str:
    """`LIS_{MISSION}-SNOW-L3B_{TILE}_{YYYYMMDD start}_{YYYYMMDD stop}_V1-0`, e.g.
    LIS_S2L8-SNOW-L3B_T31TCH_20170901_20180831_V1-0 (the folder)."""
    return f"LIS_{d.mission}-SNOW-L3B_{_period(d)}"


def scd_product_files(d: SnowDuration) -> dict[str, str]:
    """key ("SCD", "SOD", "SMOD", "NOBS", "MTD", "PNG", "INPUT_DATES", "OUTPUT_DATES") -> file name."""
    name = scd_product_name(d)
    files = {k: f"LIS_{d.mission}-SNOW-{k}_{_period(d)}.tif" for k in LAYERS}
    files.update({"MTD": f"{name}_MTD.json", "PNG": f"{name}_SCD.png", "INPUT_DATES": "input_dates.txt",
                  "OUTPUT_DATES": "output_dates.txt"})
    return files


def output_dates(d: SnowDuration) -> list[date]:
    """Every day from d.start to d.stop inclusive (§3 "Period")."""
    return [d.start + timedelta(days=i) for i in range(d.n_days)]


def scd_colour_map(scd: np.ndarray, nobs: np.ndarray, n_days: int) -> np.ndarray:
    """(3, ny, nx) uint8 SCD map: colour linear in SCD / n_days (clipped to 0..1) from brown to
    white-blue, black where NOBS == 0; subsampled by a whole step to at most 1000 px a side."""
    step = subsample_step(*np.shape(scd))
    s = np.asarray(scd, np.float64)[::step, ::step]
    empty = np.asarray(nobs)[::step, ::step] == 0
    t = np.clip(s / max(n_days, 1), 0.0, 1.0)
    out = np.empty((3, *s.shape), np.uint8)
    for c in range(3):
        lo, hi, none = NO_SNOW_COLOUR[c], FULL_SNOW_COLOUR[c], NO_OBSERVATION_COLOUR[c]
        out[c] = np.where(empty, none, np.clip(np.rint(lo + t * (hi - lo)), 0, 255))
    return out


def scd_statistics(d: SnowDuration) -> dict:
    """Summary numbers for the metadata: pixels, observed pixels (NOBS > 0), SCD mean/max over the
    observed pixels, NOBS mean/max over all pixels, pixels with SOD/SMOD computed (SCD above the
    minimum snow days of the parameters), snow pixels (SCD > 0)."""
    scd = np.asarray(d.scd, np.int64)
    nobs = np.asarray(d.nobs, np.int64)
    observed = nobs > 0
    n_obs = int(np.count_nonzero(observed))
    min_days = int(d.params.get("min_snow_days_for_sod", ScdParams().min_snow_days_for_sod))
    return {
        "pixels": int(scd.size),
        "observed_pixels": n_obs,
        "scd_mean_observed": float(scd[observed].mean()) if n_obs else None,
        "scd_max": int(scd[observed].max()) if n_obs else None,
        "snow_pixels": int(np.count_nonzero(scd > 0)),
        "sod_smod_pixels": int(np.count_nonzero(scd > min_days)),
        "nobs_mean": float(nobs.mean()) if nobs.size else None,
        "nobs_max": int(nobs.max()) if nobs.size else None,
    }


# ------------------------------------------------------------------------------------- writing
def scd_metadata(d: SnowDuration, files: dict[str, str], production_date: datetime | None = None) -> dict:
    """The `<name>_MTD.json` content."""
    t = d.grid.transform
    inputs = [{"product_id": pid, "date": d.input_dates[i].isoformat() if i < len(d.input_dates) else None}
              for i, pid in enumerate(d.inputs)]
    return {
        "product_id": scd_product_name(d),
        "product_level": "L3B-SNOW",
        "tile": d.tile,
        "mission": d.mission,
        "period": {"start": d.start.isoformat(), "stop": d.stop.isoformat(), "n_days": d.n_days},
        "crs": d.grid.crs,
        "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "shape": [d.grid.height, d.grid.width],
        "inputs": inputs,
        "input_dates": [x.isoformat() for x in d.input_dates],
        "params": json_safe(dict(d.params)),
        "statistics": scd_statistics(d),
        "files": {k: v for k, v in files.items()},
        "production_date": (production_date or datetime.now(timezone.utc)).isoformat().replace("+00:00", "Z"),
        "software": f"gpumaja {__version__}",
    }


def scd_stac_item(product_dir: str | os.PathLike, d: SnowDuration, files: dict[str, str]) -> dict:
    """STAC item (JSON-able dict): id = folder name, start/end_datetime = the period (first day
    00:00:00, last day 23:59:59 UTC, datetime null), proj per asset, one asset per file."""
    import pystac
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    from gpumaja.io.stac import add_projection, footprint

    product_dir = Path(product_dir)
    for rel in files.values():
        if not (product_dir / rel).is_file():
            raise MissingFileError("file listed for the STAC item is missing", product_dir / rel)
    geometry, bbox = footprint(d.grid)
    start = datetime(d.start.year, d.start.month, d.start.day, tzinfo=timezone.utc)
    end = datetime(d.stop.year, d.stop.month, d.stop.day, 23, 59, 59, tzinfo=timezone.utc)
    item = pystac.Item(id=scd_product_name(d), geometry=geometry, bbox=bbox, datetime=None, properties={},
                       start_datetime=start, end_datetime=end)
    item.common_metadata.constellation = "sentinel-2"
    item.common_metadata.created = datetime.now(timezone.utc)
    item.properties.update({
        "processing:level": "L3B-SNOW",
        "gpumaja:tile": d.tile,
        "gpumaja:mission": d.mission,
        "gpumaja:n_days": d.n_days,
        "gpumaja:n_inputs": len(d.inputs),
        "gpumaja:software_version": __version__,
        "gpumaja:params": json_safe(dict(d.params)),
    })
    ProjectionExtension.ext(item, add_if_missing=True).code = (
        d.grid.crs if d.grid.crs.upper().startswith("EPSG:") else None)
    RasterExtension.add_to(item)
    for key in LAYERS:
        asset = pystac.Asset(f"./{files[key]}", title=LAYER_TITLES[key], media_type=pystac.MediaType.COG,
                             roles=["data"])
        RasterExtension.ext(asset).bands = [RasterBand.create(
            data_type=DataType.UINT16, unit="d" if key != "NOBS" else None,
            spatial_resolution=d.grid.resolution)]
        add_projection(asset, d.grid)
        item.add_asset(key, asset)
    item.add_asset("SCD_PNG", pystac.Asset(f"./{files['PNG']}", title="Snow cover duration map",
                                           media_type=pystac.MediaType.PNG, roles=["thumbnail", "overview"]))
    item.add_asset("MTD", pystac.Asset(f"./{files['MTD']}", title="Metadata", media_type=pystac.MediaType.JSON,
                                       roles=["metadata"]))
    for key in ("INPUT_DATES", "OUTPUT_DATES"):
        item.add_asset(key, pystac.Asset(f"./{files[key]}", title=files[key], media_type=pystac.MediaType.TEXT,
                                         roles=["metadata"]))
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def write_scd(d: SnowDuration, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write `d` as `out_dir/<scd_product_name(d)>/` (see the module doc) and return the folder.
    InputError when it exists and `overwrite` is False; written under a temporary name, then renamed."""
    name = scd_product_name(d)
    files = scd_product_files(d)
    for key in LAYERS:
        a = np.asarray(getattr(d, key.lower()))
        if a.size and (a.min() < 0 or a.max() > np.iinfo(np.uint16).max):
            raise ValueError(f"{key} values {a.min()}..{a.max()} do not fit uint16")

    def fill(tmp: Path) -> None:
        for key in LAYERS:
            write_cog(tmp / files[key], np.asarray(getattr(d, key.lower())), d.grid, np.uint16, None,
                      OVERVIEW_RESAMPLING[key], [key])
        (tmp / files["INPUT_DATES"]).write_text("".join(f"{x:%Y%m%d}\n" for x in d.input_dates), encoding="ascii")
        (tmp / files["OUTPUT_DATES"]).write_text("".join(f"{x:%Y%m%d}\n" for x in output_dates(d)),
                                                 encoding="ascii")
        write_rgb_image(tmp / files["PNG"], scd_colour_map(d.scd, d.nobs, d.n_days), "PNG")
        (tmp / files["MTD"]).write_text(json.dumps(scd_metadata(d, files), indent=1) + "\n", encoding="utf-8")
        item = scd_stac_item(tmp, d, files)
        (tmp / f"{name}.json").write_text(json.dumps(item, indent=1) + "\n", encoding="utf-8")

    return write_product_folder(out_dir, name, fill, overwrite)


# ------------------------------------------------------------------------------------- reading
def _parse_name(name: str) -> dict | None:
    m = _NAME_RE.match(name)
    if m is None:
        return None
    try:
        start = datetime.strptime(m["start"], "%Y%m%d").date()
        stop = datetime.strptime(m["stop"], "%Y%m%d").date()
    except ValueError:
        return None
    return {"mission": m["mission"], "tile": m["tile"], "start": start, "stop": stop}


def _dates_file(path: Path) -> list[date]:
    out = []
    for line in path.read_text(encoding="ascii", errors="replace").split():
        try:
            out.append(datetime.strptime(line, "%Y%m%d").date())
        except ValueError:
            raise CorruptFileError(f"not a YYYYMMDD date: {line!r}", path) from None
    return out


def read_scd(path: str | os.PathLike) -> SnowDuration:
    """A product folder written by `write_scd` (or any file inside it) as a `SnowDuration`.
    Tile, mission and period come from the folder name; inputs and parameters from the MTD.json when
    present (else the input dates from input_dates.txt). MissingFileError / InputError /
    CorruptFileError name the path."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file or folder", p)
    folder = p if p.is_dir() else p.parent
    info = _parse_name(folder.name)
    if info is None:
        raise InputError("not a snow cover duration product folder (expected "
                         "LIS_<MISSION>-SNOW-L3B_<TILE>_<YYYYMMDD>_<YYYYMMDD>_V<x>-<y>)", folder)
    period = f"{info['tile']}_{info['start']:%Y%m%d}_{info['stop']:%Y%m%d}_"
    layers = {}
    grid = None
    for key in LAYERS:
        found = sorted(folder.glob(f"LIS_{info['mission']}-SNOW-{key}_{period}V*.tif"))
        if not found:
            raise MissingFileError(f"no LIS_{info['mission']}-SNOW-{key}_{period}V*.tif in the product", folder)
        if len(found) > 1:
            raise InputError(f"several {key} files: {', '.join(f.name for f in found)}", folder)
        data, g, _ = read_raster(found[0])
        if not np.issubdtype(data.dtype, np.integer) or (data.size and data.min() < 0):
            raise CorruptFileError(f"expected non-negative integer counts, the file holds {data.dtype}", found[0])
        if grid is not None and g != grid:
            raise CorruptFileError(f"grid {g} differs from the SCD grid {grid}", found[0])
        grid = g
        layers[key.lower()] = data.astype(np.uint16, copy=False)
    mtd_files = sorted(folder.glob("*_MTD.json"))
    inputs: list[str] = []
    input_dates: list[date] = []
    params: dict = {}
    if mtd_files:
        try:
            meta = json.loads(mtd_files[0].read_text(encoding="utf-8"))
            inputs = [str(x["product_id"]) for x in meta.get("inputs", [])]
            input_dates = [date.fromisoformat(x) for x in meta.get("input_dates", [])]
            params = dict(meta.get("params", {}))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(f"cannot read the metadata: {exc}", mtd_files[0]) from exc
    elif (folder / "input_dates.txt").is_file():
        input_dates = _dates_file(folder / "input_dates.txt")
    return SnowDuration(tile=info["tile"], mission=info["mission"], start=info["start"], stop=info["stop"],
                        grid=grid, inputs=inputs, input_dates=input_dates, params=params, **layers)


__all__ = ["output_dates", "read_scd", "scd_colour_map", "scd_metadata", "scd_product_files", "scd_product_name",
           "scd_stac_item", "scd_statistics", "write_scd"]
