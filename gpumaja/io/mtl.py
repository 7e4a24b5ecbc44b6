"""Landsat Level-1 metadata (MTL) in its three layouts, normalised into one `MtlInfo`.

Layouts read:

- Collection 2 ``*_MTL.txt`` (ODL text): ``GROUP = LANDSAT_METADATA_FILE`` holding ``PRODUCT_CONTENTS``
  (product id, file names), ``IMAGE_ATTRIBUTES`` (spacecraft, WRS path/row, date, sun angles),
  ``PROJECTION_ATTRIBUTES``, ``LEVEL1_PROCESSING_RECORD`` (scene id, software version) and
  ``LEVEL1_RADIOMETRIC_RESCALING`` (REFLECTANCE_MULT/ADD_BAND_n).
- Collection 2 ``*_MTL.json``: the same groups as nested JSON objects under ``"LANDSAT_METADATA_FILE"``;
  USGS writes every leaf as a string ("WRS_PATH": "198"), numbers are accepted too.
- Pre-collection (and Collection 1) ``*_MTL.txt``: ``GROUP = L1_METADATA_FILE`` holding
  ``METADATA_FILE_INFO``, ``PRODUCT_METADATA`` (spacecraft, path/row, date, file names),
  ``IMAGE_ATTRIBUTES`` (sun angles) and ``RADIOMETRIC_RESCALING``.

`parse_odl` also reads the ``*_ANG.txt`` angle-coefficient file (same ODL syntax, with parenthesised
lists spanning several lines), which `gpumaja.io.landsat` uses for the satellite ephemeris.

Every required key that is missing or garbled raises `CorruptFileError` naming the file and the key.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from gpumaja.errors import CorruptFileError, MissingFileError

# OLI reflective bands the L2A chain uses (B8, panchromatic, and the TIRS bands B10/B11 are not).
REFLECTIVE_BAND_NUMBERS = (1, 2, 3, 4, 5, 6, 7, 9)

LAYOUT_C2_TXT = "C2_TXT"
LAYOUT_C2_JSON = "C2_JSON"
LAYOUT_PRE_COLLECTION = "PRE_COLLECTION"  # L1_METADATA_FILE: pre-collection and Collection 1

C2_ROOT = "LANDSAT_METADATA_FILE"
OLD_ROOT = "L1_METADATA_FILE"

# Collection-2 per-pixel angle bands (band 4 geometry), key in MtlInfo.angle_files -> MTL key.
ANGLE_BAND_KEYS = {
    "VAA": "FILE_NAME_ANGLE_SENSOR_AZIMUTH_BAND_4",
    "VZA": "FILE_NAME_ANGLE_SENSOR_ZENITH_BAND_4",
    "SAA": "FILE_NAME_ANGLE_SOLAR_AZIMUTH_BAND_4",
    "SZA": "FILE_NAME_ANGLE_SOLAR_ZENITH_BAND_4",
}
QA_KEYS = {
    "QA_PIXEL": "FILE_NAME_QUALITY_L1_PIXEL",
    "QA_RADSAT": "FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION",
    "BQA": "FILE_NAME_BAND_QUALITY",
}

# Where each fact lives, per layout: groups searched first, in order (then the whole tree).
_C2_GROUPS = {
    "product": ("PRODUCT_CONTENTS", "LEVEL1_PROCESSING_RECORD"),
    "image": ("IMAGE_ATTRIBUTES",),
    "record": ("LEVEL1_PROCESSING_RECORD", "PRODUCT_CONTENTS"),
    "rescaling": ("LEVEL1_RADIOMETRIC_RESCALING",),
}
_OLD_GROUPS = {
    "product": ("PRODUCT_METADATA", "METADATA_FILE_INFO"),
    "image": ("PRODUCT_METADATA", "IMAGE_ATTRIBUTES"),
    "record": ("METADATA_FILE_INFO", "PRODUCT_METADATA"),
    "rescaling": ("RADIOMETRIC_RESCALING",),
}

Tree = dict[str, Any]  # group name -> Tree, key -> str | list[str]


@dataclass(frozen=True)
class MtlInfo:
    """The facts of a Landsat MTL that the reader needs, whatever the layout."""

    path: Path  # the MTL file
    layout: str  # LAYOUT_C2_TXT | LAYOUT_C2_JSON | LAYOUT_PRE_COLLECTION
    processing_baseline: str  # "C2", "C1" or "PRE-COLLECTION"
    spacecraft: str  # SPACECRAFT_ID, e.g. "LANDSAT_8"
    sensor_id: str | None  # "OLI_TIRS", "OLI"
    product_id: str  # LANDSAT_PRODUCT_ID, else LANDSAT_SCENE_ID
    scene_id: str | None  # LANDSAT_SCENE_ID
    processing_level: str | None  # PROCESSING_LEVEL (C2) / DATA_TYPE (old), e.g. "L1TP", "L1T"
    wrs_path: int
    wrs_row: int
    acquired: datetime  # DATE_ACQUIRED + SCENE_CENTER_TIME, tz-aware UTC
    sun_elevation: float  # degrees, scene centre
    sun_azimuth: float  # degrees clockwise from north, scene centre
    earth_sun_distance: float | None  # astronomical units
    band_files: dict[int, str]  # band number -> file name (relative to the MTL's folder)
    reflectance_mult: dict[int, float]
    reflectance_add: dict[int, float]
    angle_files: dict[str, str] = field(default_factory=dict)  # "VAA"/"VZA"/"SAA"/"SZA" -> file name
    ang_file: str | None = None  # FILE_NAME_ANGLE_COEFFICIENT (*_ANG.txt)
    qa_files: dict[str, str] = field(default_factory=dict)  # "QA_PIXEL"/"QA_RADSAT"/"BQA" -> file name
    collection_number: str | None = None
    collection_category: str | None = None
    processing_software: str | None = None  # PROCESSING_SOFTWARE_VERSION

    @property
    def folder(self) -> Path:
        return self.path.parent

    @property
    def tile(self) -> str:
        """WRS-2 path and row as "PPPRRR"."""
        return f"{self.wrs_path:03d}{self.wrs_row:03d}"


# --------------------------------------------------------------------------------------------------
# ODL text


_ASSIGN = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _split_list(body: str) -> list[str]:
    """Items of an ODL list body (without the parentheses), quotes removed."""
    items = [item.strip() for item in re.split(r",(?=(?:[^\"]*\"[^\"]*\")*[^\"]*$)", body)]
    return [_unquote(item) for item in items if item]


def parse_odl(text: str, label: str | Path) -> Tree:
    """Nested dict of an ODL document (Landsat MTL.txt or ANG.txt): groups become dicts, scalar
    values strings (quotes removed), parenthesised lists (possibly spanning lines) lists of strings.
    Unbalanced groups, unterminated lists and lines that are not ``KEY = VALUE`` raise
    CorruptFileError naming `label` and the line."""
    root: Tree = {}
    stack: list[tuple[str, Tree]] = [("", root)]
    pending_key: str | None = None
    pending_body: list[str] = []
    pending_line = 0
    ended = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if pending_key is not None:
            pending_body.append(line)
            if line.endswith(")"):
                joined = " ".join(pending_body)
                stack[-1][1][pending_key] = _split_list(joined[1:-1])
                pending_key = None
            continue
        if not line or ended:
            continue
        if line == "END":
            ended = True
            continue
        m = _ASSIGN.match(line)
        if m is None:
            raise CorruptFileError(f"line {lineno}: expected 'KEY = VALUE', got {line[:60]!r}", label)
        key, value = m.group(1), m.group(2)
        if key == "GROUP":
            name = _unquote(value)
            group: Tree = {}
            stack[-1][1][name] = group
            stack.append((name, group))
        elif key == "END_GROUP":
            name = _unquote(value)
            if len(stack) == 1 or stack[-1][0] != name:
                expected = stack[-1][0] or "no open group"
                raise CorruptFileError(
                    f"line {lineno}: END_GROUP = {name} does not close the open group ({expected})", label
                )
            stack.pop()
        elif value.startswith("("):
            if value.endswith(")"):
                stack[-1][1][key] = _split_list(value[1:-1])
            else:
                pending_key, pending_body, pending_line = key, [value], lineno
        else:
            if value == "":
                raise CorruptFileError(f"line {lineno}: {key} has no value", label)
            stack[-1][1][key] = _unquote(value)
    if pending_key is not None:
        raise CorruptFileError(f"line {pending_line}: list {pending_key} is never closed with ')'", label)
    if len(stack) > 1:
        raise CorruptFileError(f"group {stack[-1][0]} is never closed (truncated file?)", label)
    return root


def _stringify(node: Any) -> Any:
    """JSON leaves as strings, the way the ODL parser gives them."""
    if isinstance(node, dict):
        return {str(k): _stringify(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_stringify(v) for v in node]
    if node is None:
        return ""
    if isinstance(node, bool):
        return str(node).upper()
    return str(node)


# --------------------------------------------------------------------------------------------------
# Lookup helpers


def _find_anywhere(tree: Tree, key: str) -> Any:
    for k, v in tree.items():
        if k == key and not isinstance(v, dict):
            return v
    for v in tree.values():
        if isinstance(v, dict):
            found = _find_anywhere(v, key)
            if found is not None:
                return found
    return None


class _Lookup:
    def __init__(self, tree: Tree, groups: dict[str, tuple[str, ...]], label: Path):
        self.tree = tree
        self.groups = groups
        self.label = label

    def get(self, key: str, where: str) -> str | None:
        for g in self.groups[where]:
            group = self.tree.get(g)
            if isinstance(group, dict):
                v = group.get(key)
                if v is not None and not isinstance(v, (dict, list)) and str(v).strip() != "":
                    return str(v).strip()
        v = _find_anywhere(self.tree, key)
        if v is None or isinstance(v, list) or str(v).strip() == "":
            return None
        return str(v).strip()

    def require(self, key: str, where: str) -> str:
        v = self.get(key, where)
        if v is None:
            raise CorruptFileError(f"missing required key {key}", self.label)
        return v

    def number(self, key: str, where: str, required: bool = True) -> float | None:
        v = self.require(key, where) if required else self.get(key, where)
        if v is None:
            return None
        try:
            x = float(v)
        except ValueError:
            raise CorruptFileError(f"key {key} is not a number: {v[:40]!r}", self.label) from None
        if not math.isfinite(x):
            raise CorruptFileError(f"key {key} is not a finite number: {v[:40]!r}", self.label)
        return x

    def integer(self, key: str, where: str) -> int:
        v = self.require(key, where)
        try:
            return int(v)
        except ValueError:
            raise CorruptFileError(f"key {key} is not an integer: {v[:40]!r}", self.label) from None


_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})$")
_TIME = re.compile(r"^(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z?$")


def _acquired(date: str, time: str, label: Path) -> datetime:
    dm = _DATE.match(date)
    if dm is None:
        raise CorruptFileError(f"key DATE_ACQUIRED is not YYYY-MM-DD: {date[:40]!r}", label)
    tm = _TIME.match(time)
    if tm is None:
        raise CorruptFileError(f"key SCENE_CENTER_TIME is not HH:MM:SS[.f]Z: {time[:40]!r}", label)
    frac = tm.group(4) or "0"
    micro = round(float("0." + frac) * 1e6)
    try:
        base = datetime(int(dm[1]), int(dm[2]), int(dm[3]), int(tm[1]), int(tm[2]), int(tm[3]),
                        tzinfo=timezone.utc)
    except ValueError as exc:
        raise CorruptFileError(f"DATE_ACQUIRED/SCENE_CENTER_TIME out of range: {exc}", label) from None
    return base + timedelta(microseconds=micro)


# --------------------------------------------------------------------------------------------------
# Public API


def read_mtl_tree(path: str | Path) -> tuple[str, Tree]:
    """(layout, tree under the root group) of an MTL file; MissingFileError / CorruptFileError."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("MTL file not found", path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path) from None
    except OSError as exc:
        raise CorruptFileError(f"cannot read: {exc}", path) from None
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CorruptFileError(f"not valid JSON: {exc}", path) from None
        if not isinstance(doc, dict) or not isinstance(doc.get(C2_ROOT), dict):
            raise CorruptFileError(f"JSON has no top-level object {C2_ROOT!r}", path)
        return LAYOUT_C2_JSON, _stringify(doc[C2_ROOT])
    tree = parse_odl(text, path)
    if isinstance(tree.get(C2_ROOT), dict):
        return LAYOUT_C2_TXT, tree[C2_ROOT]
    if isinstance(tree.get(OLD_ROOT), dict):
        return LAYOUT_PRE_COLLECTION, tree[OLD_ROOT]
    raise CorruptFileError(f"no GROUP = {C2_ROOT} or GROUP = {OLD_ROOT}: not a Landsat Level-1 MTL", path)


def parse_mtl(path: str | Path) -> MtlInfo:
    """Normalised facts of a Landsat MTL (.txt in either layout, or Collection-2 .json)."""
    path = Path(path)
    layout, tree = read_mtl_tree(path)
    lk = _Lookup(tree, _OLD_GROUPS if layout == LAYOUT_PRE_COLLECTION else _C2_GROUPS, path)

    collection_number = lk.get("COLLECTION_NUMBER", "product")
    if layout == LAYOUT_PRE_COLLECTION:
        baseline = "PRE-COLLECTION"
        if collection_number is not None and collection_number.isdigit() and int(collection_number) > 0:
            baseline = f"C{int(collection_number)}"  # Collection 1 kept the L1_METADATA_FILE layout
    else:
        baseline = "C2"

    product_id = lk.get("LANDSAT_PRODUCT_ID", "product")
    scene_id = lk.get("LANDSAT_SCENE_ID", "record")
    if product_id is None and scene_id is None:
        raise CorruptFileError("missing required key LANDSAT_PRODUCT_ID (or LANDSAT_SCENE_ID)", path)

    band_files: dict[int, str] = {}
    mult: dict[int, float] = {}
    add: dict[int, float] = {}
    for n in range(1, 12):
        name = lk.get(f"FILE_NAME_BAND_{n}", "product")
        if name is not None:
            band_files[n] = name
        m = lk.number(f"REFLECTANCE_MULT_BAND_{n}", "rescaling", required=False)
        a = lk.number(f"REFLECTANCE_ADD_BAND_{n}", "rescaling", required=False)
        if m is not None:
            mult[n] = m
        if a is not None:
            add[n] = a
    for n in REFLECTIVE_BAND_NUMBERS:
        for key, table in ((f"FILE_NAME_BAND_{n}", band_files), (f"REFLECTANCE_MULT_BAND_{n}", mult),
                           (f"REFLECTANCE_ADD_BAND_{n}", add)):
            if n not in table:
                raise CorruptFileError(f"missing required key {key}", path)
    for n, name in band_files.items():
        if "/" in name or "\\" in name or name in ("", ".", ".."):
            raise CorruptFileError(f"FILE_NAME_BAND_{n} is not a plain file name: {name!r}", path)

    angle_files = {k: v for k, key in ANGLE_BAND_KEYS.items() if (v := lk.get(key, "product")) is not None}
    qa_files = {k: v for k, key in QA_KEYS.items() if (v := lk.get(key, "product")) is not None}

    sun_elevation = lk.number("SUN_ELEVATION", "image")
    if not -90.0 <= sun_elevation <= 90.0:
        raise CorruptFileError(f"SUN_ELEVATION {sun_elevation} is outside [-90, 90]", path)
    acquired = _acquired(lk.require("DATE_ACQUIRED", "image"), lk.require("SCENE_CENTER_TIME", "image"), path)

    return MtlInfo(
        path=path,
        layout=layout,
        processing_baseline=baseline,
        spacecraft=lk.require("SPACECRAFT_ID", "image"),
        sensor_id=lk.get("SENSOR_ID", "image"),
        product_id=product_id or scene_id,  # type: ignore[arg-type]
        scene_id=scene_id,
        processing_level=lk.get("PROCESSING_LEVEL", "product") or lk.get("DATA_TYPE", "product"),
        wrs_path=lk.integer("WRS_PATH", "image"),
        wrs_row=lk.integer("WRS_ROW", "image"),
        acquired=acquired,
        sun_elevation=sun_elevation,
        sun_azimuth=lk.number("SUN_AZIMUTH", "image"),  # type: ignore[arg-type]
        earth_sun_distance=lk.number("EARTH_SUN_DISTANCE", "image", required=False),
        band_files=band_files,
        reflectance_mult=mult,
        reflectance_add=add,
        angle_files=angle_files,
        ang_file=lk.get("FILE_NAME_ANGLE_COEFFICIENT", "product"),
        qa_files=qa_files,
        collection_number=collection_number,
        collection_category=lk.get("COLLECTION_CATEGORY", "product"),
        processing_software=lk.get("PROCESSING_SOFTWARE_VERSION", "record"),
    )


def looks_like_mtl(path: Path) -> bool:
    """Cheap check: a file named *MTL.txt / *MTL.json whose first 4 kB name a Landsat MTL root group."""
    name = path.name.upper()
    if not name.endswith(("MTL.TXT", "MTL.JSON")):
        return False
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b"LANDSAT_METADATA_FILE" in head or b"L1_METADATA_FILE" in head
