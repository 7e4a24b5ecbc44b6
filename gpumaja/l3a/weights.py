"""WASP per-pixel, per-date weights (wasp-l3a-and-lis-snow.md §1.3).

The total weight of a pixel in one L2A date is W = |W_aot · W_cld · W_sensor · W_date| (§1.3); the
product itself is formed by `gpumaja.l3a.synthesis.total_weight` (CUDA kernel `wasp_weight` + NumPy
twin). This module holds the four factors:

- `aot_weight` (§1.3b): piecewise linear in the AOT, W_min..W_max.
- `cloud_blurs` + `upsample_coarse` + `cloud_weight` (§1.3a): the "distance to clouds" as two Gaussian
  blurs of the cloud mask on a coarse grid; `cloud_weight_map` chains the three.
- `sensor_weight` (§1.3c) and `date_weight` (§1.3d): one constant per date.

Choices of ours, documented here (deviations from the WASP code cited in §1.3):
- Downsampling to the coarse grid is the fraction of cloudy pixels among the valid pixels of each
  f x f block (f = coarse_resolution / resolution; edge blocks are partial, the coarse grid is
  ceil(H/f) x ceil(W/f)), instead of OTB's bicubic (BCO, radius 2f) resampling with Neumann padding.
  The block fraction is what the bicubic estimates, without its ringing.
- Re-binarisation is fraction > coarse_cloud_fraction (WASP: > 0.5 + 1e-4).
- The Gaussian blurs are scipy / cupyx `gaussian_filter` with mode "nearest" (ITK's zero-flux
  Neumann boundary), sigma in coarse pixels, truncated at GAUSSIAN_TRUNCATE_SIGMAS sigma or less so
  that the kernel is at most kernel_width_px wide (ITK DiscreteGaussian stops at MaximumError 0.01
  instead: its kernel is slightly shorter, so the tails differ by < 1 %).
- Upsampling back to the fine grid is bilinear (WASP: bicubic), coarse pixel centres at
  (i + 0.5) f - 0.5 fine pixel coordinates, edge values held beyond the outermost centres (the
  alignment of `gpumaja.masks.morphology.resample_float`), written as a0 + t (a1 - a0) so that a
  constant field stays exactly constant.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.masks.morphology import ndimage_for
from gpumaja.model.wasp_params import WaspParams

# Gaussian kernels are cut at this many sigma (scipy's default; the kernel mass beyond is < 1e-4),
# or earlier if kernel_width_px requires it.
GAUSSIAN_TRUNCATE_SIGMAS = 4.0
# Prefix of the mission names weighted 1 by WASP (§1.3c, TotalWeightComputation::SetMissionName).
FULL_WEIGHT_MISSION_PREFIX = "SENTINEL2"
# Fine rows interpolated at once by `upsample_coarse` (bounds the float32 temporaries).
_ROWS_PER_CHUNK = 1024


# --- §1.3b AOT weight ---------------------------------------------------------------------------------


def aot_weight(aot: Any, params: WaspParams, xp: ModuleType = np) -> Any:
    """W_aot (float32, same shape as `aot`) of §1.3b (WeightAOTComputation.h).

        aot < 0          -> 0
        0 <= aot < AOT_MAX -> W_min + (W_max - W_min) · (1 - aot / AOT_MAX)
        aot >= AOT_MAX    -> W_min
        aot NaN (no data) -> W_min

    The NaN rule is ours: WASP reads the ATB DN, whose no-data count 0 gives AOT 0 (W_max); we take the
    pessimistic W_min for a pixel whose AOT is unknown. Every operation is float32 in this order, which
    the CUDA kernel `wasp_weight` repeats (compiled with --fmad=false) to give the same bits.
    """
    a = xp.asarray(aot, dtype=xp.float32)
    w_min = np.float32(params.aot_weight_min)
    w_max = np.float32(params.aot_weight_max)
    a_max = np.float32(params.aot_max)
    span = np.float32(w_max - w_min)
    with np.errstate(invalid="ignore", divide="ignore"):
        linear = w_min + span * (np.float32(1.0) - a / a_max)
        w = xp.where(a < a_max, linear, w_min)
        w = xp.where(a < 0, np.float32(0.0), w)
    w = xp.where(xp.isnan(a), w_min, w)
    return w.astype(xp.float32, copy=False)


# --- §1.3c sensor weight, §1.3d date weight -------------------------------------------------------------


def sensor_weight(platform: str, params: WaspParams) -> float:
    """W_sensor (§1.3c): 1 when the mission name starts with "SENTINEL2" (case-insensitive), else
    params.sensor_weight_other (0.33; VENUS included, as in the released code)."""
    return 1.0 if platform.upper().startswith(FULL_WEIGHT_MISSION_PREFIX) else float(params.sensor_weight_other)


def date_weight(delta_days: float, params: WaspParams) -> float:
    """W_date (§1.3d) for an acquisition `delta_days` from the central date (sign ignored).

    Default (the documented intent): W = 1 - min(|Δt| / H, 1) · (1 - W_date_min) with H =
    half_window_days: 1 at the central date, linear down to W_date_min at ±H, W_date_min beyond.

    params.date_weight_integer_division = True reproduces TotalWeightComputation::ComputeWeightOnDate:
    Δt truncated to whole days, integer division, no clamp: W = 1 - (trunc|Δt| // H) · (1 - W_date_min),
    i.e. 1 for |Δt| < H, W_date_min from H to 2H - 1, then 1 - 2 (1 - W_date_min) ... (may go <= 0; the
    total weight takes the absolute value, as WASP does).
    """
    h = int(params.half_window_days)
    if h <= 0:
        raise ValueError(f"date_weight: half_window_days must be > 0, got {params.half_window_days}")
    drop = 1.0 - float(params.date_weight_min)
    dt = abs(float(delta_days))
    if params.date_weight_integer_division:
        return 1.0 - float(int(dt) // h) * drop
    return 1.0 - min(dt / h, 1.0) * drop


# --- §1.3a cloud weight ---------------------------------------------------------------------------------


def _block_sum(a: Any, f: int, xp: ModuleType) -> Any:
    """Sum over f x f blocks (zero-padded to whole blocks): (ceil(H/f), ceil(W/f)) float32."""
    h, w = a.shape
    ch, cw = -(-h // f), -(-w // f)
    padded = xp.zeros((ch * f, cw * f), dtype=xp.float32)
    padded[:h, :w] = a
    return padded.reshape(ch, f, cw, f).sum(axis=(1, 3), dtype=xp.float32)


def _truncate(sigma: float, params: WaspParams) -> float:
    """truncate (in sigma) so that scipy's kernel, 2 round(truncate sigma) + 1 taps, is <= kernel_width_px."""
    max_radius = (int(params.kernel_width_px) - 1) // 2
    return min(GAUSSIAN_TRUNCATE_SIGMAS, max_radius / sigma)


def cloud_blurs(cloud: Any, valid: Any | None, factor: int, params: WaspParams,
                xp: ModuleType = np) -> tuple[Any, Any]:
    """(G_small, G_large): the two coarse Gaussian blurs of the cloud mask (§1.3a steps 1-4).

    cloud: (H, W) bool at the group resolution; valid: (H, W) bool (None = all valid), the pixels that
    count in the block fractions; factor = coarse_resolution_m / resolution (24 at 10 m, 12 at 20 m).

    1. fraction of cloudy pixels among the valid pixels of each factor x factor block (edge blocks
       partial; a block without valid pixels counts as clear) on a ceil(H/f) x ceil(W/f) grid
       (replaces OTB's bicubic downsampling, see the module doc);
    2. binary = fraction > coarse_cloud_fraction;
    3. Gaussian blurs with sigma_small_px and sigma_large_px coarse pixels, mode "nearest" (zero-flux
       Neumann), kernel width <= kernel_width_px.

    Returns two float32 (ceil(H/f), ceil(W/f)) arrays in [0, 1].
    """
    f = int(factor)
    if f != factor or f < 1:
        raise ValueError(f"cloud_blurs: factor must be a positive integer, got {factor!r}")
    c = xp.asarray(cloud).astype(bool, copy=False)
    if c.ndim != 2:
        raise ValueError(f"cloud_blurs: cloud must be 2-D, got shape {c.shape}")
    v = xp.ones(c.shape, dtype=bool) if valid is None else xp.asarray(valid).astype(bool, copy=False)
    if v.shape != c.shape:
        raise ValueError(f"cloud_blurs: valid has shape {v.shape}, expected {c.shape}")
    n_cloud = _block_sum((c & v).astype(xp.float32), f, xp)
    n_valid = _block_sum(v.astype(xp.float32), f, xp)
    fraction = n_cloud / xp.where(n_valid > 0, n_valid, np.float32(1.0))
    binary = (fraction > np.float32(params.coarse_cloud_fraction)).astype(xp.float32)
    ndi = ndimage_for(xp)
    out = []
    for sigma in (float(params.sigma_small_px), float(params.sigma_large_px)):
        g = ndi.gaussian_filter(binary, sigma, mode="nearest", truncate=_truncate(sigma, params))
        out.append(g.astype(xp.float32, copy=False))
    return out[0], out[1]


def _axis_taps(n_out: int, n_in: int, f: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear taps along one axis: (i0, i1, t) with fine pixel k at coarse coordinate
    u = (k + 0.5) / f - 0.5 clamped to [0, n_in - 1], i0 = floor(u), i1 = min(i0 + 1, n_in - 1),
    t = u - i0 (float32)."""
    u = (np.arange(n_out, dtype=np.float64) + 0.5) / f - 0.5
    u = np.clip(u, 0.0, float(n_in - 1))
    i0 = np.floor(u).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (u - i0).astype(np.float32)


def upsample_coarse(a: Any, shape: tuple[int, int], factor: int, xp: ModuleType = np) -> Any:
    """Coarse (ch, cw) field -> fine `shape` (H, W) float32 by separable bilinear interpolation.

    Coarse pixel i is centred at fine coordinate (i + 0.5) · factor - 0.5; beyond the outermost
    centres the edge value is held. Each axis is a0 + t · (a1 - a0), so a constant stays constant.
    `shape` may be smaller than (ch f, cw f) (the fine grid's partial last block).
    """
    f = int(factor)
    if f != factor or f < 1:
        raise ValueError(f"upsample_coarse: factor must be a positive integer, got {factor!r}")
    c = xp.asarray(a, dtype=xp.float32)
    if c.ndim != 2 or c.size == 0:
        raise ValueError(f"upsample_coarse: a must be a non-empty 2-D array, got shape {c.shape}")
    ny, nx = (int(s) for s in shape)
    ch, cw = c.shape
    if not (0 <= ny <= ch * f and 0 <= nx <= cw * f):
        raise ValueError(f"upsample_coarse: fine shape {tuple(shape)} exceeds the coarse grid {c.shape} x {f}")
    out = xp.empty((ny, nx), dtype=xp.float32)
    if ny == 0 or nx == 0:
        return out
    x0, x1, tx = (xp.asarray(t) for t in _axis_taps(nx, cw, f))
    y0, y1, ty = _axis_taps(ny, ch, f)
    cols = c[:, x0] + tx[None, :] * (c[:, x1] - c[:, x0])  # (ch, nx)
    for r0 in range(0, ny, _ROWS_PER_CHUNK):
        r1 = min(ny, r0 + _ROWS_PER_CHUNK)
        i0, i1, t = xp.asarray(y0[r0:r1]), xp.asarray(y1[r0:r1]), xp.asarray(ty[r0:r1])
        out[r0:r1] = cols[i0, :] + t[:, None] * (cols[i1, :] - cols[i0, :])
    return out


def cloud_weight(g_small: Any, g_large: Any, xp: ModuleType = np) -> Any:
    """W_cld = (1 - |G_small|) · (1 - |G_large|), and 0 where either |G| >= 1 (§1.3a step 6). float32."""
    gs = xp.abs(xp.asarray(g_small, dtype=xp.float32))
    gl = xp.abs(xp.asarray(g_large, dtype=xp.float32))
    one = np.float32(1.0)
    w = (one - gs) * (one - gl)
    return xp.where((gs >= one) | (gl >= one), np.float32(0.0), w).astype(xp.float32, copy=False)


def cloud_weight_map(cloud: Any, valid: Any | None, factor: int, params: WaspParams,
                     xp: ModuleType = np) -> Any:
    """W_cld on the fine (H, W) grid of `cloud`: `cloud_blurs`, `upsample_coarse` of both, `cloud_weight`."""
    g_small, g_large = cloud_blurs(cloud, valid, factor, params, xp)
    shape = tuple(xp.asarray(cloud).shape)
    return cloud_weight(upsample_coarse(g_small, shape, factor, xp), upsample_coarse(g_large, shape, factor, xp), xp)


def coarse_factor(resolution_m: float, params: WaspParams) -> int:
    """coarse_resolution_m / resolution_m as an integer (24 at 10 m, 12 at 20 m)."""
    f = params.coarse_resolution_m / float(resolution_m)
    if not math.isclose(f, round(f)) or round(f) < 1:
        raise ValueError(f"coarse resolution {params.coarse_resolution_m} m is not a whole multiple of "
                         f"{resolution_m} m")
    return round(f)


__all__ = [
    "GAUSSIAN_TRUNCATE_SIGMAS",
    "aot_weight",
    "cloud_blurs",
    "cloud_weight",
    "cloud_weight_map",
    "coarse_factor",
    "date_weight",
    "sensor_weight",
    "upsample_coarse",
]
