"""One date's L2A (MAJA's INIT mode: no composite), in the order of MAJA's L2 modules.

maja-l2a.md "L2 module order": coarse TOA -> gas and water vapour (§3.3, §3.4) -> reduced LUT
(§3.1) -> Rayleigh/default-AOT TOCR -> cirrus (§1.5) -> snow (§1.6) -> mono-temporal cloud
(§1.1) -> snow correction -> water (§1.7) -> dilation (§1.8) -> AOT, multi-spectral with the
dark-pixel bound (§3.5) -> environment reflectance -> per 10/20 m group: gas, TOC by mini-LUT,
adjacency correction = SRE (§3.6), slope correction = FRE (§3.7), masks resampled (§1.11) and, unless
`fine_cloud_masks` is off, kept where the 10/20 m pixel supports them (`masks.cloud_fine`, ours).

Everything runs on `backend` (NumPy or CuPy); each step is a function of `gpumaja.atmosphere` or
`gpumaja.masks`, the per-pixel ones being CUDA kernels with NumPy twins. No file is opened here.
"""

from __future__ import annotations

import math

import numpy as np

from gpumaja import __version__
from gpumaja.atmosphere.aot import (
    aot_at_altitude,
    aot_multispectral,
    aot_to_grid,
    dark_pixel_aot,
    fill_and_smooth_aot,
    ms_selection,
)
from gpumaja.atmosphere.gas import gas_correction
from gpumaja.atmosphere.minilut import AtmosphereLUT, fold_relative_azimuth
from gpumaja.atmosphere.surface_reflectance import environment_reflectance
from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.atmosphere.water_vapour import constant_water_vapour, water_vapour_map
from gpumaja.backend import Backend
from gpumaja.composite import CompositeState, day_number
from gpumaja.masks.cirrus import cirrus_flag, cirrus_mask
from gpumaja.masks.cloud_mono import refl_cloud
from gpumaja.masks.combine import combine_clouds
from gpumaja.masks.snow import cos_incidence, snow_mask, snow_mask_correction
from gpumaja.masks.terrain import terrain_flags
from gpumaja.masks.water import water_mask_single_date
from gpumaja.model.angles import angles_on_grid, circular_mean_deg
from gpumaja.model.l2a import L2AGroup, L2AResult
from gpumaja.model.params import L2Params, roles_for
from gpumaja.pipeline.fine_evidence import FineCloudEvidence
from gpumaja.pipeline.l2a_group import factor, group_masks, group_products
from gpumaja.pipeline.l2a_inputs import DateInputs
from gpumaja.pipeline.l2a_multitemporal import nominal_aot, nominal_clouds
from gpumaja.pipeline.stages import Stages
from gpumaja.radiometry.coarse import block_mean

# Groups and bands written in the MUSCATE product (maja-l2a.md §5)
OUTPUT_GROUPS = {
    "S2": {"R1": ("B02", "B03", "B04", "B08"), "R2": ("B05", "B06", "B07", "B8A", "B11", "B12")},
    "LANDSAT": {"R1": ("B1", "B2", "B3", "B4", "B5", "B6", "B7")},
}


def _coarse_bands(inp: DateInputs, params: L2Params, backend: Backend) -> tuple[dict, dict]:
    """TOA and saturated fraction of every band on the coarse grid (block means, §"Processing geometry")."""
    xp = backend.xp
    cy, cx = inp.coarse_grid.shape
    toa, sat = {}, {}
    for g in inp.groups.values():
        f = factor(inp.coarse_grid.resolution, g.grid.resolution)
        mean, _ = block_mean(g.toa, f, backend=backend)
        frac, _ = block_mean(g.saturated.astype(xp.float32), f, min_valid_fraction=0.0, backend=backend)
        for i, b in enumerate(g.bands):
            toa[b] = mean[i, :cy, :cx]
            sat[b] = frac[i, :cy, :cx] >= np.float32(params.saturation_threshold)
    return toa, sat


def _geometry(inp: DateInputs, bands) -> tuple[float, float, dict, dict, dict]:
    p = inp.product
    sz, sa = float(p.sun.mean_zenith), float(p.sun.mean_azimuth)
    vz = {b: float(p.view[b].mean_zenith) for b in bands}
    va = {b: float(p.view[b].mean_azimuth) for b in bands}
    dphi = {b: fold_relative_azimuth(sa, va[b]) for b in bands}
    return sz, sa, vz, va, dphi


def _air_mass(sz: float, vz: dict, bands) -> np.ndarray:
    return np.array([1.0 / math.cos(math.radians(sz)) + 1.0 / math.cos(math.radians(vz[b])) for b in bands],
                    np.float32)


def process_date(
    inp: DateInputs, lut: AtmosphereLUT, params: L2Params, backend: Backend, stages: Stages | None = None,
    coarse_out: dict | None = None, composite: CompositeState | None = None,
) -> L2AResult:
    """The L2A of one date: INIT mode without `composite`, NOMINAL mode with it (the multi-temporal
    tests, shadows and spectro-temporal AOT of `l2a_multitemporal`). When `coarse_out` is a dict, it
    receives the keyword arguments of `gpumaja.composite.update_composite` for this date (on the
    backend): rta, rcr, rtc (nb, cy, cx) in the order of `bands`, aot, all_clouds, clouds_and_shadows,
    edge, snow, saturated_any (cy, cx), global_flags, possible_water, tested_water, mt_toc_table; and
    `bands`."""
    xp = backend.xp
    st = stages or Stages(backend)
    product = inp.product
    params = roles_for(params, product.sensor)
    cg = inp.coarse_grid
    f32 = np.float32

    nominal = composite is not None
    day = day_number(product.acquired.date())
    with st("coarse toa"):
        toa_c, sat_c = _coarse_bands(inp, params, backend)
        edge_c = xp.zeros(cg.shape, bool)
        for a in toa_c.values():
            edge_c |= xp.isnan(a)
        ter_c = inp.terrain["coarse"]
        alt_c = xp.asarray(ter_c.altitude, dtype=f32)
        slope_c, aspect_c = xp.asarray(ter_c.slope), xp.asarray(ter_c.aspect)

    lut_bands = tuple(b for b in lut.bands if b in toa_c)
    sz, sa, vz, va, dphi = _geometry(inp, tuple(toa_c))
    with st("reduce lut"):
        ml = lut.reduce(sz, {b: vz[b] for b in lut_bands}, {b: dphi[b] for b in lut_bands}, lut_bands)
        smac = lut.smac(lut_bands)
        air = _air_mass(sz, vz, lut_bands)

    with st("water vapour"):
        wv_band, ref_band = params.wv_band, params.wv_reference_band
        watv = getattr(lut, "water_vapour", None)
        if wv_band and wv_band in toa_c and ref_band in toa_c and watv is not None:
            wv_c, wv_interp_c = water_vapour_map(
                toa_c[wv_band], toa_c[ref_band], watv, sz, vz[wv_band], ~edge_c, params, xp)
        else:
            wv_c, wv_interp_c = constant_water_vapour(cg.shape, params, xp)

    with st("gas coarse"):
        toa_stack = xp.stack([toa_c[b] for b in lut_bands])
        toas_c = gas_correction(toa_stack, alt_c, wv_c, smac, air, params.ozone_amount_default,
                                water_default=params.water_amount_default, backend=backend)
        idx = {b: i for i, b in enumerate(lut_bands)}

    with st("tocr"):
        default_aot = xp.full(cg.shape, f32(params.rayleigh_correction_default_aot), dtype=f32)
        tocr = apply_minilut(toas_c, alt_c, default_aot, ml, backend=backend)

    def tc(role: str):
        return tocr[idx[getattr(params, role)]]

    with st("masks"):
        sat_any = xp.zeros(cg.shape, bool)
        for role in ("blue_band", "red_band", "nir_band", "swir1_band"):
            sat_any |= sat_c[getattr(params, role)]
        if params.cirrus_band in toa_c:
            cirrus = cirrus_mask(toa_c[params.cirrus_band], alt_c, ~edge_c, params, xp)
        else:
            cirrus = xp.zeros(cg.shape, bool)
        cos_sz = math.cos(math.radians(sz))
        cos_i = cos_incidence(slope_c, aspect_c, sz, sa, xp)
        snow = snow_mask(tc("green_band"), tc("red_band"), tc("swir1_band"), cos_sz, cos_i, edge_c, None, params, xp)
        refl = refl_cloud(tc("blue_band"), tc("red_band"), tc("nir_band"), tc("swir1_band"), sat_any,
                          edge_c | snow, params, xp)
        snow, extra_cloud = snow_mask_correction(snow, refl, edge_c, xp)
        refl = refl | extra_cloud
        mean_vz = float(np.mean([vz[b] for b in lut_bands]))
        mean_va = float(circular_mean_deg(np.array([va[b] for b in lut_bands])))
        topo_c, hidden_c = terrain_flags(alt_c, cg.resolution, sz, sa, mean_vz, mean_va, params, xp, edge=edge_c)
        possible_water, tested_water = water_mask_single_date(tc("red_band"), tc("nir_band"), refl | cirrus, edge_c,
                                                              topo_c, slope_c, params, xp)
        water = possible_water
        parts = {}
    with st("multi-temporal masks"):
        if nominal:
            sun = tuple(xp.asarray(a) for a in angles_on_grid(product.sun, cg))
            view = tuple(xp.asarray(a) for a in angles_on_grid(product.view[params.shadow_band], cg))
            mt = nominal_clouds(composite, day, refl, tocr, idx, edge_c, snow, cirrus, possible_water, tested_water,
                                alt_c, sun, view, cg.resolution, params, backend)
            refl, water = mt["refl"], mt["water"]
            parts = {k: mt[k] for k in ("refl_var", "extension", "shadvar")}
            shadows = mt["shadow"]
        else:
            shadows = None
        clouds = combine_clouds(refl, cirrus, shadows, params, edge_c, xp, **parts)

    with st("aot"):
        dark_excl = clouds["all"] | edge_c
        if nominal:  # §3.5: only pixels whose composite surface reflectance is dark
            rtc_dark = composite.rtc[composite.bands.index(params.dark_band)]
            dark_excl = dark_excl | ~(rtc_dark < np.float32(params.dark_pixel_threshold))
        aot_dark = dark_pixel_aot(toas_c[idx[params.dark_band]], alt_c, dark_excl, ml, params,
                                  height_scale_m=params.aot_height_scale_m)
        selected, ndvi = ms_selection(toas_c[idx[params.red_band]], toas_c[idx[params.nir_band]],
                                      clouds["all"] | topo_c, snow, water, sat_any, edge_c, params, xp)
        if nominal and params.aot_method == "SPECTROTEMPORAL":
            excluded = edge_c | clouds["all"] | topo_c | water | snow | sat_any
            aot_nodes, _n_used, method = nominal_aot(composite, day, toas_c, idx, alt_c, ml, excluded, selected,
                                                     ndvi, aot_dark, params, backend)
            aot_method = "SPECTROTEMPORAL" if bool((method == 2).any()) else "MULTISPECTRAL"
        else:
            aot_nodes, _n_used = aot_multispectral(toas_c[idx[params.blue_band]], toas_c[idx[params.red_band]], ndvi,
                                                  alt_c, selected, ml, aot_dark, params, backend=backend)
            aot_method = "MULTISPECTRAL"
        # nodes, gap filling and smoothing hold the AOT reduced to sea level (aot0; the AOT itself when
        # aot_height_scale_m is 0); aot_c is each coarse pixel's own column (gpumaja.atmosphere.aot)
        aot_nodes, aot_interp_nodes = fill_and_smooth_aot(aot_nodes, params, xp)
        aot0_c = aot_to_grid(aot_nodes, params.step_aot, cg.shape, xp).astype(f32)
        aot_c = aot_at_altitude(aot0_c, alt_c, params, xp)
        aot_interp_c = aot_to_grid(aot_interp_nodes.astype(f32), params.step_aot, cg.shape, xp) > 0.5

    out_groups = OUTPUT_GROUPS[product.sensor]
    out_bands = tuple(b for bs in out_groups.values() for b in bs if b in idx)
    with st("environment"):
        # TOC of every LUT band at the estimated AOT: the environment needs the output bands, the
        # composite (RTC) all of them
        toc_c = apply_minilut(toas_c, alt_c, aot_c, ml, backend=backend)
        env_c = environment_reflectance(toc_c[[idx[b] for b in out_bands]], params.env_corr_radius, ~edge_c, xp)
        env_idx = {b: i for i, b in enumerate(out_bands)}

    if coarse_out is not None:
        sat_all = xp.zeros(cg.shape, bool)
        for b in lut_bands:
            sat_all |= sat_c[b]
        coarse_out.update(
            bands=lut_bands, rta=toas_c, rcr=tocr, rtc=toc_c, aot=aot_c,
            all_clouds=clouds["all_clouds"], clouds_and_shadows=clouds["all"], edge=edge_c, snow=snow,
            saturated_any=sat_all,
            global_flags={"cirrus": bool(cirrus_flag(cirrus, ~edge_c, params, xp))},
            possible_water=possible_water & ~clouds["all_clouds"], tested_water=tested_water & ~clouds["all_clouds"],
            mt_toc_table=backend.to_numpy(ml.toc[idx[params.mt_aot_band]]) if params.mt_aot_band in idx else None,
        )

    valid_c = ~edge_c
    n_valid = int(valid_c.sum())
    cloud_pct = 100.0 * float((clouds["all_clouds"] & valid_c).sum()) / max(n_valid, 1)
    snow_pct = 100.0 * float((snow & valid_c).sum()) / max(n_valid, 1)
    nodata_pct = 100.0 * (1.0 - n_valid / edge_c.size)

    evidence = None
    fine_bands = (params.fine_blue_band, params.fine_red_band)
    if params.fine_cloud_masks and all(b in idx for b in fine_bands):
        evidence = FineCloudEvidence.build(inp, params, backend, ml, smac, air, idx, wv_c, alt_c, composite, day,
                                           aot0=aot0_c)

    groups: dict[str, L2AGroup] = {}
    for gname, gbands in out_groups.items():
        g = inp.groups.get(gname)
        if g is None:
            continue
        bands = tuple(b for b in gbands if b in g.bands and b in idx)
        with st(f"sre/fre {gname}"):
            groups[gname] = group_products(
                inp, g, bands, gname, ml, smac[[idx[b] for b in bands]], air[[idx[b] for b in bands]],
                wv_c, aot0_c, env_c[[env_idx[b] for b in bands]], sz, sa, vz, va, params, backend, xp)
        with st(f"masks {gname}"):
            group_masks(groups[gname], g, cg, clouds, snow, water, topo_c, hidden_c, wv_interp_c, aot_interp_c,
                         params, backend, xp, evidence=evidence)

    return L2AResult(
        product=product, groups=groups, cloud_percent=cloud_pct, snow_percent=snow_pct, nodata_percent=nodata_pct,
        lut_source=lut.source, aot_method=aot_method, params=params.to_dict(),
        mean_aot=_nanmean(aot_c, valid_c, xp), mean_water_vapour=_nanmean(wv_c, valid_c, xp),
        software_version=f"gpumaja {__version__}",
    )


def _nanmean(a, valid, xp) -> float:
    v = a[valid & ~xp.isnan(a)]
    return float(v.mean()) if v.size else float("nan")
