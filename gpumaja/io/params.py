"""L2 parameters from a file: a TOML file of overrides or a MAJA L2COMM/L2SITE `.EEF`.

TOML: `field = value` pairs naming `gpumaja.model.params.L2Params` fields, at the top level or all under one
`[l2]` table, e.g.

    [l2]
    cloud_blue_reflectance_threshold = 0.2
    env_corr_radius = 5
    nir_band = "B08"

Unknown keys and values of the wrong type are an InputError naming the file and the keys. Integers are
accepted for float fields; booleans are not numbers here. An `.EEF` goes through
`gpumaja.io.gipp.l2params_from_l2comm` (MAJA tag -> field table `L2COMM_FIELDS`).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.gipp import l2params_from_l2comm
from gpumaja.model.params import L2Params

try:  # Python >= 3.11
    import tomllib
except ImportError:  # pragma: no cover - Python 3.10
    tomllib = None  # type: ignore[assignment]

TOML_TABLE = "l2"


def _type_problem(value: Any, default: Any) -> str | None:
    """None if `value` fits a field whose default is `default`, else the expected type's name."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "a boolean"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "an integer"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "a string"
    return None


def overrides_from_toml(path: str | Path) -> dict[str, Any]:
    """{L2Params field: value} from a TOML file, type-checked (floats converted from integers)."""
    path = Path(path)
    if tomllib is None:
        raise InputError("reading TOML parameter files needs Python >= 3.11 (tomllib)", path)
    try:
        with path.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise CorruptFileError(f"not valid TOML: {exc}", path) from None
    if TOML_TABLE in doc and isinstance(doc[TOML_TABLE], dict):
        others = sorted(k for k in doc if k != TOML_TABLE)
        if others:
            raise InputError(
                f"keys outside the [{TOML_TABLE}] table: {', '.join(others)} (put every parameter under [l2])",
                path,
            )
        doc = doc[TOML_TABLE]
    defaults = {f.name: f.default for f in fields(L2Params)}
    unknown = sorted(k for k in doc if k not in defaults)
    if unknown:
        raise InputError(f"unknown L2 parameter(s): {', '.join(unknown)}", path)
    wrong = []
    out: dict[str, Any] = {}
    for key, value in doc.items():
        problem = _type_problem(value, defaults[key])
        if problem is not None:
            wrong.append(f"{key} = {value!r} (expected {problem})")
            continue
        out[key] = float(value) if isinstance(defaults[key], float) else value
    if wrong:
        raise InputError(f"wrong type for L2 parameter(s): {'; '.join(wrong)}", path)
    return out


def read_params(path: str | Path, base: L2Params | None = None) -> L2Params:
    """L2 parameters: `base` (default: the operational defaults) overridden by a `.toml` file or by the values
    of a MAJA L2COMM/L2SITE `.EEF` (dispatch on the suffix, case-insensitive)."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("parameter file not found", path)
    base = L2Params() if base is None else base
    suffix = path.suffix.lower()
    if suffix == ".eef":
        return l2params_from_l2comm(path, base)
    if suffix == ".toml":
        overrides = overrides_from_toml(path)
        try:
            return base.replace(**overrides)
        except ValueError as e:  # a value outside a parameter's allowed set (L2Params.__post_init__)
            raise InputError(str(e), path) from None
    raise InputError(f"unknown parameter file type {path.suffix!r}; expected .toml or a MAJA L2COMM .EEF", path)
