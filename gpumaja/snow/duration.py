"""Annual snow cover duration synthesis (LIS snow_annual_map, L3B): SCD, SOD, SMOD, NOBS.

wasp-l3a-and-lis-snow.md §3, step by step:

1. Period (`period_for_year`): the hydrological year 1 Sep (N-1) .. 31 Aug (N), every day an output
   day (365 or 366). "--year 2018" means 2017-09-01 .. 2018-08-31: the year named is the one the
   period ends in.
2. Input selection (`select_inputs`): products dated in [start - margin, stop + margin]
   (`ScdParams.date_margin_days`, 15 days), so that the period ends are interpolated, not extrapolated.
3. Densification (`merge_same_day`): products sharing a date are merged in list order, main (S2)
   first and densifiers (Landsat) after: the first product whose value is <= 100 (snow, no snow or
   FSC), otherwise the last product's value (LIS merge_masks_at_same_date).
4. Binarisation per date (`classify_codes`), LIS-new: snow = 0 < v <= 100 (FSC > 0 counts as snow;
   v == 100 only with `fsc_counts_as_snow=False`, the LIS 1.5 rule); invalid = 205 (cloud), 255 and
   254 (nodata, since / before LIS 1.6); clear = not invalid.
5. Gap filling (GF linear functor) and the products (`snow_duration`): per pixel, valid observations
   only; a day strictly between two valid observations gets y1 + (y2 - y1)(t - t1)/(t2 - t1), days
   before the first / after the last valid observation take its value, no valid observation gives 0;
   a day is snow if the value is >= `snow_threshold` (0.5: the temporally closer observation wins,
   the midpoint counts as snow). SCD = number of snow days of the period; SOD / SMOD = first / last
   day index (0 = period start) of the longest run of consecutive snow days, ties to the first run,
   only where SCD > `min_snow_days_for_sod` (10), else 0 (compute_SOD_SMOD.py). NOBS = number of
   clear observations over ALL inputs (margin dates and same-day duplicates included, before the
   merge; compute_NOBS.py). All uint16.

CUDA kernel `snow_duration` (kernels/scd.cu), NumPy twin `snow_duration_numpy`: both use integer
arithmetic only, so they agree exactly. The twin is vectorised over the pixels of a row strip and
loops over the days; it never holds a (n_days, H, W) array.

Choices of ours, documented here:
- Any code > 100 is invalid, not only 205 / 254 / 255 (LIS-new tests those three; with LIS products
  no other value occurs). A value 101..204 or 206..253 is therefore never taken as clear no-snow.
  LIS 1.5 tested one nodata value only and took the other one as clear no-snow (§3); not reproduced.
- The interpolated value is compared with `snow_threshold` exactly, as the fraction p/q nearest to it
  with q <= 10**6 (0.5 is 1/2): v >= p/q  <=>  q (y1 (t2 - t1) + (y2 - y1)(t - t1)) >= p (t2 - t1).
  LIS-new gap-fills 100 * snow in uint8 and writes floor(2 v / 100), i.e. v >= 0.5: the same days.
- The threshold must be in (0, 1]: a day is then snow on an observation / extrapolated day exactly
  when that observation is snow, and a pixel without valid observation has no snow day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from fractions import Fraction
from types import ModuleType
from typing import Any, NamedTuple

import numpy as np

from gpumaja.backend import Backend, array_module, to_numpy
from gpumaja.model.lis_params import SNW_NO_SNOW, SNW_SNOW, ScdParams

_KERNEL_FILE = "scd"
_BLOCK_1D = 128
_MAX_BLOCKS = 8192
_MAX_THRESHOLD_DENOMINATOR = 10**6
_MAX_DAYS = np.iinfo(np.uint16).max  # SCD <= n_days must fit uint16
# NumPy twin strips: at most this many (observation, pixel) elements and this many pixels at once
_STRIP_ELEMENTS = 2**25
_STRIP_PIXELS = 2**21


class DurationArrays(NamedTuple):
    """The four L3B rasters, (H, W) uint16 each, NumPy or CuPy (§3 "Products")."""

    scd: Any  # snow cover days
    sod: Any  # first day of the longest snow run (0 = period start), 0 where SCD <= min_snow_days_for_sod
    smod: Any  # last day of the longest snow run, same convention
    nobs: Any  # clear observations, all inputs


# --- period and inputs (§3 "Period", "Input selection") ---------------------------------------------


def period_for_year(year: int, params: ScdParams) -> tuple[date, date]:
    """(start, stop), both inclusive: the hydrological year that ENDS in `year` (§3 "Period").

    With the default 1 September start: "--year 2018" is 2017-09-01 .. 2018-08-31 (the convention of
    the LIS products, e.g. the "2017-18" season). In general start = (year - 1)-MM-DD and stop = the
    day before year-MM-DD (southern hemisphere, 1 March: 2017-03-01 .. 2018-02-28). A period starting
    on 1 January is the calendar year `year`.
    """
    m, d = params.period_start_month, params.period_start_day
    try:
        end_anchor = date(year, m, d)
        start = date(year - 1, m, d)
    except ValueError as exc:
        raise ValueError(f"invalid period start {m:02d}-{d:02d} for year {year}: {exc}") from exc
    stop = end_anchor - timedelta(days=1)
    if stop.year != year:  # 1 January: the period is the calendar year itself
        start, stop = end_anchor, date(year, 12, 31)
    return start, stop


def _as_date(d: date) -> date:
    return d.date() if isinstance(d, datetime) else d


def select_inputs(dates: Sequence[date], start: date, stop: date, params: ScdParams) -> list[int]:
    """Indices (ascending) of `dates` within [start - margin, stop + margin], margin =
    `params.date_margin_days` (§3 "Input selection"). Datetimes count by their calendar date."""
    margin = timedelta(days=params.date_margin_days)
    lo, hi = _as_date(start) - margin, _as_date(stop) + margin
    return [i for i, d in enumerate(dates) if lo <= _as_date(d) <= hi]


def day_offsets(dates: Sequence[date], start: date) -> np.ndarray:
    """(n,) int32 day index of each date relative to `start` (day 0; negative before it)."""
    s = _as_date(start)
    return np.array([(_as_date(d) - s).days for d in dates], dtype=np.int32)


# --- merge and binarisation (§3 "Densification", "Binarisation per date") ----------------------------


def merge_same_day(codes: list[Any], xp: ModuleType) -> Any:
    """One date's merged codes from products of the same day, in priority order (S2 first,
    densifiers after): the first product whose value is <= 100, otherwise the last product's value
    (§3 "Densification", LIS merge_masks_at_same_date). Returns a new array (or the only input)."""
    if not codes:
        raise ValueError("merge_same_day: no product to merge")
    out = xp.asarray(codes[-1])
    for c in reversed(codes[:-1]):
        c = xp.asarray(c)
        if c.shape != out.shape:
            raise ValueError(f"merge_same_day: shapes differ, {c.shape} and {out.shape}")
        out = xp.where(c <= SNW_SNOW, c, out)
    return out


def classify_codes(codes: Any, params: ScdParams, xp: ModuleType) -> tuple[Any, Any]:
    """(snow, clear) bool arrays of the shape of `codes` (§3 "Binarisation per date").

    clear = the value is <= 100 (0 no snow, 1..100 snow or FSC %); every value > 100 is invalid:
    205 cloud, 255 / 254 nodata and, by our choice, any other value. snow = clear and
    0 < value (LIS-new, `fsc_counts_as_snow`) or value == 100 (LIS 1.5).
    """
    c = xp.asarray(codes)
    clear = c <= SNW_SNOW
    snow = (clear & (c > SNW_NO_SNOW)) if params.fsc_counts_as_snow else (c == SNW_SNOW)
    return snow, clear


# --- gap filling, SCD / SOD / SMOD (§3 "Gap filling", "Products") -----------------------------------


def _threshold_fraction(params: ScdParams) -> tuple[int, int]:
    thr = float(params.snow_threshold)
    if not 0.0 < thr <= 1.0:
        raise ValueError(f"snow_threshold must be in (0, 1], got {thr}")
    f = Fraction(thr).limit_denominator(_MAX_THRESHOLD_DENOMINATOR)
    return f.numerator, f.denominator


def _check_days(obs_days: Any, n_obs: int, n_days: int, *, unique_sorted: bool) -> np.ndarray:
    days = np.asarray(obs_days)
    if days.ndim != 1 or days.shape[0] != n_obs:
        raise ValueError(f"obs_days must have shape ({n_obs},), got {days.shape}")
    if days.size and not np.issubdtype(days.dtype, np.integer):
        raise ValueError(f"obs_days must be integers (day indices), got {days.dtype}")
    info = np.iinfo(np.int32)
    if days.size and (int(days.min()) < info.min or int(days.max()) > info.max):
        raise ValueError("obs_days must fit int32")
    days = days.astype(np.int32)
    if unique_sorted and days.size > 1 and not bool(np.all(np.diff(days) > 0)):
        raise ValueError("obs_days must be strictly ascending (one merged observation per day)")
    if not 0 <= int(n_days) <= _MAX_DAYS:
        raise ValueError(f"n_days must be in [0, {_MAX_DAYS}], got {n_days}")
    return days


def _check_stack(codes: Any, what: str = "codes") -> tuple[int, int, int]:
    if codes.ndim != 3:
        raise ValueError(f"{what} must be a (T, H, W) stack, got shape {tuple(codes.shape)}")
    if codes.dtype != np.uint8:
        raise ValueError(f"{what} must be uint8 SNW/FSC codes, got {codes.dtype}")
    return tuple(int(s) for s in codes.shape)


def _rows_per_strip(n_obs: int, width: int) -> int:
    pixels = min(_STRIP_PIXELS, _STRIP_ELEMENTS // max(n_obs, 1))
    return max(1, pixels // max(width, 1))


def _duration_strip(codes: np.ndarray, days: np.ndarray, n_days: int, params: ScdParams,
                    num: int, den: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SCD, SOD, SMOD of a (T, P) strip: vectorised over the P pixels, a loop over the days.

    Between two consecutive observation days the bracketing valid observations (t1, y1), (t2, y2)
    of each pixel do not change, so its snow days there form one interval [lo, hi]: rising (0 -> 1)
    from t1 + ceil(p (t2 - t1) / q), falling (1 -> 0) up to t2 - ceil(p (t2 - t1) / q), constant
    otherwise. Each day is then two comparisons and the run bookkeeping.
    """
    n_obs, n_px = codes.shape
    snow, clear = classify_codes(codes, params, np)
    # nxt[k]: index of the first valid observation >= k (n_obs: none), per pixel
    idx_dtype = np.int16 if n_obs < np.iinfo(np.int16).max else np.int32
    nxt = np.empty((n_obs + 1, n_px), dtype=idx_dtype)
    nxt[n_obs] = n_obs
    for k in range(n_obs - 1, -1, -1):
        np.copyto(nxt[k], nxt[k + 1])
        nxt[k][clear[k]] = k
    days_ext = np.append(days.astype(np.int64), 0)
    snow_ext = np.concatenate([snow, np.zeros((1, n_px), dtype=bool)])
    cols = np.arange(n_px)

    has_prev = np.zeros(n_px, dtype=bool)
    t1 = np.zeros(n_px, dtype=np.int64)
    y1 = np.zeros(n_px, dtype=np.int64)
    lo = np.empty(n_px, dtype=np.int32)
    hi = np.empty(n_px, dtype=np.int32)
    low, high = np.int32(-1), np.int32(n_days + 1)  # just outside [0, n_days): an unbounded interval end

    def segment(k: int) -> None:
        """lo / hi for the days after the observations [0, k) and before observation k."""
        ni = nxt[k]
        has_next = ni < n_obs
        t2 = days_ext[ni]
        y2 = snow_ext[ni, cols].astype(np.int64)
        both = has_prev & has_next
        # one side only (or none): the value is that observation's (0 without any)
        y_one = np.where(has_prev, y1, y2)
        one_snow = (has_prev | has_next) & (den * y_one >= num)
        lo[:] = np.where(one_snow, low, high)  # snow every day, or none (lo > hi)
        hi[:] = np.where(one_snow, high, low)
        if not bool(both.any()):
            return
        dt = np.where(both, t2 - t1, 1)
        step = -((-num * dt) // den)  # ceil(p dt / q) >= 1
        rising = both & (y1 == 0) & (y2 == 1)
        falling = both & (y1 == 1) & (y2 == 0)
        flat = both & (y1 == y2)
        flat_snow = flat & (den * y1 >= num)
        lo[:] = np.where(rising, np.clip(t1 + step, low, high), lo)
        hi[:] = np.where(rising, high, hi)
        lo[:] = np.where(falling, low, lo)
        hi[:] = np.where(falling, np.clip(t2 - step, low, high), hi)
        lo[:] = np.where(flat, np.where(flat_snow, low, high), lo)
        hi[:] = np.where(flat, np.where(flat_snow, high, low), hi)

    count = np.zeros(n_px, dtype=np.int32)
    cur = np.zeros(n_px, dtype=np.int32)
    best = np.zeros(n_px, dtype=np.int32)
    best_end = np.zeros(n_px, dtype=np.int32)
    s = np.empty(n_px, dtype=bool)
    tmp = np.empty(n_px, dtype=bool)
    better = np.empty(n_px, dtype=bool)
    kp = 0
    segment(0)
    for d in range(n_days):
        consumed = False
        while kp < n_obs and days[kp] <= d:
            v = clear[kp]
            has_prev |= v
            t1[v] = days[kp]
            y1[v] = snow[kp][v]
            kp += 1
            consumed = True
        if consumed:
            segment(kp)
        np.less_equal(lo, d, out=s)
        np.greater_equal(hi, d, out=tmp)
        s &= tmp
        count += s
        cur += 1
        cur *= s
        np.greater(cur, best, out=better)
        np.copyto(best, cur, where=better)
        np.copyto(best_end, d, where=better)
    keep = count > params.min_snow_days_for_sod
    sod = np.where(keep, best_end - best + 1, 0).astype(np.uint16)
    smod = np.where(keep, best_end, 0).astype(np.uint16)
    return count.astype(np.uint16), sod, smod


def snow_duration_numpy(codes: np.ndarray, obs_days: np.ndarray, n_days: int, params: ScdParams, *,
                        rows_per_strip: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy twin of the `snow_duration` kernel: (scd, sod, smod), (H, W) uint16 each (§3).

    codes: (T, H, W) uint8, one (merged) observation per day; obs_days: (T,) int day indices relative
    to the period start, strictly ascending (negative / >= n_days for margin dates); n_days: output
    days, day 0 = period start. Processed in row strips (`rows_per_strip`, default from a budget of
    about 2**25 observation-pixels), so temporaries stay a small fraction of the stack.
    """
    codes = np.asarray(codes)
    n_obs, h, w = _check_stack(codes)
    days = _check_days(obs_days, n_obs, n_days, unique_sorted=True)
    num, den = _threshold_fraction(params)
    out = tuple(np.zeros((h, w), dtype=np.uint16) for _ in range(3))
    rows = rows_per_strip or _rows_per_strip(n_obs, w)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        strip = codes[:, r0:r1].reshape(n_obs, (r1 - r0) * w)
        for o, part in zip(out, _duration_strip(strip, days, int(n_days), params, num, den), strict=True):
            o[r0:r1] = part.reshape(r1 - r0, w)
    return out


def _gpu_kernel(codes, days: np.ndarray, n_days: int, params: ScdParams, num: int, den: int):
    import cupy

    from gpumaja.kernels import get_module

    n_obs, h, w = (int(s) for s in codes.shape)
    scd = cupy.zeros((h, w), dtype=cupy.uint16)
    sod = cupy.zeros((h, w), dtype=cupy.uint16)
    smod = cupy.zeros((h, w), dtype=cupy.uint16)
    n = h * w
    if n == 0:
        return scd, sod, smod
    if n_obs == 0:  # no observation: every pixel 0
        return scd, sod, smod
    kernel = get_module(_KERNEL_FILE).get_function("snow_duration")
    grid = (min(_MAX_BLOCKS, (n + _BLOCK_1D - 1) // _BLOCK_1D),)
    kernel(grid, (_BLOCK_1D,), (
        cupy.ascontiguousarray(codes), cupy.asarray(days, dtype=cupy.int32), np.int32(n_obs), np.int32(n),
        np.int32(n_days), np.int32(SNW_SNOW), np.int32(SNW_NO_SNOW), np.int32(SNW_SNOW),
        np.int32(1 if params.fsc_counts_as_snow else 0), np.int64(num), np.int64(den),
        np.int32(params.min_snow_days_for_sod), scd, sod, smod,
    ))
    return scd, sod, smod


def _day_groups(days: np.ndarray) -> tuple[np.ndarray, list[list[int]]]:
    """(unique sorted days, for each the input indices in their given order)."""
    order = np.argsort(days, kind="stable")
    udays, starts = np.unique(days[order], return_index=True)
    bounds = list(starts) + [len(order)]
    groups = [order[bounds[g]:bounds[g + 1]].tolist() for g in range(len(udays))]
    return udays.astype(np.int32), groups


def _merged(stack: Any, groups: list[list[int]], xp: ModuleType) -> Any:
    if all(len(g) == 1 for g in groups) and [g[0] for g in groups] == list(range(len(groups))):
        return stack  # already one observation per day, in day order
    if not groups:
        return stack[:0]
    return xp.stack([stack[g[0]] if len(g) == 1 else merge_same_day([stack[i] for i in g], xp) for g in groups])


def _count_clear(stack: Any, params: ScdParams, xp: ModuleType) -> Any:
    nobs = xp.zeros(stack.shape[1:], dtype=xp.uint16)
    for t in range(stack.shape[0]):
        nobs += classify_codes(stack[t], params, xp)[1]
    return nobs


def snow_duration(codes: Any, obs_days: Any, n_days: int, params: ScdParams, backend: Backend | None = None,
                  nobs_codes: Any = None) -> DurationArrays:
    """SCD, SOD, SMOD and NOBS of one period from a stack of per-date snow codes (§3).

    codes: (T, H, W) uint8 SNW (0/100/205/255) or FSC (0..100/205/255) codes, one layer per input
    product; obs_days: (T,) int day index of each layer relative to the period start (day 0 = start,
    negative or >= n_days for margin dates), in any order and possibly repeated (several products of
    one day); layers of one day are merged with `merge_same_day` in their given order (S2 first,
    densifiers after). n_days: days of the period ((stop - start).days + 1).

    NOBS counts the clear observations of all layers before the merge (margin dates and same-day
    duplicates included), or of `nobs_codes` ((T', H, W) uint8) when given, e.g. when the caller
    merged products itself. The CUDA kernel runs when `backend.is_gpu` (or, without a backend, for
    CuPy input), else the NumPy twin strip by strip. Results are arrays of the backend's kind.
    """
    on_gpu = backend.is_gpu if backend is not None else array_module(codes).__name__ == "cupy"
    n_obs, h, w = _check_stack(codes)
    days = _check_days(to_numpy(obs_days), n_obs, n_days, unique_sorted=False)
    if nobs_codes is not None:
        if nobs_codes.ndim != 3 or tuple(nobs_codes.shape[1:]) != (h, w):
            raise ValueError(f"nobs_codes must be a (T', {h}, {w}) stack, got {tuple(nobs_codes.shape)}")
        _check_stack(nobs_codes, "nobs_codes")
    num, den = _threshold_fraction(params)
    udays, groups = _day_groups(days)

    if on_gpu:
        import cupy
        import nvtx

        if h * w >= 2**31:
            raise ValueError(f"snow_duration: {h}x{w} pixels exceed the kernel's 32-bit indexing")
        with nvtx.annotate("snow_duration", domain="gpumaja"):
            stack = cupy.asarray(codes)
            nobs = _count_clear(stack if nobs_codes is None else cupy.asarray(nobs_codes), params, cupy)
            merged = _merged(stack, groups, cupy)
            scd, sod, smod = _gpu_kernel(merged, udays, int(n_days), params, num, den)
            return DurationArrays(scd, sod, smod, nobs)

    stack = to_numpy(codes)
    nob_src = None if nobs_codes is None else to_numpy(nobs_codes)
    out = [np.zeros((h, w), dtype=np.uint16) for _ in range(4)]
    rows = _rows_per_strip(max(n_obs, 1), w)
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        part = stack[:, r0:r1]
        merged = _merged(part, groups, np)
        res = snow_duration_numpy(merged, udays, int(n_days), params, rows_per_strip=r1 - r0)
        for o, a in zip(out[:3], res, strict=True):
            o[r0:r1] = a
        out[3][r0:r1] = _count_clear(part if nob_src is None else nob_src[:, r0:r1], params, np)
    return DurationArrays(*out)


__all__ = ["DurationArrays", "classify_codes", "day_offsets", "merge_same_day", "period_for_year",
           "select_inputs", "snow_duration", "snow_duration_numpy"]
