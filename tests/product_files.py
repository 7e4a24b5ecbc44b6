"""Comparing written product folders file by file, production time stamps aside.

Not a test module (no test_ prefix): imported by tests/test_l2a_series.py and tests/test_batch.py.
"""

from __future__ import annotations

import re
from pathlib import Path

# the only bytes two runs of the same inputs may differ in: MTD production dates, STAC "created"
STAMPS = (re.compile(rb"<((?:START_|END_)?PRODUCTION_DATE)>[^<]*</\1>"), re.compile(rb'"created": "[^"]*"'))


def stripped(path: Path) -> bytes:
    """The file's bytes with the production time stamps of MTD_ALL.xml / STAC.json blanked."""
    data = path.read_bytes()
    if path.name.endswith(("_MTD_ALL.xml", "_STAC.json")):
        for pat in STAMPS:
            data = pat.sub(b"<stamp>", data)
    return data


def files(folder: Path) -> dict[str, Path]:
    """Relative posix path -> file, every file below `folder`."""
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
