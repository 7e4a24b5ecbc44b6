"""Our 6S-built LUT (tables from gpumaja/lut/build.py) as an `AtmosphereLUT`.

Stored quantities (all band-integrated by 6S, no gaseous absorption, continental aerosol; AOT at
550 nm for the column above the target; see gpumaja/lut/grid.py for why these nodes):

- path_nadir[b, theta_s, alt, aot]: path reflectance at theta_v = 0;
- path_off[b, theta_s, dphi in (0, 90, 180), alt, aot]: at theta_v = theta_off (12 deg);
- t_sun[b, theta_s, alt, aot]: total (direct + diffuse) transmission at zenith theta_s; with
  t_view_off[b, alt, aot] at theta_off it samples the one transmission function T(theta) (the same
  for up- and down-going light by reciprocity) on the zenith axis (theta_s nodes + theta_off);
- albedo[b, alt, aot] spherical albedo, tau[b, alt, aot] total optical depth (direct transmission
  exp(-tau / cos theta)).

`reduce` evaluates, for one date's geometry:

    path(theta_v, dphi) = c + (A0 - c) x + A1 s cos(dphi) + A2 s^2 cos(2 dphi)
    with c = path_nadir, x = (1/cos theta_v - 1) / (1/cos theta_off - 1), s = sin theta_v / sin theta_off,
    A0 = ((P0 + P180)/2 + P90)/2, A1 = (P0 - P180)/2, A2 = ((P0 + P180)/2 - P90)/2 from the three
    azimuths (the Fourier series of the path radiance in dphi truncated after cos 2 dphi),

(every quantity first interpolated in theta_s: linearly in 1/cos theta_s, transmissions in log), then
resamples (altitude, AOT) onto finer axes (500 m, 0.05) by PCHIP in pressure and AOT, and inverts the coupling formula of
maja-l2a.md §3.6 for a uniform surface on a TOA* axis:

    rho* = path + T(theta_s) T(theta_v) rho_s / (1 - S rho_s)
    =>  y = (rho* - path) / (T_s T_v),  rho_s = y / (1 + S y),

which is what MAJA's TOCR table stores. DIRT = exp(-tau/mu), DIFT = T - DIRT.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.backend import array_module

TOA_AXIS = np.round(np.arange(-0.2, 1.2001, 0.02), 4).astype(np.float32)


@dataclass(frozen=True, eq=False)
class SixSTables:
    sensor: str
    bands: tuple[str, ...]
    sun_zenith: np.ndarray
    view_zenith_off: float
    rel_azimuth: np.ndarray
    altitude: np.ndarray
    aot: np.ndarray
    path_nadir: np.ndarray
    path_off: np.ndarray
    t_sun: np.ndarray
    t_view_off: np.ndarray
    albedo: np.ndarray
    tau: np.ndarray
    gas_bands: tuple[str, ...]
    smac_table: np.ndarray
    watv_table: np.ndarray | None
    watv_sun_zenith: np.ndarray
    watv_view_zenith: np.ndarray
    watv_ratio: np.ndarray
    wv_band: str | None
    wv_reference_band: str | None
    meta: dict = field(default_factory=dict)


def _lin_weights(axis: np.ndarray, x: float) -> tuple[int, float]:
    """Lower index and weight of the upper node for linear interpolation, clamped to the axis."""
    x = min(max(float(x), float(axis[0])), float(axis[-1]))
    i = int(np.clip(np.searchsorted(axis, x, side="right") - 1, 0, axis.size - 2))
    w = (x - float(axis[i])) / (float(axis[i + 1]) - float(axis[i]))
    return i, w


def _sec(theta_deg) -> np.ndarray:
    return 1.0 / np.cos(np.radians(np.asarray(theta_deg, np.float64)))


def _at_sun(table: np.ndarray, axis: np.ndarray, theta: float, log: bool = False) -> np.ndarray:
    """table[:, theta, ...] at theta, interpolated linearly in 1/cos(theta) (path reflectance grows
    about linearly with the air mass), or its logarithm linearly (transmissions ~ exp(-c / cos))."""
    i, w = _lin_weights(_sec(axis), float(_sec(theta)))
    if log:
        return np.exp(np.log(table[:, i]) * (1.0 - w) + np.log(table[:, i + 1]) * w)
    return table[:, i] * (1.0 - w) + table[:, i + 1] * w


# The mini-LUT is resampled from the 6S nodes onto these finer (altitude, AOT) axes with shape-preserving
# cubic interpolation (PCHIP) in the natural variables -- pressure for altitude (Rayleigh optical depth
# is proportional to it), AOT for the aerosol load, log for transmissions -- so that the per-pixel
# trilinear interpolation of the kernels stays accurate between the sparse 6S nodes.
FINE_ALTITUDE_STEP_M = 500.0
FINE_AOT_STEP = 0.05


def _fine_axis(nodes: np.ndarray, step: float) -> np.ndarray:
    lo, hi = round(float(nodes[0]), 6), round(float(nodes[-1]), 6)
    n = int(round((hi - lo) / step))
    axis = np.union1d(np.round(lo + step * np.arange(n + 1), 6), np.round(nodes.astype(np.float64), 6))
    axis = axis[(axis >= round(lo, 6)) & (axis <= round(hi, 6))]
    keep = np.concatenate([[True], np.diff(axis) > 1e-5])  # float32 node values vs the regular steps
    return axis[keep]


def _resample_alt_aot(table: np.ndarray, alt: np.ndarray, aot: np.ndarray, alt_f: np.ndarray, aot_f: np.ndarray,
                      log: bool = False) -> np.ndarray:
    """(..., n_alt, n_aot) on the node axes -> (..., n_alt_f, n_aot_f), PCHIP along AOT then along pressure."""
    from scipy.interpolate import PchipInterpolator

    from gpumaja.atmosphere.pressure import pressure_ratio

    v = np.log(np.maximum(table, 1e-12)) if log else table
    v = PchipInterpolator(aot.astype(np.float64), v, axis=-1)(aot_f)
    if alt.size >= 2:
        p, pf = pressure_ratio(alt), pressure_ratio(alt_f)  # decreasing with altitude
        v = PchipInterpolator(p[::-1], np.flip(v, axis=-2), axis=-2)(pf)
    return np.exp(v) if log else v


class SixSLUT:
    """`AtmosphereLUT` over `SixSTables`."""

    def __init__(self, tables: SixSTables, source: str | None = None):
        self.tables = tables
        self.sensor = tables.sensor
        self.bands = tuple(tables.bands)
        self.source = source or f"gpumaja 6S LUT {tables.sensor} continental ({tables.meta.get('built', '?')})"
        t = tables
        # transmission T(theta): zenith axis = sun nodes + theta_off, sorted
        zen = np.concatenate([t.sun_zenith.astype(np.float64), [t.view_zenith_off]])
        tt = np.concatenate([t.t_sun.astype(np.float64), t.t_view_off[:, None].astype(np.float64)], axis=1)
        order = np.argsort(zen, kind="stable")
        zen, tt = zen[order], tt[:, order]
        keep = np.concatenate([[True], np.diff(zen) > 0])
        self._zen, self._t = zen[keep], tt[:, keep]

    def _bands(self, bands) -> list[int]:
        bands = self.bands if bands is None else tuple(bands)
        idx = []
        for b in bands:
            if b not in self.bands:
                raise KeyError(f"LUT {self.source} has no band {b!r}")
            idx.append(self.bands.index(b))
        return idx

    def transmission(self, theta: float, idx: list[int]) -> np.ndarray:
        """Total transmission (nb, alt, aot) at a zenith angle."""
        return _at_sun(self._t[idx], self._zen, theta, log=True)

    def path(self, theta_s: float, theta_v: float, dphi: float, idx: list[int]) -> np.ndarray:
        t = self.tables
        c = _at_sun(t.path_nadir[idx].astype(np.float64), t.sun_zenith, theta_s)
        p = _at_sun(t.path_off[idx].astype(np.float64), t.sun_zenith, theta_s)  # (nb, 3, alt, aot)
        p0, p90, p180 = p[:, 0], p[:, 1], p[:, 2]
        a0 = ((p0 + p180) / 2.0 + p90) / 2.0
        a1 = (p0 - p180) / 2.0
        a2 = ((p0 + p180) / 2.0 - p90) / 2.0
        off = math.radians(t.view_zenith_off)
        tv = math.radians(abs(theta_v))
        x = (1.0 / math.cos(tv) - 1.0) / (1.0 / math.cos(off) - 1.0)
        s = math.sin(tv) / math.sin(off)
        d = math.radians(dphi)
        return c + (a0 - c) * x + a1 * s * math.cos(d) + a2 * s * s * math.cos(2.0 * d)

    def reduce(self, sun_zenith, view_zenith, relative_azimuth, bands=None) -> MiniLUT:
        names = self.bands if bands is None else tuple(bands)
        idx = self._bands(names)
        nb = len(idx)
        t = self.tables
        alt, aot = t.altitude.astype(np.float64), t.aot.astype(np.float64)
        alt_f, aot_f = _fine_axis(alt, FINE_ALTITUDE_STEP_M), _fine_axis(aot, FINE_AOT_STEP)

        def fine(table, log=False):
            return _resample_alt_aot(table, alt, aot, alt_f, aot_f, log)

        toc = np.empty((nb, alt_f.size, aot_f.size, TOA_AXIS.size), np.float32)
        dirt_v = np.empty((nb, alt_f.size, aot_f.size))
        dift_v = np.empty_like(dirt_v)
        t_s_all = fine(self.transmission(sun_zenith, idx), log=True)
        tau = fine(t.tau[idx].astype(np.float64))
        dirt_s = np.exp(-tau / math.cos(math.radians(sun_zenith)))
        albedo = fine(t.albedo[idx].astype(np.float64))
        toa = TOA_AXIS[None, None, :].astype(np.float64)
        for k, (b, name) in enumerate(zip(idx, names)):
            vz, az = float(view_zenith[name]), float(relative_azimuth[name])
            path = fine(self.path(sun_zenith, vz, az, [b])[0])
            tv = fine(self.transmission(vz, [b])[0], log=True)
            dv = np.exp(-tau[k] / math.cos(math.radians(vz)))
            dirt_v[k], dift_v[k] = dv, tv - dv
            y = (toa - path[..., None]) / (t_s_all[k] * tv)[..., None]
            toc[k] = (y / (1.0 + albedo[k][..., None] * y)).astype(np.float32)
        f32 = np.float32
        return MiniLUT(
            tuple(names), alt_f.astype(f32), aot_f.astype(f32), TOA_AXIS.copy(), toc,
            dirt_v.astype(f32), dift_v.astype(f32), dirt_s.astype(f32), (t_s_all - dirt_s).astype(f32),
            albedo.astype(f32),
        )

    def smac(self, bands) -> np.ndarray:
        out = []
        for b in bands:
            if b not in self.tables.gas_bands:
                raise KeyError(f"LUT {self.source} has no SMAC coefficients for band {b!r}")
            out.append(self.tables.smac_table[self.tables.gas_bands.index(b)])
        return np.asarray(out, np.float32)

    def water_vapour(self, sun_zenith, view_zenith, ratio):
        t = self.tables
        if t.watv_table is None:
            return None
        xp = array_module(ratio)
        i, wi = _lin_weights(t.watv_sun_zenith, sun_zenith)
        j, wj = _lin_weights(t.watv_view_zenith, view_zenith)
        w3 = t.watv_table.astype(np.float64)
        table = ((1 - wi) * ((1 - wj) * w3[i, j] + wj * w3[i, j + 1])
                 + wi * ((1 - wj) * w3[i + 1, j] + wj * w3[i + 1, j + 1]))  # (n_ratio,)
        r = xp.asarray(ratio, dtype=xp.float32)
        w = xp.interp(r, xp.asarray(t.watv_ratio), xp.asarray(table.astype(np.float32)))
        return xp.where(w < 0, xp.float32(np.nan), w).astype(xp.float32)
