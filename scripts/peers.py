#!/usr/bin/env python
"""Peer cloud masks for the validation: s2cloudless and ukis-csmask on Sentinel-2 TOA reflectance (not a test).

Both run on CPU, offline (their models ship inside the wheels). Neither is a gpumaja dependency: they are
imported lazily, and tests skip when they are missing.

Input: ``toa``, a dict band -> 2-D TOA reflectance array (float, NaN = no data) on grids sharing the upper-left
corner of the product's R2 (20 m) grid, each band at any resolution (native 10/20/60 m, or all resampled to
20 m): a band's resolution is ``grid_res_m * grid_shape / band_shape`` unless given in ``resolutions``. Each peer
resamples the bands it needs, by area averaging (exact overlap weights, NaN-aware), to the resolution it expects,
and its outputs come back on the R2 grid (``grid_shape`` at ``grid_res_m``) by nearest neighbour (pixel centres).
No data: NaN in a band is left out of the area averages; a peer pixel that some band covers with no valid value
at all (or that ``nodata``, on the R2 grid, covers entirely) is filled with the nearest valid peer pixel before
inference (a CNN's receptive field or s2cloudless's averaging disk would otherwise see zeros or NaN). R2 pixels
with no valid value in some used band, or in ``nodata``, are NaN / False in the outputs.

s2cloudless (Sentinel Hub, LightGBM, per pixel; s2cloudless 1.7 ``S2PixelCloudDetector(all_bands=False)``)
    bands B01, B02, B04, B05, B08, B8A, B09, B10, B11, B12 (its README), TOA reflectance = DN/10000 after the
    baseline-04.00 offset, i.e. what gpumaja's TOA is. Trained on 10 m pixels but run by Sentinel Hub at 160 m
    for its CLP/CLM layers (Sentinel Hub "Cloud masks" docs, blog "Cloud masks at your service", 2020) with
    threshold 0.4, average_over 4, dilation_size 2 (the settings of the project's examples and of
    scripts/compare_s2cloudless.py's "t0.4_avg4_dil2" run); those are the defaults here. The mask (probability
    averaged over a disk of ``average_over`` px, > ``threshold``, dilated by ``dilation_size`` px) is computed
    at ``resolution_m``, then both probability and mask are taken to 20 m by nearest neighbour.
ukis-csmask 1.0.0 (DLR, U-Net/EfficientNet-B4 in ONNX, onnxruntime CPU provider)
    6-band model: "blue", "green", "red", "nir", "swir16", "swir22", STAC common names (its band naming since
    0.2.1) = B02, B03, B04, B08, B11, B12; ``product_level="l1c"`` (TOA reflectance in [0, 1], float32). Its
    README and docstring ask for ~30 m pixels "for best performance": bands are area-averaged to 30 m
    (``resolution_m``). CSmask tiles the image itself: 256 x 256 tiles, overlap 0.2, symmetric padding, Tukey
    blending; images smaller than 256 px only trigger a UserWarning (they are padded). ``batch_size`` tiles per
    inference call (1 as in its examples). Classes: 0 clear, 1 cloud, 2 cloud shadow (argmax of the softmax: no
    threshold); its ``valid`` mask (buffered by ``invalid_buffer``) is not used.

Run on a synthetic series date against its truth (10 m truth -> 20 m: cloudy when >= 2 of the 4 pixels are):

    python scripts/peers.py --size 600 --dates 4
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

S2CLOUDLESS_BANDS = ("B01", "B02", "B04", "B05", "B08", "B8A", "B09", "B10", "B11", "B12")
S2CLOUDLESS_RESOLUTION_M = 160.0  # Sentinel Hub's CLP/CLM production resolution
S2CLOUDLESS_THRESHOLD = 0.4
S2CLOUDLESS_AVERAGE_OVER = 4  # px at S2CLOUDLESS_RESOLUTION_M
S2CLOUDLESS_DILATION = 2  # px at S2CLOUDLESS_RESOLUTION_M

UKIS_BANDS = {"blue": "B02", "green": "B03", "red": "B04", "nir": "B08", "swir16": "B11", "swir22": "B12"}
UKIS_RESOLUTION_M = 30.0  # "approximately 30 m" (ukis-csmask README / CSmask docstring)
UKIS_CLOUD, UKIS_SHADOW = 1, 2


# ---------------------------------------------------------------------------------------------------
# Resampling between grids sharing their upper-left corner
# ---------------------------------------------------------------------------------------------------


def area_weights(n_src: int, res_src: float, n_dst: int, res_dst: float):
    """(n_dst, n_src) sparse matrix of the overlap lengths of destination and source pixels along one axis
    (pixel i covers [i res, (i+1) res) from the common corner); rows not normalised."""
    from scipy import sparse

    k = int(np.ceil(res_dst / res_src)) + 1  # source pixels a destination pixel can touch
    d0 = np.arange(n_dst, dtype=np.float64) * res_dst
    i0 = np.floor(d0 / res_src).astype(np.int64)
    i = i0[:, None] + np.arange(k)[None, :]
    lo = np.maximum(d0[:, None], i * res_src)
    hi = np.minimum(d0[:, None] + res_dst, (i + 1) * res_src)
    w = np.clip(hi - lo, 0.0, None)
    ok = (w > 0) & (i < n_src)
    rows = np.broadcast_to(np.arange(n_dst)[:, None], i.shape)
    return sparse.csr_matrix((w[ok], (rows[ok], i[ok])), shape=(n_dst, n_src))


def area_resample(a: np.ndarray, res_src: float, shape_dst: tuple[int, int], res_dst: float) -> np.ndarray:
    """Area-weighted mean of `a` (NaN = no data, ignored) on the grid (shape_dst, res_dst); NaN where no valid
    source pixel overlaps. Exact for block means (res_dst a multiple of res_src) and any other ratio."""
    a = np.asarray(a, np.float64)
    wy = area_weights(a.shape[0], res_src, shape_dst[0], res_dst)
    wx = area_weights(a.shape[1], res_src, shape_dst[1], res_dst)
    valid = np.isfinite(a)
    num = wy @ (wx @ np.where(valid, a, 0.0).T).T
    den = wy @ (wx @ valid.astype(np.float64).T).T
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def nearest_index(n_dst: int, res_dst: float, n_src: int, res_src: float) -> np.ndarray:
    """Source index of each destination pixel centre along one axis (clamped to the source)."""
    return np.minimum(np.floor((np.arange(n_dst) + 0.5) * res_dst / res_src).astype(np.int64), n_src - 1)


def nearest_resample(a: np.ndarray, res_src: float, shape_dst: tuple[int, int], res_dst: float) -> np.ndarray:
    iy = nearest_index(shape_dst[0], res_dst, a.shape[0], res_src)
    ix = nearest_index(shape_dst[1], res_dst, a.shape[1], res_src)
    return a[np.ix_(iy, ix)]


def band_resolution(name: str, a: np.ndarray, grid_shape: tuple[int, int], grid_res_m: float,
                    resolutions: Mapping[str, float] | None) -> float:
    if resolutions is not None and name in resolutions:
        return float(resolutions[name])
    ry, rx = (grid_res_m * g / s for g, s in zip(grid_shape, a.shape))
    if a.ndim != 2 or not np.isclose(ry, rx, rtol=1e-9):
        raise ValueError(f"band {name}: shape {a.shape} is not the {grid_shape} R2 grid at another resolution; "
                         "pass its resolution in `resolutions`")
    return ry


def stack_bands(toa: Mapping[str, np.ndarray], bands: Sequence[str], grid_shape: tuple[int, int],
                grid_res_m: float, res_m: float,
                resolutions: Mapping[str, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, len(bands)) float64 stack at res_m covering the R2 grid's extent (NaN = no data), and the
    R2-grid no-data mask: pixels that some band covers with no valid value at all."""
    missing = [b for b in bands if b not in toa]
    if missing:
        raise KeyError(f"TOA bands missing: {missing} (needed: {list(bands)})")
    shape = tuple(int(np.ceil(g * grid_res_m / res_m - 1e-9)) for g in grid_shape)
    out = np.empty((*shape, len(bands)))
    nodata = np.zeros(grid_shape, bool)
    for k, b in enumerate(bands):
        a = np.asarray(toa[b])
        res = band_resolution(b, a, grid_shape, grid_res_m, resolutions)
        out[..., k] = area_resample(a, res, shape, res_m)
        if np.isnan(a).any():
            nodata |= np.isnan(area_resample(a, res, grid_shape, grid_res_m))
    return out, nodata


def fill_nodata(stack: np.ndarray, nodata: np.ndarray) -> np.ndarray:
    """Copy of `stack` with its no-data pixels replaced by the nearest valid pixel's values."""
    if not nodata.any():
        return stack
    from scipy import ndimage

    _, (iy, ix) = ndimage.distance_transform_edt(nodata, return_indices=True)
    return stack[iy, ix]


def _prepare(toa, bands, grid_shape, grid_res_m, res_m, resolutions, nodata):
    """Stack at res_m, its no-data mask there, and the R2 no-data mask."""
    grid_shape = tuple(int(n) for n in grid_shape)
    stack, nd_grid = stack_bands(toa, bands, grid_shape, grid_res_m, res_m, resolutions)
    nd_peer = ~np.isfinite(stack).all(axis=-1)
    nd_grid = nd_grid | nearest_resample(nd_peer, res_m, grid_shape, grid_res_m)
    if nodata is not None:
        nodata = np.asarray(nodata, bool)
        if nodata.shape != grid_shape:
            raise ValueError(f"nodata {nodata.shape} is not on the R2 grid {grid_shape}")
        nd_grid = nd_grid | nodata
        nd_peer = nd_peer | (area_resample(nodata.astype(np.float64), grid_res_m, nd_peer.shape, res_m) >= 1.0)
    return stack, nd_peer, nd_grid, grid_shape


# ---------------------------------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------------------------------


def s2cloudless_mask(
    toa: Mapping[str, np.ndarray],
    grid_shape: tuple[int, int],
    *,
    grid_res_m: float = 20.0,
    resolution_m: float = S2CLOUDLESS_RESOLUTION_M,
    threshold: float = S2CLOUDLESS_THRESHOLD,
    average_over: int | None = S2CLOUDLESS_AVERAGE_OVER,
    dilation_size: int | None = S2CLOUDLESS_DILATION,
    resolutions: Mapping[str, float] | None = None,
    nodata: np.ndarray | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(cloud probability float32, NaN on no data; cloud mask bool) of s2cloudless on the R2 grid.

    The 10 bands of S2CLOUDLESS_BANDS are area-averaged to `resolution_m` (default 160 m, Sentinel Hub's), where
    s2cloudless computes the probability and its mask (`threshold`, `average_over` and `dilation_size` in pixels
    of that resolution); both come back to `grid_shape` at `grid_res_m` by nearest neighbour."""
    from s2cloudless import S2PixelCloudDetector

    stack, nd_peer, nd_grid, grid_shape = _prepare(toa, S2CLOUDLESS_BANDS, grid_shape, grid_res_m, resolution_m,
                                                   resolutions, nodata)
    if nd_peer.all():
        return np.full(grid_shape, np.nan, np.float32), np.zeros(grid_shape, bool)
    data = fill_nodata(stack, nd_peer).astype(np.float32)[None]
    det = S2PixelCloudDetector(threshold=threshold, all_bands=False, average_over=average_over,
                               dilation_size=dilation_size)
    kw = {"num_threads": threads} if threads else {}
    prob = det.get_cloud_probability_maps(data, **kw)
    mask = det.get_mask_from_prob(prob)[0].astype(bool)
    prob = nearest_resample(prob[0], resolution_m, grid_shape, grid_res_m).astype(np.float32)
    mask = nearest_resample(mask, resolution_m, grid_shape, grid_res_m)
    return np.where(nd_grid, np.float32(np.nan), prob), mask & ~nd_grid


def ukis_csmask_mask(
    toa: Mapping[str, np.ndarray],
    grid_shape: tuple[int, int],
    *,
    grid_res_m: float = 20.0,
    resolution_m: float = UKIS_RESOLUTION_M,
    product_level: str = "l1c",
    batch_size: int = 1,
    threads: int = 0,
    resolutions: Mapping[str, float] | None = None,
    nodata: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(cloud mask, cloud-shadow mask), bool on the R2 grid, of ukis-csmask's 6-band model.

    B02, B03, B04, B08, B11, B12 (blue, green, red, nir, swir16, swir22) area-averaged to `resolution_m`
    (default 30 m, its recommendation), classified by CSmask (its own 256 px tiling, overlap 0.2) with the CPU
    provider and `threads` intra-op threads (0 = onnxruntime's choice), classes brought back to the R2 grid by
    nearest neighbour."""
    from ukis_csmask.mask import CSmask

    stack, nd_peer, nd_grid, grid_shape = _prepare(toa, tuple(UKIS_BANDS.values()), grid_shape, grid_res_m,
                                                   resolution_m, resolutions, nodata)
    if nd_peer.all():
        return np.zeros(grid_shape, bool), np.zeros(grid_shape, bool)
    img = fill_nodata(stack, nd_peer).astype(np.float32)
    csm = CSmask(img=img, band_order=list(UKIS_BANDS), product_level=product_level, nodata_value=None,
                 intra_op_num_threads=threads, inter_op_num_threads=0, providers=["CPUExecutionProvider"],
                 batch_size=batch_size).csm[..., 0]
    csm = nearest_resample(csm, resolution_m, grid_shape, grid_res_m)
    return (csm == UKIS_CLOUD) & ~nd_grid, (csm == UKIS_SHADOW) & ~nd_grid


# ---------------------------------------------------------------------------------------------------
# Against the truth of a synthetic series
# ---------------------------------------------------------------------------------------------------


def scores(pred: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    tp = float((pred & ref).sum())
    fp = float((pred & ~ref).sum())
    fn = float((~pred & ref).sum())
    prec = tp / (tp + fp) if tp + fp else float("nan")
    rec = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"oa": float((pred == ref).mean()), "precision": prec, "recall": rec, "f1": f1,
            "pred_percent": 100 * float(pred.mean()), "ref_percent": 100 * float(ref.mean())}


def main(argv: list[str] | None = None) -> int:
    from gpumaja.synth import scene

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=600, help="synthetic tile size (10 m px, multiple of 6)")
    ap.add_argument("--dates", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    land = scene.make_landscape(args.size, args.seed)
    g = (args.size // 2, args.size // 2)
    print(f"{'date':<10} {'sky':<12} {'peer':<12} {'time s':>7} {'OA':>6} {'prec':>6} {'rec':>6} {'F1':>6} "
          f"{'pred %':>7} {'truth %':>7}")
    for plan in scene.plan_dates(args.dates):
        t = scene.synthesize_date(land, plan)
        ref = scene.block_mean((t.cloud_mask | t.cirrus_mask).astype(np.float64), 2) >= 0.5
        shadow_ref = scene.block_mean(t.shadow_mask.astype(np.float64), 2) >= 0.5
        runs = {"s2cloudless": lambda t=t: s2cloudless_mask(t.toa, g)[1],
                "ukis-csmask": lambda t=t: ukis_csmask_mask(t.toa, g)}
        for name, fn in runs.items():
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                out = fn()
            dt = time.perf_counter() - t0
            cloud = out[0] if isinstance(out, tuple) else out
            s = scores(cloud, ref)
            print(f"{plan.key:<10} {plan.sky:<12} {name:<12} {dt:7.2f} {s['oa']:6.3f} {s['precision']:6.3f} "
                  f"{s['recall']:6.3f} {s['f1']:6.3f} {s['pred_percent']:7.2f} {s['ref_percent']:7.2f}")
            if isinstance(out, tuple):
                s = scores(out[1], shadow_ref)
                print(f"{'':<10} {'':<12} {'  shadow':<12} {'':>7} {s['oa']:6.3f} {s['precision']:6.3f} "
                      f"{s['recall']:6.3f} {s['f1']:6.3f} {s['pred_percent']:7.2f} {s['ref_percent']:7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
