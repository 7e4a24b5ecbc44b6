"""The `gpumaja batch` manifest: the tile series to process, one entry per tile.

Two forms, told apart by the suffix `.json` or by a first non-blank character `{`:

- JSON::

      {"tiles": [
        {"tile": "T31TCJ", "inputs": ["T31TCJ/", "more/S2B_MSIL1C_...SAFE"], "dem": "dem/T31TCJ.tif"},
        {"inputs": "T31TCK/", "gipp": "gipp/", "params": "site.toml"}
      ]}

  `inputs` (required): one path or a list of paths, each an L1C product (SAFE folder or .zip, Landsat
  folder) or a folder of them; `tile` (optional): the tile id, checked against the products (else
  taken from them); `dem`, `gipp`, `lut`, `params` (optional): as the options of `gpumaja l2a`.
- plain text: one line per tile series, the folder holding that tile's L1C products; blank lines and
  `#` comments (a whole line, or after a blank) are ignored.

Relative paths are resolved against the manifest's folder. Every check runs before anything is
processed (`read_manifest`): a missing path, an empty manifest or entry, an unknown key, a bad or
duplicate tile id, or the same input in two entries is an InputError naming the manifest file and
the line (text) or entry (JSON).
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

from gpumaja.errors import InputError, MissingFileError

#: tile ids name files (out/.gpumaja/<tile>.lock): letters, digits, '_' and '-' only
TILE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
OPTIONAL_PATHS = ("dem", "gipp", "lut", "params")
KEYS = ("tile", "inputs", *OPTIONAL_PATHS)


@dataclasses.dataclass(frozen=True)
class TileEntry:
    """One tile series of the manifest (absolute paths)."""

    inputs: tuple[Path, ...]
    tile: str | None = None
    dem: Path | None = None
    gipp: Path | None = None
    lut: Path | None = None
    params: Path | None = None
    where: str = ""  # "line 3" / "entry 2": where the manifest states it, for messages

    @property
    def label(self) -> str:
        """The tile id when the manifest gives it, else the name of the first input."""
        return self.tile or self.inputs[0].name


def _resolve(value: str, base: Path) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else base / p


def _path(value: object, key: str, base: Path, manifest: Path, where: str) -> Path:
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: '{key}' must be a path (a non-empty string), got {value!r}", manifest)
    p = _resolve(value.strip(), base)
    if not p.exists():
        raise MissingFileError(f"{where}: {key} {p} does not exist", manifest)
    return p


def _entry_from_json(item: object, base: Path, manifest: Path, where: str) -> TileEntry:
    if not isinstance(item, dict):
        raise InputError(f"{where}: must be an object with 'inputs' (and optionally {', '.join(KEYS[:1] + KEYS[2:])})"
                         f", got {type(item).__name__}", manifest)
    unknown = sorted(set(item) - set(KEYS))
    if unknown:
        raise InputError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"expected {', '.join(KEYS)}", manifest)
    raw = item.get("inputs")
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise InputError(f"{where}: 'inputs' must be a path or a non-empty list of paths", manifest)
    inputs = tuple(_path(v, "input", base, manifest, where) for v in raw)
    tile = item.get("tile")
    if tile is not None and (not isinstance(tile, str) or not TILE_ID.match(tile)):
        raise InputError(f"{where}: 'tile' must be a tile id such as T31TCJ (letters, digits, '_', '-'), "
                         f"got {tile!r}", manifest)
    extra = {k: _path(item[k], k, base, manifest, where) for k in OPTIONAL_PATHS if item.get(k) is not None}
    return TileEntry(inputs=inputs, tile=tile, where=where, **extra)


def _parse_json(text: str, manifest: Path) -> list[TileEntry]:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InputError(f"not valid JSON ({exc})", manifest) from None
    if not isinstance(doc, dict) or "tiles" not in doc:
        raise InputError('expected a JSON object {"tiles": [...]}', manifest)
    unknown = sorted(set(doc) - {"tiles"})
    if unknown:
        raise InputError(f"unknown top-level key(s) {', '.join(map(repr, unknown))}; expected 'tiles'", manifest)
    tiles = doc["tiles"]
    if not isinstance(tiles, list):
        raise InputError("'tiles' must be a list of entries", manifest)
    base = manifest.parent
    return [_entry_from_json(item, base, manifest, f"entry {i}") for i, item in enumerate(tiles, start=1)]


def _strip_comment(line: str) -> str:
    if line.lstrip().startswith("#"):
        return ""
    m = re.search(r"\s#", line)
    return (line[: m.start()] if m else line).strip()


def _parse_text(text: str, manifest: Path) -> list[TileEntry]:
    base = manifest.parent
    entries = []
    for n, line in enumerate(text.splitlines(), start=1):
        value = _strip_comment(line)
        if value:
            where = f"line {n}"
            entries.append(TileEntry(inputs=(_path(value, "folder", base, manifest, where),), where=where))
    return entries


def _check_unique(entries: list[TileEntry], manifest: Path) -> None:
    tiles: dict[str, TileEntry] = {}
    inputs: dict[Path, TileEntry] = {}
    for e in entries:
        if e.tile is not None:
            other = tiles.setdefault(e.tile, e)
            if other is not e:
                raise InputError(f"{e.where}: tile {e.tile} is already given in {other.where} "
                                 "(one entry per tile series)", manifest)
        for p in e.inputs:
            key = p.resolve()
            other = inputs.setdefault(key, e)
            if other is not e:
                raise InputError(f"{e.where}: input {p} is already part of {other.where}", manifest)


def parse_manifest(text: str, manifest: Path) -> list[TileEntry]:
    """The entries of a manifest's text (`manifest`: its path, for the form, relative paths and messages)."""
    manifest = Path(manifest)
    is_json = manifest.suffix.lower() == ".json" or text.lstrip().startswith("{")
    entries = _parse_json(text, manifest) if is_json else _parse_text(text, manifest)
    if not entries:
        raise InputError("the manifest lists no tile series", manifest)
    _check_unique(entries, manifest)
    return entries


def read_manifest(path: str | Path) -> list[TileEntry]:
    """Read and check a manifest (module docstring); paths are made absolute."""
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise MissingFileError("manifest not found", path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the manifest ({exc})", path) from None
    return parse_manifest(text, path)


__all__ = ["TileEntry", "parse_manifest", "read_manifest"]
