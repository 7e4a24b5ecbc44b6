"""WASP directional (BRDF) normalisation to a nadir view (wasp-l3a-and-lis-snow.md §1.4).

    ρ_corr = ρ · M(θs, 0, 0, 0) / M(θs, φs, θv, φv),   M = 1 + kV·FV + kR·FR

with, for φ = φs - φv (angles in degrees on input, radians inside):

    cos ξ = cosθs cosθv + sinθs sinθv cosφ                    (phase angle ξ)
    Δ     = sqrt(tan²θs + tan²θv - 2 tanθs tanθv cosφ)
    m     = secθs + secθv
    cos t = clamp((1/m) sqrt(Δ² + (tanθs tanθv sinφ)²), -1, 1)   (coefficient 1; Bréon-Vermote use 2)
    FV    = (m/π)(t - sin t cos t - π) + (1 + cos ξ) / (2 cosθs cosθv)
    FR    = (4/(3π)) ((π/2 - ξ) cos ξ + sin ξ) / (cosθs + cosθv) · (1 + 1/(1 + ξ/ξ0)) - 1/3

ξ0 = params.hotspot_xi0_deg (1.5°). The code's pairing is kept: kV multiplies FV and kR multiplies FR
(WASP labels FV "Ross-Thick" and FR "Li-sparse" although the forms are the other way round), with
kV = V0 and kR = R0 per band (params.brdf_coefficients; V1 = R1 = 0 in the shipped files, so NDVI
plays no part). Computed in float64 as WASP's DirectionalModel.cpp does.

Ours: cos ξ is clamped to [-1, 1] before acos / sqrt (rounding can push it just past 1 at the hot
spot, where WASP would produce NaN). At a nadir view (θv = 0) every term that depends on φ is
multiplied by an exact 0, so the factor is exactly 1.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.model.wasp_params import WaspParams


def brdf_model(theta_s: Any, phi_s: Any, theta_v: Any, phi_v: Any, v0: float, r0: float,
               params: WaspParams, xp: ModuleType = np) -> Any:
    """M(θs, φs, θv, φv) = 1 + kV·FV + kR·FR of §1.4 (degrees in, float64 out; scalars or arrays)."""
    deg = math.pi / 180.0
    ts = xp.asarray(theta_s, dtype=xp.float64) * deg
    tv = xp.asarray(theta_v, dtype=xp.float64) * deg
    phi = (xp.asarray(phi_s, dtype=xp.float64) - xp.asarray(phi_v, dtype=xp.float64)) * deg
    xi0 = float(params.hotspot_xi0_deg) * deg

    sin_s, cos_s, tan_s = xp.sin(ts), xp.cos(ts), xp.tan(ts)
    sin_v, cos_v, tan_v = xp.sin(tv), xp.cos(tv), xp.tan(tv)
    sin_phi, cos_phi = xp.sin(phi), xp.cos(phi)

    delta = xp.sqrt(tan_s * tan_s + tan_v * tan_v - 2.0 * tan_s * tan_v * cos_phi)
    mass = 1.0 / cos_s + 1.0 / cos_v
    cos_xi = xp.clip(cos_s * cos_v + sin_s * sin_v * cos_phi, -1.0, 1.0)
    sin_xi = xp.sqrt(1.0 - cos_xi * cos_xi)
    xi = xp.arccos(cos_xi)

    trig = tan_s * tan_v * sin_phi
    cos_t = xp.clip(1.0 / mass * xp.sqrt(delta * delta + trig * trig), -1.0, 1.0)
    sin_t = xp.sqrt(1.0 - cos_t * cos_t)
    t = xp.arccos(cos_t)

    fv = mass / math.pi * (t - sin_t * cos_t - math.pi) + (1.0 + cos_xi) / 2.0 / cos_s / cos_v
    fr = (4.0 / 3.0 / math.pi / (cos_s + cos_v) * ((math.pi / 2.0 - xi) * cos_xi + sin_xi)
          * (1.0 + 1.0 / (1.0 + xi / xi0)) - 1.0 / 3.0)
    return 1.0 + float(v0) * fv + float(r0) * fr


def band_coefficients(band: str, params: WaspParams) -> tuple[float, float]:
    """(V0, R0) of `band` ("B02", ..., "B12") from params.brdf_coefficients."""
    try:
        v0, r0 = params.brdf_coefficients[band]
    except KeyError:
        raise ValueError(f"directional correction: no WASP coefficients for band {band!r}; known bands: "
                         f"{', '.join(sorted(params.brdf_coefficients))}") from None
    return float(v0), float(r0)


def directional_factor(sun_zenith: Any, sun_azimuth: Any, view_zenith: Any, view_azimuth: Any, band: str,
                       params: WaspParams, xp: ModuleType = np) -> Any:
    """M(θs, 0, 0, 0) / M(θs, φs, θv, φv) for `band` (§1.4): the factor that brings a reflectance to a
    nadir view at the same solar zenith. Degrees; scalars or broadcastable arrays; float64 out (NaN
    where an angle is NaN)."""
    v0, r0 = band_coefficients(band, params)
    ts = xp.asarray(sun_zenith, dtype=xp.float64)
    zero = xp.zeros_like(ts)
    nadir = brdf_model(ts, zero, zero, zero, v0, r0, params, xp)
    actual = brdf_model(ts, sun_azimuth, view_zenith, view_azimuth, v0, r0, params, xp)
    return nadir / actual


def normalise(reflectance: Any, factor: Any, land: Any, xp: ModuleType = np) -> Any:
    """Directionally corrected copy of `reflectance` (H, W) float32 (§1.4).

    ρ · factor on the `land` pixels (bool (H, W): not cloud, water, snow or nodata, as §1.4 says; the
    caller builds it); the original ρ is kept elsewhere and wherever the corrected value is < 0 or NaN
    (a NaN reflectance or angle therefore leaves the pixel unchanged). `factor` is a scalar or an
    array broadcastable to (H, W) (typically `directional_factor` on the angle grids).
    """
    rho = xp.asarray(reflectance, dtype=xp.float32)
    corrected = (rho.astype(xp.float64) * xp.asarray(factor, dtype=xp.float64)).astype(xp.float32)
    m = xp.asarray(land).astype(bool, copy=False)
    ok = m & (corrected >= 0)  # False where corrected is NaN
    return xp.where(ok, corrected, rho).astype(xp.float32, copy=False)


__all__ = ["band_coefficients", "brdf_model", "directional_factor", "normalise"]
