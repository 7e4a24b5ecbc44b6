"""Read and write our 6S LUT files (`.npz`, compressed) and find the LUTs shipped in the package.

A LUT file holds the arrays of `gpumaja.atmosphere.sixs_lut.SixSTables` plus a JSON `meta` string
(builder, 6S and Py6S versions, grid, spectral responses, build date) and a format version. The
default LUTs (S2A, S2B, L8) live in `gpumaja/data/luts/` inside the package.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import fields
from importlib import resources
from pathlib import Path

import numpy as np

from gpumaja.atmosphere.sixs_lut import SixSLUT, SixSTables
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.atomic_file import atomic_file

FORMAT = "gpumaja-6s-lut"
FORMAT_VERSION = 1
_ARRAY_FIELDS = ("sun_zenith", "rel_azimuth", "altitude", "aot", "path_nadir", "path_off", "t_sun",
                 "t_view_off", "albedo", "tau", "smac_table", "watv_table", "watv_sun_zenith",
                 "watv_view_zenith", "watv_ratio")
_REQUIRED_ARRAYS = tuple(k for k in _ARRAY_FIELDS if not k.startswith("watv"))


def save_lut(tables: SixSTables, path: Path) -> Path:
    """Write atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {
        "format": FORMAT, "version": FORMAT_VERSION, "sensor": tables.sensor, "bands": list(tables.bands),
        "gas_bands": list(tables.gas_bands), "view_zenith_off": tables.view_zenith_off,
        "wv_band": tables.wv_band, "wv_reference_band": tables.wv_reference_band, "meta": tables.meta,
    }
    arrays = {k: getattr(tables, k) for k in _ARRAY_FIELDS if getattr(tables, k) is not None}
    with atomic_file(path) as fh:
        np.savez_compressed(fh, header=np.frombuffer(json.dumps(header).encode(), np.uint8), **arrays)
    return path


def read_lut_tables(path: Path) -> SixSTables:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("LUT file not found", path)
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptFileError(f"not a readable gpumaja LUT file ({exc})", path) from exc
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise CorruptFileError("not a gpumaja LUT file (a single array, not an .npz archive)", path)
    try:
        with z:
            if "header" not in z.files:
                raise CorruptFileError("not a gpumaja LUT file (no header)", path)
            header = json.loads(bytes(z["header"]).decode())
            arrays = {k: z[k] for k in _ARRAY_FIELDS if k in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptFileError(f"not a readable gpumaja LUT file ({exc})", path) from exc
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        fmt = header.get("format") if isinstance(header, dict) else None
        raise CorruptFileError(f"not a gpumaja LUT file (format {fmt!r})", path)
    if header.get("version") != FORMAT_VERSION:
        raise CorruptFileError(f"LUT format version {header.get('version')} (this gpumaja reads {FORMAT_VERSION})", path)
    missing = [k for k in ("sensor", "bands", "gas_bands", "view_zenith_off") if k not in header]
    missing += [k for k in _REQUIRED_ARRAYS if k not in arrays]
    if missing:
        raise CorruptFileError(f"LUT file lacks {', '.join(missing)}", path)
    kw = {f.name: arrays.get(f.name) for f in fields(SixSTables) if f.name in _ARRAY_FIELDS}
    return SixSTables(
        sensor=header["sensor"], bands=tuple(header["bands"]), view_zenith_off=float(header["view_zenith_off"]),
        gas_bands=tuple(header["gas_bands"]), wv_band=header.get("wv_band"),
        wv_reference_band=header.get("wv_reference_band"), meta=header.get("meta", {}), **kw,
    )


def load_lut(path: Path) -> SixSLUT:
    tables = read_lut_tables(path)
    return SixSLUT(tables, source=f"gpumaja 6S LUT {tables.sensor} continental ({Path(path).name})")


def default_lut_path(sensor: str) -> Path:
    """The LUT shipped for a sensor key ("S2A", "S2B", "L8"); L9 and S2C fall back with a warning
    by the caller (see `gpumaja.pipeline.luts`)."""
    root = resources.files("gpumaja") / "data" / "luts"
    path = Path(str(root / f"gpumaja_6S_{sensor}_CONTINEN.npz"))
    if not path.is_file():
        shipped = sorted(p.name for p in Path(str(root)).glob("*.npz")) if Path(str(root)).is_dir() else []
        raise InputError(
            f"no default LUT for sensor {sensor} (shipped: {', '.join(shipped) or 'none'}); build one with "
            f"'gpumaja lut build --sensor {sensor}' and pass it with --lut, or give a MAJA GIPP set with --gipp",
            path,
        )
    return path
