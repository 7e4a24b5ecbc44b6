"""WASP (L3A monthly synthesis) parameters: one typed object, defaults = the released WASP values.

Sources are sections of wasp-l3a-and-lis-snow.md ("§1.x"); the code cited there is CNES/WASP v1.0
(parameter version 1.1). No algorithm in `gpumaja.l3a` holds a magic number: every value it uses is a
field here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# WASP directional model coefficients (§1.4, scattering_coeffs_10m/20m.txt): band -> (V0, R0).
# V1 = R1 = 0 in the shipped files, so NDVI has no effect and is not used.
WASP_BRDF_COEFFICIENTS = {
    "B02": (0.481, 0.102), "B03": (0.440, 0.136), "B04": (0.340, 0.134), "B08": (0.496, 0.107),
    "B05": (0.340, 0.134), "B06": (0.418, 0.121), "B07": (0.496, 0.107), "B8A": (0.496, 0.107),
    "B11": (0.336, 0.132), "B12": (0.240, 0.145),
}

# L3A band groups (§1.1): R1 = 10 m, R2 = 20 m; B1, B9, B10 are not used.
WASP_R1_BANDS = ("B02", "B03", "B04", "B08")
WASP_R2_BANDS = ("B05", "B06", "B07", "B8A", "B11", "B12")


@dataclass(frozen=True)
class WaspParams:
    half_window_days: int = 23  # --synthalf, S2 default (§1.2)
    # cloud weight (§1.3a)
    coarse_resolution_m: float = 240.0  # COARSE_RES
    sigma_small_px: float = 2.0  # SIGMA_SMALL_CLD, coarse pixels (480 m)
    sigma_large_px: float = 10.0  # SIGMA_LARGE_CLD, coarse pixels (2.4 km)
    kernel_width_px: int = 801  # MaximumKernelWidth
    coarse_cloud_fraction: float = 0.5  # re-binarisation at 240 m: cloud if mean > 0.5 (+1e-4)
    # AOT weight (§1.3b)
    aot_weight_min: float = 0.33  # W_min
    aot_weight_max: float = 1.0  # W_max
    aot_max: float = 0.8  # AOT_MAX
    # date weight (§1.3d): the documented intent (real division), not the code's integer division
    date_weight_min: float = 0.5  # W_date_min
    date_weight_integer_division: bool = False  # True reproduces the released code's quirk
    # sensor weight (§1.3c): 1 for Sentinel-2, 0.33 otherwise
    sensor_weight_other: float = 0.33
    # directional normalisation (§1.4)
    directional_correction: bool = True
    brdf_coefficients: dict = field(default_factory=lambda: dict(WASP_BRDF_COEFFICIENTS))
    hotspot_xi0_deg: float = 1.5  # ξ0 of the Maignan hot-spot term
    # outputs (§1.6)
    reflectance_quantification: float = 10000.0
    weight_quantification: float = 1000.0  # WGT = short(W * 1000)
    nodata: int = -10000


__all__ = ["WASP_BRDF_COEFFICIENTS", "WASP_R1_BANDS", "WASP_R2_BANDS", "WaspParams"]
