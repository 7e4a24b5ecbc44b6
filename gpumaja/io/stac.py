"""STAC item of a gpumaja MUSCATE L2A product (`<name>_STAC.json` in the product folder).

One item per product (pystac, STAC 1.1) with the eo, projection and raster extensions:

- id = product name; datetime = acquisition time; geometry/bbox = footprint of the finest group in
  WGS84 longitude/latitude; `eo:cloud_cover` / `eo:snow_cover` = the MTD's CloudPercent/SnowPercent;
  `proj:code` of the product; gpumaja-specific facts under `gpumaja:*` (AOT method, LUT source,
  validity, nodata share, mean AOT/WV, the L1 product, the parameters used).
- assets, keyed like the MTD file keys ("SRE_B2", "FRE_B2", "ATB_R1", "CLM_R1", ..., "QKL_ALL",
  "MTD_ALL"), hrefs relative to the product folder ("./<file>") so that the item stays valid when the
  folder is moved. Reflectance assets carry `eo:bands` (MUSCATE band id, common name, centre
  wavelength in micrometres) and `raster:bands` (nodata -10000, scale 1e-4); ATB carries the WV and
  AOT scales; every raster asset carries `proj:code`, `proj:shape` and `proj:transform`.
- roles: "data" (+ "reflectance") for SRE/FRE and ATB, "data" + a mask role for the masks
  ("cloud", "cloud-shadow", "snow-ice", "water-mask", "saturation", "data-mask", "quality"),
  "thumbnail"/"overview" for the quicklook, "metadata" for MTD_ALL.xml.

Validation: `pystac.Item.validate()` fetches every schema over the network; offline, only the core
item schema (bundled with pystac, needs `jsonschema`) can be checked; see tests/test_io_muscate.py.
"""

from __future__ import annotations

import math
import os
from datetime import datetime, timezone
from pathlib import Path

import pystac
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension

from gpumaja import __version__
from gpumaja.errors import MissingFileError
from gpumaja.io.muscate_mtd import footprint_grid, group_ids, muscate_band_id, muscate_platform
from gpumaja.model.bands import band as band_info
from gpumaja.model.grids import Grid
from gpumaja.model.l2a import L2AResult
from gpumaja.model.params import L2Params

COMMON_NAMES = {
    "S2": {"B01": "coastal", "B02": "blue", "B03": "green", "B04": "red", "B05": "rededge",
           "B06": "rededge", "B07": "rededge", "B08": "nir", "B8A": "nir08", "B09": "nir09",
           "B10": "cirrus", "B11": "swir16", "B12": "swir22"},
    "LANDSAT": {"B1": "coastal", "B2": "blue", "B3": "green", "B4": "red", "B5": "nir08",
                "B6": "swir16", "B7": "swir22", "B9": "cirrus"},
}
MASK_ROLES = {
    "CLM": ["data", "cloud", "cloud-shadow"],
    "MG2": ["data", "water-mask", "cloud", "snow-ice", "cloud-shadow"],
    "SAT": ["data", "saturation"],
    "EDG": ["data", "data-mask"],
    "IAB": ["data", "quality"],
}
MASK_TITLES = {"CLM": "cloud mask", "MG2": "geophysical mask", "SAT": "saturation mask",
               "EDG": "edge / nodata mask", "IAB": "WV and AOT interpolation mask"}
XML_MEDIA_TYPE = "application/xml"


def _stac_platform(result: L2AResult) -> tuple[str, str, list[str]]:
    """(platform, constellation, instruments) in STAC common-metadata spelling."""
    p = result.product.platform.lower()
    if result.product.sensor == "S2":
        return p, "sentinel-2", ["msi"]
    return p.replace("_", "-"), "landsat", ["oli"]


def footprint(grid: Grid) -> tuple[dict, list[float]]:
    from rasterio.warp import transform, transform_bounds

    left, bottom, right, top = grid.bounds
    xs = [left, right, right, left, left]
    ys = [top, top, bottom, bottom, top]
    lons, lats = transform(grid.crs, "EPSG:4326", xs, ys)
    geometry = {"type": "Polygon", "coordinates": [[[lo, la] for lo, la in zip(lons, lats)]]}
    bbox = list(transform_bounds(grid.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21))
    return geometry, bbox


def add_projection(asset: pystac.Asset, grid: Grid) -> None:
    ext = ProjectionExtension.ext(asset)
    ext.code = grid.crs if grid.crs.upper().startswith("EPSG:") else None
    if ext.code is None:
        ext.wkt2 = grid.crs
    ext.shape = [grid.height, grid.width]
    ext.transform = [float(v) for v in tuple(grid.transform)[:6]]


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return str(value)


def l2a_stac_item(product_dir: str | os.PathLike, result: L2AResult, files: dict[str, str]) -> dict:
    """The STAC item (a JSON-able dict) of the product in `product_dir`, whose files are `files`
    (key -> path relative to `product_dir`, as in gpumaja.io.muscate_mtd, plus "MTD_ALL").
    MissingFileError when a listed file is not in `product_dir`."""
    from gpumaja.io.muscate import product_name

    product_dir = Path(product_dir)
    for rel in files.values():
        if not (product_dir / rel).is_file():
            raise MissingFileError("file listed for the STAC item is missing", product_dir / rel)
    p = result.product
    name = product_name(result)
    finest = footprint_grid(result)
    geometry, bbox = footprint(finest)
    platform, constellation, instruments = _stac_platform(result)
    d = L2Params()
    prm = result.params
    refl_scale = 1.0 / float(prm.get("reflectance_quantification", d.reflectance_quantification))
    refl_nodata = float(prm.get("reflectance_nodata", d.reflectance_nodata))
    wv_step = float(prm.get("water_vapor_quantification", d.water_vapor_quantification))
    aot_step = float(prm.get("aot_quantification", d.aot_quantification))

    item = pystac.Item(
        id=name,
        geometry=geometry,
        bbox=bbox,
        datetime=p.acquired.astimezone(timezone.utc),
        properties={},
    )
    item.common_metadata.platform = platform
    item.common_metadata.constellation = constellation
    item.common_metadata.instruments = instruments
    item.common_metadata.created = datetime.now(timezone.utc)
    item.properties.update({
        "gpumaja:muscate_platform": muscate_platform(p),
        "gpumaja:tile": p.tile,
        "gpumaja:source_product": p.product_id,
        "gpumaja:valid": bool(result.valid),
        "gpumaja:nodata_percent": _json_safe(float(result.nodata_percent)),
        "gpumaja:aot_method": result.aot_method,
        "gpumaja:lut_source": result.lut_source,
        "gpumaja:mean_aot": _json_safe(float(result.mean_aot)),
        "gpumaja:mean_water_vapour": _json_safe(float(result.mean_water_vapour)),
        "gpumaja:software_version": result.software_version or __version__,
        "gpumaja:params": _json_safe(dict(result.params)),
    })
    eo = EOExtension.ext(item, add_if_missing=True)
    eo.cloud_cover = float(min(max(result.cloud_percent, 0.0), 100.0))
    eo.snow_cover = float(min(max(result.snow_percent, 0.0), 100.0))
    ProjectionExtension.ext(item, add_if_missing=True).code = finest.crs if finest.crs.upper().startswith(
        "EPSG:") else None
    RasterExtension.add_to(item)

    gids = group_ids(result)
    for g in sorted(result.groups):
        group = result.groups[g]
        gid = gids[g]
        for code, title in (("SRE", "Surface reflectance"), ("FRE", "Flat (slope-corrected) reflectance")):
            for b in group.bands:
                key = f"{code}_{muscate_band_id(b)}"
                if key not in files:
                    continue
                asset = pystac.Asset(f"./{files[key]}", title=f"{title} {muscate_band_id(b)}",
                                     media_type=pystac.MediaType.COG, roles=["data", "reflectance"])
                EOExtension.ext(asset).bands = [Band.create(
                    name=muscate_band_id(b), common_name=COMMON_NAMES[p.sensor].get(b),
                    center_wavelength=band_info(p.sensor, b).wavelength_nm / 1000.0)]
                RasterExtension.ext(asset).bands = [RasterBand.create(
                    nodata=refl_nodata, data_type=DataType.INT16, scale=refl_scale, offset=0.0,
                    spatial_resolution=group.grid.resolution)]
                add_projection(asset, group.grid)
                item.add_asset(key, asset)
        key = f"ATB_{gid}"
        if key in files:
            asset = pystac.Asset(f"./{files[key]}", title=f"Water vapour and AOT ({gid})",
                                 media_type=pystac.MediaType.COG, roles=["data"])
            RasterExtension.ext(asset).bands = [
                RasterBand.create(nodata=0, data_type=DataType.UINT8, scale=wv_step, offset=0.0,
                                  unit="g/cm2", spatial_resolution=group.grid.resolution),
                RasterBand.create(nodata=0, data_type=DataType.UINT8, scale=aot_step, offset=0.0,
                                  spatial_resolution=group.grid.resolution),
            ]
            add_projection(asset, group.grid)
            item.add_asset(key, asset)
        for code, roles in MASK_ROLES.items():
            key = f"{code}_{gid}"
            if key in files:
                asset = pystac.Asset(f"./{files[key]}", title=f"{MASK_TITLES[code]} ({gid})",
                                     media_type=pystac.MediaType.COG, roles=list(roles))
                RasterExtension.ext(asset).bands = [RasterBand.create(
                    data_type=DataType.UINT8, spatial_resolution=group.grid.resolution)]
                add_projection(asset, group.grid)
                item.add_asset(key, asset)
    add_quicklook_and_metadata(item, files, "Quicklook (B4, B3, B2)", "MUSCATE metadata")
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def add_quicklook_and_metadata(item: pystac.Item, files: dict[str, str], quicklook_title: str,
                               metadata_title: str = "MUSCATE-like metadata") -> None:
    """The QKL_ALL (JPEG thumbnail) and MTD_ALL (XML) assets of a MUSCATE-like product, when in `files`."""
    if "QKL_ALL" in files:
        item.add_asset("QKL_ALL", pystac.Asset(f"./{files['QKL_ALL']}", title=quicklook_title,
                                               media_type=pystac.MediaType.JPEG, roles=["thumbnail", "overview"]))
    if "MTD_ALL" in files:
        item.add_asset("MTD_ALL", pystac.Asset(f"./{files['MTD_ALL']}", title=metadata_title,
                                               media_type=XML_MEDIA_TYPE, roles=["metadata"]))


__all__ = ["add_projection", "add_quicklook_and_metadata", "footprint", "l2a_stac_item"]
