#!/usr/bin/env python
"""Multi-temporal L2A vs mono-temporal vs s2cloudless vs ukis-csmask on a synthetic series with truth (not a test).

Generates (or reuses, ``--series DIR``) a synthetic series (docs/synthetic.md: clouds with altitudes and thin
edges, their geometric shadows, cirrus, harvest-like parcel changes, snow, water; 6S forward model), then

- runs ``gpumaja l2a`` on the whole series three times through the library (``gpumaja.pipeline.l2a.run_l2a``):
  ``mode="auto"`` (MAJA's chain: backward initialisation, NOMINAL mode with the composite, multi-temporal
  cloud tests, shadows, spectro-temporal AOT), the same with the opt-in ``mt_residual_units = "toa"``
  spectro-temporal AOT cost (docs/l2a.md), and ``mode="init"`` (every date alone, MAJA's INIT mode);
  the written MUSCATE products are read back with ``gpumaja.open_l2a`` (group R2, 20 m);
- runs s2cloudless and ukis-csmask (``scripts/peers.py``) on the same L1C TOA reflectance, masks on the
  R2 grid;
- compares everything with the truth on the 20 m grid (the helpers of ``validate_l2a_synthetic.py``):
  clouds = CLM bit 1 ("all clouds") vs truth cloud | cirrus (a 20 m pixel is cloudy when >= 2 of its
  four 10 m pixels are): overall accuracy, precision, recall, F1 over every non-edge pixel of every date;
  also the OA against "any cloud or cirrus optical thickness > 0" (the truth masks cut thin cirrus and
  cloud edges at an arbitrary optical thickness);
  shadows = CLM bits 5 | 6 vs the truth shadow mask, F1 over pixels that are not truth cloud;
  SRE RMSE per band and AOT RMSE over clear land (truth cloud, cirrus and shadow free, not water).
  The first date of the series is left out of every score (no method has a history there), so that the
  rows compare the same dates;
- adds ceiling rows that need no processing (`score_coarse_oracle`): the truth itself decided per coarse
  cell (a cell flagged when more than f = 5, 25, 50 % of it is cloud, resp. shadow) and brought to 20 m
  by MAJA's resampling (bilinear > 0.25), i.e. the best any method deciding on the coarse grid can
  score; and the AOT RMSE of the truth smoothed like MAJA's AOT (Gaussian of Sigma_Smoothing_AOT AOT-grid
  steps).

One table (markdown) goes to stdout and ``--md-out``; everything to ``--json-out``.

    python scripts/validate_l2a_series.py --series /tmp/synth16 --dates 16 --size 2400
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
for p in (REPO, REPO / "scripts"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

import validate_l2a_synthetic as vs  # noqa: E402

DEFAULT_JSON = REPO / "scripts" / "results" / "validate_l2a_series.json"
DEFAULT_MD = REPO / "scripts" / "results" / "validate_l2a_series.md"
CLM_ALL_CLOUDS, CLM_SHADOWS = 1 << 1, (1 << 5) | (1 << 6)
SRE_BANDS = ("B02", "B03", "B04", "B8A", "B11", "B12")
# cloud (shadow) fraction of a coarse cell above which the perfect coarse mask flags it
ORACLE_FRACTIONS = (0.05, 0.25, 0.5)


def _r2_grid_scores(acc: dict, cloud: np.ndarray, shadow: np.ndarray | None, t: dict, edge: np.ndarray) -> None:
    vs.add_counts(acc.setdefault("cloud", {}), vs.confusion(cloud, t["cloud"], ~edge))
    vs.add_counts(acc.setdefault("cloud_any", {}), vs.confusion(cloud, t["any_cloud"], ~edge))
    if shadow is not None:
        truth_shadow = t["shadow"] & ~t["cloud"]
        vs.add_counts(acc.setdefault("shadow", {}), vs.confusion(shadow & ~t["cloud"], truth_shadow, ~edge & ~t["cloud"]))


def truth_r2(series: Path, key: str) -> dict:
    truth = vs.load_truth(series, key)
    t = vs.truth_at(truth, 2)
    t["shadow"] = vs.block_mean(truth["shadow_mask"].astype(np.float32), 2) >= 0.5
    return t


def score_products(series: Path, out: Path, keys: dict[str, str], skip: set[str]) -> dict:
    """Scores of the L2A products under `out` (one per date) vs truth: clouds, shadows, SRE, AOT."""
    from gpumaja.io.muscate_reader import open_l2a
    from gpumaja.synth.atmosphere import S2_BAND_NAMES

    acc: dict = {"sre": {}, "aot": {}}
    per_date = []
    from gpumaja.io.muscate_mtd import read_mtd

    for prod in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        key = prod.name.split("_")[1][:8]
        if key in skip or key not in keys:
            continue
        t = truth_r2(series, key)
        meta = read_mtd(next(prod.glob("*_MTD_ALL.xml")))
        if not meta.get("valid", True):
            # a metadata-only product (cloud > max_cloud_percentage): the product declares the whole
            # date cloudy; score it so (every pixel cloud, no shadow, no reflectance)
            edge = np.zeros(t["cloud"].shape, bool)
            everything = np.ones(t["cloud"].shape, bool)
            d_acc = {}
            for a in (acc, d_acc):
                _r2_grid_scores(a, everything, ~everything, t, edge)
            per_date.append({"date": key, "valid": False, **{k: vs.scores(v) for k, v in d_acc.items()}})
            continue
        ds = open_l2a(prod, "R2")
        edge = ds["edg"].values.astype(bool)
        clm = ds["clm"].values
        d_acc = {}
        for a in (acc, d_acc):
            _r2_grid_scores(a, (clm & CLM_ALL_CLOUDS) > 0, (clm & CLM_SHADOWS) > 0, t, edge)
        land = t["clear"] & ~t["water"] & ~edge
        for b in SRE_BANDS:
            if b in list(ds["band"].values):
                est = ds["sre"].sel(band=b).values
                vs.add_sums(acc["sre"].setdefault(b, {}), vs.error_sums(est, t["surface"][S2_BAND_NAMES.index(b)], land))
        vs.add_sums(acc["aot"], vs.error_sums(ds["aot"].values, t["aot"], land))
        per_date.append({"date": key, "valid": bool(ds.attrs.get("valid", True)),
                         **{k: vs.scores(v) for k, v in d_acc.items()}})
    return {"dates": per_date, "cloud": vs.scores(acc["cloud"]), "cloud_any": vs.scores(acc["cloud_any"]),
            "shadow": vs.scores(acc["shadow"]),
            "sre": {b: vs.rmse_bias(s) for b, s in acc["sre"].items()}, "aot": vs.rmse_bias(acc["aot"])}


def score_peers(series: Path, keys: dict[str, str], skip: set[str]) -> dict:
    """s2cloudless and ukis-csmask on the series' L1C TOA, scored like the products."""
    import peers

    from gpumaja.backend import select_backend
    from gpumaja.pipeline.l2a import open_inputs
    from gpumaja.pipeline.l2a_inputs import read_date

    backend = select_backend("cpu")
    res: dict = {}
    for product in open_inputs([series]):
        key = product.acquired.strftime("%Y%m%d")
        if key in skip:
            continue
        inp = read_date(product, backend, series / "truth" / "dem.tif")
        toa = {b: backend.to_numpy(g.toa[i]) for g in inp.groups.values() for i, b in enumerate(g.bands)}
        r2 = inp.groups["R2"].grid
        edge = np.isnan(inp.groups["R2"].toa).any(axis=0)
        t = truth_r2(series, key)
        for name, fn in (("s2cloudless", peers.s2cloudless_mask), ("ukis-csmask", peers.ukis_csmask_mask)):
            try:
                t0 = time.perf_counter()
                out = fn(toa, r2.shape, grid_res_m=r2.resolution)
                seconds = time.perf_counter() - t0
            except ImportError as exc:
                res.setdefault(name, {"error": f"not installed: {exc}"})
                continue
            cloud, shadow = (out[1], None) if name == "s2cloudless" else out
            acc = res.setdefault(name, {"acc": {}, "seconds": 0.0})
            acc["seconds"] += seconds
            _r2_grid_scores(acc["acc"], np.asarray(cloud, bool), None if shadow is None else np.asarray(shadow, bool),
                            t, edge)
        print(f"  peers {key}", file=sys.stderr)
    out = {}
    for name, r in res.items():
        if "error" in r:
            out[name] = r
            continue
        out[name] = {"cloud": vs.scores(r["acc"]["cloud"]), "cloud_any": vs.scores(r["acc"]["cloud_any"]),
                     "seconds": round(r["seconds"], 2)}
        if "shadow" in r["acc"]:
            out[name]["shadow"] = vs.scores(r["acc"]["shadow"])
    return out


def coarse_oracle_mask(truth10: np.ndarray, coarse_px: int, fraction: float, fine_px: int,
                       shape: tuple[int, int]) -> np.ndarray:
    """A perfect coarse-grid mask brought to a fine grid as MAJA does (maja-l2a.md §1.11).

    `truth10`: a boolean truth mask at 10 m; a coarse cell (`coarse_px` x `coarse_px` 10 m pixels) is
    flagged when more than `fraction` of it is true; the coarse mask is then resampled to the fine grid
    (`fine_px` 10 m pixels per fine pixel, `shape` its size) by bilinear interpolation > 0.25
    (``masks.morphology.resample_mask``). The best any method deciding per coarse cell can do."""
    from gpumaja.masks.morphology import resample_mask

    cells = vs.block_mean(truth10.astype(np.float32), coarse_px) > fraction
    return resample_mask(cells, coarse_px // fine_px, shape=shape)


def score_coarse_oracle(series: Path, keys: dict[str, str], skip: set[str], coarse_m: float,
                        fractions: tuple[float, ...], aot_sigma_m: float) -> dict:
    """Ceiling rows: perfect coarse-grid cloud and shadow masks (`coarse_oracle_mask`, a cell flagged when
    more than f of it is cloud, resp. shadow) for each f, scored like the products; and the AOT floor of an
    estimate that knows the truth but is smoothed like MAJA's AOT (Gaussian of `aot_sigma_m`)."""
    from scipy import ndimage

    coarse_px = int(round(coarse_m / 10))
    acc: dict = {f: {} for f in fractions}
    aot: dict = {}
    for key in sorted(keys):
        if key in skip:
            continue
        truth = vs.load_truth(series, key)
        t = truth_r2(series, key)
        shape = t["cloud"].shape
        edge = np.zeros(shape, bool)
        cloud10 = truth["cloud_mask"] | truth["cirrus_mask"]
        shadow10 = truth["shadow_mask"] & ~cloud10
        for f in fractions:
            _r2_grid_scores(acc[f], coarse_oracle_mask(cloud10, coarse_px, f, 2, shape),
                            coarse_oracle_mask(shadow10, coarse_px, f, 2, shape), t, edge)
        land = t["clear"] & ~t["water"]
        smooth = ndimage.gaussian_filter(t["aot"].astype(np.float64), aot_sigma_m / 20.0, mode="nearest")
        vs.add_sums(aot, vs.error_sums(smooth.astype(np.float32), t["aot"], land))
    res = {}
    for f in fractions:
        a = acc[f]
        res[f"perfect {coarse_m:g} m cloud/shadow mask (cell > {f:g} covered), MAJA resampling; AOT: truth "
            f"smoothed at σ {aot_sigma_m:g} m"] = {
            "cloud": vs.scores(a["cloud"]), "cloud_any": vs.scores(a["cloud_any"]),
            "shadow": vs.scores(a["shadow"]), "aot": vs.rmse_bias(aot), "oracle": True}
    return res


def run_gpumaja(series: Path, mode: str, params, backend, workdir: Path, reuse: bool,
                tag: str = "") -> tuple[Path, float]:
    from gpumaja.pipeline.l2a import run_l2a

    out = workdir / f"l2a_{mode}{tag}"
    if reuse and out.is_dir() and any(out.iterdir()) and not (out / ".gpumaja").exists():
        return out, None  # reused: not timed here
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    run_l2a([series], out, backend, params, dem=series / "truth" / "dem.tif", mode=mode)
    return out, time.perf_counter() - t0


def table(res: dict) -> str:
    def f(x, fmt=".3f"):
        return "–" if x is None else format(x, fmt)

    lines = ["| method | cloud OA | cloud precision | cloud recall | cloud F1 | cloud OA vs τ > 0 | shadow F1 | AOT RMSE | "
             + " | ".join(f"SRE RMSE {b}" for b in SRE_BANDS) + " | seconds |",
             "|---" * (9 + len(SRE_BANDS)) + "|"]
    for name, r in res["methods"].items():
        if "error" in r:
            lines.append(f"| {name} | {r['error']} |" + " |" * (8 + len(SRE_BANDS)))
            continue
        c, s = r["cloud"], r.get("shadow")
        sre = r.get("sre", {})
        lines.append(
            f"| {name} | {f(c['oa'])} | {f(c['precision'])} | {f(c['recall'])} | {f(c['f1'])} | "
            f"{f(r['cloud_any']['oa'])} | "
            f"{f(s['f1']) if s else '–'} | {f(r['aot']['rmse']) if 'aot' in r else '–'} | "
            + " | ".join(f(sre[b]["rmse"], ".4f") if b in sre else "–" for b in SRE_BANDS)
            + f" | {r.get('seconds', '–')} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--series", type=Path, help="synthetic series folder (reused if complete, else generated)")
    ap.add_argument("--dates", type=int, default=16)
    ap.add_argument("--size", type=int, default=2400, help="tile size in 10 m px (multiple of 60)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=("cpu", "gpu", "auto"))
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--workdir", type=Path, help="keep the L2A products there (default: a removed temporary folder)")
    ap.add_argument("--reuse", action="store_true", help="reuse complete L2A outputs found in --workdir")
    ap.add_argument("--json-out", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--md-out", type=Path, default=DEFAULT_MD)
    args = ap.parse_args(argv)

    from gpumaja.backend import select_backend
    from gpumaja.model.params import L2Params

    backend = select_backend(args.device)
    params = L2Params()
    series = vs.ensure_series(args.series, args.dates, args.size, args.seed)
    meta = json.loads((series / "truth" / "truth.json").read_text())
    keys = {d["key"]: d["sky"] for d in meta["dates"]}
    skip = {min(keys)}
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpumaja_val_"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"methods": {}}
    try:
        runs = (("gpumaja multi-temporal", "auto", params, ""),
                ("gpumaja multi-temporal, MT AOT residuals in TOA units (opt-in)", "auto",
                 params.replace(mt_residual_units="toa"), "_toa"),
                ("gpumaja mono-temporal (INIT)", "init", params, ""))
        for label, mode, p, tag in runs:
            out, seconds = run_gpumaja(series, mode, p, backend, work, args.reuse, tag)
            print(f"  {label}: {seconds} s", file=sys.stderr)
            res["methods"][label] = {**score_products(series, out, keys, skip),
                                     "seconds": None if seconds is None else round(seconds, 1)}
        if not args.no_peers:
            res["methods"].update(score_peers(series, keys, skip))
        aot_sigma = params.sigma_smoothing_aot * params.step_aot * params.coarse_resolution_m
        res["methods"].update(score_coarse_oracle(series, keys, skip, params.coarse_resolution_m,
                                                  ORACLE_FRACTIONS, aot_sigma))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        if args.series is None:
            shutil.rmtree(series, ignore_errors=True)
    res["config"] = {"series": str(args.series) if args.series else "(temporary, removed)",
                     "dates": len(meta["dates"]), "size": meta["size"], "seed": meta["seed"],
                     "scored_dates": sorted(set(keys) - skip), "backend": backend.description}
    md = table(res)
    print(md)
    for p, text in ((args.json_out, json.dumps(res, indent=2)), (args.md_out, md + "\n")):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
