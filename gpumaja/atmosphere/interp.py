"""N-D multilinear interpolation over the leading axes of a table (maja-l2a.md §3.1, `LUT_Interpolation` =
LINEAR).

`interp_multilinear(table, axes, coords)` interpolates `table` along its first k dimensions, whose node
coordinates are the k strictly increasing `axes`, at many points at once (`coords`: k arrays that broadcast to
one shape P). Trailing dimensions are carried along: the result has shape P + table.shape[k:]. This is what
ReduceLut needs (interpolate θs, θv, Δφ of the 6-D TOCR table, keep altitude × AOT × TOA*) and what the water
vapour LUT needs (one ratio per pixel).

Rules:
- Outside an axis the coordinate is clamped to the axis ends (MAJA's LUT reader does not extrapolate the
  angle, altitude or AOT dimensions).
- Exact at nodes, bit for bit: the weight of a cell corner is a product of t and (1 - t), where
  t = (x - x0) / (x1 - x0) is exactly 0 when x equals the lower node and exactly 1 when x equals the last
  node; a corner with weight exactly 0 contributes exactly 0 (even when its value is inf or NaN), so the
  stored value comes back unchanged.
- A NaN coordinate gives NaN.
- Weights and sums are computed in float64; the result has the table's floating dtype (float32 for float32
  tables). Works on NumPy or CuPy arrays (the module of the table or of the coordinates).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np

from gpumaja.backend import array_module


def _xp_of(table: Any, coords: Sequence[Any]):
    for a in (table, *coords):
        xp = array_module(a)
        if xp is not np:
            return xp
    return np


def cell_weights(axis: Any, x: Any, xp=np) -> tuple[Any, Any, Any]:
    """Lower node index, upper node index and fraction t in [0, 1] of `x` on a strictly increasing `axis`.

    Clamped outside the axis (t = 0 below the first node, t = 1 above the last one); t is NaN for NaN x.
    A single-node axis gives index 0 for both nodes and t = 0.
    """
    axis = xp.asarray(axis, dtype=xp.float64)
    x = xp.asarray(x, dtype=xp.float64)
    n = int(axis.shape[0])
    if n == 1:
        i0 = xp.zeros(x.shape, dtype=xp.int64)
        t = xp.where(xp.isnan(x), xp.nan, 0.0)
        return i0, i0, t
    i0 = xp.clip(xp.searchsorted(axis, x, side="right") - 1, 0, n - 2)
    x0 = axis[i0]
    x1 = axis[i0 + 1]
    t = xp.clip((x - x0) / (x1 - x0), 0.0, 1.0)  # NaN stays NaN
    return i0, i0 + 1, t


def interp_multilinear(table: Any, axes: Sequence[Any], coords: Sequence[Any]) -> Any:
    """Multilinear interpolation of `table` along its first len(axes) dimensions at points `coords`.

    table: array (n_1, ..., n_k, *trailing); axes: k 1-D strictly increasing arrays, axes[d] of length n_d;
    coords: k arrays (or scalars) broadcasting to one shape P. Returns an array of shape P + trailing.
    """
    k = len(axes)
    if len(coords) != k:
        raise ValueError(f"interp_multilinear: {k} axes but {len(coords)} coordinate arrays")
    xp = _xp_of(table, coords)
    table = xp.asarray(table)
    if k > table.ndim:
        raise ValueError(f"interp_multilinear: {k} axes for a table of {table.ndim} dimensions")
    for d, ax in enumerate(axes):
        if int(np.shape(ax)[0]) != table.shape[d]:
            raise ValueError(
                f"interp_multilinear: axis {d} has {np.shape(ax)[0]} nodes, table dimension {d} has {table.shape[d]}"
            )
    out_dtype = np.result_type(table.dtype, np.float32)
    if k == 0:
        return table.astype(out_dtype, copy=True)
    pts = xp.broadcast_arrays(*[xp.asarray(c, dtype=xp.float64) for c in coords])
    shape = pts[0].shape
    trailing = table.shape[k:]
    expand = shape + (1,) * len(trailing)

    cells = [cell_weights(ax, x, xp) for ax, x in zip(axes, pts)]
    acc = xp.zeros(shape + trailing, dtype=xp.float64)
    for corner in itertools.product((0, 1), repeat=k):
        weight = xp.ones(shape, dtype=xp.float64)
        index = []
        for (lo, hi, t), upper in zip(cells, corner):
            weight = weight * (t if upper else 1.0 - t)
            index.append(hi if upper else lo)
        w = weight.reshape(expand)
        values = table[tuple(index)]
        # a zero weight contributes exactly nothing, even where the neighbour holds inf or NaN
        acc += xp.where(w == 0.0, 0.0, w * values)
    return acc.astype(out_dtype, copy=False)
