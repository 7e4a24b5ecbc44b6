"""WASP running weighted synthesis (wasp-l3a-and-lis-snow.md §1.3 total weight, §1.5 update).

Per date, in `synthesis_order`:

1. `total_weight`: W = |W_aot · W_cld · W_sensor · W_date| per pixel (§1.3; the factors come from
   `gpumaja.l3a.weights`). CUDA kernel `wasp_weight` (kernels/wasp.cu), NumPy twin `wasp_weight_numpy`.
2. `update_synthesis`: the per-pixel state machine of §1.5 (UpdateSynthesisFunctor.txx), applied in
   place to a `SynthesisState`. CUDA kernel `wasp_update`, NumPy twin `wasp_update_numpy`.

Net priority: LAND (weighted mean) > SNOW / WATER (the one processed last) > CLOUD (darkest blue) >
NODATA. Rules per pixel, wp = stored W, wc = current W (NaN or negative taken as 0):

- A date whose bands are all NaN at a pixel changes nothing there (all branches).
- LAND (no cloud, snow or water bit): per band with a valid current value, the weighted mean
  (wp·Rp + wc·Rc) / (wp + wc) when the previous value is valid and wp > 0, else the current value;
  bands with a NaN current value keep the previous one. W and D follow the first band k whose current
  value is valid: previous R[k] valid and wp > 0 -> W = wp + wc, D = (wp·Dp + wc·day) / (wp + wc);
  else W = wc, D = day (this covers WASP's wp = wc = 0 edge case, 0/0 there). F = LAND.
- SNOW / WATER (no cloud; water wins when both bits are set): wp == 0 (never seen as clear land) ->
  R = current (previous kept where current is NaN), W = 0, D = day, F = SNOW or WATER, blue = current
  blue; wp > 0 -> bands whose previous R is NaN take the current value, F = LAND (land has priority).
- CLOUD (cloud wins over the snow / water bits): F == NODATA -> R = current, W = 0, D = day,
  F = CLOUD, blue = current blue; F == CLOUD -> R (where current is valid), D and blue replaced when
  the current blue is valid and below the stored one (or the stored one is NaN): minimum-blue rule;
  F == LAND -> bands whose previous R is NaN take the current value; F == SNOW / WATER -> unchanged.

Deviations from the WASP code, documented here:
- W, D and F are one value per pixel (WASP computes them per band and writes band 0's). W and D
  follow the first band with a valid current value rather than band 0.
- D is the float weighted mean day (WASP truncates it to a short at every step).
- A date with no valid band leaves the pixel alone: WASP would set F = SNOW/WATER (snow/water branch),
  set D (cloud branch on F = 0), or, in the minimum-blue rule, replace a cloudy pixel by no data (its
  no-data reflectance -1 compares below any blue).
- The minimum-blue rule replaces only the bands with a valid current value; WASP copies them all.
  A NaN stored blue counts as +infinity.
- Snow / water on a land pixel (wp > 0) fills bands whose previous R is NaN, as WASP does, but keeps W
  (WASP sets that band's weight to no data).
- Order: WASP processes the dates in command-line order, so the "last" snow / water observation is
  arbitrary. `synthesis_order` sorts them so that the result does not depend on the input order and
  the snow / water observation closest to the synthesis date is the one kept.

Floats: every operation is float32, in the same order in the kernels (compiled with --fmad=false)
and in the twins, so GPU and CPU give the same bits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module
from gpumaja.l3a.weights import aot_weight
from gpumaja.model.l3a import FLG_CLOUD, FLG_LAND, FLG_NODATA, FLG_SNOW, FLG_WATER
from gpumaja.model.wasp_params import WaspParams

_KERNEL_FILE = "wasp"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK = 256
_MAX_BLOCKS = 4096
_INDEX_LIMIT = 2**31


@dataclass(eq=False)
class SynthesisState:
    """The running L3A state of one resolution group (§1.5), NumPy or CuPy arrays.

    reflectance: (B, H, W) float32, NaN = no data; weight: (H, W) float32 accumulated W (0 = never
    seen as clear land); day: (H, W) float32 weighted mean day, NaN = none; flag: (H, W) uint8
    FLG_* (gpumaja.model.l3a); blue: (H, W) float32, the blue reflectance the cloud minimum-blue rule
    compares against (NaN = none).
    """

    reflectance: Any
    weight: Any
    day: Any
    flag: Any
    blue: Any

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.weight.shape)

    @property
    def n_bands(self) -> int:
        return int(self.reflectance.shape[0])


def new_state(n_bands: int, shape: tuple[int, int], xp: ModuleType = np) -> SynthesisState:
    """The empty state: R NaN, W 0, D NaN, F FLG_NODATA, blue NaN."""
    h, w = (int(s) for s in shape)
    return SynthesisState(
        reflectance=xp.full((int(n_bands), h, w), xp.nan, dtype=xp.float32),
        weight=xp.zeros((h, w), dtype=xp.float32),
        day=xp.full((h, w), xp.nan, dtype=xp.float32),
        flag=xp.full((h, w), FLG_NODATA, dtype=xp.uint8),
        blue=xp.full((h, w), xp.nan, dtype=xp.float32),
    )


def synthesis_order(days: Sequence[float], ids: Sequence[str], central_day: float) -> list[int]:
    """Indices of the dates in processing order: sorted by (-|day - central_day|, day, id).

    The farthest date comes first and the one closest to the synthesis date last, so the snow /
    water observation kept (the last processed, §1.5) is the closest one; between two dates equally far
    the later one is processed last; `ids` (e.g. product ids) break the remaining ties. The result does
    not depend on the order of the inputs (WASP uses the command-line order: a documented deviation).
    """
    if len(days) != len(ids):
        raise ValueError(f"synthesis_order: {len(days)} days but {len(ids)} ids")
    c = float(central_day)
    return sorted(range(len(days)), key=lambda i: (-abs(float(days[i]) - c), float(days[i]), str(ids[i])))


def _on_gpu(backend: Backend | None, a: Any) -> bool:
    return backend.is_gpu if backend is not None else array_module(a).__name__ == "cupy"


def _host(a: Any) -> np.ndarray:
    return a.get() if array_module(a).__name__ == "cupy" else np.asarray(a)


def _launch_grid(n: int) -> tuple[int]:
    return (max(1, min(_MAX_BLOCKS, (n + _BLOCK - 1) // _BLOCK)),)


# --- §1.3 total weight ---------------------------------------------------------------------------------


def wasp_weight_numpy(aot: Any, w_cloud: Any, w_sensor: float, w_date: float, params: WaspParams) -> np.ndarray:
    """NumPy twin of the `wasp_weight` kernel: |W_aot · W_cld · W_sensor · W_date| (float32), 0 where
    W_cld is NaN or negative (WASP's WEIGHT_NO_DATA, treated as 0 by the update)."""
    wa = aot_weight(_host(aot), params, np)
    wc = np.asarray(_host(w_cloud), dtype=np.float32)
    if wc.shape != wa.shape:
        raise ValueError(f"total_weight: w_cloud has shape {wc.shape}, aot {wa.shape}")
    with np.errstate(invalid="ignore"):
        w = np.abs(((wa * wc) * np.float32(w_sensor)) * np.float32(w_date))
        return np.where(wc >= 0, w, np.float32(0.0)).astype(np.float32, copy=False)


def _wasp_weight_gpu(aot: Any, w_cloud: Any, w_sensor: float, w_date: float, params: WaspParams):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("wasp_weight", domain="gpumaja"):
        a = cupy.ascontiguousarray(cupy.asarray(aot, dtype=cupy.float32))
        wc = cupy.ascontiguousarray(cupy.asarray(w_cloud, dtype=cupy.float32))
        if wc.shape != a.shape:
            raise ValueError(f"total_weight: w_cloud has shape {wc.shape}, aot {a.shape}")
        n = a.size
        if n >= _INDEX_LIMIT:
            raise ValueError(f"total_weight: {a.shape} pixels exceed the kernel's 32-bit indexing")
        out = cupy.empty(a.shape, dtype=cupy.float32)
        if n == 0:
            return out
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("wasp_weight")
        kernel(_launch_grid(n), (_BLOCK,), (
            a, wc, np.int32(n), np.float32(params.aot_weight_min), np.float32(params.aot_weight_max),
            np.float32(params.aot_max), np.float32(w_sensor), np.float32(w_date), out,
        ))
        return out


def total_weight(aot: Any, w_cloud: Any, w_sensor: float, w_date: float, params: WaspParams,
                 backend: Backend | None = None) -> Any:
    """W = |W_aot(aot) · w_cloud · w_sensor · w_date| per pixel, float32 (§1.3).

    aot: AOT (NaN = no data, see `weights.aot_weight`); w_cloud: `weights.cloud_weight_map`; w_sensor,
    w_date: `weights.sensor_weight`, `weights.date_weight`. The CUDA kernel runs when `backend.is_gpu`
    (or, without a backend, for CuPy inputs); else the NumPy twin. Same bits on both.
    """
    if _on_gpu(backend, aot):
        return _wasp_weight_gpu(aot, w_cloud, w_sensor, w_date, params)
    return wasp_weight_numpy(aot, w_cloud, w_sensor, w_date, params)


# --- §1.5 update ------------------------------------------------------------------------------------------


def _check_inputs(state: SynthesisState, reflectance: Any, weight: Any, cloud: Any, snow: Any, water: Any,
                  blue: Any) -> None:
    nb, shape = state.n_bands, state.shape
    if tuple(reflectance.shape) != (nb, *shape):
        raise ValueError(f"update_synthesis: reflectance has shape {tuple(reflectance.shape)}, the state "
                         f"holds {nb} bands on {shape}")
    for name, a in (("weight", weight), ("cloud", cloud), ("snow", snow), ("water", water), ("blue", blue)):
        if tuple(a.shape) != shape:
            raise ValueError(f"update_synthesis: {name} has shape {tuple(a.shape)}, expected {shape}")


def wasp_update_numpy(state: SynthesisState, reflectance: Any, weight: Any, day: float, cloud: Any, snow: Any,
                      water: Any, blue: Any) -> None:
    """NumPy twin of the `wasp_update` kernel: updates the NumPy `state` in place with one date (§1.5,
    rules in the module doc)."""
    cur = np.asarray(_host(reflectance), dtype=np.float32)
    wc = np.asarray(_host(weight), dtype=np.float32)
    cl = np.asarray(_host(cloud)).astype(bool, copy=False)
    sn = np.asarray(_host(snow)).astype(bool, copy=False)
    wa = np.asarray(_host(water)).astype(bool, copy=False)
    bc = np.asarray(_host(blue), dtype=np.float32)
    _check_inputs(state, cur, wc, cl, sn, wa, bc)
    d = np.float32(day)
    R, W, D, F, B = state.reflectance, state.weight, state.day, state.flag, state.blue

    cur_valid = ~np.isnan(cur)
    any_cur = cur_valid.any(axis=0)
    k = np.argmax(cur_valid, axis=0)  # first band with a valid current value (where any_cur)
    prev_valid = ~np.isnan(R)
    prev_k = np.take_along_axis(prev_valid, k[None], axis=0)[0]
    wp = np.where(W > 0, W, np.float32(0.0))
    wc = np.where(wc > 0, wc, np.float32(0.0))
    f = F.copy()

    land = any_cur & ~cl & ~sn & ~wa
    snow_water = any_cur & ~cl & (sn | wa)
    cloudy = any_cur & cl

    with np.errstate(invalid="ignore", divide="ignore"):
        # LAND
        s = wp + wc
        mean = (wp * R + wc * cur) / s
        new_r = np.where(prev_valid & (wp > 0), mean, cur)
        R[...] = np.where(land & cur_valid, new_r, R)
        accumulate = prev_k & (wp > 0)
        mean_day = (wp * D + wc * d) / s
        D_land = np.where(accumulate, mean_day, d)
        W_land = np.where(accumulate, s, wc)
    D[land] = D_land[land]
    W[land] = W_land[land]
    F[land] = FLG_LAND

    # SNOW / WATER
    fresh = snow_water & (wp == 0)
    seen = snow_water & (wp > 0)
    R[...] = np.where(fresh & cur_valid, cur, R)
    R[...] = np.where(seen & ~prev_valid, cur, R)
    W[fresh] = 0.0
    D[fresh] = d
    F[fresh] = np.where(wa, FLG_WATER, FLG_SNOW).astype(np.uint8)[fresh]
    B[fresh] = bc[fresh]
    F[seen] = FLG_LAND

    # CLOUD
    first = cloudy & (f == FLG_NODATA)
    with np.errstate(invalid="ignore"):
        darker = cloudy & (f == FLG_CLOUD) & ~np.isnan(bc) & (np.isnan(B) | (bc < B))
    over_land = cloudy & (f == FLG_LAND)
    R[...] = np.where(first, cur, R)
    R[...] = np.where(darker & cur_valid, cur, R)
    R[...] = np.where(over_land & ~prev_valid, cur, R)
    W[first] = 0.0
    D[first | darker] = d
    F[first] = FLG_CLOUD
    B[first | darker] = bc[first | darker]


def _wasp_update_gpu(state: SynthesisState, reflectance: Any, weight: Any, day: float, cloud: Any, snow: Any,
                     water: Any, blue: Any) -> None:
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("wasp_update", domain="gpumaja"):
        # The kernel writes the state arrays in place: bring them to contiguous device arrays of the
        # expected dtypes first (a no-op for a state from `new_state(..., cupy)`).
        for name, dtype in (("reflectance", cupy.float32), ("weight", cupy.float32), ("day", cupy.float32),
                            ("flag", cupy.uint8), ("blue", cupy.float32)):
            a = getattr(state, name)
            if not (isinstance(a, cupy.ndarray) and a.dtype == dtype and a.flags.c_contiguous):
                setattr(state, name, cupy.ascontiguousarray(cupy.asarray(a, dtype=dtype)))
        cur = cupy.ascontiguousarray(cupy.asarray(reflectance, dtype=cupy.float32))
        wc = cupy.ascontiguousarray(cupy.asarray(weight, dtype=cupy.float32))
        cl, sn, wa = (cupy.ascontiguousarray(cupy.asarray(m).astype(cupy.uint8)) for m in (cloud, snow, water))
        bc = cupy.ascontiguousarray(cupy.asarray(blue, dtype=cupy.float32))
        _check_inputs(state, cur, wc, cl, sn, wa, bc)
        nb = state.n_bands
        n = state.shape[0] * state.shape[1]
        if nb * n >= _INDEX_LIMIT:
            raise ValueError(f"update_synthesis: {nb} x {state.shape} values exceed the kernel's 32-bit indexing")
        if n == 0:
            return
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("wasp_update")
        kernel(_launch_grid(n), (_BLOCK,), (
            state.reflectance, state.weight, state.day, state.flag, state.blue,
            cur, wc, cl, sn, wa, bc, np.int32(n), np.int32(nb), np.float32(day),
            np.int32(FLG_CLOUD), np.int32(FLG_SNOW), np.int32(FLG_WATER), np.int32(FLG_LAND), np.int32(FLG_NODATA),
        ))


def update_synthesis(state: SynthesisState, reflectance: Any, weight: Any, day: float, cloud: Any, snow: Any,
                     water: Any, blue: Any, backend: Backend | None = None) -> None:
    """Adds one date to `state` in place (§1.5; rules in the module doc).

    reflectance: (B, H, W) float32, NaN = no data (directionally corrected FRE, §1.4); weight: (H, W)
    float32 `total_weight`; day: the date's day (same origin as the synthesis day); cloud, snow, water:
    (H, W) bool masks; blue: (H, W) float32, the blue reflectance of the minimum-blue cloud rule (the
    corrected B2 for R1, the raw B2 at 20 m for R2). The CUDA kernel runs when `backend.is_gpu` (or,
    without a backend, for a CuPy state); else the NumPy twin.
    """
    if _on_gpu(backend, state.weight):
        _wasp_update_gpu(state, reflectance, weight, day, cloud, snow, water, blue)
    else:
        wasp_update_numpy(state, reflectance, weight, day, cloud, snow, water, blue)


__all__ = [
    "SynthesisState",
    "new_state",
    "synthesis_order",
    "total_weight",
    "update_synthesis",
    "wasp_update_numpy",
    "wasp_weight_numpy",
]
