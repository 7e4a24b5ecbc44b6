"""Reader of a MAJA GIPP set folder: LUTs (L2TOCR, L2DIRT, L2DIFT, L2ALBD, L2WATV), SMAC coefficients
(L2SMAC) and L2 parameters (L2COMM, L2SITE); maja-l2a.md §3.1, §3.3, §3.4 and §4.

- `find_gipp(folder, platform)`: the `.HDR`/`.EEF` file of each GIPP type for one platform.
- `read_gipp_tables(folder, platform, model)`: every table as float32 NumPy arrays (`GippTables`).
- `load_gipp_lut(folder, platform, model)`: the same wrapped as a `GippLUT` (an `AtmosphereLUT`).
- `read_l2comm(path)` / `l2params_from_l2comm(path, base)`: L2COMM (or L2SITE) values as `L2Params` fields.

Raw LUT files are headerless little-endian float32 in C order following `LUT_Indexes` (last index fastest),
one file per band in `Packaged_DBL_File` order (§4). Every file's byte size is checked against its axes.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import fields
from pathlib import Path

import numpy as np

from gpumaja.atmosphere.gipp_lut import (
    ALBEDO_AXES,
    TOC_AXES,
    TRANSMISSION_AXES,
    WATV_AXES,
    GippLUT,
    GippTables,
)
from gpumaja.atmosphere.minilut import SMAC_NCOEF
from gpumaja.errors import CorruptFileError, InputError, MissingFileError
from gpumaja.io.earth_explorer import (
    GippName,
    data_block,
    find_path,
    fixed_header,
    float_values,
    lut_indexes,
    packaged_files,
    parse_gipp_name,
    read_eef,
)
from gpumaja.model.bands import bands_of
from gpumaja.model.params import L2Params

__all__ = [
    "L2COMM_FIELDS",
    "PLATFORMS",
    "GippTables",
    "LutFile",
    "find_gipp",
    "l2params_from_l2comm",
    "load_gipp_lut",
    "read_gipp_tables",
    "read_l2comm",
    "read_lut",
    "read_smac",
]

log = logging.getLogger(__name__)

# platform key -> (sensor family of gpumaja.model.bands, mission codes of GIPP file names)
PLATFORMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "S2A": ("S2", ("S2A",)),
    "S2B": ("S2", ("S2B",)),
    "S2C": ("S2", ("S2C",)),
    "L8": ("LANDSAT", ("L8", "LANDSAT8", "LC8")),
    "L9": ("LANDSAT", ("L9", "LANDSAT9", "LC9")),
}
# mission codes valid for every platform of a family (e.g. "S2__TEST_GIP_L2SITE_...": mission "S2")
GENERIC_MISSIONS = {"S2": "S2", "L": "LANDSAT", "LANDSAT": "LANDSAT"}

LUT_TYPES = ("L2TOCR", "L2DIRT", "L2DIFT", "L2ALBD", "L2WATV")
PARAM_TYPES = ("L2SMAC", "L2COMM", "L2SITE")
OPTIONAL_TYPES = {"L2SITE"}
# Landsat has no water-vapour band: its GIPP sets carry no L2WATV
OPTIONAL_BY_FAMILY = {"S2": set(), "LANDSAT": {"L2WATV"}}

# A band LUT file name ends with its central wavelength ("..._bande_865"); nearest band within this
# distance, else the Packaged_DBL_File order is used.
MAX_WAVELENGTH_MISMATCH_NM = 30.0
_WAVELENGTH_RE = re.compile(r"(?:^|[_\-])(\d{3,4}(?:\.\d+)?)(?:nm)?(?:\.[A-Za-z]+)?$")
_FLOAT32_BYTES = 4


# ------------------------------------------------------------------------------------------ finding
def _check_platform(platform: str) -> str:
    if platform not in PLATFORMS:
        raise InputError(f"unknown platform {platform!r}; expected one of {', '.join(PLATFORMS)}")
    return platform


def _platform_of_mission(mission: str) -> str | None:
    for key, (_, missions) in PLATFORMS.items():
        if mission in missions:
            return key
    return None


def _gipp_entries(folder: Path) -> list[tuple[Path, GippName]]:
    out = []
    for p in sorted(folder.iterdir()):
        name = parse_gipp_name(p.name)
        if name is None or name.ext not in (".HDR", ".EEF"):
            continue
        if name.file_type not in LUT_TYPES + PARAM_TYPES:
            continue
        out.append((p, name))
    return out


def find_gipp(folder: str | Path, platform: str, model: str = "CONTINEN") -> dict[str, Path]:
    """{GIPP type: .HDR/.EEF path} of one platform's GIPP set in `folder` (maja-l2a.md §4).

    Types: L2TOCR, L2DIRT, L2DIFT, L2ALBD, L2WATV (LUTs of aerosol model `model`, `.HDR`), L2SMAC, L2COMM and,
    when present, L2SITE (`.EEF`). A file of the platform's own mission ("S2A_...") is preferred to a file for
    the whole family ("S2__..."). Errors: MissingFileError (no folder, or a type missing), InputError (no GIPP
    of that platform -- the message lists the platforms the folder holds --, or two files of one type).
    """
    platform = _check_platform(platform)
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingFileError("GIPP folder not found", folder)
    family = PLATFORMS[platform][0]
    own = set(PLATFORMS[platform][1])
    entries = _gipp_entries(folder)

    held = sorted({k for k in (_platform_of_mission(n.mission) for _, n in entries) if k is not None})
    mine = [(p, n) for p, n in entries if n.mission in own]
    if not mine:
        holds = ", ".join(held) if held else "none (no MAJA GIPP file found)"
        raise InputError(
            f"no MAJA GIPP for platform {platform} in this folder; it holds GIPPs for: {holds} "
            "(a LUT of another sensor cannot be used)", folder,
        )
    generic = [(p, n) for p, n in entries if GENERIC_MISSIONS.get(n.mission) == family]

    found: dict[str, Path] = {}
    missing = []
    other_models: set[str] = set()
    for gipp_type in LUT_TYPES + PARAM_TYPES:
        want_ext = ".HDR" if gipp_type in LUT_TYPES else ".EEF"
        chosen = None
        for pool in (mine, generic):
            cands = [(p, n) for p, n in pool if n.file_type == gipp_type and n.ext == want_ext]
            if gipp_type in LUT_TYPES:
                other_models.update(n.nickname for _, n in cands if n.nickname != model)
                cands = [(p, n) for p, n in cands if n.nickname == model]
            if len(cands) > 1:
                names = " and ".join(p.name for p, _ in cands)
                raise InputError(f"two {gipp_type} GIPPs for {platform}: {names}; keep one", folder)
            if cands:
                chosen = cands[0][0]
                break
        if chosen is not None:
            found[gipp_type] = chosen
        elif gipp_type not in OPTIONAL_TYPES | OPTIONAL_BY_FAMILY[family]:
            missing.append(gipp_type)
    if missing:
        extra = f" (LUTs of other aerosol models: {', '.join(sorted(other_models))})" if other_models else ""
        raise MissingFileError(
            f"the {platform} GIPP set lacks {', '.join(missing)} for aerosol model {model}{extra}", folder
        )
    return found


# ------------------------------------------------------------------------------------------ LUT files
class LutFile:
    """One LUT GIPP (`.HDR` + raw files): axes in header order and the stacked values (nfiles, *axes)."""

    def __init__(self, hdr: Path, axis_names: tuple[str, ...], axes: tuple[np.ndarray, ...],
                 values: np.ndarray, files: tuple[str, ...], name: GippName | None, header: dict[str, str]):
        self.hdr = hdr
        self.axis_names = axis_names
        self.axes = axes
        self.values = values
        self.files = files
        self.name = name
        self.header = header

    def canonical(self, order: tuple[str, ...]) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
        """Axes and values (nfiles, *axes) transposed into `order`; CorruptFileError on other axis names."""
        if sorted(self.axis_names) != sorted(order):
            raise CorruptFileError(
                f"LUT_Indexes are {', '.join(self.axis_names)}; expected {', '.join(order)}", self.hdr
            )
        perm = [self.axis_names.index(n) for n in order]
        values = self.values if perm == sorted(perm) else np.transpose(self.values, [0] + [p + 1 for p in perm])
        return tuple(self.axes[p] for p in perm), np.ascontiguousarray(values)


def read_lut(hdr: str | Path) -> LutFile:
    """Read a LUT GIPP: its `LUT_Indexes` and every `Packaged_DBL_File` as float32 (maja-l2a.md §4).

    MissingFileError when a raw file is absent; CorruptFileError when an axis is not strictly increasing or a
    raw file's byte size differs from prod(axis sizes) x 4 (the message gives both sizes).
    """
    hdr = Path(hdr)
    root = read_eef(hdr)
    indexes = lut_indexes(root, hdr)
    names = tuple(n for n, _ in indexes)
    for n, ax in indexes:
        if ax.size > 1 and np.any(np.diff(ax) <= 0):
            raise CorruptFileError(f"<{n}_Indexes> is not strictly increasing", hdr)
    axes = tuple(ax.astype(np.float32) for _, ax in indexes)
    shape = tuple(ax.size for ax in axes)
    nbytes = math.prod(shape) * _FLOAT32_BYTES
    rels = packaged_files(root, hdr)
    values = np.empty((len(rels),) + shape, dtype=np.float32)
    for k, rel in enumerate(rels):
        path = hdr.parent / rel
        if not path.is_file():
            raise MissingFileError(f"LUT file listed in {hdr.name} not found", path)
        size = path.stat().st_size
        if size != nbytes:
            raise CorruptFileError(
                f"LUT file has {size} bytes; expected {nbytes} (float32 {' x '.join(map(str, shape))} "
                f"from the LUT_Indexes of {hdr.name})", path,
            )
        raw = np.fromfile(path, dtype="<f4")
        if not np.all(np.isfinite(raw)):
            raise CorruptFileError("LUT file holds NaN or infinite values", path)
        values[k] = raw.reshape(shape)
    return LutFile(hdr, names, axes, values, tuple(rels), parse_gipp_name(hdr.name), fixed_header(root))


def _wavelength(rel: str) -> float:
    m = _WAVELENGTH_RE.search(Path(rel).name)
    return float(m.group(1)) if m else math.nan


def band_names(lut: LutFile, family: str) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Product band names of a band LUT's files: nearest central wavelength parsed from each file name, or
    the Packaged_DBL_File order (sn = 1..n) when the names give no one-to-one match."""
    bands = bands_of(family)
    wl = tuple(_wavelength(r) for r in lut.files)
    if all(not math.isnan(w) for w in wl):
        names = []
        for w in wl:
            dist = [abs(b.wavelength_nm - w) for b in bands]
            j = int(np.argmin(dist))
            names.append(bands[j].name if dist[j] <= MAX_WAVELENGTH_MISMATCH_NM else None)
        if None not in names and len(set(names)) == len(names):
            return tuple(names), wl
    if len(lut.files) == len(bands):
        return tuple(b.name for b in bands), wl
    raise CorruptFileError(
        f"cannot tell the bands of {len(lut.files)} LUT files (names {', '.join(Path(r).name for r in lut.files)})",
        lut.hdr,
    )


def read_smac(path: str | Path, nbands: int) -> np.ndarray:
    """(nbands, 49) float32 SMAC coefficients of an L2SMAC `.EEF` (maja-l2a.md §3.3): the file is
    coefficient-major (first nbands values = a_h2o of every band), bands in the GIPP band order."""
    path = Path(path)
    root = read_eef(path)
    block = data_block(root, path)
    n_el = find_path(block, "SMAC_NumberOfBands")
    c_el = find_path(block, "SMAC_Coefficients")
    if c_el is None:
        raise CorruptFileError("missing <SMAC_Coefficients>", path)
    coeffs = float_values(c_el.text, "SMAC_Coefficients", path)
    if n_el is not None:
        try:
            n_file = int((n_el.text or "").strip())
        except ValueError:
            raise CorruptFileError(f"<SMAC_NumberOfBands> is {n_el.text!r}, not an integer", path) from None
        if n_file != nbands:
            raise CorruptFileError(f"SMAC_NumberOfBands is {n_file}; the LUTs have {nbands} bands", path)
    if coeffs.size != SMAC_NCOEF * nbands:
        raise CorruptFileError(
            f"<SMAC_Coefficients> holds {coeffs.size} values; expected {SMAC_NCOEF} x {nbands} = "
            f"{SMAC_NCOEF * nbands}", path,
        )
    return np.ascontiguousarray(coeffs.reshape(SMAC_NCOEF, nbands).T, dtype=np.float32)


def _reorder(lut: LutFile, family: str, bands: tuple[str, ...], order: tuple[str, ...]):
    axes, values = lut.canonical(order)
    names, _ = band_names(lut, family)
    if sorted(names) != sorted(bands):
        raise CorruptFileError(
            f"bands {', '.join(names)} differ from the L2TOCR bands {', '.join(bands)}", lut.hdr
        )
    idx = [names.index(b) for b in bands]
    return axes, np.ascontiguousarray(values[idx])


def read_gipp_tables(folder: str | Path, platform: str, model: str = "CONTINEN") -> GippTables:
    """Every table of one platform's GIPP set for aerosol model `model` (maja-l2a.md §3.1, §4)."""
    folder = Path(folder)
    found = find_gipp(folder, platform, model)
    family = PLATFORMS[platform][0]

    tocr = read_lut(found["L2TOCR"])
    bands, wavelengths = band_names(tocr, family)
    toc_axes, toc = tocr.canonical(TOC_AXES)
    dirt_axes, dirt = _reorder(read_lut(found["L2DIRT"]), family, bands, TRANSMISSION_AXES)
    dift_axes, dift = _reorder(read_lut(found["L2DIFT"]), family, bands, TRANSMISSION_AXES)
    albd_axes, albd = _reorder(read_lut(found["L2ALBD"]), family, bands, ALBEDO_AXES)
    watv_axes: tuple[np.ndarray, ...] = ()
    watv = None
    if "L2WATV" in found:
        watv_lut = read_lut(found["L2WATV"])
        if len(watv_lut.files) != 1:
            raise CorruptFileError(f"L2WATV lists {len(watv_lut.files)} files; expected 1", watv_lut.hdr)
        watv_axes, watv_values = watv_lut.canonical(WATV_AXES)
        watv = watv_values[0]
    smac = read_smac(found["L2SMAC"], len(bands))

    version = tocr.name.version if tocr.name else tocr.header.get("File_Version", "?")
    return GippTables(
        platform=platform, model=model, source=f"MAJA GIPP {platform} {model} {version} ({folder})",
        bands=bands, wavelengths_nm=wavelengths, toc_axes=toc_axes, toc=toc,
        dirt_axes=dirt_axes, dirt=dirt, dift_axes=dift_axes, dift=dift, albd_axes=albd_axes, albd=albd,
        smac=smac, watv_axes=watv_axes, watv=watv, files={k: p.name for k, p in found.items()},
    )


def load_gipp_lut(folder: str | Path, platform: str, model: str = "CONTINEN") -> GippLUT:
    """The GIPP set of `platform` as an `AtmosphereLUT`."""
    return GippLUT(read_gipp_tables(folder, platform, model))


# ------------------------------------------------------------------------------------------ L2COMM
# MAJA L2COMM/L2SITE element ("Section/Tag" under Data_Block) -> L2Params field. Tags with no L2Params field
# (e.g. Cloud_Masking/Min_Threshold_Var_Blue, K_NIR_Blue, Correl_Band_Code) are not read.
L2COMM_FIELDS: dict[str, str] = {
    # common
    "Common_Parameters/No_Data": "reflectance_nodata",
    "Common_Parameters/Max_No_Data_Percentage": "max_no_data_percentage",
    "Common_Parameters/Max_Cloud_Percentage": "max_cloud_percentage",
    "Common_Parameters/Slope_Min_Cos_I": "slope_min_cos_i",
    "VAP_Configuration_Values/VAP_Quantification_Value": "water_vapor_quantification",
    "AOT_Configuration_Values/AOT_Quantification_Value": "aot_quantification",
    # band roles
    "Thematic_Definition/Blue_Band_Code": "blue_band",
    "Thematic_Definition/Green_Band_Code": "green_band",
    "Thematic_Definition/Red_Band_Code": "red_band",
    "Thematic_Definition/NIR_Band_Code": "nir_band",
    "Thematic_Definition/SWIR_Band_Code": "swir1_band",
    "Thematic_Definition/Band_2200_Code": "swir2_band",
    "Cirrus_Mask/Cirrus_Band_Code": "cirrus_band",
    "Atmospheric_Absorption_Correction/Water_Vapor_Band_Code": "wv_band",
    "Atmospheric_Absorption_Correction/Water_Vapor_Reference_Band_Code": "wv_reference_band",
    "AOT_Estimation/Dark_Band_Code": "dark_band",
    # saturation (§1.1; "Saturation_Threshold_Sub", the coarse-resolution twin, is not read)
    "Subsampling/Saturation_Threshold": "saturation_threshold",
    # DTM
    "DTM_Processing/Distance_Threshold": "distance_threshold_m",
    # gas and water vapour (§3.3, §3.4)
    "Atmospheric_Absorption_Correction/Ozone_Amount_Default_Value": "ozone_amount_default",
    "Atmospheric_Absorption_Correction/Water_Amount_Default_Value": "water_amount_default",
    "Atmospheric_Absorption_Correction/Water_Vapor_Max_Threshold": "water_vapor_max",
    "Atmospheric_Absorption_Correction/Water_Vapor_Reflectance_Threshold_Ref":
        "water_vapor_reflectance_threshold_ref",
    "Atmospheric_Absorption_Correction/Water_Vapor_Reflectance_Threshold": "water_vapor_reflectance_threshold_wv",
    "Atmospheric_Absorption_Correction/Water_Vapor_Init_Window_Radius": "water_vapor_init_window_radius",
    "Atmospheric_Absorption_Correction/Water_Vapor_Max_Window_Radius": "water_vapor_max_window_radius",
    "Atmospheric_Absorption_Correction/Water_Vapor_SE_Valid_Radius": "water_vapor_se_valid_radius",
    "Rayleigh_Correction/Rayleigh_Correction_Default_AOT": "rayleigh_correction_default_aot",
    # cirrus (§1.5)
    "Cirrus_Mask/Min_Percent_Mask_Cirrus": "min_percent_mask_cirrus",
    "Cirrus_Mask/Cirrus_Mask_Threshold_Offset": "cirrus_mask_threshold_offset",
    "Cirrus_Mask/Cirrus_Mask_Threshold_Gain": "cirrus_mask_threshold_gain",
    # snow (§1.6)
    "Snow_Masking/SE_Snow_Radius": "se_snow_radius",
    "Snow_Masking/NDSI_Threshold": "ndsi_threshold",
    "Snow_Masking/Red_Reflectance_Threshold": "snow_red_reflectance_threshold",
    "Snow_Masking/SWIR1_Reflectance_Threshold": "snow_swir1_reflectance_threshold",
    # clouds (§1.1, §1.8)
    "Cloud_Masking/Cloud_Blue_Reflectance_Threshold": "cloud_blue_reflectance_threshold",
    "Cloud_Masking/Cloud_Red_Reflectance_Threshold": "cloud_red_reflectance_threshold",
    "Cloud_Masking/Nir_Red_Ratio_Max_Threshold": "nir_red_ratio_max",
    "Cloud_Masking/Nir_Red_Ratio_Min_Threshold": "nir_red_ratio_min",
    "Cloud_Masking/Nir_Swir_Ratio_Min_Threshold": "nir_swir_ratio_min",
    "Cloud_Masking/SE_Input_Masks_Radius": "se_input_masks_radius",
    "Cloud_Masking/Water_Reflectance_Threshold": "water_reflectance_threshold",
    "Cloud_Masking/Water_Sunglint_Reflectance_Threshold": "water_sunglint_reflectance_threshold",
    "Cloud_Masking/SE_Cloud_Radius": "se_cloud_radius",
    # water (§1.7)
    "Water_Masking/Water_NDVI_Threshold": "water_ndvi_threshold",
    "Water_Masking/Water_Red_Reflectance_Threshold": "water_red_reflectance_threshold",
    "Water_Masking/Water_Slope_Threshold": "water_slope_threshold",
    # AOT (§3.5)
    "Multi_Spectral_Method/NDVI_Threshold": "ndvi_aot_threshold",
    "Multi_Spectral_Method/Red_TOA_Threshold": "red_toa_threshold",
    "Multi_Spectral_Method/MS_Slope": "ms_slope",
    "Multi_Spectral_Method/MS_YIntercept": "ms_y_intercept",
    "Multi_Spectral_Method/NDVI_Slope": "ndvi_slope",
    "Multi_Spectral_Method/NDVI_YIntercept": "ndvi_y_intercept",
    "Multi_Spectral_Method/W_MS": "w_ms",
    "AOT_Estimation/Default_AOT": "default_aot",
    "AOT_Estimation/Step_AOT": "step_aot",
    "AOT_Estimation/Sampling_Interval_Min": "sampling_interval_min",
    "AOT_Estimation/Sampling_Interval_Max": "sampling_interval_max",
    "AOT_Estimation/N_Pix_Min": "n_pix_min",
    "AOT_Estimation/Increment_N_Distance": "increment_n_distance",
    "AOT_Estimation/Half_Window_Size": "half_window_size",
    "AOT_Estimation/W_dark": "w_dark",
    "AOT_Estimation/W_bounds": "w_bounds",
    "AOT_Estimation/AOT_min": "aot_min",
    "AOT_Estimation/F_Tolerance": "lm_tolerance",
    "AOT_Estimation/Max_Iterations": "lm_max_iterations",
    "AOT_Estimation/AOT_initial_D": "aot_initial",
    "AOT_Estimation/Init_Window_Radius": "aot_init_window_radius",
    "AOT_Estimation/Max_Window_Radius": "aot_max_window_radius",
    "AOT_Estimation/Sigma_Smoothing_AOT": "sigma_smoothing_aot",
    # L2SITE (dark pixel, §3.5)
    "AOT_Estimation/Dark_Pixel_Threshold": "dark_pixel_threshold",
    "AOT_Estimation/Darkest_Pixel_Surface_Reflectance": "darkest_pixel_surface_reflectance",
    # environment and slope (§3.6, §3.7)
    "Environment_Correction/Env_Corr_Radius": "env_corr_radius",
    "Slope_Correction/Min_Cos_E": "min_cos_e",
    "Slope_Correction/Min_Cos_Ratio": "min_cos_ratio",
}

_BAND_FIELDS = {"blue_band", "green_band", "red_band", "nir_band", "swir1_band", "swir2_band", "cirrus_band",
                "wv_band", "wv_reference_band", "dark_band"}
_BAND_CODE_RE = re.compile(r"^B?(\d{1,2})(A?)$", re.IGNORECASE)


def _family_of_eef(root, path: Path) -> str | None:
    mission = fixed_header(root).get("Mission", "").upper().replace("-", "").replace("_", "")
    if mission.startswith("SENTINEL2"):
        return "S2"
    if mission.startswith("LANDSAT"):
        return "LANDSAT"
    name = parse_gipp_name(path.name)
    if name is not None:
        if name.mission.startswith("S2"):
            return "S2"
        key = _platform_of_mission(name.mission)
        if key is not None or GENERIC_MISSIONS.get(name.mission) == "LANDSAT":
            return "LANDSAT"
    return None


def band_name_of_code(code: str, family: str | None, label: str | Path, tag: str) -> str:
    """Product band name of a MAJA band code: "B1" (or the bare index "1") -> "B01" for Sentinel-2, "B1" for
    Landsat; "B8A" stays "B8A". CorruptFileError naming the tag when the code is not a band of the sensor."""
    m = _BAND_CODE_RE.match(code.strip())
    if m is None:
        raise CorruptFileError(f"<{tag}> holds {code!r}, not a band code", label)
    number, suffix = int(m.group(1)), m.group(2).upper()
    if family == "S2":
        name = f"B{number:02d}" if not suffix else f"B{number}A"
    else:
        name = f"B{number}{suffix}"
    if family is not None:
        known = {b.name for b in bands_of(family)}
        if name not in known:
            raise CorruptFileError(f"<{tag}> band code {code!r} is not a {family} band", label)
    return name


def _convert(text: str, default, field_name: str, tag: str, label: Path, family: str | None):
    if field_name in _BAND_FIELDS:
        return band_name_of_code(text, family, label, tag)
    try:
        if isinstance(default, bool):
            low = text.lower()
            if low not in ("true", "false"):
                raise ValueError(text)
            return low == "true"
        if isinstance(default, int):
            value = float(text)
            if not value.is_integer():
                raise ValueError(text)
            return int(value)
        if isinstance(default, float):
            return float(text)
        return text
    except ValueError:
        kind = type(default).__name__
        raise CorruptFileError(f"<{tag}> holds {text!r}; expected a {kind} for {field_name}", label) from None


def read_l2comm(path: str | Path) -> dict[str, float | int | str]:
    """Values of a MAJA L2COMM (or L2SITE) `.EEF` as {L2Params field: value}, through `L2COMM_FIELDS`.

    Only elements present in the file and mapped to a field are returned; band codes become product band
    names ("B1" -> "B01" for Sentinel-2). InputError when the file is another GIPP type.
    """
    path = Path(path)
    root = read_eef(path)
    file_type = fixed_header(root).get("File_Type", "")
    if file_type and file_type not in ("GIP_L2COMM", "GIP_L2SITE"):
        raise InputError(f"File_Type is {file_type}; expected an L2 parameter file (GIP_L2COMM or GIP_L2SITE)",
                         path)
    block = data_block(root, path)
    family = _family_of_eef(root, path)
    defaults = {f.name: f.default for f in fields(L2Params)}
    out: dict[str, float | int | str] = {}
    for tag_path, field_name in L2COMM_FIELDS.items():
        el = find_path(block, tag_path)
        if el is None or el.text is None or not el.text.strip():
            continue
        tag = tag_path.rsplit("/", 1)[-1]
        out[field_name] = _convert(el.text.strip(), defaults[field_name], field_name, tag, path, family)
    log.debug("%s: %d L2 parameters read", path.name, len(out))
    return out


def l2params_from_l2comm(path: str | Path, base: L2Params | None = None) -> L2Params:
    """`base` (default: the operational defaults) with the values of a MAJA L2COMM/L2SITE `.EEF`."""
    base = L2Params() if base is None else base
    return base.replace(**read_l2comm(path))
