"""Assemble a tile series from product paths or from a folder of products.

Rules (issue 2): any input order, sorted by acquisition time; one tile per series, and one grid per
resolution group: mixing tiles or grids is a SeriesError naming both products; two products of the
same acquisition (platform + sensing second) are an error unless `dedupe=True`, which keeps the one
with the newest processing baseline (then the lexically last product id, i.e. the latest generation).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from gpumaja.errors import SeriesError
from gpumaja.io.products import candidate_products, open_product
from gpumaja.model.product import L1CProduct

log = logging.getLogger(__name__)


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Paths of products: each input is a product, or a folder holding products."""
    from gpumaja.io.landsat import is_landsat
    from gpumaja.io.safe import is_safe

    paths: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir() and not is_safe(p) and not is_landsat(p):
            found = candidate_products(p)
            if not found:
                raise SeriesError("folder holds no Sentinel-2 SAFE or Landsat product", p)
            paths.extend(found)
        else:
            paths.append(p)
    return paths


def open_products(
    inputs: Iterable[str | Path], on_product: Callable[[Path], None] | None = None
) -> list[L1CProduct]:
    """Open every product of `inputs` (products or folders of products), in the given order."""
    products = []
    for path in expand_inputs(inputs):
        products.append(open_product(path))
        if on_product is not None:
            on_product(path)
    return products


def assemble_series(products: Iterable[L1CProduct], dedupe: bool = False) -> list[L1CProduct]:
    """Check that `products` form one series; return them sorted by acquisition time."""
    ordered = sorted(products, key=lambda p: (p.acquired, p.product_id))
    if not ordered:
        raise SeriesError("no product given")
    first = ordered[0]
    for p in ordered[1:]:
        if p.sensor != first.sensor:
            raise SeriesError(
                f"mixes sensors: {first.product_id} is {first.sensor}, {p.product_id} is {p.sensor}", p.path
            )
        if p.tile != first.tile:
            raise SeriesError(
                f"mixes tiles: {first.product_id} is tile {first.tile}, {p.product_id} is tile {p.tile}", p.path
            )
        if p.grids != first.grids:
            diff = sorted(g for g in set(p.grids) | set(first.grids) if p.grids.get(g) != first.grids.get(g))
            raise SeriesError(
                f"grids differ from {first.product_id} for group(s) {', '.join(diff)}: "
                f"{first.grids.get(diff[0])} vs {p.grids.get(diff[0])}",
                p.path,
            )
    kept: dict[str, L1CProduct] = {}
    for p in ordered:
        other = kept.get(p.date_key)
        if other is None:
            kept[p.date_key] = p
            continue
        if not dedupe:
            raise SeriesError(
                f"duplicate acquisition {p.date_key}: {other.product_id} and {p.product_id} "
                "(pass --dedupe to keep the newest processing)",
                p.path,
            )
        best = max((other, p), key=lambda q: (q.processing_baseline, q.product_id))
        dropped = p if best is other else other
        log.warning("duplicate acquisition %s: keeping %s, dropping %s", p.date_key, best.product_id, dropped.product_id)
        kept[p.date_key] = best
    return sorted(kept.values(), key=lambda p: p.acquired)
