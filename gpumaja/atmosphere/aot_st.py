"""Aerosol optical thickness, MAJA NOMINAL mode: the spectro-temporal method (maja-l2a.md §3.5).

With a composite (§2) MAJA combines the multi-temporal (MT) and multispectral (MS) criteria in one
least-squares problem per AOT-grid node whose unknowns are [τ_D, τ_{D−1}]. The steps, in MAJA's
order (`vnsSpectroTemporalComputeAOTImageFilter`):

1. `aot_insensitive_interval`: from the date's mini-LUT, the TOA* range of the MT band where the
   surface reflectance hardly depends on the AOT (`vnsMultiTemporalAOTMethodThresholdsGenerator`).
2. `mt_selection`: pixels usable by the MT equations (clear today and in the composite, young enough,
   stable in the var band, TOA* outside the insensitive range). `ms_selection` of
   `gpumaja.atmosphere.aot` gives the MS pixels.
3. `aot_spectrotemporal`: per node, a 2-unknown Levenberg–Marquardt inversion. Raw CUDA kernel
   `kernels/aot_st.cu` (`aot_st_lm`), NumPy twin `aot_spectrotemporal_numpy` (same steps, float64).

Nodes, sample windows, sampling-interval growth, edge clamping, LUT reading, LM steps and the dark /
bound residuals are those of `gpumaja.atmosphere.aot` (read its docstring first). What is new:

Per node and sampling interval I (I = sampling_interval_min, + increment_n_distance, ... up to
sampling_interval_max), as MAJA:
- MS is valid at the first I giving >= `n_pix_min` MS-selected samples; its sample set is then kept
  for the larger intervals (MAJA freezes it too).
- MT at I: among the MT-selected samples, the local previous date LPD is the most frequent composite
  date PXD (`local_previous_date`: ties go to the date closest to `day`, then to the later date;
  MAJA's "closest to D" rule). Only samples with PXD == LPD enter the MT equations. MT is valid when
  there are >= `n_pix_min` of them (and at least 2) and the sample standard deviation (n − 1) of their
  TOA* in `stdev_band` is > `stdev_min`; its samples and weights are then kept.
- The inversion runs at the first I where MT and MS are both valid, or at the largest I if either is
  (§3.5 "The inversion is run if ..."). Where MT is never valid the node is exactly the MS inversion of
  `aot_multispectral` (same samples, same cost, same scalar LM steps): method 1. MT valid: method 2
  (with the MS equations when MS is valid too). Neither: NaN, method 0.

Weights (`mt_weights`, `vnsMultiTemporalAOTMethodFunctions::ComputeWeight`):
    W1 = min(|mean over MT samples of (ρ*_D − ρ*_RTA)| / std_noise, mt_weight_threshold) · f
    W2 = w_mt_equation2 · f,       f = st_weight_a / (Δt² + st_weight_b),   Δt = day − LPD
(one MT band: `params.mt_aot_band`).

Cost of one node, residuals as listed in §3.5 (T_b the date's mini-LUT TOC table of band b, L the
LTC table of the LPD, h the altitude, all read as in `gpumaja.atmosphere.aot`):
    MT eq. 1 (per MT sample)  W1·u·[T_mt(h, τ_D, ρ*_D) − L(h, τ_{D−1}, ρ*_RTA)]
    MT eq. 2 (per MT sample)  W2·u·[T_mt(h, τ_D, ρ*_D) − RTC]
    MS eq.   (per MS sample)  as `aot_ms_lm` (function of τ_D only)
    dark                      sqrt(W_dark)·(τ_D − τ_dark)                  if τ_D > τ_dark
    bounds                    sqrt(W_bounds)·(excess of τ_D, and of τ_{D−1} when MT is used)
Every table of a sample at altitude h_p is read at that sample's own AOTs s_p·τ_D and s_p·τ_{D−1}, with
s_p = exp(−h_p / aot_height_scale_m) (1 when it is 0, MAJA's method): the unknowns are sea-level AOTs
and each τ derivative carries s_p (`gpumaja.atmosphere.aot`, "AOT over relief").
The unit factor u is set by `params.mt_residual_units`:
- "surface" (MAJA's cost, the default): u = 1, the MT residuals are surface-reflectance differences;
- "toa" (opt-in; a deviation from MAJA, below): u = dρ*/dρs = 1 / q, the date's total transmission
  at the sample, q = ∂T_mt/∂ρ* the slope of the TOA* cell holding ρ*_D (bilinear in altitude and AOT
  like T_mt itself, so linear in τ_D on the AOT cell; `_toa_slope_profile`); u = 0 where q <= 0 (no
  physical table has that). u depends on τ_D only (not on τ_{D−1}), and its derivative
  du/dτ_D = −u²·∂q/∂τ_D is in the τ_D Jacobian: ∂e/∂τ_D = W·(u·∂T_mt/∂τ_D + du/dτ_D·[...]). Neglecting
  it (weights frozen per iteration) is not an option: it moves the solution off the minimum of the
  cost (0.160 instead of 0.321 in tests/test_atmosphere_aot_st.py::test_lm_minimises_the_documented_cost).
LM from (aot_initial, aot_initial_dm1): the Gauss–Newton normal matrix H = JᵀJ (2×2) is damped on
its diagonal, (H + λ·diag H)·δ = −Jᵀr, solved in closed form; when H[1][1] is 0 (no MT term: τ_{D−1}
has no residual) the step is the scalar one of `aot_ms_lm`, δ = −g / (H (1 + λ)). λ, the acceptance
rule and the stopping tests (max |δ| < lm_tolerance, relative decrease < lm_tolerance, at most
lm_max_iterations trial steps) are `aot_ms_lm`'s. τ_D is returned clamped to [aot_min, aot_max].

The D−1 table is `ltc_tables[k]` with `ltc_days[k] == LPD`; when the LPD has no stored table, the
nearest stored date is used (ties: the first in `ltc_days` order, as `CompositeState.ltc_for`). This
deviates from MAJA, which stops with an error when a PXD date has no LUT.

Opt-in deviation from MAJA: the MT residuals in TOA units (`mt_residual_units = "toa"`). It is not
the default: it removes the low bias on the 16-date synthetic series (docs/l2a.md) but on a 2-date
1.2 km steep snowy scene (tests/test_cli_l2a.py's) it gives 0.28 where the truth is 0.06 and MAJA's
cost 0.07, the MS terms then weighing relatively more (below).
MAJA forms the MT residuals in surface-reflectance units. A real surface change Δρs between the LPD
and D shows at TOA as ≈ T(τ_true)·Δρs and, inverted at trial AOTs, as ≈ T(τ_true)/T(τ)·Δρs: lowering
τ_D and τ_{D−1} together raises the transmission T and shrinks that scatter, while the mean of
equation 1 stays ≈ 0 along that direction (both path reflectances drop). This errors-in-variables
effect drives τ low, to the lower bound where W1 is at its cap (on winter series the sun-zenith
change between the dates makes |mean TOA* difference| large): docs/l2a.md "Spectro-temporal AOT".
Multiplied by the transmission, u·[ρs_D(τ_D) − ρs] ≈ ρ*_D − ρ*(ρs, τ_D), the misfit of the observed
TOA* of D, to first order, so the surface-change part (T(τ_true)·Δρs) no longer depends on the trial
AOT. The same argument holds for equation 2 (RTC is a stored surface reflectance of an earlier date)
and the same factor is applied there: on synthetic samples with a known random surface change and
equation 2 alone, surface units give a small low bias (−0.005 for a 0.02 std change) that TOA units
remove; with both equations, surface units are 0.03 low for a 0.01 std change, TOA units unbiased
(`test_toa_units_remove_the_low_bias_of_surface_change`). The MS residuals stay in surface units (the
blue/red relation is a surface property, not a change between dates), so against the MS ones the MT
equations weigh ≈ T² times what they weigh in MAJA (B01: T ≈ 0.55–0.65 at τ 0.15–0.25 on the winter
synthetic series, T² ≈ 0.3–0.4; 0.75 in the tests' atmosphere). With no surface change both units
are zero at the true AOTs.

Other deviations from MAJA, documented here:
- MAJA skips a node whose centre pixel is edge; as `aot_ms_lm`, we leave such nodes to the caller's
  masks (an all-edge window has no selected sample anyway).
- The insensitive interval is open at both ends (TOC difference strictly below the threshold, TOA*
  strictly outside [lo, hi] selected); MAJA uses <= for the difference and keeps TOA* == lo or hi.
- Derivatives are the exact slopes of the interpolated tables (MAJA: central differences, ε = 1e-5,
  with τ_D and τ_{D−1} partial derivatives partly swapped in its MT cost function).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.atmosphere.aot import (
    LM_LAMBDA0,
    LM_LAMBDA_FACTOR,
    _check_ms_inputs,
    _intervals,
    _locate,
    _ms_terms,
    _toc_profile,
    _weights,
    aot_node_positions,
    height_factor,
)
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import Backend, array_module, to_numpy
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

# TOA* scan of the AOT-insensitive interval (MAJA TOAReflMin / TOAReflMax / TOAReflStep)
INSENSITIVE_TOA_MIN = 0.0
INSENSITIVE_TOA_MAX = 1.0
INSENSITIVE_TOA_STEP = 0.01
PXD_NODATA = -32768  # gpumaja.composite.PXD_NODATA (not imported: compute modules stay below the pipeline)
_NODE_CHUNK = 2048  # nodes per batch in the NumPy mode computation (memory: chunk x 49 x 49 bools)

METHOD_NONE, METHOD_MS, METHOD_MT = 0, 1, 2
MT_RESIDUAL_UNITS = ("toa", "surface")  # L2Params.mt_residual_units

_KERNEL_FILE = "aot_st"
_KERNEL = "aot_st_lm"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK = (16, 8)


# --- 1. AOT-insensitive TOA* interval ----------------------------------------------------------------


def aot_insensitive_interval(lut: MiniLUT, band: str, altitude: float, params: L2Params) -> tuple[float, float]:
    """TOA* range of `band` where the surface reflectance does not depend on the AOT (maja-l2a.md §3.5,
    `vnsMultiTemporalAOTMethodThresholdsGenerator`).

    TOA* is scanned from `INSENSITIVE_TOA_MIN` to `INSENSITIVE_TOA_MAX` by `INSENSITIVE_TOA_STEP`
    (0, 0.01, ..., 1); a value is insensitive where |TOC(first_aot) − TOC(second_aot)| <
    `toc_insensitive_threshold`, TOC read on the mini-LUT at `altitude` (clamped, as the AOTs, to the
    LUT axes; MAJA uses the scene's mean altitude). Returns (min, max) of the insensitive values, or
    (NaN, NaN) when there is none (then nothing is excluded).

    A non-contiguous set is replaced by its envelope: every TOA* between the smallest and the largest
    insensitive value is treated as insensitive, including sensitive values in a gap (MAJA keeps only
    the min and the max too).
    """
    ib = lut.index(band)
    n = round((INSENSITIVE_TOA_MAX - INSENSITIVE_TOA_MIN) / INSENSITIVE_TOA_STEP) + 1
    toa = INSENSITIVE_TOA_MIN + np.arange(n) * INSENSITIVE_TOA_STEP
    if not math.isfinite(float(altitude)):
        raise InputError(f"aot_insensitive_interval: altitude must be finite, got {altitude!r}")
    profile = _toc_profile(lut, ib, np.full(n, float(altitude)), toa)  # (n, n_aot)
    aot = np.asarray(lut.aot, dtype=np.float64)
    first = np.array([np.interp(params.first_aot, aot, row) for row in profile])
    second = np.array([np.interp(params.second_aot, aot, row) for row in profile])
    insensitive = np.abs(first - second) < params.toc_insensitive_threshold
    if not insensitive.any():
        return math.nan, math.nan
    values = toa[insensitive]
    return float(values.min()), float(values.max())


# --- 2. MT pixel selection ---------------------------------------------------------------------------


def mt_selection(
    toa_var: Any,
    rta_var: Any,
    age_days: Any,
    toa_mt: Any,
    insensitive_lo: float,
    insensitive_hi: float,
    excluded: Any,
    params: L2Params,
    xp: ModuleType = np,
) -> Any:
    """MT pixel selection (maja-l2a.md §3.5, `MultiTemporalAOTMethodFunctions::AOTPixelSelection`).

    Selected, each condition required:
    - not `excluded` (the caller ORs edge, composite nodata, all clouds incl. shadows, topographic
      shadow, water, snow, saturated in the var band or the MT band; None excludes nothing);
    - composite age `age_days` (day − PXD, `CompositeState.age`) < `aot_max_age`;
    - |toa_var − rta_var| / (toa_var + rta_var) <= `relative_var_max` (TOA* of `var_band` today vs the
      composite RTA; not selected where the sum is <= 0 or an input is NaN);
    - TOA* of the MT band strictly outside [insensitive_lo, insensitive_hi] (`aot_insensitive_interval`;
      a NaN bound means no insensitive interval: any finite TOA* passes).

    Returns a (cy, cx) bool array of `xp`.
    """
    tv = xp.asarray(toa_var, dtype=xp.float32)
    rv = xp.asarray(rta_var, dtype=xp.float32)
    age = xp.asarray(age_days)
    mt = xp.asarray(toa_mt, dtype=xp.float32)
    shapes = {"toa_var": tv.shape, "rta_var": rv.shape, "age_days": age.shape, "toa_mt": mt.shape}
    if tv.ndim != 2 or any(s != tv.shape for s in shapes.values()):
        raise InputError(f"mt_selection: inputs must share one (cy, cx) shape, got {shapes}")
    total = tv + rv
    pos = total > 0
    rel = xp.abs(tv - rv) / xp.where(pos, total, np.float32(1))
    selected = pos & xp.isfinite(rel) & (rel <= np.float32(params.relative_var_max))
    selected &= age < params.aot_max_age
    selected &= xp.isfinite(mt)
    lo, hi = float(insensitive_lo), float(insensitive_hi)
    if math.isfinite(lo) and math.isfinite(hi):
        selected &= (mt < np.float32(lo)) | (mt > np.float32(hi))
    if excluded is not None:
        ex = xp.asarray(excluded, dtype=bool)
        if ex.shape != tv.shape:
            raise InputError(f"mt_selection: excluded has shape {ex.shape}, expected {tv.shape}")
        selected &= ~ex
    return selected


# --- 3. helpers shared by the twin and the tests -------------------------------------------------------


def local_previous_date(dates: np.ndarray, valid: np.ndarray, day: int) -> np.ndarray:
    """LPD per row: the most frequent value of `dates` among the `valid` entries (maja-l2a.md §3.5);
    ties go to the date closest to `day`, then to the later date. dates/valid (n, m); rows without a
    valid entry get PXD_NODATA. The kernel applies the same rule."""
    d = np.asarray(dates, dtype=np.int64)
    v = np.asarray(valid, dtype=bool)
    if d.ndim != 2 or d.shape != v.shape:
        raise InputError(f"local_previous_date: dates {d.shape} and valid {v.shape} must be the same (n, m)")
    out = np.full(d.shape[0], PXD_NODATA, dtype=np.int64)
    for s in range(0, d.shape[0], _NODE_CHUNK):
        dd, vv = d[s:s + _NODE_CHUNK], v[s:s + _NODE_CHUNK]
        same = (dd[:, :, None] == dd[:, None, :]) & vv[:, None, :]
        count = np.where(vv, same.sum(axis=2), 0)
        best = count.max(axis=1)
        cand = vv & (count == best[:, None])
        dist = np.where(cand, np.abs(np.int64(day) - dd), np.iinfo(np.int64).max)
        cand &= dist == dist.min(axis=1)[:, None]
        lpd = np.where(cand, dd, np.iinfo(np.int64).min).max(axis=1)
        out[s:s + _NODE_CHUNK] = np.where(vv.any(axis=1), lpd, PXD_NODATA)
    return out


def mt_weights(mean_diff: Any, stdev: Any, dt: Any, params: L2Params) -> tuple[Any, Any, Any]:
    """(W1, W2, valid) of the MT equations (maja-l2a.md §3.5 "MT weight"), elementwise on NumPy arrays
    or scalars: valid = stdev > stdev_min; W1 = min(|mean_diff| / std_noise, mt_weight_threshold) · f,
    W2 = w_mt_equation2 · f, f = st_weight_a / (dt² + st_weight_b). mean_diff: mean of ρ*_D − ρ*_RTA
    over the MT samples; stdev: standard deviation of TOA* in `stdev_band` over them; dt = day − LPD."""
    mean_diff = np.asarray(mean_diff, dtype=np.float64)
    dt = np.asarray(dt, dtype=np.float64)
    w1 = np.abs(mean_diff) / params.std_noise
    w1 = np.where(w1 > params.mt_weight_threshold, params.mt_weight_threshold, w1)
    factor = params.st_weight_a / (dt * dt + params.st_weight_b)
    valid = np.asarray(stdev, dtype=np.float64) > params.stdev_min
    return w1 * factor, params.w_mt_equation2 * factor, valid


def _ltc_index(ltc_days: np.ndarray, dates: np.ndarray) -> np.ndarray:
    """Index of the stored LTC table for each date: the exact date, else the nearest (first on ties)."""
    dist = np.abs(np.asarray(dates, dtype=np.int64)[:, None] - ltc_days[None, :])
    return np.argmin(dist, axis=1)  # argmin returns the first minimum


def _profile_of_table(table: np.ndarray, lut: MiniLUT, altitude: np.ndarray, toa: np.ndarray) -> np.ndarray:
    """`_toc_profile` of aot.py for a bare (n_alt, n_aot, n_toa) table on `lut`'s axes."""
    one = MiniLUT(("t",), lut.altitude, lut.aot, lut.toa, np.asarray(table, dtype=np.float32)[None],
                  *(np.ones((1, lut.altitude.size, lut.aot.size), np.float32),) * 5)
    return _toc_profile(one, 0, altitude, toa)


def _toa_slope_profile(table: np.ndarray, lut: MiniLUT, altitude: np.ndarray, toa: np.ndarray) -> np.ndarray:
    """(n, n_aot) slope ∂TOC/∂TOA* of a bare (n_alt, n_aot, n_toa) table at each AOT node: the slope of the
    TOA* cell holding `toa` (the cell `_toc_profile` interpolates or extrapolates in), bilinear in altitude
    (clamped). Same formula and order as `st_toa_slope_at` in kernels/aot_st.cu."""
    t = np.asarray(table, dtype=np.float32)
    h = np.clip(altitude, float(lut.altitude[0]), float(lut.altitude[-1]))
    ia, wa = _locate(lut.altitude, h)
    it, _ = _locate(lut.toa, toa)
    toa_axis = np.asarray(lut.toa, dtype=np.float32).astype(np.float64)
    ia, it, wa = ia[:, None], it[:, None], wa[:, None]
    k = np.arange(lut.aot.size)[None, :]
    d0 = t[ia, k, it + 1].astype(np.float64) - t[ia, k, it].astype(np.float64)
    d1 = t[ia + 1, k, it + 1].astype(np.float64) - t[ia + 1, k, it].astype(np.float64)
    return ((1.0 - wa) * d0 + wa * d1) / (toa_axis[it + 1] - toa_axis[it])


# --- 4. spectro-temporal inversion ---------------------------------------------------------------------


_NEEDED_BANDS = ("mt_aot_band", "blue_band", "red_band", "stdev_band")


def _check_inputs(arrays: dict, lut: MiniLUT, ltc: np.ndarray | None, ltc_days: np.ndarray,
                  params: L2Params) -> tuple[int, int]:
    first = _check_ms_inputs(arrays, params, lut, caller="aot_spectrotemporal")
    _toa_units(params)
    expected = (lut.altitude.size, lut.aot.size, lut.toa.size)
    n_ltc = 0 if ltc is None else ltc.shape[0]
    if ltc is not None and (ltc.ndim != 4 or tuple(ltc.shape[1:]) != expected):
        raise InputError(f"aot_spectrotemporal: ltc_tables has shape {ltc.shape}, expected (n_ltc, "
                         f"{', '.join(map(str, expected))}) on the mini-LUT's (altitude, AOT, TOA*) axes")
    if ltc_days.size != n_ltc:
        raise InputError(f"aot_spectrotemporal: {ltc_days.size} ltc_days for {n_ltc} LTC tables")
    return first


def _band_arrays(toa_star: dict, rta: dict, params: L2Params) -> dict[str, Any]:
    out = {}
    for role in _NEEDED_BANDS:
        band = getattr(params, role)
        if band not in toa_star:
            raise InputError(f"aot_spectrotemporal: toa_star has no band {band!r} ({role}); it has "
                             f"{', '.join(sorted(toa_star))}")
        out[role] = toa_star[band]
    if params.mt_aot_band not in rta:
        raise InputError(f"aot_spectrotemporal: rta has no band {params.mt_aot_band!r} (mt_aot_band)")
    out["rta_mt"] = rta[params.mt_aot_band]
    return out


def _ltc_inputs(ltc_tables: Any, ltc_days: Sequence[int]) -> tuple[np.ndarray | None, np.ndarray]:
    days = np.asarray(list(ltc_days), dtype=np.int64)
    if ltc_tables is None:
        return None, days
    return np.asarray(to_numpy(ltc_tables), dtype=np.float32), days


def aot_spectrotemporal_numpy(
    toa_star: dict[str, Any],
    rta: dict[str, Any],
    rtc_mt: Any,
    pxd: Any,
    mt_selected: Any,
    ms_selected: Any,
    ndvi: Any,
    altitude: Any,
    lut: MiniLUT,
    ltc_tables: Any,
    ltc_days: Sequence[int],
    day: int,
    aot_dark: float,
    params: L2Params,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy twin of the `aot_st_lm` kernel: (aot_grid float32 NaN = none, n_used int32, method int8),
    each (ceil(cy / step_aot), ceil(cx / step_aot)). Vectorised over the nodes: each selected pixel's
    residual terms are tabulated once at every AOT node of the LUT, then all nodes iterate together."""
    bands = {k: np.asarray(to_numpy(v), dtype=np.float32) for k, v in _band_arrays(toa_star, rta, params).items()}
    rtc = np.asarray(to_numpy(rtc_mt), dtype=np.float32)
    dates = np.asarray(to_numpy(pxd)).astype(np.int64)
    nd = np.asarray(to_numpy(ndvi), dtype=np.float32)
    alt = np.asarray(to_numpy(altitude), dtype=np.float32)
    sel_mt = np.asarray(to_numpy(mt_selected), dtype=bool)
    sel_ms = np.asarray(to_numpy(ms_selected), dtype=bool)
    ltc, days = _ltc_inputs(ltc_tables, ltc_days)
    cy, cx = _check_inputs({**bands, "rtc_mt": rtc, "pxd": dates, "ndvi": nd, "altitude": alt,
                            "mt_selected": sel_mt, "ms_selected": sel_ms}, lut, ltc, days, params)
    imt, ib, ir = lut.index(params.mt_aot_band), lut.index(params.blue_band), lut.index(params.red_band)
    blue, red = bands["blue_band"], bands["red_band"]
    toa_mt, rta_mt, toa_sd = bands["mt_aot_band"], bands["rta_mt"], bands["stdev_band"]
    sel_ms = sel_ms & np.isfinite(blue) & np.isfinite(red) & np.isfinite(nd) & np.isfinite(alt)
    sel_mt = (sel_mt & np.isfinite(toa_mt) & np.isfinite(rta_mt) & np.isfinite(rtc) & np.isfinite(toa_sd)
              & np.isfinite(alt) & (dates != PXD_NODATA))
    if days.size == 0:
        sel_mt[:] = False

    # --- per selected pixel: tabulated residual terms -----------------------------------------------
    ms_lookup, d_prof, w_pix, s_pix = _ms_terms(lut, ib, ir, sel_ms, alt, blue, red, nd, params)

    f_mt = np.flatnonzero(sel_mt)
    mt_lookup = np.full(cy * cx, -1, dtype=np.int64)
    mt_lookup[f_mt] = np.arange(f_mt.size)
    h_mt = alt.reshape(-1)[f_mt].astype(np.float64)
    mt_date = dates.reshape(-1)[f_mt]
    td_prof = _toc_profile(lut, imt, h_mt, toa_mt.reshape(-1)[f_mt].astype(np.float64))
    tl_prof = np.zeros_like(td_prof)
    if f_mt.size:
        k_table = _ltc_index(days, mt_date)
        r_mt = rta_mt.reshape(-1)[f_mt].astype(np.float64)
        for k in np.unique(k_table):
            m = k_table == k
            tl_prof[m] = _profile_of_table(ltc[k], lut, h_mt[m], r_mt[m])
    q_prof = (_toa_slope_profile(lut.toc[imt], lut, h_mt, toa_mt.reshape(-1)[f_mt].astype(np.float64))
              if f_mt.size else np.zeros_like(td_prof))
    rtc_pix = rtc.reshape(-1)[f_mt].astype(np.float64)
    s_mt_pix = height_factor(h_mt, params.aot_height_scale_m)
    diff_pix = toa_mt.reshape(-1)[f_mt].astype(np.float64) - rta_mt.reshape(-1)[f_mt].astype(np.float64)
    sd_pix = toa_sd.reshape(-1)[f_mt].astype(np.float64)

    # --- sampling interval and sample sets per node ---------------------------------------------------
    step = int(params.step_aot)
    ny, nx = aot_node_positions(cy, step), aot_node_positions(cx, step)
    gy, gx = ny.size, nx.size
    n_nodes = gy * gx
    hw = int(params.half_window_size)
    offs = np.arange(-hw, hw + 1)
    n_slot = offs.size * offs.size
    node_j, node_i = np.divmod(np.arange(n_nodes), gx)
    ms_valid = np.zeros(n_nodes, bool)
    ms_rows = np.full((n_nodes, n_slot), -1, dtype=np.int64)
    mt_valid = np.zeros(n_nodes, bool)
    mt_rows = np.full((n_nodes, n_slot), -1, dtype=np.int64)
    w1 = np.zeros(n_nodes)
    w2 = np.zeros(n_nodes)
    done = np.zeros(n_nodes, bool)
    use_mt = np.zeros(n_nodes, bool)
    use_ms = np.zeros(n_nodes, bool)
    n_min = int(params.n_pix_min)
    intervals = list(_intervals(params))

    def window(nodes: np.ndarray, interval: int) -> np.ndarray:
        ys = np.clip(ny[node_j[nodes]][:, None] + offs[None, :] * interval, 0, cy - 1)
        xs = np.clip(nx[node_i[nodes]][:, None] + offs[None, :] * interval, 0, cx - 1)
        return (ys[:, :, None] * cx + xs[:, None, :]).reshape(nodes.size, -1)

    for n_int, interval in enumerate(intervals):
        pending = np.flatnonzero(~done)
        if pending.size == 0:
            break
        p = pending[~ms_valid[pending]]
        if p.size:
            r = ms_lookup[window(p, interval)]
            ok = (r >= 0).sum(axis=1) >= n_min
            ms_valid[p[ok]] = True
            ms_rows[p[ok]] = r[ok]
        q = pending[~mt_valid[pending]]
        if q.size and f_mt.size:
            r = mt_lookup[window(q, interval)]
            sel = r >= 0
            d = np.where(sel, mt_date[np.where(sel, r, 0)], PXD_NODATA)
            lpd = local_previous_date(d, sel, day)
            m = sel & (d == lpd[:, None])
            cnt = m.sum(axis=1)
            enough = (cnt >= n_min) & (cnt >= 2)
            safe = np.where(m, r, 0)
            zero = np.zeros(q.size)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean_diff = _accumulate(zero, np.where(m, diff_pix[safe], 0.0)) / cnt
                sd = np.where(m, sd_pix[safe], 0.0)
                sd_mean = _accumulate(zero, sd) / cnt
                dev = np.where(m, sd - sd_mean[:, None], 0.0)
                stdev = np.sqrt(_accumulate(zero, dev * dev) / (cnt - 1))
            a, b, valid = mt_weights(mean_diff, stdev, day - lpd, params)
            ok = enough & valid
            mt_valid[q[ok]] = True
            mt_rows[q[ok]] = np.where(m[ok], r[ok], -1)
            w1[q[ok]], w2[q[ok]] = a[ok], b[ok]
        last = n_int == len(intervals) - 1
        run = pending[(mt_valid[pending] & ms_valid[pending])
                      | (last & (mt_valid[pending] | ms_valid[pending]))]
        done[run] = True
        use_mt[run] = mt_valid[run]
        use_ms[run] = ms_valid[run]

    ms_rows[~use_ms] = -1
    mt_rows[~use_mt] = -1
    aot_out = np.full(n_nodes, np.nan, dtype=np.float32)
    n_used = ((ms_rows >= 0).sum(axis=1) + (mt_rows >= 0).sum(axis=1)).astype(np.int32)
    method = np.where(use_mt, METHOD_MT, np.where(use_ms, METHOD_MS, METHOD_NONE)).astype(np.int8)
    nodes = np.flatnonzero(done)
    if nodes.size:
        tau = _lm_st_numpy(ms_rows[nodes], mt_rows[nodes], use_mt[nodes], w1[nodes], w2[nodes], d_prof, w_pix,
                           s_pix, td_prof, tl_prof, q_prof, rtc_pix, s_mt_pix, lut, aot_dark, params)
        aot_out[nodes] = tau.astype(np.float32)
    return aot_out.reshape(gy, gx), n_used.reshape(gy, gx), method.reshape(gy, gx)


def _toa_units(params: L2Params) -> bool:
    """True when `params.mt_residual_units` asks for the MT residuals in TOA units ("toa"), False for
    MAJA's surface units ("surface"); anything else is an InputError."""
    units = params.mt_residual_units
    if units not in MT_RESIDUAL_UNITS:
        raise InputError(f"aot_spectrotemporal: L2Params.mt_residual_units must be one of "
                         f"{', '.join(map(repr, MT_RESIDUAL_UNITS))}, got {units!r}")
    return units == "toa"


def _accumulate(acc: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """acc + the columns of `terms` (n, m) added one after the other, in the kernel's sample order (a
    sequential sum, not NumPy's pairwise one: the kernel's sums are reproduced operation for operation)."""
    out = acc.copy()
    for s in range(terms.shape[1]):
        out = out + terms[:, s]
    return out


def _lm_st_numpy(ms_rows: np.ndarray, mt_rows: np.ndarray, use_mt: np.ndarray, w1: np.ndarray, w2: np.ndarray,
                 d_prof: np.ndarray, w_pix: np.ndarray, s_pix: np.ndarray, td_prof: np.ndarray,
                 tl_prof: np.ndarray, q_prof: np.ndarray, rtc_pix: np.ndarray, s_mt_pix: np.ndarray,
                 lut: MiniLUT, aot_dark: float, params: L2Params) -> np.ndarray:
    """Batched 2-unknown Levenberg–Marquardt, the same steps as the kernel's per-thread loop (sums in the
    kernel's order). The MS terms and the scalar step are those of `aot._lm_numpy`, so that a node
    without MT gives `aot_multispectral_numpy`'s value up to the summation order (~1e-16)."""
    aot_axis = np.asarray(lut.aot, dtype=np.float64)
    n_aot = aot_axis.size
    aot_min, aot_max = float(params.aot_min), lut.aot_max
    lut_lo, lut_hi = max(aot_min, float(aot_axis[0])), min(aot_max, float(aot_axis[-1]))
    sqrt_w_dark, sqrt_w_bounds = _weights(params, aot_dark)
    tau_dark = float(aot_dark) if sqrt_w_dark > 0 else 0.0
    tol = float(params.lm_tolerance)

    mask = ms_rows >= 0
    safe = np.where(mask, ms_rows, 0)
    wp = np.where(mask, w_pix[safe] if w_pix.size else 0.0, 0.0)
    sp = np.where(mask, s_pix[safe] if s_pix.size else 1.0, 1.0)
    d_flat = d_prof.reshape(-1) if d_prof.size else np.zeros(n_aot)
    mmask = mt_rows >= 0
    msafe = np.where(mmask, mt_rows, 0)
    td_flat = td_prof.reshape(-1) if td_prof.size else np.zeros(n_aot)
    tl_flat = tl_prof.reshape(-1) if tl_prof.size else np.zeros(n_aot)
    rtc_s = np.where(mmask, rtc_pix[msafe] if rtc_pix.size else 0.0, 0.0)
    sp_mt = np.where(mmask, s_mt_pix[msafe] if s_mt_pix.size else 1.0, 1.0)
    q_flat = q_prof.reshape(-1) if q_prof.size else np.zeros(n_aot)
    toa_units = _toa_units(params)

    def cell(tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        tc = np.minimum(np.maximum(tau, lut_lo), lut_hi)
        k, wk = _locate(aot_axis, tc)
        return k, wk, aot_axis[k + 1] - aot_axis[k]

    def bounds(tau, cost, grad, hess, on):
        below, above = on & (tau < aot_min), on & (tau > aot_max)
        rb = sqrt_w_bounds * np.where(below, aot_min - tau, tau - aot_max)
        out = below | above
        cost = np.where(out, cost + rb * rb, cost)
        grad = np.where(below, grad - sqrt_w_bounds * rb, np.where(above, grad + sqrt_w_bounds * rb, grad))
        hess = np.where(out, hess + sqrt_w_bounds * sqrt_w_bounds, hess)
        return cost, grad, hess

    def evaluate(idx: np.ndarray, tau: np.ndarray, tau1: np.ndarray):
        # each sample reads the LUT at its own AOT s_p·τ (s_p = 1 for MAJA's method), so the AOT cells
        # are per sample and every τ derivative carries s_p
        s = sp[idx]
        k, wk, dtau = cell(s * tau[:, None])
        # MS equations (the terms of aot._lm_numpy)
        base = safe[idx] * n_aot
        d0 = d_flat[base + k]
        d1 = d_flat[base + k + 1]
        w, m = wp[idx], mask[idx]
        r = np.where(m, w * ((1.0 - wk) * d0 + wk * d1), 0.0)
        jac = np.where(m, w * (d1 - d0) / dtau * s, 0.0)
        zero = np.zeros(idx.size)
        cost = _accumulate(zero, r * r)
        g0 = _accumulate(zero, jac * r)
        h00 = _accumulate(zero, jac * jac)
        # MT equations
        sm = sp_mt[idx]
        k, wk, dtau = cell(sm * tau[:, None])
        k1, wk1, dtau1 = cell(sm * tau1[:, None])
        mbase = msafe[idx] * n_aot
        mm = mmask[idx]
        a0 = td_flat[mbase + k]
        a1 = td_flat[mbase + k + 1]
        b0 = tl_flat[mbase + k1]
        b1 = tl_flat[mbase + k1 + 1]
        t_d = (1.0 - wk) * a0 + wk * a1
        t_l = (1.0 - wk1) * b0 + wk1 * b1
        s_d = (a1 - a0) / dtau * sm
        s_l = (b1 - b0) / dtau1 * sm
        # unit factor u: the transmission dρ*/dρs = 1 / (∂TOC/∂TOA*) of the date's table at (h, τ_D, ρ*_D)
        # ("toa"; 0 where the slope is not > 0), or 1 ("surface"); du = du/dτ_D (exact, the slope is
        # linear in τ_D on the AOT cell; 0 for "surface")
        if toa_units:
            q0 = q_flat[mbase + k]
            q1 = q_flat[mbase + k + 1]
            q = (1.0 - wk) * q0 + wk * q1
            pos = q > 0.0
            u = np.where(pos, 1.0 / np.where(pos, q, 1.0), 0.0)
            du = np.where(pos, -(u * u) * ((q1 - q0) / dtau * sm), 0.0)
        else:
            u, du = np.ones_like(t_d), np.zeros_like(t_d)
        c1, c2 = w1[idx][:, None], w2[idx][:, None]
        r1 = t_d - t_l
        r2 = t_d - rtc_s[idx]
        e1 = np.where(mm, c1 * (u * r1), 0.0)
        e2 = np.where(mm, c2 * (u * r2), 0.0)
        j1d = np.where(mm, c1 * (u * s_d + du * r1), 0.0)
        j1m = np.where(mm, -(c1 * (u * s_l)), 0.0)
        j2d = np.where(mm, c2 * (u * s_d + du * r2), 0.0)
        cost = _accumulate(cost, e1 * e1 + e2 * e2)
        g0 = _accumulate(g0, j1d * e1 + j2d * e2)
        h00 = _accumulate(h00, j1d * j1d + j2d * j2d)
        g1 = _accumulate(zero, j1m * e1)
        h01 = _accumulate(zero, j1d * j1m)
        h11 = _accumulate(zero, j1m * j1m)
        # dark and bounds
        dark = tau > tau_dark
        rd = sqrt_w_dark * (tau - tau_dark)
        cost = np.where(dark, cost + rd * rd, cost)
        g0 = np.where(dark, g0 + sqrt_w_dark * rd, g0)
        h00 = np.where(dark, h00 + sqrt_w_dark * sqrt_w_dark, h00)
        cost, g0, h00 = bounds(tau, cost, g0, h00, np.ones(idx.size, bool))
        cost, g1, h11 = bounds(tau1, cost, g1, h11, use_mt[idx])
        return cost, g0, g1, h00, h01, h11

    n = ms_rows.shape[0]
    tau = np.full(n, float(params.aot_initial))
    tau1 = np.full(n, float(params.aot_initial_dm1))
    cost, g0, g1, h00, h01, h11 = evaluate(np.arange(n), tau, tau1)
    lam = np.full(n, LM_LAMBDA0)
    active = np.ones(n, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for _ in range(int(params.lm_max_iterations)):
            two = h11 > 0.0
            a = h00 * (1.0 + lam)
            c = h11 * (1.0 + lam)
            det = a * c - h01 * h01
            ok2 = (det > 0.0) & np.isfinite(det) & np.isfinite(g1)
            active &= (h00 > 0.0) & np.isfinite(h00) & np.isfinite(g0) & (~two | ok2)
            idx = np.flatnonzero(active)
            if idx.size == 0:
                break
            t2 = two[idx]
            delta = np.where(t2, -(c[idx] * g0[idx] - h01[idx] * g1[idx]) / det[idx],
                             -g0[idx] / (h00[idx] * (1.0 + lam[idx])))
            delta1 = np.where(t2, -(a[idx] * g1[idx] - h01[idx] * g0[idx]) / det[idx], 0.0)
            trial, trial1 = tau[idx] + delta, tau1[idx] + delta1
            new = evaluate(idx, trial, trial1)
            old = cost[idx]
            acc = new[0] < old
            decrease = old - new[0]
            sel = idx[acc]
            tau[sel], tau1[sel] = trial[acc], trial1[acc]
            for arr, value in zip((cost, g0, g1, h00, h01, h11), new):
                arr[sel] = value[acc]
            lam[sel] = lam[sel] / LM_LAMBDA_FACTOR
            rej = idx[~acc]
            lam[rej] = lam[rej] * LM_LAMBDA_FACTOR
            small = np.maximum(np.abs(delta), np.abs(delta1)) < tol
            stop = np.where(acc, small | (decrease < tol * old), small)
            active[idx[stop]] = False
    return np.minimum(np.maximum(tau, aot_min), aot_max)


def _aot_spectrotemporal_gpu(toa_star, rta, rtc_mt, pxd, mt_selected, ms_selected, ndvi, altitude, lut: MiniLUT,
                             ltc_tables, ltc_days, day: int, aot_dark: float, params: L2Params):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("aot_spectrotemporal", domain="gpumaja"):
        named = {**_band_arrays(toa_star, rta, params), "rtc_mt": rtc_mt, "ndvi": ndvi, "altitude": altitude}
        f32 = {n: cupy.ascontiguousarray(cupy.asarray(a), dtype=cupy.float32) for n, a in named.items()}
        dates = cupy.ascontiguousarray(cupy.asarray(pxd), dtype=cupy.int32)
        s_mt = cupy.asarray(mt_selected, dtype=bool)
        s_ms = cupy.asarray(ms_selected, dtype=bool)
        ltc, days = _ltc_inputs(ltc_tables, ltc_days)
        cy, cx = _check_inputs({**f32, "pxd": dates, "mt_selected": s_mt, "ms_selected": s_ms}, lut, ltc, days,
                               params)
        if cy * cx >= 2**31:
            raise InputError(f"aot_spectrotemporal: {cy}x{cx} coarse pixels exceed the kernel's 32-bit indexing")
        imt, ib, ir = lut.index(params.mt_aot_band), lut.index(params.blue_band), lut.index(params.red_band)
        fin = cupy.isfinite
        ms_u8 = (s_ms & fin(f32["blue_band"]) & fin(f32["red_band"]) & fin(f32["ndvi"]) & fin(f32["altitude"]))
        mt_ok = (s_mt & fin(f32["mt_aot_band"]) & fin(f32["rta_mt"]) & fin(f32["rtc_mt"]) & fin(f32["stdev_band"])
                 & fin(f32["altitude"]) & (dates != PXD_NODATA))
        if days.size == 0:
            mt_ok[:] = False
        scale = cupy.ascontiguousarray(height_factor(f32["altitude"], params.aot_height_scale_m, cupy))
        ms_u8 = cupy.ascontiguousarray(ms_u8.astype(cupy.uint8))
        mt_u8 = cupy.ascontiguousarray(mt_ok.astype(cupy.uint8))
        step = int(params.step_aot)
        gy, gx = -(-cy // step), -(-cx // step)
        aot_out = cupy.empty((gy, gx), dtype=cupy.float32)
        n_used = cupy.empty((gy, gx), dtype=cupy.int32)
        method = cupy.empty((gy, gx), dtype=cupy.int8)
        axes = [cupy.asarray(np.ascontiguousarray(a, dtype=np.float32)) for a in (lut.altitude, lut.aot, lut.toa)]
        tables = [cupy.asarray(np.ascontiguousarray(lut.toc[i], dtype=np.float32)) for i in (imt, ib, ir)]
        n_ltc = int(days.size)
        ltc_gpu = cupy.asarray(np.ascontiguousarray(ltc if n_ltc else np.zeros((1,), np.float32), dtype=np.float32))
        days_gpu = cupy.asarray(days.astype(np.int32) if n_ltc else np.zeros(1, np.int32))
        sqrt_w_dark, sqrt_w_bounds = _weights(params, aot_dark)
        tau_dark = float(aot_dark) if sqrt_w_dark > 0 else 0.0
        intervals = list(_intervals(params))
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function(_KERNEL)
        grid = ((gx + _BLOCK[0] - 1) // _BLOCK[0], (gy + _BLOCK[1] - 1) // _BLOCK[1])
        kernel(
            grid,
            _BLOCK,
            (
                f32["mt_aot_band"], f32["rta_mt"], f32["rtc_mt"], f32["stdev_band"], f32["blue_band"],
                f32["red_band"], f32["ndvi"], f32["altitude"], scale, dates, mt_u8, ms_u8,
                np.int32(cy), np.int32(cx), np.int32(gy), np.int32(gx), np.int32(step),
                np.int32(params.half_window_size), np.int32(intervals[0]), np.int32(intervals[-1]),
                np.int32(params.increment_n_distance), np.int32(params.n_pix_min),
                axes[0], np.int32(lut.altitude.size), axes[1], np.int32(lut.aot.size), axes[2],
                np.int32(lut.toa.size), tables[0], tables[1], tables[2], ltc_gpu, days_gpu, np.int32(n_ltc),
                np.int32(day),
                np.float64(params.ms_slope), np.float64(params.ms_y_intercept), np.float64(params.ndvi_slope),
                np.float64(params.ndvi_y_intercept), np.float64(params.w_ms), np.float64(params.std_noise),
                np.float64(params.stdev_min), np.float64(params.mt_weight_threshold),
                np.float64(params.w_mt_equation2), np.float64(params.st_weight_a), np.float64(params.st_weight_b),
                np.float64(sqrt_w_dark), np.float64(tau_dark), np.float64(sqrt_w_bounds),
                np.float64(params.aot_min), np.float64(lut.aot_max), np.float64(params.aot_initial),
                np.float64(params.aot_initial_dm1), np.int32(params.lm_max_iterations),
                np.float64(params.lm_tolerance), np.int32(_toa_units(params)), aot_out, n_used, method,
            ),
        )
        return aot_out, n_used, method


def aot_spectrotemporal(
    toa_star: dict[str, Any],
    rta: dict[str, Any],
    rtc_mt: Any,
    pxd: Any,
    mt_selected: Any,
    ms_selected: Any,
    ndvi: Any,
    altitude: Any,
    lut: MiniLUT,
    ltc_tables: Any,
    ltc_days: Sequence[int],
    day: int,
    aot_dark: float,
    params: L2Params,
    backend: Backend | None = None,
) -> tuple[Any, Any, Any]:
    """AOT on the AOT grid by the spectro-temporal method (maja-l2a.md §3.5, NOMINAL mode).

    toa_star: band name -> (cy, cx) TOA* of the date, holding `mt_aot_band`, `blue_band`, `red_band` and
    `stdev_band`; rta: band name -> composite RTA, holding `mt_aot_band`; rtc_mt: composite RTC of the
    MT band; pxd: composite dates (int, day numbers; PXD_NODATA = none); mt_selected: `mt_selection`;
    ms_selected / ndvi: `ms_selection`; altitude: metres; lut: the date's mini-LUT; ltc_tables:
    (n_ltc, n_alt, n_aot, n_toa) MT-band TOC tables of earlier dates on `lut`'s axes (None or n_ltc = 0:
    MS only), dated by `ltc_days`; day: the date's day number; aot_dark: `dark_pixel_aot` (NaN or inf =
    no dark term).

    Returns (aot_grid float32, NaN where no estimate; n_used int32, MS + MT samples in the inversion;
    method int8, 0 none / 1 MS / 2 MT (+ MS)), each (ceil(cy / step_aot), ceil(cx / step_aot)).
    Runs the CUDA kernel when `backend.is_gpu` or (no backend) the inputs are CuPy arrays, else the
    NumPy twin.
    """
    on_gpu = backend.is_gpu if backend is not None else array_module(rtc_mt).__name__ == "cupy"
    args = (toa_star, rta, rtc_mt, pxd, mt_selected, ms_selected, ndvi, altitude, lut, ltc_tables, ltc_days,
            int(day), aot_dark, params)
    if on_gpu:
        return _aot_spectrotemporal_gpu(*args)
    return aot_spectrotemporal_numpy(*args)
