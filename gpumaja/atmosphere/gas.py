"""Gaseous absorption correction, TOA -> TOA* (kernel `kernels/gas.cu`), maja-l2a.md §3.3.

MAJA's TOACorrection / PressureFunctor in SMAC form. Per band b with air mass m_b = 1/cos θs + 1/cos θv(b)
and per pixel with altitude h (m) and water vapour U_H2O (g/cm2):

    P~   = P / 1013.25 = (1 - 0.0065 h / 288.15)^5.31
    t_g  = exp( a_O3 (U_O3 m)^n_O3 + a_H2O (U_H2O m)^n_H2O + sum_{g in O2,CO2,CH4,NO2,CO} a_g (P~^p_g m)^n_g )
    TOA* = TOA / t_g                  (NaN where t_g == 0, or TOA is NaN)

- SMAC coefficients: the (nb, 49) array of `AtmosphereLUT.smac`, rows named in `minilut.SMAC_ROWS`.
- A gas whose a coefficient is 0 contributes exactly 0 (its power is never evaluated).
- U_O3 (cm-atm) is one value for the scene: its term is computed once per band on the host (float64,
  rounded to float32). U_H2O is a (ny, nx) map or one value; NaN means "no estimate" and takes
  `water_default` (Water_Amount_Default_Value); a negative amount is taken as 0.
- The altitude must stay below 44 km (P~ > 0); a NaN altitude gives NaN.

The per-pixel part is float32 in the kernel and in the NumPy twin, terms added in the same order; the
two differ only by the last-ulp behaviour of powf/expf (relative ~1e-7).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from gpumaja.atmosphere import _dispatch as dispatch
from gpumaja.atmosphere.minilut import SMAC_NCOEF, SMAC_ROWS
from gpumaja.backend import Backend
from gpumaja.errors import InputError
from gpumaja.model.params import L2Params

# Standard atmosphere of MAJA's vnsPressureFunctor (maja-l2a.md §3.3)
LAPSE_RATE_K_PER_M = 0.0065
SEA_LEVEL_TEMPERATURE_K = 288.15
PRESSURE_EXPONENT = 5.31

_KERNEL_FILE = "gas"
_NGAS = 19  # SMAC rows 0..18 hold the gas coefficients
_GASES = ("o2", "co2", "ch4", "no2", "co")  # pressure-dependent gases, in the order of the sum
_PRESSURE_K = np.float32(LAPSE_RATE_K_PER_M / SEA_LEVEL_TEMPERATURE_K)
_PRESSURE_E = np.float32(PRESSURE_EXPONENT)


def pressure_ratio(altitude: Any) -> np.ndarray:
    """P / 1013.25 at altitude h (m), float32: (1 - 0.0065 h / 288.15)^5.31."""
    h = np.asarray(altitude, dtype=np.float32)
    return np.power(np.float32(1.0) - _PRESSURE_K * h, _PRESSURE_E)


def _prepare(where: str, altitude, water_vapour, smac, air_mass, ozone):
    """Shapes checked; per-band float32 coefficients (nb, 19), ozone term (nb,) and air mass (nb,)."""
    if np.ndim(altitude) != 2:
        raise InputError(f"{where}: altitude must be a (y, x) image, got shape {np.shape(altitude)}")
    if np.ndim(water_vapour) != 0 and np.shape(water_vapour) != np.shape(altitude):
        raise InputError(
            f"{where}: water_vapour has shape {np.shape(water_vapour)}, expected one value or "
            f"{np.shape(altitude)} (the altitude's)"
        )
    c = np.asarray(dispatch.host(smac, np.float64))
    if c.ndim != 2 or c.shape[1] != SMAC_NCOEF:
        raise InputError(f"{where}: smac has shape {c.shape}, expected (bands, {SMAC_NCOEF})")
    nb = c.shape[0]
    m = dispatch.per_band(where, "air_mass", air_mass, nb)
    if not np.all(np.isfinite(m)) or np.any(m <= 0):
        raise InputError(f"{where}: air_mass must be finite and positive, got {m.tolist()}")
    u_o3 = float(ozone)
    if not (np.isfinite(u_o3) and u_o3 >= 0):
        raise InputError(f"{where}: ozone must be a non-negative amount (cm-atm), got {ozone!r}")
    a_o3, n_o3 = c[:, SMAC_ROWS["a_o3"]], c[:, SMAC_ROWS["n_o3"]]
    with np.errstate(divide="ignore", invalid="ignore"):
        o3 = np.where(a_o3 != 0, a_o3 * np.power(u_o3 * m, n_o3), 0.0)
    coef = np.ascontiguousarray(c[:, :_NGAS], dtype=np.float32)
    return nb, coef, o3.astype(np.float32), m.astype(np.float32)


def _water(water_vapour, water_default: float) -> np.ndarray:
    w = dispatch.host(water_vapour)
    w = np.where(np.isnan(w), np.float32(water_default), w)
    return np.maximum(w, np.float32(0.0))


def _term(a: np.float32, base: np.ndarray, n: np.float32) -> np.ndarray | np.float32:
    return a * np.power(base, n) if a != 0 else np.float32(0.0)


def _exponent(coef_b: np.ndarray, o3_b: np.float32, m_b: np.float32, pt: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The kernel's gpumaja_gas_exponent for one band (float32, same order of terms)."""
    expo = np.full(pt.shape, o3_b, dtype=np.float32)
    expo += _term(coef_b[SMAC_ROWS["a_h2o"]], w * m_b, coef_b[SMAC_ROWS["n_h2o"]])
    for gas in _GASES:
        a = coef_b[SMAC_ROWS[f"a_{gas}"]]
        if a != 0:
            expo += _term(a, np.power(pt, coef_b[SMAC_ROWS[f"p_{gas}"]]) * m_b, coef_b[SMAC_ROWS[f"n_{gas}"]])
    return expo


def gas_transmission_numpy(
    altitude: np.ndarray,
    water_vapour: Any,
    smac: np.ndarray,
    air_mass: Any,
    ozone: float,
    water_default: float = L2Params.water_amount_default,
    backend: Backend | None = None,
) -> np.ndarray:
    """NumPy twin of the `gas_transmission` kernel: float32 (nb, ny, nx) t_g."""
    nb, coef, o3, m = _prepare("gas_transmission", altitude, water_vapour, smac, air_mass, ozone)
    h = dispatch.host(altitude)
    ny, nx = h.shape
    wv = np.broadcast_to(_water(water_vapour, water_default), h.shape)
    out = np.empty((nb, ny * nx), dtype=np.float32)
    h, wv = h.reshape(-1), wv.reshape(-1)
    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        for sl in dispatch.pixel_chunks(ny * nx):
            pt = pressure_ratio(h[sl])
            for b in range(nb):
                out[b, sl] = np.exp(_exponent(coef[b], o3[b], m[b], pt, wv[sl]))
    return out.reshape(nb, ny, nx)


def gas_correction_numpy(
    toa: np.ndarray,
    altitude: np.ndarray,
    water_vapour: Any,
    smac: np.ndarray,
    air_mass: Any,
    ozone: float,
    water_default: float = L2Params.water_amount_default,
    backend: Backend | None = None,
) -> np.ndarray:
    """NumPy twin of the `gas_correction` kernel: float32 (nb, ny, nx) TOA* = TOA / t_g."""
    nb, ny, nx = dispatch.check_stack("gas_correction", "toa", np.shape(toa))
    dispatch.check_image("gas_correction", "altitude", np.shape(altitude), (ny, nx))
    if np.shape(smac)[0] != nb:
        raise InputError(f"gas_correction: toa has {nb} bands but smac has {np.shape(smac)[0]} rows of bands")
    t_g = gas_transmission_numpy(altitude, water_vapour, smac, air_mass, ozone, water_default)
    x = dispatch.host(toa)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = x / t_g
    out[t_g == 0] = np.nan
    return out


def _gas_gpu(kernel_name: str, toa, altitude, water_vapour, smac, air_mass, ozone, water_default: float):
    import cupy
    import nvtx

    from gpumaja.kernels import get_function

    with nvtx.annotate(kernel_name, domain="gpumaja"):
        nb, coef, o3, m = _prepare(kernel_name, altitude, water_vapour, smac, air_mass, ozone)
        h = dispatch.device(altitude)
        ny, nx = (int(n) for n in h.shape)
        npix = ny * nx
        dispatch.check_pixels(kernel_name, npix)
        scalar = np.ndim(water_vapour) == 0
        wv = dispatch.device(cupy.asarray(water_vapour).reshape(1) if scalar else water_vapour)
        out = cupy.empty((nb, ny, nx), dtype=cupy.float32)
        if out.size == 0:
            return out
        args = [h, wv, np.int32(scalar), np.float32(water_default),
                cupy.asarray(coef), cupy.asarray(o3), cupy.asarray(m),
                _PRESSURE_K, _PRESSURE_E, np.int32(nb), np.int32(npix), out]
        if toa is not None:
            args.insert(0, dispatch.device(toa))
        grid, block = dispatch.grid_1d(npix)
        get_function(_KERNEL_FILE, kernel_name)(grid, block, tuple(args))
        return out


def gas_transmission(
    altitude: Any,
    water_vapour: Any,
    smac: Any,
    air_mass: Any,
    ozone: float,
    water_default: float = L2Params.water_amount_default,
    backend: Backend | None = None,
) -> Any:
    """Two-way gaseous transmission t_g, float32 (nb, ny, nx) (maja-l2a.md §3.3).

    altitude: (ny, nx) m; water_vapour: (ny, nx) g/cm2 or one value (NaN -> water_default); smac:
    (nb, 49) SMAC coefficients; air_mass: (nb,) 1/cos θs + 1/cos θv(b) (or one value); ozone: cm-atm.
    CuPy out when `backend.is_gpu` (or, without a backend, when altitude/water_vapour is CuPy).
    """
    if dispatch.use_gpu(backend, altitude, water_vapour):
        return _gas_gpu("gas_transmission", None, altitude, water_vapour, smac, air_mass, ozone, water_default)
    return gas_transmission_numpy(altitude, water_vapour, smac, air_mass, ozone, water_default)


def gas_correction(
    toa: Any,
    altitude: Any,
    water_vapour: Any,
    smac: Any,
    air_mass: Any,
    ozone: float,
    water_default: float = L2Params.water_amount_default,
    backend: Backend | None = None,
) -> Any:
    """TOA* = TOA / t_g for a (nb, ny, nx) TOA stack, float32; NaN where t_g == 0 or TOA is NaN.

    Arguments as `gas_transmission`; smac has one row per band of the stack, in its order.
    """
    nb, ny, nx = dispatch.check_stack("gas_correction", "toa", np.shape(toa))
    dispatch.check_image("gas_correction", "altitude", np.shape(altitude), (ny, nx))
    if np.shape(smac)[0] != nb:
        raise InputError(f"gas_correction: toa has {nb} bands but smac has {np.shape(smac)[0]} rows of bands")
    if dispatch.use_gpu(backend, toa, altitude, water_vapour):
        return _gas_gpu("gas_correction", toa, altitude, water_vapour, smac, air_mass, ozone, water_default)
    return gas_correction_numpy(toa, altitude, water_vapour, smac, air_mass, ozone, water_default)
