"""Open any supported Level-1 product by sniffing what the path is.

Sentinel-2 L1C SAFE (folder or .zip) and Landsat 8/9 Level-1 (folder or MTL file, Collection 2 MTL.txt /
MTL.json and the pre-collection MTL.txt) are recognised; anything else is an UnknownProductError
naming the path.
"""

from __future__ import annotations

from pathlib import Path

from gpumaja.errors import MissingFileError, UnknownProductError
from gpumaja.model.product import L1CProduct


def open_product(path: str | Path) -> L1CProduct:
    """Metadata of the Level-1 product at `path` (no pixels read)."""
    from gpumaja.io.landsat import is_landsat, read_landsat
    from gpumaja.io.safe import is_safe, read_safe

    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file or folder", p)
    if is_safe(p):
        return read_safe(p)
    if is_landsat(p):
        return read_landsat(p)
    raise UnknownProductError(
        "not a product gpumaja reads (expected a Sentinel-2 L1C .SAFE folder or .zip, "
        "or a Landsat 8/9 Level-1 folder or *_MTL.txt / *_MTL.json)",
        p,
    )


def candidate_products(folder: Path) -> list[Path]:
    """Entries of `folder` that look like products (used when a series is given as a folder)."""
    from gpumaja.io.landsat import is_landsat
    from gpumaja.io.safe import is_safe

    return sorted(e for e in folder.iterdir() if is_safe(e) or (e.is_dir() and is_landsat(e)))
