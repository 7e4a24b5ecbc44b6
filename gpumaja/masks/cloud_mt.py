"""Multi-temporal cloud tests on the coarse grid, NOMINAL mode (maja-l2a.md §1.2, §1.3, §1.4).

The steps, in MAJA's order (`vnsReflectanceVariationCorrelationImageFilter`, `vnsAppCloudExtension`):

1. `refl_var_test` (§1.2, CLM bit 3): the current TOCR against the composite RCR. With
   Δt = |day - PXD| (composite age), thr = min(max_threshold_var_blue, min_threshold_var_blue ·
   (1 + Δt / cloud_forgetting_duration)), dB = B_D − B_c, dR = R_D − R_c, rB = (B_D − B_c)/(B_D + B_c),
   rN = (N_D − N_c)/(N_D + N_c), dHOT = (B_D − R_D/2) − (B_c − R_c/2):
   cloud if rN < k_nir_blue · rB AND dR < k_red_blue · dB AND dHOT > thr; the extension candidates are
   the same ratio conditions with dHOT > thr − delta_threshold. Our one addition (docs/l2a.md
   "Shadow-like pixels are not refl_var clouds"): a pixel whose red darkened below
   refl_var_min_red_ratio × the composite (R_D < k · R_c, R_c > 0) is in neither mask; 0 gives MAJA
   4.x. Per-pixel CUDA kernel `refl_var`
   (kernels/cloud_mt.cu), NumPy twin `refl_var_numpy`.
2. `window_correlation` (§1.3): Pearson r between the current TOCR and a reference in the correlation
   band over the (2 n_correl + 1)² window. Windowed CUDA kernel `window_correlation`, NumPy twin
   `window_correlation_numpy`. `correlated_with_history` tries the composite RCR, then each STO layer
   (newest first, skipping the current day), and flags a pixel as soon as one reference gives
   r > correl_threshold / 100. Flagged refl / refl_var pixels are cleared (false-detection rejection).
3. `cloud_extension` (§1.4, CLM bit 4): extension candidate components that hold a refl / refl_var
   pixel are kept; correlated kept pixels are removed from the cloud labels (refl ∪ refl_var ∪ ext)
   in which they exceed discarded_pixels_ratio_min % of the label.

`multitemporal_clouds` chains the three for one date.

Choices of ours, documented here:
- Connected components are 4-connected (scipy.ndimage / cupyx.scipy.ndimage `label` with a cross
  structure), as MAJA's `itk::ConnectedComponentImageFilter` with its default (face connected): a
  diagonal-only contact does not join two components.
- The correlation uses two passes (means, then centred sums), both in float64; MAJA takes the
  variances from one-pass sums (E[x²] − E[x]²). Same value up to rounding, but a flat window gives
  exactly 0 here, so the `FLAT_VARIANCE_EPS` (MAJA's CONST_EPSILON_20) test is exact.
- Window pixels outside the image are clamped to the border (ITK's zero-flux Neumann boundary, as
  MAJA's neighbourhood iterators): a border pixel may count several times.
- Inputs in float32; every test is evaluated in float64 on both the GPU and the CPU, so the kernels
  give the twins' results (bit-identical with --fmad=false).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.backend import Backend, array_module
from gpumaja.masks.morphology import LABEL_STRUCTURE, dilate, ndimage_for
from gpumaja.model.params import L2Params

FLAT_VARIANCE_EPS = 1e-20  # MAJA CONST_EPSILON_20: a window variance at or below it gives r = 0 (§1.3)

_KERNEL_FILE = "cloud_mt"
_KERNEL_OPTIONS = ("--fmad=false",)
_BLOCK_1D = 256
_BLOCK_2D = (32, 8)
_MAX_BLOCKS = 4096


def _on_gpu(backend: Backend | None, a: Any) -> bool:
    return backend.is_gpu if backend is not None else array_module(a).__name__ == "cupy"


def _xp_of(backend: Backend | None, a: Any) -> ModuleType:
    return backend.xp if backend is not None else array_module(a)


def _host(a: Any) -> np.ndarray:
    return a.get() if array_module(a).__name__ == "cupy" else np.asarray(a)


def _check_2d(arrays: dict[str, Any], what: str) -> tuple[int, int]:
    shapes = {name: tuple(a.shape) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if len(first) != 2 or any(s != first for s in shapes.values()):
        raise ValueError(f"{what}: inputs must share one (cy, cx) shape, got {shapes}")
    return first


# --- §1.2 multi-temporal reflectance test -----------------------------------------------------------


def _refl_var_inputs(xp: ModuleType, arrays: Sequence[Any], age_days: Any, excluded: Any):
    names = ("tocr_blue", "tocr_red", "tocr_nir", "rcr_blue", "rcr_red", "rcr_nir")
    f32 = {n: xp.asarray(a, dtype=xp.float32) for n, a in zip(names, arrays, strict=True)}
    shape = _check_2d(f32, "refl_var_test")
    age = xp.broadcast_to(xp.asarray(age_days, dtype=xp.float64), shape)
    exc = xp.broadcast_to(xp.asarray(excluded).astype(bool, copy=False), shape)
    return f32, age, exc, shape


def refl_var_numpy(tocr_blue, tocr_red, tocr_nir, rcr_blue, rcr_red, rcr_nir, age_days, excluded,
                   params: L2Params) -> tuple[np.ndarray, np.ndarray]:
    """NumPy twin of the `refl_var` kernel: (refl_var, ext_candidate) bool (§1.2)."""
    f32, age, exc, _ = _refl_var_inputs(np, [_host(a) for a in (tocr_blue, tocr_red, tocr_nir, rcr_blue,
                                                                 rcr_red, rcr_nir)], _host(age_days), _host(excluded))
    bd, rd, nd, bc, rc, nc = (a.astype(np.float64) for a in f32.values())
    ok = ~exc & ~np.isnan(age)
    for a in (bd, rd, nd, bc, rc, nc):
        ok &= ~np.isnan(a)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        grown = params.min_threshold_var_blue * (1.0 + age / params.cloud_forgetting_duration)
        thr = np.where(grown < params.max_threshold_var_blue, grown, params.max_threshold_var_blue)
        db = bd - bc
        dr = rd - rc
        rb = (bd - bc) / (bd + bc)
        rn = (nd - nc) / (nd + nc)
        dhot = (bd - 0.5 * rd) - (bc - 0.5 * rc)
        k_red = params.refl_var_min_red_ratio
        shadow_like = (k_red > 0.0) & (rc > 0.0) & (rd < k_red * rc)
        ratio = (rn < params.k_nir_blue * rb) & (dr < params.k_red_blue * db) & ~shadow_like & ok
        var = ratio & (dhot > thr)
        ext = ratio & (dhot > thr - params.delta_threshold)
    return var, ext


def _refl_var_gpu(arrays, age_days, excluded, params: L2Params):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("refl_var", domain="gpumaja"):
        f32, age, exc, shape = _refl_var_inputs(cupy, arrays, age_days, excluded)
        n = shape[0] * shape[1]
        if n >= 2**31:
            raise ValueError(f"refl_var_test: {shape} pixels exceed the kernel's 32-bit indexing")
        ins = [cupy.ascontiguousarray(a) for a in f32.values()]
        age = cupy.ascontiguousarray(age)
        exc = cupy.ascontiguousarray(exc.astype(cupy.uint8))
        var = cupy.empty(shape, dtype=cupy.uint8)
        ext = cupy.empty(shape, dtype=cupy.uint8)
        if n == 0:
            return var.astype(bool), ext.astype(bool)
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("refl_var")
        grid = (min(_MAX_BLOCKS, (n + _BLOCK_1D - 1) // _BLOCK_1D),)
        kernel(grid, (_BLOCK_1D,), (
            *ins, age, exc, np.int32(n),
            np.float64(params.min_threshold_var_blue), np.float64(params.max_threshold_var_blue),
            np.float64(params.cloud_forgetting_duration), np.float64(params.k_nir_blue),
            np.float64(params.k_red_blue), np.float64(params.delta_threshold),
            np.float64(params.refl_var_min_red_ratio), var, ext,
        ))
        return var.astype(bool), ext.astype(bool)


def refl_var_test(tocr_blue: Any, tocr_red: Any, tocr_nir: Any, rcr_blue: Any, rcr_red: Any, rcr_nir: Any,
                  age_days: Any, excluded: Any, params: L2Params,
                  backend: Backend | None = None) -> tuple[Any, Any]:
    """(refl_var, ext_candidate), (cy, cx) bool each: the multi-temporal test of §1.2.

    tocr_*: the current date's TOCR in the blue / red / NIR roles; rcr_*: the composite RCR in the same
    bands (NaN = nodata); age_days: |day − PXD| (`CompositeState.age`); excluded: bool, the caller's
    edge | composite nodata | dilated composite water | dilated snow. Excluded pixels and pixels with
    a NaN input are False in both masks. The CUDA kernel runs when `backend.is_gpu` (or, without a
    backend, for CuPy inputs); else the NumPy twin.
    """
    arrays = (tocr_blue, tocr_red, tocr_nir, rcr_blue, rcr_red, rcr_nir)
    if _on_gpu(backend, tocr_blue):
        return _refl_var_gpu(arrays, age_days, excluded, params)
    return refl_var_numpy(*arrays, age_days, excluded, params)


# --- §1.3 neighbourhood correlation -----------------------------------------------------------------


def _corr_inputs(xp: ModuleType, current, reference, current_invalid, reference_invalid, where):
    cur = xp.asarray(current, dtype=xp.float32)
    ref = xp.asarray(reference, dtype=xp.float32)
    shape = _check_2d({"current": cur, "reference": ref}, "window_correlation")
    valid = ~xp.isnan(cur) & ~xp.isnan(ref)
    for name, m in (("current_invalid", current_invalid), ("reference_invalid", reference_invalid)):
        if m is None:
            continue
        m = xp.asarray(m).astype(bool, copy=False)
        if m.shape != shape:
            raise ValueError(f"window_correlation: {name} has shape {m.shape}, expected {shape}")
        valid &= ~m
    if where is None:
        wh = xp.ones(shape, dtype=bool)
    else:
        wh = xp.asarray(where).astype(bool, copy=False)
        if wh.shape != shape:
            raise ValueError(f"window_correlation: where has shape {wh.shape}, expected {shape}")
    return cur, ref, valid, wh, shape


def window_correlation_numpy(current, reference, current_invalid, reference_invalid, params: L2Params,
                             where=None) -> np.ndarray:
    """NumPy twin of the `window_correlation` kernel: (cy, cx) float32 r, NaN where not computed (§1.3).

    Evaluated only at the `where` pixels (gathering their windows), with the kernel's summation order.
    """
    cur, ref, valid, wh, (cy, cx) = _corr_inputs(
        np, _host(current), _host(reference), None if current_invalid is None else _host(current_invalid),
        None if reference_invalid is None else _host(reference_invalid), None if where is None else _host(where))
    out = np.full((cy, cx), np.nan, dtype=np.float32)
    ys, xs = np.nonzero(wh)
    if ys.size == 0:
        return out
    rad = int(params.n_correl)
    a64, b64 = cur.astype(np.float64), ref.astype(np.float64)
    offsets = [(dy, dx) for dy in range(-rad, rad + 1) for dx in range(-rad, rad + 1)]
    taps = []
    for dy, dx in offsets:
        yy = np.clip(ys + dy, 0, cy - 1)
        xx = np.clip(xs + dx, 0, cx - 1)
        taps.append((yy, xx))
    n = np.zeros(ys.size, dtype=np.int64)
    sa = np.zeros(ys.size)
    sb = np.zeros(ys.size)
    for yy, xx in taps:
        v = valid[yy, xx]
        sa = sa + np.where(v, a64[yy, xx], 0.0)
        sb = sb + np.where(v, b64[yy, xx], 0.0)
        n += v
    enough = n >= int(params.min_pixel_correl)
    dn = np.where(enough, n, 1).astype(np.float64)
    ma, mb = sa / dn, sb / dn
    saa = np.zeros(ys.size)
    sbb = np.zeros(ys.size)
    sab = np.zeros(ys.size)
    for yy, xx in taps:
        v = valid[yy, xx]
        a = np.where(v, a64[yy, xx] - ma, 0.0)
        b = np.where(v, b64[yy, xx] - mb, 0.0)
        saa = saa + a * a
        sbb = sbb + b * b
        sab = sab + a * b
    va, vb = saa / dn, sbb / dn
    flat = (va <= FLAT_VARIANCE_EPS) | (vb <= FLAT_VARIANCE_EPS)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(flat, 0.0, (sab / dn) / np.sqrt(np.where(flat, 1.0, va * vb)))
    out[ys, xs] = np.where(enough, r, np.nan).astype(np.float32)
    return out


def _window_correlation_gpu(current, reference, current_invalid, reference_invalid, params: L2Params, where):
    import cupy
    import nvtx

    from gpumaja.kernels import get_module

    with nvtx.annotate("window_correlation", domain="gpumaja"):
        cur, ref, valid, wh, (cy, cx) = _corr_inputs(cupy, current, reference, current_invalid,
                                                      reference_invalid, where)
        if cy * cx >= 2**31:
            raise ValueError(f"window_correlation: {cy}x{cx} pixels exceed the kernel's 32-bit indexing")
        out = cupy.empty((cy, cx), dtype=cupy.float32)
        if cy * cx == 0:
            return out
        kernel = get_module(_KERNEL_FILE, options=_KERNEL_OPTIONS).get_function("window_correlation")
        grid = ((cx + _BLOCK_2D[0] - 1) // _BLOCK_2D[0], (cy + _BLOCK_2D[1] - 1) // _BLOCK_2D[1])
        kernel(grid, _BLOCK_2D, (
            cupy.ascontiguousarray(cur), cupy.ascontiguousarray(ref),
            cupy.ascontiguousarray(valid.astype(cupy.uint8)), cupy.ascontiguousarray(wh.astype(cupy.uint8)),
            np.int32(cy), np.int32(cx), np.int32(params.n_correl), np.int32(params.min_pixel_correl),
            np.float64(FLAT_VARIANCE_EPS), out,
        ))
        return out


def window_correlation(current: Any, reference: Any, current_invalid: Any, reference_invalid: Any,
                       params: L2Params, backend: Backend | None = None, *, where: Any = None) -> Any:
    """(cy, cx) float32 Pearson r of `current` and `reference` over the (2 n_correl + 1)² window (§1.3).

    Window pixels are left out where `current_invalid` (the current date's edge) or
    `reference_invalid` (reference nodata) is True, or either value is NaN (either mask may be None).
    Fewer than `min_pixel_correl` valid pixels: NaN ("nodata"); a window variance <= 1e-20 on either
    side: 0. Computed only where `where` (bool) is True (all pixels if None), NaN elsewhere.
    """
    if _on_gpu(backend, current):
        return _window_correlation_gpu(current, reference, current_invalid, reference_invalid, params, where)
    return window_correlation_numpy(current, reference, current_invalid, reference_invalid, params, where=where)


def correlated_with_history(candidates: Any, current: Any, edge: Any, composite_ref: Any, sto: Any,
                            sto_days: Sequence[int], day: int, params: L2Params,
                            backend: Backend | None = None) -> Any:
    """(cy, cx) bool: candidate pixels whose neighbourhood correlates with a past image (§1.3).

    First against `composite_ref` (the composite RCR in the correlation band, NaN = nodata; None to
    skip), then against each STO layer in turn (`sto` (n, cy, cx), newest first; layer k is dated
    `sto_days[k]`, layers beyond len(sto_days) are empty and skipped, as is a layer dated `day`). A
    pixel is flagged as soon as one reference gives r > correl_threshold / 100 and is not tried
    against the older layers (NaN, too few valid pixels, never correlates). `current` is this date's
    TOCR in the same band; `edge` its edge mask.
    """
    xp = _xp_of(backend, current)
    cand = xp.asarray(candidates).astype(bool, copy=True)
    found = xp.zeros(cand.shape, dtype=bool)
    thr = np.float32(params.correl_threshold / 100.0)
    refs = [] if composite_ref is None else [composite_ref]
    if sto is not None:
        n_layers = min(int(sto.shape[0]), len(sto_days))
        refs += [sto[k] for k in range(n_layers) if int(sto_days[k]) != int(day)]
    for ref in refs:
        if not bool(cand.any()):
            break
        ref = xp.asarray(ref, dtype=xp.float32)
        r = window_correlation(current, ref, edge, xp.isnan(ref), params, backend, where=cand)
        hit = cand & (r > thr)
        found |= hit
        cand &= ~hit
    return found


# --- §1.4 cloud extension ---------------------------------------------------------------------------


def label_components(mask: Any, xp: ModuleType) -> tuple[Any, int]:
    """4-connected labels (int32, 0 = background) and their count."""
    labels, n = ndimage_for(xp).label(mask, structure=LABEL_STRUCTURE)
    return labels, int(n)


def cloud_extension(ext_candidate: Any, refl: Any, refl_var: Any,
                    correlated: Any | Callable[[Any], Any], params: L2Params,
                    xp: ModuleType | None = None) -> Any:
    """The extension mask (§1.4, CLM bit 4), bool (cy, cx), without refl / refl_var pixels.

    1. ext_candidate (dHOT > thr − delta_threshold) is labelled (4-connected); a component is kept
       when at least one of its pixels is refl or refl_var (after the §1.3 rejection). The extension
       pixels are the kept pixels that are not refl / refl_var.
    2. `correlated` flags the extension pixels that correlate with the history (§1.3 test). It is
       either a bool (cy, cx) mask (read on the extension pixels only), or a callable taking the bool
       mask of the extension pixels and returning that flag (e.g. a closure over
       `correlated_with_history`), so that only those pixels are correlated.
    3. refl ∪ refl_var ∪ extension is labelled; in a label where (correlated extension pixels) /
       (label pixels) > discarded_pixels_ratio_min / 100, the correlated extension pixels are removed.
    """
    xp = xp or array_module(ext_candidate)
    cand = xp.asarray(ext_candidate).astype(bool, copy=False)
    cloud = xp.asarray(refl).astype(bool, copy=False) | xp.asarray(refl_var).astype(bool, copy=False)
    labels, n = label_components(cand, xp)
    if n == 0:
        return xp.zeros(cand.shape, dtype=bool)
    holds_cloud = xp.bincount(labels[cand & cloud].ravel(), minlength=n + 1) > 0
    holds_cloud[0] = False
    ext = holds_cloud[labels] & ~cloud
    if not bool(ext.any()):
        return ext
    flag = correlated(ext) if callable(correlated) else correlated
    corr = ext & xp.asarray(flag).astype(bool, copy=False)
    if not bool(corr.any()):
        return ext
    union_labels, m = label_components(cloud | ext, xp)
    size = xp.bincount(union_labels.ravel(), minlength=m + 1)
    n_corr = xp.bincount(union_labels[corr].ravel(), minlength=m + 1)
    discard = n_corr.astype(xp.float64) > (params.discarded_pixels_ratio_min / 100.0) * size.astype(xp.float64)
    discard[0] = False
    return ext & ~(corr & discard[union_labels])


# --- orchestration ----------------------------------------------------------------------------------

ROLES = ("blue", "red", "nir", "correl")


def multitemporal_clouds(refl: Any, tocr: dict[str, Any], rcr: dict[str, Any], edge: Any, snow: Any,
                         composite_water: Any | None, composite_nodata: Any, age_days: Any, sto: Any,
                         sto_days: Sequence[int], day: int, params: L2Params,
                         backend: Backend | None = None) -> dict[str, Any]:
    """§1.2-1.4 for one date in NOMINAL mode: {"refl", "refl_var", "extension"}, undilated bool masks.

    refl: the mono-temporal mask (§1.1); tocr / rcr: the current TOCR and the composite RCR keyed by
    role "blue", "red", "nir", "correl"; edge, snow: this date's masks; composite_water (None = no
    water), composite_nodata: the composite's masks; age_days: `CompositeState.age(day)`; sto /
    sto_days: the composite STO stack (correlation band). Steps:

    - excluded = edge | composite_nodata | dilate(composite_water) | dilate(snow), radius
      se_input_masks_radius (§1.2);
    - refl_var and extension candidates (`refl_var_test`);
    - refl ∪ refl_var pixels that correlate with the history are cleared from both (§1.3);
    - extension (`cloud_extension`, the correlation evaluated on the kept extension pixels).

    The returned "refl" is the input with the correlated pixels cleared.
    """
    missing = [r for r in ROLES if r not in tocr or r not in rcr]
    if missing:
        raise ValueError(f"multitemporal_clouds: tocr and rcr need the roles {ROLES}, missing {missing}")
    xp = _xp_of(backend, tocr["blue"])
    ed = xp.asarray(edge).astype(bool, copy=False)
    radius = params.se_input_masks_radius
    excluded = ed | xp.asarray(composite_nodata).astype(bool, copy=False)
    excluded = excluded | dilate(xp.asarray(snow).astype(bool, copy=False), radius, xp)
    if composite_water is not None:
        excluded = excluded | dilate(xp.asarray(composite_water).astype(bool, copy=False), radius, xp)
    refl_var, ext_candidate = refl_var_test(tocr["blue"], tocr["red"], tocr["nir"], rcr["blue"], rcr["red"],
                                            rcr["nir"], age_days, excluded, params, backend)
    refl = xp.asarray(refl).astype(bool, copy=False)

    def correlated(mask):
        return correlated_with_history(mask, tocr["correl"], ed, rcr["correl"], sto, sto_days, day, params,
                                       backend)

    rejected = correlated(refl | refl_var)
    refl = refl & ~rejected
    refl_var = refl_var & ~rejected
    extension = cloud_extension(ext_candidate, refl, refl_var, correlated, params, xp)
    return {"refl": refl, "refl_var": refl_var, "extension": extension}
