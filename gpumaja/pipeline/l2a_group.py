"""The 10/20 m part of one date's L2A, per resolution group (maja-l2a.md §3.6, §3.7, §1.11).

`group_products`: gas correction, TOC by the mini-LUT at the resampled AOT, adjacency correction
(SRE), slope correction (FRE, MG2 bits 6-7); `group_masks`: coarse masks brought to the group's
resolution (bilinear then > mask_resampling_threshold) and packed into CLM / MG2 / IAB.

Strips: both functions can work in row strips of the group grid (`strip_rows` fine rows; None = the
whole image), computing each strip on the backend and copying it into host arrays, so that the
device holds only one strip's temporaries (maja-l2a.md §6: MAJA streams in strips of 500 lines;
the row count comes from `gpumaja.pipeline.memory.plan_memory`). Every step here is per pixel except
the coarse -> fine bilinear resampling, whose taps depend only on the fine row/column index
(`morphology.axis_weights` of the whole grid): a strip uses the rows y0:y1 of the same taps, so the
strips give exactly the whole-image result. The series driver sets the plan for `process_date` with
`strip_plan(...)` (a context variable, so `process_date` need not pass it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from gpumaja.atmosphere.aot import aot_at_altitude
from gpumaja.atmosphere.gas import gas_correction
from gpumaja.atmosphere.slope import slope_correction
from gpumaja.atmosphere.surface_reflectance import environment_correction
from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.masks.cloud_fine import refine_fine_masks
from gpumaja.masks.combine import clm_bits, mg2_bits
from gpumaja.masks.morphology import _interp_cols, _interp_rows, axis_weights, resample_float, resample_mask
from gpumaja.model.l2a import IAB_AOT_INTERPOLATED, IAB_WV_INTERPOLATED, L2AGroup

_STRIP_ROWS: ContextVar[dict[str, int | None] | None] = ContextVar("gpumaja_strip_rows", default=None)


def factor(coarse_res: float, res: float) -> int:
    f = coarse_res / res
    if abs(f - round(f)) > 1e-6:
        raise ValueError(f"coarse resolution {coarse_res:g} m is not a multiple of {res:g} m")
    return round(f)


@contextmanager
def strip_plan(rows: dict[str, int | None] | None) -> Iterator[None]:
    """Within the block, group g is processed in strips of rows[g] fine rows (None/absent = whole)."""
    token = _STRIP_ROWS.set(dict(rows) if rows else None)
    try:
        yield
    finally:
        _STRIP_ROWS.reset(token)


def strip_spans(ny: int, rows: int | None) -> list[tuple[int, int]]:
    """Row ranges [y0, y1) covering 0..ny in strips of `rows` (None or >= ny: one span)."""
    if rows is None or rows >= ny:
        return [(0, ny)]
    if rows < 1:
        raise ValueError(f"strip rows must be >= 1, got {rows}")
    return [(y, min(ny, y + rows)) for y in range(0, ny, rows)]


def _rows_for(gname: str, strip_rows: int | None) -> int | None:
    if strip_rows is not None:
        return strip_rows
    plan = _STRIP_ROWS.get()
    return None if plan is None else plan.get(gname)


# --- resampling of rows y0:y1 (the whole-image functions of masks.morphology, restricted) --------------
def _taps(field, f: int, shape, y0: int, y1: int, xp):
    ny, nx = shape
    ty = tuple(xp.asarray(t[y0:y1]) for t in axis_weights(ny, field.shape[0], f))
    tx = tuple(xp.asarray(t) for t in axis_weights(nx, field.shape[1], f))
    return ty, tx


def float_rows(field, f: int, shape, y0: int, y1: int, xp):
    """Rows y0:y1 of `resample_float(field, f, shape)` (same taps, same arithmetic)."""
    if (y0, y1) == (0, shape[0]):
        return resample_float(field, f, shape, xp)
    a = xp.asarray(field).astype(xp.float32, copy=False)
    ty, tx = _taps(a, f, shape, y0, y1, xp)
    valid = ~xp.isnan(a)
    vals = xp.where(valid, a, xp.float32(0))
    wts = valid.astype(xp.float32)
    num = _interp_cols(_interp_rows(vals, ty, xp), tx, xp)
    den = _interp_cols(_interp_rows(wts, ty, xp), tx, xp)
    ok = den > 0
    return xp.where(ok, num / xp.where(ok, den, xp.float32(1)), xp.float32(xp.nan))


def mask_rows(mask, f: int, shape, y0: int, y1: int, threshold: float, xp):
    """Rows y0:y1 of `resample_mask(mask, f, shape, threshold)`."""
    if (y0, y1) == (0, shape[0]):
        return resample_mask(mask, f, shape, threshold=threshold, xp=xp)
    a = xp.asarray(mask).astype(bool, copy=False).astype(xp.float32)
    ty, tx = _taps(a, f, shape, y0, y1, xp)
    return _interp_cols(_interp_rows(a, ty, xp), tx, xp) > np.float32(threshold)


# --- SRE / FRE ------------------------------------------------------------------------------------------
def _products_strip(inp, g, gname, sel, bands, mlg, smac, air, wv_c, aot0_c, env_c, sz, sa, vz_b, va_b, params,
                    backend, xp, y0: int, y1: int) -> dict:
    f32 = np.float32
    f = factor(inp.coarse_grid.resolution, g.grid.resolution)
    shape = g.grid.shape
    ter = inp.terrain[gname]
    alt = xp.asarray(ter.altitude[y0:y1], dtype=f32)
    toa = g.toa[sel, y0:y1]
    edge = xp.isnan(g.toa[:, y0:y1]).any(axis=0)
    wv = float_rows(wv_c, f, shape, y0, y1, xp).astype(f32)
    # the sea-level AOT resampled, then each pixel's own column (gpumaja.atmosphere.aot "AOT over relief")
    aot = aot_at_altitude(float_rows(aot0_c, f, shape, y0, y1, xp), alt, params, xp)
    toas = gas_correction(toa, alt, wv, smac, air, params.ozone_amount_default,
                          water_default=params.water_amount_default, backend=backend)
    del toa
    unif = apply_minilut(toas, alt, aot, mlg, backend=backend)
    del toas
    env = xp.empty((len(bands), y1 - y0, shape[1]), dtype=f32)
    for i in range(len(bands)):
        env[i] = float_rows(env_c[i], f, shape, y0, y1, xp)
    sre = environment_correction(unif, env, alt, aot, mlg, backend=backend)
    del unif
    fre, mg2_terrain = slope_correction(
        sre, env, alt, aot, xp.deg2rad(xp.asarray(ter.slope[y0:y1], dtype=f32)).astype(f32),
        xp.deg2rad(xp.asarray(ter.aspect[y0:y1], dtype=f32)).astype(f32), sz, sa, vz_b, va_b, mlg,
        params.slope_min_cos_i, params.min_cos_e, params.min_cos_ratio, backend=backend)
    del env
    sre[:, edge] = np.nan
    fre[:, edge] = np.nan
    wv[edge] = np.nan
    aot[edge] = np.nan
    sat = xp.zeros(edge.shape, xp.uint8)
    for i, j in enumerate(sel):
        sat |= (g.saturated[j, y0:y1] & ~edge).astype(xp.uint8) << i
    return {"sre": sre, "fre": fre, "water_vapour": wv, "aot": aot,
            "mg2": xp.where(edge, 0, mg2_terrain).astype(xp.uint8), "sat": sat, "edg": edge.astype(xp.uint8)}


def group_products(inp, g, bands, gname, ml, smac, air, wv_c, aot0_c, env_c, sz, sa, vz, va, params, backend, xp,
                   strip_rows: int | None = None) -> L2AGroup:
    """SRE, FRE, W, AOT, MG2 terrain bits, SAT and EDG of group `g` (host arrays); CLM and IAB zero
    (filled by `group_masks`). `aot0_c`: the coarse AOT reduced to sea level (`aot_at_altitude`'s input;
    the AOT itself when `aot_height_scale_m` is 0). `strip_rows`: fine rows per strip (default: the
    `strip_plan` in force)."""
    shape = g.grid.shape
    sel = [g.bands.index(b) for b in bands]
    mlg = ml.subset(bands)
    vz_b = np.array([vz[b] for b in bands], np.float32)
    va_b = np.array([va[b] for b in bands], np.float32)
    spans = strip_spans(shape[0], _rows_for(gname, strip_rows))
    to_np = backend.to_numpy
    out: dict[str, np.ndarray] = {}
    for y0, y1 in spans:
        part = _products_strip(inp, g, gname, sel, bands, mlg, smac, air, wv_c, aot0_c, env_c, sz, sa, vz_b, va_b,
                               params, backend, xp, y0, y1)
        if len(spans) == 1:
            out = {k: to_np(v) for k, v in part.items()}
            break
        for k, v in part.items():
            if k not in out:
                out[k] = np.empty(v.shape[:-2] + shape, dtype=v.dtype)
            out[k][..., y0:y1, :] = to_np(v)
        del part
    zeros = np.zeros(shape, np.uint8)
    return L2AGroup(gname, g.grid, bands, out["sre"], out["fre"], out["water_vapour"], out["aot"], zeros,
                    out["mg2"], out["sat"], out["edg"], zeros.copy())


# --- masks ----------------------------------------------------------------------------------------------
def group_masks(out: L2AGroup, g, cg, clouds, snow, water, topo_c, hidden_c, wv_interp_c, aot_interp_c,
                params, backend, xp, strip_rows: int | None = None, evidence=None) -> None:
    """CLM, MG2 and IAB of `out` from the coarse masks (§1.11, §1.12), in place. With `evidence` (a
    `fine_evidence.FineCloudEvidence`), the cloud bits are kept only where the fine pixel supports
    them (`masks.cloud_fine.refine_fine_masks`)."""
    f = factor(cg.resolution, g.grid.resolution)
    shape = g.grid.shape
    thr = params.mask_resampling_threshold
    spans = strip_spans(shape[0], _rows_for(out.name, strip_rows))
    to_np = backend.to_numpy
    if evidence is not None:  # refl ∪ refl_var ∪ extension (dilated like the others: dilation distributes)
        parts = xp.zeros(clouds["all_clouds"].shape, bool)
        for k in ("refl", "refl_var", "extension"):
            if clouds.get(k) is not None:
                parts = parts | clouds[k]
    if len(spans) > 1:
        clm_h, mg2_h, iab_h = (np.empty(shape, np.uint8) for _ in range(3))
    for y0, y1 in spans:
        edge = xp.asarray(out.edg[y0:y1]).astype(bool)

        def up(m, y0=y0, y1=y1, edge=edge):
            return mask_rows(m, f, shape, y0, y1, thr, xp) & ~edge

        fine = {k: up(v) for k, v in clouds.items() if v is not None}
        zero = xp.zeros(edge.shape, bool)
        if evidence is not None:
            support, cirrus, shadow_support = evidence.rows(g.grid, y0, y1)
            zone = None
            if shadow_support is not None and clouds.get("shadow") is not None:  # within one coarse cell
                zone = mask_rows(clouds["shadow"], f, shape, y0, y1, 0.0, xp) & ~edge
            fine = refine_fine_masks(fine, up(parts), support, cirrus, xp, shadow_support, zone)
        clm = clm_bits(fine)
        shadows = fine.get("shadow", zero) | fine.get("shadvar", zero)  # MG2 bit 3: shadows ∪ shadvar (§1.12)
        mg2 = mg2_bits(up(water), fine["all_clouds"], up(snow), shadows, up(topo_c),
                       up(hidden_c), zero, zero)
        mg2 = mg2 | xp.asarray(out.mg2[y0:y1])
        iab = (up(wv_interp_c).astype(xp.uint8) * np.uint8(IAB_WV_INTERPOLATED)) | (
            up(aot_interp_c).astype(xp.uint8) * np.uint8(IAB_AOT_INTERPOLATED))
        if len(spans) == 1:
            out.clm = to_np(clm.astype(xp.uint8))
            out.mg2 = to_np(mg2.astype(xp.uint8))
            out.iab = to_np(iab.astype(xp.uint8))
            return
        clm_h[y0:y1] = to_np(clm.astype(xp.uint8))
        mg2_h[y0:y1] = to_np(mg2.astype(xp.uint8))
        iab_h[y0:y1] = to_np(iab.astype(xp.uint8))
    out.clm, out.mg2, out.iab = clm_h, mg2_h, iab_h
