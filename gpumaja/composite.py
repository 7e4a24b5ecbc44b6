"""MAJA's composite ("L2 private part", maja-l2a.md §2) at the coarse grid, and its update per date.

The composite holds, per coarse pixel, the last clear observation: TOA* (RTA), TOCR at the default
AOT (RCR), surface reflectance at the estimated AOT (RTC), its date (PXD, days since 2000-01-01) and a
nodata mask (NDT); the stack of the last `number_of_stack_images` TOCR images in the correlation band
(STO, updated every date whatever the clouds, newest first) with their dates; the previous date's cloud
mask (CLD); the possible-water and tested-water stacks of the last `water_mask_number` dates (PWA/TWA,
§1.7); and the mini-LUT TOC table of the MT AOT band of the last dates (LTC, the "TOC LUTs of previous
dates" of §2, so that a previous date's TOA* is inverted with its own geometry in the MT AOT method).
The multi-temporal tests, shadows and the spectro-temporal AOT read it; the series driver saves it
after each date so that a run can resume.

Dates may go backwards (backward initialisation processes the youngest dates first, §2): ages are
|today - PXD|; a date may not repeat the previous one. A date processed a second time (backward, then
forward) replaces its own layer of the STO, PWA/TWA and LTC stacks rather than taking a second slot
(one observation counted once in the multi-date water fraction and in the stack depth; the reference
does not say what MAJA does here).

`update_composite` is §2's update rule, step for step:

- a pixel is replaced by the current date (RTA, RCR, RTC copied, PXD = today, NDT = 0) when it is not in
  the all-clouds mask, not edge, not snow, not high-AOT and not saturated in any band;
- otherwise its old value is kept while (today - PXD) <= max_age, else NDT = 1 (ageing);
- high AOT: AOT > mean + max(coef_sigma_aot * std, minimum_high_aot_std) over the valid pixels;
- no replacement at all (ageing and the STO shift only) when a global flag is raised (cirrus, rain,
  hot spot) or the image mean AOT >= max_aot;
- INIT mode (no previous composite): the clear pixels are written, all others are nodata.

Pure array code on NumPy or CuPy (`xp`); the arrays of a state live on one backend.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np

from gpumaja.backend import array_module
from gpumaja.model.params import L2Params

EPOCH = date(2000, 1, 1)
PXD_NODATA = -32768
NO_DATE = -(10**6)  # last_day of an empty composite


def day_number(d: date) -> int:
    """Days since 2000-01-01 (the composite's date unit)."""
    return (d - EPOCH).days


@dataclass(eq=False)
class CompositeState:
    bands: tuple[str, ...]  # band order of rta/rcr/rtc
    rta: Any  # (nb, cy, cx) float32 TOA* of the last clear date, NaN = nodata
    rcr: Any  # (nb, cy, cx) float32 TOCR (default AOT)
    rtc: Any  # (nb, cy, cx) float32 surface reflectance (estimated AOT)
    pxd: Any  # (cy, cx) int32 day number of the last clear date, PXD_NODATA = none
    ndt: Any  # (cy, cx) bool, True = no valid composite value
    sto: Any  # (n_sto, cy, cx) float32 TOCR in the correlation band, newest first, NaN = none
    sto_days: tuple[int, ...]  # day number of each STO layer (same order); shorter than n_sto at start
    cld: Any  # (cy, cx) bool cloud mask (all clouds + shadows) of the previous date
    last_day: int  # day number of the last date that updated the composite (every date counts)
    history: tuple[dict, ...] = field(default_factory=tuple)  # per date: day, mode, updated, reason
    pwa: Any = None  # (n_wam, cy, cx) bool possible water per date, newest first (§1.7 PWA)
    twa: Any = None  # (n_wam, cy, cx) bool tested for water per date (§1.7 TWA)
    wam_days: tuple[int, ...] = ()  # day of each PWA/TWA layer
    ltc: Any = None  # (n_ltc, n_alt, n_aot, n_toa) float32 TOC table of the MT AOT band per date, newest first
    ltc_days: tuple[int, ...] = ()  # day of each LTC layer

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.pxd.shape)

    def age(self, day: int):
        """(cy, cx) days since the last clear observation (large where nodata)."""
        xp = array_module(self.pxd)
        return xp.where(self.ndt, np.int32(10**6), xp.abs(np.int32(day) - self.pxd))

    def ltc_for(self, day: int):
        """The stored MT-band TOC table of `day`, else of the nearest stored date (None if none)."""
        if not self.ltc_days:
            return None
        k = min(range(len(self.ltc_days)), key=lambda i: (abs(self.ltc_days[i] - day), i))
        return self.ltc[k]


def empty_composite(bands: tuple[str, ...], shape: tuple[int, int], params: L2Params, xp=np) -> CompositeState:
    nb, (cy, cx) = len(bands), shape
    nan = np.float32(np.nan)
    return CompositeState(
        tuple(bands), xp.full((nb, cy, cx), nan, np.float32), xp.full((nb, cy, cx), nan, np.float32),
        xp.full((nb, cy, cx), nan, np.float32), xp.full((cy, cx), PXD_NODATA, np.int32), xp.ones((cy, cx), bool),
        xp.full((params.number_of_stack_images, cy, cx), nan, np.float32), (), xp.zeros((cy, cx), bool), NO_DATE,
        pwa=xp.zeros((0, cy, cx), bool), twa=xp.zeros((0, cy, cx), bool), wam_days=(),
        ltc=None, ltc_days=(),
    )



def high_aot_mask(aot, valid, params: L2Params):
    """AOT > mean + max(coef_sigma_aot * std, minimum_high_aot_std) over the valid pixels (§2)."""
    xp = array_module(aot)
    v = aot[valid & ~xp.isnan(aot)]
    if v.size == 0:
        return xp.zeros(aot.shape, bool)
    mean, std = float(v.mean()), float(v.std())
    return valid & (aot > np.float32(mean + max(params.coef_sigma_aot * std, params.minimum_high_aot_std)))


def _drop_day(stack, days: tuple[int, ...], day: int, xp, pad: bool = False):
    """(stack, days) without the layers dated `day` (layer i is dated days[i]); with `pad` the stack
    keeps its length, empty (NaN) layers appended at the end (the STO stack has a fixed depth)."""
    drop = [i for i, d in enumerate(days) if d == day]
    if not drop:
        return stack, days
    keep = [i for i in range(stack.shape[0]) if i not in drop]
    out = stack[xp.asarray(keep, dtype=np.int64)] if keep else stack[:0]
    if pad:
        out = xp.concatenate([out, xp.full((len(drop),) + stack.shape[1:], np.nan, stack.dtype)], axis=0)
    return out, tuple(d for i, d in enumerate(days) if i not in drop)


def update_composite(
    state: CompositeState, day: int, rta, rcr, rtc, aot, all_clouds, clouds_and_shadows, edge, snow,
    saturated_any, params: L2Params, global_flags: dict[str, bool] | None = None, *,
    possible_water=None, tested_water=None, mt_toc_table=None,
) -> CompositeState:
    """The composite after date `day` (§2). rta/rcr/rtc: (nb, cy, cx) of this date in `state.bands`
    order; aot (cy, cx); masks (cy, cx) bool; clouds_and_shadows becomes CLD for the next date.
    possible_water / tested_water (cy, cx) bool are pushed on the PWA/TWA stacks and mt_toc_table
    (n_alt, n_aot, n_toa) on the LTC stack when given."""
    xp = array_module(state.pxd)
    if day == state.last_day:
        raise ValueError(f"composite date repeated: day {day} was the previous date")
    valid = ~edge
    flags = {k: bool(v) for k, v in (global_flags or {}).items()}
    a = aot[valid & ~xp.isnan(aot)]
    mean_aot = float(a.mean()) if a.size else float("nan")
    reason = ""
    if any(flags.values()):
        reason = "global flag: " + ", ".join(k for k, v in flags.items() if v)
    elif mean_aot == mean_aot and mean_aot >= params.max_aot:
        reason = f"mean AOT {mean_aot:.3f} >= Max_AOT {params.max_aot:g}"
    if reason:
        replace_px = xp.zeros(state.shape, bool)
    else:
        replace_px = valid & ~all_clouds & ~snow & ~saturated_any & ~high_aot_mask(aot, valid, params)
        for arr in (rta, rcr, rtc):  # a value must exist to be copied
            replace_px &= ~xp.isnan(arr).any(axis=0)
    keep = ~replace_px & ~state.ndt & (xp.abs(np.int32(day) - state.pxd) <= np.int32(params.max_age))
    new_ndt = ~(replace_px | keep)
    r3 = replace_px[None]

    def merge(old, new):
        out = xp.where(r3, new.astype(np.float32), old)
        return xp.where(new_ndt[None], np.float32(np.nan), out)

    ci = state.bands.index(params.correl_band)
    # a date already in a stack (the dates between the oldest and the INIT date are processed twice:
    # backward, then forward) replaces its old layer instead of taking a second slot
    old_sto, old_sto_days = _drop_day(state.sto, state.sto_days, day, xp, pad=True)
    sto = xp.concatenate([rcr[ci][None].astype(np.float32), old_sto[:-1]], axis=0)
    sto_days = ((day,) + old_sto_days)[: params.number_of_stack_images]
    mode = "INIT" if state.last_day == NO_DATE else "NOMINAL"
    n_wam = params.water_mask_number
    pwa, twa, wam_days = state.pwa, state.twa, state.wam_days
    if possible_water is not None and tested_water is not None:
        pwa, _ = _drop_day(pwa, wam_days, day, xp)
        twa, wam_days = _drop_day(twa, wam_days, day, xp)
        pwa = xp.concatenate([xp.asarray(possible_water, bool)[None], pwa], axis=0)[:n_wam]
        twa = xp.concatenate([xp.asarray(tested_water, bool)[None], twa], axis=0)[:n_wam]
        wam_days = ((int(day),) + wam_days)[:n_wam]
    ltc, ltc_days = state.ltc, state.ltc_days
    if mt_toc_table is not None:
        t = np.asarray(mt_toc_table, np.float32)[None]
        if ltc is not None:
            ltc, ltc_days = _drop_day(ltc, ltc_days, day, np)
        ltc = t if ltc is None or len(ltc) == 0 else np.concatenate([t, ltc], axis=0)[: params.number_of_stack_images]
        ltc_days = ((int(day),) + ltc_days)[: params.number_of_stack_images]
    return CompositeState(
        state.bands, merge(state.rta, rta), merge(state.rcr, rcr), merge(state.rtc, rtc),
        xp.where(replace_px, np.int32(day), xp.where(new_ndt, np.int32(PXD_NODATA), state.pxd)).astype(np.int32),
        new_ndt, sto, sto_days, clouds_and_shadows.astype(bool), int(day),
        state.history + ({"day": int(day), "mode": mode, "replaced": int(replace_px.sum()),
                          "kept": int(keep.sum()), "nodata": int(new_ndt.sum()), "no_update_reason": reason},),
        pwa=pwa, twa=twa, wam_days=wam_days, ltc=ltc, ltc_days=ltc_days,
    )
