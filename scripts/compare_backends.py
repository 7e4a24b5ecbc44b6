#!/usr/bin/env python
"""CPU vs GPU product equivalence of the L2A chain (gpumaja issue 4; not a test).

Runs the real chain (``gpumaja.pipeline.l2a.run_l2a``: backward initialisation, nominal mode with the
composite, multi-temporal masks, spectro-temporal AOT) once per backend on the same series with the same
settings, into ``WORKDIR/<backend>-<i>/``, timing each run (wall seconds, one-time costs such as kernel
compilation included), then compares the two MUSCATE product trees date by date: products are paired by
folder name, files by their path relative to the product folder.

- validity: a product written as metadata only on one side (or missing on one side) is a difference; the
  rasters present on one side only count as pixels that all differ;
- masks (``MASKS/*``: CLM, MG2, SAT, EDG, IAB per group): share of pixels whose whole value is identical;
  CLM and MG2 also per bit;
- reflectances (SRE, FRE): over the pixels valid on at least one side, the share within 1 DN, the share
  identical and the largest |dDN| (over pixels valid on both sides); a pixel nodata on one side only is
  not within 1 DN;
- ATB (band 1 water vapour WVC, band 2 AOT, nodata 0): the same figures, reported, not in the verdict;
- totals over the whole series (pixel-weighted) and the worst file of each kind.

Verdict (issue 4): masks identical on >= 99.9 % of all mask pixels (the worst single mask file reported),
reflectances within 1 DN on >= 99.99 % of reflectance pixels.

A markdown table goes to stdout (and ``--out-md``), everything to ``--out-json``; logs to stderr.
Exit 0 when the verdict passes, 1 when it does not, 2 on bad usage or bad input (e.g. ``gpu`` requested
without a usable GPU: refused before anything runs).

    python scripts/compare_backends.py --synth-size 1200 --dates 20            # cpu vs gpu, generated series
    python scripts/compare_backends.py --series /tmp/synth16 --backends cpu,gpu --keep --workdir /tmp/cmp
    python scripts/compare_backends.py --synth-size 120 --dates 3 --backends cpu,cpu   # CPU smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = REPO / "scripts"
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)  # run from a checkout without installing

log = logging.getLogger("compare_backends")

DEFAULT_JSON = HERE / "results" / "compare_backends.json"
DEFAULT_MD = HERE / "results" / "compare_backends.md"
MASK_THRESHOLD = 0.999  # issue 4: masks identical on >= 99.9 % of pixels
REFLECTANCE_THRESHOLD = 0.9999  # issue 4: reflectances within 1 DN on >= 99.99 %
BIT_CODES = ("CLM", "MG2")  # bit masks compared per bit too
REFLECTANCE_CODES = ("SRE", "FRE")
ATB_BANDS = ("WVC", "AOT")  # gpumaja.io.muscate: ATB band 1 = water vapour, band 2 = AOT
DEFAULT_REFLECTANCE_NODATA = -10000  # used only when a file carries no nodata tag
DEFAULT_ATB_NODATA = 0
BACKEND_NAMES = ("cpu", "gpu")
_RASTER = re.compile(r"_(?P<code>[A-Z0-9]+)_(?P<id>[A-Za-z0-9]+)\.tif$")


# ================================================================================ pure comparisons
def _share(k: int, n: int) -> float:
    """k / n; 1.0 when there is nothing to compare (no pixel can differ)."""
    return 1.0 if n == 0 else k / n


def compare_masks(a: np.ndarray, b: np.ndarray, bits: bool = False) -> dict:
    """Whole-value agreement of two mask rasters of the same shape: n pixels, `identical` pixels and
    `share_identical`; with `bits`, per bit k (0 = least significant) the pixels where bit k differs
    (`bits[k]["differ"]`) and the share where it is identical. ValueError when the shapes differ."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
    n = int(a.size)
    identical = int(np.count_nonzero(a == b))
    out: dict = {"n": n, "identical": identical, "share_identical": _share(identical, n)}
    if bits:
        if not (np.issubdtype(a.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
            raise ValueError(f"per-bit comparison needs integer masks, got {a.dtype} and {b.dtype}")
        width = 8 * max(a.dtype.itemsize, b.dtype.itemsize)
        x = np.bitwise_xor(a.astype(np.int64), b.astype(np.int64))
        out["bits"] = {}
        for k in range(width):
            differ = int(np.count_nonzero((x >> k) & 1))
            out["bits"][str(k)] = {"differ": differ, "share_identical": _share(n - differ, n)}
    return out


def compare_reflectance(a: np.ndarray, b: np.ndarray, nodata: float | None) -> dict:
    """DN agreement of two reflectance (or ATB) rasters of the same shape, over the pixels valid on at
    least one side (`n`; pixels nodata on both sides are counted in `both_nodata` only):

    `within_1` (|dDN| <= 1, valid on both sides), `identical`, `nodata_mismatch` (nodata on one side
    only: neither within 1 DN nor identical), `max_abs_diff` (over pixels valid on both sides; None when
    there is none) and the shares `share_within_1`, `share_identical` of `n`. `nodata` None: every
    pixel is valid. ValueError when the shapes differ."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"raster shapes differ: {a.shape} vs {b.shape}")
    if nodata is None:
        va = np.ones(a.shape, bool)
        vb = va
    else:
        va, vb = a != nodata, b != nodata
    if np.issubdtype(a.dtype, np.floating) or np.issubdtype(b.dtype, np.floating):
        va, vb = va & np.isfinite(a), vb & np.isfinite(b)
    both = va & vb
    n = int(np.count_nonzero(va | vb))
    mismatch = int(np.count_nonzero(va ^ vb))
    wide = np.float64 if (np.issubdtype(a.dtype, np.floating) or np.issubdtype(b.dtype, np.floating)) else np.int64
    d = np.abs(a[both].astype(wide) - b[both].astype(wide))
    within = int(np.count_nonzero(d <= 1))
    identical = int(np.count_nonzero(d == 0))
    max_abs = None if d.size == 0 else d.max().item()
    return {"n": n, "within_1": within, "identical": identical, "nodata_mismatch": mismatch,
            "both_nodata": int(a.size) - n, "max_abs_diff": max_abs,
            "share_within_1": _share(within, n), "share_identical": _share(identical, n)}


def one_sided_mask(present: np.ndarray, bits: bool = False) -> dict:
    """A mask file present on one side only: every pixel differs (whole value and every bit)."""
    present = np.asarray(present)
    n = int(present.size)
    out: dict = {"n": n, "identical": 0, "share_identical": _share(0, n)}
    if bits:
        out["bits"] = {str(k): {"differ": n, "share_identical": _share(0, n)}
                       for k in range(8 * present.dtype.itemsize)}
    return out


def one_sided_reflectance(present: np.ndarray, nodata: float | None) -> dict:
    """A reflectance/ATB file present on one side only: its valid pixels are nodata on the other."""
    present = np.asarray(present)
    fill = np.zeros_like(present) if nodata is None else np.full_like(present, nodata)
    if nodata is None:  # no nodata value: nothing can stand for "absent"; every pixel differs
        n = int(present.size)
        return {"n": n, "within_1": 0, "identical": 0, "nodata_mismatch": n, "both_nodata": 0,
                "max_abs_diff": None, "share_within_1": _share(0, n), "share_identical": _share(0, n)}
    return compare_reflectance(present, fill, nodata)


# ================================================================================ accumulation
_MASK_SUMS = ("n", "identical")
_REFL_SUMS = ("n", "within_1", "identical", "nodata_mismatch", "both_nodata")


def add_mask(acc: dict, s: dict) -> dict:
    """Add mask statistics `s` into `acc` (pixel counts summed, shares recomputed); returns acc."""
    for k in _MASK_SUMS:
        acc[k] = acc.get(k, 0) + s[k]
    acc["share_identical"] = _share(acc["identical"], acc["n"])
    if "bits" in s:
        bits = acc.setdefault("bits", {})
        for k, v in s["bits"].items():
            b = bits.setdefault(k, {"differ": 0})
            b["differ"] += v["differ"]
            b["share_identical"] = _share(acc["n"] - b["differ"], acc["n"])
    return acc


def add_reflectance(acc: dict, s: dict) -> dict:
    """Add reflectance statistics `s` into `acc` (counts summed, max of the maxima); returns acc."""
    for k in _REFL_SUMS:
        acc[k] = acc.get(k, 0) + s[k]
    m = [v for v in (acc.get("max_abs_diff"), s["max_abs_diff"]) if v is not None]
    acc["max_abs_diff"] = max(m) if m else None
    acc["share_within_1"] = _share(acc["within_1"], acc["n"])
    acc["share_identical"] = _share(acc["identical"], acc["n"])
    return acc


def _empty_totals() -> dict:
    return {"masks": {}, "masks_by_code": {}, "reflectance": {}, "reflectance_by_code": {}, "atb": {},
            "other": {}}


def _add_file(tot: dict, f: dict) -> None:
    kind, code = f["kind"], f["code"]
    if kind == "mask":
        add_mask(tot["masks"], {k: f[k] for k in _MASK_SUMS})
        add_mask(tot["masks_by_code"].setdefault(code, {}), f)
    elif kind == "reflectance":
        add_reflectance(tot["reflectance"], f)
        add_reflectance(tot["reflectance_by_code"].setdefault(code, {}), f)
    elif kind == "atb":
        for name, s in f["bands"].items():
            add_reflectance(tot["atb"].setdefault(name, {}), s)
    else:
        add_mask(tot["other"].setdefault(code, {}), f)


def _add_totals(acc: dict, t: dict) -> None:
    for key in ("masks", "reflectance"):
        if t[key]:
            (add_mask if key == "masks" else add_reflectance)(acc[key], t[key])
    for key, add in (("masks_by_code", add_mask), ("reflectance_by_code", add_reflectance),
                     ("atb", add_reflectance), ("other", add_mask)):
        for code, s in t[key].items():
            add(acc[key].setdefault(code, {}), s)


# ================================================================================ product trees
def _read(path: Path) -> tuple[np.ndarray, float | None]:
    """All bands of a raster (bands, rows, cols) and its nodata value."""
    import rasterio

    with rasterio.open(path) as src:
        return src.read(), src.nodata


def classify(rel: str) -> tuple[str, str, str] | None:
    """(kind, code, id) of a product file from its relative path: kind "mask" (under MASKS/),
    "reflectance" (SRE/FRE), "atb", "other" (any other .tif); None for a non-raster file."""
    m = _RASTER.search(rel.rsplit("/", 1)[-1])
    if m is None:
        return None
    code, ident = m["code"], m["id"]
    if rel.startswith("MASKS/"):
        return "mask", code, ident
    if code in REFLECTANCE_CODES:
        return "reflectance", code, ident
    if code == "ATB":
        return "atb", code, ident
    return "other", code, ident


def compare_file(rel: str, a: Path | None, b: Path | None) -> dict | None:
    """Statistics of one raster pair (either may be None: the file is on one side only)."""
    kind_code = classify(rel)
    if kind_code is None:
        return None
    kind, code, ident = kind_code
    (da, na) = _read(a) if a is not None else (None, None)
    (db, nb) = _read(b) if b is not None else (None, None)
    out: dict = {"file": rel, "kind": kind, "code": code, "id": ident}
    if a is None or b is None:
        out["only_in"] = "a" if b is None else "b"
    present = da if da is not None else db
    out["shape"] = list(present.shape[1:])
    shape_mismatch = da is not None and db is not None and da.shape != db.shape
    if shape_mismatch:
        out["note"] = f"shapes differ: {list(da.shape)} vs {list(db.shape)}"
        log.warning("%s: %s (counted as all pixels different)", rel, out["note"])
    one_sided = da is None or db is None or shape_mismatch
    if kind in ("mask", "other"):
        bits = kind == "mask" and code in BIT_CODES
        s = one_sided_mask(present, bits) if one_sided else compare_masks(da, db, bits)
        out.update(s)
    elif kind == "reflectance":
        nodata = na if na is not None else nb if nb is not None else DEFAULT_REFLECTANCE_NODATA
        s = one_sided_reflectance(present, nodata) if one_sided else compare_reflectance(da, db, nodata)
        out.update(s)
    else:  # ATB: one statistic per band
        nodata = na if na is not None else nb if nb is not None else DEFAULT_ATB_NODATA
        out["bands"] = {}
        for i in range(present.shape[0]):
            name = ATB_BANDS[i] if i < len(ATB_BANDS) else f"band{i + 1}"
            out["bands"][name] = (one_sided_reflectance(present[i], nodata) if one_sided
                                  else compare_reflectance(da[i], db[i], nodata))
    return out


def _files(folder: Path | None) -> dict[str, Path]:
    if folder is None:
        return {}
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def _validity(folder: Path | None) -> bool | None:
    if folder is None:
        return None
    from gpumaja.io.muscate_mtd import read_mtd

    mtd = next(folder.glob("*_MTD_ALL.xml"), None)
    if mtd is None:
        return None
    return bool(read_mtd(mtd).get("valid", True))


def _cloud_percent(folder: Path | None) -> float | None:
    if folder is None:
        return None
    from gpumaja.io.muscate_mtd import read_mtd

    mtd = next(folder.glob("*_MTD_ALL.xml"), None)
    return None if mtd is None else read_mtd(mtd).get("cloud_percent")


def compare_product(a: Path | None, b: Path | None) -> dict:
    """Compare one product folder pair (one may be None: the product is on one side only)."""
    name = (a or b).name
    fa, fb = _files(a), _files(b)
    res: dict = {"product": name, "date": _date_key(name), "valid": [_validity(a), _validity(b)],
                 "cloud_percent": [_cloud_percent(a), _cloud_percent(b)], "files": [],
                 "only_in_a": sorted(set(fa) - set(fb)), "only_in_b": sorted(set(fb) - set(fa))}
    if a is None or b is None:
        res["only_in"] = "a" if b is None else "b"
    tot = _empty_totals()
    for rel in sorted(set(fa) | set(fb)):
        f = compare_file(rel, fa.get(rel), fb.get(rel))
        if f is None:
            continue
        res["files"].append(f)
        _add_file(tot, f)
    res["totals"] = tot
    res["worst_mask"] = _worst(res["files"], "mask", "share_identical")
    res["worst_reflectance"] = _worst(res["files"], "reflectance", "share_within_1")
    return res


def _date_key(name: str) -> str:
    parts = name.split("_")
    return parts[1][:8] if len(parts) > 1 else name


def _worst(files: list[dict], kind: str, key: str) -> dict | None:
    cands = [f for f in files if f["kind"] == kind]
    if not cands:
        return None
    w = min(cands, key=lambda f: (f[key], -f["n"]))
    return {"file": w["file"], "code": w["code"], "id": w["id"], key: w[key], "n": w["n"]}


def _products(tree: Path) -> dict[str, Path]:
    return {p.name: p for p in sorted(tree.iterdir()) if p.is_dir() and not p.name.startswith(".")}


def compare_trees(tree_a: Path, tree_b: Path) -> dict:
    """Walk two L2A output folders (one product folder per date; dot folders such as the checkpoint
    are ignored), pairing products by folder name: per-product results in date order, series totals,
    worst files, validity mismatches, products and files present on one side only."""
    pa, pb = _products(Path(tree_a)), _products(Path(tree_b))
    names = sorted(set(pa) | set(pb), key=lambda n: (_date_key(n), n))
    products = []
    totals = _empty_totals()
    worst_mask = worst_refl = worst_atb = None
    for name in names:
        log.info("comparing %s", name)
        r = compare_product(pa.get(name), pb.get(name))
        products.append(r)
        _add_totals(totals, r["totals"])
        for f in r["files"]:
            where = f"{name}/{f['file']}"
            if f["kind"] == "mask" and (worst_mask is None or f["share_identical"] < worst_mask["share_identical"]):
                worst_mask = {"file": where, "share_identical": f["share_identical"], "n": f["n"]}
            if f["kind"] == "reflectance" and (worst_refl is None
                                               or f["share_within_1"] < worst_refl["share_within_1"]):
                worst_refl = {"file": where, "share_within_1": f["share_within_1"], "n": f["n"],
                              "max_abs_diff": f["max_abs_diff"]}
            if f["kind"] == "atb":
                for band, s in f["bands"].items():
                    if worst_atb is None or s["share_within_1"] < worst_atb["share_within_1"]:
                        worst_atb = {"file": where, "band": band, "share_within_1": s["share_within_1"],
                                     "n": s["n"]}
    return {
        "products": products,
        "totals": totals,
        "worst": {"mask": worst_mask, "reflectance": worst_refl, "atb": worst_atb},
        "validity_mismatches": [r["product"] for r in products if r["valid"][0] != r["valid"][1]],
        "products_only_in_a": [r["product"] for r in products if r.get("only_in") == "a"],
        "products_only_in_b": [r["product"] for r in products if r.get("only_in") == "b"],
        "files_only_in_a": [f"{r['product']}/{f}" for r in products if "only_in" not in r for f in r["only_in_a"]],
        "files_only_in_b": [f"{r['product']}/{f}" for r in products if "only_in" not in r for f in r["only_in_b"]],
    }


def verdict(cmp: dict, mask_threshold: float = MASK_THRESHOLD,
            reflectance_threshold: float = REFLECTANCE_THRESHOLD) -> dict:
    """Issue 4's criteria on a `compare_trees` result."""
    t = cmp["totals"]
    masks = t["masks"].get("share_identical")
    refl = t["reflectance"].get("share_within_1")
    masks_ok = masks is not None and masks >= mask_threshold
    refl_ok = refl is not None and refl >= reflectance_threshold
    return {"masks_share_identical": masks, "masks_threshold": mask_threshold, "masks_pass": masks_ok,
            "worst_mask_file": cmp["worst"]["mask"],
            "reflectance_share_within_1": refl, "reflectance_threshold": reflectance_threshold,
            "reflectance_pass": refl_ok, "worst_reflectance_file": cmp["worst"]["reflectance"],
            "validity_mismatches": len(cmp["validity_mismatches"]),
            "pass": bool(masks_ok and refl_ok)}


# ================================================================================ report
def _pct(x: float | None, digits: int = 4) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def _num(x) -> str:
    return "–" if x is None else f"{x:g}" if isinstance(x, float) else str(x)


def markdown(doc: dict) -> str:
    cmp, v = doc["comparison"], doc["verdict"]
    la, lb = (b["label"] for b in doc["backends"])
    lines = [f"## L2A products: {la} vs {lb}", ""]
    for b in doc["backends"]:
        lines.append(f"- {b['label']}: {b['description']}, {b['seconds']:.1f} s wall (run_l2a, whole series)")
    lines += [f"- series: {doc['series']} ({len(doc['dates'])} dates, mode {doc['mode']}); "
              f"groups {', '.join(f'{g} {s[0]}x{s[1]}' for g, s in doc['sizes'].items())}; commit {doc['commit']}",
              "",
              f"| date | valid {la}/{lb} | mask px identical | worst mask file | SRE+FRE within 1 DN | "
              f"identical | max abs dDN | nodata on one side | AOT within 1 | WVC within 1 |",
              "|---|---|---|---|---|---|---|---|---|---|"]

    def row(label, valid, t, worst):
        m, r, atb = t["masks"], t["reflectance"], t["atb"]
        return (f"| {label} | {valid} | {_pct(m.get('share_identical'))} | {worst} | "
                f"{_pct(r.get('share_within_1'))} | {_pct(r.get('share_identical'))} | "
                f"{_num(r.get('max_abs_diff'))} | {_num(r.get('nodata_mismatch'))} | "
                f"{_pct(atb.get('AOT', {}).get('share_within_1'))} | "
                f"{_pct(atb.get('WVC', {}).get('share_within_1'))} |")

    def yn(x):
        return "–" if x is None else "yes" if x else "no"

    for p in cmp["products"]:
        w = p["worst_mask"]
        worst = ("–" if w is None else "none differs" if w["share_identical"] == 1.0
                 else f"{w['code']}_{w['id']} {_pct(w['share_identical'], 3)}")
        valid = f"{yn(p['valid'][0])}/{yn(p['valid'][1])}" + (f" (only in {p['only_in']})" if "only_in" in p else "")
        lines.append(row(p["date"], valid, p["totals"], worst))
    wm = cmp["worst"]["mask"]
    lines.append(row("**all**", f"{len(cmp['validity_mismatches'])} mismatch(es)", cmp["totals"],
                     "–" if wm is None else _pct(wm["share_identical"], 3)))
    lines += ["", "| file kind | pixels compared | identical | within 1 DN | max abs dDN |", "|---|---|---|---|---|"]
    t = cmp["totals"]
    for code, s in t["masks_by_code"].items():
        lines.append(f"| mask {code} | {s['n']} | {_pct(s['share_identical'])} | – | – |")
    for code, s in t["reflectance_by_code"].items():
        lines.append(f"| {code} | {s['n']} | {_pct(s['share_identical'])} | {_pct(s['share_within_1'])} | "
                     f"{_num(s['max_abs_diff'])} |")
    for band, s in t["atb"].items():
        lines.append(f"| ATB {band} | {s['n']} | {_pct(s['share_identical'])} | {_pct(s['share_within_1'])} | "
                     f"{_num(s['max_abs_diff'])} |")
    for code in BIT_CODES:
        s = t["masks_by_code"].get(code)
        if s and "bits" in s:
            lines.append("")
            lines.append(f"{code} per bit, pixels identical: " + ", ".join(
                f"bit {k} {_pct(b['share_identical'], 3)}" for k, b in s["bits"].items()))
    wr = v["worst_reflectance_file"]
    lines += ["",
              f"**Verdict: {'PASS' if v['pass'] else 'FAIL'}** — masks identical on "
              f"{_pct(v['masks_share_identical'])} of pixels (criterion >= {_pct(v['masks_threshold'], 1)}): "
              f"{'pass' if v['masks_pass'] else 'fail'}; worst mask file "
              f"{'–' if wm is None else wm['file'] + ' ' + _pct(wm['share_identical'])}; reflectances within 1 DN on "
              f"{_pct(v['reflectance_share_within_1'])} (criterion >= {_pct(v['reflectance_threshold'], 2)}): "
              f"{'pass' if v['reflectance_pass'] else 'fail'}; worst reflectance file "
              f"{'–' if wr is None else wr['file'] + ' ' + _pct(wr['share_within_1'])}; "
              f"{v['validity_mismatches']} validity mismatch(es)."]
    return "\n".join(lines)


def _sizes(cmp: dict) -> dict[str, list[int]]:
    sizes: dict[str, list[int]] = {}
    for p in cmp["products"]:
        for f in p["files"]:
            if f["kind"] == "mask":
                sizes.setdefault(f["id"], f["shape"])
    return dict(sorted(sizes.items()))


# ================================================================================ running
def parse_backends(text: str) -> list[str]:
    """"cpu,gpu" -> ["cpu", "gpu"]; exactly two of cpu/gpu (InputError otherwise)."""
    from gpumaja.errors import InputError

    names = [t.strip().lower() for t in text.split(",") if t.strip()]
    if len(names) != 2 or any(n not in BACKEND_NAMES for n in names):
        raise InputError(f"--backends must be two of {'/'.join(BACKEND_NAMES)} separated by a comma "
                         f"(e.g. cpu,gpu), got {text!r}")
    return names


def device_name() -> str | None:
    """The CUDA device 0 name (cupy.cuda.runtime.getDeviceProperties), None without a GPU."""
    try:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:
        return None


def provenance(gpu_used: bool) -> dict:
    """commit, tree_dirty and the GPU description (scripts/bench.py's helpers); None where unavailable,
    so that a finished comparison is never lost to an optional import."""
    try:
        import bench

        return {"commit": bench.git_commit(), "tree_dirty": bench.tree_dirty(),
                "gpu": bench.gpu_description() if gpu_used else None}
    except Exception as exc:  # noqa: BLE001 - provenance is best effort
        log.warning("provenance unavailable (%s)", exc)
        return {"commit": None, "tree_dirty": None, "gpu": None}


def _claim(folder: Path, created: list[Path]) -> Path:
    """Create an output folder for this run, refusing to reuse one that holds anything."""
    from gpumaja.errors import InputError

    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError("exists and is not empty; choose another --workdir or remove it", folder)
    folder.mkdir(parents=True, exist_ok=True)
    created.append(folder)
    return folder


def synthetic_series(folder: Path, size: int, dates: int, seed: int, created: list[Path]) -> Path:
    """The generated series in `folder` (validate_l2a_synthetic.ensure_series, i.e. gpumaja.synth):
    reused when it is a complete synth output of the same size, dates and seed; generated when the
    folder is absent or empty (then recorded in `created`); InputError otherwise (never overwritten)."""
    import validate_l2a_synthetic as vs

    from gpumaja.errors import InputError

    meta = folder / "truth" / "truth.json"
    if meta.is_file():
        m = json.loads(meta.read_text())
        if m.get("status") == "complete" and (m.get("size"), m.get("dates"), m.get("seed")) == (size, dates, seed):
            log.info("reusing the synthetic series in %s", folder)
            return folder
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InputError(f"holds something other than a complete synthetic series of {dates} dates of {size} px "
                         f"(seed {seed}); choose another --workdir or remove it", folder)
    created.append(folder)
    log.info("generating a synthetic series: %d dates of %d px (seed %d) in %s", dates, size, seed, folder)
    return vs.ensure_series(folder, dates, size, seed)


def run(args: argparse.Namespace) -> int:
    from gpumaja.backend import gpu_problem, select_backend
    from gpumaja.errors import DeviceError, InputError
    from gpumaja.io.params import read_params
    from gpumaja.model.params import L2Params
    from gpumaja.pipeline.l2a import run_l2a

    names = parse_backends(args.backends)
    if "gpu" in names and (problem := gpu_problem()) is not None:  # before anything runs (exit 2)
        raise DeviceError(f"--backends {args.backends}: the GPU backend cannot be used: {problem}")
    backends = [select_backend(n) for n in names]
    params = read_params(args.params) if args.params is not None else L2Params()
    if args.mode not in ("auto", "init"):
        raise InputError(f"--mode must be auto or init, got {args.mode!r}")
    if args.series is not None and not args.series.exists():
        raise InputError("series folder not found", args.series)
    if args.dem is not None and not args.dem.is_file():
        raise InputError("DEM file not found", args.dem)

    temporary = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="gpumaja_cmp_")) if temporary else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    created: list[Path] = []
    labels = [f"{n}-{i}" for i, n in enumerate(names)]
    try:
        outs = [_claim(work / lab, created) for lab in labels]
        synthetic = None
        if args.series is None:
            series = synthetic_series(work / "series", args.synth_size, args.dates, args.seed, created)
            synthetic = {"size": args.synth_size, "dates": args.dates, "seed": args.seed}
        else:
            series = args.series
        dem = args.dem
        if dem is None and (series / "truth" / "dem.tif").is_file():
            dem = series / "truth" / "dem.tif"
        if dem is None:
            log.info("no --dem: flat terrain at 0 m")

        seconds = []
        for backend, lab, out in zip(backends, labels, outs):
            log.info("running run_l2a on %s (%s) into %s", lab, backend.description, out)
            t0 = time.perf_counter()
            summaries = run_l2a([series], out, backend, params, dem=dem, gipp=args.gipp, lut_file=args.lut,
                                mode=args.mode)
            seconds.append(time.perf_counter() - t0)
            log.info("%s: %d products in %.1f s", lab, len(summaries), seconds[-1])

        cmp = compare_trees(outs[0], outs[1])
        v = verdict(cmp)
        gpu_used = any(b.is_gpu for b in backends)
        doc = {
            "script": "scripts/compare_backends.py",
            **provenance(gpu_used),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "device_name": device_name() if gpu_used else None,
            "backends": [{"label": lab, "name": b.name, "description": b.description, "seconds": round(s, 3)}
                         for lab, b, s in zip(labels, backends, seconds)],
            "seconds_note": "wall seconds of run_l2a over the whole series, one-time costs (kernel compilation, "
                            "LUT loading) included",
            "series": str(series) if args.series is not None or args.keep else "(synthetic, temporary)",
            "synthetic": synthetic,
            "mode": args.mode,
            "params": str(args.params) if args.params else None,
            "dem": str(dem) if dem else None,
            "dates": sorted({p["date"] for p in cmp["products"]}),
            "sizes": _sizes(cmp),
            "verdict": v,
            "comparison": cmp,
        }
    finally:
        if args.keep:
            log.info("kept the work folder %s", work)
        elif temporary:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for folder in created:  # only what this run created in the user's --workdir
                shutil.rmtree(folder, ignore_errors=True)
    md = markdown(doc)
    print(md)
    for path, text in ((args.out_json, json.dumps(doc, indent=1, default=str) + "\n"), (args.out_md, md + "\n")):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    log.info("wrote %s and %s", args.out_json, args.out_md)
    return 0 if v["pass"] else 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--series", type=Path, help="folder of L1C products (e.g. a gpumaja synth output)")
    src.add_argument("--synth-size", type=int, metavar="N",
                     help="generate a synthetic series of N x N px (10 m; a multiple of 6) with gpumaja.synth")
    ap.add_argument("--dates", type=int, default=20, help="dates of the generated series (default 20)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the generated series (default 0)")
    ap.add_argument("--dem", type=Path, help="DEM GeoTIFF (default: <series>/truth/dem.tif when there, else flat)")
    ap.add_argument("--workdir", type=Path, help="where the products go (default: a temporary folder)")
    ap.add_argument("--backends", default="cpu,gpu", help="the two backends compared (default cpu,gpu)")
    ap.add_argument("--mode", default="auto", choices=("auto", "init"), help="run_l2a mode (default auto)")
    ap.add_argument("--params", type=Path, help="parameter overrides (TOML or MAJA L2COMM .EEF)")
    ap.add_argument("--gipp", type=Path, help="MAJA GIPP folder (LUTs) instead of the default 6S LUT")
    ap.add_argument("--lut", type=Path, help="a LUT file built with 'gpumaja lut build'")
    ap.add_argument("--out-json", type=Path, default=DEFAULT_JSON)
    ap.add_argument("--out-md", type=Path, default=DEFAULT_MD)
    ap.add_argument("--keep", action="store_true", help="keep the products (and a generated series)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    from gpumaja.errors import GpumajaError

    try:
        return run(args)
    except GpumajaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
