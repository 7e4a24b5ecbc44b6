"""Cloud shadows by geometric projection, "unknown cloud altitude" algorithm: CLM bit 5 (maja-l2a.md §1.9).

The steps, in the order of §1.9 (MAJA ``ShadowMaskDeterminationUnknownCloudsAltitudeImageFilter``):

1. `darkening`: TOCR_D / RCR_composite in `params.shadow_band`, where the pixel is valid (not cloud, not
   edge, not composite water) and the composite is finite and > 0; NaN elsewhere.
2. `darkening_threshold`: cloud cover cc = cloudy / non-edge pixels, percentile
   p = max(darkening_min_percentile / 100, min(cloud_cover_mult_factor · cc, 1)),
   thr = min(quantile_p(darkening), proj_shad_darkening_max). The quantile is MAJA's histogram estimator
   (see `histogram_quantile`).
3. `shadow_zone_pairs`: every cloud pixel is projected, for each candidate altitude
   h = delta_h_min, delta_h_min + delta_h_step, ... <= delta_h_max (33 altitudes), back to its nadir
   position along the viewing direction, then along the solar direction down to the DTM (kernel
   ``shadow_landing`` in ``kernels/shadow.cu``, NumPy twin `shadow_landing_numpy`: the landing pixel
   of every ray); the landing pixels of a label, united over the altitudes, are its potential shadow
   zone, kept as distinct (label, pixel) pairs: one zone per label, as MAJA, so a pixel may lie in the
   zones of several labels (`project_shadow_zones` flattens them to one image for display and tests).
4.-6. `select_shadows`: candidates = zone pixels with darkening < thr; a label is kept if
   n_candidates <= ratio · n_cloud (pass 1, ratio = shadow_cloud_ratio_max below
   shadow_cloud_ratio_pix_nb cloud pixels, else shadow_cloud_ratio_min), rejected labels are retried with
   shadow_cloud_ratio_min (pass 2), and in labels still rejected only the pixels at or below the
   per-label quantile (shadow_cloud_ratio_min · n_cloud / n_candidates) of the candidates' darkening,
   capped at proj_shad_darkening_max, are kept (pass 3).
`cloud_shadows` chains them.

Geometry: row 0 is north, rows grow southward, columns eastward; azimuths are degrees clockwise from
north toward the sun (resp. the satellite); zenith angles in degrees; the unit horizontal vector toward
azimuth φ is (Δrow, Δcol) = (-cos φ, sin φ). A cloud at height dh above the ground appears on the image
displaced AWAY from the satellite by dh · tan θv, so its nadir is the image position moved TOWARD the
satellite by dh · tan θv (MAJA: + dh · VIE / VIEHRef, VIE the displacement grid for VIEHRef metres).
Its shadow lies AWAY from the sun: the ray from (nadir, z_start) goes along (cos φs, -sin φs), one
coarse pixel per step, descending resolution / tan θs metres per step, until it meets the DTM (bilinear,
edge-clamped); the crossing is interpolated linearly between the last two steps and rounded to the
nearest pixel. dh = max(h - DTM(pixel), 1 m) and z_start = DTM(pixel) + dh, so a candidate altitude
below the ground puts the cloud 1 m above it (MAJA). On a flat DTM the shadow of a cloud at height dh
is dh · tan θs away from the nadir, e.g. 45° sun in the south: dh / resolution pixels north.

Differences from MAJA, on purpose:
- The darkening histogram spans [min, max] of the finite darkening values (MAJA: a fixed [0, 10]
  range), 1000 bins in both; values <= 0 are kept (MAJA treats 0 as nodata).
- MAJA's ray starts at the SOLH1/VIEHRef reference heights of its direction grids; here the directions
  come from per-pixel angles (tan θ), which is the same flat-earth geometry.
- A ray that leaves the image footprint before reaching the DTM casts nothing.

Labels: the dilated cloud mask (united with the cloud mask) is labelled with 4-connectivity, as
MAJA (scipy.ndimage / cupyx.scipy.ndimage with `morphology.LABEL_STRUCTURE`), and the labels are
kept on the undilated cloud pixels only (§1.9 step 3). Darkening is computed off the undilated clouds, as MAJA's darkening
filter is fed the undilated cloud mask (``L2CLDSubInput``).

Determinism: the projection writes one landing index per ray (no atomics); the trigonometry runs on
the host in NumPy float64 for both paths and the kernel is compiled with --fmad=false, so the GPU zones
equal the NumPy twin's bit for bit. Quantiles are computed from integer histograms on the host.

Until issue 4's third session the zones were one int32 image in which the largest label won where
zones overlapped (an atomicMax): a label lost the zone pixels it shared with a larger label, and pass
2 could never rescue a label. With the winter sun of the synthetic series (θs 60-67°, so a cloud at
8 km casts its shadow ~18 km away) the zones overlap a lot; per-label zones raised the coarse-grid
shadow F1 from 0.60 to 0.63 (recall 0.53 -> 0.59) on its 22 NOMINAL steps (docs/validation.md §5).
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module, to_numpy
from gpumaja.errors import InputError
from gpumaja.masks.morphology import LABEL_STRUCTURE, ndimage_for
from gpumaja.model.params import L2Params

HISTOGRAM_BINS = 1000  # MAJA: fixed in ShadowMaskDeterminationUnknownCloudsAltitudeImageFilter (not a GIPP value)
MIN_CLOUD_HEIGHT_M = 1.0  # MAJA: dh = max(h - DTM, 1) in the shadow projection (fixed in the code)

_KERNEL_FILE = "shadow"
_KERNEL = "shadow_landing"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK = 256
_MAX_BLOCKS = 65535
TWIN_RAYS_PER_CHUNK = 1 << 18  # NumPy twin: rays marched at once (bounds the temporaries)
SHADOW_RAYS_PER_CHUNK = 1 << 22  # shadow_zone_pairs: rays (cloud pixel x altitude) projected at once, so its
# temporaries are bounded by the chunk plus the distinct pairs (pipeline/memory.py models the peak)


# --- 1. darkening -----------------------------------------------------------------------------------


def darkening(tocr_shadow_band: Any, rcr_shadow_band: Any, valid: Any, xp: ModuleType | None = None):
    """TOCR_D / RCR_composite (float32, (cy, cx)) where `valid` and the composite is finite and > 0,
    and TOCR is finite; NaN elsewhere (§1.9 step 1). The caller's `valid` excludes cloud, edge and
    composite water."""
    xp = xp or array_module(tocr_shadow_band)
    t = xp.asarray(tocr_shadow_band, dtype=xp.float32)
    r = xp.asarray(rcr_shadow_band, dtype=xp.float32)
    v = xp.asarray(valid).astype(bool, copy=False)
    if t.shape != r.shape or t.shape != v.shape:
        raise InputError(f"darkening: tocr {t.shape}, rcr {r.shape} and valid {v.shape} differ in shape")
    ok = v & xp.isfinite(r) & (r > 0) & xp.isfinite(t)
    return xp.where(ok, t / xp.where(ok, r, xp.float32(1)), xp.float32(np.nan)).astype(xp.float32, copy=False)


# --- 2. darkening threshold -------------------------------------------------------------------------


def histogram_quantile(values: Any, p: float, xp: ModuleType | None = None, bins: int = HISTOGRAM_BINS) -> float | None:
    """The p-quantile (0 <= p <= 1) of finite `values` by MAJA's histogram estimator; None if empty.

    `bins` equal bins span [min, max] of the values (edges from numpy.linspace in float64 on the host;
    a value goes to bin b when edge[b] <= v < edge[b + 1], the maximum to the last bin). The quantile is
    the point where the histogram's cumulative distribution, linear inside each bin
    (itk::Statistics::Histogram::Quantile), reaches p: with b the first bin whose cumulative count
    reaches p·n, q = edge[b] + (p·n - count before b) / count[b] · bin width. When every value is the
    same, that value.
    """
    xp = xp or array_module(values)
    v = xp.asarray(values).ravel()
    v = v[xp.isfinite(v)].astype(xp.float64, copy=False)
    n = int(v.size)
    if n == 0:
        return None
    lo, hi = float(v.min()), float(v.max())
    if not hi > lo:
        return lo
    edges = np.linspace(lo, hi, int(bins) + 1)
    idx = xp.searchsorted(xp.asarray(edges[1:-1]), v, side="right")
    counts = to_numpy(xp.bincount(idx, minlength=int(bins))).astype(np.int64)
    cum = np.cumsum(counts)
    target = min(max(float(p), 0.0), 1.0) * n
    b = int(np.searchsorted(cum, target, side="left"))
    b = min(b, int(bins) - 1)
    before = float(cum[b - 1]) if b > 0 else 0.0
    frac = (target - before) / float(counts[b]) if counts[b] > 0 else 1.0
    return float(edges[b] + frac * (edges[b + 1] - edges[b]))


def shadow_percentile(cloud_cover_fraction: float, params: L2Params) -> float:
    """p = max(darkening_min_percentile / 100, min(cloud_cover_mult_factor · cc, 1)) (§1.9 step 2)."""
    return max(params.darkening_min_percentile / 100.0, min(params.cloud_cover_mult_factor * float(cloud_cover_fraction), 1.0))


def darkening_threshold(dark: Any, cloud_cover_fraction: float, params: L2Params, xp: ModuleType | None = None) -> float:
    """Global darkening threshold thr = min(quantile_p(finite darkening), proj_shad_darkening_max)
    (§1.9 step 2; quantile by `histogram_quantile`); proj_shad_darkening_max when no value is finite."""
    xp = xp or array_module(dark)
    q = histogram_quantile(dark, shadow_percentile(cloud_cover_fraction, params), xp)
    if q is None:
        return float(params.proj_shad_darkening_max)
    return min(q, float(params.proj_shad_darkening_max))


# --- 3. geometric projection ------------------------------------------------------------------------


def candidate_heights(params: L2Params) -> np.ndarray:
    """delta_h_min + k · delta_h_step, k = 0 .. floor((max - min) / step) (33 values by default)."""
    step = float(params.delta_h_step)
    if not step > 0:
        raise InputError(f"shadow projection: delta_h_step must be positive, got {params.delta_h_step!r}")
    n = math.floor((float(params.delta_h_max) - float(params.delta_h_min)) / step) + 1
    if n < 1:
        raise InputError(f"shadow projection: delta_h_max {params.delta_h_max} < delta_h_min {params.delta_h_min}")
    return float(params.delta_h_min) + step * np.arange(n, dtype=np.float64)


def _host_field(a: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    h = np.asarray(to_numpy(a), dtype=np.float64)
    try:
        return np.broadcast_to(h, shape)
    except ValueError as exc:
        raise InputError(f"shadow projection: {what} of shape {h.shape} does not broadcast to {shape}") from exc


def _ray_fields(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int], sun_zenith, sun_azimuth,
                view_zenith, view_azimuth, resolution_m: float) -> dict[str, np.ndarray]:
    """Per cloud pixel (host float64): view shift (px per metre of height), sun step (px), sun drop (m)."""
    res = float(resolution_m)
    if not (res > 0 and math.isfinite(res)):
        raise InputError(f"shadow projection: resolution must be positive, got {resolution_m!r}")
    got = {}
    for name, a in (("sun_zenith", sun_zenith), ("sun_azimuth", sun_azimuth), ("view_zenith", view_zenith),
                    ("view_azimuth", view_azimuth)):
        f = _host_field(a, shape, name)[rows, cols]
        if not np.all(np.isfinite(f)):
            raise InputError(f"shadow projection: {name} is not finite at some cloud pixels")
        got[name] = np.deg2rad(f)
    for name in ("sun_zenith", "view_zenith"):
        z = got[name]
        if np.any((z < 0) | (z >= math.pi / 2)):
            raise InputError(f"shadow projection: {name} must be in [0, 90) degrees at the cloud pixels")
    tan_v = np.tan(got["view_zenith"])
    with np.errstate(divide="ignore"):
        drop = res / np.tan(got["sun_zenith"])  # inf for a sun at the zenith: the ray lands at the nadir
    return {
        "view_row": -tan_v * np.cos(got["view_azimuth"]) / res,
        "view_col": tan_v * np.sin(got["view_azimuth"]) / res,
        "sun_row": np.cos(got["sun_azimuth"]),
        "sun_col": -np.sin(got["sun_azimuth"]),
        "sun_drop": drop,
    }


def _max_steps(fields: dict[str, np.ndarray], heights: np.ndarray, dem_at_pix: np.ndarray, shape) -> int:
    """Safety cap on the march: beyond the largest nadir shift plus the image diagonal (+2) every ray
    is outside the footprint, so the cap never changes a landing inside the image."""
    if dem_at_pix.size == 0:
        return 0
    dh_max = max(float(np.max(heights)) - float(np.min(dem_at_pix)), MIN_CLOUD_HEIGHT_M)
    shift = dh_max * float(np.max(np.hypot(fields["view_row"], fields["view_col"])))
    return math.ceil(shift + math.hypot(*shape)) + 2


def _dem_bilinear_numpy(dem: np.ndarray, r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """The kernel's gpumaja_dem_bilinear: edge-clamped bilinear DEM, same operations in the same order."""
    ny, nx = dem.shape
    r0 = np.floor(r)
    c0 = np.floor(c)
    fr = r - r0
    fc = c - c0
    i0 = r0.astype(np.int64)
    j0 = c0.astype(np.int64)
    i1 = np.clip(i0 + 1, 0, ny - 1)
    j1 = np.clip(j0 + 1, 0, nx - 1)
    i0 = np.clip(i0, 0, ny - 1)
    j0 = np.clip(j0, 0, nx - 1)
    return (1.0 - fr) * ((1.0 - fc) * dem[i0, j0] + fc * dem[i0, j1]) + fr * ((1.0 - fc) * dem[i1, j0] + fc * dem[i1, j1])


def _leaving_numpy(r, c, sr, sc, ny: int, nx: int):
    return ((r < -0.5) & (sr <= 0.0)) | ((r > ny - 0.5) & (sr >= 0.0)) | ((c < -0.5) & (sc <= 0.0)) | (
        (c > nx - 0.5) & (sc >= 0.0))


def shadow_landing_numpy(
    pix_row: np.ndarray,
    pix_col: np.ndarray,
    dem_at_pix: np.ndarray,
    view_row: np.ndarray,
    view_col: np.ndarray,
    sun_row: np.ndarray,
    sun_col: np.ndarray,
    sun_drop: np.ndarray,
    heights: np.ndarray,
    dem: np.ndarray,
    min_height: float,
    max_steps: int,
) -> np.ndarray:
    """NumPy twin of the ``shadow_landing`` kernel (see kernels/shadow.cu for the steps).

    Per-cloud-pixel inputs are 1-D float64, `heights` the candidate altitudes, `dem` the (ny, nx) float64
    DTM. All (pixel, altitude) rays are marched together, a chunk at a time, one step per iteration.
    Returns int32 (n_pix * n_alt,): for ray t = i * n_alt + a, the flat index (row * nx + col) of the
    pixel where it lands, -1 when it lands outside the image or leaves it first.
    """
    dem = np.ascontiguousarray(dem, dtype=np.float64)
    ny, nx = dem.shape
    heights = np.asarray(heights, dtype=np.float64)
    n_pix, n_alt = int(np.asarray(pix_row).size), int(heights.size)
    n_rays = n_pix * n_alt
    landing = np.full(n_rays, -1, dtype=np.int32)
    for start in range(0, n_rays, TWIN_RAYS_PER_CHUNK):
        t = np.arange(start, min(start + TWIN_RAYS_PER_CHUNK, n_rays), dtype=np.int64)
        i = t // n_alt
        a = t - i * n_alt
        z0 = dem_at_pix[i]
        dh = heights[a] - z0
        dh = np.where(dh < min_height, min_height, dh)
        z_start = z0 + dh
        rn = pix_row[i] + dh * view_row[i]
        cn = pix_col[i] + dh * view_col[i]
        sr, sc, drop = sun_row[i], sun_col[i], sun_drop[i]
        rp = rn.copy()
        cp = cn.copy()
        dp = np.zeros_like(rn)
        act = np.arange(t.size)
        land_t, land_r, land_c = [], [], []
        for k in range(int(max_steps) + 1):
            if act.size == 0:
                break
            kd = float(k)
            r = rn[act] + kd * sr[act]
            c = cn[act] + kd * sc[act]
            leaving = _leaving_numpy(r, c, sr[act], sc[act], ny, nx)
            zk = z_start[act] if k == 0 else z_start[act] - kd * drop[act]
            d = zk - _dem_bilinear_numpy(dem, r, c)
            landed = ~leaving & (d <= 0.0)
            if landed.any():
                idx = act[landed]
                if k == 0:
                    land_r.append(r[landed])
                    land_c.append(c[landed])
                else:
                    tt = dp[idx] / (dp[idx] - d[landed])
                    land_r.append(rp[idx] + tt * sr[idx])
                    land_c.append(cp[idx] + tt * sc[idx])
                land_t.append(t[idx])
            go = ~leaving & ~landed
            act = act[go]
            rp[act] = r[go]
            cp[act] = c[go]
            dp[act] = d[go]
        if not land_t:
            continue
        rf = np.floor(np.concatenate(land_r) + 0.5)
        cf = np.floor(np.concatenate(land_c) + 0.5)
        tl = np.concatenate(land_t)
        inside = (rf >= 0.0) & (rf <= ny - 1) & (cf >= 0.0) & (cf <= nx - 1)
        landing[tl[inside]] = (rf[inside].astype(np.int64) * nx + cf[inside].astype(np.int64)).astype(np.int32)
    return landing


def _shadow_landing_gpu(host: dict[str, np.ndarray], heights: np.ndarray, dem, min_height: float, max_steps: int):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("shadow_landing", domain="gpumaja"):
        dem_d = cupy.ascontiguousarray(cupy.asarray(dem), dtype=cupy.float64)
        ny, nx = (int(s) for s in dem_d.shape)
        n_pix, n_alt = int(host["pix_row"].size), int(heights.size)
        n_rays = n_pix * n_alt
        landing = cupy.full(n_rays, -1, dtype=cupy.int32)
        if n_rays == 0:
            return landing
        if n_rays >= 2**31 or ny * nx >= 2**31:
            raise InputError(f"shadow projection: {n_pix} cloud pixels x {n_alt} altitudes / {ny}x{nx} exceed "
                             "the kernel's indexing")
        dev = {k: cupy.asarray(np.ascontiguousarray(v, dtype=np.float64)) for k, v in host.items()}
        h_d = cupy.asarray(np.ascontiguousarray(heights, dtype=np.float64))
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function(_KERNEL)
        grid = (min(_MAX_BLOCKS, (n_rays + _BLOCK - 1) // _BLOCK),)
        kernel(
            grid,
            (_BLOCK,),
            (
                dev["pix_row"], dev["pix_col"], dev["dem_at_pix"], dev["view_row"], dev["view_col"],
                dev["sun_row"], dev["sun_col"], dev["sun_drop"], np.int32(n_pix), h_d, np.int32(n_alt),
                dem_d, np.int32(ny), np.int32(nx), np.float64(min_height), np.int32(max_steps), landing,
            ),
        )
        return landing


def _sorted_distinct(keys: Any, xp: ModuleType):
    """The distinct values of a 1-D int64 array in increasing order (`xp.unique` without its copy: `keys` is
    sorted in place; NumPy's stable sort merges the two sorted runs of a concatenation in linear time)."""
    if keys.size < 2:
        return keys
    if xp is np:
        keys.sort(kind="stable")
    else:
        keys.sort()
    first = xp.empty(keys.shape, dtype=bool)
    first[0] = True
    xp.not_equal(keys[1:], keys[:-1], out=first[1:])
    return keys[first]


def _chunk_zone_keys(idx: np.ndarray, lab: Any, shape: tuple[int, int], angles: tuple, resolution_m: float,
                     dem_h: np.ndarray, dem: Any, heights: np.ndarray, on_gpu: bool, xp: ModuleType):
    """Sorted distinct keys label * (cy * cx) + landing pixel of the rays of the cloud pixels `idx` (flat
    indices, host int64) whose labels are `lab` (int64 on `xp`); `dem` is `dem_h` on the kernel's side.

    The march cap `_max_steps` is taken over this chunk's rays only, which cannot change a landing: a ray
    from the pixel P (inside the image) starts at the nadir N with |N - P| <= S, S = dh * |view shift| <=
    the chunk's largest shift (dh = max(h - DTM(P), 1) <= max(max(heights) - min over the chunk of the
    DTM, 1)), and moves by the unit vector u. If at step k its position X lay, on each axis, at or before
    the footprint's far edge in the direction of travel, then (X - P) . u <= hypot(ny - 0.5, nx - 0.5)
    < D, the image diagonal; but (X - P) . u >= k - S, so from k >= S + D on, X is past the far edge on
    some axis and moving away (`gpumaja_leaving`, which holds for a zero step component too): every ray
    has landed or left by step ceil(S + D) < the cap ceil(S + D) + 2.
    """
    rows, cols = np.divmod(idx, shape[1])
    host = _ray_fields(rows, cols, shape, *angles, resolution_m)
    host["pix_row"] = rows.astype(np.float64)
    host["pix_col"] = cols.astype(np.float64)
    host["dem_at_pix"] = dem_h.ravel()[idx]
    max_steps = _max_steps(host, heights, host["dem_at_pix"], shape)
    if on_gpu:
        landing = _shadow_landing_gpu(host, heights, dem, MIN_CLOUD_HEIGHT_M, max_steps)
    else:
        landing = xp.asarray(shadow_landing_numpy(
            host["pix_row"], host["pix_col"], host["dem_at_pix"], host["view_row"], host["view_col"],
            host["sun_row"], host["sun_col"], host["sun_drop"], heights, dem_h, MIN_CLOUD_HEIGHT_M, max_steps))
    del host
    keys = xp.repeat(lab, int(heights.size))  # ray t = i * n_alt + a has the label of pixel i
    keys *= shape[0] * shape[1]
    keys += landing
    keys = keys[landing >= 0]
    del landing
    return _sorted_distinct(keys, xp)


def shadow_zone_pairs(
    cloud_labels: Any,
    altitude: Any,
    sun_zenith: Any,
    sun_azimuth: Any,
    view_zenith: Any,
    view_azimuth: Any,
    resolution_m: float,
    params: L2Params,
    backend: Backend | None = None,
    rays_per_chunk: int | None = None,
):
    """Potential shadow zone of every cloud label (§1.9 step 3), one zone per label as MAJA.

    cloud_labels: int32 (cy, cx), 0 = no cloud. altitude: the DTM (m) on the same grid (finite).
    Angles in degrees, (cy, cx) arrays or scalars (zeniths in [0, 90)). Each cloud pixel is projected at
    every altitude of `candidate_heights(params)` (geometry in the module docstring); a label's zone is
    the union of its landing pixels. Returns (label, pixel): int32 and int64 1-D arrays of the distinct
    (label, flat pixel index) pairs, sorted by label then pixel; a pixel appears once per label whose
    zone holds it. Runs the CUDA kernel when `backend.is_gpu` or (no backend) the labels are a CuPy
    array, else the NumPy twin; the result is on the same side.

    The cloud pixels are projected in chunks of `rays_per_chunk` rays (default SHADOW_RAYS_PER_CHUNK;
    rounded down to whole cloud pixels, at least one): the distinct keys label * (cy * cx) + pixel of
    each chunk are merged into the distinct keys found so far, so the result does not depend on the
    chunk size and the temporaries are bounded by one chunk plus the distinct pairs.
    """
    on_gpu = backend.is_gpu if backend is not None else array_module(cloud_labels).__name__ == "cupy"
    xp = array_module(cloud_labels)
    labels = xp.asarray(cloud_labels)
    if labels.ndim != 2:
        raise InputError(f"shadow projection: cloud_labels must be 2-D, got shape {labels.shape}")
    shape = (int(labels.shape[0]), int(labels.shape[1]))
    dem_h = np.asarray(to_numpy(altitude), dtype=np.float64)
    if dem_h.shape != shape:
        raise InputError(f"shadow projection: altitude has shape {dem_h.shape}, labels {shape}")
    if not np.all(np.isfinite(dem_h)):
        raise InputError("shadow projection: altitude (DTM) has non-finite values")
    rays = SHADOW_RAYS_PER_CHUNK if rays_per_chunk is None else int(rays_per_chunk)
    if rays < 1:
        raise InputError(f"shadow projection: rays_per_chunk must be positive, got {rays_per_chunk!r}")
    heights = candidate_heights(params)
    angles = tuple(_host_field(a, shape, name) for a, name in (
        (sun_zenith, "sun_zenith"), (sun_azimuth, "sun_azimuth"), (view_zenith, "view_zenith"),
        (view_azimuth, "view_azimuth")))  # on the host once, not once per chunk
    flat = xp.flatnonzero(labels.ravel() > 0)
    lab = labels.ravel()[flat].astype(xp.int64)
    idx = np.asarray(to_numpy(flat), dtype=np.int64)
    del flat
    if on_gpu:
        import cupy

        xp, dem = cupy, cupy.asarray(dem_h)  # the result is on the GPU even for host labels
    else:
        dem = dem_h
    per_chunk = max(1, rays // int(heights.size))
    keys = xp.zeros(0, dtype=xp.int64)
    for s in range(0, max(idx.size, 1), per_chunk):  # one empty chunk without clouds validates the inputs
        chunk = _chunk_zone_keys(idx[s:s + per_chunk], xp.asarray(lab[s:s + per_chunk]), shape, angles,
                                 resolution_m, dem_h, dem, heights, on_gpu, xp)
        if keys.size == 0:
            keys = chunk  # already sorted and distinct
        else:
            keys = xp.concatenate((keys, chunk))
            del chunk
            keys = _sorted_distinct(keys, xp)
    n = shape[0] * shape[1]
    return (keys // n).astype(xp.int32), keys % n


def project_shadow_zones(
    cloud_labels: Any,
    altitude: Any,
    sun_zenith: Any,
    sun_azimuth: Any,
    view_zenith: Any,
    view_azimuth: Any,
    resolution_m: float,
    params: L2Params,
    backend: Backend | None = None,
):
    """The zones of `shadow_zone_pairs` as one int32 (cy, cx) image, 0 = none, where zones overlap the
    largest label (a view for display and tests; the selection uses the pairs)."""
    xp = array_module(cloud_labels)
    labels = xp.asarray(cloud_labels)
    lab, pix = shadow_zone_pairs(labels, altitude, sun_zenith, sun_azimuth, view_zenith, view_azimuth,
                                 resolution_m, params, backend)
    xp = array_module(lab)
    zone = xp.zeros(int(labels.size), dtype=xp.int32)
    if int(lab.size):
        # pairs are sorted by label: the last pair of each pixel holds its largest label
        order = xp.argsort(pix * (int(lab.max()) + 1) + lab)
        p_sorted, l_sorted = pix[order], lab[order]
        last = xp.ones(p_sorted.shape, dtype=bool)
        last[:-1] = p_sorted[1:] != p_sorted[:-1]
        zone[p_sorted[last]] = l_sorted[last]
    return zone.reshape(labels.shape)


# --- 4-6. label selection ---------------------------------------------------------------------------


def cloud_labels(clouds: Any, clouds_dilated: Any, xp: ModuleType | None = None):
    """4-connected labels of (clouds_dilated | clouds), kept on the undilated cloud pixels (int32, §1.9)."""
    xp = xp or array_module(clouds)
    c = xp.asarray(clouds).astype(bool, copy=False)
    d = xp.asarray(clouds_dilated).astype(bool, copy=False) | c
    lab, _ = ndimage_for(xp).label(d, structure=xp.asarray(LABEL_STRUCTURE))
    return xp.where(c, lab, 0).astype(xp.int32)


def select_shadows(labels: Any, pair_label: Any, pair_pixel: Any, dark: Any, threshold: float, params: L2Params,
                   xp: ModuleType | None = None):
    """Shadow pixels from the per-label zones, by MAJA's three label-selection passes (§1.9 steps 4-6).
    Bool, the shape of `labels`.

    (pair_label, pair_pixel): the zones as distinct (label, flat pixel) pairs (`shadow_zone_pairs`); a
    pixel may belong to several labels' zones, as in MAJA. A pair is a candidate when the pixel's
    darkening < threshold (float64 comparison). n_cloud[l] = pixels of label l, n[l] = candidates in
    l's zone.
    - pass 1: keep l (all its candidates) if n[l] <= ratio · n_cloud[l], ratio =
      shadow_cloud_ratio_max when n_cloud[l] < shadow_cloud_ratio_pix_nb, else shadow_cloud_ratio_min.
    - pass 2: each rejected label's candidates minus the pixels kept by pass 1 are recounted (n2) and
      kept if n2 <= shadow_cloud_ratio_min · n_cloud.
    - pass 3: for each label still rejected, thr_l = min(quantile_q(darkening of its pass-2
      candidates), proj_shad_darkening_max) with q = shadow_cloud_ratio_min · n_cloud / n2
      (`histogram_quantile`), and its pass-2 candidates with darkening <= thr_l are kept.
    """
    xp = xp or array_module(labels)
    lab = xp.asarray(labels).astype(xp.int32, copy=False)
    dark64 = xp.asarray(dark).astype(xp.float64)
    pl = xp.asarray(pair_label).astype(xp.int64, copy=False).ravel()
    pp = xp.asarray(pair_pixel).astype(xp.int64, copy=False).ravel()
    if lab.shape != dark64.shape:
        raise InputError(f"select_shadows: labels {lab.shape} and darkening {dark64.shape} differ")
    if pl.shape != pp.shape:
        raise InputError(f"select_shadows: {pl.size} pair labels but {pp.size} pair pixels")
    shadow = xp.zeros(lab.size, dtype=bool)
    n_lab = max(int(lab.max()) if lab.size else 0, int(pl.max()) if pl.size else 0)
    if n_lab == 0 or pl.size == 0:
        return shadow.reshape(lab.shape)
    if int(pp.min()) < 0 or int(pp.max()) >= lab.size:
        raise InputError(f"select_shadows: pair pixels outside the {lab.shape} image")
    nb = n_lab + 1
    n_cloud = xp.bincount(lab.ravel(), minlength=nb)
    cand = dark64.ravel()[pp] < float(threshold)
    pl, pp = pl[cand], pp[cand]
    r_min, r_max = float(params.shadow_cloud_ratio_min), float(params.shadow_cloud_ratio_max)

    # pass 1
    n1 = xp.bincount(pl, minlength=nb)
    ratio = xp.full(nb, r_min, dtype=xp.float64)
    ratio[n_cloud < int(params.shadow_cloud_ratio_pix_nb)] = r_max
    kept1 = (n1 > 0) & (n1 <= ratio * n_cloud)
    rej1 = (n1 > 0) & ~kept1
    shadow[pp[kept1[pl]]] = True

    # pass 2
    sel2 = rej1[pl] & ~shadow[pp]
    pl2, pp2 = pl[sel2], pp[sel2]
    n2 = xp.bincount(pl2, minlength=nb)
    kept2 = rej1 & (n2 > 0) & (n2 <= r_min * n_cloud)
    rej2 = rej1 & (n2 > 0) & ~kept2
    shadow[pp2[kept2[pl2]]] = True

    # pass 3
    sel3 = rej2[pl2]
    if bool(sel3.any()):
        l3 = np.asarray(to_numpy(pl2[sel3]), dtype=np.int64)  # sorted by label (pairs are)
        p3 = np.asarray(to_numpy(pp2[sel3]), dtype=np.int64)
        v3 = np.asarray(to_numpy(dark64.ravel()[pp2[sel3]]), dtype=np.float64)
        n_cloud_h = np.asarray(to_numpy(n_cloud), dtype=np.float64)
        n2_h = np.asarray(to_numpy(n2), dtype=np.float64)
        order = np.argsort(l3, kind="stable")
        l3, p3, v3 = l3[order], p3[order], v3[order]
        ids, starts = np.unique(l3, return_index=True)
        ends = np.append(starts[1:], l3.size)
        keep = np.zeros(l3.size, dtype=bool)
        cap = float(params.proj_shad_darkening_max)
        for lab_id, s0, e0 in zip(ids.tolist(), starts.tolist(), ends.tolist()):
            q = histogram_quantile(v3[s0:e0], r_min * n_cloud_h[lab_id] / n2_h[lab_id], np)
            thr_l = cap if q is None else min(q, cap)
            keep[s0:e0] = v3[s0:e0] <= thr_l
        shadow[xp.asarray(p3[keep])] = True
    return shadow.reshape(lab.shape)


# --- the whole of §1.9 ------------------------------------------------------------------------------


def cloud_shadows(
    clouds: Any,
    clouds_dilated: Any,
    tocr_shadow_band: Any,
    rcr_shadow_band: Any,
    edge: Any,
    composite_water: Any,
    altitude: Any,
    sun_zenith: Any,
    sun_azimuth: Any,
    view_zenith: Any,
    view_azimuth: Any,
    resolution_m: float,
    params: L2Params,
    backend: Backend | None = None,
):
    """Cloud-shadow mask (CLM bit 5, undilated; False on clouds and edge) of one date (§1.9).

    clouds / clouds_dilated: the undilated and dilated (§1.8) cloud masks; tocr/rcr: the date's TOCR and
    the composite's RCR in `params.shadow_band`; edge, composite_water: bool masks; altitude: the DTM (m);
    angles in degrees ((cy, cx) or scalars); resolution_m: the coarse pixel size. Empty when there is
    no cloud (MAJA). NumPy or CuPy (by `backend`, else by the type of `clouds`); the result is on the
    same side.
    """
    xp = backend.xp if backend is not None else array_module(clouds)
    c = xp.asarray(clouds).astype(bool, copy=False)
    if c.ndim != 2:
        raise InputError(f"cloud_shadows: clouds must be 2-D, got shape {c.shape}")
    cd = xp.asarray(clouds_dilated).astype(bool, copy=False)
    e = xp.asarray(edge).astype(bool, copy=False)
    w = xp.asarray(composite_water).astype(bool, copy=False)
    for name, m in (("clouds_dilated", cd), ("edge", e), ("composite_water", w)):
        if m.shape != c.shape:
            raise InputError(f"cloud_shadows: {name} has shape {m.shape}, clouds {c.shape}")
    n_valid = int((~e).sum())
    n_cloudy = int((c & ~e).sum())
    if n_cloudy == 0 or n_valid == 0:
        return xp.zeros(c.shape, dtype=bool)
    dark = darkening(tocr_shadow_band, rcr_shadow_band, ~c & ~e & ~w, xp)
    thr = darkening_threshold(dark, n_cloudy / n_valid, params, xp)
    labels = cloud_labels(c & ~e, cd, xp)
    pair_label, pair_pixel = shadow_zone_pairs(labels, altitude, sun_zenith, sun_azimuth, view_zenith, view_azimuth,
                                               resolution_m, params, backend)
    shadow = select_shadows(labels, xp.asarray(pair_label), xp.asarray(pair_pixel), dark, thr, params, xp)
    return shadow & ~c & ~e
