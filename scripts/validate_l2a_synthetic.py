#!/usr/bin/env python
"""Validate the one-date L2A chain (MAJA INIT mode) against the truth of a synthetic series (not a test).

Generates (or reuses, ``--series DIR``) a series with ``gpumaja.synth.generate_series`` (docs/synthetic.md),
runs ``gpumaja.pipeline.l2a.process_product`` on every date with the synthetic DEM, and compares with the
truth rasters under ``<series>/truth/<YYYYMMDD>/``:

- SRE per band vs the true surface reflectance (R1 at 10 m; R2 at 20 m against the 2x2 block mean of the
  10 m truth) on clear land pixels: truth cloud, cirrus and shadow masks all 0 (a 20 m pixel is clear when
  its four 10 m pixels are), not water, not on the product's edge; optionally at least ``--buffer-px``
  (10 m px) away from any truth cloud/cirrus/shadow;
- AOT (550 nm) and water vapour of the R2 group (20 m) vs the block means of the truth fields, same pixels;
- clouds: CLM bit 1 ("all clouds") of R2 vs truth cloud | cirrus (a 20 m pixel is cloudy when at least two
  of its four 10 m pixels are), over all non-edge pixels: overall accuracy, precision, recall, F1;
- snow and water: MG2 bits 2 and 0 of R2 vs truth snow / water (majority of the 2x2 block), over non-edge
  pixels clear of truth cloud, cirrus and shadow.

Errors are accumulated over dates (sums of e and e^2), so the "all" rows are pixel-weighted.

    python scripts/validate_l2a_synthetic.py --gipp /work/shared/data/maja_gipp_s2
    python scripts/validate_l2a_synthetic.py --series /tmp/synth6 --dates 6 --size 600   # reuse if there
    python scripts/validate_l2a_synthetic.py                     # shipped default 6S LUT
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing

DEFAULT_JSON = REPO / "scripts" / "results" / "validate_l2a_synthetic.json"
CLM_ALL_CLOUDS_BIT = 2  # gpumaja.model.l2a.CLM_ALL_CLOUDS (bit 1)
MG2_WATER_BIT, MG2_SNOW_BIT = 1, 4  # gpumaja.model.l2a MG2 bits 0 and 2


# ---------------------------------------------------------------------------------------------------
# Series and truth
# ---------------------------------------------------------------------------------------------------


def ensure_series(series: Path | None, dates: int, size: int, seed: int, forward: str = "6s") -> Path:
    """The series folder: reused when it holds a complete synth output, else generated there
    (a temporary folder when `series` is None)."""
    from gpumaja.synth import generate_series

    if series is not None:
        meta = series / "truth" / "truth.json"
        if meta.is_file() and json.loads(meta.read_text()).get("status") == "complete":
            return series
    out = series or Path(tempfile.mkdtemp(prefix="gpumaja_synth_"))
    generate_series(out, dates=dates, size=size, seed=seed, forward=forward,
                    progress=lambda msg: print(f"  synth: {msg}", file=sys.stderr))
    return out


def read_tif(path: Path) -> np.ndarray:
    import rasterio

    with rasterio.open(path) as src:
        a = src.read()
    return a[0] if a.shape[0] == 1 else a


def load_truth(series: Path, key: str) -> dict[str, np.ndarray]:
    """Truth rasters of one date (10 m): surface (13, H, W), aot, wv, and boolean masks."""
    d = series / "truth" / key
    t = {
        "surface": read_tif(d / "surface_reflectance.tif").astype(np.float32),
        "aot": read_tif(d / "aot.tif").astype(np.float32),
        "wv": read_tif(d / "water_vapour.tif").astype(np.float32),
    }
    for name in ("cloud_mask", "cirrus_mask", "shadow_mask", "snow", "water"):
        t[name] = read_tif(d / f"{name}.tif") > 0
    t["any_cloud"] = (read_tif(d / "cloud_optical_thickness.tif") > 0) | (read_tif(d / "cirrus_optical_thickness.tif") > 0)
    return t


# ---------------------------------------------------------------------------------------------------
# Resampling and metrics
# ---------------------------------------------------------------------------------------------------


def block_mean(a: np.ndarray, f: int) -> np.ndarray:
    """Mean over f x f blocks of the last two axes (f = 1: unchanged)."""
    if f == 1:
        return a
    *lead, h, w = a.shape
    return a.reshape(*lead, h // f, f, w // f, f).mean(axis=(-3, -1))


def dilate_px(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius <= 0:
        return mask
    from scipy import ndimage

    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return ndimage.binary_dilation(mask, structure=(yy * yy + xx * xx) <= radius * radius)


def truth_at(truth: dict, f: int, buffer_px: int = 0) -> dict[str, np.ndarray]:
    """Truth on a grid f times coarser than 10 m: means of the fields, clear = every sub-pixel clear,
    cloudy = at least half the sub-pixels cloud or cirrus (masks: optical thickness above the truth
    thresholds; "any_cloud": any optical thickness > 0), snow/water = majority."""
    obstructed = truth["cloud_mask"] | truth["cirrus_mask"] | truth["shadow_mask"]
    obstructed = dilate_px(obstructed, buffer_px)
    return {
        "surface": block_mean(truth["surface"], f),
        "aot": block_mean(truth["aot"], f),
        "wv": block_mean(truth["wv"], f),
        "clear": block_mean((~obstructed).astype(np.float32), f) >= 1.0,
        "cloud": block_mean((truth["cloud_mask"] | truth["cirrus_mask"]).astype(np.float32), f) >= 0.5,
        "any_cloud": block_mean(truth["any_cloud"].astype(np.float32), f) >= 0.5,
        "snow": block_mean(truth["snow"].astype(np.float32), f) > 0.5,
        "water": block_mean(truth["water"].astype(np.float32), f) > 0.5,
    }


def error_sums(est: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> dict[str, float]:
    """n, sum(e), sum(e^2) of e = est - ref over valid finite pixels."""
    ok = valid & np.isfinite(est) & np.isfinite(ref)
    e = est[ok].astype(np.float64) - ref[ok].astype(np.float64)
    return {"n": int(e.size), "se": float(e.sum()), "se2": float((e * e).sum()), "sref": float(ref[ok].sum())}


def add_sums(acc: dict, s: dict) -> None:
    for k, v in s.items():
        acc[k] = acc.get(k, 0) + v


def rmse_bias(s: dict) -> dict[str, float | int | None]:
    n = s.get("n", 0)
    if not n:
        return {"n": 0, "rmse": None, "bias": None, "mean_truth": None}
    return {"n": n, "rmse": float(np.sqrt(s["se2"] / n)), "bias": s["se"] / n, "mean_truth": s["sref"] / n}


def confusion(pred: np.ndarray, ref: np.ndarray, valid: np.ndarray) -> dict[str, int]:
    p, r = pred[valid], ref[valid]
    return {"tp": int((p & r).sum()), "fp": int((p & ~r).sum()), "fn": int((~p & r).sum()),
            "tn": int((~p & ~r).sum())}


def scores(c: dict[str, int]) -> dict[str, float | None]:
    """Overall accuracy, precision, recall, F1 and both positive fractions of a confusion count."""
    tp, fp, fn, tn = c["tp"], c["fp"], c["fn"], c["tn"]
    n = tp + fp + fn + tn
    prec = tp / (tp + fp) if tp + fp else None
    rec = tp / (tp + fn) if tp + fn else None
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else None
    return {**c, "oa": (tp + tn) / n if n else None, "precision": prec, "recall": rec, "f1": f1,
            "pred_fraction": (tp + fp) / n if n else None, "truth_fraction": (tp + fn) / n if n else None}


def add_counts(acc: dict, c: dict) -> None:
    for k, v in c.items():
        acc[k] = acc.get(k, 0) + v


# ---------------------------------------------------------------------------------------------------
# One date
# ---------------------------------------------------------------------------------------------------


def compare_date(result, truth: dict, buffer_px: int = 0) -> dict:
    """Error sums per band, AOT/WV sums and mask confusion counts of one L2AResult vs its truth."""
    from gpumaja.synth.atmosphere import S2_BAND_NAMES

    out: dict = {"bands": {}}
    for g in result.groups.values():
        f = round(g.grid.resolution / 10.0)
        t = truth_at(truth, f, buffer_px)
        edge = g.edg.astype(bool)
        land = t["clear"] & ~t["water"] & ~edge
        for i, b in enumerate(g.bands):
            out["bands"][b] = error_sums(g.sre[i], t["surface"][S2_BAND_NAMES.index(b)], land)
            out.setdefault("bands_no_snow", {})[b] = error_sums(g.sre[i], t["surface"][S2_BAND_NAMES.index(b)],
                                                                land & ~t["snow"])
        if g.name == "R2":
            out["aot"] = error_sums(g.aot, t["aot"], land)
            out["wv"] = error_sums(g.water_vapour, t["wv"], land)
            cloud = (g.clm & CLM_ALL_CLOUDS_BIT) > 0
            out["cloud"] = confusion(cloud, t["cloud"], ~edge)
            out["cloud_any"] = confusion(cloud, t["any_cloud"], ~edge)
            clear = t["clear"] & ~edge
            out["snow"] = confusion((g.mg2 & MG2_SNOW_BIT) > 0, t["snow"], clear)
            out["water"] = confusion((g.mg2 & MG2_WATER_BIT) > 0, t["water"], clear)
            out["clear_land_fraction"] = float(land.mean())
    return out


def run_series(series: Path, lut_cache, params, backend, buffer_px: int = 0) -> dict:
    """Process every date of the series and compare; returns per-date and accumulated figures."""
    from gpumaja.pipeline.l2a import open_inputs, process_product

    meta = json.loads((series / "truth" / "truth.json").read_text())
    by_safe = {d["safe"]: d for d in meta["dates"]}
    dem = series / "truth" / "dem.tif"
    luts: set[str] = set()
    per_date, acc = [], {"bands": {}, "bands_no_snow": {}, "aot": {}, "wv": {}, "cloud": {}, "cloud_any": {}, "snow": {}, "water": {}}
    for product in open_inputs([series]):
        d = by_safe[Path(product.path).name]
        t0 = time.perf_counter()
        result, stages = process_product(product, lut_cache, params, backend, dem)
        seconds = time.perf_counter() - t0
        luts.add(result.lut_source)
        cmp = compare_date(result, load_truth(series, d["key"]), buffer_px)
        for key in ("bands", "bands_no_snow"):
            for b, s in cmp[key].items():
                add_sums(acc[key].setdefault(b, {}), s)
        for k in ("aot", "wv"):
            add_sums(acc[k], cmp[k])
        for k in ("cloud", "cloud_any", "snow", "water"):
            add_counts(acc[k], cmp[k])
        per_date.append({
            "date": d["date"], "platform": d["platform"], "sky": d["sky"],
            "truth": {k: d[k] for k in ("cloud_percent", "cirrus_percent", "shadow_percent", "snow_percent",
                                        "water_percent", "mean_aot", "mean_water_vapour")},
            "ours": {"cloud_percent_coarse": result.cloud_percent, "snow_percent_coarse": result.snow_percent,
                     "mean_aot": result.mean_aot, "mean_water_vapour": result.mean_water_vapour,
                     "valid": result.valid},
            "clear_land_fraction_r2": cmp["clear_land_fraction"],
            "sre": {b: rmse_bias(s) for b, s in cmp["bands"].items()},
            "aot": rmse_bias(cmp["aot"]), "wv": rmse_bias(cmp["wv"]),
            **{k: scores(cmp[k]) for k in ("cloud", "cloud_any", "snow", "water")},
            "seconds": round(seconds, 3), "stages": {k: round(v, 4) for k, v in stages.items()},
        })
        print(f"  {d['date']} {d['sky']:<11} {seconds:6.2f} s", file=sys.stderr)
    total = {"sre": {b: rmse_bias(s) for b, s in acc["bands"].items()},
             "sre_no_snow": {b: rmse_bias(s) for b, s in acc["bands_no_snow"].items()}, "aot": rmse_bias(acc["aot"]),
             "wv": rmse_bias(acc["wv"]), **{k: scores(acc[k]) for k in ("cloud", "cloud_any", "snow", "water")}}
    return {"dates": per_date, "total": total, "lut": sorted(luts)}


# ---------------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------------


def _f(x, fmt: str = "7.4f") -> str:
    """Format a number, or a right-aligned '-' for None."""
    width = int(fmt.split(".")[0] or 1)
    return "-".rjust(width) if x is None else format(x, fmt)


def print_report(res: dict) -> None:
    order = ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
    print(f"\nSRE vs true surface reflectance, clear land pixels, all dates  (LUT: {'; '.join(res['lut'])})")
    print(f"{'band':<5} {'n':>9} {'mean':>7} {'RMSE':>7} {'bias':>8}   | snow-free: {'n':>9} {'RMSE':>7} {'bias':>8}")
    for b in order:
        s = res["total"]["sre"].get(b)
        ns = res["total"].get("sre_no_snow", {}).get(b)
        if s:
            tail = f"   | {'':10} {ns['n']:>9} {_f(ns['rmse'])} {_f(ns['bias'], '8.4f')}" if ns else ""
            print(f"{b:<5} {s['n']:>9} {_f(s['mean_truth'])} {_f(s['rmse'])} {_f(s['bias'], '8.4f')}{tail}")
    print("\nper date (R2 grid, 20 m)")
    print(f"{'date':<10} {'sky':<11} {'cld% T':>6} {'cld% G':>6} {'OA':>5} {'prec':>5} {'rec':>5} "
          f"{'AOT T':>6} {'AOT G':>6} {'AOTrmse':>7} {'AOTbias':>7} {'WV T':>5} {'WVrmse':>6} {'WVbias':>6} "
          f"{'snowP':>5} {'snowR':>5} {'watP':>5} {'watR':>5}")
    rows = [*res["dates"], {"date": "all", "sky": "", **res["total"]}]
    for r in rows:
        c = r["cloud"]
        truth_pct = 100 * c["truth_fraction"] if c["truth_fraction"] is not None else None
        ours_pct = 100 * c["pred_fraction"] if c["pred_fraction"] is not None else None
        aot_t = r["aot"]["mean_truth"]
        aot_g = None if aot_t is None or r["aot"]["bias"] is None else aot_t + r["aot"]["bias"]
        print(f"{r['date']:<10} {r['sky']:<11} {_f(truth_pct, '6.1f')} {_f(ours_pct, '6.1f')} "
              f"{_f(c['oa'], '5.2f')} {_f(c['precision'], '5.2f')} {_f(c['recall'], '5.2f')} "
              f"{_f(aot_t, '6.3f')} {_f(aot_g, '6.3f')} {_f(r['aot']['rmse'], '7.3f')} {_f(r['aot']['bias'], '7.3f')} "
              f"{_f(r['wv']['mean_truth'], '5.2f')} {_f(r['wv']['rmse'], '6.2f')} {_f(r['wv']['bias'], '6.2f')} "
              f"{_f(r['snow']['precision'], '5.2f')} {_f(r['snow']['recall'], '5.2f')} "
              f"{_f(r['water']['precision'], '5.2f')} {_f(r['water']['recall'], '5.2f')}")
    t = res["total"]
    print()
    for k, label in (("cloud", "truth cloud|cirrus masks"), ("cloud_any", "any cloud/cirrus, tau > 0")):
        c = t[k]
        print(f"clouds (CLM bit 1 vs {label}): OA {_f(c['oa'], '.3f')}  precision {_f(c['precision'], '.3f')}  "
              f"recall {_f(c['recall'], '.3f')}  F1 {_f(c['f1'], '.3f')}  truth {100 * (c['truth_fraction'] or 0):.1f} %  "
              f"ours {100 * (c['pred_fraction'] or 0):.1f} %")
    for k in ("snow", "water"):
        print(f"{k:<6} (MG2 vs truth, clear pixels): OA {_f(t[k]['oa'], '.3f')}  precision "
              f"{_f(t[k]['precision'], '.3f')}  recall {_f(t[k]['recall'], '.3f')}  "
              f"truth {100 * (t[k]['truth_fraction'] or 0):.1f} %  ours {100 * (t[k]['pred_fraction'] or 0):.1f} %")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=Path, help="synthetic series folder (reused if complete, else generated)")
    ap.add_argument("--dates", type=int, default=6)
    ap.add_argument("--size", type=int, default=600, help="tile size in 10 m px (multiple of 6)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--forward", choices=("6s", "analytic"), default="6s",
                    help="radiative transfer of the synthetic TOA (generated series only)")
    ap.add_argument("--gipp", type=Path, help="MAJA GIPP folder (default: the shipped gpumaja 6S LUT)")
    ap.add_argument("--lut", type=Path, help="a LUT file built with 'gpumaja lut build'")
    ap.add_argument("--params", type=Path, help="parameter overrides (TOML or MAJA L2COMM .EEF)")
    ap.add_argument("--coarse-resolution", type=float, help="override L2Params.coarse_resolution_m (240 or 120)")
    ap.add_argument("--buffer-px", type=int, default=0,
                    help="also exclude pixels within this many 10 m px of truth cloud/cirrus/shadow")
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    ap.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    args = ap.parse_args(argv)

    from gpumaja.backend import select_backend
    from gpumaja.io.params import read_params
    from gpumaja.model.params import L2Params
    from gpumaja.pipeline.luts import LUTCache

    params = read_params(args.params) if args.params else L2Params()
    if args.coarse_resolution:
        params = params.replace(coarse_resolution_m=args.coarse_resolution)
    backend = select_backend(args.device)
    t0 = time.perf_counter()
    series = ensure_series(args.series, args.dates, args.size, args.seed, args.forward)
    t_synth = time.perf_counter() - t0
    try:
        res = run_series(series, LUTCache(args.gipp, args.lut), params, backend, args.buffer_px)
        meta = json.loads((series / "truth" / "truth.json").read_text())
    finally:
        if args.series is None:  # a temporary series: do not leave it behind
            shutil.rmtree(series, ignore_errors=True)
    res["config"] = {"series": str(series) if args.series else "(temporary, removed)", "dates": len(meta["dates"]), "size": meta["size"], "seed": meta["seed"],
                     "gipp": str(args.gipp) if args.gipp else None, "lut_file": str(args.lut) if args.lut else None,
                     "coarse_resolution_m": params.coarse_resolution_m, "buffer_px": args.buffer_px,
                     "backend": backend.description, "synth_seconds": round(t_synth, 2)}
    print_report(res)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    args.json_out.write_text(json.dumps(res, indent=2))
    print(f"\nJSON: {args.json_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
