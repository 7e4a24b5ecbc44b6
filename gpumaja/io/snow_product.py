"""Write and read one date's LIS snow map (`SnowMap`) as a Theia-like L2B-SNOW product folder.

Layout (wasp-l3a-and-lis-snow.md §2.3 "Other outputs", §2.4; name = `snow_product_name(m)`, group
G = "R2" for Sentinel-2 (20 m), "XS" for Landsat (30 m)):

    <name>/<name>_SNW_<G>.tif       uint8 SNW codes 0 no snow, 100 snow, 205 cloud, 255 nodata
    <name>/<name>_FSC_<G>.tif       uint8 FSC_TOC 0 no snow, 1..100 %, 205 cloud, 255 nodata (if m.fsc)
    <name>/<name>_SNOW_ALL_<G>.tif  uint8 SNOW_ALL expert bits (if m.expert)
    <name>/<name>_QKL_ALL.jpg       colour quicklook of SNW
    <name>/<name>_MTD_ALL.xml       MUSCATE-like metadata: ZS, SnowPercent, CloudPercent, acquisition
                                    date, platform, tile, source L2A product, the LIS parameters
    <name>/<name>.json              STAC item

The .tif files are COGs with nearest overviews (codes are never averaged); SNW and FSC declare the
nodata 255. `read_snow` reads these folders and also a plain Theia/LIS L2B-SNOW folder that holds only
`*_SNW_R2.tif` / `*_SNW_XS.tif` (or LIS 1.5's `*SEB*.tif`, e.g. LIS_PRODUCTS/LIS_SEB.TIF): tile,
platform and acquisition time then come from the folder name
(`SENTINEL2A_20180101-105435-457_L2B-SNOW_T31TCH_D_V1-4`,
`LANDSAT8-OLITIRS-XS_20180115-103629-617_L2B-SNOW_T31TCH_D_V1-9`), the old nodata 254 (LIS < 1.6) is
read as 255, and the snow / cloud shares are counted from the codes (share of all pixels).
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from gpumaja import __version__
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.cog import write_cog
from gpumaja.io.muscate_mtd import _sub, read_mtd, utc_text
from gpumaja.io.product_common import (
    file_entry,
    geoposition,
    json_safe,
    metadata_header,
    parameter_list,
    platform_tag,
    read_parameters,
    read_raster,
    stac_platform,
    write_rgb_image,
    xml_bytes,
)
from gpumaja.io.product_folder import write_product_folder
from gpumaja.io.quicklook import subsample_step
from gpumaja.io.xml import find_local, findall_local, local, parse_xml
from gpumaja.model.lis_params import SNW_CLOUD, SNW_NO_SNOW, SNW_NODATA, SNW_NODATA_OLD, SNW_SNOW
from gpumaja.model.snow import SnowMap

SNOW_VERSION_TAG = "V1-0"
SNOW_PRODUCT_VERSION = "1.0"
NATURE_TAG = "C"
LEVEL = "L2B-SNOW"
LANDSAT_SUFFIX = "-OLITIRS-XS"  # MUSCATE spelling of a Landsat 8/9 product's platform in its name
IMAGE_NATURES = {"SNW": "Snow_Mask", "FSC": "Fractional_Snow_Cover", "SNOW_ALL": "Snow_Expert_Mask"}
SNW_CODES = (SNW_NO_SNOW, SNW_SNOW, SNW_CLOUD, SNW_NODATA)
# quicklook colours (R, G, B); any other value is black
QUICKLOOK_COLOURS = {
    SNW_SNOW: (225, 250, 255),  # white-cyan
    SNW_CLOUD: (150, 150, 150),  # grey
    SNW_NO_SNOW: (80, 90, 40),  # dark olive (green-brown)
    SNW_NODATA: (0, 0, 0),
}
_NAME_RE = re.compile(
    r"^(?P<platform>[A-Z0-9]+(?:-[A-Z0-9]+)*)_(?P<day>\d{8})-(?P<time>\d{6})-(?P<ms>\d{3})_L2B-SNOW_"
    r"(?P<tile>[^_]+)_(?P<nature>[A-Z])_V(?P<version>\d+-\d+)$")
_SNW_FILE_RE = re.compile(r"_SNW_(R\d|XS)\.tiff?$", re.IGNORECASE)
_SEB_FILE_RE = re.compile(r"SEB[^/]*\.tiff?$", re.IGNORECASE)


# ---------------------------------------------------------------------------------------- names
def _is_landsat(platform: str) -> bool:
    return platform_tag(platform).startswith("LANDSAT")


def snow_group_id(m: SnowMap) -> str:
    """"R2" for Sentinel-2 (20 m), "XS" for Landsat (30 m), as MUSCATE names the groups."""
    return "XS" if _is_landsat(m.platform) else "R2"


def _name_platform(platform: str) -> str:
    tag = platform_tag(platform)
    if tag.startswith("LANDSAT"):
        digits = re.match(r"LANDSAT(\d*)", tag).group(1)
        return f"LANDSAT{digits}{LANDSAT_SUFFIX}"
    return tag


def snow_product_name(m: SnowMap) -> str:
    """`{PLATFORM}_{YYYYMMDD-HHMMSS-mmm}_L2B-SNOW_{TILE}_C_V1-0` (Theia naming, §2.3), e.g.
    SENTINEL2A_20180101-105435-457_L2B-SNOW_T31TCH_C_V1-0 or
    LANDSAT8-OLITIRS-XS_20180115-103629-617_L2B-SNOW_T31TCH_C_V1-0 (milliseconds truncated)."""
    t = m.acquired
    when = f"{t:%Y%m%d-%H%M%S}-{t.microsecond // 1000:03d}"
    return f"{_name_platform(m.platform)}_{when}_{LEVEL}_{m.tile}_{NATURE_TAG}_{SNOW_VERSION_TAG}"


def snow_product_files(name: str, m: SnowMap) -> dict[str, str]:
    """key ("SNW", "FSC", "SNOW_ALL", "QKL_ALL") -> path relative to the product folder."""
    g = snow_group_id(m)
    files = {"SNW": f"{name}_SNW_{g}.tif"}
    if m.fsc is not None:
        files["FSC"] = f"{name}_FSC_{g}.tif"
    if m.expert is not None:
        files["SNOW_ALL"] = f"{name}_SNOW_ALL_{g}.tif"
    files["QKL_ALL"] = f"{name}_QKL_ALL.jpg"
    return files


def snow_quicklook(snw: np.ndarray) -> np.ndarray:
    """(3, ny, nx) uint8 colour image of SNW codes (QUICKLOOK_COLOURS; the old nodata 254 and any
    unknown code black), subsampled by a whole step to at most 1000 px a side."""
    snw = np.asarray(snw)
    step = subsample_step(*snw.shape)
    sub = snw[::step, ::step]
    lut = np.zeros((256, 3), np.uint8)
    for code, colour in QUICKLOOK_COLOURS.items():
        lut[code] = colour
    return np.moveaxis(lut[sub.astype(np.uint8)], -1, 0).copy()


# ------------------------------------------------------------------------------------- writing
def write_snow_mtd(m: SnowMap, name: str, files: dict[str, str],
                   production_date: datetime | None = None) -> bytes:
    """The `<name>_MTD_ALL.xml` document (UTF-8 bytes) of the snow product."""
    produced = utc_text(production_date or datetime.now(timezone.utc), digits=6)
    g = snow_group_id(m)
    platform = platform_tag(m.platform)
    if re.fullmatch(r"T\d{2}[A-Z]{3}", m.tile):
        zone_type = "Tile"
    else:
        zone_type = "Path-Row" if re.fullmatch(r"\d{3}-\d{3}", m.tile) else "Site"
    root = ET.Element("Muscate_Metadata_Document", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "Muscate_Metadata.xsd",
    })
    metadata_header(root, re.sub(r"_V\d+-\d+$", "", name), m.tile, zone_type,
                    "LANDSAT" if _is_landsat(m.platform) else "SENTINEL2",
                    f"{platform} L2B-SNOW product (gpumaja)",
                    f"Snow map of {m.source_product or 'an L2A product'} (Let-It-Snow algorithm), "
                    "processed by gpumaja")
    pc = _sub(root, "Product_Characteristics")
    _sub(pc, "PRODUCT_ID", name)
    _sub(pc, "ACQUISITION_DATE", utc_text(m.acquired))
    _sub(pc, "PRODUCTION_DATE", produced)
    _sub(pc, "PRODUCT_VERSION", SNOW_PRODUCT_VERSION)
    _sub(pc, "PRODUCT_LEVEL", LEVEL)
    _sub(pc, "PLATFORM", platform)
    rng = _sub(pc, "UTC_Acquisition_Range")
    _sub(rng, "MEAN", utc_text(m.acquired))
    _sub(rng, "DATE_PRECISION", "0.001", unit="s")

    org = _sub(_sub(root, "Product_Organisation"), "Muscate_Product")
    if "QKL_ALL" in files:
        _sub(org, "QUICKLOOK", files["QKL_ALL"])
    images = _sub(org, "Image_List")
    for key, encoding in (("SNW", "byte"), ("FSC", "byte"), ("SNOW_ALL", "byte")):
        if key in files:
            file_entry(images, "Image", IMAGE_NATURES[key], encoding, [({"group_id": g}, files[key])])
    geoposition(root, {g: m.grid})

    rad = _sub(root, "Radiometric_Informations")
    special = _sub(rad, "Special_Values_List")
    for label, value in (("nodata", SNW_NODATA), ("cloud", SNW_CLOUD), ("snow", SNW_SNOW),
                         ("no_snow", SNW_NO_SNOW)):
        _sub(special, "SPECIAL_VALUE", value, name=label)

    pq = _sub(_sub(_sub(root, "Quality_Informations"), "Current_Product"), "Product_Quality_List", level="N2")
    q = _sub(pq, "Product_Quality")
    src = _sub(q, "Source_Product")
    _sub(src, "PRODUCT_ID", name)
    _sub(src, "ACQUISITION_DATE", utc_text(m.acquired))
    _sub(src, "PRODUCTION_DATE", produced)
    idx = _sub(q, "Global_Index_List")
    _sub(idx, "QUALITY_INDEX", repr(float(m.snowline_m)), name="ZS")
    _sub(idx, "QUALITY_INDEX", repr(float(m.snow_percent)), name="SnowPercent")
    _sub(idx, "QUALITY_INDEX", repr(float(m.cloud_percent)), name="CloudPercent")

    job = _sub(_sub(_sub(root, "Production_Informations"), "Processing_Jobs_List"), "Job")
    _sub(job, "STEP_ID", "snow")
    _sub(job, "JOB_ID", "1")
    _sub(job, "PRODUCER_NAME", "gpumaja")
    _sub(job, "START_PRODUCTION_DATE", produced)
    _sub(job, "END_PRODUCTION_DATE", produced)
    plist = _sub(job, "Products_List")
    if m.source_product:
        inp = _sub(_sub(plist, "Inputs_List"), "PRODUCT")
        _sub(inp, "PRODUCT_ID", m.source_product)
        _sub(inp, "ACQUISITION_DATE", utc_text(m.acquired))
    out = _sub(_sub(plist, "Outputs_List"), "PRODUCT")
    _sub(out, "PRODUCT_ID", name)
    _sub(out, "ACQUISITION_DATE", utc_text(m.acquired))
    _sub(out, "PRODUCTION_DATE", produced)
    infos = _sub(job, "Processing_Informations")
    pi = _sub(infos, "Processing_Information")
    _sub(pi, "NAME", "Software")
    _sub(pi, "VALUE", f"gpumaja {__version__}")
    parameter_list(job, "LIS", dict(m.params))
    return xml_bytes(root)


def snow_stac_item(product_dir: str | os.PathLike, m: SnowMap, name: str, files: dict[str, str]) -> dict:
    """STAC item (JSON-able dict): id = name, datetime = acquisition time, eo:snow_cover /
    eo:cloud_cover, proj per asset, one asset per file (hrefs "./<file>")."""
    import pystac
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    from gpumaja.io.stac import add_projection, add_quicklook_and_metadata, footprint

    product_dir = Path(product_dir)
    for rel in files.values():
        if not (product_dir / rel).is_file():
            raise MissingFileError("file listed for the STAC item is missing", product_dir / rel)
    geometry, bbox = footprint(m.grid)
    acquired = m.acquired.astimezone(timezone.utc) if m.acquired.tzinfo else m.acquired.replace(tzinfo=timezone.utc)
    item = pystac.Item(id=name, geometry=geometry, bbox=bbox, datetime=acquired, properties={})
    cm = item.common_metadata
    landsat = _is_landsat(m.platform)
    cm.platform = stac_platform(m.platform)
    cm.constellation = "landsat" if landsat else "sentinel-2"
    cm.instruments = ["oli"] if landsat else ["msi"]
    cm.created = datetime.now(timezone.utc)
    item.properties.update({
        "processing:level": LEVEL,
        "gpumaja:muscate_platform": platform_tag(m.platform),
        "gpumaja:tile": m.tile,
        "gpumaja:source_product": m.source_product,
        "gpumaja:snowline_m": json_safe(float(m.snowline_m)),
        "gpumaja:snw_classes": {"no_snow": SNW_NO_SNOW, "snow": SNW_SNOW, "cloud": SNW_CLOUD,
                                "nodata": SNW_NODATA},
        "gpumaja:software_version": __version__,
        "gpumaja:params": json_safe(dict(m.params)),
    })
    eo = EOExtension.ext(item, add_if_missing=True)
    eo.cloud_cover = float(min(max(m.cloud_percent, 0.0), 100.0))
    eo.snow_cover = float(min(max(m.snow_percent, 0.0), 100.0))
    ProjectionExtension.ext(item, add_if_missing=True).code = (
        m.grid.crs if m.grid.crs.upper().startswith("EPSG:") else None)
    RasterExtension.add_to(item)
    g = snow_group_id(m)
    res = m.grid.resolution
    for key, title, roles, nodata in (
            ("SNW", "Snow mask (0 no snow, 100 snow, 205 cloud, 255 nodata)", ["data", "snow-ice", "cloud"],
             SNW_NODATA),
            ("FSC", "Fraction of snow cover, top of canopy (%)", ["data", "snow-ice"], SNW_NODATA),
            ("SNOW_ALL", "LIS expert bits", ["data", "quality"], None)):
        if key in files:
            asset = pystac.Asset(f"./{files[key]}", title=f"{title} ({g})", media_type=pystac.MediaType.COG,
                                 roles=list(roles))
            RasterExtension.ext(asset).bands = [RasterBand.create(
                nodata=nodata, data_type=DataType.UINT8, spatial_resolution=res)]
            add_projection(asset, m.grid)
            item.add_asset(f"{key}_{g}", asset)
    add_quicklook_and_metadata(item, files, "Snow map quicklook")
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def write_snow(m: SnowMap, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write `m` as `out_dir/<snow_product_name(m)>/` (see the module doc) and return the folder.
    InputError when it exists and `overwrite` is False; written under a temporary name, then renamed."""
    name = snow_product_name(m)
    files = snow_product_files(name, m)

    def fill(tmp: Path) -> None:
        write_cog(tmp / files["SNW"], np.asarray(m.snw, np.uint8), m.grid, np.uint8, SNW_NODATA, "nearest", ["SNW"])
        if "FSC" in files:
            write_cog(tmp / files["FSC"], np.asarray(m.fsc, np.uint8), m.grid, np.uint8, SNW_NODATA, "nearest",
                      ["FSC_TOC"])
        if "SNOW_ALL" in files:
            write_cog(tmp / files["SNOW_ALL"], np.asarray(m.expert, np.uint8), m.grid, np.uint8, None, "nearest",
                      ["SNOW_ALL"])
        write_rgb_image(tmp / files["QKL_ALL"], snow_quicklook(m.snw), "JPEG")
        mtd_rel = f"{name}_MTD_ALL.xml"
        (tmp / mtd_rel).write_bytes(write_snow_mtd(m, name, files))
        item = snow_stac_item(tmp, m, name, {**files, "MTD_ALL": mtd_rel})
        (tmp / f"{name}.json").write_text(json.dumps(item, indent=1) + "\n", encoding="utf-8")

    return write_product_folder(out_dir, name, fill, overwrite)


# ------------------------------------------------------------------------------------- reading
def _our_images(root: Element) -> dict[str, str]:
    """key ("SNW", "FSC", "SNOW_ALL") -> relative path, from the Image_List of our MTD."""
    by_nature = {v: k for k, v in IMAGE_NATURES.items()}
    out = {}
    for img in findall_local(root, "Image"):
        nature_el = find_local(img, "NATURE")
        key = by_nature.get((nature_el.text or "").strip() if nature_el is not None else "")
        f = find_local(img, "IMAGE_FILE")
        if key and f is not None and (f.text or "").strip():
            out[key] = f.text.strip().removeprefix("./")
    return out


def _codes(path: Path, check_snw: bool) -> tuple[np.ndarray, object]:
    data, grid, _ = read_raster(path)
    if not np.issubdtype(data.dtype, np.integer) or data.size and (data.min() < 0 or data.max() > 255):
        raise CorruptFileError(f"expected 8-bit codes, the file holds {data.dtype} values "
                               f"{data.min() if data.size else ''}..{data.max() if data.size else ''}", path)
    data = data.astype(np.uint8, copy=False)
    if check_snw:
        data = np.where(data == SNW_NODATA_OLD, np.uint8(SNW_NODATA), data)
        counts = np.bincount(data.ravel(), minlength=256)
        counts[list(SNW_CODES)] = 0
        unexpected = np.flatnonzero(counts)
        if unexpected.size:
            raise CorruptFileError(f"unexpected SNW codes {unexpected[:10].tolist()} (expected "
                                   f"{list(SNW_CODES)}, or 254 for nodata before LIS 1.6)", path)
    return data, grid


def _percent(snw: np.ndarray, code: int) -> float:
    return float(100.0 * np.count_nonzero(snw == code) / snw.size) if snw.size else 0.0


def _read_ours(mtd: Path, root: Element, images: dict[str, str]) -> SnowMap:
    meta = read_mtd(mtd)
    folder = mtd.parent
    snw, grid = _codes(folder / images["SNW"], True)
    extra = {}
    for key in ("FSC", "SNOW_ALL"):
        if key in images:
            data, g = _codes(folder / images[key], False)
            if g != grid:
                raise CorruptFileError(f"grid {g} differs from the SNW grid {grid}", folder / images[key])
            extra[key] = data
    q = meta["quality"]
    inputs = find_local(root, "Inputs_List")
    source = ""
    if inputs is not None:
        pid = find_local(inputs, "PRODUCT_ID")
        source = (pid.text or "").strip() if pid is not None else ""
    return SnowMap(
        tile=meta["tile"] or "", platform=meta["platform"], acquired=meta["acquired"], grid=grid, snw=snw,
        fsc=extra.get("FSC"), expert=extra.get("SNOW_ALL"),
        snowline_m=float(q["ZS"]) if isinstance(q.get("ZS"), float) else -1.0,
        snow_percent=float(q["SnowPercent"]) if isinstance(q.get("SnowPercent"), float) else _percent(snw, SNW_SNOW),
        cloud_percent=(float(q["CloudPercent"]) if isinstance(q.get("CloudPercent"), float)
                       else _percent(snw, SNW_CLOUD)),
        source_product=source, params=read_parameters(root, "LIS", mtd),
    )


def parse_snow_name(name: str) -> dict | None:
    """{platform, acquired, tile, nature, version} of a Theia L2B-SNOW name, None if it is not one.
    Platform is MUSCATE's without the Landsat instrument suffix ("LANDSAT8-OLITIRS-XS" -> "LANDSAT8")."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    try:
        day = datetime.strptime(f"{m['day']}{m['time']}", "%Y%m%d%H%M%S")
    except ValueError:
        return None
    platform = m["platform"].split("-")[0] if m["platform"].startswith("LANDSAT") else m["platform"]
    return {"platform": platform, "acquired": day.replace(microsecond=int(m["ms"]) * 1000, tzinfo=timezone.utc),
            "tile": m["tile"], "nature": m["nature"], "version": m["version"]}


def _find_plain_snw(folder: Path) -> Path:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for pattern in (_SNW_FILE_RE, _SEB_FILE_RE):
        found = [p for p in files if pattern.search(p.name) and "_VEC" not in p.name.upper()]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise InputError(f"several snow maps: {', '.join(p.name for p in found)}", folder)
    raise MissingFileError("not a snow product: no *_MTD_ALL.xml of gpumaja, no *_SNW_R2.tif / *_SNW_XS.tif "
                           "and no *SEB*.tif", folder)


def _read_plain(folder: Path, snw_file: Path | None, root: Element | None) -> SnowMap:
    snw_file = snw_file or _find_plain_snw(folder)
    info = parse_snow_name(folder.name) or parse_snow_name(_SNW_FILE_RE.sub("", snw_file.name))
    if info is None:
        raise InputError("cannot tell tile, platform and date: the folder name is not a Theia L2B-SNOW name "
                         "(e.g. SENTINEL2A_20180101-105435-457_L2B-SNOW_T31TCH_D_V1-4)", folder)
    snw, grid = _codes(snw_file, True)
    quality = {}
    if root is not None:
        for q in findall_local(root, "QUALITY_INDEX"):
            try:
                quality[q.get("name")] = float((q.text or "").strip())
            except ValueError:
                continue
    return SnowMap(
        tile=info["tile"], platform=info["platform"], acquired=info["acquired"], grid=grid, snw=snw,
        snowline_m=quality.get("ZS", -1.0),
        snow_percent=quality.get("SnowPercent", _percent(snw, SNW_SNOW)),
        cloud_percent=quality.get("CloudPercent", _percent(snw, SNW_CLOUD)),
    )


def read_snow(path: str | os.PathLike) -> SnowMap:
    """A snow product folder (ours, or a plain Theia/LIS L2B-SNOW folder; see the module doc), its
    MTD_ALL.xml or its SNW/SEB .tif, as a `SnowMap` with codes 0/100/205/255 (254 read as 255).
    MissingFileError / InputError / CorruptFileError name the path."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file or folder", p)
    folder = p if p.is_dir() else p.parent
    given_tif = p if p.is_file() and p.suffix.lower() in (".tif", ".tiff") else None
    mtds = [p] if p.is_file() and p.name.endswith("_MTD_ALL.xml") else sorted(folder.glob("*_MTD_ALL.xml"))
    root = None
    if len(mtds) == 1:
        candidate = parse_xml(mtds[0])
        if local(candidate.tag) == "Muscate_Metadata_Document":
            root = candidate
            images = _our_images(root)
            if "SNW" in images and (given_tif is None or given_tif.name == Path(images["SNW"]).name):
                return _read_ours(mtds[0], root, images)
    elif len(mtds) > 1:
        raise InputError(f"several *_MTD_ALL.xml files: {', '.join(f.name for f in mtds)}", folder)
    return _read_plain(folder, given_tif, root)


__all__ = ["parse_snow_name", "read_snow", "snow_group_id", "snow_product_files", "snow_product_name",
           "snow_quicklook", "snow_stac_item", "write_snow", "write_snow_mtd"]
