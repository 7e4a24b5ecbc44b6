"""Save and load the MAJA composite (`gpumaja.composite.CompositeState`) atomically.

One `.npz` per tile: the arrays and a JSON header (format, version, bands, STO dates, last date,
history). It is written to a temporary name in the same folder, flushed to disk (fsync) and renamed
over the previous file, so a run killed at any instant leaves either the previous composite or the
new one, never a torn file; a resumed run continues from it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from gpumaja.backend import to_numpy
from gpumaja.composite import CompositeState
from gpumaja.errors import CorruptFileError, MissingFileError
from gpumaja.io.atomic_file import atomic_file

FORMAT = "gpumaja-composite"
VERSION = 2
_ARRAYS = ("rta", "rcr", "rtc", "pxd", "ndt", "sto", "cld", "pwa", "twa")


def save_composite(state: CompositeState, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = {"format": FORMAT, "version": VERSION, "bands": list(state.bands), "sto_days": list(state.sto_days),
              "last_day": state.last_day, "history": list(state.history),
              "wam_days": list(state.wam_days), "ltc_days": list(state.ltc_days)}
    with atomic_file(path) as fh:
        np.savez(fh, header=np.frombuffer(json.dumps(header).encode(), np.uint8),
                 **{k: to_numpy(getattr(state, k)) for k in _ARRAYS},
                 **({"ltc": np.asarray(state.ltc)} if state.ltc is not None else {}))
    return path


def load_composite(path: Path, xp=np) -> CompositeState:
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("composite file not found", path)
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            arrays = {k: z[k] for k in _ARRAYS}
            ltc = z["ltc"] if "ltc" in z.files else None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise CorruptFileError(f"not a readable gpumaja composite ({exc})", path) from exc
    if header.get("format") != FORMAT or header.get("version") != VERSION:
        raise CorruptFileError(f"not a gpumaja composite of version {VERSION} "
                               f"(format {header.get('format')!r}, version {header.get('version')!r})", path)
    return CompositeState(
        tuple(header["bands"]), *(xp.asarray(arrays[k]) for k in ("rta", "rcr", "rtc", "pxd", "ndt", "sto")),
        tuple(header["sto_days"]), xp.asarray(arrays["cld"]), int(header["last_day"]), tuple(header["history"]),
        pwa=xp.asarray(arrays["pwa"]), twa=xp.asarray(arrays["twa"]), wam_days=tuple(header["wam_days"]),
        ltc=ltc, ltc_days=tuple(header["ltc_days"]),
    )
