"""Earth-Explorer XML (MAJA GIPP `.HDR` headers and `.EEF` parameter files), maja-l2a.md §4.

A GIPP file name reads `{mission}_{class}_GIP_{type}_{applicability}_{nickname}_{version}_{start}_{stop}`,
e.g. `S2A_TEST_GIP_L2TOCR_L_CONTINEN_10005_20150703_21000101.HDR` or
`S2__TEST_GIP_L2SITE_S_31TJF____10001_00000000_99999999.EEF` (mission `S2_`: any Sentinel-2). A LUT is a
`.HDR` plus a `.DBL.DIR` folder of headerless float32 files listed in
`Variable_Header/Specific_Product_Header/DBL_Organization/List_of_Packaged_DBL_Files`; its axes are the
children of `LUT_Indexes` (space-separated values), in file order. Parameter files (`.EEF`) keep their values
under `Earth_Explorer_File/Data_Block`. Parsing goes through `gpumaja.io.xml` (defusedxml).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree.ElementTree import Element

import numpy as np

from gpumaja.errors import CorruptFileError
from gpumaja.io.xml import find_local, local, parse_xml

_NAME_RE = re.compile(
    r"^(?P<mission>[A-Z0-9]+?)_*_(?P<file_class>[A-Z0-9]{4})_GIP_(?P<file_type>[A-Z0-9]{6})_"
    r"(?P<applicability>[A-Z])_(?P<nickname>[A-Z0-9_]{8})_(?P<version>\d{5})_(?P<start>\d{8})_(?P<stop>\d{8})"
    r"(?P<ext>(?:\.[A-Za-z]+)*)$"
)


@dataclass(frozen=True)
class GippName:
    """The fields of a GIPP file name."""

    mission: str  # "S2A", "S2B", "S2" (from "S2_": any Sentinel-2), "L8", ...
    file_class: str  # "TEST", "OPER", ...
    file_type: str  # "L2TOCR", "L2COMM", ...
    applicability: str  # "L" (list of sites) or "S" (one site)
    nickname: str  # "CONTINEN" (aerosol model of a LUT), "ALLSITES", "31TJF" (underscores stripped)
    version: str  # "10005"
    start: str
    stop: str
    ext: str  # ".HDR", ".EEF", ".DBL", ".DBL.DIR" or ""


def parse_gipp_name(name: str) -> GippName | None:
    """The fields of a GIPP file name, or None when `name` is not one."""
    m = _NAME_RE.match(name)
    if m is None:
        return None
    g = m.groupdict()
    return GippName(
        mission=g["mission"], file_class=g["file_class"], file_type=g["file_type"],
        applicability=g["applicability"], nickname=g["nickname"].strip("_"), version=g["version"],
        start=g["start"], stop=g["stop"], ext=g["ext"].upper(),
    )


def fixed_header(root: Element) -> dict[str, str]:
    """Text of the direct children of `Fixed_Header` (File_Name, File_Type, Mission, File_Version, ...)."""
    fh = find_local(root, "Fixed_Header")
    if fh is None:
        return {}
    return {local(el.tag): (el.text or "").strip() for el in fh if len(el) == 0}


def float_values(text: str | None, what: str, label: str | Path) -> np.ndarray:
    """Space-separated numbers as float64; CorruptFileError naming the element when one is not a number."""
    try:
        values = np.array([float(v) for v in (text or "").split()], dtype=np.float64)
    except ValueError as exc:
        raise CorruptFileError(f"<{what}> holds a value that is not a number ({exc})", label) from None
    if values.size == 0:
        raise CorruptFileError(f"<{what}> is empty", label)
    return values


def lut_indexes(root: Element, label: str | Path) -> list[tuple[str, np.ndarray]]:
    """The LUT axes in header order: [(name without "_Indexes", float64 values), ...]."""
    el = find_local(root, "LUT_Indexes")
    if el is None or len(el) == 0:
        raise CorruptFileError("missing or empty <LUT_Indexes>", label)
    axes = []
    for child in el:
        name = local(child.tag)
        axes.append((name.removesuffix("_Indexes"), float_values(child.text, name, label)))
    return axes


def packaged_files(root: Element, label: str | Path) -> list[str]:
    """Relative paths of `Packaged_DBL_File` entries, sorted by their `sn` attribute (file order if absent).

    Absolute paths and paths climbing out with '..' are refused (CorruptFileError).
    """
    lst = find_local(root, "List_of_Packaged_DBL_Files")
    if lst is None:
        raise CorruptFileError("missing <List_of_Packaged_DBL_Files>", label)
    entries = []
    for pos, el in enumerate(e for e in lst if local(e.tag) == "Packaged_DBL_File"):
        rel = find_local(el, "Relative_File_Path")
        if rel is None or not (rel.text or "").strip():
            raise CorruptFileError(f"Packaged_DBL_File #{pos + 1} has no <Relative_File_Path>", label)
        text = rel.text.strip().replace("\\", "/")
        p = PurePosixPath(text)
        if p.is_absolute() or ".." in p.parts:
            raise CorruptFileError(f"Packaged_DBL_File path {text!r} leaves the GIPP folder", label)
        sn = el.get("sn")
        try:
            key = int(sn) if sn is not None else pos + 1
        except ValueError:
            raise CorruptFileError(f"Packaged_DBL_File sn={sn!r} is not an integer", label) from None
        entries.append((key, pos, text))
    if not entries:
        raise CorruptFileError("<List_of_Packaged_DBL_Files> lists no file", label)
    return [text for _, _, text in sorted(entries)]


def data_block(root: Element, label: str | Path) -> Element:
    """The `Data_Block` element of an `.EEF` file."""
    block = find_local(root, "Data_Block")
    if block is None:
        raise CorruptFileError("missing <Data_Block> (not an Earth-Explorer parameter file?)", label)
    return block


def find_path(root: Element, path: str) -> Element | None:
    """First element matching `path` = "A/B/C" where each step is a descendant (namespaces ignored)."""
    current: list[Element] = [root]
    for step in path.split("/"):
        found = None
        for base in current:
            for el in base.iter():
                if el is not base and local(el.tag) == step:
                    found = el
                    break
            if found is not None:
                break
        if found is None:
            return None
        current = [found]
    return current[0]


def read_eef(path: str | Path) -> Element:
    """Root element of an Earth-Explorer file (`.HDR` or `.EEF`)."""
    return parse_xml(path)
