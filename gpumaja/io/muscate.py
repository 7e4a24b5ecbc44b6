"""Write one date's `L2AResult` as a MUSCATE (Theia) L2A product folder (maja-l2a.md §5, §1.12).

Layout (name = `product_name(result)`):

    <name>/<name>_SRE_<band>.tif      int16 round(rho * 10000), nodata -10000, one file per band
    <name>/<name>_FRE_<band>.tif      same for the slope-corrected reflectance
    <name>/<name>_ATB_<group>.tif     uint8, band 1 = round(W / 0.05), band 2 = round(AOT / 0.005), 0 = nodata
    <name>/<name>_QKL_ALL.jpg         B4, B3, B2 quicklook
    <name>/<name>_MTD_ALL.xml         metadata (gpumaja.io.muscate_mtd)
    <name>/<name>_STAC.json           STAC item (gpumaja.io.stac)
    <name>/MASKS/<name>_{CLM,MG2,SAT,EDG,IAB}_<group>.tif   uint8 bit masks

Band ids are MUSCATE's (B2 ... B12, B8A; Landsat B1 ... B7); groups are R1/R2 for Sentinel-2 and
XS for the single group of Landsat (as MAJA names it). Every .tif is a COG (gpumaja.io.cog):
reflectances and ATB with average overviews, masks with nearest overviews.

Encoding (the writer's only arithmetic): a pixel is nodata where its value is not finite or EDG is
set; valid reflectances are rounded to the nearest count (ties to even, NumPy's rint) and clipped to
[-9999, 32767] so that no valid pixel can read as the nodata value -10000; valid water vapour / AOT
counts are clipped to 1..255 so that none reads as the nodata 0 (a valid W below 0.025 g/cm2 is
stored as 1 = 0.05 g/cm2).

When `result.valid` is False (too cloudy or no data, §1.11), only the MTD_ALL.xml and the STAC item
(metadata asset only) are written, as MAJA writes only the metadata.

The product is written in `out_dir/.<name>.tmp-<pid>/` and renamed to `out_dir/<name>/` only when
complete; on any error the temporary folder is removed and the error re-raised. An existing product
is never touched unless `overwrite=True`.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from gpumaja.io.cog import write_cog
from gpumaja.io.muscate_mtd import (
    QUICKLOOK_BANDS,
    group_ids,
    muscate_band_id,
    muscate_platform,
    write_mtd,
    zone_id,
)
from gpumaja.io.product_folder import write_product_folder
from gpumaja.io.quicklook import write_quicklook
from gpumaja.io.stac import l2a_stac_item
from gpumaja.model.l2a import L2AGroup, L2AResult
from gpumaja.model.params import L2Params
from gpumaja.model.product import L1CProduct

log = logging.getLogger(__name__)

PRODUCT_VERSION_TAG = "V1-0"
NATURE_TAG = "C"  # MUSCATE product nature letter as in "..._T31TCJ_C_V1-0"
MASK_CODES = ("CLM", "MG2", "SAT", "EDG", "IAB")
ATB_MIN_COUNT, ATB_MAX_COUNT, ATB_NODATA = 1, 255, 0
INT16_MAX = 32767


# --------------------------------------------------------------------------------------- names
def product_name(result: L2AResult) -> str:
    """MUSCATE product name, e.g. SENTINEL2A_20240120-105850-500_L2A_T31TCJ_C_V1-0 or
    LANDSAT8-OLITIRS-XS_20150804-155911-123_L2A_020-039_C_V1-0 (acquisition time to the millisecond,
    truncated)."""
    return product_name_of(result.product)


def product_name_of(p: L1CProduct) -> str:
    """`product_name` from the L1 product alone (known before processing)."""
    t = p.acquired
    when = f"{t:%Y%m%d-%H%M%S}-{t.microsecond // 1000:03d}"
    platform = muscate_platform(p)
    if p.sensor == "LANDSAT":
        platform = f"{platform}-OLITIRS-XS"
    zone, _ = zone_id(p)
    return f"{platform}_{when}_L2A_{zone}_{NATURE_TAG}_{PRODUCT_VERSION_TAG}"


def product_files(name: str, result: L2AResult) -> dict[str, str]:
    """Every file of a valid product: key ("SRE_B2", "ATB_R1", "CLM_R1", "QKL_ALL", ...) -> path
    relative to the product folder."""
    files: dict[str, str] = {}
    gids = group_ids(result)
    for g in sorted(result.groups):
        for code in ("SRE", "FRE"):
            for b in result.groups[g].bands:
                bid = muscate_band_id(b)
                files[f"{code}_{bid}"] = f"{name}_{code}_{bid}.tif"
    for g, gid in gids.items():
        files[f"ATB_{gid}"] = f"{name}_ATB_{gid}.tif"
    for g, gid in gids.items():
        for code in MASK_CODES:
            files[f"{code}_{gid}"] = f"MASKS/{name}_{code}_{gid}.tif"
    if _quicklook_source(result) is not None:
        files["QKL_ALL"] = f"{name}_QKL_ALL.jpg"
    return files


# ------------------------------------------------------------------------------------ encoding
def _counts(values: np.ndarray, nodata_mask: np.ndarray, factor: float, lo: int, hi: int,
            nodata: int, dtype) -> np.ndarray:
    """round(values * factor) clipped to [lo, hi] as `dtype`, `nodata` where values are not finite or
    `nodata_mask` is set. Works in place on one float64 buffer (a 10980 x 10980 band: ~1 GB peak)."""
    values = np.asarray(values)
    bad = ~np.isfinite(values)
    bad |= np.asarray(nodata_mask, bool)
    counts = np.multiply(values, factor, dtype=np.float64)
    counts[bad] = 0.0
    np.rint(counts, out=counts)
    np.clip(counts, lo, hi, out=counts)
    counts[bad] = nodata
    return counts.astype(dtype)


def quantize_reflectance(rho: np.ndarray, nodata_mask: np.ndarray, quantification: float = 10000.0,
                         nodata: int = -10000) -> np.ndarray:
    """int16 counts of a reflectance array: round(rho * q) clipped to [nodata + 1, 32767]; `nodata`
    where rho is NaN or `nodata_mask` is set."""
    return _counts(rho, nodata_mask, quantification, nodata + 1, INT16_MAX, nodata, np.int16)


def quantize_atb(values: np.ndarray, nodata_mask: np.ndarray, step: float) -> np.ndarray:
    """uint8 counts round(value / step) clipped to 1..255 for valid pixels; 0 where the value is NaN
    or `nodata_mask` is set."""
    return _counts(values, nodata_mask, 1.0 / step, ATB_MIN_COUNT, ATB_MAX_COUNT, ATB_NODATA, np.uint8)


def _quicklook_source(result: L2AResult) -> tuple[L2AGroup, list[int]] | None:
    red_green_blue = QUICKLOOK_BANDS[result.product.sensor]
    for g in sorted(result.groups):
        group = result.groups[g]
        if all(b in group.bands for b in red_green_blue):
            return group, [group.bands.index(b) for b in red_green_blue]
    return None


# ------------------------------------------------------------------------------------- writing
def _write_rasters(tmp: Path, result: L2AResult, files: dict[str, str]) -> None:
    d = L2Params()
    p = result.params
    q_refl = float(p.get("reflectance_quantification", d.reflectance_quantification))
    refl_nodata = int(p.get("reflectance_nodata", d.reflectance_nodata))
    wv_step = float(p.get("water_vapor_quantification", d.water_vapor_quantification))
    aot_step = float(p.get("aot_quantification", d.aot_quantification))
    gids = group_ids(result)
    (tmp / "MASKS").mkdir()
    for g in sorted(result.groups):
        group = result.groups[g]
        edge = group.edg != 0
        for code, cube in (("SRE", group.sre), ("FRE", group.fre)):
            for i, b in enumerate(group.bands):
                bid = muscate_band_id(b)
                counts = quantize_reflectance(cube[i], edge, q_refl, refl_nodata)
                write_cog(tmp / files[f"{code}_{bid}"], counts, group.grid, np.int16, refl_nodata, "average",
                          [f"{code} {bid}"])
        gid = gids[g]
        atb = np.stack([quantize_atb(group.water_vapour, edge, wv_step),
                        quantize_atb(group.aot, edge, aot_step)])
        write_cog(tmp / files[f"ATB_{gid}"], atb, group.grid, np.uint8, ATB_NODATA, "average",
                  ["water vapour content", "aerosol optical thickness"])
        for code in MASK_CODES:
            data = getattr(group, code.lower())
            write_cog(tmp / files[f"{code}_{gid}"], np.asarray(data, np.uint8), group.grid, np.uint8, None,
                      "nearest", [code])
    source = _quicklook_source(result)
    if source is not None:
        group, idx = source
        write_quicklook(tmp / files["QKL_ALL"], group.sre[idx])


def _write_product(tmp: Path, name: str, result: L2AResult) -> None:
    files = product_files(name, result) if result.valid else {}
    if result.valid:
        _write_rasters(tmp, result, files)
    else:
        log.warning("%s is not valid (cloud %.1f %%, nodata %.1f %%): writing the metadata only",
                    name, result.cloud_percent, result.nodata_percent)
    mtd_rel = f"{name}_MTD_ALL.xml"
    (tmp / mtd_rel).write_bytes(write_mtd(result, name, files))
    item = l2a_stac_item(tmp, result, {**files, "MTD_ALL": mtd_rel})
    (tmp / f"{name}_STAC.json").write_text(json.dumps(item, indent=1) + "\n", encoding="utf-8")


def write_l2a(result: L2AResult, out_dir: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write `result` as `out_dir/<product_name(result)>/` and return that folder.

    InputError when the product folder exists and `overwrite` is False. The folder appears only when
    complete (written under a temporary name, then renamed); nothing is left behind on failure.
    """
    name = product_name(result)
    return write_product_folder(out_dir, name, lambda tmp: _write_product(tmp, name, result), overwrite)


__all__ = ["product_files", "product_name", "quantize_atb", "quantize_reflectance", "write_l2a"]
