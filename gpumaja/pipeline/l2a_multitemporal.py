"""The NOMINAL-mode part of one date's L2A: the tests that read the composite (maja-l2a.md §1.2-1.4,
§1.7, §1.9, §1.10, §3.5), in MAJA's order, on the coarse grid.

`nominal_clouds` runs after the mono-temporal masks of `l2a_date.process_date`:

1. the cloud-over-water branch of the refl test (§1.1, nominal only): composite water eroded by
   se_input_masks_radius with SWIR2 TOCR above water_reflectance_threshold;
2. refl_var, the correlation rejection and the extension (§1.2-1.4, `masks.cloud_mt`);
3. the multi-date water mask from today's single-date test and the composite's PWA/TWA stacks (§1.7);
4. the cloud shadows by geometric projection (§1.9, `masks.shadow`) and, when at least one in-image
   shadow pixel exists (the orchestrator's check), the shadows of outside clouds (§1.10, `masks.shadvar`).

The shadow stage runs where the memory plan puts it (`MemoryPlan.shadow_on_device`, set by the
series driver with `shadow_placement`, a context variable as `l2a_group.strip_plan`): on the device,
or on a GPU backend whose memory cannot hold its worst case, on the host with the NumPy backend
(`shadow_stage`).

`nominal_aot` is the spectro-temporal AOT (§3.5, `atmosphere.aot_st`) with the multi-spectral
fallback where MT is invalid.

Pure array code on the backend; no file is opened here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from gpumaja.atmosphere.aot_st import aot_insensitive_interval, aot_spectrotemporal, mt_selection
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import CPU, Backend, to_numpy
from gpumaja.composite import CompositeState
from gpumaja.masks.cloud_mt import multitemporal_clouds
from gpumaja.masks.morphology import dilate
from gpumaja.masks.shadow import cloud_shadows, darkening
from gpumaja.masks.shadvar import outside_cloud_zone, shadvar_mask
from gpumaja.masks.water_mt import water_mask_multi_date
from gpumaja.model.params import L2Params

_SHADOW_ON_DEVICE: ContextVar[bool] = ContextVar("gpumaja_shadow_on_device", default=True)


@contextmanager
def shadow_placement(on_device: bool) -> Iterator[None]:
    """Within the block, the cloud-shadow stage runs on the device (True) or on the host (False; only
    a GPU backend makes a difference): `MemoryPlan.shadow_on_device`."""
    token = _SHADOW_ON_DEVICE.set(bool(on_device))
    try:
        yield
    finally:
        _SHADOW_ON_DEVICE.reset(token)


def shadow_on_device() -> bool:
    """The placement in force (`shadow_placement`; True by default)."""
    return _SHADOW_ON_DEVICE.get()


def shadow_stage(clouds, clouds_dilated, tocr_shadow_band, rcr_shadow_band, edge, composite_water, altitude,
                 sun_angles: tuple[Any, Any], view_angles: tuple[Any, Any], resolution_m: float, params: L2Params,
                 backend: Backend, on_device: bool | None = None):
    """`cloud_shadows` (§1.9) on `backend`, or, when `on_device` (default: `shadow_on_device()`) is False
    and the backend is a GPU, with the NumPy backend on host copies of its inputs, the mask copied back
    to the device. The NumPy twin is the reference of the GPU path, so both give the same mask."""
    on_device = shadow_on_device() if on_device is None else on_device
    args = (clouds, clouds_dilated, tocr_shadow_band, rcr_shadow_band, edge, composite_water, altitude,
            *sun_angles, *view_angles)
    if on_device or not backend.is_gpu:
        return cloud_shadows(*args, resolution_m, params, backend)
    mask = cloud_shadows(*(to_numpy(a) for a in args), resolution_m, params, CPU)
    return backend.asarray(mask)


def composite_water(comp: CompositeState, params: L2Params, xp) -> Any:
    """Water according to the previous dates only (PWA/TWA stacks, §1.7)."""
    none = xp.zeros(comp.shape, bool)
    return water_mask_multi_date(none, none, comp.pwa, comp.twa, params, xp)


def nominal_clouds(
    comp: CompositeState, day: int, refl, tocr, idx: dict[str, int], edge, snow, cirrus, possible_water,
    tested_water, altitude, sun_angles: tuple[Any, Any], view_angles: tuple[Any, Any], resolution_m: float,
    params: L2Params, backend: Backend,
) -> dict[str, Any]:
    """Undilated masks of a NOMINAL date: refl (after the water branch and the correlation
    rejection), refl_var, extension, water (multi-date), shadow, shadvar; plus darkening (§1.9)."""
    xp = backend.xp
    ci = {b: i for i, b in enumerate(comp.bands)}

    def cur(role: str):
        return tocr[idx[getattr(params, role)]]

    def ref(role: str):
        return comp.rcr[ci[getattr(params, role)]]

    water_prev = composite_water(comp, params, xp)
    # §1.1 water branch: cloud over (eroded) composite water where SWIR2 is too bright for water
    if params.swir2_band in idx:
        r = params.se_input_masks_radius
        eroded = ~dilate(~water_prev, r, xp) if r > 0 else water_prev
        refl = refl | (eroded & (cur("swir2_band") > np.float32(params.water_reflectance_threshold)) & ~edge)

    roles = {"blue": "blue_band", "red": "red_band", "nir": "nir_band", "correl": "correl_band"}
    mt = multitemporal_clouds(
        refl, {k: cur(v) for k, v in roles.items()}, {k: ref(v) for k, v in roles.items()}, edge, snow,
        water_prev, comp.ndt, comp.age(day), comp.sto, comp.sto_days, day, params, backend)

    clouds = mt["refl"] | mt["refl_var"] | mt["extension"]
    water = water_mask_multi_date(possible_water & ~clouds, tested_water & ~clouds, comp.pwa, comp.twa, params, xp)

    clouds_dil = dilate(clouds | cirrus, params.se_cloud_radius, xp)
    sz, sa = sun_angles
    shadow = shadow_stage(clouds, clouds_dil, cur("shadow_band"), ref("shadow_band"), edge, water_prev, altitude,
                          sun_angles, view_angles, resolution_m, params, backend)
    shadvar = xp.zeros(edge.shape, bool)
    dark = darkening(cur("shadow_band"), ref("shadow_band"), ~clouds_dil & ~edge & ~water_prev, xp)
    if bool(shadow.any()):
        zone = outside_cloud_zone(edge.shape, resolution_m, altitude, sz, sa, params, xp)
        # the STO stack holds the correlation band: usable for the shadow band's test only when they agree
        same = params.shadow_band == params.correl_band
        shadvar = shadvar_mask(dark, zone, shadow, comp.cld, cur("shadow_band"), edge, ref("shadow_band"), comp.sto,
                               comp.sto_days if same else (), day, params, backend)
    return {"refl": mt["refl"], "refl_var": mt["refl_var"], "extension": mt["extension"], "water": water,
            "shadow": shadow & ~clouds, "shadvar": shadvar & ~clouds & ~shadow}


def nominal_aot(
    comp: CompositeState, day: int, toas, idx: dict[str, int], altitude, ml: MiniLUT, excluded, ms_selected, ndvi,
    aot_dark: float, params: L2Params, backend: Backend,
) -> tuple[Any, Any, Any]:
    """Spectro-temporal AOT nodes (§3.5): (aot_nodes, n_used, method per node: 0 none, 1 MS, 2 MT+MS).
    `excluded`: edge | clouds and shadows | topographic shadow | water | snow | saturated."""
    xp = backend.xp
    ci = {b: i for i, b in enumerate(comp.bands)}
    mt_band, var_band = params.mt_aot_band, params.var_band
    valid_alt = altitude[~excluded & xp.isfinite(altitude)]
    mean_alt = float(valid_alt.mean()) if valid_alt.size else 0.0
    lo, hi = aot_insensitive_interval(ml, mt_band, mean_alt, params)
    mt_sel = mt_selection(toas[idx[var_band]], comp.rta[ci[var_band]], comp.age(day), toas[idx[mt_band]], lo, hi,
                          excluded | comp.ndt, params, xp)
    names = {params.mt_aot_band, params.blue_band, params.red_band, params.var_band, params.stdev_band}
    toa_star = {b: toas[idx[b]] for b in names}
    rta = {b: comp.rta[ci[b]] for b in names}
    ltc = comp.ltc if comp.ltc is not None else np.zeros((0, *ml.toc.shape[1:]), np.float32)
    return aot_spectrotemporal(toa_star, rta, comp.rtc[ci[mt_band]], comp.pxd, mt_sel, ms_selected, ndvi, altitude,
                               ml, ltc, comp.ltc_days, day, aot_dark, params, backend)
