"""Files that appear whole or not at all: written under `.<name>.tmp-<pid>`, flushed and fsynced,
then renamed over the final name (`os.replace`), the folder fsynced; the temporary file is removed
on any error. Used for checkpoints (composite, progress), batch state and summaries, and LUT files.
Product folders have their own mechanism (`io.product_folder`)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: not every filesystem allows it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to `path` for writing; on a clean exit it replaces `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def write_json_atomic(path: str | os.PathLike, doc: dict) -> None:
    """`doc` as JSON at `path` (indented, sorted keys, final newline), never a torn file."""
    with atomic_file(path, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=1, sort_keys=True)
        fh.write("\n")


__all__ = ["atomic_file", "fsync_dir", "write_json_atomic"]
