"""Atomic product folders: a product appears under its final name only when complete."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from gpumaja.errors import InputError

log = logging.getLogger(__name__)


def write_product_folder(out_dir: str | os.PathLike, name: str, fill: Callable[[Path], None],
                         overwrite: bool = False) -> Path:
    """Create `out_dir/<name>/` atomically: `fill(tmp)` writes the content into
    `out_dir/.<name>.tmp-<pid>/`, which is then renamed to `out_dir/<name>/`.

    InputError when the product exists and `overwrite` is False; with `overwrite` the old folder is
    swapped out only once the new one is complete. On any error the temporary folder is removed and
    the error re-raised (every product writer: L2A, L3A, snow, SCD).
    """
    out_dir = Path(out_dir)
    final = out_dir / name
    if (final.exists() or final.is_symlink()) and not overwrite:
        raise InputError("the product already exists (pass overwrite=True to replace it)", final)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{name}.tmp-{os.getpid()}"
    if tmp.exists():  # left by a crashed run of this very process id: ours to remove
        shutil.rmtree(tmp)
    try:
        tmp.mkdir()
        fill(tmp)
        if final.exists() or final.is_symlink():
            old = out_dir / f".{name}.old-{os.getpid()}"
            final.rename(old)
            try:
                tmp.rename(final)
            except BaseException:
                old.rename(final)
                raise
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            tmp.rename(final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("wrote %s", final)
    return final


def clean_product_temporaries(out_dir: str | os.PathLike, name: str) -> None:
    """What a killed `write_product_folder` left for product `name`: its `.<name>.tmp-*` folders are
    removed; a `.<name>.old-*` folder is the complete product an overwrite had swapped out when it
    was killed between its two renames: when `<name>` is missing it is renamed back, never deleted.
    Call it only where no live writer can own these folders (under the caller's lock or checkpoint)."""
    out_dir = Path(out_dir)
    final = out_dir / name
    for p in sorted(out_dir.glob(f".{name}.old-*")):
        if not final.exists() and p.is_dir() and not p.is_symlink():
            p.rename(final)
            log.warning("restored %s from an interrupted replacement (%s)", final, p.name)
    for p in list(out_dir.glob(f".{name}.tmp-*")) + list(out_dir.glob(f".{name}.old-*")):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


__all__ = ["clean_product_temporaries", "write_product_folder"]
