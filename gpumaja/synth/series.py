"""`gpumaja synth`: write a synthetic Sentinel-2 L1C time series with its truth.

    out/<S2x_MSIL1C_..._T31TCJ_....SAFE>     one real-format SAFE per date (io.safe_writer)
    out/truth/truth.json                     dates, platforms, per-date statistics, parameters, seed
    out/truth/dem.tif                        the altitude field (m) used by the generator, 10 m
    out/truth/snow_line_daily.json           the true snow line (m, null = no snow) of every day from the
                                             first date - 30 days to the last + 30 days (scene.snow_line_m)
    out/truth/<YYYYMMDD>/*.tif               per-date truth on the 10 m grid (see TRUTH_FILES)

The output is a deterministic function of (dates, size, seed, start, revisit_days, forward). The true
snow of any day, acquired or not, is `scene.true_snow(scene.make_landscape(size, seed), day)`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from gpumaja.errors import InputError
from gpumaja.io.safe_writer import SafeDate, names, write_safe
from gpumaja.synth import scene
from gpumaja.synth.atmosphere import S2_BAND_NAMES, default_lut
from gpumaja.synth.sixs_forward import sixs_forward

GENERATOR = "gpumaja synth"
FORMAT_VERSION = 1

# file name -> (description, dtype)
TRUTH_FILES = {
    "cloud_mask.tif": (f"cloud (optical thickness > {scene.CLOUD_MASK_TAU:g}), 1 = cloud", "uint8"),
    "cloud_altitude.tif": ("cloud altitude above sea level (m), 0 = no cloud", "float32"),
    "cloud_optical_thickness.tif": ("thick-cloud optical thickness", "float32"),
    "cirrus_mask.tif": (f"cirrus (optical thickness > {scene.CIRRUS_MASK_TAU:g}), 1 = cirrus", "uint8"),
    "cirrus_optical_thickness.tif": ("cirrus optical thickness", "float32"),
    "shadow_mask.tif": (f"cloud shadow (direct sun < {scene.SHADOW_SUN_MAX:g}) outside clouds", "uint8"),
    "snow.tif": ("snow, 1 = snow", "uint8"),
    "water.tif": ("water, 1 = water", "uint8"),
    "surface_reflectance.tif": ("surface reflectance B01..B12 (13 bands)", "float32"),
    "aot.tif": ("aerosol optical thickness at 550 nm of the column above the pixel", "float32"),
    "water_vapour.tif": ("water vapour column above the pixel (g/cm2)", "float32"),
}


def _is_previous_output(out: Path) -> bool:
    marker = out / "truth" / "truth.json"
    try:
        meta = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(meta, dict) or meta.get("generator") != GENERATOR:
        return False
    for entry in out.iterdir():
        ok = (entry.name == "truth" and entry.is_dir()) or (entry.name.endswith(".SAFE") and entry.is_dir()) \
            or (entry.name.startswith(".") and ".SAFE.tmp-" in entry.name)
        if not ok:
            return False
    return True


def _prepare_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder", out)
    if out.exists() and any(out.iterdir()):
        if not _is_previous_output(out):
            raise InputError("output folder is not empty and does not hold a previous `gpumaja synth` "
                             "output; refusing to overwrite it (choose an empty or new folder)", out)
        for entry in out.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _write_tif(path: Path, data: np.ndarray, dtype: str, descriptions: list[str] | None = None) -> None:
    import rasterio
    from affine import Affine

    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[None]
    _, h, w = arr.shape
    profile = {
        "driver": "GTiff", "width": w, "height": h, "count": arr.shape[0], "dtype": dtype, "crs": scene.CRS,
        "transform": Affine(10.0, 0.0, scene.UL_X, 0.0, -10.0, scene.UL_Y), "compress": "deflate",
        "tiled": True, "blockxsize": 256, "blockysize": 256,
    }
    if w < 256 or h < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize")
        profile.pop("blockysize")
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dst:
        dst.write(arr.astype(dtype))
        if descriptions:
            for i, text in enumerate(descriptions, start=1):
                dst.set_band_description(i, text)


def safe_date(truth: scene.DateTruth, size: int) -> SafeDate:
    """The SafeDate (what io.safe_writer writes) of one synthetic date."""
    plan = truth.plan
    return SafeDate(
        platform=plan.platform,
        datatake_start=plan.acquired,
        sensing_time=plan.acquired + timedelta(seconds=10, microseconds=476000),
        relative_orbit=scene.RELATIVE_ORBIT,
        absolute_orbit=plan.absolute_orbit,
        tile=scene.TILE,
        crs=scene.CRS,
        crs_name="WGS84 / UTM zone 31N",
        ulx=scene.UL_X,
        uly=scene.UL_Y,
        size_10m=size,
        reflectance=truth.toa,
        sun_zenith_grid=truth.sun_grid[0],
        sun_azimuth_grid=truth.sun_grid[1],
        view_grids=truth.view_grids,
        mean_sun=(float(truth.sun_zenith.mean()), float(truth.sun_azimuth.mean())),
        mean_view=truth.view_mean,
        angle_step_m=scene.ANGLE_STEP_M,
        cloud_percent=float(truth.stats["cloud_percent"]),
        snow_percent=float(truth.stats["snow_percent"]),
    )


def _write_truth_date(folder: Path, t: scene.DateTruth) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "cloud_mask.tif": t.cloud_mask, "cloud_altitude.tif": t.cloud_altitude,
        "cloud_optical_thickness.tif": t.cloud_tau, "cirrus_mask.tif": t.cirrus_mask,
        "cirrus_optical_thickness.tif": t.cirrus_tau, "shadow_mask.tif": t.shadow_mask,
        "snow.tif": t.snow, "water.tif": t.water, "surface_reflectance.tif": t.surface,
        "aot.tif": t.aot, "water_vapour.tif": t.water_vapour,
    }
    for name, arr in arrays.items():
        desc, dtype = TRUTH_FILES[name]
        bands = list(S2_BAND_NAMES) if name == "surface_reflectance.tif" else [desc]
        _write_tif(folder / name, arr, dtype, bands)
    return sorted(arrays)


SNOW_LINE_DAILY_MARGIN_DAYS = 30


def snow_line_daily(seed: int, first: date, last: date,
                    margin_days: int = SNOW_LINE_DAILY_MARGIN_DAYS) -> dict[str, float | None]:
    """ISO day -> true snow line (m, 0.1 m rounding; None = no snow) from `first` - margin to `last` + margin."""
    days = (last - first).days + 2 * margin_days + 1
    out: dict[str, float | None] = {}
    for k in range(days):
        d = first + timedelta(days=k - margin_days)
        line = scene.snow_line_m(seed, d)
        out[d.isoformat()] = None if line is None else round(line, 1)
    return out


def generate_series(out: Path, dates: int, size: int, seed: int, start: date | None = None,
                    progress: Callable[[str], None] | None = None, forward: str = "6s",
                    revisit_days: int = scene.REVISIT_DAYS) -> list[Path]:
    """Write `dates` synthetic L1C SAFEs of `size` x `size` px (10 m), one every `revisit_days` days,
    and their truth into `out`.

    `forward` is the radiative-transfer model of the TOA: "6s" (default; the scattering tables of the
    shipped 6S LUT, `gpumaja.synth.sixs_forward`) or "analytic" (the single-layer delta-Eddington model
    of `gpumaja.synth.atmosphere`).

    Returns the SAFE paths in date order. Raises InputError if `out` holds anything but a previous
    synth output, if `size` is not a multiple of 6, `dates` < 1 or `revisit_days` < 1."""
    out = Path(out)
    if not isinstance(dates, (int, np.integer)) or dates < 1:
        raise InputError(f"--dates must be a positive integer, got {dates!r}")
    try:
        scene.check_size(size)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if forward not in ("6s", "analytic"):
        raise InputError(f"--forward must be '6s' or 'analytic', got {forward!r}")
    if not isinstance(revisit_days, (int, np.integer)) or revisit_days < 1:
        raise InputError(f"--revisit must be a positive number of days, got {revisit_days!r}")
    report = progress or (lambda _msg: None)
    lut = sixs_forward("S2A") if forward == "6s" else default_lut()
    _prepare_out(out)
    truth_dir = out / "truth"
    truth_dir.mkdir()
    plans = scene.plan_dates(dates, start, revisit_days)
    meta = {
        "generator": GENERATOR,
        "format_version": FORMAT_VERSION,
        "status": "incomplete",
        "seed": seed,
        "size": size,
        "tile": scene.TILE,
        "crs": scene.CRS,
        "ul": [scene.UL_X, scene.UL_Y],
        "resolution_m": 10.0,
        "start": plans[0].day.isoformat(),
        "dates": [],
        "parameters": {
            "revisit_days": int(revisit_days),
            "relative_orbit": scene.RELATIVE_ORBIT,
            "cloud_mask_optical_thickness": scene.CLOUD_MASK_TAU,
            "cirrus_mask_optical_thickness": scene.CIRRUS_MASK_TAU,
            "shadow_direct_sun_max": scene.SHADOW_SUN_MAX,
            "environment_box_m": 2 * scene.ENV_RADIUS_M,
            "atmosphere_grid_m": 10 * scene.ATMOSPHERE_GRID_FACTOR,
            "forward_model": (f"6S scattering tables ({lut.source}) + synthetic SMAC gases" if forward == "6s"
                              else "analytic single-layer delta-Eddington (gpumaja.synth.atmosphere)"),
            "aerosol_model": ("6S continental" if forward == "6s" else
                              "continental-like: Angstrom 1.3, ssa 0.90, HG g 0.65 (gpumaja.synth.atmosphere)"),
            "water_vapour_scale_height_m": scene.WATER_VAPOUR_SCALE_HEIGHT_M,
            "aerosol_scale_height_m": scene.AEROSOL_SCALE_HEIGHT_M,
            "dn": "round(rho * 10000) + 1000, baseline 05.10",
            "snow_line": (f"{scene.SNOW_LINE_SUMMIT_M:g} - {scene.SNOW_LINE_SEASON_M:g} * winter(day) + weather "
                          f"({scene.SNOW_WEATHER_TERMS} sinusoids of {scene.SNOW_WEATHER_PERIOD_DAYS[0]:g}-"
                          f"{scene.SNOW_WEATHER_PERIOD_DAYS[1]:g} days, amplitudes summing to "
                          f"{scene.SNOW_WEATHER_AMPLITUDE_M:g} m) - snowfall events (~1 per "
                          f"{1 / scene.SNOWFALL_RATE_PER_DAY:g} days, {scene.SNOWFALL_DROP_M:g} m drop recovering "
                          f"over {scene.SNOWFALL_RECOVERY_DAYS[0]}-{scene.SNOWFALL_RECOVERY_DAYS[1]} days), "
                          f"while winter(day) > {scene.SNOW_WINTER_MIN:g}; a function of (seed, day) only "
                          "(gpumaja.synth.scene.snow_line_m)"),
        },
        "files": {name: desc for name, (desc, _) in TRUTH_FILES.items()},
        "series_files": {
            "dem.tif": "altitude (m), 10 m",
            "snow_line_daily.json": (f"ISO day -> true snow line (m), null = no snow, from the first date - "
                                     f"{SNOW_LINE_DAILY_MARGIN_DAYS} days to the last + "
                                     f"{SNOW_LINE_DAILY_MARGIN_DAYS} days"),
        },
    }
    (truth_dir / "truth.json").write_text(json.dumps(meta, indent=2))

    report("landscape")
    land = scene.make_landscape(size, seed)
    _write_tif(truth_dir / "dem.tif", land.dem, "float32", ["altitude (m)"])
    (truth_dir / "snow_line_daily.json").write_text(
        json.dumps(snow_line_daily(seed, plans[0].day, plans[-1].day), indent=1))
    safes: list[Path] = []
    for plan in plans:
        label = f"date {plan.index + 1}/{dates} {plan.day.isoformat()} ({plan.sky})"
        report(f"{label}: radiative transfer")
        truth = scene.synthesize_date(land, plan, lut)
        report(f"{label}: SAFE")
        sd = safe_date(truth, size)
        safe = write_safe(sd, out)
        safes.append(safe)
        report(f"{label}: truth")
        files = _write_truth_date(truth_dir / plan.key, truth)
        meta["dates"].append({
            "date": plan.day.isoformat(),
            "key": plan.key,
            "platform": plan.platform,
            "acquired": plan.acquired.isoformat().replace("+00:00", "Z"),
            "absolute_orbit": plan.absolute_orbit,
            "sky": plan.sky,
            "safe": names(sd)["safe"],
            "files": files,
            **truth.stats,
        })
        (truth_dir / "truth.json").write_text(json.dumps(meta, indent=2))
    meta["status"] = "complete"
    (truth_dir / "truth.json").write_text(json.dumps(meta, indent=2))
    report("done")
    return safes
