"""What every gpumaja product writer beyond L2A shares (L3A, L2B-SNOW, snow cover duration): the
MUSCATE-like metadata pieces (header, geoposition, file lists, parameter lists, XML bytes), JPEG/PNG
images, reading a product raster back, platform tags and JSON-safe values."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from datetime import date, datetime, time, timezone
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

from gpumaja.errors import CorruptFileError, GpumajaError, MissingFileError
from gpumaja.io.muscate_mtd import _sub, utc_text, write_geoposition
from gpumaja.io.quicklook import JPEG_QUALITY
from gpumaja.io.xml import findall_local
from gpumaja.model.grids import Grid

PRODUCER = "gpumaja"
METADATA_FORMAT_VERSION = "1.16"


def write_rgb_image(path: str | os.PathLike, rgb: np.ndarray, driver: str = "JPEG") -> Path:
    """Write a (3, ny, nx) uint8 image as a JPEG or PNG (GDAL driver, no georeferencing, no .aux.xml
    side file), as gpumaja.io.quicklook writes the L2A quicklook."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"{path}: need a (3, ny, nx) uint8 image, got {rgb.dtype} {rgb.shape}")
    options = {"QUALITY": JPEG_QUALITY} if driver == "JPEG" else {}
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
                path, "w", driver=driver, width=rgb.shape[2], height=rgb.shape[1], count=3,
                dtype="uint8", **options) as dst:
            dst.write(rgb)
    return path


def read_raster(path: Path) -> tuple[np.ndarray, Grid, float | None]:
    """(band 1, grid, nodata) of a GeoTIFF; MissingFileError / CorruptFileError naming the file."""
    from gpumaja.io.bands import grid_of

    if not path.is_file():
        raise MissingFileError("file of the product is missing", path)
    try:
        with rasterio.open(path) as ds:
            return ds.read(1), grid_of(ds, path), ds.nodata
    except GpumajaError:
        raise
    except Exception as exc:  # RasterioIOError, CPLE_*
        raise CorruptFileError(f"cannot read raster: {exc}", path) from exc


def platform_tag(platform: str) -> str:
    """'SENTINEL-2A' / 'sentinel2x' -> 'SENTINEL2A' / 'SENTINEL2X'; 'LANDSAT_8' -> 'LANDSAT8'."""
    return platform.replace("-", "").replace("_", "").upper()


def stac_platform(platform: str) -> str | None:
    """STAC common-metadata platform: 'SENTINEL2A' -> 'sentinel-2a', 'LANDSAT8' -> 'landsat-8'; None for
    a mix (SENTINEL2X), whose MUSCATE value stays in `gpumaja:muscate_platform`."""
    tag = platform_tag(platform)
    m = re.fullmatch(r"SENTINEL2([A-D])", tag)
    if m:
        return f"sentinel-2{m.group(1).lower()}"
    m = re.match(r"LANDSAT(\d+)", tag)
    return f"landsat-{m.group(1)}" if m else None


def json_safe(value):
    """A JSON-able copy: tuples as lists, non-finite floats as None, unknown objects as str."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return json_safe(value.item())
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return str(value)


def metadata_header(root: Element, identifier: str, zone: str, zone_type: str, project: str,
                    title: str, description: str) -> None:
    """Metadata_Identification and Dataset_Identification, as the L2A MTD writes them."""
    meta = _sub(root, "Metadata_Identification")
    _sub(meta, "METADATA_FORMAT", "METADATA_MUSCATE", version=METADATA_FORMAT_VERSION)
    _sub(meta, "METADATA_PROFILE", "USER")
    _sub(meta, "METADATA_INFORMATION", "EXPERT")
    ds = _sub(root, "Dataset_Identification")
    _sub(ds, "IDENTIFIER", identifier)
    _sub(ds, "AUTHORITY", PRODUCER)
    _sub(ds, "PRODUCER", PRODUCER)
    _sub(ds, "PROJECT", project)
    _sub(ds, "GEOGRAPHICAL_ZONE", zone, type=zone_type)
    _sub(ds, "TITLE", title)
    _sub(ds, "DESCRIPTION", description)


def geoposition(root: Element, grids: dict[str, Grid]) -> None:
    """Geoposition_Informations of `grids` (group id -> grid), footprint from the finest one."""
    write_geoposition(root, grids, min(grids.values(), key=lambda g: g.resolution))


def file_entry(parent: Element, kind: str, nature: str, encoding: str,
               entries: list[tuple[dict, str]]) -> None:
    """One <Image> (kind "Image") or <Mask> (kind "Mask") with its properties and file list."""
    if not entries:
        return
    el = _sub(parent, kind)
    props = _sub(el, f"{kind}_Properties")
    for tag, text in (("NATURE", nature), ("FORMAT", "image/tiff"), ("ENCODING", encoding),
                      ("ENDIANNESS", "LittleEndian"), ("COMPRESSION", "DEFLATE")):
        _sub(props, tag, text)
    file_list = _sub(el, f"{kind}_File_List")
    tag = "IMAGE_FILE" if kind == "Image" else "MASK_FILE"
    for attrs, rel in entries:
        _sub(file_list, tag, rel, **attrs)


def parameter_list(parent: Element, name: str, params: dict) -> None:
    """<Parameter_List name=...> of <PARAMETER name=k>json(v)</PARAMETER>, read by `read_parameters`."""
    plist = _sub(parent, "Parameter_List", name=name)
    for key in sorted(params):
        _sub(plist, "PARAMETER", json.dumps(json_safe(params[key])), name=key)


def read_parameters(root: Element, name: str, label: str | Path) -> dict:
    for plist in findall_local(root, "Parameter_List"):
        if plist.get("name") == name:
            out = {}
            for p in findall_local(plist, "PARAMETER"):
                try:
                    out[p.get("name")] = json.loads(p.text or "null")
                except ValueError:
                    raise CorruptFileError(f"parameter {p.get('name')!r} is not JSON: {p.text!r}",
                                           label) from None
            return out
    return {}


def xml_bytes(root: Element) -> bytes:
    ET.indent(root, space="  ")
    return b"<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="utf-8") + b"\n"


def iso_day(d: date) -> str:
    """Midnight UTC of a date in MUSCATE's time format: '2018-05-15T00:00:00.000Z'."""
    return utc_text(datetime.combine(d, time(0), tzinfo=timezone.utc))
