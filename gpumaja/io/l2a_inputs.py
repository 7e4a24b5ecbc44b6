"""Reading MUSCATE L2A products (Theia's or gpumaja's) as inputs of L3A (WASP) and snow (LIS).

WASP and LIS read FRE (slope-corrected) reflectance, CLM/MG2 masks and the ATB AOT of one resolution
group (wasp-l3a-and-lis-snow.md §1.1, §2.1). `group_files` resolves the files of a group from the
parsed MTD_ALL.xml alone, so the inventory of a real Theia product can be checked without its rasters;
`read_group` reads them. Products holding metadata only (not valid) are reported, not read.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.muscate_mtd import find_mtd
from gpumaja.io.muscate_reader import _read
from gpumaja.model.grids import Grid

log = logging.getLogger(__name__)


def expand_l2a_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """MTD_ALL.xml paths of the inputs: product folders, MTD files, or folders holding product folders."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if not p.exists():
            raise MissingFileError("input not found", p)
        try:
            out.append(find_mtd(p))
            continue
        except MissingFileError:
            if not p.is_dir():
                raise
        children = sorted(c for c in p.iterdir() if c.is_dir() and not c.name.startswith("."))
        found = []
        for c in children:
            try:
                found.append(find_mtd(c))
            except MissingFileError:
                continue
        if not found:
            raise MissingFileError("no MUSCATE product (*_MTD_ALL.xml) in this folder or its sub-folders", p)
        out.extend(found)
    seen: set[Path] = set()
    unique = []
    for m in out:
        if m.resolve() not in seen:
            seen.add(m.resolve())
            unique.append(m)
    return unique


def group_id(meta: dict, group: str) -> str:
    groups = list(meta["groups"])
    if group in groups:
        return group
    if group in ("R1", "R2") and groups == ["XS"]:
        return "XS"
    raise InputError(f"no group {group!r} in the product (groups: {', '.join(groups) or 'none'})", meta["path"])


def group_files(meta: dict, group: str, bands: Sequence[str], image: str = "FRE") -> dict:
    """Relative paths of what WASP/LIS read for `bands` (MUSCATE ids, "B2") of `group`:
    {"bands": {id: path}, "image": "FRE"|"SRE", "CLM": path, "MG2": path, "EDG": path | None,
    "ATB": path | None, "aot_band": n}. FRE falls back to SRE (with a warning) when the product has
    no FRE; a missing band, CLM or MG2 file is an InputError naming the MTD."""
    gid = group_id(meta, group)
    mtd = meta["path"]
    listed = meta["images"].get(image) or {}
    used = image
    if not listed and image == "FRE" and meta["images"].get("SRE"):
        log.warning("%s has no FRE images: using SRE (no slope correction)", mtd.name)
        listed, used = meta["images"]["SRE"], "SRE"
    files: dict = {"bands": {}, "image": used, "group": gid}
    for b in bands:
        if b not in listed:
            raise InputError(f"no {used} file listed for band {b}", mtd)
        files["bands"][b] = listed[b]
    masks = meta["mask_files"]
    for code in ("CLM", "MG2"):
        rel = masks.get(code, {}).get(gid)
        if rel is None:
            raise InputError(f"no {code} mask file listed for group {gid}", mtd)
        files[code] = rel
    files["EDG"] = masks.get("EDG", {}).get(gid)
    files["ATB"] = meta["images"]["ATB"].get(gid)
    files["aot_band"] = meta["atb_band_numbers"]["aot"]
    return files


@dataclass(eq=False)
class GroupData:
    """One group of one L2A product, read for L3A/snow: reflectance float32 NaN = no data."""

    grid: Grid
    bands: tuple[str, ...]  # MUSCATE ids, in the order asked
    reflectance: np.ndarray  # (nb, ny, nx) float32
    clm: np.ndarray  # (ny, nx) uint8
    mg2: np.ndarray  # (ny, nx) uint8
    nodata: np.ndarray  # (ny, nx) bool: EDG set, or every band no data
    aot: np.ndarray | None  # (ny, nx) float32 AOT at 550 nm, NaN = no data; None when no ATB


def read_group(meta: dict, group: str, bands: Sequence[str], image: str = "FRE", need_aot: bool = True) -> GroupData:
    files = group_files(meta, group, bands, image)
    root = Path(meta["path"]).parent
    quant = meta["quantification"]
    if not quant.get("reflectance"):
        raise CorruptFileError("no REFLECTANCE_QUANTIFICATION_VALUE", meta["path"])
    refl_nodata = meta["nodata"]["reflectance"] if meta["nodata"]["reflectance"] is not None else -10000.0
    grid: Grid | None = None

    def check(g: Grid, f: Path) -> None:
        nonlocal grid
        if grid is None:
            grid = g
        elif g != grid:
            raise CorruptFileError(f"grid {g} differs from the group's {grid}", f)

    cube = []
    for b in bands:
        f = root / files["bands"][b]
        counts, g = _read(f)
        check(g, f)
        refl = counts.astype(np.float32) / np.float32(quant["reflectance"])
        refl[counts == refl_nodata] = np.nan
        cube.append(refl)
    masks = {}
    for code in ("CLM", "MG2", "EDG"):
        if files[code] is None:
            continue
        f = root / files[code]
        counts, g = _read(f)
        check(g, f)
        masks[code] = counts.astype(np.uint8, copy=False)
    reflectance = np.stack(cube)
    nodata = np.isnan(reflectance).all(axis=0)
    if "EDG" in masks:
        nodata |= masks["EDG"] > 0
    aot = None
    if files["ATB"] is not None:
        f = root / files["ATB"]
        counts, g = _read(f, files["aot_band"])
        check(g, f)
        aq = quant.get("aot")
        if not aq:
            raise CorruptFileError("no AEROSOL_OPTICAL_THICKNESS_QUANTIFICATION_VALUE", meta["path"])
        aot = counts.astype(np.float32) / np.float32(aq)
        nd = meta["nodata"]["aot"] if meta["nodata"]["aot"] is not None else 0.0
        aot[counts == nd] = np.nan
    elif need_aot:
        raise InputError(f"no ATB file listed for group {files['group']}", meta["path"])
    assert grid is not None
    return GroupData(grid, tuple(bands), reflectance, masks["CLM"], masks["MG2"], nodata, aot)


__all__ = ["GroupData", "expand_l2a_inputs", "group_files", "group_id", "read_group"]
