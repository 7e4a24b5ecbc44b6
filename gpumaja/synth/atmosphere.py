"""A small physical forward radiative-transfer model for Sentinel-2, tabulated as a LUT.

This is the stand-in for the 6S-built LUT of a later issue: it gives the synthetic L1C generator a
TOA reflectance that comes from physics (optical depths, phase functions, transmissions), in the same
quantities and the same coupling formula that MAJA's LUTs use (maja-l2a.md §3.1, §3.3, §3.6), so a
later L2A can invert it exactly with :meth:`ForwardLUT.surface_reflectance`.

Atmosphere (one homogeneous layer of Rayleigh + aerosol, gases above it):

- Rayleigh optical depth: Bodhaine et al. (1999, J. Atmos. Ocean. Tech. 16, 1854), eq. 30, sea level,
  scaled by the pressure ratio P/P0 with P = 1013.25 (1 - 0.0065 h / 288.15)^5.31 hPa (the pressure law
  of MAJA's vnsPressureFunctor, maja-l2a.md §3.3). Depolarisation factor 0.0279 in the phase function.
- Aerosol: "continental"-like, AOT given at 550 nm for the column above the pixel, Angstrom law with
  exponent 1.3, single-scattering albedo 0.90, Henyey-Greenstein asymmetry parameter 0.65.
- Path reflectance = exact single scattering of the mixed layer,
      rho_1 = (tau_R P_R(Theta) + w_a tau_a P_HG(Theta)) / (4 (mu_s + mu_v)) * (1 - exp(-tau M)) / tau,
  M = 1/mu_s + 1/mu_v, times a multiple-scattering factor f_ms = sqrt(f(mu_s) f(mu_v)), where f(mu) is
  the ratio of the all-orders to the first-order hemispheric reflectance of the same layer in the
  delta-Eddington two-stream model (Joseph, Wiscombe & Weinman 1976, J. Atmos. Sci. 33, 2452; closed
  form of Meador & Weaver 1980, J. Atmos. Sci. 37, 630).
- Direct transmission exp(-tau/mu); diffuse transmission t_d(mu) = T_2s(mu) - exp(-tau/mu) with
  T_2s the delta-Eddington total transmission; spherical albedo S = 2 int_0^1 R_2s(mu) mu dmu
  (Gauss-Legendre, 16 nodes). These are the DIRT / DIFT / ALBD quantities of MAJA's GIPPs.
- Gaseous transmission in SMAC form (Rahman & Dedieu 1994; maja-l2a.md §3.3):
      t_g = exp(a_O3 (U_O3 m)^n_O3 + a_H2O (U_H2O m)^n_H2O + sum_g a_g (Pt^p_g m)^n_g),
  m = 1/mu_s + 1/mu_v, Pt = P/1013.25, with the Sentinel-2 SMAC coefficients of `SMAC_GAS` (values of
  the S2 SMAC coefficient set distributed with SMAC / SL2P; a_H2O(B09) = -0.68 and a_H2O(B10) = -3.0
  agree with the MAJA GIP_L2SMAC values quoted in maja-l2a.md §3.3).

Coupling with the surface (MAJA's environment model, maja-l2a.md §3.6):

    rho_TOA = t_g [rho_path + (T_down_pix e^{-tau/mu_v} rho_s + T_down t_dif_up rho_env) / (1 - S rho_env)]

with T_down = e^{-tau/mu_s} + t_dif(mu_s); T_down_pix = e^{-tau/mu_s} * sun + t_dif(mu_s) equals T_down
except in a cloud shadow, where `sun` < 1 scales the direct beam reaching the pixel. With sun = 1 this
is the formula whose inverse is MAJA's SRE (§3.6); :meth:`ForwardLUT.surface_reflectance` implements
that inverse.

Limits: one homogeneous layer (no vertical profile of aerosol vs molecules), no polarisation, no
BRDF (Lambertian surface), a two-stream multiple-scattering correction (a few % error on the path
reflectance at large zenith angles compared with 6S), gases treated as a screen above the scattering
layer. It will be replaced by the 6S LUT; the interface (path, transmissions, spherical albedo, t_g)
stays the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# --------------------------------------------------------------------------------------------------
# Band constants
# --------------------------------------------------------------------------------------------------

S2_BAND_NAMES: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)
# S2A central wavelengths (nm), from MTD_MSIL1C.xml Spectral_Information CENTRAL
S2_WAVELENGTH_NM: dict[str, float] = dict(zip(S2_BAND_NAMES, (
    442.7, 492.7, 559.8, 664.6, 704.1, 740.5, 782.8, 832.8, 864.7, 945.1, 1373.5, 1613.7, 2202.4,
)))

# SMAC gas coefficients per S2 band:
# (a_h2o, n_h2o, a_o3, n_o3, a_o2, n_o2, p_o2, a_co2, n_co2, p_co2, a_ch4, n_ch4, p_ch4,
#  a_no2, n_no2, p_no2, a_co, n_co, p_co)
SMAC_GAS: dict[str, tuple[float, ...]] = {
    "B01": (0.0, 0.0, -0.002656, 0.999893) + (0.0,) * 15,
    "B02": (0.0, 0.0, -0.027266, 0.995324) + (0.0,) * 15,
    "B03": (-0.000757, 0.901893, -0.098738, 0.998703) + (0.0,) * 15,
    "B04": (-0.003462, 0.768631, -0.049992, 0.998946) + (0.0,) * 15,
    "B05": (-0.013712, 0.767937, -0.020446, 0.999927) + (0.0,) * 15,
    "B06": (-0.012971, 0.788635, -0.010867, 1.0) + (0.0,) * 15,
    "B07": (-0.003998, 0.756187, 0.0, 0.0, -0.000134, 0.961539, 2.876415) + (0.0,) * 12,
    "B08": (-0.028164, 0.585874) + (0.0,) * 17,
    "B8A": (-0.000385, 0.91082, 0.0, 0.0, -0.00003, 0.994903, 2.759438) + (0.0,) * 12,
    "B09": (-0.680923, 0.475016) + (0.0,) * 17,
    "B10": (-3.001701, 0.424001) + (0.0,) * 17,
    "B11": (-0.000631, 0.949862, 0.0, 0.0, 0.0, 0.0, 0.0, -0.016262, 0.738485, 1.358547,
            -0.003887, 0.871517, 1.133302) + (0.0,) * 6,
    "B12": (-0.017563, 0.659149, 0.0, 0.0, 0.0, 0.0, 0.0, -0.000137, 0.945566, 1.711058,
            -0.020708, 0.807874, 1.212497, -0.001723, 0.943806, 1.032878) + (0.0,) * 3,
}

P0_HPA = 1013.25
RAYLEIGH_DEPOLARISATION = 0.0279
AEROSOL_ANGSTROM = 1.3
AEROSOL_SSA = 0.90
AEROSOL_G = 0.65
DEFAULT_OZONE_CM_ATM = 0.300  # MAJA Ozone_Amount_Default_Value (300 DU)

# LUT axes (degrees, metres, AOT at 550 nm)
SUN_ZENITH_AXIS = np.array([0, 10, 20, 30, 40, 45, 50, 55, 60, 63, 66, 69, 72, 75, 78, 81], np.float64)
VIEW_ZENITH_AXIS = np.array([0, 3, 6, 9, 12, 16], np.float64)
REL_AZIMUTH_AXIS = np.arange(0.0, 181.0, 30.0)
ALTITUDE_AXIS = np.array([0, 500, 1000, 2000, 3000, 4000], np.float64)
AOT_AXIS = np.array([0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.25, 1.5], np.float64)
ZENITH_AXIS = np.array([0, 3, 6, 9, 12, 16, 20, 30, 40, 45, 50, 55, 60, 63, 66, 69, 72, 75, 78, 81],
                       np.float64)


# --------------------------------------------------------------------------------------------------
# Documented physics, as plain functions
# --------------------------------------------------------------------------------------------------


def pressure_hpa(altitude_m):
    """Standard-atmosphere surface pressure (hPa) at an altitude (m), MAJA's pressure law."""
    h = np.asarray(altitude_m, np.float64)
    return P0_HPA * np.power(np.clip(1.0 - 0.0065 * h / 288.15, 1e-6, None), 5.31)


def rayleigh_optical_depth(wavelength_nm, altitude_m=0.0):
    """Rayleigh optical depth, Bodhaine et al. (1999) eq. 30, scaled by P/P0."""
    lam = np.asarray(wavelength_nm, np.float64) / 1000.0
    l2 = lam * lam
    tau0 = 0.0021520 * (1.0455996 - 341.29061 / l2 - 0.90230850 * l2) / (
        1.0 + 0.0027059889 / l2 - 85.968563 * l2
    )
    return tau0 * pressure_hpa(altitude_m) / P0_HPA


def aerosol_optical_depth(aot550, wavelength_nm, angstrom: float = AEROSOL_ANGSTROM):
    """Aerosol extinction optical depth at a wavelength from the 550 nm AOT (Angstrom law)."""
    return np.asarray(aot550, np.float64) * (np.asarray(wavelength_nm, np.float64) / 550.0) ** (-angstrom)


def rayleigh_phase(cos_theta):
    d = RAYLEIGH_DEPOLARISATION / (2.0 - RAYLEIGH_DEPOLARISATION)
    return 3.0 / (4.0 * (1.0 + 2.0 * d)) * ((1.0 + 3.0 * d) + (1.0 - d) * cos_theta**2)


def hg_phase(cos_theta, g: float = AEROSOL_G):
    return (1.0 - g * g) / np.power(1.0 + g * g - 2.0 * g * cos_theta, 1.5)


def scattering_cosine(theta_s, theta_v, dphi):
    """cos of the scattering angle; dphi = sun azimuth - view azimuth (deg), 0 = backscattering."""
    ts, tv, dp = (np.deg2rad(np.asarray(a, np.float64)) for a in (theta_s, theta_v, dphi))
    return -np.cos(ts) * np.cos(tv) - np.sin(ts) * np.sin(tv) * np.cos(dp)


def delta_eddington(tau, omega, g, mu0):
    """Reflectance and total transmittance of a layer over a black surface for a collimated beam.

    Delta-Eddington (Joseph et al. 1976) with the closed-form two-stream solution of Meador & Weaver
    (1980). Broadcasts over all arguments. Returns (R, T_total)."""
    tau, omega, g, mu0 = np.broadcast_arrays(*(np.asarray(a, np.float64) for a in (tau, omega, g, mu0)))
    f = g * g
    omega = np.clip(omega, 0.0, 1.0 - 1e-9)
    tau_s = (1.0 - omega * f) * tau
    om = (1.0 - f) * omega / (1.0 - omega * f)
    gs = g / (1.0 + g)
    g1 = (7.0 - om * (4.0 + 3.0 * gs)) / 4.0
    g2 = -(1.0 - om * (4.0 - 3.0 * gs)) / 4.0
    g3 = (2.0 - 3.0 * gs * mu0) / 4.0
    g4 = 1.0 - g3
    k = np.sqrt(np.maximum(g1 * g1 - g2 * g2, 1e-12))
    # avoid the removable singularity k mu0 = 1
    mu0 = np.where(np.abs(1.0 - k * mu0) < 1e-6, mu0 * (1.0 + 1e-5), mu0)
    a1 = g1 * g4 + g2 * g3
    a2 = g1 * g3 + g2 * g4
    ekt, emkt = np.exp(k * tau_s), np.exp(-k * tau_s)
    et = np.exp(-tau_s / mu0)
    den = (1.0 - k * k * mu0 * mu0) * ((k + g1) * ekt + (k - g1) * emkt)
    r = om / den * ((1 - k * mu0) * (a2 + k * g3) * ekt - (1 + k * mu0) * (a2 - k * g3) * emkt
                    - 2 * k * (g3 - a2 * mu0) * et)
    t = et * (1.0 - om / den * ((1 + k * mu0) * (a1 + k * g4) * ekt - (1 - k * mu0) * (a1 - k * g4) * emkt
                                - 2 * k * (g4 + a1 * mu0) / et))
    return np.clip(r, 0.0, 1.0), np.clip(t, 0.0, 1.0)


def _layer(wavelength_nm, altitude_m, aot550):
    """Optical depth, single-scattering albedo and asymmetry of the mixed Rayleigh + aerosol layer."""
    tr = rayleigh_optical_depth(wavelength_nm, altitude_m)
    ta = aerosol_optical_depth(aot550, wavelength_nm)
    tau = tr + ta
    tsca = tr + AEROSOL_SSA * ta
    omega = tsca / np.maximum(tau, 1e-12)
    g = AEROSOL_SSA * ta * AEROSOL_G / np.maximum(tsca, 1e-12)
    return tr, ta, tau, omega, g


def multiple_scattering_factor(wavelength_nm, altitude_m, aot550, mu):
    """Two-stream ratio of all-orders to first-order hemispheric reflectance (>= 1)."""
    _, _, tau, omega, g = _layer(wavelength_nm, altitude_m, aot550)
    r_all, _ = delta_eddington(tau, omega, g, mu)
    eps = 1e-4
    r_1, _ = delta_eddington(tau, omega * eps, g, mu)
    return np.where(r_1 > 0, r_all / np.maximum(r_1 / eps, 1e-30), 1.0)


def path_reflectance_exact(wavelength_nm, theta_s, theta_v, dphi, altitude_m, aot550):
    """Atmospheric path reflectance (no gas), computed directly (what the LUT tabulates)."""
    tr, ta, tau, _, _ = _layer(wavelength_nm, altitude_m, aot550)
    mus = np.cos(np.deg2rad(theta_s))
    muv = np.cos(np.deg2rad(theta_v))
    cth = scattering_cosine(theta_s, theta_v, dphi)
    m = 1.0 / mus + 1.0 / muv
    phase_tau = tr * rayleigh_phase(cth) + AEROSOL_SSA * ta * hg_phase(cth)
    rho1 = phase_tau / (4.0 * (mus + muv)) * (1.0 - np.exp(-tau * m)) / np.maximum(tau, 1e-12)
    rho1 = np.where(tau > 1e-12, rho1, 0.0)
    fms = np.sqrt(multiple_scattering_factor(wavelength_nm, altitude_m, aot550, mus)
                  * multiple_scattering_factor(wavelength_nm, altitude_m, aot550, muv))
    return rho1 * fms


def transmissions_exact(wavelength_nm, theta, altitude_m, aot550):
    """(direct, diffuse) transmission along a zenith angle (deg)."""
    _, _, tau, omega, g = _layer(wavelength_nm, altitude_m, aot550)
    mu = np.cos(np.deg2rad(theta))
    direct = np.exp(-tau / mu)
    _, t_total = delta_eddington(tau, omega, g, mu)
    return direct, np.maximum(t_total - direct, 0.0)


def spherical_albedo_exact(wavelength_nm, altitude_m, aot550, nodes: int = 16):
    _, _, tau, omega, g = _layer(wavelength_nm, altitude_m, aot550)
    x, w = np.polynomial.legendre.leggauss(nodes)
    mu = 0.5 * (x + 1.0)
    w = 0.5 * w
    shape = np.shape(tau)
    r, _ = delta_eddington(np.asarray(tau)[..., None], np.asarray(omega)[..., None],
                           np.asarray(g)[..., None], mu.reshape((1,) * len(shape) + (-1,)))
    return 2.0 * np.sum(r * mu * w, axis=-1)


def gas_transmission(band: str, theta_s, theta_v, wv, o3=DEFAULT_OZONE_CM_ATM, altitude_m=0.0):
    """SMAC-form gaseous transmission (two-way) of a band. wv in g/cm2, o3 in cm-atm."""
    c = SMAC_GAS[band]
    m = 1.0 / np.cos(np.deg2rad(np.asarray(theta_s, np.float64))) + 1.0 / np.cos(
        np.deg2rad(np.asarray(theta_v, np.float64)))
    pt = pressure_hpa(altitude_m) / P0_HPA
    expo = np.zeros(np.broadcast(m, np.asarray(wv), np.asarray(o3), np.asarray(pt)).shape)
    if c[0]:
        expo = expo + c[0] * np.power(np.maximum(np.asarray(wv, np.float64), 0.0) * m, c[1])
    if c[2]:
        expo = expo + c[2] * np.power(np.maximum(np.asarray(o3, np.float64), 0.0) * m, c[3])
    for a, n, p in ((c[4], c[5], c[6]), (c[7], c[8], c[9]), (c[10], c[11], c[12]),
                    (c[13], c[14], c[15]), (c[16], c[17], c[18])):
        if a:
            expo = expo + a * np.power(np.power(pt, p) * m, n)
    return np.exp(expo)


# --------------------------------------------------------------------------------------------------
# Multilinear interpolation on a regular (not necessarily uniform) grid
# --------------------------------------------------------------------------------------------------


def _axis_weights(axis: np.ndarray, x) -> tuple[np.ndarray, np.ndarray]:
    x = np.clip(np.asarray(x, np.float64), axis[0], axis[-1])
    i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2)
    w = (x - axis[i]) / (axis[i + 1] - axis[i])
    return i, w


def interp_multilinear(table: np.ndarray, axes: tuple[np.ndarray, ...], coords) -> np.ndarray:
    """Multilinear interpolation of `table` (dims = axes) at broadcastable coordinates (clamped)."""
    coords = np.broadcast_arrays(*(np.asarray(c, np.float64) for c in coords))
    shape = coords[0].shape
    iw = [_axis_weights(a, c.ravel()) for a, c in zip(axes, coords)]
    out = np.zeros(coords[0].size, np.float64)
    d = len(axes)
    for corner in range(1 << d):
        idx = []
        weight = np.ones_like(out)
        for k in range(d):
            bit = (corner >> k) & 1
            i, w = iw[k]
            idx.append(i + bit)
            weight = weight * (w if bit else 1.0 - w)
        out += weight * table[tuple(idx)]
    return out.reshape(shape)


# --------------------------------------------------------------------------------------------------
# The LUT
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AtmosphereTerms:
    """Interpolated atmospheric quantities of one band at given conditions (arrays)."""

    path: np.ndarray  # path reflectance (no gas)
    t_dir_down: np.ndarray
    t_dif_down: np.ndarray
    t_dir_up: np.ndarray
    t_dif_up: np.ndarray
    spherical_albedo: np.ndarray
    t_gas: np.ndarray


class ForwardLUT:
    """Per-band tables of path reflectance, transmissions and spherical albedo, and the TOA model.

    Tables: path[band] over (sun zenith, view zenith, relative azimuth, altitude, AOT);
    t_dir/t_dif[band] over (zenith, altitude, AOT); albedo[band] over (altitude, AOT).
    Gas transmission is analytic (SMAC form) and applied on top.
    """

    def __init__(self, bands: tuple[str, ...] = S2_BAND_NAMES):
        self.bands = tuple(bands)
        self.path_axes = (SUN_ZENITH_AXIS, VIEW_ZENITH_AXIS, REL_AZIMUTH_AXIS, ALTITUDE_AXIS, AOT_AXIS)
        self.trans_axes = (ZENITH_AXIS, ALTITUDE_AXIS, AOT_AXIS)
        self.albedo_axes = (ALTITUDE_AXIS, AOT_AXIS)
        ts, tv, dp, alt, aot = np.meshgrid(*self.path_axes, indexing="ij")
        z, alt3, aot3 = np.meshgrid(*self.trans_axes, indexing="ij")
        alt2, aot2 = np.meshgrid(*self.albedo_axes, indexing="ij")
        self.path: dict[str, np.ndarray] = {}
        self.t_dir: dict[str, np.ndarray] = {}
        self.t_dif: dict[str, np.ndarray] = {}
        self.albedo: dict[str, np.ndarray] = {}
        for b in self.bands:
            lam = S2_WAVELENGTH_NM[b]
            self.path[b] = path_reflectance_exact(lam, ts, tv, dp, alt, aot)
            self.t_dir[b], self.t_dif[b] = transmissions_exact(lam, z, alt3, aot3)
            self.albedo[b] = spherical_albedo_exact(lam, alt2, aot2)

    # -- interpolated quantities ------------------------------------------------------------------

    @staticmethod
    def fold_azimuth(dphi):
        """Relative azimuth folded into [0, 180] degrees."""
        d = np.abs(np.asarray(dphi, np.float64)) % 360.0
        return np.where(d > 180.0, 360.0 - d, d)

    def terms(self, band, theta_s, theta_v, dphi, alt, aot, wv, o3=DEFAULT_OZONE_CM_ATM) -> AtmosphereTerms:
        path = interp_multilinear(self.path[band], self.path_axes,
                                  (theta_s, theta_v, self.fold_azimuth(dphi), alt, aot))
        tdd = interp_multilinear(self.t_dir[band], self.trans_axes, (theta_s, alt, aot))
        tfd = interp_multilinear(self.t_dif[band], self.trans_axes, (theta_s, alt, aot))
        tdu = interp_multilinear(self.t_dir[band], self.trans_axes, (theta_v, alt, aot))
        tfu = interp_multilinear(self.t_dif[band], self.trans_axes, (theta_v, alt, aot))
        s = interp_multilinear(self.albedo[band], self.albedo_axes, (alt, aot))
        tg = gas_transmission(band, theta_s, theta_v, wv, o3, alt)
        return AtmosphereTerms(path, tdd, tfd, tdu, tfu, s, tg)

    def path_reflectance(self, band, theta_s, theta_v, dphi, alt, aot):
        return interp_multilinear(self.path[band], self.path_axes,
                                  (theta_s, theta_v, self.fold_azimuth(dphi), alt, aot))

    # -- forward and inverse models ---------------------------------------------------------------

    def toa(self, rho_surface, rho_env, band, theta_s, theta_v, dphi, alt, aot, wv,
            o3=DEFAULT_OZONE_CM_ATM, sun=1.0) -> np.ndarray:
        """TOA reflectance (float64) of a Lambertian pixel in a Lambertian environment.

        `sun` (0..1) scales the direct solar beam reaching the pixel (cloud shadows); all other
        arguments broadcast against each other (pixels)."""
        t = self.terms(band, theta_s, theta_v, dphi, alt, aot, wv, o3)
        return self.toa_from_terms(t, rho_surface, rho_env, sun)

    @staticmethod
    def toa_from_terms(t: AtmosphereTerms, rho_surface, rho_env, sun=1.0) -> np.ndarray:
        """The coupling formula of :meth:`toa` applied to already interpolated terms."""
        rho_s = np.asarray(rho_surface, np.float64)
        rho_e = np.asarray(rho_env, np.float64)
        t_down = t.t_dir_down + t.t_dif_down
        t_down_pix = t.t_dir_down * np.asarray(sun, np.float64) + t.t_dif_down
        coupled = (t_down_pix * t.t_dir_up * rho_s + t_down * t.t_dif_up * rho_e) / (
            1.0 - t.spherical_albedo * rho_e)
        return t.t_gas * (t.path + coupled)

    def surface_reflectance(self, rho_toa, rho_env, band, theta_s, theta_v, dphi, alt, aot, wv,
                            o3=DEFAULT_OZONE_CM_ATM) -> np.ndarray:
        """Inverse of :meth:`toa` (sun = 1): MAJA's gas correction, uniform inversion, then SRE (§3.6).

        With rho_env = None the uniform (no adjacency) inversion rho_unif is returned."""
        t = self.terms(band, theta_s, theta_v, dphi, alt, aot, wv, o3)
        rho_star = np.asarray(rho_toa, np.float64) / t.t_gas
        t_down = t.t_dir_down + t.t_dif_down
        t_up = t.t_dir_up + t.t_dif_up
        y = (rho_star - t.path) / (t_down * t_up)
        rho_unif = y / (1.0 + t.spherical_albedo * y)
        if rho_env is None:
            return rho_unif
        rho_e = np.asarray(rho_env, np.float64)
        s = t.spherical_albedo
        return (rho_unif * t_up * (1.0 - rho_e * s) / (1.0 - rho_unif * s) - rho_e * t.t_dif_up) / t.t_dir_up


_DEFAULT_LUT: ForwardLUT | None = None


def default_lut() -> ForwardLUT:
    """The process-wide ForwardLUT (built once, ~0.1 s)."""
    global _DEFAULT_LUT
    if _DEFAULT_LUT is None:
        _DEFAULT_LUT = ForwardLUT()
    return _DEFAULT_LUT
