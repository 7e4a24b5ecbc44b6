"""`plan_series`: segments at max_l2_diff gaps, backward initialisation then nominal forward
(maja-l2a.md §2 "Backward mode", Start_maja defaults). Expected plans are written out by hand."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.model.params import L2Params
from gpumaja.pipeline.series_plan import Step, is_last_backward, max_gap_days, plan_series, segments


@dataclass(frozen=True)
class P:
    acquired: datetime
    sensor: str = "S2"


def dates(*days: float, start: datetime = datetime(2024, 1, 5, 10, 50, tzinfo=timezone.utc),
          sensor: str = "S2") -> list[P]:
    return [P(start + timedelta(days=d), sensor) for d in days]


PARAMS = L2Params()


def test_single_date_is_init_and_written():
    assert plan_series(dates(0), PARAMS) == [Step(0, "INIT", "forward", True, 0)]


def test_five_dates_backward_then_forward():
    steps = plan_series(dates(0, 5, 10, 15, 20), PARAMS)
    assert steps == [
        Step(4, "INIT", "backward", False, 0),
        Step(3, "NOMINAL", "backward", False, 0),
        Step(2, "NOMINAL", "backward", False, 0),
        Step(1, "NOMINAL", "backward", False, 0),
        Step(0, "NOMINAL", "backward", True, 0),
        Step(1, "NOMINAL", "forward", True, 0),
        Step(2, "NOMINAL", "forward", True, 0),
        Step(3, "NOMINAL", "forward", True, 0),
        Step(4, "NOMINAL", "forward", True, 0),
    ]
    assert [is_last_backward(steps, k) for k in range(len(steps))] == [False] * 4 + [True] + [False] * 4


def test_n_backward_limits_the_backward_pass():
    steps = plan_series(dates(0, 5, 10, 15, 20), PARAMS.replace(n_backward=3))
    assert [(s.index, s.mode, s.direction, s.write) for s in steps] == [
        (2, "INIT", "backward", False), (1, "NOMINAL", "backward", False), (0, "NOMINAL", "backward", True),
        (1, "NOMINAL", "forward", True), (2, "NOMINAL", "forward", True), (3, "NOMINAL", "forward", True),
        (4, "NOMINAL", "forward", True)]


def test_n_backward_one_is_plain_init_then_nominal():
    steps = plan_series(dates(0, 5, 10), PARAMS.replace(n_backward=1))
    assert [(s.index, s.mode, s.direction, s.write) for s in steps] == [
        (0, "INIT", "forward", True), (1, "NOMINAL", "forward", True), (2, "NOMINAL", "forward", True)]
    with pytest.raises(ValueError, match="n_backward"):
        plan_series(dates(0, 5), PARAMS.replace(n_backward=0))


def test_two_dates():
    assert plan_series(dates(0, 5), PARAMS) == [
        Step(1, "INIT", "backward", False, 0), Step(0, "NOMINAL", "backward", True, 0),
        Step(1, "NOMINAL", "forward", True, 0)]


def test_gap_splits_segments_s2_constellation():
    # 2024 (two S2 satellites): 15 days re-initialise, 14.9 do not
    assert segments(dates(0, 14.9, 29.8), PARAMS) == [[0, 1, 2]]
    assert segments(dates(0, 15, 20), PARAMS) == [[0], [1, 2]]
    steps = plan_series(dates(0, 15, 20), PARAMS)
    assert steps == [
        Step(0, "INIT", "forward", True, 0),
        Step(2, "INIT", "backward", False, 1), Step(1, "NOMINAL", "backward", True, 1),
        Step(2, "NOMINAL", "forward", True, 1)]


def test_gap_before_the_constellation_and_landsat_is_30_days():
    early = datetime(2016, 3, 1, tzinfo=timezone.utc)
    assert segments(dates(0, 20, 49, start=early), PARAMS) == [[0, 1, 2]]
    assert segments(dates(0, 30, start=early), PARAMS) == [[0], [1]]
    late = datetime(2024, 3, 1, tzinfo=timezone.utc)
    assert segments(dates(0, 29.5, start=late, sensor="LANDSAT"), PARAMS) == [[0, 1]]
    assert segments(dates(0, 30, start=late, sensor="LANDSAT"), PARAMS) == [[0], [1]]
    # the later date of the pair decides: 2017-06-25 -> 2017-07-12 (17 d) is a constellation gap
    around = datetime(2017, 6, 25, tzinfo=timezone.utc)
    assert segments(dates(0, 17, start=around), PARAMS) == [[0], [1]]
    assert max_gap_days(P(datetime(2017, 6, 30, 23, tzinfo=timezone.utc)), PARAMS) == 30
    assert max_gap_days(P(datetime(2017, 7, 1, tzinfo=timezone.utc)), PARAMS) == 15
    custom = PARAMS.replace(max_l2_diff=40, max_l2_diff_s2_constellation=3)
    assert segments(dates(0, 3, 5), custom) == [[0], [1, 2]]


def test_init_mode_processes_each_date_alone():
    steps = plan_series(dates(0, 5, 10), PARAMS, mode="init")
    assert [(s.index, s.mode, s.write) for s in steps] == [(0, "INIT", True), (1, "INIT", True), (2, "INIT", True)]
    with pytest.raises(ValueError, match="mode"):
        plan_series(dates(0), PARAMS, mode="backward")


def test_unsorted_products_are_refused():
    with pytest.raises(ValueError, match="sorted"):
        plan_series(dates(5, 0), PARAMS)


@settings(max_examples=150, deadline=None)
@given(gaps=st.lists(st.integers(1, 40), min_size=0, max_size=25), n_backward=st.integers(1, 10))
def test_plan_invariants(gaps, n_backward):
    days = [0]
    for g in gaps:
        days.append(days[-1] + g)
    prods = dates(*days)
    params = PARAMS.replace(n_backward=n_backward)
    steps = plan_series(prods, params)
    # every date written exactly once
    assert sorted(s.index for s in steps if s.write) == list(range(len(prods)))
    # per segment: starts with INIT, the INIT date is the youngest of its first n_backward dates,
    # backward dates strictly decrease down to the segment's oldest (the only backward write),
    # forward dates strictly increase to the segment's youngest
    expected_segments = []
    for i, d in enumerate(days):
        if i == 0 or d - days[i - 1] >= 15:
            expected_segments.append([i])
        else:
            expected_segments[-1].append(i)
    for k, seg in enumerate(expected_segments):
        ss = [s for s in steps if s.segment == k]
        assert ss[0].mode == "INIT" and all(s.mode == "NOMINAL" for s in ss[1:])
        assert ss[0].index == seg[min(n_backward, len(seg)) - 1]
        back = [s.index for s in ss if s.direction == "backward"]
        fwd = [s.index for s in ss if s.direction == "forward"]
        assert back == sorted(back, reverse=True) and len(set(back)) == len(back)
        assert fwd == sorted(fwd) and len(set(fwd)) == len(fwd)
        if back:
            assert back[-1] == seg[0] and [s.index for s in ss if s.direction == "backward" and s.write] == [seg[0]]
        assert fwd[-1] == seg[-1]
    # segments are contiguous in the step list
    seg_ids = [s.segment for s in steps]
    assert seg_ids == sorted(seg_ids)
