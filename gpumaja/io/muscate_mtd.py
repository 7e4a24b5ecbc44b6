"""MUSCATE `<name>_MTD_ALL.xml`: writer and reader (maja-l2a.md §5, masks §1.12).

The writer follows the element names and nesting of MAJA's template
(`Plugins/SENTINEL2_MUSCATE/Interfaces/Config/Templates/L2.product/MTD_ALL.xml`, METADATA_MUSCATE
1.16) and of real Theia products, for what gpumaja knows: identification, product characteristics
and band groups, the file lists (images and masks, with the NATURE and 1-based bit_number of each
mask bit), geopositioning, mean sun and viewing angles and the sun angle grid, quantification and
special values, spectral band information, quality indexes and one processing job. Not written:
Data_List (no private directory), per-detector viewing angle grids, calibration coefficients.

Mask natures and bits, as MAJA writes them (the `MASK_FILE` entries point at the MG2/CLM/IAB files):
IAB bit 1 WVC_Interpolation, bit 2 AOT_Interpolation; CLM (whole byte) Detailed_Cloud; EDG Edge; SAT
Saturation, one bit per band of the group in group order; MG2 bits 1..8 (1-based) Water, Cloud, Snow,
Cloud_Shadow, Topography_Shadow, Hidden_Surface, Sun_Too_Low, Tangent_Sun. Bits 5/6 follow the MTD
template ordering (topographic shadow before hidden faces), as the MG2_* constants of
`gpumaja.model.l2a` do.

Deliberate differences from a Theia product: AUTHORITY and PRODUCER are "gpumaja" (the product was
not made by Theia's MUSCATE centre); COMPRESSION is DEFLATE for every raster (they are COGs).

`files` maps a file key to the file's path relative to the product folder; keys are the MUSCATE
file-type code and suffix: "SRE_B2", "FRE_B8A", "ATB_R1", "CLM_R2", "MG2_R1", "SAT_R1", "EDG_R1",
"IAB_R1", "QKL_ALL". Entries not in `files` are not listed (a product that is not valid lists none).

`read_mtd` parses ours and Theia's (including the older MACCS-era layout of the shared real file).
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from gpumaja import __version__
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.xml import find_local, findall_local, local, parse_xml, require_text
from gpumaja.model.bands import bands_of
from gpumaja.model.grids import Grid
from gpumaja.model.l2a import (
    IAB_AOT_INTERPOLATED,
    IAB_WV_INTERPOLATED,
    MG2_ALL_CLOUDS,
    MG2_HIDDEN,
    MG2_SHADOW,
    MG2_SNOW,
    MG2_SUN_TOO_LOW,
    MG2_TANGENT_SUN,
    MG2_TOPO_SHADOW,
    MG2_WATER,
    L2AResult,
)
from gpumaja.model.params import L2Params
from gpumaja.model.product import L1CProduct

METADATA_FORMAT_VERSION = "1.16"
PRODUCT_VERSION = "1.0"
PRODUCER = "gpumaja"
VALID_FLAG, NOT_VALID_FLAG = "L2VALD", "L2NOTV"
SOLAR_IRRADIANCE_UNIT = "W/m²/µm"

# (NATURE, MG2 bit value) in MTD template order; bit_number = log2(value) + 1
MG2_NATURES = (
    ("Water", MG2_WATER),
    ("Cloud", MG2_ALL_CLOUDS),
    ("Snow", MG2_SNOW),
    ("Cloud_Shadow", MG2_SHADOW),
    ("Topography_Shadow", MG2_TOPO_SHADOW),
    ("Hidden_Surface", MG2_HIDDEN),
    ("Sun_Too_Low", MG2_SUN_TOO_LOW),
    ("Tangent_Sun", MG2_TANGENT_SUN),
)
IAB_NATURES = (("WVC_Interpolation", IAB_WV_INTERPOLATED), ("AOT_Interpolation", IAB_AOT_INTERPOLATED))
# (NATURE, file code, per-band bits?) of the other masks
WHOLE_MASKS = (("Detailed_Cloud", "CLM"), ("Edge", "EDG"))
QUICKLOOK_BANDS = {"S2": ("B04", "B03", "B02"), "LANDSAT": ("B4", "B3", "B2")}
ATB_BAND_NUMBER = {"water_vapour": 1, "aot": 2}


# ------------------------------------------------------------------------------------------ naming
def muscate_band_id(name: str) -> str:
    """MUSCATE band id of a gpumaja band name: "B02" -> "B2", "B8A" -> "B8A", Landsat "B5" -> "B5"."""
    m = re.fullmatch(r"B0*(\d+A?)", name)
    if m is None:
        raise ValueError(f"not a band name: {name!r}")
    return f"B{m.group(1)}"


def muscate_platform(product: L1CProduct) -> str:
    """PLATFORM value: "SENTINEL-2A" -> "SENTINEL2A", "LANDSAT_8" -> "LANDSAT8"."""
    return product.platform.replace("-", "").replace("_", "").upper()


def zone_id(product: L1CProduct) -> tuple[str, str]:
    """(GEOGRAPHICAL_ZONE, its type): ("T31TCJ", "Tile") or, for Landsat, ("198-030", "Path-Row")."""
    tile = product.tile
    if product.sensor == "LANDSAT":
        if re.fullmatch(r"\d{6}", tile):
            tile = f"{tile[:3]}-{tile[3:]}"
        return tile, "Path-Row" if re.fullmatch(r"\d{3}-\d{3}", tile) else "Site"
    return tile, "Tile" if re.fullmatch(r"T\d{2}[A-Z]{3}", tile) else "Site"


def group_ids(result: L2AResult) -> dict[str, str]:
    """gpumaja group name -> MUSCATE group id. MAJA names the only group of a single-resolution
    sensor (Landsat) "XS"; Sentinel-2 keeps R1/R2 (also when only one of them is written)."""
    names = sorted(result.groups)
    if result.product.sensor != "S2" and len(names) == 1:
        return {names[0]: "XS"}
    return {n: n for n in names}


def footprint_grid(result: L2AResult) -> Grid:
    """The finest grid of the product's groups (of the input product when no group was kept)."""
    grids = [g.grid for g in result.groups.values()] or list(result.product.grids.values())
    return min(grids, key=lambda g: g.resolution)


def utc_text(t: datetime, digits: int = 3) -> str:
    """'2024-01-20T10:58:50.500Z' (fraction truncated to `digits` digits, as MAJA truncates)."""
    t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    frac = f"{t.microsecond:06d}"[:digits]
    return f"{t:%Y-%m-%dT%H:%M:%S}" + (f".{frac}" if digits else "") + "Z"


def _num(x: float) -> str:
    """Number text: integers without a decimal point, other values with 12 significant digits."""
    x = float(x)
    if math.isfinite(x) and x == round(x) and abs(x) < 1e15:
        return str(round(x))
    return f"{x:.12g}"


def _bit_number(value: int) -> int:
    return int(value).bit_length()  # 1 -> 1, 2 -> 2, 16 -> 5 (1-based bit number)


# ----------------------------------------------------------------------------------------- writing
def _sub(parent: Element, tag: str, text: object | None = None, **attrs: object) -> Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrs.items()})
    if text is not None:
        el.text = str(text)
    return el


def _quantification(result: L2AResult) -> dict[str, float]:
    """Reflectance, WV and AOT quantification values (counts per physical unit) and nodata values."""
    d = L2Params()
    p = result.params
    return {
        "reflectance": float(p.get("reflectance_quantification", d.reflectance_quantification)),
        "water_vapour": 1.0 / float(p.get("water_vapor_quantification", d.water_vapor_quantification)),
        "aot": 1.0 / float(p.get("aot_quantification", d.aot_quantification)),
        "reflectance_nodata": float(p.get("reflectance_nodata", d.reflectance_nodata)),
    }


def _crs_info(crs: str) -> tuple[str, str, str, str]:
    """(GEO_TABLES, HORIZONTAL_CS_TYPE, HORIZONTAL_CS_NAME, HORIZONTAL_CS_CODE) of a CRS string."""
    from rasterio.crs import CRS

    c = CRS.from_user_input(crs)
    epsg = c.to_epsg()
    kind = "PROJECTED" if c.is_projected else "GEOGRAPHIC"
    wkt = c.to_wkt()
    name = wkt.split('"')[1] if '"' in wkt else ""  # the CRS name, as MAJA takes it from the WKT
    return ("EPSG" if epsg else "WKT", kind, name, str(epsg) if epsg else c.to_wkt())


def _corners_lonlat(grid: Grid) -> dict[str, tuple[float, float, float, float]]:
    """name -> (lat, lon, x, y) of the footprint corners and centre."""
    from rasterio.warp import transform

    left, bottom, right, top = grid.bounds
    pts = {
        "upperLeft": (left, top),
        "upperRight": (right, top),
        "lowerRight": (right, bottom),
        "lowerLeft": (left, bottom),
        "center": ((left + right) / 2, (top + bottom) / 2),
    }
    xs = [p[0] for p in pts.values()]
    ys = [p[1] for p in pts.values()]
    lons, lats = transform(grid.crs, "EPSG:4326", xs, ys)
    return {k: (lat, lon, x, y) for k, lat, lon, x, y in zip(pts, lats, lons, xs, ys)}


def _file_list(parent: Element, tag: str, entries: list[tuple[dict, str]]) -> None:
    for attrs, rel in entries:
        _sub(parent, tag, rel, **attrs)


def _image(image_list: Element, nature: str, encoding: str, entries: list[tuple[dict, str]]) -> None:
    if not entries:
        return
    img = _sub(image_list, "Image")
    props = _sub(img, "Image_Properties")
    for tag, text in (("NATURE", nature), ("FORMAT", "image/tiff"), ("ENCODING", encoding),
                      ("ENDIANNESS", "LittleEndian"), ("COMPRESSION", "DEFLATE")):
        _sub(props, tag, text)
    _file_list(_sub(img, "Image_File_List"), "IMAGE_FILE", entries)


def _mask(mask_list: Element, nature: str, entries: list[tuple[dict, str]]) -> None:
    if not entries:
        return
    m = _sub(mask_list, "Mask")
    props = _sub(m, "Mask_Properties")
    for tag, text in (("NATURE", nature), ("FORMAT", "image/tiff"), ("ENCODING", "byte"),
                      ("ENDIANNESS", "LittleEndian"), ("COMPRESSION", "DEFLATE")):
        _sub(props, tag, text)
    _file_list(_sub(m, "Mask_File_List"), "MASK_FILE", entries)


def _product_organisation(root: Element, result: L2AResult, files: dict[str, str]) -> None:
    gids = group_ids(result)
    org = _sub(_sub(root, "Product_Organisation"), "Muscate_Product")
    if "QKL_ALL" in files:
        qkl_bands = ",".join(muscate_band_id(b) for b in QUICKLOOK_BANDS[result.product.sensor])
        _sub(org, "QUICKLOOK", files["QKL_ALL"], bands_id=qkl_bands)
    images = _sub(org, "Image_List")
    band_ids = [muscate_band_id(b) for g in sorted(result.groups) for b in result.groups[g].bands]
    for nature, code in (("Surface_Reflectance", "SRE"), ("Flat_Reflectance", "FRE")):
        _image(images, nature, "int16",
               [({"band_id": b}, files[f"{code}_{b}"]) for b in band_ids if f"{code}_{b}" in files])
    for nature, key in (("Water_Vapor_Content", "water_vapour"), ("Aerosol_Optical_Thickness", "aot")):
        _image(images, nature, "byte",
               [({"group_id": gid, "band_number": ATB_BAND_NUMBER[key]}, files[f"ATB_{gid}"])
                for gid in gids.values() if f"ATB_{gid}" in files])
    masks = _sub(org, "Mask_List")

    def per_group(code: str, bit: int | None = None) -> list[tuple[dict, str]]:
        out = []
        for gid in gids.values():
            if f"{code}_{gid}" in files:
                attrs = {"group_id": gid} if bit is None else {"group_id": gid, "bit_number": bit}
                out.append((attrs, files[f"{code}_{gid}"]))
        return out

    for nature, value in IAB_NATURES:
        _mask(masks, nature, per_group("IAB", _bit_number(value)))
    for nature, code in WHOLE_MASKS:
        _mask(masks, nature, per_group(code))
    sat = []
    for g, gid in gids.items():
        if f"SAT_{gid}" in files:
            for i, b in enumerate(result.groups[g].bands, start=1):
                sat.append(({"band_id": muscate_band_id(b), "group_id": gid, "bit_number": i},
                            files[f"SAT_{gid}"]))
    _mask(masks, "Saturation", sat)
    for nature, value in MG2_NATURES:
        _mask(masks, nature, per_group("MG2", _bit_number(value)))


def _geoposition(root: Element, result: L2AResult) -> None:
    grids = {gid: result.groups[g].grid for g, gid in group_ids(result).items()}
    write_geoposition(root, grids, footprint_grid(result))


def write_geoposition(root: Element, grids: dict[str, Grid], footprint: Grid) -> None:
    """Geoposition_Informations: the CRS, the corners of `footprint` and each group's grid (group id ->
    grid), as MUSCATE writes them (L2A, and the L3A / snow products that reuse the layout)."""
    geo = _sub(root, "Geoposition_Informations")
    tables, kind, name, code = _crs_info(footprint.crs)
    crs_el = _sub(geo, "Coordinate_Reference_System")
    _sub(crs_el, "GEO_TABLES", tables)
    hcs = _sub(crs_el, "Horizontal_Coordinate_System")
    _sub(hcs, "HORIZONTAL_CS_TYPE", kind)
    _sub(hcs, "HORIZONTAL_CS_NAME", name)
    _sub(hcs, "HORIZONTAL_CS_CODE", code)
    for tag, type_tag in (("Raster_CS", "RASTER_CS_TYPE"), ("Metadata_CS", "METADATA_CS_TYPE")):
        cs = _sub(geo, tag)
        _sub(cs, type_tag, "CELL")
        _sub(cs, "PIXEL_ORIGIN", "0")
    pos = _sub(geo, "Geopositioning")
    glob = _sub(pos, "Global_Geopositioning")
    for pname, (lat, lon, x, y) in _corners_lonlat(footprint).items():
        pt = _sub(glob, "Point", name=pname)
        _sub(pt, "LAT", f"{lat:.10f}")
        _sub(pt, "LON", f"{lon:.10f}")
        _sub(pt, "X", f"{x:.1f}")
        _sub(pt, "Y", f"{y:.1f}")
    lst = _sub(pos, "Group_Geopositioning_List")
    for gid, grid in grids.items():
        t = grid.transform
        gg = _sub(lst, "Group_Geopositioning", group_id=gid)
        for tag, value in (("ULX", t.c), ("ULY", t.f), ("XDIM", t.a), ("YDIM", t.e),
                           ("NROWS", grid.height), ("NCOLS", grid.width)):
            _sub(gg, tag, _num(value))


def _angle_values(parent: Element, tag: str, values: np.ndarray, step: float) -> None:
    el = _sub(parent, tag, step_unit="m", values_unit="deg")
    _sub(el, "COL_STEP", _num(step))
    _sub(el, "ROW_STEP", _num(step))
    vl = _sub(el, "Values_List")
    for row in np.asarray(values, np.float64):
        _sub(vl, "VALUES", " ".join("NaN" if not np.isfinite(v) else f"{v:.6g}" for v in row))


def _geometry(root: Element, result: L2AResult) -> None:
    product = result.product
    geom = _sub(root, "Geometric_Informations")
    mean = _sub(geom, "Mean_Value_List")
    sun = _sub(mean, "Sun_Angles")
    _sub(sun, "ZENITH_ANGLE", f"{product.sun.mean_zenith:.12g}", unit="deg")
    _sub(sun, "AZIMUTH_ANGLE", f"{product.sun.mean_azimuth:.12g}", unit="deg")
    views = _sub(mean, "Mean_Viewing_Incidence_Angle_List")
    out_bands = {b for g in result.groups.values() for b in g.bands}
    for band in bands_of(product.sensor):
        if band.name in out_bands and band.name in product.view:
            v = product.view[band.name]
            mv = _sub(views, "Mean_Viewing_Incidence_Angle", band_id=muscate_band_id(band.name))
            _sub(mv, "ZENITH_ANGLE", f"{v.mean_zenith:.12g}", unit="deg")
            _sub(mv, "AZIMUTH_ANGLE", f"{v.mean_azimuth:.12g}", unit="deg")
    grids = _sub(_sub(geom, "Angles_Grids_List"), "Sun_Angles_Grids")
    step = product.sun.grid.resolution
    _angle_values(grids, "Zenith", product.sun.zenith, step)
    _angle_values(grids, "Azimuth", product.sun.azimuth, step)


def _radiometry(root: Element, result: L2AResult) -> None:
    q = _quantification(result)
    rad = _sub(root, "Radiometric_Informations")
    _sub(rad, "REFLECTANCE_QUANTIFICATION_VALUE", _num(q["reflectance"]))
    _sub(rad, "WATER_VAPOR_CONTENT_QUANTIFICATION_VALUE", _num(round(q["water_vapour"], 9)))
    _sub(rad, "AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE", _num(round(q["aot"], 9)))
    special = _sub(rad, "Special_Values_List")
    _sub(special, "SPECIAL_VALUE", _num(q["reflectance_nodata"]), name="nodata")
    _sub(special, "SPECIAL_VALUE", "0", name="water_vapor_content_nodata")
    _sub(special, "SPECIAL_VALUE", "0", name="aerosol_optical_thickness_nodata")
    spectral = _sub(rad, "Spectral_Band_Informations_List")
    resolution = {b: g.grid.resolution for g in result.groups.values() for b in g.bands}
    for band in bands_of(result.product.sensor):
        if band.name not in resolution:
            continue
        sb = _sub(spectral, "Spectral_Band_Informations", band_id=muscate_band_id(band.name))
        radio = result.product.radiometry.get(band.name)
        if radio is not None and math.isfinite(radio.solar_irradiance):
            _sub(sb, "SOLAR_IRRADIANCE", _num(radio.solar_irradiance), unit=SOLAR_IRRADIANCE_UNIT)
        _sub(sb, "SPATIAL_RESOLUTION", _num(resolution[band.name]), unit="m")
        _sub(_sub(sb, "Wavelength"), "CENTRAL", _num(band.wavelength_nm), unit="nm")


def _quality(root: Element, result: L2AResult, product_name: str, produced: str) -> None:
    pq = _sub(_sub(_sub(root, "Quality_Informations"), "Current_Product"), "Product_Quality_List", level="N2")
    q = _sub(pq, "Product_Quality")
    src = _sub(q, "Source_Product")
    _sub(src, "PRODUCT_ID", product_name)
    _sub(src, "ACQUISITION_DATE", utc_text(result.product.acquired))
    _sub(src, "PRODUCTION_DATE", produced)
    idx = _sub(q, "Global_Index_List")
    # MAJA writes int(rate) (maja_muscate_l2_header_writer.py)
    _sub(idx, "QUALITY_INDEX", int(result.cloud_percent), name="CloudPercent")
    _sub(idx, "QUALITY_INDEX", int(result.snow_percent), name="SnowPercent")
    for name in ("RainDetected", "HotSpotDetected", "SunGlintDetected"):
        _sub(idx, "QUALITY_INDEX", str(bool(result.quality.get(name, False))).lower(), name=name)


def _production(root: Element, result: L2AResult, product_name: str, produced: str) -> None:
    job = _sub(_sub(_sub(root, "Production_Informations"), "Processing_Jobs_List"), "Job")
    _sub(job, "STEP_ID", "l2a")
    _sub(job, "JOB_ID", "1")
    _sub(job, "PRODUCER_NAME", PRODUCER)
    _sub(job, "START_PRODUCTION_DATE", produced)
    _sub(job, "END_PRODUCTION_DATE", produced)
    plist = _sub(job, "Products_List")
    inp = _sub(_sub(plist, "Inputs_List"), "PRODUCT")
    _sub(inp, "PRODUCT_ID", result.product.product_id)
    _sub(inp, "ACQUISITION_DATE", utc_text(result.product.acquired))
    out = _sub(_sub(plist, "Outputs_List"), "PRODUCT")
    _sub(out, "PRODUCT_ID", product_name)
    _sub(out, "ACQUISITION_DATE", utc_text(result.product.acquired))
    _sub(out, "PRODUCTION_DATE", produced)
    if result.lut_source:
        aux = _sub(_sub(job, "Auxiliary_Data_List"), "Auxiliary_Data")
        _sub(aux, "DATA", result.lut_source)
        _sub(aux, "NATURE", "ATMOSPHERE_LUT")
    infos = _sub(job, "Processing_Informations")
    items = [
        ("Adjacency_Effects_And_Slope_Correction", "true"),
        ("AOT_Method", result.aot_method),
        ("Validity_Flag", VALID_FLAG if result.valid else NOT_VALID_FLAG),
        ("Software", f"gpumaja {result.software_version or __version__}"),
    ]
    for key, value in (("Mean_AOT", result.mean_aot), ("Mean_Water_Vapor", result.mean_water_vapour),
                       ("NoDataPercent", result.nodata_percent)):
        if math.isfinite(value):
            items.append((key, f"{value:.6g}"))
    for name, value in items:
        pi = _sub(infos, "Processing_Information")
        _sub(pi, "NAME", name)
        _sub(pi, "VALUE", value)


def write_mtd(result: L2AResult, product_name: str, files: dict[str, str],
              production_date: datetime | None = None) -> bytes:
    """The MTD_ALL.xml document (UTF-8 bytes) of a product named `product_name` holding `files`
    (key -> path relative to the product folder; see the module docstring)."""
    product = result.product
    produced = utc_text(production_date or datetime.now(timezone.utc), digits=6)
    acquired = utc_text(product.acquired)
    platform = muscate_platform(product)
    zone, zone_type = zone_id(product)
    root = ET.Element("Muscate_Metadata_Document", {
        "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
        "xsi:noNamespaceSchemaLocation": "Muscate_Metadata.xsd",
    })
    meta = _sub(root, "Metadata_Identification")
    _sub(meta, "METADATA_FORMAT", "METADATA_MUSCATE", version=METADATA_FORMAT_VERSION)
    _sub(meta, "METADATA_PROFILE", "USER")
    _sub(meta, "METADATA_INFORMATION", "EXPERT")

    ds = _sub(root, "Dataset_Identification")
    _sub(ds, "IDENTIFIER", re.sub(r"_V\d+-\d+$", "", product_name))
    _sub(ds, "AUTHORITY", PRODUCER)
    _sub(ds, "PRODUCER", PRODUCER)
    _sub(ds, "PROJECT", "SENTINEL2" if product.sensor == "S2" else "LANDSAT")
    _sub(ds, "GEOGRAPHICAL_ZONE", zone, type=zone_type)
    _sub(ds, "TITLE", f"{platform} L2A product (gpumaja)")
    _sub(ds, "DESCRIPTION", f"Surface reflectance of {product.product_id}, processed by gpumaja")

    pc = _sub(root, "Product_Characteristics")
    _sub(pc, "PRODUCT_ID", product_name)
    _sub(pc, "ACQUISITION_DATE", acquired)
    _sub(pc, "PRODUCTION_DATE", produced)
    _sub(pc, "PRODUCT_VERSION", PRODUCT_VERSION)
    _sub(pc, "PRODUCT_LEVEL", "L2A")
    _sub(pc, "PLATFORM", platform)
    if product.orbit is not None:
        _sub(pc, "ORBIT_NUMBER", product.orbit, type="Orbit")
    rng = _sub(pc, "UTC_Acquisition_Range")
    _sub(rng, "MEAN", acquired)
    _sub(rng, "DATE_PRECISION", "0.001", unit="s")
    gids = group_ids(result)
    all_bands = [b for g in sorted(result.groups) for b in result.groups[g].bands]
    order = {b.name: i for i, b in enumerate(bands_of(product.sensor))}
    glist = _sub(pc, "Band_Global_List", count=len(all_bands))
    for b in sorted(all_bands, key=lambda n: order.get(n, 99)):
        _sub(glist, "BAND_ID", muscate_band_id(b))
    groups_el = _sub(pc, "Band_Group_List")
    for g, gid in gids.items():
        bl = _sub(_sub(groups_el, "Group", group_id=gid), "Band_List", count=len(result.groups[g].bands))
        for b in result.groups[g].bands:
            _sub(bl, "BAND_ID", muscate_band_id(b))

    _product_organisation(root, result, files)
    _geoposition(root, result)
    _geometry(root, result)
    _radiometry(root, result)
    _quality(root, result, product_name, produced)
    _production(root, result, product_name, produced)
    ET.indent(root, space="  ")
    return b"<?xml version='1.0' encoding='UTF-8'?>\n" + ET.tostring(root, encoding="utf-8") + b"\n"


# ----------------------------------------------------------------------------------------- reading
_FILE_CODE_RE = re.compile(r"_([A-Z0-9]{3})_(R\d|XS|ALL|B\d+A?)(?:-D\d+)?\.[A-Za-z]+$")


def find_mtd(path: str | os.PathLike) -> Path:
    """The `*_MTD_ALL.xml` of a product folder (or the file itself)."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise MissingFileError("no such file or folder", p)
    found = sorted(p.glob("*_MTD_ALL.xml"))
    if not found:
        raise MissingFileError("not a MUSCATE product: no *_MTD_ALL.xml in the folder", p)
    if len(found) > 1:
        raise InputError(f"several *_MTD_ALL.xml files: {', '.join(f.name for f in found)}", p)
    return found[0]


def _rel(text: str | None) -> str:
    t = (text or "").strip()
    return t.removeprefix("./")


def _opt_float(root: Element, name: str, label: str) -> float | None:
    el = find_local(root, name)
    if el is None or not (el.text or "").strip():
        return None
    try:
        return float(el.text)
    except ValueError:
        raise CorruptFileError(f"<{name}> is not a number: {el.text.strip()!r}", label) from None


def _quality_value(text: str) -> bool | float | str:
    t = text.strip()
    if t.lower() in ("true", "false"):
        return t.lower() == "true"
    try:
        return float(t)
    except ValueError:
        return t


def read_mtd(path: str | os.PathLike) -> dict:
    """Parse a MUSCATE MTD_ALL.xml (a file or a product folder) into a plain dict:

    path, product_id, identifier, platform, product_version, level, acquired (aware datetime),
    production_date (datetime or None), zone, zone_type, tile (= zone), orbit (int or None),
    bands (Band_Global_List), groups {group_id: [band ids]}, quicklook (relative path or None),
    images {"SRE": {band: rel}, "FRE": {band: rel}, "ATB": {group: rel}}, atb_band_numbers
    {"water_vapour": n, "aot": n}, masks [{nature, file, group, band, bit, band_number, detector}],
    mask_files {"CLM": {group: rel}, "MG2": ..., ...} (by the file-type code of the file names),
    quantification {"reflectance", "water_vapour", "aot"} (None where absent), nodata {same keys},
    crs ("EPSG:n" or None), epsg, group_geopositioning {group: {ulx, uly, xdim, ydim, nrows, ncols}},
    sun_angles {"zenith", "azimuth"}, view_angles {band: {"zenith", "azimuth"}}, quality {name: value},
    cloud_percent, snow_percent (float or None), valid (Validity_Flag, else "lists image files").
    Paths are relative to the product folder (a leading "./" removed).
    """
    from gpumaja.io.safe import parse_time

    mtd = find_mtd(path)
    label = str(mtd)
    root = parse_xml(mtd)
    if local(root.tag) != "Muscate_Metadata_Document":
        raise CorruptFileError(f"root element is <{local(root.tag)}>, expected <Muscate_Metadata_Document>",
                               label)
    pc = find_local(root, "Product_Characteristics")
    if pc is None:
        raise CorruptFileError("missing element <Product_Characteristics>", label)
    out: dict = {"path": mtd}
    out["product_id"] = require_text(pc, "PRODUCT_ID", label)
    out["platform"] = require_text(pc, "PLATFORM", label)
    out["acquired"] = parse_time(require_text(pc, "ACQUISITION_DATE", label), label)
    prod = find_local(pc, "PRODUCTION_DATE")
    out["production_date"] = parse_time(prod.text, label) if prod is not None and prod.text else None
    for key, tag in (("product_version", "PRODUCT_VERSION"), ("level", "PRODUCT_LEVEL")):
        el = find_local(pc, tag)
        out[key] = el.text.strip() if el is not None and el.text else None
    orbit = find_local(pc, "ORBIT_NUMBER")
    try:
        out["orbit"] = int(orbit.text) if orbit is not None and orbit.text else None
    except ValueError:
        raise CorruptFileError(f"<ORBIT_NUMBER> is not an integer: {orbit.text!r}", label) from None
    ident = find_local(root, "IDENTIFIER")
    out["identifier"] = ident.text.strip() if ident is not None and ident.text else None
    zone = find_local(root, "GEOGRAPHICAL_ZONE")
    out["zone"] = zone.text.strip() if zone is not None and zone.text else None
    out["zone_type"] = zone.get("type") if zone is not None else None
    out["tile"] = out["zone"]

    glist = find_local(pc, "Band_Global_List")
    out["bands"] = [e.text.strip() for e in findall_local(glist, "BAND_ID")] if glist is not None else []
    out["groups"] = {
        g.get("group_id"): [e.text.strip() for e in findall_local(g, "BAND_ID")]
        for g in findall_local(pc, "Group") if g.get("group_id")
    }

    qkl = find_local(root, "QUICKLOOK")
    out["quicklook"] = _rel(qkl.text) if qkl is not None and (qkl.text or "").strip() else None
    images: dict[str, dict[str, str]] = {"SRE": {}, "FRE": {}, "ATB": {}}
    atb_numbers = dict(ATB_BAND_NUMBER)
    for img in findall_local(root, "Image"):
        nature_el = find_local(img, "NATURE")
        nature = nature_el.text.strip() if nature_el is not None and nature_el.text else ""
        for f in findall_local(img, "IMAGE_FILE"):
            if not (f.text or "").strip():
                continue
            if nature in ("Surface_Reflectance", "Flat_Reflectance") and f.get("band_id"):
                images["SRE" if nature == "Surface_Reflectance" else "FRE"][f.get("band_id")] = _rel(f.text)
            elif nature in ("Water_Vapor_Content", "Aerosol_Optical_Thickness") and f.get("group_id"):
                images["ATB"][f.get("group_id")] = _rel(f.text)
                if f.get("band_number"):
                    key = "water_vapour" if nature == "Water_Vapor_Content" else "aot"
                    atb_numbers[key] = int(f.get("band_number"))
    out["images"] = images
    out["atb_band_numbers"] = atb_numbers

    masks = []
    mask_files: dict[str, dict[str, str]] = {}
    for m in findall_local(root, "Mask"):
        nature_el = find_local(m, "NATURE")
        nature = nature_el.text.strip() if nature_el is not None and nature_el.text else ""
        for f in findall_local(m, "MASK_FILE"):
            rel = _rel(f.text)
            if not rel:
                continue
            masks.append({
                "nature": nature, "file": rel, "group": f.get("group_id"), "band": f.get("band_id"),
                "bit": int(f.get("bit_number")) if f.get("bit_number") else None,
                "band_number": int(f.get("band_number")) if f.get("band_number") else None,
                "detector": f.get("detector_id"),
            })
            code = _FILE_CODE_RE.search(rel)
            if code:
                group = f.get("group_id") or code.group(2)
                mask_files.setdefault(code.group(1), {})[group] = rel
    out["masks"] = masks
    out["mask_files"] = mask_files

    out["quantification"] = {
        "reflectance": _opt_float(root, "REFLECTANCE_QUANTIFICATION_VALUE", label),
        "water_vapour": _opt_float(root, "WATER_VAPOR_CONTENT_QUANTIFICATION_VALUE", label),
        "aot": _opt_float(root, "AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE", label),
    }
    special = {e.get("name"): e.text for e in findall_local(root, "SPECIAL_VALUE")}
    nodata = {}
    for key, name in (("reflectance", "nodata"), ("water_vapour", "water_vapor_content_nodata"),
                      ("aot", "aerosol_optical_thickness_nodata")):
        text = (special.get(name) or "").strip()
        try:
            nodata[key] = float(text) if text else None
        except ValueError:
            raise CorruptFileError(f"SPECIAL_VALUE {name} is not a number: {text!r}", label) from None
    out["nodata"] = nodata

    code = find_local(root, "HORIZONTAL_CS_CODE")
    tables = find_local(root, "GEO_TABLES")
    epsg = None
    if code is not None and (code.text or "").strip().isdigit() and (
            tables is None or (tables.text or "").strip().upper() == "EPSG"):
        epsg = int(code.text.strip())
    out["epsg"] = epsg
    out["crs"] = f"EPSG:{epsg}" if epsg else None
    geo = {}
    for gg in findall_local(root, "Group_Geopositioning"):
        vals = {}
        for tag in ("ULX", "ULY", "XDIM", "YDIM", "NROWS", "NCOLS"):
            v = _opt_float(gg, tag, label)
            if v is None:
                raise CorruptFileError(f"Group_Geopositioning {gg.get('group_id')} lacks <{tag}>", label)
            vals[tag.lower()] = int(v) if tag in ("NROWS", "NCOLS") else v
        geo[gg.get("group_id")] = vals
    out["group_geopositioning"] = geo

    sun = find_local(root, "Sun_Angles")
    out["sun_angles"] = ({"zenith": _opt_float(sun, "ZENITH_ANGLE", label),
                          "azimuth": _opt_float(sun, "AZIMUTH_ANGLE", label)} if sun is not None else None)
    out["view_angles"] = {
        v.get("band_id"): {"zenith": _opt_float(v, "ZENITH_ANGLE", label),
                           "azimuth": _opt_float(v, "AZIMUTH_ANGLE", label)}
        for v in findall_local(root, "Mean_Viewing_Incidence_Angle") if v.get("band_id")
    }

    quality = {}
    gil = find_local(root, "Global_Index_List")
    if gil is not None:
        for q in findall_local(gil, "QUALITY_INDEX"):
            if q.get("name") and q.text is not None:
                quality[q.get("name")] = _quality_value(q.text)
    out["quality"] = quality
    for key, name in (("cloud_percent", "CloudPercent"), ("snow_percent", "SnowPercent")):
        v = quality.get(name)
        out[key] = float(v) if isinstance(v, float) else None

    flag = None
    for pi in findall_local(root, "Processing_Information"):
        n = find_local(pi, "NAME")
        if n is not None and (n.text or "").strip() == "Validity_Flag":
            flag = (find_local(pi, "VALUE").text or "").strip()
    out["valid"] = (flag != NOT_VALID_FLAG) if flag else bool(images["SRE"] or images["FRE"])
    return out


__all__ = ["find_mtd", "footprint_grid", "group_ids", "muscate_band_id", "muscate_platform", "read_mtd",
           "utc_text", "write_geoposition", "write_mtd", "zone_id"]
