#!/usr/bin/env python
"""L3A (WASP), LIS snow maps and the snow cover duration against the truth of a synthetic series (not a test).

Generates (or with ``--reuse`` reuses) a synthetic Sentinel-2 series (``gpumaja.synth.generate_series``,
docs/synthetic.md; default 600 x 600 px, one date every 5 days from 2023-11-01 to 2024-05-31, seed 0, 6S
forward model), runs the L2A chain on it (``gpumaja.pipeline.l2a.run_l2a``, the truth DEM), then

(a) **L3A** (``gpumaja.pipeline.l3a.run_l3a``, WaspParams defaults) centred on the 15th of every month
    of the series: FRC vs the true surface reflectance *of the synthesis date* (the generator's
    ``scene.surface_reflectance(land, day, scene.snow_line_m(seed, day))``, 10 m block-averaged to
    20 m for R2): RMSE and bias per band over FLG == 4 (land) pixels; also over the land pixels that are
    snow-free in the truth of the synthesis date, and over those of them on gentle slopes (< 5 deg);
    the share of each FLG class. FRC is WASP's composite of FRE (slope-corrected reflectance) normalised
    to a nadir view: the synthetic generator has **no terrain illumination** (its surface is a flat
    Lambertian reflector seen through an atmosphere that only depends on the altitude) and no BRDF, so
    the slope correction and the directional normalisation are errors here, largest on steep slopes
    under a low winter sun — hence the gentle-slope columns;
(b) **snow maps** (``gpumaja.pipeline.snow.run_snow``, LisParams defaults, the truth DEM) of every date:
    SNW == 100 vs the true snow (20 m: a pixel is snow when >= half of its four 10 m pixels are) over
    the pixels that are neither flagged 205 / 255 nor truly cloudy (any of the four 10 m pixels in the
    truth cloud or cirrus mask): overall accuracy, precision, recall, F1, per date and in total;
(c) **snow cover duration** (``gpumaja.pipeline.scd.run_scd``, ScdParams defaults) of the hydrological
    year holding the series' first date (2023-09-01..2024-08-31 by default): SCD vs the SCD of the true
    daily snow (``scene.true_snow`` of every day, the same 20 m aggregation, summed over the period):
    MAE and bias in days over the pixels with NOBS > 0; SOD / SMOD (first / last day of the longest
    snow period, ties to the first) the same where both SCDs are > 10 days; NOBS statistics. Outside
    the observed dates LIS extrapolates the first / last observation (wasp-l3a-and-lis-snow.md §3), so
    the truth has no snow there only if the series starts and ends snow-free.

One markdown report goes to stdout and ``--md-out``; everything to ``--json-out``.

    python scripts/validate_l3a_snow.py --size 312 --workdir /tmp/val_l3a_snow
    python scripts/validate_l3a_snow.py --workdir /tmp/val_l3a_snow --reuse   # scores again, L2A kept
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_JSON = REPO / "scripts" / "results" / "validate_l3a_snow.json"
DEFAULT_MD = REPO / "scripts" / "results" / "validate_l3a_snow.md"
R1_BANDS = ("B02", "B03", "B04", "B08")
R2_BANDS = ("B05", "B06", "B07", "B8A", "B11", "B12")
GROUP_FACTOR = {"R1": 1, "R2": 2}  # 10 m truth pixels per group pixel (one side)
FLG_NAMES = {0: "nodata", 1: "cloud", 2: "snow", 3: "water", 4: "land"}
FLAT_SLOPE_DEG = 5.0
SIZE_MULTIPLE = 24  # 10 m px per 240 m L2A coarse pixel
SNW_SNOW, SNW_CLOUD, SNW_NODATA = 100, 205, 255


# ---------------------------------------------------------------------------------------------------
# Metrics (pure NumPy; tests/test_validate_l3a_snow_script.py)
# ---------------------------------------------------------------------------------------------------


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of the last two axes (f = 1: unchanged, as float)."""
    a = np.asarray(a)
    if f == 1:
        return a.astype(np.float64)
    *lead, h, w = a.shape
    return a.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1))


def majority(mask10: np.ndarray, f: int = 2) -> np.ndarray:
    """A coarse pixel is True when at least half of its f x f 10 m pixels are (snow truth at 20 m)."""
    return block_mean(np.asarray(mask10, np.float64), f) >= 0.5


def any_of(mask10: np.ndarray, f: int = 2) -> np.ndarray:
    """A coarse pixel is True when any of its f x f 10 m pixels is (truly cloudy at 20 m)."""
    return block_mean(np.asarray(mask10, np.float64), f) > 0.0


def slope_deg(dem: np.ndarray, res_m: float) -> np.ndarray:
    """Terrain slope (deg) by central differences (one-sided at the edges)."""
    gy, gx = np.gradient(np.asarray(dem, np.float64), res_m)
    return np.degrees(np.arctan(np.hypot(gx, gy)))


def error_stats(est: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> dict:
    """n, RMSE, bias (mean of est - ref), mean truth over valid pixels where both are finite."""
    ok = np.asarray(valid, bool) & np.isfinite(est) & np.isfinite(ref)
    if not ok.any():
        return {"n": 0, "rmse": None, "bias": None, "mean_truth": None}
    e = est[ok].astype(np.float64) - ref[ok].astype(np.float64)
    return {"n": int(e.size), "rmse": float(np.sqrt(np.mean(e * e))), "bias": float(e.mean()),
            "mean_truth": float(ref[ok].astype(np.float64).mean())}


def band_errors(frc: np.ndarray, truth: np.ndarray, bands, valid: np.ndarray) -> dict:
    """Per band: error_stats of frc[i] vs truth[i] over `valid`."""
    return {b: error_stats(frc[i], truth[i], valid) for i, b in enumerate(bands)}


def flag_shares(flag: np.ndarray) -> dict[str, float]:
    """Percent of all pixels in each FLG class (0 nodata, 1 cloud, 2 snow, 3 water, 4 land)."""
    n = flag.size
    return {name: 100.0 * float((flag == v).sum()) / n for v, name in FLG_NAMES.items()}


def confusion(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> dict[str, int]:
    p, r = np.asarray(pred, bool)[valid], np.asarray(ref, bool)[valid]
    return {"tp": int((p & r).sum()), "fp": int((p & ~r).sum()), "fn": int((~p & r).sum()),
            "tn": int((~p & ~r).sum())}


def add_counts(acc: dict, c: dict) -> dict:
    for k, v in c.items():
        acc[k] = acc.get(k, 0) + v
    return acc


def scores(c: dict[str, int]) -> dict:
    """Overall accuracy, precision, recall and F1 of a confusion count (None where undefined)."""
    tp, fp, fn, tn = (c.get(k, 0) for k in ("tp", "fp", "fn", "tn"))
    n = tp + fp + fn + tn
    return {**c, "n": n, "oa": (tp + tn) / n if n else None,
            "precision": tp / (tp + fp) if tp + fp else None, "recall": tp / (tp + fn) if tp + fn else None,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None}


def snow_confusion(snw: np.ndarray, truth_snow: np.ndarray, truth_cloudy: np.ndarray) -> dict[str, int]:
    """SNW == 100 vs the true snow over the pixels neither flagged 205 / 255 (254) nor truly cloudy."""
    snw = np.asarray(snw)
    valid = ~np.isin(snw, (SNW_CLOUD, SNW_NODATA, 254)) & ~np.asarray(truth_cloudy, bool)
    return confusion(snw == SNW_SNOW, truth_snow, valid)


class SnowRuns:
    """Streaming snow cover duration of a daily boolean series: feed one (H, W) day at a time.

    scd = number of snow days; the longest run of consecutive snow days (the first one on ties) gives
    sod (its first day) and smod (its last day), day indices from the first day fed; both 0 where
    scd <= min_days (LIS compute_SOD_SMOD.py, wasp-l3a-and-lis-snow.md §3)."""

    def __init__(self, shape: tuple[int, int]):
        self.day = 0
        self.scd = np.zeros(shape, np.int32)
        self._run = np.zeros(shape, np.int32)
        self._best = np.zeros(shape, np.int32)
        self._best_end = np.zeros(shape, np.int32)

    def add(self, snow: np.ndarray) -> None:
        snow = np.asarray(snow, bool)
        self.scd += snow
        self._run = np.where(snow, self._run + 1, 0)
        longer = self._run > self._best  # strict: the first longest run wins ties
        self._best = np.where(longer, self._run, self._best)
        self._best_end = np.where(longer, self.day, self._best_end)
        self.day += 1

    def result(self, min_days: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scd, sod, smod) int32."""
        keep = self.scd > min_days
        smod = np.where(keep, self._best_end, 0)
        sod = np.where(keep, self._best_end - self._best + 1, 0)
        return self.scd.copy(), sod.astype(np.int32), smod.astype(np.int32)


def day_errors(est: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> dict:
    """n, MAE, bias (mean est - ref) and RMSE in days over valid pixels."""
    valid = np.asarray(valid, bool)
    if not valid.any():
        return {"n": 0, "mae": None, "bias": None, "rmse": None}
    e = est[valid].astype(np.float64) - ref[valid].astype(np.float64)
    return {"n": int(e.size), "mae": float(np.abs(e).mean()), "bias": float(e.mean()),
            "rmse": float(np.sqrt(np.mean(e * e)))}


def synthesis_dates(first: date, last: date, day_of_month: int = 15) -> list[date]:
    """The `day_of_month` of every month with first <= date <= last."""
    out = []
    y, m = first.year, first.month
    while date(y, m, day_of_month) <= last:
        d = date(y, m, day_of_month)
        if d >= first:
            out.append(d)
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def hydrological_year(day: date, start_month: int = 9, start_day: int = 1) -> tuple[date, date]:
    """The period [start, stop] (inclusive) of the hydrological year holding `day` (1 Sep .. 31 Aug)."""
    start = date(day.year, start_month, start_day)
    if day < start:
        start = date(day.year - 1, start_month, start_day)
    stop = date(start.year + 1, start_month, start_day) - timedelta(days=1)
    return start, stop


def n_dates(start: date, stop: date, revisit: int) -> int:
    """Dates of a series from `start` every `revisit` days up to `stop` inclusive."""
    if stop < start:
        raise ValueError(f"--stop {stop} is before --start {start}")
    return (stop - start).days // revisit + 1


# ---------------------------------------------------------------------------------------------------
# Series, products
# ---------------------------------------------------------------------------------------------------


def _log(msg: str) -> None:
    print(f"  {msg}", file=sys.stderr, flush=True)


def ensure_series(folder: Path, dates: int, size: int, seed: int, start: date, revisit: int, forward: str,
                  reuse: bool) -> tuple[Path, bool]:
    """The series folder, reused (with --reuse) when it holds a complete synth output of this configuration."""
    from gpumaja.synth import generate_series

    meta_path = folder / "truth" / "truth.json"
    if reuse and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        same = (meta.get("status") == "complete" and meta.get("size") == size and meta.get("seed") == seed
                and meta.get("start") == start.isoformat() and len(meta.get("dates", [])) == dates
                and meta.get("parameters", {}).get("revisit_days") == revisit
                and (meta.get("parameters", {}).get("forward_model", "").startswith("6S")) == (forward == "6s"))
        if same:
            return folder, True
        _log(f"{folder}: not a complete series of this configuration, generated again")
    generate_series(folder, dates=dates, size=size, seed=seed, start=start, forward=forward, revisit_days=revisit,
                    progress=lambda msg: _log(f"synth: {msg}") if msg.endswith(("SAFE", "landscape", "done")) else None)
    return folder, False


def _products(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def ensure_l2a(series: Path, out: Path, backend, n: int, reuse: bool) -> tuple[list[Path], float | None]:
    from gpumaja.model.params import L2Params
    from gpumaja.pipeline.l2a import run_l2a

    if reuse and out.is_dir() and len(_products(out)) == n and not (out / ".gpumaja").exists():
        return _products(out), None
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run_l2a([series], out, backend, L2Params(), dem=series / "truth" / "dem.tif", overwrite=True,
            on_product=lambda i, k, pid: _log(f"l2a {i + 1}/{k} {pid}"))
    return _products(out), time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------


def read_tif(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1)


def score_l3a(summary: dict, land, seed: int, synthesis_date: date) -> dict:
    from gpumaja.io.l3a_writer import read_l3a
    from gpumaja.synth import scene
    from gpumaja.synth.atmosphere import S2_BAND_NAMES

    result = read_l3a(summary["product"])
    line = scene.snow_line_m(seed, synthesis_date)
    surface, _ = scene.surface_reflectance(land, synthesis_date, line)
    fs, _ = scene.snow_cover(land, line)
    out: dict = {"date": synthesis_date.isoformat(), "n_inputs": len(summary.get("inputs", [])),
                 "n_excluded": len(summary.get("excluded", [])), "true_snow_line_m": line,
                 "seconds": summary.get("seconds", {}), "groups": {}}
    for g, group in result.groups.items():
        f = GROUP_FACTOR[g]
        idx = [S2_BAND_NAMES.index(b) for b in group.bands]
        truth = block_mean(surface[idx], f)
        if truth.shape[1:] != group.grid.shape:
            raise RuntimeError(f"{g}: L3A grid {group.grid.shape} is not the truth's {truth.shape[1:]}")
        land_px = group.flag == 4
        snow_free = land_px & (block_mean(fs, f) == 0.0)
        flat = snow_free & (slope_deg(block_mean(land.dem, f), 10.0 * f) < FLAT_SLOPE_DEG)
        out["groups"][g] = {
            "flag_percent": flag_shares(group.flag),
            "land": band_errors(group.reflectance, truth, group.bands, land_px),
            "land_snow_free": band_errors(group.reflectance, truth, group.bands, snow_free),
            "land_snow_free_flat": band_errors(group.reflectance, truth, group.bands, flat),
        }
    return out


def partial_snow_share(snw: np.ndarray, fs20: np.ndarray, valid: np.ndarray) -> float | None:
    """Share of the detected snow pixels (SNW == 100, valid) that hold some true snow (fraction > 0):
    1 - this share is the detections on truly snow-free ground."""
    det = (np.asarray(snw) == SNW_SNOW) & np.asarray(valid, bool)
    return float((np.asarray(fs20)[det] > 0).mean()) if det.any() else None


def score_snow(summaries: list[dict], series: Path, meta: dict, land, seed: int) -> dict:
    from gpumaja.io.snow_product import read_snow
    from gpumaja.synth import scene

    by_day = {d["date"]: d for d in meta["dates"]}
    total: dict = {}
    per_date = []
    for s in sorted(summaries, key=lambda x: x["acquired"]):
        m = read_snow(s["product"])
        day = m.acquired.date().isoformat()
        d = by_day[day]
        folder = series / "truth" / d["key"]
        snow10 = read_tif(folder / "snow.tif") > 0
        cloudy10 = (read_tif(folder / "cloud_mask.tif") > 0) | (read_tif(folder / "cirrus_mask.tif") > 0)
        truth_snow, truth_cloudy = majority(snow10), any_of(cloudy10)
        if truth_snow.shape != m.snw.shape:
            raise RuntimeError(f"snow map grid {m.snw.shape} is not the truth's 20 m grid {truth_snow.shape}")
        c = snow_confusion(m.snw, truth_snow, truth_cloudy)
        add_counts(total, c)
        fs20 = block_mean(scene.snow_cover(land, scene.snow_line_m(seed, m.acquired.date()))[0], 2)
        valid = ~np.isin(m.snw, (SNW_CLOUD, SNW_NODATA, 254)) & ~truth_cloudy
        det = (m.snw == SNW_SNOW) & valid
        add_counts(total, {"detected": int(det.sum()), "detected_on_some_snow": int((fs20[det] > 0).sum())})
        per_date.append({"date": day, "sky": d["sky"], **scores(c),
                         "detected_on_some_snow": partial_snow_share(m.snw, fs20, valid),
                         "true_snow_percent": 100.0 * float(truth_snow.mean()),
                         "snow_percent": 100.0 * float((m.snw == SNW_SNOW).mean()),
                         "flagged_cloud_percent": 100.0 * float((m.snw == SNW_CLOUD).mean()),
                         "true_cloud_percent": 100.0 * float(truth_cloudy.mean()),
                         "snowline_m": m.snowline_m, "true_snow_line_m": d.get("snow_line_m"),
                         "seconds": s.get("seconds", {}).get("total")})
    det = total.pop("detected", 0)
    some = total.pop("detected_on_some_snow", 0)
    return {"dates": per_date, "total": {**scores(total), "detected_on_some_snow": some / det if det else None}}


def score_scd(summary: dict, land, seed: int, start: date, stop: date, min_days: int) -> dict:
    from gpumaja.io.scd_product import read_scd
    from gpumaja.synth import scene

    d = read_scd(summary["product"])
    runs = SnowRuns(d.grid.shape)
    day = start
    while day <= stop:
        runs.add(majority(scene.true_snow(land, day)))
        day += timedelta(days=1)
    scd_t, sod_t, smod_t = runs.result(min_days)
    if scd_t.shape != d.scd.shape:
        raise RuntimeError(f"SCD grid {d.scd.shape} is not the truth's 20 m grid {scd_t.shape}")
    seen = d.nobs > 0
    both = seen & (d.scd > min_days) & (scd_t > min_days)
    nobs = d.nobs[seen] if seen.any() else np.zeros(1)
    return {
        "start": start.isoformat(), "stop": stop.isoformat(), "n_inputs": summary.get("n_inputs"),
        "scd": day_errors(d.scd, scd_t, seen), "sod": day_errors(d.sod, sod_t, both),
        "smod": day_errors(d.smod, smod_t, both),
        "mean_scd": float(d.scd[seen].mean()) if seen.any() else None,
        "mean_true_scd": float(scd_t[seen].mean()) if seen.any() else None,
        "snow_days_pixels_percent": 100.0 * float((scd_t > 0).mean()),
        "nobs": {"seen_percent": 100.0 * float(seen.mean()), "mean": float(nobs.mean()), "min": int(nobs.min()),
                 "max": int(nobs.max()), "median": float(np.median(nobs))},
        "seconds": summary.get("seconds", {}),
    }


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------


def _f(x, fmt: str = ".4f") -> str:
    return "–" if x is None else format(x, fmt)


def report(res: dict) -> str:
    cfg = res["config"]
    lines = [(f"## Synthetic series: {cfg['dates']} dates every {cfg['revisit_days']} days, {cfg['start']}.."
              f"{cfg['last_date']}, {cfg['size']} x {cfg['size']} px, seed {cfg['seed']}, {cfg['backend']}"), ""]
    bands = R1_BANDS + R2_BANDS
    for subset, title in (("land", "FLG == 4"), ("land_snow_free", "FLG == 4, snow-free truth"),
                          ("land_snow_free_flat", f"FLG == 4, snow-free truth, slope < {FLAT_SLOPE_DEG:g} deg")):
        lines += [f"### L3A FRC vs true surface reflectance of the synthesis date: RMSE (bias), {title}", "",
                  "| date | inputs | land % (R2) | cloud % | snow % | water % | nodata % | px R1 / R2 | "
                  + " | ".join(bands) + " |", "|---" * (8 + len(bands)) + "|"]
        for r in res["l3a"]:
            if "error" in r:
                lines.append(f"| {r['date']} | {r['error']} |" + " |" * (6 + len(bands)))
                continue
            fl = r["groups"]["R2"]["flag_percent"]
            errs = {**r["groups"]["R1"][subset], **r["groups"]["R2"][subset]}
            n_px = " / ".join(str(errs[b[0]]["n"]) if b[0] in errs else "–" for b in (R1_BANDS, R2_BANDS))
            cells = [f"{_f(errs[b]['rmse'])} ({_f(errs[b]['bias'], '+.4f')})" if b in errs else "–" for b in bands]
            lines.append(f"| {r['date']} | {r['n_inputs']} | {fl['land']:.1f} | {fl['cloud']:.1f} | {fl['snow']:.1f} "
                         f"| {fl['water']:.1f} | {fl['nodata']:.1f} | {n_px} | " + " | ".join(cells) + " |")
        lines.append("")
    sn = res["snow"]
    lines += ["### Snow maps (SNW == 100) vs true snow, 20 m, pixels not 205/255 and not truly cloudy", "",
              ("| date | sky | true snow % | snow % | SNW 205 % | true cloud % | OA | precision | recall | F1 | "
               "detections on some snow | snowline m | true snow line m |"), "|---" * 13 + "|"]
    for d in sn["dates"]:
        lines.append(f"| {d['date']} | {d['sky']} | {d['true_snow_percent']:.2f} | {d['snow_percent']:.2f} | "
                     f"{d['flagged_cloud_percent']:.1f} | {d['true_cloud_percent']:.1f} | {_f(d['oa'])} | "
                     f"{_f(d['precision'])} | {_f(d['recall'])} | {_f(d['f1'])} | {_f(d['detected_on_some_snow'])} | "
                     f"{_f(d['snowline_m'], '.0f')} | "
                     f"{_f(d['true_snow_line_m'], '.0f')} |")
    t = sn["total"]
    lines += [(f"| **all** | | | | | | **{_f(t['oa'])}** | **{_f(t['precision'])}** | **{_f(t['recall'])}** | "
               f"**{_f(t['f1'])}** | **{_f(t['detected_on_some_snow'])}** | | |"), "",
              ("Truth: a 20 m pixel is snow when >= 2 of its 10 m pixels have a snow fraction > 0.5; LIS also "
               "detects pixels of smaller snow fractions (\"detections on some snow\": share of the detected "
               "pixels holding any true snow)."), ""]
    s = res["scd"]
    lines += [f"### Snow cover duration {s['start']}..{s['stop']} vs the true daily snow ({s['n_inputs']} inputs)", "",
              "| quantity | pixels | MAE (days) | bias (days) | RMSE (days) |", "|---|---|---|---|---|"]
    for k in ("scd", "sod", "smod"):
        e = s[k]
        lines.append(f"| {k.upper()} | {e['n']} | {_f(e['mae'], '.2f')} | {_f(e['bias'], '+.2f')} | "
                     f"{_f(e['rmse'], '.2f')} |")
    nb = s["nobs"]
    lines += ["", (f"Mean SCD {_f(s['mean_scd'], '.1f')} days (truth {_f(s['mean_true_scd'], '.1f')}); NOBS: "
                   f"{nb['seen_percent']:.1f} % of pixels seen, mean {nb['mean']:.1f}, median {nb['median']:.0f}, "
                   f"min {nb['min']}, max {nb['max']}."), ""]
    tm = res["seconds"]
    lines.append("Seconds: " + ", ".join(f"{k} {_f(v, '.1f')}" for k, v in tm.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=600, help="tile size in 10 m px (a multiple of 24)")
    ap.add_argument("--start", type=date.fromisoformat, default=date(2023, 11, 1), help="first date")
    ap.add_argument("--stop", type=date.fromisoformat, default=date(2024, 5, 31), help="last possible date")
    ap.add_argument("--revisit", type=int, default=5, help="days between two dates")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forward", default="6s", choices=("6s", "analytic"))
    ap.add_argument("--workdir", type=Path, help="keep the series and products there (default: a removed temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse the series and L2A products found in --workdir")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    ap.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--md-out", type=Path, default=DEFAULT_MD)
    args = ap.parse_args(argv)
    if args.size % SIZE_MULTIPLE:
        ap.error(f"--size must be a multiple of {SIZE_MULTIPLE} px (the 240 m coarse grid of the L2A chain "
                 f"must fit the DEM), got {args.size}")

    from gpumaja.backend import select_backend
    from gpumaja.errors import InputError
    from gpumaja.model.lis_params import LisParams, ScdParams
    from gpumaja.model.wasp_params import WaspParams
    from gpumaja.pipeline.l3a import run_l3a
    from gpumaja.pipeline.scd import run_scd
    from gpumaja.pipeline.snow import run_snow
    from gpumaja.synth import scene

    backend = select_backend(args.device)
    dates = n_dates(args.start, args.stop, args.revisit)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpumaja_val_l3a_snow_"))
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict = {}
    try:
        t0 = time.perf_counter()
        series, reused = ensure_series(work / "series", dates, args.size, args.seed, args.start, args.revisit,
                                       args.forward, args.reuse)
        seconds["synth"] = None if reused else time.perf_counter() - t0
        meta = json.loads((series / "truth" / "truth.json").read_text())
        land = scene.make_landscape(args.size, args.seed)
        dem = series / "truth" / "dem.tif"
        l2a, seconds["l2a"] = ensure_l2a(series, work / "l2a", backend, dates, args.reuse)
        first, last = date.fromisoformat(meta["dates"][0]["date"]), date.fromisoformat(meta["dates"][-1]["date"])

        t0 = time.perf_counter()
        wasp = WaspParams()
        l3a = []
        for d in synthesis_dates(first, last):
            _log(f"l3a {d}")
            try:
                summary = run_l3a(l2a, d, work / "l3a", backend, wasp, overwrite=True)
            except InputError as exc:  # no usable input in the window
                l3a.append({"date": d.isoformat(), "error": str(exc)})
                continue
            l3a.append(score_l3a(summary, land, args.seed, d))
        seconds["l3a"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        snow = run_snow(l2a, dem, work / "snow", backend, LisParams(), overwrite=True,
                        on_progress=lambda i, k, pid: _log(f"snow {i + 1}/{k} {pid}"))
        seconds["snow"] = time.perf_counter() - t0
        snow_scores = score_snow(snow, series, meta, land, args.seed)

        scd_params = ScdParams()
        start, stop = hydrological_year(first, scd_params.period_start_month, scd_params.period_start_day)
        t0 = time.perf_counter()
        scd = run_scd([Path(s["product"]) for s in snow], start, stop, work / "scd", backend, scd_params,
                      overwrite=True)
        seconds["scd"] = time.perf_counter() - t0
        scd_scores = score_scd(scd, land, args.seed, start, stop, scd_params.min_snow_days_for_sod)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    res = {
        "config": {"size": args.size, "seed": args.seed, "start": args.start.isoformat(),
                   "stop": args.stop.isoformat(), "revisit_days": args.revisit, "dates": dates,
                   "last_date": last.isoformat(), "forward": args.forward, "backend": backend.description,
                   "workdir": str(args.workdir) if args.workdir else "(temporary, removed)",
                   "series_reused": reused, "terrain_illumination_in_truth": False,
                   "brdf_in_truth": False},
        "l3a": l3a, "snow": snow_scores, "scd": scd_scores,
        "seconds": {k: None if v is None else round(v, 2) for k, v in seconds.items()},
    }
    md = report(res)
    print(md)
    for p, text in ((args.json_out, json.dumps(res, indent=2)), (args.md_out, md + "\n")):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
