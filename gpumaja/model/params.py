"""L2A processing parameters: one typed object, defaults = the operational MAJA values.

Each default cites its source in maja-l2a.md: "P21" is the 2021 operational column
(MAJA_Parameters/README.md), "P16"/"P17" the 2016/2017 L2COMM sets where P21 gives no value, and
"L2SITE"/"UserConf" the site file and user configuration. The names follow the MAJA L2COMM
parameter names in snake case, so that `gpumaja.io.gipp.read_l2comm` (a MAJA L2COMM EEF) and
`gpumaja.io.params.read_params` (a TOML file of overrides) map onto them one to one.

No algorithm holds a magic number: every threshold it uses is a field here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from gpumaja.model.grids import DEFAULT_COARSE_RESOLUTION_M


@dataclass(frozen=True)
class L2Params:
    # --- geometry -------------------------------------------------------------------------------
    # MAJA 4.2's default (CNES/MAJA README; Theia's MUSCATE UserConf uses 240 m): maja-l2a.md
    # "Processing geometry"; why we chose 120 m: docs/l2a.md "Mask geometry defaults"
    coarse_resolution_m: float = DEFAULT_COARSE_RESOLUTION_M

    # --- band roles (S2 band names; the Landsat equivalents come from `roles_for`) ---------------
    blue_band: str = "B01"  # Blue_Band_Code, all GIPP versions (443 nm)
    green_band: str = "B03"
    red_band: str = "B04"
    nir_band: str = "B8A"  # NIR_Band_Code P16/P17
    swir1_band: str = "B11"
    swir2_band: str = "B12"  # Reflectance_Water_Band P16/P17
    cirrus_band: str = "B10"
    wv_band: str = "B09"
    wv_reference_band: str = "B8A"

    # --- gas (§3.3) -----------------------------------------------------------------------------
    ozone_amount_default: float = 0.300  # Ozone_Amount_Default_Value, cm-atm (300 DU)
    water_amount_default: float = 2.0  # Water_Amount_Default_Value, g/cm2 (used when no WV estimate)

    # --- water vapour (§3.4) --------------------------------------------------------------------
    water_vapor_max: float = 8.0  # Water_Vapor_Max_Threshold (P18t)
    water_vapor_reflectance_threshold_ref: float = 0.1  # B8A reflectance floor (P16)
    water_vapor_reflectance_threshold_wv: float = 0.1  # B9 reflectance floor (P16; P18t 0.2)
    water_vapor_init_window_radius: int = 2  # gap filling, coarse px
    water_vapor_max_window_radius: int = 16
    water_vapor_se_valid_radius: int = 2
    water_vapor_quantification: float = 0.05  # VAP_Quantification_Value (P16): ATB band 1 = W / 0.05

    # --- Rayleigh / TOCR (§1) -------------------------------------------------------------------
    rayleigh_correction_default_aot: float = 0.05  # Rayleigh_Correction_Default_AOT, all versions

    # --- mono-temporal cloud test (§1.1) --------------------------------------------------------
    cloud_blue_reflectance_threshold: float = 0.24  # P21
    cloud_red_reflectance_threshold: float = 0.15  # P16/P17
    nir_red_ratio_max: float = 2.0
    nir_red_ratio_min: float = 0.8
    nir_swir_ratio_min: float = 1.0
    saturation_threshold: float = 0.9  # P16; saturated TOA in blue/red/NIR/SWIR -> cloud

    # --- cirrus (§1.5) --------------------------------------------------------------------------
    cirrus_mask_threshold_offset: float = 0.007  # P21
    cirrus_mask_threshold_gain: float = 0.000012  # P21
    cirrus_alt_ref: float = 2000.0  # test plan value (operational value not seen)
    min_percent_mask_cirrus: float = 100.0  # P16: global cirrus flag effectively off

    # --- snow (§1.6) ----------------------------------------------------------------------------
    ndsi_threshold: float = 0.4  # P16/P17/P21
    snow_red_reflectance_threshold: float = 0.12
    snow_swir1_reflectance_threshold: float = 0.16
    se_snow_radius: int = 1
    slope_min_cos_i: float = 0.2

    # --- water (§1.7) ---------------------------------------------------------------------------
    water_ndvi_threshold: float = 0.01
    water_red_reflectance_threshold: float = 0.05
    water_slope_threshold: float = 0.15  # slope (rad ~ tan) above which water is not tested
    water_reflectance_threshold: float = 0.04  # P21 (B12), nominal-mode cloud-over-water branch
    water_sunglint_reflectance_threshold: float = 0.16  # P21

    # --- dilation / resampling (§1.8, §1.11) ----------------------------------------------------
    se_cloud_radius: int = 0  # P17 ("slightly better accuracy"; P16/P18t: 1): docs/l2a.md "Mask geometry defaults"
    se_input_masks_radius: int = 1
    mask_resampling_threshold: float = 0.25  # bilinear then > 0.25
    # ours, not MAJA's (False = MAJA: coarse masks only): a 10/20 m pixel keeps a cloud bit only where its
    # own reflectance supports it (HOT difference vs the composite in the fine blue/red bands; the cirrus
    # test at the cirrus band's resolution). docs/l2a.md "Cloud masks at 10/20 m"
    fine_cloud_masks: bool = True
    fine_blue_band: str = "B02"
    fine_red_band: str = "B04"
    # the fine shadow test's darkening (ours): "surface" = today's TOC of fine_red_band at the date's AOT over
    # the composite's RTC (aerosol path removed on both dates); "rayleigh" = TOCR over RCR, as MAJA's
    # coarse test. docs/l2a.md "Cloud masks at 10/20 m"
    fine_shadow_darkening: str = "surface"
    max_cloud_percentage: float = 90.0  # P16/P21: above -> metadata only
    max_no_data_percentage: float = 99.0

    # --- AOT (§3.5) -----------------------------------------------------------------------------
    step_aot: int = 3  # AOT grid every 3 coarse px (720 m)
    half_window_size: int = 3
    sampling_interval_min: int = 2
    sampling_interval_max: int = 8
    increment_n_distance: int = 2
    n_pix_min: int = 19
    red_toa_threshold: float = 0.2  # MS selection (P16/P17)
    ndvi_aot_threshold: float = 0.3  # NDVI_Threshold (P16/P17)
    ms_slope: float = 0.45  # MS_Slope (P16/P17)
    ms_y_intercept: float = 0.0
    ndvi_slope: float = 0.7
    ndvi_y_intercept: float = 0.3
    w_ms: float = 2.0
    w_bounds: float = 1e9
    w_dark: float = 10.0
    aot_min: float = 0.01
    aot_initial: float = 0.1  # AOT_initial_D (P16/P17)
    lm_max_iterations: int = 500
    lm_tolerance: float = 1e-5
    dark_band: str = "B01"
    dark_pixel_threshold: float = 0.025  # L2SITE
    darkest_pixel_surface_reflectance: float = 0.01  # L2SITE
    aot_init_window_radius: int = 2  # gap filling, AOT-grid px
    aot_max_window_radius: int = 16
    default_aot: float = 0.1  # P16/P17
    sigma_smoothing_aot: float = 2.0
    # Vertical scale height of the aerosol (m; ours, a deviation from MAJA, docs/l2a.md "AOT over
    # relief"): > 0 estimates, gap-fills and smooths the AOT reduced to sea level, τ0 = τ(h)·exp(h/H),
    # each pixel's LUT read at its own τ0·exp(−h/H); 0 gives MAJA's one τ for every altitude.
    aot_height_scale_m: float = 2000.0
    aot_quantification: float = 0.005  # ATB band 2 = AOT / 0.005

    # --- environment and slope (§3.6, §3.7) -----------------------------------------------------
    env_corr_radius: int = 10  # coarse px: (2R+1)^2 box mean
    min_cos_e: float = 0.1
    min_cos_ratio: float = 0.2
    distance_threshold_m: float = 240.0  # DTM processing (hidden faces / topographic shadows)

    # --- composite (§2; used from the multi-temporal chain on) ------------------------------------
    max_age: int = 90  # Max_Age, days a composite pixel stays valid (P16/P17; P18t 60)
    number_of_stack_images: int = 10  # Number_Of_Stack_Images (STO depth)
    correl_band: str = "B04"  # Correl_Band (P17; P16 B2, P18t B1)
    water_mask_number: int = 10  # Water_Mask_Number (PWA/TWA stack depth)
    coef_sigma_aot: float = 1.0  # Coef_Sigma_AOT: high AOT if > mean + max(coef * std, min std)
    minimum_high_aot_std: float = 0.1  # Minimum_High_AOT_Std
    max_aot: float = 0.5  # Max_AOT: image mean AOT at or above it -> no composite update

    # --- multi-temporal cloud test (§1.2), correlation (§1.3), extension (§1.4) -------------------
    min_threshold_var_blue: float = 0.018  # P21's value for a 120 m coarse grid (0.016 at 240 m; P16/P17 0.025)
    max_threshold_var_blue: float = 0.060  # P21 (P16/P17 0.070)
    cloud_forgetting_duration: float = 45.0  # P21, days (P16/P17 30)
    k_nir_blue: float = 1.2  # P16/P17
    k_red_blue: float = 1.5
    delta_threshold: float = 0.005  # extension candidates: dHOT > thr - delta
    # ours, not MAJA's (0 = MAJA 4.x): refl_var / extension need red TOCR >= this x composite RCR, since a
    # non-absorbing cloud cannot darken the red; = Proj_Shad_Darkening_Max (docs/l2a.md "Shadow-like pixels")
    refl_var_min_red_ratio: float = 0.8
    n_correl: int = 3  # window radius, coarse px (7x7)
    min_pixel_correl: int = 15
    correl_threshold: float = 80.0  # percent (P16/P17/P21; P18t 90)
    discarded_pixels_ratio_min: float = 20.0  # percent of correlated pixels in a cloud label

    # --- cloud shadows (§1.9) and shadows of outside clouds (§1.10) --------------------------------
    shadow_band: str = "B04"  # Shadow_Band, all GIPP versions
    delta_h_min: float = 0.0  # m
    delta_h_max: float = 8000.0
    delta_h_step: float = 250.0
    darkening_min_percentile: float = 10.0  # percent
    cloud_cover_mult_factor: float = 2.0
    proj_shad_darkening_max: float = 0.8
    shadow_cloud_ratio_max: float = 1.0
    shadow_cloud_ratio_min: float = 0.5
    shadow_cloud_ratio_pix_nb: int = 10
    shad_var_percentile: float = 30.0  # P16/P17 (P18t 40)
    shad_var_darkening_max: float = 0.2  # P16/P17 (P18t 0.4)
    shad_var_composite_label_ratio: float = 80.0  # percent
    max_cloud_altitude: float = 8000.0  # m

    # --- multi-date water mask (§1.7) --------------------------------------------------------------
    min_percent_possible_water: float = 50.0

    # --- spectro-temporal AOT (§3.5) ---------------------------------------------------------------
    aot_method: str = "SPECTROTEMPORAL"  # P16/P17; INIT mode forces MULTISPECTRAL
    mt_aot_band: str = "B01"  # MT_AOT_Band_Code
    var_band: str = "B8A"  # Var_Band_Code
    stdev_band: str = "B12"  # Stdev_Band_Code
    relative_var_max: float = 0.075
    aot_max_age: int = 60  # days
    first_aot: float = 0.0  # AOT-insensitive TOA* interval: TOC at First_AOT and Second_AOT ...
    second_aot: float = 0.4
    toc_insensitive_threshold: float = 0.01  # ... differ by less than this
    std_noise: float = 0.001
    stdev_min: float = 0.02
    w_mt_equation2: float = 2.0
    mt_weight_threshold: float = 10.0
    st_weight_a: float = 1200.0  # W1, W2 x A / (dt^2 + B)
    st_weight_b: float = 800.0
    aot_initial_dm1: float = 0.1
    # Units of the MT equation residuals (gpumaja.atmosphere.aot_st): "surface" is MAJA's cost (ρs
    # differences, the default); "toa" (opt-in, a deviation from MAJA) multiplies them by the date's
    # total transmission dρ*/dρs, so that a real surface change between the dates weighs the same
    # whatever the trial AOT. Evidence for and against: docs/l2a.md "Spectro-temporal AOT".
    mt_residual_units: str = "surface"

    # --- series (§2 backward mode; Start_maja defaults) ---------------------------------------------
    n_backward: int = 8  # nbackward: the first N products initialise backward
    max_l2_diff: int = 30  # days; a larger gap re-initialises (S2 before 2017-07-01, Landsat)
    max_l2_diff_s2_constellation: int = 15  # S2 dates from 2017-07-01 (two satellites)

    # --- product --------------------------------------------------------------------------------
    reflectance_quantification: float = 10000.0
    reflectance_nodata: int = -10000

    def __post_init__(self) -> None:
        for name, allowed in (("mt_residual_units", ("surface", "toa")),
                              ("fine_shadow_darkening", ("surface", "rayleigh"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"L2 parameter {name} must be one of {', '.join(map(repr, allowed))}, "
                                 f"got {getattr(self, name)!r}")

    def replace(self, **changes) -> L2Params:
        """A copy with some fields changed; unknown names are a ValueError naming them."""
        unknown = sorted(set(changes) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"unknown L2 parameter(s): {', '.join(unknown)}")
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return asdict(self)


# Landsat 8/9 OLI band roles (no B9/B10 of S2; OLI B9 is the cirrus band, no water-vapour band).
LANDSAT_ROLES = {
    "blue_band": "B1", "green_band": "B3", "red_band": "B4", "nir_band": "B5", "swir1_band": "B6",
    "swir2_band": "B7", "cirrus_band": "B9", "wv_band": "", "wv_reference_band": "", "dark_band": "B1",
    "correl_band": "B4", "shadow_band": "B4", "mt_aot_band": "B1", "var_band": "B5", "stdev_band": "B7",
    "fine_blue_band": "B2", "fine_red_band": "B4",
}


def roles_for(params: L2Params, sensor: str) -> L2Params:
    """Parameters with band roles for the sensor family ("S2" keeps the S2 codes)."""
    if sensor == "LANDSAT":
        return params.replace(**LANDSAT_ROLES)
    return params
