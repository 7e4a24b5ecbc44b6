"""LIS (Let-It-Snow) parameters: per-date snow detection (L2B) and annual snow cover duration (L3B).

Defaults are the consolidated LIS values of wasp-l3a-and-lis-snow.md §2.3 (build_json.py, ATBD,
fsc_config.py) and §3 (snow_annual_map). Reflectance thresholds are in reflectance units (LIS writes
them in milli-reflectance x `multi`; 0.20 here is LIS's 200 for S2). No algorithm in `gpumaja.snow`
holds a magic number.
"""

from __future__ import annotations

from dataclasses import dataclass

# SNW codes (§2.3 "Final SEB/SNW classes"); nodata is 255 since LIS 1.6 (254 before)
SNW_NO_SNOW = 0
SNW_SNOW = 100
SNW_CLOUD = 205
SNW_NODATA = 255
SNW_NODATA_OLD = 254  # LIS < 1.6; accepted on input

# Theia CLM bits used by LIS (§2.2)
CLM_SHADOW_IN_BIT = 5  # shadows of detected clouds
CLM_SHADOW_OUT_BIT = 6  # shadows of clouds outside the image
CLM_HIGH_CLOUD_BIT = 7  # 1.38 µm cirrus


@dataclass(frozen=True)
class LisParams:
    ndsi_pass1: float = 0.40  # n1
    red_pass1: float = 0.20  # r1
    ndsi_pass2: float = 0.15  # n2
    red_pass2: float = 0.04  # r2
    red_dark_cloud: float = 0.30  # r_D: dark MAJA clouds (red_nn <= r_D) are released
    red_back_to_cloud: float = 0.10  # r_B
    dark_cloud_factor_s2: int = 12  # rf, 20 m x 12 = 240 m
    dark_cloud_factor_landsat: int = 8  # rf for Landsat 30 m
    dz_m: float = 100.0  # DEM histogram bin (snowline)
    fsnow_lim: float = 0.1  # snow / clear in a bin
    fclear_lim: float = 0.1  # clear / total in a bin
    fsnow_total_lim: float = 0.001  # pass-1 snow fraction (whole image, nodata included) to run pass 2
    snowline_bin_offset: int = 2  # z_s = lower edge of the bin two bins below the first qualifying one
    strict_cloud_mask: bool = False  # forbid snow inside the original cloud mask
    # FSC (§2.4): FSC_TOC = 100 * min(a * NDSI + b, 1) on snow pixels
    fsc_ndsi_gain: float = 1.45
    fsc_ndsi_offset: float = -0.01


@dataclass(frozen=True)
class ScdParams:
    period_start_month: int = 9  # hydrological year 1 Sep (N) - 31 Aug (N+1), northern hemisphere (§3)
    period_start_day: int = 1
    date_margin_days: int = 15  # inputs within [start - margin, stop + margin] are used (§3 "Input selection")
    snow_threshold: float = 0.5  # daily interpolated snow >= 0.5 counts as snow (LIS-new)
    min_snow_days_for_sod: int = 10  # SOD/SMOD only where SCD > 10 (compute_SOD_SMOD.py)
    fsc_counts_as_snow: bool = True  # LIS-new: 0 < value <= 100 is snow (LIS 1.5: value == 100 only)


__all__ = ["CLM_HIGH_CLOUD_BIT", "CLM_SHADOW_IN_BIT", "CLM_SHADOW_OUT_BIT", "LisParams", "SNW_CLOUD",
           "SNW_NODATA", "SNW_NODATA_OLD", "SNW_NO_SNOW", "SNW_SNOW", "ScdParams"]
