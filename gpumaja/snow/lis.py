"""LIS (Let-It-Snow) per-date snow detection, L2B (wasp-l3a-and-lis-snow.md §2.1-2.4).

The chain of `detect_snow`, in LIS's order (snow_detector.py pass0 / pass1 / pass2 / pass3):

1. Dark-cloud red (§2.2): `dark_cloud_red` brings the red band to a `dark_cloud_factor`-times coarser
   grid (rf = 12 for S2 at 20 m, 8 for Landsat at 30 m) and back by nearest neighbour (`red_nn`).
2. Pass 1 and the cloud components (§2.2, §2.3), CUDA kernel `snow_pass1` (kernels/snow.cu), NumPy
   twin `snow_pass1_numpy`. With NDSI = (G − S)/(G + S):
   - all_cloud = CLM > 0; cloud_refine = (all_cloud AND red_nn > r_D) OR CLM bit 5 / 6 / 7 (shadows
     of detected clouds, shadows of clouds outside the image, cirrus): "dark" MAJA clouds are released;
   - back-to-cloud = all_cloud AND red > r_B;
   - pass-1 snow = NOT all_cloud AND NDSI > n1 AND red > r1.
   They are packed in one intermediate byte (`BIT_*` below).
3. Snowline z_s (§2.3, LIS histo_utils.cxx compute_snowline_internal): `snowline`, from the pass-1
   snow and the pass-1 cloud mask (all_cloud — not the refined one, no pass 1.5 here).
4. Pass 2 (§2.3) only if the pass-1 snow fraction over the whole image (nodata included) is
   > fsnow_total_lim and z_s ≠ −1: NOT cloud_refine AND DEM > z_s AND NDSI > n2 AND red > r2
   (`strict_cloud_mask` also forbids all_cloud). Final SNW codes, FSC_TOC (§2.4) and the SNOW_ALL
   expert byte: CUDA kernel `snow_pass2`, NumPy twin `snow_pass2_numpy`.

Inputs are reflectances (LIS's milli-reflectance DN / 10000 for S2; the thresholds of `LisParams` are in
the same unit) on one grid: the caller resamples green and red to the 20 m SWIR grid (§2.1).

Choices of ours and deviations from LIS, documented here:
- Nodata = the caller's `nodata` mask OR a NaN in green, red or SWIR (LIS: SWIR == −10000). Nodata
  pixels are 255 in SNW and FSC, 0 in the expert byte, and do not enter the snowline histogram.
- NDSI is computed in float32 and compared with float32-rounded thresholds (same on GPU and CPU);
  `DEM > z_s` is compared in float64.
- Dark-cloud red: block mean of the valid (non-NaN) pixels of ceil-sized factor × factor blocks
  (`gpumaja.radiometry.coarse.block_mean`, the last row / column of blocks partial), replacing LIS's
  GDAL bilinear warp to width / rf, height / rf; then pixel (y, x) takes block (y // f, x // f).
  A block without any valid pixel gives NaN, which is never > r_D (the cloud is released).
- Snowline: the histogram spans [min, max] of the valid DEM (LIS: the whole DEM raster) with
  nbins = floor((max − min)/dz) bins of width (max − min)/nbins, the last bin closed (ITK's
  `Histogram::GetIndex` puts a value equal to the upper bound in the last bin), counted in float64.
  z_s = floor(centre(max(i − offset, 0)) − dz/2), which is min + (i − offset)·dz when max − min is a
  multiple of dz. LIS's check that skips bins centred below −413 m is not reproduced.
- LIS returns −1000 from compute_snowline_internal when no bin qualifies, and snow_detector.py tests
  `zs != -1`, so LIS (≤ 1.5) would run pass 2 with z_s = −1000; we return −1 and skip pass 2, as the
  reference document states.
- `strict_cloud_mask`: forbids snow on all_cloud (the reference's wording); LIS's snow_detector.py
  actually tests its back-to-cloud mask there.
- FSC_TOC uses the float NDSI (LIS 1.5/develop first stores NDSI ×100 as uint8), rounds half to even
  and clips snow pixels to 1..100.
- Snow / cloud percent: share of ALL pixels (nodata included) coded 100 / 205.
- Expert bit 2 (pass-2 snow) is the pass-2 test on its own, as LIS's pass2 mask (which does not
  exclude pass-1 snow): a pass-1 snow pixel above z_s carries 1 | 2. It is 0 everywhere when pass 2
  does not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module
from gpumaja.model.lis_params import (
    CLM_HIGH_CLOUD_BIT,
    CLM_SHADOW_IN_BIT,
    CLM_SHADOW_OUT_BIT,
    SNW_CLOUD,
    SNW_NO_SNOW,
    SNW_NODATA,
    SNW_SNOW,
    LisParams,
)
from gpumaja.radiometry.coarse import block_mean

# Intermediate byte written by pass 1 (kernels/snow.cu SNOW_BIT_*)
BIT_PASS1 = 1  # pass-1 snow
BIT_ALL_CLOUD = 2  # CLM > 0
BIT_CLOUD_REFINE = 4  # (all_cloud AND red_nn > r_D) OR shadow_in OR shadow_out OR high_cloud
BIT_BACK_TO_CLOUD = 8  # all_cloud AND red > r_B
BIT_NODATA = 16  # nodata mask or NaN band; no other bit set

# SNOW_ALL expert byte (§2.3 "Other outputs"; reference bit n = value 2^(n-1); kernels/snow.cu EXPERT_*)
EXPERT_PASS1_SNOW = 1
EXPERT_PASS2_SNOW = 2
EXPERT_PASS1_CLOUD = 4  # the pass-1 cloud mask = all_cloud (no pass 1.5)
EXPERT_REFINED_CLOUD = 8  # cloud_refine
EXPERT_ALL_CLOUD = 16
EXPERT_BAD_SLOPE = 32  # MG2 >= MG2_BAD_SLOPE

# LIS build_json.py `div_slope_thres` for S2 (MG2 bit 6 and above: bad slope correction), §2.3
MG2_BAD_SLOPE = 64
# FSC_TOC range of snow pixels, percent (§2.4: 1-100 FSC %, 0 = no snow)
FSC_MIN_SNOW = 1
FSC_MAX = 100

REFINE_CLM_BITS = (1 << CLM_SHADOW_IN_BIT) | (1 << CLM_SHADOW_OUT_BIT) | (1 << CLM_HIGH_CLOUD_BIT)

_KERNEL_FILE = "snow"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK_1D = 256
_MAX_BLOCKS = 4096


@dataclass(eq=False)
class SnowDetection:
    """One date's LIS result; arrays (H, W) uint8 on the backend's array module."""

    snw: Any  # SNW codes: 0 no snow, 100 snow, 205 cloud, 255 nodata
    fsc: Any  # FSC_TOC: 0 no snow, 1..100 %, 205 cloud, 255 nodata
    expert: Any  # SNOW_ALL bits (EXPERT_*)
    snowline_m: float  # z_s as computed (LIS metadata ZS), -1 if none
    pass2_ran: bool
    snow_percent: float  # share of all pixels coded 100, 0..100
    cloud_percent: float  # share of all pixels coded 205, 0..100


def _on_gpu(backend: Backend | None, a: Any) -> bool:
    return backend.is_gpu if backend is not None else array_module(a).__name__ == "cupy"


def _host(a: Any) -> np.ndarray:
    return a.get() if array_module(a).__name__ == "cupy" else np.asarray(a)


def _check_shapes(arrays: dict[str, Any], what: str) -> tuple[int, int]:
    shapes = {name: tuple(a.shape) for name, a in arrays.items() if a is not None}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"{what}: inputs must share one (H, W) shape, got {shapes}")
    return first


def _f32(p: float) -> np.float32:
    return np.float32(p)


# --- §2.2 dark-cloud red -----------------------------------------------------------------------------


def dark_cloud_red(red: Any, factor: int, xp: ModuleType) -> Any:
    """(H, W) float32: the red band at `factor`-times coarser resolution, back by nearest neighbour (§2.2).

    The coarse value is the mean of the valid (non-NaN) pixels of each factor × factor block (ceil-sized
    grid, partial edge blocks; NaN if a block has no valid pixel) — our replacement for LIS's GDAL
    bilinear downsampling; pixel (y, x) then takes block (y // factor, x // factor).
    """
    f = int(factor)
    if f != factor or f < 1:
        raise ValueError(f"dark_cloud_red: factor must be a positive integer, got {factor!r}")
    r = xp.asarray(red, dtype=xp.float32)
    if r.ndim != 2:
        raise ValueError(f"dark_cloud_red: red must be (H, W), got shape {r.shape}")
    h, w = r.shape
    if f == 1:
        return r.copy()
    coarse, _ = block_mean(r, f, min_valid_fraction=0.0)
    rows = xp.arange(h) // f
    cols = xp.arange(w) // f
    return xp.ascontiguousarray(coarse[rows[:, None], cols[None, :]])


# --- §2.2/§2.3 pass 1 -------------------------------------------------------------------------------


def _nodata_u8(xp: ModuleType, nodata: Any, shape: tuple[int, int]):
    if nodata is None:
        return xp.zeros(shape, dtype=xp.uint8)
    m = xp.asarray(nodata)
    if tuple(m.shape) != shape:
        raise ValueError(f"snow pass 1: nodata has shape {m.shape}, expected {shape}")
    return (m != 0).astype(xp.uint8)


def snow_pass1_numpy(green, red, swir, red_nn, clm, nodata, params: LisParams) -> np.ndarray:
    """NumPy twin of the `snow_pass1` kernel: (H, W) uint8 intermediate byte (BIT_*), §2.2-2.3."""
    g, r, s, rnn = (np.asarray(_host(a), dtype=np.float32) for a in (green, red, swir, red_nn))
    c = np.asarray(_host(clm), dtype=np.uint8)
    shape = _check_shapes({"green": g, "red": r, "swir": s, "red_nn": rnn, "clm": c}, "snow_pass1")
    nd = _nodata_u8(np, None if nodata is None else _host(nodata), shape) != 0
    nd |= np.isnan(g) | np.isnan(r) | np.isnan(s)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ndsi = (g - s) / (g + s)
    all_cloud = c != 0
    pass1 = ~all_cloud & (ndsi > _f32(params.ndsi_pass1)) & (r > _f32(params.red_pass1))
    refine = (all_cloud & (rnn > _f32(params.red_dark_cloud))) | ((c & np.uint8(REFINE_CLM_BITS)) != 0)
    back = all_cloud & (r > _f32(params.red_back_to_cloud))
    bits = (pass1 * BIT_PASS1 | all_cloud * BIT_ALL_CLOUD | refine * BIT_CLOUD_REFINE
            | back * BIT_BACK_TO_CLOUD).astype(np.uint8)
    return np.where(nd, np.uint8(BIT_NODATA), bits).astype(np.uint8)


def _launch_grid(n: int) -> tuple[int]:
    return (max(1, min(_MAX_BLOCKS, (n + _BLOCK_1D - 1) // _BLOCK_1D)),)


def _snow_pass1_gpu(green, red, swir, red_nn, clm, nodata, params: LisParams):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("snow_pass1", domain="gpumaja"):
        g, r, s, rnn = (cupy.ascontiguousarray(cupy.asarray(a, dtype=cupy.float32))
                        for a in (green, red, swir, red_nn))
        c = cupy.ascontiguousarray(cupy.asarray(clm, dtype=cupy.uint8))
        shape = _check_shapes({"green": g, "red": r, "swir": s, "red_nn": rnn, "clm": c}, "snow_pass1")
        nd = cupy.ascontiguousarray(_nodata_u8(cupy, nodata, shape))
        n = shape[0] * shape[1]
        if n >= 2**31:
            raise ValueError(f"snow_pass1: {shape} pixels exceed the kernel's 32-bit indexing")
        bits = cupy.empty(shape, dtype=cupy.uint8)
        if n == 0:
            return bits
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("snow_pass1")
        kernel(_launch_grid(n), (_BLOCK_1D,), (
            g, r, s, rnn, c, nd, np.int32(n),
            _f32(params.ndsi_pass1), _f32(params.red_pass1), _f32(params.red_dark_cloud),
            _f32(params.red_back_to_cloud), np.int32(REFINE_CLM_BITS), bits,
        ))
        return bits


def snow_pass1(green: Any, red: Any, swir: Any, red_nn: Any, clm: Any, nodata: Any, params: LisParams,
               backend: Backend | None = None) -> Any:
    """(H, W) uint8 intermediate byte (BIT_*): pass-1 snow, all_cloud, cloud_refine, back-to-cloud, nodata.

    green, red, swir, red_nn: float32 reflectances (NaN = nodata); clm: uint8 Theia CLM; nodata: mask
    (nonzero = nodata) or None. §2.2 cloud components and §2.3 pass 1. The CUDA kernel runs when
    `backend.is_gpu` (or, without a backend, for CuPy inputs); else the NumPy twin.
    """
    if _on_gpu(backend, green):
        return _snow_pass1_gpu(green, red, swir, red_nn, clm, nodata, params)
    return snow_pass1_numpy(green, red, swir, red_nn, clm, nodata, params)


# --- §2.3/§2.4 pass 2, final codes, FSC, expert byte ------------------------------------------------


def snow_pass2_numpy(green, red, swir, dem, bits, z_s: float, run_pass2: bool, params: LisParams,
                     mg2=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy twin of the `snow_pass2` kernel: (SNW, FSC_TOC, SNOW_ALL expert), (H, W) uint8 each."""
    g, r, s, z = (np.asarray(_host(a), dtype=np.float32) for a in (green, red, swir, dem))
    b = np.asarray(_host(bits), dtype=np.uint8)
    m = None if mg2 is None else np.asarray(_host(mg2), dtype=np.uint8)
    _check_shapes({"green": g, "red": r, "swir": s, "dem": z, "bits": b, "mg2": m}, "snow_pass2")
    nodata = (b & BIT_NODATA) != 0
    pass1 = (b & BIT_PASS1) != 0
    all_cloud = (b & BIT_ALL_CLOUD) != 0
    refine = (b & BIT_CLOUD_REFINE) != 0
    back = (b & BIT_BACK_TO_CLOUD) != 0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ndsi = (g - s) / (g + s)
        if run_pass2:
            pass2 = (~refine & (z.astype(np.float64) > np.float64(z_s)) & (ndsi > _f32(params.ndsi_pass2))
                     & (r > _f32(params.red_pass2)))
            if params.strict_cloud_mask:
                pass2 &= ~all_cloud
        else:
            pass2 = np.zeros(b.shape, dtype=bool)
        pass2 &= ~nodata
        pass1 &= ~nodata
        snow = pass1 | pass2
        lin = np.float64(params.fsc_ndsi_gain) * ndsi.astype(np.float64) + np.float64(params.fsc_ndsi_offset)
        capped = np.where(lin < 1.0, lin, 1.0)
        pct = np.clip(np.rint(100.0 * capped), FSC_MIN_SNOW, FSC_MAX)  # percent
    cloud = ~snow & (refine | back)
    snw = np.full(b.shape, SNW_NO_SNOW, dtype=np.uint8)
    snw[cloud] = SNW_CLOUD
    snw[snow] = SNW_SNOW
    snw[nodata] = SNW_NODATA
    fsc = np.zeros(b.shape, dtype=np.uint8)
    fsc[cloud] = SNW_CLOUD
    fsc[snow] = pct[snow].astype(np.uint8)
    fsc[nodata] = SNW_NODATA
    expert = (pass1 * EXPERT_PASS1_SNOW | pass2 * EXPERT_PASS2_SNOW | all_cloud * (EXPERT_PASS1_CLOUD | EXPERT_ALL_CLOUD)
              | refine * EXPERT_REFINED_CLOUD).astype(np.uint8)
    if m is not None:
        expert |= ((m >= MG2_BAD_SLOPE) * EXPERT_BAD_SLOPE).astype(np.uint8)
    expert[nodata] = 0
    return snw, fsc, expert


def _snow_pass2_gpu(green, red, swir, dem, bits, z_s: float, run_pass2: bool, params: LisParams, mg2):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("snow_pass2", domain="gpumaja"):
        g, r, s, z = (cupy.ascontiguousarray(cupy.asarray(a, dtype=cupy.float32)) for a in (green, red, swir, dem))
        b = cupy.ascontiguousarray(cupy.asarray(bits, dtype=cupy.uint8))
        m = None if mg2 is None else cupy.ascontiguousarray(cupy.asarray(mg2, dtype=cupy.uint8))
        shape = _check_shapes({"green": g, "red": r, "swir": s, "dem": z, "bits": b, "mg2": m}, "snow_pass2")
        n = shape[0] * shape[1]
        if n >= 2**31:
            raise ValueError(f"snow_pass2: {shape} pixels exceed the kernel's 32-bit indexing")
        snw = cupy.empty(shape, dtype=cupy.uint8)
        fsc = cupy.empty(shape, dtype=cupy.uint8)
        expert = cupy.empty(shape, dtype=cupy.uint8)
        if n == 0:
            return snw, fsc, expert
        has_mg2 = m is not None
        if m is None:
            m = cupy.zeros(1, dtype=cupy.uint8)
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("snow_pass2")
        kernel(_launch_grid(n), (_BLOCK_1D,), (
            g, r, s, z, b, m, np.int32(n), np.float64(z_s), np.int32(bool(run_pass2)),
            np.int32(bool(params.strict_cloud_mask)), _f32(params.ndsi_pass2), _f32(params.red_pass2),
            np.float64(params.fsc_ndsi_gain), np.float64(params.fsc_ndsi_offset), np.int32(FSC_MIN_SNOW),
            np.int32(FSC_MAX), np.int32(has_mg2), np.int32(MG2_BAD_SLOPE), np.int32(SNW_SNOW),
            np.int32(SNW_CLOUD), np.int32(SNW_NODATA), snw, fsc, expert,
        ))
        return snw, fsc, expert


def snow_pass2(green: Any, red: Any, swir: Any, dem: Any, bits: Any, z_s: float, run_pass2: bool,
               params: LisParams, backend: Backend | None = None, mg2: Any = None) -> tuple[Any, Any, Any]:
    """(SNW, FSC_TOC, SNOW_ALL expert), (H, W) uint8 each: §2.3 pass 2 and final classes, §2.4 FSC.

    bits: `snow_pass1`'s byte; dem: float32 metres (NaN never passes DEM > z_s); run_pass2: whether
    pass 2 runs (else snow = pass 1 only); mg2: the MAJA MG2 byte or None (expert bit 32 when
    MG2 >= 64). CUDA kernel when `backend.is_gpu` (or CuPy inputs without a backend), else the twin.
    """
    if _on_gpu(backend, green):
        return _snow_pass2_gpu(green, red, swir, dem, bits, z_s, run_pass2, params, mg2)
    return snow_pass2_numpy(green, red, swir, dem, bits, z_s, run_pass2, params, mg2=mg2)


# --- §2.3 snowline ----------------------------------------------------------------------------------


def snowline(dem: Any, snow: Any, cloud: Any, valid: Any, params: LisParams, xp: ModuleType, *,
             dz: float | None = None, zmin: float | None = None, zmax: float | None = None) -> float:
    """Snowline z_s in metres, −1 if none (§2.3 "Snowline z_s", LIS compute_snowline_internal).

    Histogram of the DEM over the `valid` pixels (finite DEM only) from zmin to zmax (default: their
    min and max) with nbins = floor((zmax − zmin)/dz) bins of equal width (zmax − zmin)/nbins, the
    last bin closed (a pixel at zmax counts in it; pixels outside [zmin, zmax] are not counted). Per
    bin: total pixels, clear = NOT cloud, snow = snow AND NOT cloud. The first bin i, scanning upward,
    with clear/total > fclear_lim AND snow/clear > fsnow_lim gives
    z_s = floor(centre(max(i − snowline_bin_offset, 0)) − dz/2) (= zmin + (i − offset)·dz when the
    range is a multiple of dz). −1 when nbins < 1, no valid pixel, or no bin qualifies.
    `cloud` is the pass-1 cloud mask (all_cloud), not the refined one.
    """
    step = float(params.dz_m if dz is None else dz)
    z = xp.asarray(dem, dtype=xp.float64)
    ok = xp.asarray(valid).astype(bool) & xp.isfinite(z)
    sn = xp.asarray(snow).astype(bool)
    cl = xp.asarray(cloud).astype(bool)
    _check_shapes({"dem": z, "snow": sn, "cloud": cl, "valid": ok}, "snowline")
    if zmin is None or zmax is None:
        if not bool(ok.any()):
            return -1.0
        lo = float(z[ok].min()) if zmin is None else float(zmin)
        hi = float(z[ok].max()) if zmax is None else float(zmax)
    else:
        lo, hi = float(zmin), float(zmax)
    if not (step > 0.0 and hi > lo):
        return -1.0
    nbins = math.floor((hi - lo) / step)
    if nbins < 1:
        return -1.0
    width = (hi - lo) / nbins
    edges = lo + np.arange(nbins + 1, dtype=np.float64) * width
    edges[-1] = hi
    inside = ok & (z >= lo) & (z <= hi)
    zi = z[inside]
    idx = xp.clip(xp.searchsorted(xp.asarray(edges), zi, side="right") - 1, 0, nbins - 1)
    clear = ~cl[inside]
    snow_clear = clear & sn[inside]
    total = _host(xp.bincount(idx, minlength=nbins))
    n_clear = _host(xp.bincount(idx[clear], minlength=nbins))
    n_snow = _host(xp.bincount(idx[snow_clear], minlength=nbins))
    offset = int(params.snowline_bin_offset)
    for i in range(nbins):
        tot, clr, sno = int(total[i]), int(n_clear[i]), int(n_snow[i])
        clear_fraction = clr / tot if tot else 0.0
        if clr > 0 and clear_fraction > params.fclear_lim and sno / clr > params.fsnow_lim:
            k = max(i - offset, 0)
            centre = (edges[k] + edges[k + 1]) / 2.0
            return float(math.floor(centre - step / 2.0))
    return -1.0


# --- §2.3 the whole chain ---------------------------------------------------------------------------


def detect_snow(green: Any, red: Any, swir: Any, clm: Any, dem: Any, nodata: Any, params: LisParams,
                dark_cloud_factor: int, backend: Backend, mg2: Any = None) -> SnowDetection:
    """LIS snow detection of one date on one grid (§2.2-2.4); see the module docstring for the steps.

    green, red, swir: reflectances (NaN = nodata) resampled by the caller to one grid; clm: Theia CLM
    byte; dem: metres; nodata: mask (nonzero = nodata) or None; dark_cloud_factor: rf (12 for S2
    20 m, 8 for Landsat 30 m); mg2: MAJA MG2 byte or None. Arrays of the result are on `backend.xp`.
    """
    xp = backend.xp
    g = xp.asarray(green, dtype=xp.float32)
    r = xp.asarray(red, dtype=xp.float32)
    s = xp.asarray(swir, dtype=xp.float32)
    c = xp.asarray(clm, dtype=xp.uint8)
    z = xp.asarray(dem, dtype=xp.float32)
    nd = None if nodata is None else xp.asarray(nodata)
    m = None if mg2 is None else xp.asarray(mg2, dtype=xp.uint8)
    shape = _check_shapes({"green": g, "red": r, "swir": s, "clm": c, "dem": z, "nodata": nd, "mg2": m},
                          "detect_snow")
    n_total = shape[0] * shape[1]
    if n_total == 0:
        raise ValueError("detect_snow: empty image")

    red_nn = dark_cloud_red(r, dark_cloud_factor, xp)
    bits = snow_pass1(g, r, s, red_nn, c, nd, params, backend)
    pass1 = (bits & BIT_PASS1) != 0
    all_cloud = (bits & BIT_ALL_CLOUD) != 0
    valid = (bits & BIT_NODATA) == 0

    z_s = snowline(z, pass1, all_cloud, valid, params, xp)
    snow_fraction = int(pass1.sum()) / n_total  # whole image, nodata included
    run = snow_fraction > params.fsnow_total_lim and z_s != -1.0

    snw, fsc, expert = snow_pass2(g, r, s, z, bits, z_s, run, params, backend, mg2=m)
    return SnowDetection(
        snw=snw, fsc=fsc, expert=expert, snowline_m=float(z_s), pass2_ran=bool(run),
        snow_percent=100.0 * int((snw == SNW_SNOW).sum()) / n_total,
        cloud_percent=100.0 * int((snw == SNW_CLOUD).sum()) / n_total,
    )


__all__ = ["BIT_ALL_CLOUD", "BIT_BACK_TO_CLOUD", "BIT_CLOUD_REFINE", "BIT_NODATA", "BIT_PASS1",
           "EXPERT_ALL_CLOUD", "EXPERT_BAD_SLOPE", "EXPERT_PASS1_CLOUD", "EXPERT_PASS1_SNOW",
           "EXPERT_PASS2_SNOW", "EXPERT_REFINED_CLOUD", "FSC_MAX", "FSC_MIN_SNOW", "MG2_BAD_SLOPE",
           "REFINE_CLM_BITS", "SnowDetection", "dark_cloud_red", "detect_snow", "snow_pass1",
           "snow_pass1_numpy", "snow_pass2", "snow_pass2_numpy", "snowline"]
