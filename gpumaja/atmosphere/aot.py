"""Aerosol optical thickness, MAJA INIT mode: dark pixel + multispectral method (maja-l2a.md §3.5).

In INIT mode there is no composite, so the MT/ST methods fall back to MULTISPECTRAL (§2, §3.5). The
steps, in MAJA's order (`aot_estimation_computation.py`):

1. `dark_pixel_aot`: τ_dark, an upper bound, from the darkest TOA* of the dark band (B01).
2. `ms_selection`: vegetation pixels usable by the MS relation (red TOA* and NDVI thresholds, masks).
3. `aot_multispectral`: per AOT-grid node (every `step_aot` coarse px) a Levenberg–Marquardt
   inversion of τ on the selected pixels of a 7×7 sample window whose sampling interval grows until
   `n_pix_min` pixels are found. Raw CUDA kernel `kernels/aot.cu` (`aot_ms_lm`), NumPy twin
   `aot_multispectral_numpy`. NaN where no estimate.
4. `fill_and_smooth_aot`: gap filling (growing window, IAB bit 1) and Gaussian smoothing.
5. `aot_to_grid`: bilinear resampling from the node centres to every coarse pixel.
6. `aot_at_altitude`: the AOT of each pixel's own column (below).

AOT over relief (`aot_height_scale_m` H > 0, the default; a deviation from MAJA, docs/l2a.md "AOT over
relief"). The LUT's AOT is that of the column above the pixel (6S keeps the aerosol optical depth
given at the target altitude: 0.2 at 0, 1 and 2 km, Rayleigh 0.098 / 0.087 / 0.077 at 550 nm), and
aerosols sit in the lowest kilometres: with an exponential profile of scale height H a pixel at
altitude h sees τ(h) = τ0·exp(−h/H), τ0 the sea-level value. MAJA fits one τ to a window whose pixels
may span 1–2 km of relief and spreads it to the valleys and peaks alike. Here the unknown of a node
is τ0: each sample reads the LUT at its own τ0·s_p, s_p = exp(−h_p/H) (`height_factor`), so its
residual's derivative carries s_p; the dark-pixel bound is reduced to sea level the same way
(`dark_pixel_aot(..., height_scale_m=H)`), gap filling and smoothing work on τ0, and
`aot_at_altitude` gives each coarse or 10/20 m pixel τ0·exp(−h/H). With H = 0 every s_p is 1 and all
of this is MAJA's method, bit for bit. `aot_min`, `aot_initial` and `default_aot` then apply to τ0.

The cost of one node (scalar unknown τ), residuals as listed in §3.5:

    r_p   = W_MS·(ndvi_slope·max(NDVI_p, 0) + ndvi_y_intercept)·[ρs_blue(τ) − (ms_slope·ρs_red(τ) + ms_y_intercept)]
    r_dk  = sqrt(W_dark)·(τ − τ_dark)                 if τ > τ_dark
    r_bd  = sqrt(W_bounds)·(distance of τ outside [aot_min, aot_max of the LUT])

with ρs_b(τ) the mini-LUT TOC of band b at (altitude_p, s_p·τ, TOA*_b,p) (s_p = 1 when H = 0), so that the cost Σr² holds
W_dark·(τ − τ_dark)² and W_bounds·excess² as in §3.5. (MAJA's code puts W·d² itself in a residual,
whose square is W²·d⁴; we follow the documented cost.) The LUT is read at s_p·τ clamped to
[aot_min, aot_max] (MAJA `LimitAOT`).

Choices of ours, documented here:
- Derivative: the exact derivative of the interpolated mini-LUT (slope of the AOT cell holding τ).
  MAJA takes a central difference with ε = 1e-5, which gives the same value except within ε of an
  AOT node; the exact slope costs nothing since the interpolation already reads both AOT nodes.
- LM: λ starts at `LM_LAMBDA0` and is divided / multiplied by `LM_LAMBDA_FACTOR` after an accepted /
  rejected step; a trial step counts as one iteration (≤ `lm_max_iterations`); stop when |Δτ| <
  `lm_tolerance` or an accepted step lowers the cost by less than `lm_tolerance`·cost. The result is
  clamped to [aot_min, aot_max].
- Node (j, i) is at coarse pixel (j·step + step//2, i·step + step//2), clipped inside the image (MAJA
  uses j·step). Sample coordinates outside the image are clamped to the edge, as MAJA's zero-flux
  Neumann boundary does (an edge pixel may then count several times towards `n_pix_min`).
- Dark pixel: the 0.1 % lowest TOA* (`DARK_PIXEL_PERCENTILE`) rather than the single minimum, to be
  robust to one noisy or unmasked pixel; it is the minimum itself below 1000 valid pixels.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.atmosphere.gapfill import gap_fill_mean, ndimage_module
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import Backend, array_module, to_numpy
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

DARK_PIXEL_PERCENTILE = 0.1  # percent of the valid pixels darker than the chosen "darkest" one
LM_LAMBDA0 = 1.0e-3  # initial Levenberg-Marquardt damping (kernels/aot.cu LM_LAMBDA0)
LM_LAMBDA_FACTOR = 10.0  # damping update factor (kernels/aot.cu LM_LAMBDA_FACTOR)

_KERNEL_FILE = "aot"
_KERNEL = "aot_ms_lm"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK = (16, 8)


# --- mini-LUT interpolation helpers (NumPy, float64) ----------------------------------------------


def _locate(axis: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cell index i in [0, n-2] (axis[i] <= x < axis[i+1], end cells extended) and the unclamped
    weight (x - axis[i]) / (axis[i+1] - axis[i]); same rule as gpumaja_locate in kernels/aot.cu."""
    a = np.asarray(axis, dtype=np.float64)
    i = np.clip(np.searchsorted(a, x, side="right") - 1, 0, a.size - 2)
    return i, (x - a[i]) / (a[i + 1] - a[i])


def _toc_profile(lut: MiniLUT, band: int, altitude: np.ndarray, toa: np.ndarray) -> np.ndarray:
    """(n, n_aot) TOC of `band` at each AOT node, bilinear in (altitude clamped, TOA* extrapolated)."""
    table = np.asarray(lut.toc[band], dtype=np.float32)
    h = np.clip(altitude, float(lut.altitude[0]), float(lut.altitude[-1]))
    ia, wa = _locate(lut.altitude, h)
    it, wt = _locate(lut.toa, toa)
    wa, wt = wa[:, None], wt[:, None]
    ia, it = ia[:, None], it[:, None]
    k = np.arange(lut.aot.size)[None, :]
    t00 = table[ia, k, it].astype(np.float64)
    t01 = table[ia, k, it + 1].astype(np.float64)
    t10 = table[ia + 1, k, it].astype(np.float64)
    t11 = table[ia + 1, k, it + 1].astype(np.float64)
    v0 = (1.0 - wt) * t00 + wt * t01
    v1 = (1.0 - wt) * t10 + wt * t11
    return (1.0 - wa) * v0 + wa * v1


def height_factor(altitude: Any, height_scale_m: float, xp: ModuleType = np) -> Any:
    """s = exp(−h / H) (float64, `xp`): a pixel's column AOT over the sea-level one for an aerosol of scale
    height H metres (module docstring, "AOT over relief"); 1 where H <= 0 or h is not finite."""
    h = xp.asarray(altitude, dtype=xp.float64)
    H = float(height_scale_m)
    if not H > 0.0:
        return xp.ones(h.shape, dtype=xp.float64)
    return xp.where(xp.isfinite(h), xp.exp(-xp.where(xp.isfinite(h), h, 0.0) / H), 1.0)


# --- 1. dark pixel ---------------------------------------------------------------------------------


def _ms_terms(lut: MiniLUT, ib: int, ir: int, sel: np.ndarray, alt: np.ndarray, blue: np.ndarray,
              red: np.ndarray, nd: np.ndarray,
              params: L2Params) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The MS equation's tabulated terms of the selected pixels (shared by the MS and the
    spectro-temporal twins): (lookup: flat pixel index -> row, -1 if not selected; D_p at every AOT
    node, blue TOC − (ms_slope · red TOC + ms_y_intercept); the weight w_p of each row; the height
    factor s_p of each row)."""
    flat_sel = np.flatnonzero(sel)
    lookup = np.full(sel.size, -1, dtype=np.int64)
    lookup[flat_sel] = np.arange(flat_sel.size)
    h = alt.reshape(-1)[flat_sel].astype(np.float64)
    d_prof = _toc_profile(lut, ib, h, blue.reshape(-1)[flat_sel].astype(np.float64)) - (
        params.ms_slope * _toc_profile(lut, ir, h, red.reshape(-1)[flat_sel].astype(np.float64))
        + params.ms_y_intercept
    )
    w_pix = params.w_ms * (params.ndvi_slope * np.maximum(nd.reshape(-1)[flat_sel].astype(np.float64), 0.0)
                           + params.ndvi_y_intercept)
    return lookup, d_prof, w_pix, height_factor(h, params.aot_height_scale_m)


def dark_pixel_aot(
    toa_star_dark: Any,
    altitude: Any,
    excluded: Any,
    lut: MiniLUT,
    params: L2Params,
    percentile: float = DARK_PIXEL_PERCENTILE,
    height_scale_m: float = 0.0,
) -> float:
    """τ_dark: the AOT at which the darkest pixel's surface reflectance is
    `darkest_pixel_surface_reflectance` (maja-l2a.md §3.5, `vnsDarkestPixelAOTCalculator`).

    toa_star_dark: (cy, cx) TOA* (gas-corrected) of `params.dark_band`; altitude: (cy, cx) metres;
    excluded: (cy, cx) bool, True for cloud / shadow / edge (and, in nominal mode, composite RTC >=
    `dark_pixel_threshold`, which the caller adds). The "darkest" pixel is the `percentile` % lowest
    valid TOA* (the minimum below 1000 valid pixels); among pixels with that value, the lowest
    altitude (as MAJA). Its TOC is piecewise linear in τ on the mini-LUT, and the crossing of the
    target is solved exactly on that interpolation.

    Returns:
    - the crossing AOT (the first one, scanning the AOT axis upwards, for a non-monotonic table);
    - `lut.aot_max` if the TOC stays above the target up to the last AOT (no constraint), and also
      when there is no valid pixel;
    - `lut.aot[0]` (0) if the TOC is already below the target at the first AOT: the pixel is darker
      than the assumed dark surface, so no AOT explains it. MAJA's InvertLUT then also leaves 0, and
      the dark term pulls every node towards 0 with weight W_dark: callers that prefer to ignore such
      a bound can test `result <= lut.aot[0]` and pass `lut.aot_max` instead.

    With `height_scale_m` H > 0 the result is reduced to sea level, τ_dark·exp(h_dark / H) (the unit of
    the nodes' unknown, module docstring "AOT over relief"); `lut.aot_max` (no constraint) stays so.
    """
    toa = to_numpy(toa_star_dark).astype(np.float64)
    alt = to_numpy(altitude).astype(np.float64)
    exc = to_numpy(excluded).astype(bool)
    if toa.shape != alt.shape or toa.shape != exc.shape:
        raise InputError(
            f"dark_pixel_aot: toa_star_dark {toa.shape}, altitude {alt.shape} and excluded {exc.shape} "
            "must have the same shape"
        )
    if not 0.0 <= percentile < 100.0:
        raise InputError(f"dark_pixel_aot: percentile must lie in [0, 100), got {percentile!r}")
    band = lut.index(params.dark_band)
    ok = ~exc & np.isfinite(toa) & np.isfinite(alt)
    if not ok.any():
        return lut.aot_max
    values = toa[ok]
    order = np.sort(values)
    darkest = order[math.floor(percentile / 100.0 * (values.size - 1))]
    h = float(alt[ok][values == darkest].min())

    profile = _toc_profile(lut, band, np.array([h]), np.array([darkest]))[0]
    target = float(params.darkest_pixel_surface_reflectance)
    aot = np.asarray(lut.aot, dtype=np.float64)
    if profile[0] < target:
        return float(aot[0])
    for k in range(aot.size - 1):
        v0, v1 = profile[k], profile[k + 1]
        if v0 >= target > v1:
            tau = float(aot[k] + (v0 - target) / (v0 - v1) * (aot[k + 1] - aot[k]))
            return tau / float(height_factor(np.array(h), height_scale_m))
    return lut.aot_max


# --- 2. pixel selection ----------------------------------------------------------------------------


def ms_selection(
    toa_star_red: Any,
    toa_star_nir: Any,
    cloud_or_shadow: Any,
    snow: Any,
    water: Any,
    saturated: Any,
    edge: Any,
    params: L2Params,
    xp: ModuleType = np,
) -> tuple[Any, Any]:
    """MS pixel selection (maja-l2a.md §3.5, `MultiSpectralAOTMethodFunctions::AOTPixelSelection`).

    Selected: red TOA* <= `red_toa_threshold`, NDVI >= `ndvi_aot_threshold`, and not cloud / shadow
    (`cloud_or_shadow`: CLM all clouds + shadows, topographic shadows included by the caller), snow,
    water, saturated (in the red, NIR or AOT bands: the caller ORs them), edge. A mask given as None
    excludes nothing. NDVI = (NIR − red) / (NIR + red) on TOA*, NaN where NIR + red <= 0 or an input is
    NaN (such pixels are never selected).

    Returns (selected bool, ndvi float32), (cy, cx) arrays of `xp`.
    """
    red = xp.asarray(toa_star_red, dtype=xp.float32)
    nir = xp.asarray(toa_star_nir, dtype=xp.float32)
    if red.shape != nir.shape or red.ndim != 2:
        raise InputError(f"ms_selection: red {red.shape} and nir {nir.shape} must be the same (cy, cx) shape")
    total = nir + red
    ndvi = xp.where(total > 0, (nir - red) / xp.where(total > 0, total, 1), xp.nan).astype(xp.float32)
    selected = xp.isfinite(red) & xp.isfinite(ndvi)
    selected &= red <= params.red_toa_threshold
    selected &= ndvi >= params.ndvi_aot_threshold
    for name, mask in (("cloud_or_shadow", cloud_or_shadow), ("snow", snow), ("water", water),
                       ("saturated", saturated), ("edge", edge)):
        if mask is None:
            continue
        m = xp.asarray(mask, dtype=bool)
        if m.shape != red.shape:
            raise InputError(f"ms_selection: mask {name} has shape {m.shape}, expected {red.shape}")
        selected &= ~m
    return selected, ndvi


# --- 3. multispectral inversion --------------------------------------------------------------------


def aot_node_positions(n: int, step: int) -> np.ndarray:
    """Coarse-pixel coordinates of the AOT-grid nodes along an axis of n coarse pixels:
    min(j·step + step//2, n − 1) for j < ceil(n / step)."""
    count = -(-int(n) // int(step))
    return np.minimum(np.arange(count) * int(step) + int(step) // 2, int(n) - 1)


def _check_ms_inputs(arrays: dict, params: L2Params, lut: MiniLUT, caller: str = "aot_multispectral") -> tuple[int, int]:
    """The (cy, cx) shape shared by `arrays`, after checking the AOT-grid parameters (errors name `caller`)."""
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise InputError(f"{caller}: inputs must share one (cy, cx) shape, got {shapes}")
    for name in ("step_aot", "sampling_interval_min", "increment_n_distance"):
        if int(getattr(params, name)) < 1:
            raise InputError(f"{caller}: L2Params.{name} must be >= 1, got {getattr(params, name)!r}")
    if params.half_window_size < 0 or params.sampling_interval_max < params.sampling_interval_min:
        raise InputError(
            f"{caller}: L2Params needs half_window_size >= 0 and "
            f"sampling_interval_max >= sampling_interval_min, got {params.half_window_size}, "
            f"{params.sampling_interval_min}..{params.sampling_interval_max}"
        )
    if not params.aot_min < lut.aot_max:
        raise InputError(f"{caller}: L2Params.aot_min {params.aot_min} must be below the LUT's last AOT "
                         f"{lut.aot_max}")
    return first


def _weights(params: L2Params, aot_dark: float) -> tuple[float, float]:
    sqrt_w_dark = math.sqrt(params.w_dark) if aot_dark is not None and math.isfinite(aot_dark) else 0.0
    return sqrt_w_dark, math.sqrt(params.w_bounds)


def _intervals(params: L2Params) -> range:
    return range(int(params.sampling_interval_min), int(params.sampling_interval_max) + 1,
                 int(params.increment_n_distance))


def aot_multispectral_numpy(
    toa_star_blue: np.ndarray,
    toa_star_red: np.ndarray,
    ndvi: np.ndarray,
    altitude: np.ndarray,
    selected: np.ndarray,
    lut: MiniLUT,
    aot_dark: float,
    params: L2Params,
    backend: Backend | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of the `aot_ms_lm` kernel: (aot_grid float32 NaN = no estimate, n_used int32),
    both (ceil(cy / step_aot), ceil(cx / step_aot)).

    Vectorised over the nodes: each selected pixel's MS residual D_p(τ) is tabulated once at every
    AOT node of the LUT (it is piecewise linear in τ), then all nodes iterate together.
    """
    blue = np.asarray(to_numpy(toa_star_blue), dtype=np.float32)
    red = np.asarray(to_numpy(toa_star_red), dtype=np.float32)
    nd = np.asarray(to_numpy(ndvi), dtype=np.float32)
    alt = np.asarray(to_numpy(altitude), dtype=np.float32)
    sel = np.asarray(to_numpy(selected), dtype=bool)
    cy, cx = _check_ms_inputs({"toa_star_blue": blue, "toa_star_red": red, "ndvi": nd, "altitude": alt,
                               "selected": sel}, params, lut)
    sel = sel & np.isfinite(blue) & np.isfinite(red) & np.isfinite(nd) & np.isfinite(alt)
    ib, ir = lut.index(params.blue_band), lut.index(params.red_band)
    step = int(params.step_aot)
    ny, nx = aot_node_positions(cy, step), aot_node_positions(cx, step)
    gy, gx = ny.size, nx.size
    aot_out = np.full((gy, gx), np.nan, dtype=np.float32)
    n_used = np.zeros((gy, gx), dtype=np.int32)

    # per selected pixel: D_p at every AOT node and the weight w_p
    lookup, d_prof, w_pix, s_pix = _ms_terms(lut, ib, ir, sel, alt, blue, red, nd, params)

    # sampling interval per node: the first with >= n_pix_min selected samples
    hw = int(params.half_window_size)
    offs = np.arange(-hw, hw + 1)
    n_side = offs.size
    node_j, node_i = np.divmod(np.arange(gy * gx), gx)
    pending = np.arange(gy * gx)
    rows = np.full((gy * gx, n_side * n_side), -1, dtype=np.int64)
    for interval in _intervals(params):
        if pending.size == 0:
            break
        ys = np.clip(ny[node_j[pending]][:, None] + offs[None, :] * interval, 0, cy - 1)  # (n, side)
        xs = np.clip(nx[node_i[pending]][:, None] + offs[None, :] * interval, 0, cx - 1)
        r = lookup[ys[:, :, None] * cx + xs[:, None, :]].reshape(pending.size, -1)
        count = (r >= 0).sum(axis=1)
        done = count >= params.n_pix_min
        rows[pending[done]] = r[done]
        n_used.reshape(-1)[pending[done]] = count[done]
        pending = pending[~done]

    nodes = np.flatnonzero(n_used.reshape(-1) > 0)
    if nodes.size:
        tau = _lm_numpy(rows[nodes], d_prof, w_pix, s_pix, lut, aot_dark, params)
        aot_out.reshape(-1)[nodes] = tau.astype(np.float32)
    return aot_out, n_used


def _lm_numpy(rows: np.ndarray, d_prof: np.ndarray, w_pix: np.ndarray, s_pix: np.ndarray, lut: MiniLUT,
              aot_dark: float, params: L2Params) -> np.ndarray:
    """Batched scalar Levenberg–Marquardt, the same steps as the kernel's per-thread loop (each sample's
    LUT read at s_p·τ, its own AOT cell)."""
    aot_axis = np.asarray(lut.aot, dtype=np.float64)
    n_aot = aot_axis.size
    aot_min, aot_max = float(params.aot_min), lut.aot_max
    lut_lo, lut_hi = max(aot_min, float(aot_axis[0])), min(aot_max, float(aot_axis[-1]))
    sqrt_w_dark, sqrt_w_bounds = _weights(params, aot_dark)
    tau_dark = float(aot_dark) if sqrt_w_dark > 0 else 0.0  # as the kernel: no dark term when the weight is 0
    tol = float(params.lm_tolerance)

    mask = rows >= 0
    safe = np.where(mask, rows, 0)
    wp = np.where(mask, w_pix[safe], 0.0)  # zero weight for unused slots
    sp = np.where(mask, s_pix[safe], 1.0)
    d_flat = d_prof.reshape(-1)

    def evaluate(idx: np.ndarray, tau: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        s = sp[idx]
        tc = np.minimum(np.maximum(s * tau[:, None], lut_lo), lut_hi)
        k, wk = _locate(aot_axis, tc)
        dtau = aot_axis[k + 1] - aot_axis[k]
        base = safe[idx] * n_aot
        d0 = d_flat[base + k]
        d1 = d_flat[base + k + 1]
        w, m = wp[idx], mask[idx]
        r = np.where(m, w * ((1.0 - wk) * d0 + wk * d1), 0.0)
        jac = np.where(m, w * (d1 - d0) / dtau * s, 0.0)
        cost = (r * r).sum(axis=1)
        grad = (jac * r).sum(axis=1)
        hess = (jac * jac).sum(axis=1)
        dark = tau > tau_dark
        rd = sqrt_w_dark * (tau - tau_dark)
        cost = np.where(dark, cost + rd * rd, cost)
        grad = np.where(dark, grad + sqrt_w_dark * rd, grad)
        hess = np.where(dark, hess + sqrt_w_dark * sqrt_w_dark, hess)
        below, above = tau < aot_min, tau > aot_max
        rb = sqrt_w_bounds * np.where(below, aot_min - tau, tau - aot_max)
        out = below | above
        cost = np.where(out, cost + rb * rb, cost)
        grad = np.where(below, grad - sqrt_w_bounds * rb, np.where(above, grad + sqrt_w_bounds * rb, grad))
        hess = np.where(out, hess + sqrt_w_bounds * sqrt_w_bounds, hess)
        return cost, grad, hess

    n = rows.shape[0]
    all_idx = np.arange(n)
    tau = np.full(n, float(params.aot_initial))
    cost, grad, hess = evaluate(all_idx, tau)
    lam = np.full(n, LM_LAMBDA0)
    active = np.ones(n, dtype=bool)
    for _ in range(int(params.lm_max_iterations)):
        active &= (hess > 0.0) & np.isfinite(hess) & np.isfinite(grad)
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        delta = -grad[idx] / (hess[idx] * (1.0 + lam[idx]))
        trial = tau[idx] + delta
        c_new, g_new, h_new = evaluate(idx, trial)
        old = cost[idx]
        acc = c_new < old
        decrease = old - c_new
        a = idx[acc]
        tau[a], cost[a], grad[a], hess[a] = trial[acc], c_new[acc], g_new[acc], h_new[acc]
        lam[a] = lam[a] / LM_LAMBDA_FACTOR
        r_ = idx[~acc]
        lam[r_] = lam[r_] * LM_LAMBDA_FACTOR
        small = np.abs(delta) < tol
        stop = np.where(acc, small | (decrease < tol * old), small)
        active[idx[stop]] = False
    return np.minimum(np.maximum(tau, aot_min), aot_max)


def _aot_multispectral_gpu(toa_star_blue, toa_star_red, ndvi, altitude, selected, lut: MiniLUT,
                           aot_dark: float, params: L2Params):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("aot_multispectral", domain="gpumaja"):
        f32 = {n: cupy.ascontiguousarray(cupy.asarray(a), dtype=cupy.float32)
               for n, a in (("toa_star_blue", toa_star_blue), ("toa_star_red", toa_star_red), ("ndvi", ndvi),
                            ("altitude", altitude))}
        sel = cupy.asarray(selected, dtype=bool)
        cy, cx = _check_ms_inputs({**f32, "selected": sel}, params, lut)
        if cy * cx >= 2**31:
            raise InputError(f"aot_multispectral: {cy}x{cx} coarse pixels exceed the kernel's 32-bit indexing")
        finite = cupy.ones((cy, cx), dtype=bool)
        for a in f32.values():
            finite &= cupy.isfinite(a)
        sel_u8 = cupy.ascontiguousarray((sel & finite).astype(cupy.uint8))
        scale = cupy.ascontiguousarray(height_factor(f32["altitude"], params.aot_height_scale_m, cupy))
        ib, ir = lut.index(params.blue_band), lut.index(params.red_band)
        step = int(params.step_aot)
        gy, gx = -(-cy // step), -(-cx // step)
        aot_out = cupy.empty((gy, gx), dtype=cupy.float32)
        n_used = cupy.empty((gy, gx), dtype=cupy.int32)
        axes = [cupy.asarray(np.ascontiguousarray(a, dtype=np.float32)) for a in (lut.altitude, lut.aot, lut.toa)]
        toc_b = cupy.asarray(np.ascontiguousarray(lut.toc[ib], dtype=np.float32))
        toc_r = cupy.asarray(np.ascontiguousarray(lut.toc[ir], dtype=np.float32))
        sqrt_w_dark, sqrt_w_bounds = _weights(params, aot_dark)
        tau_dark = float(aot_dark) if sqrt_w_dark > 0 else 0.0
        intervals = _intervals(params)
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function(_KERNEL)
        grid = ((gx + _BLOCK[0] - 1) // _BLOCK[0], (gy + _BLOCK[1] - 1) // _BLOCK[1])
        kernel(
            grid,
            _BLOCK,
            (
                f32["toa_star_blue"], f32["toa_star_red"], f32["ndvi"], f32["altitude"], scale, sel_u8,
                np.int32(cy), np.int32(cx), np.int32(gy), np.int32(gx), np.int32(step),
                np.int32(params.half_window_size), np.int32(intervals.start), np.int32(intervals.stop - 1),
                np.int32(intervals.step), np.int32(params.n_pix_min),
                axes[0], np.int32(lut.altitude.size), axes[1], np.int32(lut.aot.size), axes[2],
                np.int32(lut.toa.size), toc_b, toc_r,
                np.float64(params.ms_slope), np.float64(params.ms_y_intercept), np.float64(params.ndvi_slope),
                np.float64(params.ndvi_y_intercept), np.float64(params.w_ms), np.float64(sqrt_w_dark),
                np.float64(tau_dark), np.float64(sqrt_w_bounds), np.float64(params.aot_min),
                np.float64(lut.aot_max), np.float64(params.aot_initial), np.int32(params.lm_max_iterations),
                np.float64(params.lm_tolerance), aot_out, n_used,
            ),
        )
        return aot_out, n_used


def aot_multispectral(
    toa_star_blue: Any,
    toa_star_red: Any,
    ndvi: Any,
    altitude: Any,
    selected: Any,
    lut: MiniLUT,
    aot_dark: float,
    params: L2Params,
    backend: Backend | None = None,
) -> tuple[Any, Any]:
    """AOT on the AOT grid by the multispectral method (maja-l2a.md §3.5, INIT mode).

    toa_star_blue / toa_star_red: (cy, cx) TOA* of `params.blue_band` / `params.red_band`; ndvi: the
    TOA* NDVI of `ms_selection`; altitude: (cy, cx) metres; selected: `ms_selection`'s mask; lut: the
    date's mini-LUT (must hold the blue and red bands); aot_dark: `dark_pixel_aot` (NaN or inf = no
    dark term). Returns (aot_grid float32, NaN where fewer than `n_pix_min` pixels were found even at
    `sampling_interval_max`; n_used int32, selected samples used, 0 there), shape
    (ceil(cy / step_aot), ceil(cx / step_aot)).

    Runs the CUDA kernel when `backend.is_gpu` or (no backend) the inputs are CuPy arrays, else the
    NumPy twin; an explicit CPU backend brings CuPy inputs back to the host.
    """
    on_gpu = backend.is_gpu if backend is not None else array_module(toa_star_blue).__name__ == "cupy"
    if on_gpu:
        return _aot_multispectral_gpu(toa_star_blue, toa_star_red, ndvi, altitude, selected, lut, aot_dark, params)
    return aot_multispectral_numpy(toa_star_blue, toa_star_red, ndvi, altitude, selected, lut, aot_dark, params)


# --- 4. post-processing ----------------------------------------------------------------------------


def fill_and_smooth_aot(aot_grid: Any, params: L2Params, xp: ModuleType = np) -> tuple[Any, Any]:
    """Gap filling then Gaussian smoothing of the AOT grid (maja-l2a.md §3.5 post-processing).

    NaN nodes take the mean of the valid nodes in a window growing from `aot_init_window_radius` to
    `aot_max_window_radius` AOT-grid px (`gpumaja.atmosphere.gapfill`), else `default_aot`; then a
    Gaussian filter of σ = `sigma_smoothing_aot` (mode "nearest") smooths the whole grid. Returns
    (aot float32, interpolated bool: the nodes that were NaN, IAB bit 1).
    """
    grid = xp.asarray(aot_grid, dtype=xp.float64)
    if grid.ndim != 2:
        raise InputError(f"fill_and_smooth_aot: aot_grid must be 2-D, got shape {grid.shape}")
    valid = xp.isfinite(grid)
    filled, found = gap_fill_mean(grid, valid, params.aot_init_window_radius, params.aot_max_window_radius, xp,
                                  what="fill_and_smooth_aot")
    filled = xp.where(found, filled, float(params.default_aot))
    if params.sigma_smoothing_aot > 0:
        filled = ndimage_module(xp).gaussian_filter(filled, sigma=float(params.sigma_smoothing_aot), mode="nearest")
    return filled.astype(xp.float32), ~valid


# --- 5. resampling to the coarse grid, 6. each pixel's column ---------------------------------------


def _axis_weights(xp: ModuleType, nodes: np.ndarray, n: int):
    """For coarse coordinates 0..n-1: lower node index and weight, clamped at the end nodes."""
    pos = np.arange(n, dtype=np.float64)
    nodes_f = nodes.astype(np.float64)
    if nodes.size == 1:
        return xp.zeros(n, dtype=xp.int64), xp.zeros(n, dtype=xp.float64), 0
    p = np.clip(pos, nodes_f[0], nodes_f[-1])
    k = np.clip(np.searchsorted(nodes_f, p, side="right") - 1, 0, nodes.size - 2)
    w = (p - nodes_f[k]) / (nodes_f[k + 1] - nodes_f[k])
    return xp.asarray(k), xp.asarray(w), 1


def aot_to_grid(aot_grid: Any, node_step: int, shape: tuple[int, int], xp: ModuleType = np) -> Any:
    """Bilinear resampling of the AOT grid onto the (cy, cx) coarse grid (maja-l2a.md §3.5).

    Node (j, i) sits at coarse pixel `aot_node_positions` (j·step + step//2, clipped inside); pixels
    beyond the first / last node take the edge node's value (clamp). Returns float32 (cy, cx).
    """
    grid = xp.asarray(aot_grid, dtype=xp.float64)
    cy, cx = (int(n) for n in shape)
    ny, nx = aot_node_positions(cy, node_step), aot_node_positions(cx, node_step)
    if grid.shape != (ny.size, nx.size):
        raise InputError(
            f"aot_to_grid: aot_grid has shape {grid.shape}, expected {(ny.size, nx.size)} for a {cy}x{cx} "
            f"coarse grid and a node step of {node_step}"
        )
    ky, wy, dy = _axis_weights(xp, ny, cy)
    kx, wx, dx = _axis_weights(xp, nx, cx)
    rows = grid[ky] * (1.0 - wy)[:, None] + grid[ky + dy] * wy[:, None]  # (cy, gx)
    out = rows[:, kx] * (1.0 - wx)[None, :] + rows[:, kx + dx] * wx[None, :]
    return out.astype(xp.float32)


def aot_at_altitude(aot_sea_level: Any, altitude: Any, params: L2Params, xp: ModuleType = np) -> Any:
    """The AOT of each pixel's own column, τ0·exp(−h / H) (float32), from the sea-level AOT τ0 on the same
    grid (module docstring, "AOT over relief"); `aot_sea_level` itself (as float32) when
    `aot_height_scale_m` is 0. Computed in float32 in one new array (it runs on 10/20 m strips, whose
    memory plan counts one float32 AOT array); the factor is 1 where h is not finite, as `height_factor`."""
    a = xp.asarray(aot_sea_level, dtype=xp.float32)
    H = float(params.aot_height_scale_m)
    if not H > 0:
        return a
    h = xp.asarray(altitude)
    if h.shape != a.shape:
        raise InputError(f"aot_at_altitude: aot {a.shape} and altitude {h.shape} must have the same shape")
    out = xp.multiply(h, np.float32(-1.0 / H), dtype=xp.float32)
    xp.exp(out, out=out)
    out[xp.isnan(out)] = np.float32(1.0)
    out *= a
    return out
