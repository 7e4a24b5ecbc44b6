"""A MAJA GIPP LUT set as an `AtmosphereLUT` (maja-l2a.md §3.1 ReduceLut, §3.3 SMAC, §3.4 water vapour).

`GippTables` holds the tables of one sensor and aerosol model as read by `gpumaja.io.gipp.read_gipp_tables`
(pure float32 NumPy arrays, axes in canonical order, no file handles). `GippLUT` computes with them:
- `reduce`: the 6-D TOCR table interpolated (multilinear, clamped) at θs and each band's θv and Δφ gives the
  per-band inverse table over (altitude, AOT, TOA*); DIRT/DIFT at the band's θv give the transmissions of the
  environment correction (§3.6), at θs those of the slope correction (§3.7); ALBD is the spherical albedo.
- `smac`: the (nb, 49) SMAC coefficients in classic SMAC row order (§3.3).
- `water_vapour`: W = WATV(θs, θv, ρ(B9)/ρ(B8A)) in g/cm², bilinear in the two angles and linear in the ratio;
  negative -> NaN (§3.4). Clipping to `Water_Vapor_Max_Threshold` and gap filling belong to the water vapour
  module.
Altitudes stay in metres, as in the GIPP headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpumaja.atmosphere.interp import interp_multilinear
from gpumaja.atmosphere.minilut import SMAC_NCOEF, MiniLUT, fold_relative_azimuth
from gpumaja.backend import array_module
from gpumaja.errors import InputError

# Canonical axis order of each table; names are the GIPP `LUT_Indexes` tags without "_Indexes".
TOC_AXES = ("Solar_Zenith_Angle", "View_Zenith_Angle", "Relative_Azimuth_Angle", "Altitude", "AOT",
            "TOA_Reflectance")
TRANSMISSION_AXES = ("Zenithal_Angle", "Altitude", "AOT")  # L2DIRT and L2DIFT
ALBEDO_AXES = ("Altitude", "AOT")
WATV_AXES = ("Solar_Zenith_Angle", "View_Zenith_Angle", "Reflectance_Ratio")


def _frozen(a: Any, dtype=np.float32) -> np.ndarray:
    out = np.ascontiguousarray(a, dtype=dtype)
    if out is a:
        out = out.copy()
    out.flags.writeable = False
    return out


def _check_table(name: str, values: np.ndarray, axes: tuple[np.ndarray, ...], lead: tuple[int, ...]) -> None:
    expected = lead + tuple(ax.size for ax in axes)
    if values.shape != expected:
        raise ValueError(f"GippTables.{name} has shape {values.shape}, expected {expected} from its axes")
    for ax in axes:
        if ax.ndim != 1 or ax.size < 1 or np.any(np.diff(ax) <= 0):
            raise ValueError(f"GippTables.{name}: every axis must be strictly increasing")


@dataclass(frozen=True, eq=False)
class GippTables:
    """The tables of one MAJA GIPP set (one platform, one aerosol model); float32, read-only arrays.

    Band tables share the band order of `bands` (the L2TOCR `Packaged_DBL_File` order). Axes follow the
    canonical orders TOC_AXES, TRANSMISSION_AXES, ALBEDO_AXES, WATV_AXES.
    """

    platform: str  # "S2A", "S2B", ...
    model: str  # aerosol model, e.g. "CONTINEN"
    source: str  # e.g. "MAJA GIPP S2A CONTINEN 10005 (/path/to/gipp)"
    bands: tuple[str, ...]  # product band names: "B01" ... "B12", "B8A"
    wavelengths_nm: tuple[float, ...]  # central wavelength from the LUT file names (nan if none)
    toc_axes: tuple[np.ndarray, ...]  # θs (deg), θv (deg), Δφ (deg), altitude (m), AOT, TOA*
    toc: np.ndarray  # (nb, nθs, nθv, nΔφ, nalt, naot, ntoa) surface reflectance (inverse LUT)
    dirt_axes: tuple[np.ndarray, ...]  # zenith (deg), altitude (m), AOT
    dirt: np.ndarray  # (nb, nzen, nalt, naot) direct transmission
    dift_axes: tuple[np.ndarray, ...]
    dift: np.ndarray  # (nb, nzen, nalt, naot) diffuse transmission
    albd_axes: tuple[np.ndarray, ...]  # altitude (m), AOT
    albd: np.ndarray  # (nb, nalt, naot) spherical albedo
    smac: np.ndarray  # (nb, 49) SMAC coefficients, classic row order (minilut.SMAC_ROWS)
    watv_axes: tuple[np.ndarray, ...] = ()  # θs (deg), θv (deg), ratio; empty without a WATV LUT
    watv: np.ndarray | None = None  # (nθs, nθv, nratio) water vapour, g/cm2
    files: dict[str, str] = field(default_factory=dict)  # GIPP type -> file name, for provenance

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "bands", tuple(self.bands))
        set_(self, "wavelengths_nm", tuple(float(w) for w in self.wavelengths_nm))
        for name in ("toc", "dirt", "dift", "albd", "smac"):
            set_(self, name, _frozen(getattr(self, name)))
        for name in ("toc_axes", "dirt_axes", "dift_axes", "albd_axes", "watv_axes"):
            set_(self, name, tuple(_frozen(ax) for ax in getattr(self, name)))
        nb = len(self.bands)
        if len(self.wavelengths_nm) != nb:
            raise ValueError("GippTables: one wavelength per band expected")
        _check_table("toc", self.toc, self.toc_axes, (nb,))
        _check_table("dirt", self.dirt, self.dirt_axes, (nb,))
        _check_table("dift", self.dift, self.dift_axes, (nb,))
        _check_table("albd", self.albd, self.albd_axes, (nb,))
        if len(self.toc_axes) != len(TOC_AXES) or len(self.dirt_axes) != len(TRANSMISSION_AXES) \
                or len(self.dift_axes) != len(TRANSMISSION_AXES) or len(self.albd_axes) != len(ALBEDO_AXES):
            raise ValueError("GippTables: wrong number of axes for a table")
        if self.smac.shape != (nb, SMAC_NCOEF):
            raise ValueError(f"GippTables.smac has shape {self.smac.shape}, expected {(nb, SMAC_NCOEF)}")
        if self.watv is not None:
            set_(self, "watv", _frozen(self.watv))
            if len(self.watv_axes) != len(WATV_AXES):
                raise ValueError("GippTables: wrong number of axes for watv")
            _check_table("watv", self.watv, self.watv_axes, ())
        set_(self, "files", dict(self.files))

    def index(self, band: str) -> int:
        try:
            return self.bands.index(band)
        except ValueError:
            raise InputError(
                f"the {self.source} LUT has no band {band!r} (it has {', '.join(self.bands)})"
            ) from None


def _on_grid(table: np.ndarray, axes: tuple[np.ndarray, ...], altitude: np.ndarray, aot: np.ndarray) -> np.ndarray:
    """A (nalt', naot') table brought onto the (altitude, aot) nodes of the TOC table (identity when equal)."""
    if axes[0].shape == altitude.shape and axes[1].shape == aot.shape \
            and np.array_equal(axes[0], altitude) and np.array_equal(axes[1], aot):
        return table
    h, a = np.meshgrid(altitude, aot, indexing="ij")
    return interp_multilinear(table, axes, [h, a])


class GippLUT:
    """`AtmosphereLUT` over the tables of a MAJA GIPP set (maja-l2a.md §3.1, §3.3, §3.4)."""

    def __init__(self, tables: GippTables):
        self.tables = tables
        self.sensor = tables.platform
        self.source = tables.source
        self.bands = tables.bands

    def __repr__(self) -> str:
        return f"GippLUT({self.source!r}, bands={','.join(self.bands)})"

    def _band_angle(self, angles: dict[str, float], band: str, what: str) -> float:
        try:
            return float(angles[band])
        except KeyError:
            raise InputError(f"reduce: no {what} given for band {band}") from None

    def reduce(
        self,
        sun_zenith: float,
        view_zenith: dict[str, float],
        relative_azimuth: dict[str, float],
        bands: tuple[str, ...] | None = None,
    ) -> MiniLUT:
        """The mini-LUT of one geometry (ReduceLut, maja-l2a.md §3.1): angles in degrees, relative azimuth
        |sun az - view az| (folded into [0, 180] here if it is not); every angle is clamped to its axis."""
        t = self.tables
        bands = self.bands if bands is None else tuple(bands)
        ts_ax, tv_ax, dphi_ax, alt_ax, aot_ax, toa_ax = t.toc_axes
        theta_s = float(sun_zenith)
        toc, dirt_v, dift_v, dirt_s, dift_s, albd = [], [], [], [], [], []
        for band in bands:
            i = t.index(band)
            theta_v = self._band_angle(view_zenith, band, "viewing zenith")
            dphi = fold_relative_azimuth(self._band_angle(relative_azimuth, band, "relative azimuth"), 0.0)
            toc.append(interp_multilinear(t.toc[i], (ts_ax, tv_ax, dphi_ax), (theta_s, theta_v, dphi)))
            dirt_i = _on_grid_transmission(t.dirt[i], t.dirt_axes, alt_ax, aot_ax)
            dift_i = _on_grid_transmission(t.dift[i], t.dift_axes, alt_ax, aot_ax)
            zen_dir, zen_dif = t.dirt_axes[0], t.dift_axes[0]
            dirt_v.append(interp_multilinear(dirt_i, (zen_dir,), (theta_v,)))
            dift_v.append(interp_multilinear(dift_i, (zen_dif,), (theta_v,)))
            dirt_s.append(interp_multilinear(dirt_i, (zen_dir,), (theta_s,)))
            dift_s.append(interp_multilinear(dift_i, (zen_dif,), (theta_s,)))
            albd.append(_on_grid(t.albd[i], t.albd_axes, alt_ax, aot_ax))

        def stack(parts: list[np.ndarray]) -> np.ndarray:
            return np.ascontiguousarray(np.stack(parts), dtype=np.float32)

        return MiniLUT(
            bands=bands, altitude=alt_ax.copy(), aot=aot_ax.copy(), toa=toa_ax.copy(), toc=stack(toc),
            dirt_view=stack(dirt_v), dift_view=stack(dift_v), dirt_sun=stack(dirt_s), dift_sun=stack(dift_s),
            albedo=stack(albd),
        )

    def smac(self, bands: tuple[str, ...]) -> np.ndarray:
        """(nb, 49) float32 SMAC coefficients of `bands`, classic SMAC row order (maja-l2a.md §3.3)."""
        idx = [self.tables.index(b) for b in bands]
        return np.ascontiguousarray(self.tables.smac[idx], dtype=np.float32)

    def water_vapour(self, sun_zenith: float, view_zenith: float, ratio):
        """Water vapour (g/cm2) = WATV(θs, θv, ratio) (maja-l2a.md §3.4): bilinear in the scalar angles, linear
        in the ratio ρ_TOA(WV band)/ρ_TOA(reference band), each clamped to its axis; NaN where the table gives
        a negative value or the ratio is NaN. `ratio`: NumPy or CuPy array (same module and shape out), float32.
        None when the GIPP set has no WATV LUT."""
        t = self.tables
        if t.watv is None:
            return None
        ts_ax, tv_ax, ratio_ax = t.watv_axes
        curve = interp_multilinear(t.watv, (ts_ax, tv_ax), (float(sun_zenith), float(view_zenith)))
        xp = array_module(ratio)
        w = interp_multilinear(xp.asarray(curve), (xp.asarray(ratio_ax),), (xp.asarray(ratio),))
        return xp.where(w < 0, xp.float32(np.nan), w).astype(xp.float32, copy=False)


def _on_grid_transmission(table: np.ndarray, axes: tuple[np.ndarray, ...], altitude: np.ndarray,
                          aot: np.ndarray) -> np.ndarray:
    """A (nzen, nalt', naot') transmission table brought onto the TOC (altitude, aot) nodes."""
    if np.array_equal(axes[1], altitude) and np.array_equal(axes[2], aot):
        return table
    moved = np.moveaxis(table, 0, -1)  # (nalt', naot', nzen)
    return np.moveaxis(_on_grid(moved, axes[1:], altitude, aot), -1, 0)
