"""The order in which a tile's dates are processed: backward initialisation then nominal forward
(maja-l2a.md §2 "Backward mode" and the Start_maja defaults).

`plan_series` is pure: from the products of ONE tile, sorted by acquisition date, it returns the list
of `Step`s the series driver (`gpumaja.pipeline.l2a_series`) executes in order.

Rules (§2):

- The dates are cut into segments wherever the gap between two consecutive dates is >= max_l2_diff
  days: `max_l2_diff_s2_constellation` (15 d) when the later date of the pair is a Sentinel-2 date on
  or after 2017-07-01 (two satellites), `max_l2_diff` (30 d) otherwise (Landsat, S2 before the
  constellation). Each segment starts from an empty composite.
- A segment of one date: that date in INIT mode, written.
- A segment of m >= 2 dates: the youngest of its first min(n_backward, m) dates in INIT mode (not
  written), then the older ones in NOMINAL mode going back in time down to the oldest, of which only
  the oldest is written; then NOMINAL forward from the second oldest to the end of the segment, each
  written. Every date of the segment is written exactly once. (With n_backward = 1 the oldest date is
  the INIT date and is written.)
- `mode="init"`: every date in INIT mode, written (the one-date chain, no composite carried over).

What needs the results, and so is done by the driver, not here: a planned INIT whose result is not
valid (too cloudy / no data) does not initialise the composite, so the next step (the next older date)
is processed in INIT mode instead ("the next-youngest is tried"); and after the backward pass the
composite is relabelled with the oldest date when the oldest date itself was invalid.

Deviation from Start_maja: Start_maja uses plain INIT when fewer than nbackward (8) products remain;
here a segment of 2 .. n_backward - 1 dates is still initialised backward over all its dates (more
dates seen before the first written product, same products otherwise).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal, Protocol

from gpumaja.model.params import L2Params

# first day of the two-satellite Sentinel-2 constellation for the re-initialisation gap (Start_maja)
S2_CONSTELLATION_START = date(2017, 7, 1)
SECONDS_PER_DAY = 86400.0

Mode = Literal["INIT", "NOMINAL"]
Direction = Literal["backward", "forward"]


class Dated(Protocol):
    acquired: datetime
    sensor: str  # "S2" | "LANDSAT"


@dataclass(frozen=True)
class Step:
    index: int  # position of the product in the input sequence
    mode: Mode  # planned mode; INIT also means "start from an empty composite"
    direction: Direction
    write: bool  # write this date's L2A product
    segment: int = 0  # which segment (a new one re-initialises)

    def to_list(self) -> list:
        return [self.index, self.mode, self.direction, self.write, self.segment]


def max_gap_days(product: Dated, params: L2Params) -> int:
    """The re-initialisation gap (days) before `product` (§2, Start_maja max_l2_diff)."""
    if product.sensor == "S2" and product.acquired.date() >= S2_CONSTELLATION_START:
        return params.max_l2_diff_s2_constellation
    return params.max_l2_diff


def segments(products: Sequence[Dated], params: L2Params) -> list[list[int]]:
    """Indices of `products` (sorted by date) grouped into segments split at gaps >= max_l2_diff."""
    out: list[list[int]] = []
    for i, p in enumerate(products):
        if i == 0:
            out.append([0])
            continue
        gap = (p.acquired - products[i - 1].acquired).total_seconds() / SECONDS_PER_DAY
        if gap < 0:
            raise ValueError("plan_series: products must be sorted by acquisition date")
        if gap >= max_gap_days(p, params):
            out.append([i])
        else:
            out[-1].append(i)
    return out


def _segment_steps(seg: list[int], n_backward: int, k: int) -> list[Step]:
    if len(seg) == 1:
        return [Step(seg[0], "INIT", "forward", True, k)]
    nb = min(n_backward, len(seg))
    if nb == 1:
        steps = [Step(seg[0], "INIT", "forward", True, k)]
    else:
        back = seg[:nb][::-1]  # youngest of the first nb dates first, down to the oldest
        steps = [Step(back[0], "INIT", "backward", False, k)]
        steps += [Step(i, "NOMINAL", "backward", i == seg[0], k) for i in back[1:]]
    steps += [Step(i, "NOMINAL", "forward", True, k) for i in seg[1:]]
    return steps


def plan_series(products: Sequence[Dated], params: L2Params, mode: str = "auto") -> list[Step]:
    """The processing steps of one tile's products (sorted by date); see the module docstring."""
    if mode not in ("auto", "init"):
        raise ValueError(f"plan_series: mode must be 'auto' or 'init', got {mode!r}")
    if params.n_backward < 1:
        raise ValueError(f"n_backward must be >= 1, got {params.n_backward}")
    segs = segments(products, params)
    if mode == "init":
        return [Step(i, "INIT", "forward", True, i) for i in range(len(products))]
    steps: list[Step] = []
    for k, seg in enumerate(segs):
        steps += _segment_steps(seg, params.n_backward, k)
    return steps


def is_last_backward(steps: Sequence[Step], k: int) -> bool:
    """True for the step that ends a backward pass (the oldest date of its segment)."""
    s = steps[k]
    return s.direction == "backward" and (k + 1 == len(steps) or steps[k + 1].direction != "backward"
                                          or steps[k + 1].segment != s.segment)
