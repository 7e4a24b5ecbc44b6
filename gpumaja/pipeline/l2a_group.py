"""The 10/20 m part of one date's L2A, per resolution group (maja-l2a.md §3.6, §3.7, §1.11).

`group_products`: gas correction, TOC by the mini-LUT at the resampled AOT, adjacency correction
(SRE), slope correction (FRE, MG2 bits 6-7); `group_masks`: coarse masks brought to the group's
resolution (bilinear then > mask_resampling_threshold) and packed into CLM / MG2 / IAB.
"""

from __future__ import annotations

import numpy as np

from gpumaja.atmosphere.gas import gas_correction
from gpumaja.atmosphere.slope import slope_correction
from gpumaja.atmosphere.surface_reflectance import environment_correction
from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.masks.combine import clm_bits, mg2_bits
from gpumaja.masks.morphology import resample_float, resample_mask
from gpumaja.model.l2a import IAB_AOT_INTERPOLATED, IAB_WV_INTERPOLATED, L2AGroup


def factor(coarse_res: float, res: float) -> int:
    f = coarse_res / res
    if abs(f - round(f)) > 1e-6:
        raise ValueError(f"coarse resolution {coarse_res:g} m is not a multiple of {res:g} m")
    return int(round(f))


def group_products(inp, g, bands, gname, ml, smac, air, wv_c, aot_c, env_c, sz, sa, vz, va, params, backend, xp):
    f32 = np.float32
    f = factor(inp.coarse_grid.resolution, g.grid.resolution)
    shape = g.grid.shape
    ter = inp.terrain[gname]
    alt = xp.asarray(ter.altitude, dtype=f32)
    sel = [g.bands.index(b) for b in bands]
    toa = g.toa[sel]
    edge = xp.isnan(g.toa).any(axis=0)
    wv = resample_float(wv_c, f, shape, xp).astype(f32)
    aot = resample_float(aot_c, f, shape, xp).astype(f32)
    toas = gas_correction(toa, alt, wv, smac, air, params.ozone_amount_default,
                          water_default=params.water_amount_default, backend=backend)
    mlg = ml.subset(bands)
    unif = apply_minilut(toas, alt, aot, mlg, backend=backend)
    del toas
    env = xp.stack([resample_float(env_c[i], f, shape, xp) for i in range(len(bands))]).astype(f32)
    sre = environment_correction(unif, env, alt, aot, mlg, backend=backend)
    del unif
    fre, mg2_terrain = slope_correction(
        sre, env, alt, aot, xp.deg2rad(xp.asarray(ter.slope, dtype=f32)).astype(f32),
        xp.deg2rad(xp.asarray(ter.aspect, dtype=f32)).astype(f32), sz, sa,
        np.array([vz[b] for b in bands], f32), np.array([va[b] for b in bands], f32), mlg,
        params.slope_min_cos_i, params.min_cos_e, params.min_cos_ratio, backend=backend)
    del env
    sre[:, edge] = np.nan
    fre[:, edge] = np.nan
    wv[edge] = np.nan
    aot[edge] = np.nan
    sat = xp.zeros(shape, xp.uint8)
    for i, j in enumerate(sel):
        sat |= (g.saturated[j] & ~edge).astype(xp.uint8) << i
    zeros = xp.zeros(shape, xp.uint8)
    to_np = backend.to_numpy
    return L2AGroup(
        gname, g.grid, bands, to_np(sre), to_np(fre), to_np(wv), to_np(aot), to_np(zeros),
        to_np(xp.where(edge, 0, mg2_terrain).astype(xp.uint8)), to_np(sat), to_np(edge.astype(xp.uint8)),
        to_np(zeros),
    )


def group_masks(out: L2AGroup, g, cg, clouds, snow, water, topo_c, hidden_c, wv_interp_c, aot_interp_c,
                 params, backend, xp) -> None:
    f = factor(cg.resolution, g.grid.resolution)
    shape = g.grid.shape
    thr = params.mask_resampling_threshold
    edge = xp.asarray(out.edg).astype(bool)

    def up(m):
        return resample_mask(m, f, shape, threshold=thr, xp=xp) & ~edge

    fine = {k: up(v) for k, v in clouds.items() if v is not None}
    clm = clm_bits(fine)
    zero = xp.zeros(shape, bool)
    mg2 = mg2_bits(up(water), fine["all_clouds"], up(snow), fine.get("shadow", zero), up(topo_c), up(hidden_c),
                   zero, zero)
    mg2 = mg2 | xp.asarray(out.mg2)
    iab = (up(wv_interp_c).astype(xp.uint8) * np.uint8(IAB_WV_INTERPOLATED)) | (
        up(aot_interp_c).astype(xp.uint8) * np.uint8(IAB_AOT_INTERPOLATED))
    out.clm = backend.to_numpy(clm.astype(xp.uint8))
    out.mg2 = backend.to_numpy(mg2.astype(xp.uint8))
    out.iab = backend.to_numpy(iab.astype(xp.uint8))
