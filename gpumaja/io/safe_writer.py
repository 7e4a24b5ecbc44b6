"""Write one Sentinel-2 L1C date as a SAFE folder, faithful to the real format.

The layout, element names, nesting and namespaces follow real products of processing baseline 05.10
(e.g. S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244.SAFE):

    <SAFE>/MTD_MSIL1C.xml
    <SAFE>/GRANULE/L1C_<TILE>_A<abs orbit>_<datastrip sensing>/MTD_TL.xml
    <SAFE>/GRANULE/.../IMG_DATA/<TILE>_<datatake start>_<band>.jp2     (JPEG2000, lossless)

Only what the L2A chain reads is written (no QI masks, previews, DATASTRIP or HTML folders). The tile
may be smaller than a real 10980 x 10980 px MGRS tile: Size / Geoposition describe the written grid
exactly. Digital numbers follow baseline >= 04.00: DN = round(rho * QUANTIFICATION_VALUE) - RADIO_ADD_OFFSET
(= round(rho * 10000) + 1000), clipped to [1, 65534] for valid pixels; 0 = NODATA, 65535 = SATURATED.
The SAFE is written under a temporary name in the same folder and renamed when complete.
"""

from __future__ import annotations

import math
import os
import shutil
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
PHYSICAL_BAND = {b: ("B8A" if b == "B8A" else f"B{int(b[1:])}") for b in BAND_IDS}
BAND_RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
                   "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20}
# Solar irradiance (W/m2/um) and central wavelengths (nm) as in S2A MTD_MSIL1C.xml
SOLAR_IRRADIANCE = (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32,
                    812.92, 367.15, 245.59, 85.25)
CENTRAL_WAVELENGTH = (442.7, 492.7, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5,
                      1613.7, 2202.4)

NS_PRODUCT = "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd"
NS_TILE = "https://psd-14.sentinel2.eo.esa.int/PSD/S2_PDI_Level-1C_Tile_Metadata.xsd"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"

QUANTIFICATION = 10000
RADIO_ADD_OFFSET = -1000
NODATA_DN = 0
SATURATED_DN = 65535
BASELINE = "05.10"


@dataclass(frozen=True, eq=False)
class SafeDate:
    """Everything one SAFE holds. Angles in degrees; angle grids have point (0, 0) on the tile's UL
    corner and `angle_step_m` spacing; view grids are NaN outside a detector's footprint."""

    platform: str  # "SENTINEL-2A" | "SENTINEL-2B" | "SENTINEL-2C"
    datatake_start: datetime  # UTC
    sensing_time: datetime  # tile sensing time, UTC
    relative_orbit: int
    absolute_orbit: int
    tile: str  # "T31TCJ"
    crs: str  # "EPSG:32631"
    crs_name: str  # "WGS84 / UTM zone 31N"
    ulx: float
    uly: float
    size_10m: int  # pixels at 10 m (multiple of 6)
    reflectance: dict[str, np.ndarray]  # band -> TOA reflectance on the band's own grid (NaN = no data)
    sun_zenith_grid: np.ndarray
    sun_azimuth_grid: np.ndarray
    view_grids: dict[str, dict[int, tuple[np.ndarray, np.ndarray]]]  # band -> detector -> (zen, az)
    mean_sun: tuple[float, float]
    mean_view: dict[str, tuple[float, float]]
    angle_step_m: float = 5000.0
    cloud_percent: float = 0.0
    snow_percent: float = 0.0
    u_sun_distance: float | None = None
    generation_time: datetime | None = None  # default: datatake start + 2 h
    extra_files: dict[str, bytes] = field(default_factory=dict)

    @property
    def spacecraft(self) -> str:
        return "Sentinel-" + self.platform.split("-")[-1]

    @property
    def mission(self) -> str:  # "S2A"
        return "S2" + self.platform[-1]


def reflectance_to_dn(rho: np.ndarray) -> np.ndarray:
    """Baseline >= 04.00 quantisation: round(rho * 10000) + 1000 in [1, 65534]; NaN -> 0 (no data);
    65535 = saturated."""
    rho = np.asarray(rho, np.float64)
    valid = np.isfinite(rho)
    dn = np.rint(np.where(valid, rho, 0.0) * QUANTIFICATION) - RADIO_ADD_OFFSET
    sat = valid & (dn >= SATURATED_DN)
    dn = np.clip(dn, 1, SATURATED_DN - 1).astype(np.uint16)
    dn[sat] = SATURATED_DN
    dn[~valid] = NODATA_DN
    return dn


def earth_sun_u(day: datetime) -> float:
    """Reflectance conversion factor U = 1 / d^2 (d in AU), as in MTD_MSIL1C Reflectance_Conversion."""
    doy = day.timetuple().tm_yday
    return 1.0 / (1.0 - 0.01672 * math.cos(math.radians(0.9856 * (doy - 4)))) ** 2


def _ts(t: datetime, frac: int = 3) -> str:
    t = t.astimezone(timezone.utc)
    base = t.strftime("%Y-%m-%dT%H:%M:%S")
    if frac == 0:
        return base + "Z"
    return base + "." + f"{t.microsecond:06d}"[:frac] + "Z"


def _compact(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S")


def names(d: SafeDate) -> dict[str, str]:
    """Product, granule, tile and datastrip identifiers in the real naming scheme."""
    gen = d.generation_time or (d.datatake_start + timedelta(hours=2))
    ds_start = d.sensing_time
    n = "N" + BASELINE.replace(".", "")
    product = (f"{d.mission}_MSIL1C_{_compact(d.datatake_start)}_{n}_R{d.relative_orbit:03d}_{d.tile}_"
               f"{_compact(gen)}")
    return {
        "product": product,
        "safe": product + ".SAFE",
        "granule": f"L1C_{d.tile}_A{d.absolute_orbit:06d}_{_compact(ds_start)}",
        "tile_id": (f"{d.mission}_OPER_MSI_L1C_TL_2APS_{_compact(gen)}_A{d.absolute_orbit:06d}_{d.tile}"
                    f"_N{BASELINE}"),
        "datastrip_id": f"{d.mission}_OPER_MSI_L1C_DS_2APS_{_compact(gen)}_S{_compact(ds_start)}_N{BASELINE}",
        "datatake_id": f"G{d.mission}_{_compact(d.datatake_start)}_{d.absolute_orbit:06d}_N{BASELINE}",
        "generation": _ts(gen, 6),
        "image_prefix": f"{d.tile}_{_compact(d.datatake_start)}",
    }


def _sub(parent: ET.Element, tag: str, text=None, **attrib) -> ET.Element:
    el = ET.SubElement(parent, tag, {k: str(v) for k, v in attrib.items()})
    if text is not None:
        el.text = str(text)
    return el


def _fmt(v: float) -> str:
    return "NaN" if not np.isfinite(v) else f"{float(v):.6g}"


def _write_xml(root: ET.Element, path: Path) -> None:
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    header = '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
    path.write_text(header + body + "\n", encoding="utf-8")


def product_metadata(d: SafeDate) -> ET.Element:
    nm = names(d)
    ET.register_namespace("n1", NS_PRODUCT)
    ET.register_namespace("xsi", NS_XSI)
    root = ET.Element(f"{{{NS_PRODUCT}}}Level-1C_User_Product",
                      {f"{{{NS_XSI}}}schemaLocation": NS_PRODUCT})
    gi = _sub(root, f"{{{NS_PRODUCT}}}General_Info")
    pi = _sub(gi, "Product_Info")
    _sub(pi, "PRODUCT_START_TIME", _ts(d.datatake_start))
    _sub(pi, "PRODUCT_STOP_TIME", _ts(d.datatake_start))
    _sub(pi, "PRODUCT_URI", nm["safe"])
    _sub(pi, "PROCESSING_LEVEL", "Level-1C")
    _sub(pi, "PRODUCT_TYPE", "S2MSI1C")
    _sub(pi, "PROCESSING_BASELINE", BASELINE)
    _sub(pi, "PRODUCT_DOI", "https://doi.org/10.5270/S2_-742ikth")
    _sub(pi, "GENERATION_TIME", nm["generation"])
    _sub(pi, "PREVIEW_IMAGE_URL", "Not applicable")
    _sub(pi, "PREVIEW_GEO_INFO", "Not applicable")
    dt = _sub(pi, "Datatake", datatakeIdentifier=nm["datatake_id"])
    _sub(dt, "SPACECRAFT_NAME", d.spacecraft)
    _sub(dt, "DATATAKE_TYPE", "INS-NOBS")
    _sub(dt, "DATATAKE_SENSING_START", _ts(d.datatake_start))
    _sub(dt, "SENSING_ORBIT_NUMBER", d.relative_orbit)
    _sub(dt, "SENSING_ORBIT_DIRECTION", "DESCENDING")
    qo = _sub(pi, "Query_Options", completeSingleTile="true")
    _sub(qo, "PRODUCT_FORMAT", "SAFE_COMPACT")
    po = _sub(pi, "Product_Organisation")
    gl = _sub(po, "Granule_List")
    gr = _sub(gl, "Granule", datastripIdentifier=nm["datastrip_id"],
              granuleIdentifier=nm["tile_id"], imageFormat="JPEG2000")
    for b in BAND_IDS:
        _sub(gr, "IMAGE_FILE", f"GRANULE/{nm['granule']}/IMG_DATA/{nm['image_prefix']}_{b}")

    pic = _sub(gi, "Product_Image_Characteristics")
    for text, idx in (("NODATA", NODATA_DN), ("SATURATED", SATURATED_DN)):
        sv = _sub(pic, "Special_Values")
        _sub(sv, "SPECIAL_VALUE_TEXT", text)
        _sub(sv, "SPECIAL_VALUE_INDEX", idx)
    ido = _sub(pic, "Image_Display_Order")
    _sub(ido, "RED_CHANNEL", 3)
    _sub(ido, "GREEN_CHANNEL", 2)
    _sub(ido, "BLUE_CHANNEL", 1)
    _sub(pic, "QUANTIFICATION_VALUE", QUANTIFICATION, unit="none")
    rol = _sub(pic, "Radiometric_Offset_List")
    for i in range(len(BAND_IDS)):
        _sub(rol, "RADIO_ADD_OFFSET", RADIO_ADD_OFFSET, band_id=i)
    rc = _sub(pic, "Reflectance_Conversion")
    u = d.u_sun_distance if d.u_sun_distance is not None else earth_sun_u(d.datatake_start)
    _sub(rc, "U", repr(float(u)))
    sil = _sub(rc, "Solar_Irradiance_List")
    for i, e0 in enumerate(SOLAR_IRRADIANCE):
        _sub(sil, "SOLAR_IRRADIANCE", e0, bandId=i, unit="W/m²/µm")
    spl = _sub(pic, "Spectral_Information_List")
    for i, b in enumerate(BAND_IDS):
        si = _sub(spl, "Spectral_Information", bandId=i, physicalBand=PHYSICAL_BAND[b])
        _sub(si, "RESOLUTION", BAND_RESOLUTION[b])
        wl = _sub(si, "Wavelength")
        _sub(wl, "CENTRAL", CENTRAL_WAVELENGTH[i], unit="nm")

    geo = _sub(root, f"{{{NS_PRODUCT}}}Geometric_Info")
    pf = _sub(geo, "Product_Footprint")
    pf2 = _sub(pf, "Product_Footprint")
    glob = _sub(pf2, "Global_Footprint")
    _sub(glob, "EXT_POS_LIST", footprint_pos_list(d))
    _sub(pf, "RASTER_CS_TYPE", "POINT")
    _sub(pf, "PIXEL_ORIGIN", 1)
    crs = _sub(geo, "Coordinate_Reference_System")
    _sub(crs, "GEO_TABLES", "EPSG", version=1)
    _sub(crs, "HORIZONTAL_CS_TYPE", "GEOGRAPHIC")
    aux = _sub(root, f"{{{NS_PRODUCT}}}Auxiliary_Data_Info")
    _sub(aux, "GIPP_List")
    _sub(aux, "PRODUCTION_DEM_TYPE", "S2__OPER_DEM_GLOBEF_PDMC_19800101T000000_S19800101T000000")
    qi = _sub(root, f"{{{NS_PRODUCT}}}Quality_Indicators_Info")
    _sub(qi, "Cloud_Coverage_Assessment", f"{d.cloud_percent:.1f}")
    _sub(qi, "Snow_Coverage_Assessment", f"{d.snow_percent:.1f}")
    return root


def footprint_pos_list(d: SafeDate) -> str:
    """'lat lon' pairs of the tile corners (UL, UR, LR, LL, UL), as in EXT_POS_LIST."""
    from rasterio.warp import transform

    ext = d.size_10m * 10.0
    xs = [d.ulx, d.ulx + ext, d.ulx + ext, d.ulx, d.ulx]
    ys = [d.uly, d.uly, d.uly - ext, d.uly - ext, d.uly]
    lon, lat = transform(d.crs, "EPSG:4326", xs, ys)
    return " ".join(f"{a!r} {o!r}" for a, o in zip(lat, lon)) + " "


def _angle_block(parent: ET.Element, tag: str, values: np.ndarray, step: float) -> None:
    el = _sub(parent, tag)
    _sub(el, "COL_STEP", f"{step:g}", unit="m")
    _sub(el, "ROW_STEP", f"{step:g}", unit="m")
    vl = _sub(el, "Values_List")
    for row in np.asarray(values):
        _sub(vl, "VALUES", " ".join(_fmt(v) for v in row))


def tile_metadata(d: SafeDate) -> ET.Element:
    nm = names(d)
    ET.register_namespace("n1", NS_TILE)
    ET.register_namespace("xsi", NS_XSI)
    root = ET.Element(f"{{{NS_TILE}}}Level-1C_Tile_ID", {f"{{{NS_XSI}}}schemaLocation": NS_TILE})
    gi = _sub(root, f"{{{NS_TILE}}}General_Info")
    _sub(gi, "TILE_ID", nm["tile_id"], metadataLevel="Brief")
    _sub(gi, "DATASTRIP_ID", nm["datastrip_id"], metadataLevel="Standard")
    _sub(gi, "DOWNLINK_PRIORITY", "NOMINAL", metadataLevel="Standard")
    _sub(gi, "SENSING_TIME", _ts(d.sensing_time, 6), metadataLevel="Standard")
    ai = _sub(gi, "Archiving_Info", metadataLevel="Expertise")
    _sub(ai, "ARCHIVING_CENTRE", "2APS")
    _sub(ai, "ARCHIVING_TIME", nm["generation"])

    geo = _sub(root, f"{{{NS_TILE}}}Geometric_Info")
    tg = _sub(geo, "Tile_Geocoding", metadataLevel="Brief")
    _sub(tg, "HORIZONTAL_CS_NAME", d.crs_name)
    _sub(tg, "HORIZONTAL_CS_CODE", d.crs)
    for res in (10, 20, 60):
        sz = _sub(tg, "Size", resolution=res)
        _sub(sz, "NROWS", d.size_10m * 10 // res)
        _sub(sz, "NCOLS", d.size_10m * 10 // res)
    for res in (10, 20, 60):
        gp = _sub(tg, "Geoposition", resolution=res)
        _sub(gp, "ULX", f"{d.ulx:.0f}")
        _sub(gp, "ULY", f"{d.uly:.0f}")
        _sub(gp, "XDIM", res)
        _sub(gp, "YDIM", -res)
    ta = _sub(geo, "Tile_Angles", metadataLevel="Standard")
    sag = _sub(ta, "Sun_Angles_Grid")
    _angle_block(sag, "Zenith", d.sun_zenith_grid, d.angle_step_m)
    _angle_block(sag, "Azimuth", d.sun_azimuth_grid, d.angle_step_m)
    msa = _sub(ta, "Mean_Sun_Angle")
    _sub(msa, "ZENITH_ANGLE", repr(float(d.mean_sun[0])), unit="deg")
    _sub(msa, "AZIMUTH_ANGLE", repr(float(d.mean_sun[1])), unit="deg")
    for i, b in enumerate(BAND_IDS):
        for det, (zen, az) in sorted(d.view_grids.get(b, {}).items()):
            vig = _sub(ta, "Viewing_Incidence_Angles_Grids", bandId=i, detectorId=det)
            _angle_block(vig, "Zenith", zen, d.angle_step_m)
            _angle_block(vig, "Azimuth", az, d.angle_step_m)
    mvl = _sub(ta, "Mean_Viewing_Incidence_Angle_List")
    for i, b in enumerate(BAND_IDS):
        if b not in d.mean_view:
            continue
        mv = _sub(mvl, "Mean_Viewing_Incidence_Angle", bandId=i)
        _sub(mv, "ZENITH_ANGLE", repr(float(d.mean_view[b][0])), unit="deg")
        _sub(mv, "AZIMUTH_ANGLE", repr(float(d.mean_view[b][1])), unit="deg")

    qi = _sub(root, f"{{{NS_TILE}}}Quality_Indicators_Info", metadataLevel="Standard")
    ic = _sub(qi, "Image_Content_QI")
    _sub(ic, "CLOUDY_PIXEL_PERCENTAGE", f"{d.cloud_percent:.4g}")
    _sub(ic, "DEGRADED_MSI_DATA_PERCENTAGE", 0)
    _sub(ic, "SNOW_PIXEL_PERCENTAGE", f"{d.snow_percent:.4g}")
    return root


def _write_jp2(path: Path, dn: np.ndarray, crs: str, ulx: float, uly: float, res: float) -> None:
    import rasterio
    from affine import Affine

    h, w = dn.shape
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
        path, "w", driver="JP2OpenJPEG", width=w, height=h, count=1, dtype="uint16", crs=crs,
        transform=Affine(res, 0.0, ulx, 0.0, -res, uly), QUALITY="100", REVERSIBLE="YES", YCBCR420="NO",
    ) as dst:
        dst.write(dn, 1)


def write_safe(d: SafeDate, out_dir: str | Path) -> Path:
    """Write the SAFE of `d` into `out_dir` and return its path (FileExistsError if it is there)."""
    if d.size_10m <= 0 or d.size_10m % 6:
        raise ValueError(f"tile size must be a positive multiple of 6 pixels at 10 m, got {d.size_10m}")
    out_dir = Path(out_dir)
    nm = names(d)
    final = out_dir / nm["safe"]
    if final.exists():
        raise FileExistsError(f"{final}: already exists")
    for b in BAND_IDS:
        if b not in d.reflectance:
            raise ValueError(f"missing band {b} in the reflectance of {nm['product']}")
        expected = d.size_10m * 10 // BAND_RESOLUTION[b]
        if d.reflectance[b].shape != (expected, expected):
            raise ValueError(f"band {b}: shape {d.reflectance[b].shape}, expected {(expected, expected)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{nm['safe']}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    try:
        img = tmp / "GRANULE" / nm["granule"] / "IMG_DATA"
        img.mkdir(parents=True)
        for sub in ("AUX_DATA", "QI_DATA"):
            (tmp / "GRANULE" / nm["granule"] / sub).mkdir()
        for b in BAND_IDS:
            res = BAND_RESOLUTION[b]
            _write_jp2(img / f"{nm['image_prefix']}_{b}.jp2", reflectance_to_dn(d.reflectance[b]),
                       d.crs, d.ulx, d.uly, float(res))
        _write_xml(product_metadata(d), tmp / "MTD_MSIL1C.xml")
        _write_xml(tile_metadata(d), tmp / "GRANULE" / nm["granule"] / "MTD_TL.xml")
        for rel, data in d.extra_files.items():
            p = tmp / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
