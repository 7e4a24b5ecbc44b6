"""The composite and its update rule (maja-l2a.md §2), on hand-checkable tiny grids; atomic save/load."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.composite import PXD_NODATA, day_number, empty_composite, high_aot_mask, update_composite
from gpumaja.errors import CorruptFileError
from gpumaja.io.composite_store import load_composite, save_composite
from gpumaja.model.params import L2Params

BANDS = ("B02", "B04", "B8A")
P = L2Params()  # Max_Age 90, STO depth 10, Correl_Band B04
SHAPE = (2, 3)


def _date(value: float, shape=SHAPE):
    """rta, rcr, rtc filled with value, value + 0.01, value + 0.02 in every band."""
    base = np.full((len(BANDS), *shape), value, np.float32)
    return base, base + np.float32(0.01), base + np.float32(0.02)


def _masks(shape=SHAPE, **set_true):
    m = {k: np.zeros(shape, bool) for k in ("all_clouds", "clouds_and_shadows", "edge", "snow", "saturated_any")}
    for k, idx in set_true.items():
        for i in idx:
            m[k][i] = True
    return m


def _update(state, day, value, aot=0.1, flags=None, **set_true):
    rta, rcr, rtc = _date(value)
    return update_composite(state, day, rta, rcr, rtc, np.full(SHAPE, aot, np.float32), params=P,
                            global_flags=flags, **_masks(**set_true))


def test_day_number():
    from datetime import date

    assert day_number(date(2000, 1, 1)) == 0 and day_number(date(2000, 3, 1)) == 60


def test_init_writes_clear_pixels_and_leaves_the_rest_nodata():
    s = _update(empty_composite(BANDS, SHAPE, P), 100, 0.2, all_clouds=[(0, 0)], snow=[(0, 1)], edge=[(1, 2)])
    assert s.history[-1]["mode"] == "INIT"
    expected_ndt = np.array([[True, True, False], [False, False, True]])
    np.testing.assert_array_equal(s.ndt, expected_ndt)
    np.testing.assert_array_equal(s.pxd, np.where(expected_ndt, PXD_NODATA, 100))
    assert np.all(np.isnan(s.rta[:, expected_ndt])) and np.all(s.rta[:, ~expected_ndt] == np.float32(0.2))
    assert np.all(s.rtc[:, ~expected_ndt] == np.float32(0.22))


def test_cloudy_pixel_keeps_its_value_until_max_age_then_becomes_nodata():
    s = _update(empty_composite(BANDS, SHAPE, P), 100, 0.2)
    s = _update(s, 150, 0.5, all_clouds=[(0, 0)])  # age 50 <= 90: kept
    assert s.rta[0, 0, 0] == np.float32(0.2) and s.pxd[0, 0] == 100 and not s.ndt[0, 0]
    assert s.rta[0, 1, 1] == np.float32(0.5) and s.pxd[1, 1] == 150  # clear: replaced
    s = _update(s, 190, 0.6, all_clouds=[(0, 0)])  # age 90 <= 90: still kept
    assert s.pxd[0, 0] == 100 and not s.ndt[0, 0]
    s = _update(s, 191, 0.6, all_clouds=[(0, 0)])  # age 91 > 90: nodata
    assert s.ndt[0, 0] and s.pxd[0, 0] == PXD_NODATA and np.isnan(s.rcr[:, 0, 0]).all()
    assert s.history[-1]["mode"] == "NOMINAL"


@pytest.mark.parametrize("mask", ["snow", "edge", "saturated_any", "all_clouds"])
def test_excluded_pixels_are_not_replaced(mask):
    s = _update(empty_composite(BANDS, SHAPE, P), 10, 0.2)
    s = _update(s, 20, 0.4, **{mask: [(1, 1)]})
    assert s.rta[0, 1, 1] == np.float32(0.2) and s.pxd[1, 1] == 10
    assert s.rta[0, 0, 0] == np.float32(0.4)


def test_high_aot_threshold_by_hand():
    aot = np.array([[0.1, 0.1, 0.1], [0.1, 0.1, 0.5]], np.float32)
    valid = np.ones_like(aot, bool)
    # mean 1.0/6 = 0.1667, std = 0.1491 -> threshold 0.1667 + max(0.1491, 0.1) = 0.3158: only 0.5 is high
    np.testing.assert_array_equal(high_aot_mask(aot, valid, P), aot > 0.3)
    flat = np.full(SHAPE, 0.2, np.float32)  # std 0 -> threshold mean + Minimum_High_AOT_Std (0.1)
    assert not high_aot_mask(flat, valid, P).any()
    s = empty_composite(BANDS, SHAPE, P)
    rta, rcr, rtc = _date(0.3)
    s = update_composite(s, 5, rta, rcr, rtc, aot, params=P, **_masks())
    assert s.ndt[1, 2] and not s.ndt[0, 0]


@pytest.mark.parametrize("flags,aot", [({"cirrus": True}, 0.1), ({"rain": True, "hotspot": False}, 0.1),
                                       (None, 0.5), (None, 0.7)])
def test_no_update_on_a_global_flag_or_a_hazy_image(flags, aot):
    s = _update(empty_composite(BANDS, SHAPE, P), 10, 0.2)
    s2 = _update(s, 20, 0.4, aot=aot, flags=flags)
    assert s2.history[-1]["no_update_reason"]
    np.testing.assert_array_equal(s2.rta, s.rta)  # nothing replaced, ages 10 <= 90: all kept
    assert s2.sto_days == (20, 10) and s2.sto[0, 0, 0] == np.float32(0.41)  # the STO still shifts


def test_sto_is_newest_first_in_the_correlation_band_and_capped():
    s = empty_composite(BANDS, SHAPE, P)
    for k in range(12):
        rta, rcr, rtc = _date(0.1)
        rcr[BANDS.index("B04")] = k  # only the correlation band goes to STO
        s = update_composite(s, 10 + k, rta, rcr, rtc, np.full(SHAPE, 0.1, np.float32), params=P,
                             **_masks(all_clouds=[(0, 0)]))  # updated whatever the clouds
    assert s.sto_days == tuple(range(21, 11, -1)) and len(s.sto_days) == P.number_of_stack_images
    np.testing.assert_array_equal(s.sto[:, 0, 0], np.arange(11, 1, -1, dtype=np.float32))


def test_a_date_may_not_repeat():
    s = _update(empty_composite(BANDS, SHAPE, P), 10, 0.2)
    with pytest.raises(ValueError, match="repeated"):
        _update(s, 10, 0.2)


def test_backward_dates_age_by_absolute_difference():
    """Backward initialisation goes back in time: a pixel last clear on day 200 is 50 days old on
    day 150 (kept) and 91 days old on day 109 (nodata)."""
    s = _update(empty_composite(BANDS, SHAPE, P), 200, 0.2)
    s = _update(s, 150, 0.5, all_clouds=[(0, 0)])
    assert s.pxd[0, 0] == 200 and not s.ndt[0, 0] and s.pxd[1, 1] == 150
    np.testing.assert_array_equal(s.age(150)[0, 0], 50)
    s = _update(s, 109, 0.6, all_clouds=[(0, 0)])
    assert s.ndt[0, 0] and s.pxd[0, 1] == 109


def test_water_stacks_and_lut_stack_keep_the_newest_layers():
    s = empty_composite(BANDS, SHAPE, P)
    table = np.zeros((2, 3, 4), np.float32)
    for day in range(1, 13):
        rta, rcr, rtc = _date(0.1)
        pw = np.full(SHAPE, day % 2 == 0)
        s = update_composite(s, day, rta, rcr, rtc, np.full(SHAPE, 0.1, np.float32), params=P, **_masks(),
                             possible_water=pw, tested_water=np.ones(SHAPE, bool), mt_toc_table=table + day)
    assert s.pwa.shape == (P.water_mask_number, *SHAPE) and s.wam_days == tuple(range(12, 2, -1))
    np.testing.assert_array_equal(s.pwa[:, 0, 0], [d % 2 == 0 for d in range(12, 2, -1)])
    assert s.ltc.shape == (P.number_of_stack_images, 2, 3, 4) and s.ltc_days[0] == 12
    assert s.ltc_for(12)[0, 0, 0] == 12 and s.ltc_for(100)[0, 0, 0] == 12 and s.ltc_for(4)[0, 0, 0] == 4
    assert s.ltc_for(1)[0, 0, 0] == 3  # day 1 and 2 dropped off the stack: the nearest stored is 3


def test_a_date_processed_again_replaces_its_stack_layers():
    """Backward then forward (days 30, 20, 10 then 20, 30): the second visit of a date replaces its own
    STO, PWA/TWA and LTC layers; one observation per date in each stack, newest visit first."""
    s = empty_composite(BANDS, SHAPE, P)
    table = np.zeros((2, 3, 4), np.float32)
    for visit, day in enumerate((30, 20, 10, 20, 30)):
        rta, rcr, rtc = _date(0.1)
        rcr[BANDS.index("B04")] = visit  # which visit wrote the layer
        s = update_composite(s, day, rta, rcr, rtc, np.full(SHAPE, 0.1, np.float32), params=P, **_masks(),
                             possible_water=np.full(SHAPE, visit >= 3), tested_water=np.ones(SHAPE, bool),
                             mt_toc_table=table + visit)
    assert s.sto_days == (30, 20, 10) and s.wam_days == (30, 20, 10) and s.ltc_days == (30, 20, 10)
    np.testing.assert_array_equal(s.sto[:3, 0, 0], [4, 3, 2])
    assert np.isnan(s.sto[3:]).all() and s.sto.shape[0] == P.number_of_stack_images  # depth kept
    np.testing.assert_array_equal(s.pwa[:, 0, 0], [True, True, False])
    assert s.pwa.shape[0] == s.twa.shape[0] == 3
    np.testing.assert_array_equal(s.ltc[:, 0, 0, 0], [4, 3, 2])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 60), st.integers(0, 63)), min_size=1, max_size=8))
def test_invariants(steps):
    """NDT <=> PXD nodata; every valid pixel is at most Max_Age old; values come from some date."""
    s = empty_composite(BANDS, SHAPE, P)
    day = 0
    for gap, cloud_bits in steps:
        day += gap
        clouds = np.array([(cloud_bits >> i) & 1 for i in range(6)], bool).reshape(SHAPE)
        rta, rcr, rtc = _date(day / 1000.0)
        s = update_composite(s, day, rta, rcr, rtc, np.full(SHAPE, 0.1, np.float32), params=P,
                             **{**_masks(), "all_clouds": clouds})
        np.testing.assert_array_equal(s.ndt, s.pxd == PXD_NODATA)
        assert np.all(day - s.pxd[~s.ndt] <= P.max_age)
        np.testing.assert_allclose(s.rta[0][~s.ndt], s.pxd[~s.ndt] / 1000.0, rtol=1e-6)


def test_save_load_round_trip(tmp_path):
    s = _update(_update(empty_composite(BANDS, SHAPE, P), 10, 0.2), 20, 0.3, all_clouds=[(0, 0)])
    path = save_composite(s, tmp_path / "c" / "T31TCJ.npz")
    r = load_composite(path)
    for k in ("rta", "rcr", "rtc", "pxd", "ndt", "sto", "cld", "pwa", "twa"):
        np.testing.assert_array_equal(getattr(r, k), getattr(s, k))
    assert (r.bands, r.sto_days, r.last_day, r.history) == (s.bands, s.sto_days, s.last_day, s.history)
    assert r.ltc is None and r.ltc_days == ()
    rta, rcr, rtc = _date(0.4)
    s2 = update_composite(s, 30, rta, rcr, rtc, np.full(SHAPE, 0.1, np.float32), params=P, **_masks(),
                          possible_water=np.eye(2, 3, dtype=bool), tested_water=np.ones(SHAPE, bool),
                          mt_toc_table=np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    r2 = load_composite(save_composite(s2, tmp_path / "c2.npz"))
    np.testing.assert_array_equal(r2.ltc, s2.ltc)
    np.testing.assert_array_equal(r2.pwa, s2.pwa)
    assert (r2.wam_days, r2.ltc_days) == ((30,), (30,))


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "T31TCJ.npz"
    first = _update(empty_composite(BANDS, SHAPE, P), 10, 0.2)
    save_composite(first, path)
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError, match="disk full"):
        save_composite(_update(first, 20, 0.3), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["T31TCJ.npz"]


def test_corrupt_composite_is_an_error(tmp_path):
    bad = tmp_path / "c.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(CorruptFileError):
        load_composite(bad)
    np.savez(bad, header=np.frombuffer(b'{"format": "other"}', np.uint8))
    with pytest.raises(CorruptFileError):
        load_composite(bad)


def test_composite_from_the_one_date_chain(tmp_path):
    """process_date hands the composite its coarse inputs; two synthetic dates update it by §2's rule."""
    from gpumaja.backend import select_backend
    from gpumaja.composite import update_composite as upd
    from gpumaja.pipeline.l2a import open_inputs
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.l2a_inputs import read_date
    from gpumaja.pipeline.luts import LUTCache
    from gpumaja.synth import generate_series

    safes = generate_series(tmp_path / "s", dates=2, size=120, seed=2)
    backend = select_backend("cpu")
    luts = LUTCache()
    state = None
    for product in open_inputs(safes):
        coarse: dict = {}
        process_date(read_date(product, backend, tmp_path / "s" / "truth" / "dem.tif"),
                     luts.for_platform(product.platform), P, backend, coarse_out=coarse)
        if state is None:
            state = empty_composite(coarse["bands"], coarse["edge"].shape, P)
        day = day_number(product.acquired.date())
        state = upd(state, day, params=P, **{k: v for k, v in coarse.items() if k != "bands"})
        clear = ~coarse["all_clouds"] & ~coarse["edge"] & ~coarse["snow"] & ~coarse["saturated_any"]
        # every pixel clear today now carries today's TOA* (unless the high-AOT rule held it back)
        took = state.pxd == day
        assert took.sum() >= 0.5 * clear.sum()
        np.testing.assert_array_equal(state.rta[:, took], coarse["rta"][:, took])
    assert len(state.history) == 2 and state.history[0]["mode"] == "INIT"
    assert state.ltc.shape[0] == 2 and state.pwa.shape[0] == 2
    assert state.sto_days[0] == day and len(state.sto_days) == 2
