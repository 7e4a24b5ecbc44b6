"""The fine-resolution evidence of one date for `masks.cloud_fine.refine_fine_masks`, by row strips.

`FineCloudEvidence.rows(grid, y0, y1)` gives, for rows y0:y1 of a 10/20 m group grid:

- the `fine_cloud_support` bits: today's TOCR (gas correction, then the mini-LUT at the default AOT,
  as the coarse TOCR of `l2a_date.process_date`) in `fine_blue_band` / `fine_red_band`, computed on
  the group that holds both (S2 R1, 10 m) and block-averaged to the requested grid when it is coarser
  (R2: 2 × 2); against the composite's RCR in the same bands, bilinear like every coarse field
  (`l2a_group.float_rows`); None without a composite;
- the `fine_shadow_support` codes: the darkening in `fine_red_band` (the shadow band of §1.9 for S2
  and Landsat), below `proj_shad_darkening_max`; None without a composite. With
  `fine_shadow_darkening = "surface"` (the default) it is today's TOC at the date's estimated AOT
  (each pixel's own column, `aot_at_altitude`) over the composite's RTC (the surface reflectance
  of its last clear date), so that the aerosol path reflectance, which differs between the dates and
  is a large part of a shadow's red signal, is out of the ratio; with "rayleigh" today's TOCR over the
  composite's RCR, MAJA's darkening of the coarse test;
- the cirrus test (maja-l2a.md §1.5) on the cirrus band at its own resolution (S2 B10, 60 m), on
  the coarse altitude resampled to that grid, repeated onto the requested grid; None when the
  product has no cirrus band or the resolutions are not integer multiples.

Rows are computed on demand, so that `group_masks` can work in strips: the device holds the source
rows of one strip only (S2 R2 strip of r rows: 2 bands × 2r rows × 2 × the width at 10 m).
Pure array code on the backend; no file is opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from gpumaja.atmosphere.aot import aot_at_altitude
from gpumaja.atmosphere.gas import gas_correction
from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.backend import Backend
from gpumaja.composite import CompositeState
from gpumaja.errors import InputError
from gpumaja.masks.cirrus import cirrus_mask
from gpumaja.masks.cloud_fine import fine_cloud_support, fine_shadow_support
from gpumaja.model.params import L2Params
from gpumaja.pipeline.l2a_group import factor, float_rows
from gpumaja.pipeline.l2a_inputs import DateInputs
from gpumaja.radiometry.coarse import block_mean


def _ratio(big: float, small: float) -> int | None:
    """big / small when it is a positive integer, else None."""
    r = big / small
    k = round(r)
    return k if k >= 1 and abs(r - k) < 1e-6 else None


def _block_mean_rows(stack, k: int, ny: int, nx: int, backend: Backend):
    """(nb, rows, cols) -> (nb, ny, nx) means of k x k blocks (`radiometry.coarse.block_mean`; a block
    holding a NaN pixel is NaN); cells beyond the source are NaN."""
    if k == 1:
        return stack[:, :ny, :nx]
    xp = backend.xp
    mean, _ = block_mean(stack, k, min_valid_fraction=1.0, backend=backend)
    out = xp.full((stack.shape[0], ny, nx), np.float32(np.nan), dtype=np.float32)
    h, w = min(mean.shape[1], ny), min(mean.shape[2], nx)
    out[:, :h, :w] = mean[:, :h, :w]
    return out


@dataclass(eq=False)
class FineCloudEvidence:
    inp: DateInputs
    params: L2Params  # with the sensor's band roles
    backend: Backend
    ml: MiniLUT  # the date's mini-LUT reduced to (fine_blue_band, fine_red_band)
    smac: np.ndarray  # (2, 49) SMAC coefficients of the two bands
    air_mass: np.ndarray  # (2,)
    water_vapour: Any  # (cy, cx) coarse
    altitude: Any  # (cy, cx) coarse
    ref_hot: Any | None  # (cy, cx) composite B − 0.5 R (NaN = no value); None: no composite
    age_days: Any | None  # (cy, cx) float32 composite age, NaN where no value
    ref_red: Any | None  # (cy, cx) composite RTC ("surface") or RCR in fine_red_band (NaN = no value); None: none
    aot0: Any | None = None  # (cy, cx) the date's coarse AOT reduced to sea level ("surface" darkening)

    @classmethod
    def build(cls, inp: DateInputs, params: L2Params, backend: Backend, ml: MiniLUT, smac: np.ndarray,
              air_mass: np.ndarray, lut_index: dict[str, int], water_vapour, altitude,
              composite: CompositeState | None, day: int, aot0=None) -> FineCloudEvidence:
        """`aot0`: the date's coarse AOT reduced to sea level (`l2a_date`), needed by the "surface"
        shadow darkening."""
        xp = backend.xp
        surface = params.fine_shadow_darkening == "surface"
        if surface and aot0 is None:
            raise InputError("FineCloudEvidence.build: the 'surface' shadow darkening needs the date's AOT")
        bands = (params.fine_blue_band, params.fine_red_band)
        rows = [lut_index[b] for b in bands]
        ref = age = ref_red = None
        if composite is not None:
            ci = {b: i for i, b in enumerate(composite.bands)}
            if all(b in ci for b in bands):
                blue, red = composite.rcr[ci[bands[0]]], composite.rcr[ci[bands[1]]]
                ref = xp.where(composite.ndt, np.float32(np.nan), blue - np.float32(0.5) * red).astype(np.float32)
                age = xp.where(composite.ndt, np.float32(np.nan), composite.age(day).astype(np.float32))
                red_ref = composite.rtc[ci[bands[1]]] if surface else red
                ref_red = xp.where(composite.ndt, np.float32(np.nan), red_ref).astype(np.float32)
        return cls(inp, params, backend, ml.subset(bands), smac[rows], air_mass[rows], water_vapour, altitude,
                   ref, age, ref_red, aot0 if surface else None)

    def _source(self, band_a: str, band_b: str | None = None):
        for name, g in self.inp.groups.items():
            if band_a in g.bands and (band_b is None or band_b in g.bands):
                return name, g
        return None, None

    def _tocr_rows(self, grid, y0: int, y1: int):
        """(B − 0.5 R of today's TOCR, today's red: TOC at the date's AOT for the "surface" darkening,
        else TOCR) on rows y0:y1 of `grid` (None if no group holds both bands at a finer or equal
        integer-multiple resolution)."""
        xp, p = self.backend.xp, self.params
        name, src = self._source(p.fine_blue_band, p.fine_red_band)
        if src is None:
            return None
        k = _ratio(grid.resolution, src.grid.resolution)
        if k is None:
            return None
        sy0, sy1 = k * y0, min(src.grid.shape[0], k * y1)
        if sy1 <= sy0:
            nan = xp.full((y1 - y0, grid.shape[1]), np.float32(np.nan), dtype=np.float32)
            return nan, nan.copy()
        f = factor(self.inp.coarse_grid.resolution, src.grid.resolution)
        sel = [src.bands.index(b) for b in (p.fine_blue_band, p.fine_red_band)]
        alt = xp.asarray(self.inp.terrain[name].altitude[sy0:sy1], dtype=np.float32)
        wv = float_rows(self.water_vapour, f, src.grid.shape, sy0, sy1, xp).astype(np.float32)
        toas = gas_correction(src.toa[sel, sy0:sy1], alt, wv, self.smac, self.air_mass, p.ozone_amount_default,
                              water_default=p.water_amount_default, backend=self.backend)
        aot = xp.full(alt.shape, np.float32(p.rayleigh_correction_default_aot), dtype=np.float32)
        tocr = apply_minilut(toas, alt, aot, self.ml, backend=self.backend)
        if self.aot0 is None:
            hot_red = xp.stack([tocr[0] - np.float32(0.5) * tocr[1], tocr[1]])
            del tocr
        else:
            hot = tocr[0] - np.float32(0.5) * tocr[1]
            del tocr, aot
            aot = aot_at_altitude(float_rows(self.aot0, f, src.grid.shape, sy0, sy1, xp), alt, p, xp)
            red = apply_minilut(toas[1:], alt, aot, self.ml.subset((p.fine_red_band,)), backend=self.backend)[0]
            hot_red = xp.stack([hot, red])
            del hot, red
        hot, red = _block_mean_rows(hot_red, k, y1 - y0, grid.shape[1], self.backend)
        return hot, red

    def support_rows(self, grid, y0: int, y1: int):
        """(`fine_cloud_support` bits, `fine_shadow_support` codes) on rows y0:y1 of `grid`, or
        (None, None) without a composite or the fine bands."""
        if self.ref_hot is None:
            return None, None
        rows = self._tocr_rows(grid, y0, y1)
        if rows is None:
            return None, None
        hot, red = rows
        xp = self.backend.xp
        f = factor(self.inp.coarse_grid.resolution, grid.resolution)
        ref = float_rows(self.ref_hot, f, grid.shape, y0, y1, xp)
        age = float_rows(self.age_days, f, grid.shape, y0, y1, xp)
        cloud = fine_cloud_support(hot, ref, age, self.params, self.backend)
        del ref, age
        ref_red = float_rows(self.ref_red, f, grid.shape, y0, y1, xp)
        return cloud, fine_shadow_support(red, ref_red, self.params.proj_shad_darkening_max, self.backend)

    def cirrus_rows(self, grid, y0: int, y1: int):
        """The cirrus test at the cirrus band's resolution on rows y0:y1 of `grid`, or None."""
        xp, p = self.backend.xp, self.params
        if not p.cirrus_band:
            return None
        _, src = self._source(p.cirrus_band)
        if src is None:
            return None
        m = _ratio(src.grid.resolution, grid.resolution)
        f = _ratio(self.inp.coarse_grid.resolution, src.grid.resolution)
        if m is None or f is None:
            return None
        cy0, cy1 = y0 // m, min(src.grid.shape[0], -(-y1 // m))
        toa = src.toa[src.bands.index(p.cirrus_band), cy0:cy1]
        alt = float_rows(self.altitude, f, src.grid.shape, cy0, cy1, xp)
        mask = cirrus_mask(toa, alt, ~xp.isnan(toa), p, xp)
        if m > 1:
            mask = xp.repeat(xp.repeat(mask, m, axis=0), m, axis=1)
        out = xp.zeros((y1 - y0, grid.shape[1]), bool)
        part = mask[y0 - cy0 * m:y1 - cy0 * m, :grid.shape[1]]
        out[:part.shape[0], :part.shape[1]] = part
        return out

    def rows(self, grid, y0: int, y1: int) -> tuple[Any | None, Any | None, Any | None]:
        """(cloud support bits, cirrus, shadow support codes) on rows y0:y1 of `grid`, each or None."""
        cloud, shadow = self.support_rows(grid, y0, y1)
        return cloud, self.cirrus_rows(grid, y0, y1), shadow
