"""Write and read one `L3AResult` (WASP monthly synthesis) as a MUSCATE-like L3A product folder.

Layout (wasp-l3a-and-lis-snow.md §1.6; name = `l3a_product_name(result)`):

    <name>/<name>_FRC_<band>.tif         int16 round(R * 10000), nodata -10000; B2 B3 B4 B8 at 10 m,
                                         B5 B6 B7 B8A B11 B12 at 20 m (MUSCATE band ids)
    <name>/MASKS/<name>_WGT_<R1|R2>.tif  int16 round(W * 1000), -10000 where FLG == 0 (no data)
    <name>/MASKS/<name>_DTS_<R1|R2>.tif  int16 round(weighted mean day), nodata -10000
    <name>/MASKS/<name>_FLG_<R1|R2>.tif  uint8 FLG (0 nodata, 1 cloud, 2 snow, 3 water, 4 land)
    <name>/<name>_QKL_ALL.jpg            B4, B3, B2 of R1, reflectance 0..0.3 -> 0..255
    <name>/<name>_MTD_ALL.xml            MUSCATE-like metadata (read back by muscate_mtd.read_mtd)
    <name>/<name>.json                   STAC item

Every .tif is a COG (gpumaja.io.cog): FRC, WGT and DTS with average overviews, FLG with nearest.
A pixel is no data in every layer of its group where FLG == 0 or where the value is not finite.
Quantification and nodata come from the WASP parameters of the result (`WaspParams` fields
reflectance_quantification, weight_quantification, nodata).

Differences from WASP's ProductFormatter (§1.6): every raster is a COG (WASP: FRC uncompressed unless
--cog); no DATA/<name>_IPP_ALL.xml copy of the GIPP (the parameters and the contributing products are
in the MTD and the STAC item); the quicklook is subsampled by a whole step to at most 1000 px a side
(WASP: gdal_translate to exactly 1000 x 1000); CloudPercent/SnowPercent are the FLG_R2 shares rounded
half up. The MTD element names for the synthesis period, the WGT/DTS/FLG mask natures and the
"Flat_Reflectance_Composite" image nature are gpumaja's (WASP's exact XML was not available).

The folder is written under a temporary name and renamed when complete (`write_product_folder`,
the same rules as gpumaja.io.muscate.write_l2a); the snow and SCD writers use the same helper.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from datetime import datetime, time, timezone
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from gpumaja import __version__
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.cog import write_cog
from gpumaja.io.muscate import quantize_reflectance
from gpumaja.io.muscate_mtd import (
    _num,
    _sub,
    muscate_band_id,
    read_mtd,
    utc_text,
)
from gpumaja.io.product_common import (
    PRODUCER,
    file_entry,
    geoposition,
    iso_day,
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
from gpumaja.io.xml import find_local, findall_local, parse_xml
from gpumaja.model.bands import S2_BANDS
from gpumaja.model.bands import band as band_info
from gpumaja.model.grids import Grid
from gpumaja.model.l3a import FLG_NODATA, L3AGroup, L3AInput, L3AResult
from gpumaja.model.wasp_params import WaspParams

log = logging.getLogger(__name__)

L3A_VERSION_TAG = "V1-1"  # WASP parameter version 1.1 (§1.6)
L3A_PRODUCT_VERSION = "1.1"
NATURE_TAG = "C"  # distribution flag written by WASP's code (Theia's operational products use "D")
VALID_FLAG = "L3VALD"
FRC_NATURE = "Flat_Reflectance_Composite"
MASK_CODES = ("WGT", "DTS", "FLG")
MASK_NATURES = {"WGT": "Weight", "DTS": "Weighted_Average_Date", "FLG": "Synthesis_Flag"}
MASK_ENCODINGS = {"WGT": "int16", "DTS": "int16", "FLG": "byte"}
QUICKLOOK_BANDS = ("B04", "B03", "B02")
QUICKLOOK_MAX_REFLECTANCE = 0.3  # WASP: gdal_translate -scale 0 3000 0 255 (§1.6)
DTS_QUANTIFICATION = 1.0  # days
GROUP_ORDER = ("R1", "R2")
_S2_BAND_NAME = {muscate_band_id(b.name): b.name for b in S2_BANDS}
_S2_ORDER = {b.name: i for i, b in enumerate(S2_BANDS)}


# ---------------------------------------------------------------------------------------- names
def l3a_product_name(result: L3AResult) -> str:
    """`{PLATFORM}_{YYYYMMDD}-000000-000_L3A_{TILE}_C_V1-1`, e.g.
    SENTINEL2X_20180515-000000-000_L3A_T31TCJ_C_V1-1 (wasp-l3a-and-lis-snow.md §1.6: the date is the
    synthesis date given with --date, hence -000000-000)."""
    return (f"{platform_tag(result.platform)}_{result.synthesis_date:%Y%m%d}-000000-000_L3A_"
            f"{result.tile}_{NATURE_TAG}_{L3A_VERSION_TAG}")


def _groups(result: L3AResult) -> list[str]:
    return sorted(result.groups, key=lambda g: (GROUP_ORDER.index(g) if g in GROUP_ORDER else 99, g))


def l3a_product_files(name: str, result: L3AResult) -> dict[str, str]:
    """key ("FRC_B2", "WGT_R1", "DTS_R2", "FLG_R1", "QKL_ALL") -> path relative to the folder."""
    files: dict[str, str] = {}
    for g in _groups(result):
        for b in result.groups[g].bands:
            bid = muscate_band_id(b)
            files[f"FRC_{bid}"] = f"{name}_FRC_{bid}.tif"
    for g in _groups(result):
        for code in MASK_CODES:
            files[f"{code}_{g}"] = f"MASKS/{name}_{code}_{g}.tif"
    if _quicklook_source(result) is not None:
        files["QKL_ALL"] = f"{name}_QKL_ALL.jpg"
    return files


def _quicklook_source(result: L3AResult) -> tuple[L3AGroup, list[int]] | None:
    for g in _groups(result):
        group = result.groups[g]
        if all(b in group.bands for b in QUICKLOOK_BANDS):
            return group, [group.bands.index(b) for b in QUICKLOOK_BANDS]
    return None


def quicklook_image(rgb: np.ndarray, max_reflectance: float = QUICKLOOK_MAX_REFLECTANCE) -> np.ndarray:
    """(3, ny, nx) uint8 of a (3, ny, nx) reflectance array: round(R * 255 / max_reflectance) clipped
    to 0..255 (WASP's gdal_translate -scale 0 3000 0 255), NaN -> 0, subsampled by a whole step to at
    most 1000 px a side."""
    rgb = np.asarray(rgb, np.float64)
    step = subsample_step(*rgb.shape[1:])
    sub = rgb[:, ::step, ::step]
    scaled = np.where(np.isfinite(sub), sub, 0.0) * (255.0 / max_reflectance)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


# ------------------------------------------------------------------------------------- writing
def _quant(result: L3AResult) -> tuple[float, float, int]:
    d = WaspParams()
    p = result.params
    return (float(p.get("reflectance_quantification", d.reflectance_quantification)),
            float(p.get("weight_quantification", d.weight_quantification)),
            int(p.get("nodata", d.nodata)))


def _write_rasters(tmp: Path, result: L3AResult, files: dict[str, str]) -> None:
    q_refl, q_weight, nodata = _quant(result)
    (tmp / "MASKS").mkdir()
    for g in _groups(result):
        group = result.groups[g]
        empty = np.asarray(group.flag) == FLG_NODATA
        for i, b in enumerate(group.bands):
            bid = muscate_band_id(b)
            counts = quantize_reflectance(group.reflectance[i], empty, q_refl, nodata)
            write_cog(tmp / files[f"FRC_{bid}"], counts, group.grid, np.int16, nodata, "average", [f"FRC {bid}"])
        wgt = quantize_reflectance(group.weight, empty, q_weight, nodata)
        write_cog(tmp / files[f"WGT_{g}"], wgt, group.grid, np.int16, nodata, "average", ["WGT"])
        dts = quantize_reflectance(group.day, empty, DTS_QUANTIFICATION, nodata)
        write_cog(tmp / files[f"DTS_{g}"], dts, group.grid, np.int16, nodata, "average", ["DTS"])
        write_cog(tmp / files[f"FLG_{g}"], np.asarray(group.flag, np.uint8), group.grid, np.uint8,
                  FLG_NODATA, "nearest", ["FLG"])
    source = _quicklook_source(result)
    if source is not None:
        group, idx = source
        write_rgb_image(tmp / files["QKL_ALL"], quicklook_image(group.reflectance[idx]), "JPEG")


def _rounded_percent(x: float) -> int:
    return int(math.floor(float(x) + 0.5))


def write_l3a_mtd(result: L3AResult, name: str, files: dict[str, str],
                  production_date: datetime | None = None) -> bytes:
    """The `<name>_MTD_ALL.xml` document (UTF-8 bytes) of the L3A product (see the module doc)."""
    produced = utc_text(production_date or result.production_date or datetime.now(timezone.utc), digits=6)
    begin, end = result.period
    platform = platform_tag(result.platform)
    zone_type = "Tile" if re.fullmatch(r"T\d{2}[A-Z]{3}", result.tile) else "Site"
    root = ET.Element("Muscate_Metadata_Document", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "Muscate_Metadata.xsd",
    })
    metadata_header(root, re.sub(r"_V\d+-\d+$", "", name), result.tile, zone_type, "SENTINEL2",
                    f"{platform} L3A product (gpumaja)",
                    f"Monthly weighted average synthesis of {len(result.inputs)} L2A products "
                    f"({begin:%Y-%m-%d} .. {end:%Y-%m-%d}), processed by gpumaja")

    pc = _sub(root, "Product_Characteristics")
    _sub(pc, "PRODUCT_ID", name)
    _sub(pc, "ACQUISITION_DATE", iso_day(result.synthesis_date))
    _sub(pc, "PRODUCTION_DATE", produced)
    _sub(pc, "PRODUCT_VERSION", L3A_PRODUCT_VERSION)
    _sub(pc, "PRODUCT_LEVEL", "L3A")
    _sub(pc, "PLATFORM", platform)
    rng = _sub(pc, "UTC_Acquisition_Range")
    _sub(rng, "MEAN", iso_day(result.synthesis_date))
    _sub(rng, "DATE_PRECISION", "1", unit="d")
    period = _sub(pc, "Synthesis_Period")
    _sub(period, "BEGIN", iso_day(begin))
    _sub(period, "END", iso_day(end))
    _sub(period, "HALF_WINDOW", result.half_window_days, unit="d")
    groups = _groups(result)
    all_bands = sorted((b for g in groups for b in result.groups[g].bands), key=lambda n: _S2_ORDER.get(n, 99))
    glist = _sub(pc, "Band_Global_List", count=len(all_bands))
    for b in all_bands:
        _sub(glist, "BAND_ID", muscate_band_id(b))
    groups_el = _sub(pc, "Band_Group_List")
    for g in groups:
        bl = _sub(_sub(groups_el, "Group", group_id=g), "Band_List", count=len(result.groups[g].bands))
        for b in result.groups[g].bands:
            _sub(bl, "BAND_ID", muscate_band_id(b))

    org = _sub(_sub(root, "Product_Organisation"), "Muscate_Product")
    if "QKL_ALL" in files:
        _sub(org, "QUICKLOOK", files["QKL_ALL"], bands_id=",".join(muscate_band_id(b) for b in QUICKLOOK_BANDS))
    images = _sub(org, "Image_List")
    frc = [({"band_id": muscate_band_id(b)}, files[f"FRC_{muscate_band_id(b)}"])
           for b in all_bands if f"FRC_{muscate_band_id(b)}" in files]
    file_entry(images, "Image", FRC_NATURE, "int16", frc)
    masks = _sub(org, "Mask_List")
    for code in MASK_CODES:
        file_entry(masks, "Mask", MASK_NATURES[code], MASK_ENCODINGS[code],
                   [({"group_id": g}, files[f"{code}_{g}"]) for g in groups if f"{code}_{g}" in files])

    geoposition(root, {g: result.groups[g].grid for g in groups})

    q_refl, q_weight, nodata = _quant(result)
    rad = _sub(root, "Radiometric_Informations")
    _sub(rad, "REFLECTANCE_QUANTIFICATION_VALUE", _num(q_refl))
    _sub(rad, "WEIGHT_QUANTIFICATION_VALUE", _num(q_weight))
    special = _sub(rad, "Special_Values_List")
    _sub(special, "SPECIAL_VALUE", _num(nodata), name="nodata")
    _sub(special, "SPECIAL_VALUE", _num(FLG_NODATA), name="flag_nodata")
    spectral = _sub(rad, "Spectral_Band_Informations_List")
    for b in all_bands:
        info = band_info("S2", b)
        sb = _sub(spectral, "Spectral_Band_Informations", band_id=muscate_band_id(b))
        _sub(sb, "SPATIAL_RESOLUTION", _num(info.resolution_m), unit="m")
        _sub(_sub(sb, "Wavelength"), "CENTRAL", _num(info.wavelength_nm), unit="nm")

    pq = _sub(_sub(_sub(root, "Quality_Informations"), "Current_Product"), "Product_Quality_List", level="N3")
    q = _sub(pq, "Product_Quality")
    src = _sub(q, "Source_Product")
    _sub(src, "PRODUCT_ID", name)
    _sub(src, "ACQUISITION_DATE", iso_day(result.synthesis_date))
    _sub(src, "PRODUCTION_DATE", produced)
    idx = _sub(q, "Global_Index_List")
    _sub(idx, "QUALITY_INDEX", _rounded_percent(result.cloud_percent), name="CloudPercent")
    _sub(idx, "QUALITY_INDEX", _rounded_percent(result.snow_percent), name="SnowPercent")

    job = _sub(_sub(_sub(root, "Production_Informations"), "Processing_Jobs_List"), "Job")
    _sub(job, "STEP_ID", "l3a")
    _sub(job, "JOB_ID", "1")
    _sub(job, "PRODUCER_NAME", PRODUCER)
    _sub(job, "START_PRODUCTION_DATE", produced)
    _sub(job, "END_PRODUCTION_DATE", produced)
    plist = _sub(job, "Products_List")
    inputs = _sub(plist, "Inputs_List", count=len(result.inputs))
    for inp in result.inputs:
        p = _sub(inputs, "PRODUCT")
        _sub(p, "PRODUCT_ID", inp.product_id)
        _sub(p, "ACQUISITION_DATE", utc_text(inp.acquired))
        _sub(p, "PLATFORM", platform_tag(inp.platform))
        _sub(p, "PRODUCT_PATH", inp.path)
    out = _sub(_sub(plist, "Outputs_List"), "PRODUCT")
    _sub(out, "PRODUCT_ID", name)
    _sub(out, "ACQUISITION_DATE", iso_day(result.synthesis_date))
    _sub(out, "PRODUCTION_DATE", produced)
    infos = _sub(job, "Processing_Informations")
    for key, value in (("Validity_Flag", VALID_FLAG), ("Software", f"gpumaja {__version__}"),
                       ("Cloud_Percent_Exact", f"{float(result.cloud_percent):.12g}"),
                       ("Snow_Percent_Exact", f"{float(result.snow_percent):.12g}")):
        pi = _sub(infos, "Processing_Information")
        _sub(pi, "NAME", key)
        _sub(pi, "VALUE", value)
    parameter_list(job, "WASP", dict(result.params))
    return xml_bytes(root)


def l3a_stac_item(product_dir: str | os.PathLike, result: L3AResult, name: str, files: dict[str, str]) -> dict:
    """STAC item (JSON-able dict) of the L3A product: id = name, datetime = synthesis date (midnight
    UTC), start/end_datetime = the window (first day 00:00:00, last day 23:59:59 UTC), eo/proj/raster
    extensions, one asset per file (hrefs "./<file>")."""
    import pystac
    from pystac.extensions.eo import Band, EOExtension
    from pystac.extensions.projection import ProjectionExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    from gpumaja.io.stac import COMMON_NAMES, add_projection, add_quicklook_and_metadata, footprint

    product_dir = Path(product_dir)
    for rel in files.values():
        if not (product_dir / rel).is_file():
            raise MissingFileError("file listed for the STAC item is missing", product_dir / rel)
    groups = _groups(result)
    finest = min((result.groups[g].grid for g in groups), key=lambda g: g.resolution)
    geometry, bbox = footprint(finest)
    begin, end = result.period
    q_refl, q_weight, nodata = _quant(result)
    item = pystac.Item(id=name, geometry=geometry, bbox=bbox,
                       datetime=datetime.combine(result.synthesis_date, time(0), tzinfo=timezone.utc),
                       properties={})
    cm = item.common_metadata
    cm.start_datetime = datetime.combine(begin, time(0), tzinfo=timezone.utc)
    cm.end_datetime = datetime.combine(end, time(23, 59, 59), tzinfo=timezone.utc)
    cm.platform = stac_platform(result.platform)
    cm.constellation = "sentinel-2"
    cm.instruments = ["msi"]
    cm.created = datetime.now(timezone.utc)
    item.properties.update({
        "processing:level": "L3A",
        "gpumaja:muscate_platform": platform_tag(result.platform),
        "gpumaja:tile": result.tile,
        "gpumaja:synthesis_date": result.synthesis_date.isoformat(),
        "gpumaja:half_window_days": int(result.half_window_days),
        "gpumaja:inputs": [{"product_id": i.product_id, "platform": i.platform,
                            "acquired": utc_text(i.acquired)} for i in result.inputs],
        "gpumaja:software_version": __version__,
        "gpumaja:params": json_safe(dict(result.params)),
    })
    eo = EOExtension.ext(item, add_if_missing=True)
    eo.cloud_cover = float(min(max(result.cloud_percent, 0.0), 100.0))
    eo.snow_cover = float(min(max(result.snow_percent, 0.0), 100.0))
    ProjectionExtension.ext(item, add_if_missing=True).code = (
        finest.crs if finest.crs.upper().startswith("EPSG:") else None)
    RasterExtension.add_to(item)
    for g in groups:
        group = result.groups[g]
        res = group.grid.resolution
        for b in group.bands:
            key = f"FRC_{muscate_band_id(b)}"
            if key not in files:
                continue
            asset = pystac.Asset(f"./{files[key]}", title=f"Flat reflectance composite {muscate_band_id(b)}",
                                 media_type=pystac.MediaType.COG, roles=["data", "reflectance"])
            EOExtension.ext(asset).bands = [Band.create(
                name=muscate_band_id(b), common_name=COMMON_NAMES["S2"].get(b),
                center_wavelength=band_info("S2", b).wavelength_nm / 1000.0)]
            RasterExtension.ext(asset).bands = [RasterBand.create(
                nodata=nodata, data_type=DataType.INT16, scale=1.0 / q_refl, offset=0.0, spatial_resolution=res)]
            add_projection(asset, group.grid)
            item.add_asset(key, asset)
        for code, title, roles, band in (
                ("WGT", "Accumulated weight", ["data", "quality"],
                 RasterBand.create(nodata=nodata, data_type=DataType.INT16, scale=1.0 / q_weight, offset=0.0,
                                   spatial_resolution=res)),
                ("DTS", "Weighted mean acquisition day", ["data", "date"],
                 RasterBand.create(nodata=nodata, data_type=DataType.INT16, unit="d", spatial_resolution=res)),
                ("FLG", "Synthesis status flag", ["data", "cloud", "snow-ice", "water-mask"],
                 RasterBand.create(nodata=FLG_NODATA, data_type=DataType.UINT8, spatial_resolution=res))):
            key = f"{code}_{g}"
            if key in files:
                asset = pystac.Asset(f"./{files[key]}", title=f"{title} ({g})", media_type=pystac.MediaType.COG,
                                     roles=list(roles))
                RasterExtension.ext(asset).bands = [band]
                add_projection(asset, group.grid)
                item.add_asset(key, asset)
    add_quicklook_and_metadata(item, files, "Quicklook (B4, B3, B2)")
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def write_l3a(result: L3AResult, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write `result` as `out_dir/<l3a_product_name(result)>/` (see the module doc) and return it.

    InputError when the folder exists and `overwrite` is False. Written under a temporary name and
    renamed when complete; nothing is left behind on failure.
    """
    if not result.groups:
        raise ValueError("the L3A result has no resolution group to write")
    name = l3a_product_name(result)
    files = l3a_product_files(name, result)

    def fill(tmp: Path) -> None:
        _write_rasters(tmp, result, files)
        mtd_rel = f"{name}_MTD_ALL.xml"
        (tmp / mtd_rel).write_bytes(write_l3a_mtd(result, name, files))
        item = l3a_stac_item(tmp, result, name, {**files, "MTD_ALL": mtd_rel})
        (tmp / f"{name}.json").write_text(json.dumps(item, indent=1) + "\n", encoding="utf-8")

    return write_product_folder(out_dir, name, fill, overwrite)


# ------------------------------------------------------------------------------------- reading
def _text(root: Element, tag: str) -> str | None:
    el = find_local(root, tag)
    return el.text.strip() if el is not None and el.text and el.text.strip() else None


def read_l3a(path: str | os.PathLike) -> L3AResult:
    """An L3A product written by `write_l3a` (folder or its MTD_ALL.xml) as an `L3AResult`: FRC as
    float32 reflectance, WGT as float32 weight, DTS as float32 day (NaN where the count is the nodata
    value), FLG as uint8. cloud_percent / snow_percent are the exact values the writer recorded (the
    QUALITY_INDEX values are rounded). MissingFileError / CorruptFileError name the file."""
    from gpumaja.io.safe import parse_time

    meta = read_mtd(path)
    mtd = meta["path"]
    folder = mtd.parent
    if meta["level"] != "L3A":
        raise InputError(f"not an L3A product (PRODUCT_LEVEL {meta['level']!r})", mtd)
    root = parse_xml(mtd)
    frc: dict[str, str] = {}
    for img in findall_local(root, "Image"):
        if _text(img, "NATURE") == FRC_NATURE:
            for f in findall_local(img, "IMAGE_FILE"):
                if f.get("band_id") and (f.text or "").strip():
                    frc[f.get("band_id")] = f.text.strip().removeprefix("./")
    quant = meta["quantification"]["reflectance"] or WaspParams().reflectance_quantification
    q_weight_text = _text(root, "WEIGHT_QUANTIFICATION_VALUE")
    q_weight = float(q_weight_text) if q_weight_text else WaspParams().weight_quantification
    nodata = meta["nodata"]["reflectance"]
    nodata = WaspParams().nodata if nodata is None else nodata

    def decoded(rel: str, factor: float) -> tuple[np.ndarray, Grid]:
        counts, grid, _ = read_raster(folder / rel)
        values = counts.astype(np.float32) / np.float32(factor)
        values[counts == nodata] = np.nan
        return values, grid

    groups: dict[str, L3AGroup] = {}
    for gid, band_ids in meta["groups"].items():
        cube = []
        grid = None
        for bid in band_ids:
            if bid not in frc:
                raise CorruptFileError(f"no FRC file listed for band {bid}", mtd)
            values, g = decoded(frc[bid], quant)
            if grid is not None and g != grid:
                raise CorruptFileError(f"grid {g} differs from the group's {grid}", folder / frc[bid])
            grid = g
            cube.append(values)
        layers = {}
        for code, factor in (("WGT", q_weight), ("DTS", DTS_QUANTIFICATION), ("FLG", None)):
            rel = meta["mask_files"].get(code, {}).get(gid)
            if rel is None:
                raise CorruptFileError(f"no {code} file listed for group {gid}", mtd)
            if factor is None:
                counts, g, _ = read_raster(folder / rel)
                layers[code] = counts.astype(np.uint8, copy=False)
            else:
                layers[code], g = decoded(rel, factor)
            if grid is not None and g != grid:
                raise CorruptFileError(f"grid {g} differs from the group's {grid}", folder / rel)
            grid = grid or g
        if grid is None:
            raise CorruptFileError(f"group {gid} has no file", mtd)
        names = tuple(_S2_BAND_NAME.get(b, b) for b in band_ids)
        groups[gid] = L3AGroup(gid, grid, names, np.stack(cube) if cube else np.zeros((0, *grid.shape), np.float32),
                               layers["WGT"], layers["DTS"], layers["FLG"])

    begin_text, end_text = _text(root, "BEGIN"), _text(root, "END")
    synthesis_date = meta["acquired"].date()
    half = _text(root, "HALF_WINDOW")
    if half is not None:
        half_window = int(half)
    elif begin_text and end_text:
        half_window = (parse_time(end_text, mtd).date() - parse_time(begin_text, mtd).date()).days // 2
    else:
        raise CorruptFileError("no synthesis period (<Synthesis_Period>)", mtd)
    inputs = []
    inputs_list = find_local(root, "Inputs_List")
    if inputs_list is not None:
        for p in findall_local(inputs_list, "PRODUCT"):
            inputs.append(L3AInput(product_id=_text(p, "PRODUCT_ID") or "", platform=_text(p, "PLATFORM") or "",
                                   acquired=parse_time(_text(p, "ACQUISITION_DATE") or "", mtd),
                                   path=_text(p, "PRODUCT_PATH") or ""))
    infos = {}
    for pi in findall_local(root, "Processing_Information"):
        infos[_text(pi, "NAME")] = _text(pi, "VALUE")

    def percent(exact_key: str, index_key: str) -> float:
        if infos.get(exact_key) is not None:
            return float(infos[exact_key])
        return float(meta[index_key]) if meta[index_key] is not None else float("nan")

    crs = meta["crs"] or next(iter(groups.values())).grid.crs
    return L3AResult(
        tile=meta["tile"] or "", platform=meta["platform"], synthesis_date=synthesis_date,
        half_window_days=half_window, crs=crs, groups=groups, inputs=inputs,
        params=read_parameters(root, "WASP", mtd),
        cloud_percent=percent("Cloud_Percent_Exact", "cloud_percent"),
        snow_percent=percent("Snow_Percent_Exact", "snow_percent"),
        production_date=meta["production_date"], extra={"path": str(folder)},
    )


__all__ = ["l3a_product_files", "l3a_product_name", "l3a_stac_item", "quicklook_image", "read_l3a",
           "read_raster", "stac_platform", "write_l3a", "write_l3a_mtd",
           "write_rgb_image"]
