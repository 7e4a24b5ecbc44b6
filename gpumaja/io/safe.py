"""Sentinel-2 Level-1C SAFE reader: a `*.SAFE` folder, or a `.zip` holding one.

`read_safe` reads MTD_MSIL1C.xml (platform, orbit, baseline, quantification, radiometric offsets,
solar irradiance, special values, band files) and GRANULE/*/MTD_TL.xml (tile, CRS, tile geocoding,
sensing time, sun and viewing angle grids), and takes each resolution group's grid from the band
files' own headers. A product whose band files cover only part of the tile (e.g. crops) is read as a
window of the tile: every group gets its nominal resolution (10/20/60 m) over the files' footprint and
`extra["window"]` is "true".

Acquisition time: MTD_TL.xml SENSING_TIME (the tile's own sensing time, which is what MAJA and the
MUSCATE product names use), else PRODUCT_START_TIME / DATATAKE_SENSING_START of MTD_MSIL1C.xml.
"""

from __future__ import annotations

import re
import zipfile
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import Element

from affine import Affine

from gpumaja.errors import CorruptFileError, MissingFileError, UnknownProductError
from gpumaja.io.archive import DirSource, ProductSource, ZipSource
from gpumaja.io.bands import file_grid
from gpumaja.io.safe_angles import S2_BAND_IDS, read_sun_angles, read_view_angles
from gpumaja.io.xml import find_local, findall_local, parse_xml, require_text
from gpumaja.model.bands import GROUP_RESOLUTION, S2_BANDS
from gpumaja.model.grids import Grid
from gpumaja.model.product import BandRadiometry, L1CProduct

MTD = "MTD_MSIL1C.xml"
_BAND_RE = re.compile(r"_(B0[1-9]|B1[0-2]|B8A)$")
_TILE_RE = re.compile(r"_T(\d{2}[A-Z]{3})(?:_|$)")
_TIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]00:?00)?$")
_GROUP = {b.name: b.group for b in S2_BANDS}


# --------------------------------------------------------------------------------------- detection
def _zip_mtd_members(names: list[str]) -> list[str]:
    """Members named MTD_MSIL1C.xml at the archive root or one folder down."""
    return [n for n in names if PurePosixPath(n).name == MTD and len(PurePosixPath(n).parts) <= 2]


def is_safe(path: str | Path) -> bool:
    """Cheap test: a SAFE folder (or its MTD_MSIL1C.xml), or a zip holding one. Never raises."""
    p = Path(path)
    try:
        if p.is_dir():
            return p.name.upper().endswith(".SAFE") or (p / MTD).is_file()
        if p.is_file():
            if p.name == MTD:
                return True
            if p.suffix.lower() != ".zip":
                return False
            if p.name.upper().endswith(".SAFE.ZIP"):
                return True
            with zipfile.ZipFile(p) as zf:
                return bool(_zip_mtd_members(zf.namelist()))
    except (OSError, zipfile.BadZipFile, ValueError):
        return False
    return False


def _open_source(path: Path) -> ProductSource:
    """A source rooted at the SAFE folder (inside the zip for an archive)."""
    if not path.exists():
        raise MissingFileError("no such file or folder", path)
    if path.is_file() and path.name == MTD:
        path = path.parent
    if path.is_dir():
        if not (path / MTD).is_file():
            if (path / "MTD_MSIL2A.xml").is_file():
                raise UnknownProductError("a Sentinel-2 Level-2A SAFE; gpumaja reads Level-1C products", path)
            if path.name.upper().endswith(".SAFE"):
                raise MissingFileError("file not found", path / MTD)
            raise UnknownProductError(f"not a Sentinel-2 L1C SAFE (no {MTD})", path)
        return DirSource(path)
    if path.suffix.lower() != ".zip":
        raise UnknownProductError("not a Sentinel-2 L1C SAFE folder or .zip", path)
    src = ZipSource(path)
    try:
        found = _zip_mtd_members(src.all_members())
        if len(found) > 1:
            raise UnknownProductError(f"the archive holds several products: {', '.join(found)}", path)
        if not found:
            tops = {PurePosixPath(n).parts[0] for n in src.all_members() if len(PurePosixPath(n).parts) > 1}
            safes = sorted(t for t in tops if t.upper().endswith(".SAFE"))
            if safes or path.name.upper().endswith(".SAFE.ZIP"):
                prefix = f"{safes[0]}/" if safes else ""
                raise MissingFileError("file not found in archive", f"{path}!/{prefix}{MTD}")
            raise UnknownProductError(f"not a Sentinel-2 L1C SAFE archive (no {MTD})", path)
        src.prefix = found[0][: -len(MTD)]
        return src
    except BaseException:
        src.close()
        raise


# ------------------------------------------------------------------------------------------ helpers
def _float(root: Element, name: str, label: str) -> float:
    text = require_text(root, name, label)
    try:
        return float(text)
    except ValueError:
        raise CorruptFileError(f"<{name}> is not a number: {text!r}", label) from None


def parse_time(text: str, label: str) -> datetime:
    """ISO-8601 UTC time of the S2 metadata ('2024-01-20T10:58:50.500329Z') as aware datetime."""
    m = _TIME_RE.match(text.strip())
    if m is None:
        raise CorruptFileError(f"bad UTC time {text!r}", label)
    frac = (m.group(3) or "0")[:6].ljust(6, "0")
    try:
        base = datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}")
    except ValueError:
        raise CorruptFileError(f"bad UTC time {text!r}", label) from None
    return base.replace(microsecond=int(frac), tzinfo=timezone.utc)


def _baseline_tuple(text: str, label: str) -> tuple[int, int]:
    m = re.fullmatch(r"N?(\d{1,2})\.(\d{1,2})", text.strip())
    if m is None:
        raise CorruptFileError(f"bad PROCESSING_BASELINE {text!r}", label)
    return int(m.group(1)), int(m.group(2))


def _per_band(root: Element, tag: str, attr: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for el in findall_local(root, tag):
        try:
            out[S2_BAND_IDS[int(el.get(attr, ""))]] = float((el.text or "").strip())
        except (ValueError, KeyError):
            raise CorruptFileError(f"bad <{tag} {attr}={el.get(attr)!r}>{el.text}</{tag}>", label) from None
    return out


def _band_files(root: Element, src: ProductSource, label: str) -> dict[str, str]:
    """Band name -> member path (relative to the SAFE root) from Product_Organisation IMAGE_FILE."""
    files: dict[str, str] = {}
    for el in findall_local(root, "IMAGE_FILE"):
        rel = (el.text or "").strip()
        parts = PurePosixPath(rel).parts
        if not rel or rel.startswith("/") or "\\" in rel or ".." in parts or re.match(r"^[A-Za-z]:", rel):
            raise CorruptFileError(f"bad IMAGE_FILE path {rel!r}", label)
        stem = rel[:-4] if rel.lower().endswith(".jp2") else rel
        m = _BAND_RE.search(stem)
        if m is None:
            continue  # TCI and other files the L2A chain does not use
        files[m.group(1)] = stem + ".jp2"
    if not files:
        raise CorruptFileError("no band IMAGE_FILE in Product_Organisation", label)
    return files


def _tile_grid(tl: Element, crs: str, label: str) -> Grid:
    size = next((e for e in findall_local(tl, "Size") if e.get("resolution") == "10"), None)
    geo = next((e for e in findall_local(tl, "Geoposition") if e.get("resolution") == "10"), None)
    if size is None or geo is None:
        raise CorruptFileError('missing <Size>/<Geoposition resolution="10">', label)
    try:
        transform = Affine(
            _float(geo, "XDIM", label),
            0.0,
            _float(geo, "ULX", label),
            0.0,
            _float(geo, "YDIM", label),
            _float(geo, "ULY", label),
        )
        return Grid(
            crs, transform, int(require_text(size, "NCOLS", label)), int(require_text(size, "NROWS", label))
        )
    except ValueError as exc:
        raise CorruptFileError(f"bad tile geocoding: {exc}", label) from exc


def _group_grids(src: ProductSource, files: dict[str, str], tile: Grid) -> tuple[dict[str, Grid], bool]:
    """Grid of each resolution group from the band headers; True when it is a window of the tile."""
    grids: dict[str, Grid] = {}
    first: dict[str, str] = {}
    window = False
    for name, rel in files.items():
        group, label = _GROUP[name], src.label(rel)
        nominal = GROUP_RESOLUTION["S2"][group]
        g = file_grid(src.gdal_path(rel))
        if abs(g.resolution - nominal) > 1e-6 * nominal:
            try:
                g = g.rescaled(nominal)
            except ValueError as exc:
                raise CorruptFileError(f"footprint cannot be brought to {nominal:g} m: {exc}", label) from exc
        if g.crs != tile.crs:
            raise CorruptFileError(f"file CRS {g.crs} is not the tile's {tile.crs}", label)
        if not tile.contains(g):
            raise CorruptFileError(f"footprint {g.bounds} lies outside the tile {tile.bounds}", label)
        if group not in grids:
            grids[group], first[group] = g, name
        elif grids[group] != g:
            raise CorruptFileError(
                f"footprint {g.bounds} differs from the one of {first[group]} {grids[group].bounds} "
                f"in group {group}",
                label,
            )
        window = window or g.bounds != tile.bounds
    return grids, window


# --------------------------------------------------------------------------------------------- read
def read_safe(path: str | Path) -> L1CProduct:
    """Metadata of a Sentinel-2 L1C SAFE folder or zipped SAFE (no pixel is read)."""
    path = Path(path)
    with _open_source(path) as src:
        mtd_label = src.label(MTD)
        mtd = parse_xml(src.read_bytes(MTD), mtd_label)

        craft = require_text(mtd, "SPACECRAFT_NAME", mtd_label).upper()
        if not re.fullmatch(r"SENTINEL-2[A-Z]", craft):
            raise CorruptFileError(f"unknown SPACECRAFT_NAME {craft!r}", mtd_label)
        try:
            orbit = int(require_text(mtd, "SENSING_ORBIT_NUMBER", mtd_label))
        except ValueError:
            raise CorruptFileError("SENSING_ORBIT_NUMBER is not an integer", mtd_label) from None
        baseline = require_text(mtd, "PROCESSING_BASELINE", mtd_label)
        quant = _float(mtd, "QUANTIFICATION_VALUE", mtd_label)
        if quant <= 0:
            raise CorruptFileError(f"QUANTIFICATION_VALUE must be positive, got {quant:g}", mtd_label)
        offsets = _per_band(mtd, "RADIO_ADD_OFFSET", "band_id", mtd_label)
        if (
            _baseline_tuple(baseline, mtd_label) >= (4, 0)
            and find_local(mtd, "Radiometric_Offset_List") is None
        ):
            raise CorruptFileError(
                f"baseline {baseline} (>= 04.00) needs <Radiometric_Offset_List>", mtd_label
            )
        irradiance = _per_band(mtd, "SOLAR_IRRADIANCE", "bandId", mtd_label)
        special = {
            (find_local(e, "SPECIAL_VALUE_TEXT").text or "").strip(): (
                find_local(e, "SPECIAL_VALUE_INDEX").text or ""
            )
            for e in findall_local(mtd, "Special_Values")
            if find_local(e, "SPECIAL_VALUE_TEXT") is not None
            and find_local(e, "SPECIAL_VALUE_INDEX") is not None
        }
        try:
            nodata, saturated = int(special.get("NODATA", 0)), int(special.get("SATURATED", 65535))
        except ValueError:
            raise CorruptFileError(f"bad Special_Values {special}", mtd_label) from None
        files = _band_files(mtd, src, mtd_label)
        granules = {PurePosixPath(r).parts[:2] for r in files.values()}
        if len(granules) != 1 or next(iter(granules))[0] != "GRANULE":
            raise UnknownProductError(
                "expected one GRANULE/<granule>/ holding every band (single-tile SAFE)", mtd_label
            )
        granule = "/".join(next(iter(granules)))
        for rel in files.values():
            if not src.exists(rel):
                raise MissingFileError("band file not found", src.label(rel))

        tl_rel = f"{granule}/MTD_TL.xml"
        tl_label = src.label(tl_rel)
        if not src.exists(tl_rel):
            raise MissingFileError("file not found", tl_label)
        tl = parse_xml(src.read_bytes(tl_rel), tl_label)
        tile_id = require_text(tl, "TILE_ID", tl_label)
        m = _TILE_RE.search(tile_id)
        if m is None:
            raise CorruptFileError(f"no MGRS tile code in TILE_ID {tile_id!r}", tl_label)
        crs = require_text(tl, "HORIZONTAL_CS_CODE", tl_label).upper()
        tile_grid = _tile_grid(tl, crs, tl_label)
        sensing = find_local(tl, "SENSING_TIME")
        if sensing is not None and (sensing.text or "").strip():
            acquired = parse_time(sensing.text, tl_label)
        else:
            start = find_local(mtd, "PRODUCT_START_TIME")
            if start is None:
                start = find_local(mtd, "DATATAKE_SENSING_START")
            if start is None or not (start.text or "").strip():
                raise CorruptFileError("missing element <SENSING_TIME>", tl_label)
            acquired = parse_time(start.text, mtd_label)
        ulx, uly = tile_grid.transform.c, tile_grid.transform.f
        sun = read_sun_angles(tl, crs, ulx, uly, tl_label)
        view = read_view_angles(tl, crs, ulx, uly, tl_label)
        missing_view = [b for b in files if b not in view]
        if missing_view:
            raise CorruptFileError(f"no viewing angle grid for band(s) {', '.join(missing_view)}", tl_label)

        grids, window = _group_grids(src, files, tile_grid)
        radiometry = {
            b: BandRadiometry(1.0 / quant, offsets.get(b, 0.0) / quant, 1.0, irradiance.get(b, float("nan")))
            for b in files
        }
        if _baseline_tuple(baseline, mtd_label) >= (4, 0):
            lacking = [b for b in files if b not in offsets]
            if lacking:
                raise CorruptFileError(f"no RADIO_ADD_OFFSET for band(s) {', '.join(lacking)}", mtd_label)

        extra = {"window": "true" if window else "false", "tile_id": tile_id}
        for key, tag, root in (
            ("earth_sun_u", "U", mtd),
            ("datastrip_id", "DATASTRIP_ID", tl),
            ("datatake_start", "DATATAKE_SENSING_START", mtd),
            ("orbit_direction", "SENSING_ORBIT_DIRECTION", mtd),
        ):
            el = find_local(root, tag)
            if el is not None and (el.text or "").strip():
                extra[key] = el.text.strip()
        if isinstance(src, ZipSource):
            extra["archive"] = "zip"

        product_id = _product_id(path, src, mtd)
        bands_in_order = {b.name: src.gdal_path(files[b.name]) for b in S2_BANDS if b.name in files}
        return L1CProduct(
            path=path,
            sensor="S2",
            platform=craft,
            tile=f"T{m.group(1)}",
            acquired=acquired,
            orbit=orbit,
            processing_baseline=baseline,
            product_id=product_id,
            band_files=bands_in_order,
            radiometry={b: radiometry[b] for b in bands_in_order},
            grids=dict(sorted(grids.items())),
            sun=sun,
            view={b: view[b] for b in bands_in_order},
            nodata_dn=nodata,
            saturated_dn=saturated,
            quantification=quant,
            tile_grid=tile_grid,
            extra=extra,
        )


def _product_id(path: Path, src: ProductSource, mtd: Element) -> str:
    folder = src.prefix.rstrip("/") if isinstance(src, ZipSource) else src.root.resolve().name
    if folder.upper().endswith(".SAFE"):
        return folder[:-5]
    uri = find_local(mtd, "PRODUCT_URI")
    if uri is not None and (uri.text or "").strip():
        text = uri.text.strip()
        return text[:-5] if text.upper().endswith(".SAFE") else text
    name = folder or path.name
    for suffix in (".zip", ".SAFE"):
        if name.upper().endswith(suffix.upper()):
            name = name[: -len(suffix)]
    return name


__all__ = ["is_safe", "parse_time", "read_safe"]
