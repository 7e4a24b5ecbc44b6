#!/usr/bin/env python3
"""Our 6S-built default LUT vs the MAJA GIPP LUT vs direct 6S runs, on a grid of cases off the LUT nodes.

For each band and case (sun/view zenith, relative azimuth, altitude, AOT) the three surface
reflectances of the same gas-corrected TOA* values are compared:

- ours: the shipped LUT (gpumaja/data/luts), reduced at the geometry, interpolated in (alt, AOT, TOA*)
  exactly as the L2A chain does (apply_minilut);
- GIPP: the MAJA GIPP set (../shared/data/maja_gipp_s2), same path;
- 6S: one direct Py6S run at that exact case (no gases, continental aerosol), inverted analytically:
  rho_s = y / (1 + S y), y = (TOA* - path) / (T_down T_up).

Prints a per-band table (max and RMS |d rho| for ours-6S, ours-GIPP, GIPP-6S) and writes JSON.
Usage: python scripts/validate_lut.py --sensor S2A [--gipp DIR] [--lut FILE] [--jobs 2]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from gpumaja.atmosphere.toc import apply_minilut
from gpumaja.io.gipp import load_gipp_lut
from gpumaja.io.lutfile import default_lut_path, load_lut
from gpumaja.lut.sensors import sensor_spec
from gpumaja.lut.sixs import Case, run_case, sixs_executable

SUN_ZENITH = (25.0, 50.0, 65.0)
VIEW_ZENITH = (5.0,)
REL_AZIMUTH = (30.0, 120.0)
ALTITUDE_M = (0.0, 1000.0)
AOT = (0.0, 0.05, 0.2, 0.4)
TOA = np.array([0.02, 0.05, 0.1, 0.2, 0.4], np.float32)


def surface(lut, band, sz, vz, az, alt, aot) -> np.ndarray:
    ml = lut.reduce(sz, {band: vz}, {band: az}, (band,))
    n = TOA.size
    return apply_minilut(TOA.reshape(1, 1, n), np.full((1, n), alt, np.float32),
                         np.full((1, n), aot, np.float32), ml)[0, 0]


def direct(case: Case, exe: str) -> np.ndarray:
    r = run_case(case, exe)
    y = (TOA.astype(np.float64) - r["path"]) / (r["t_down"] * r["t_up"])
    return y / (1.0 + r["albedo"] * y)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sensor", default="S2A")
    ap.add_argument("--gipp", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/maja_gipp_s2")
    ap.add_argument("--lut", type=Path, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)

    spec = sensor_spec(args.sensor)
    ours = load_lut(args.lut or default_lut_path(spec.key))
    gipp = load_gipp_lut(args.gipp, spec.key) if spec.family == "S2" and args.gipp.is_dir() else None
    exe = sixs_executable()
    cases = list(itertools.product(spec.rt_bands, SUN_ZENITH, VIEW_ZENITH, REL_AZIMUTH, ALTITUDE_M, AOT))
    t0 = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        sixs = list(pool.map(lambda c: direct(Case("rt", c[0], spec.py6s_names[c[0]], *c[1:5], aot=c[5]), exe), cases))
    t_6s = time.time() - t0

    rows = {}
    for (band, sz, vz, az, alt, aot), s6 in zip(cases, sixs):
        r = rows.setdefault(band, {"ours_6s": [], "ours_gipp": [], "gipp_6s": []})
        o = surface(ours, band, sz, vz, az, alt, aot)
        r["ours_6s"].append((aot, o - s6))
        if gipp is not None:
            g = surface(gipp, band, sz, vz, az, alt, aot)
            r["ours_gipp"].append((aot, o - g))
            r["gipp_6s"].append((aot, g - s6))
    table = {}
    for band, r in rows.items():
        table[band] = {}
        for k, v in r.items():
            if v:
                d = np.abs(np.concatenate([x for _, x in v]))
                by_aot = {f"{a:g}": float(np.abs(np.concatenate([x for b, x in v if b == a])).max()) for a in AOT}
                table[band][k] = {"max": float(d.max()), "rms": float(np.sqrt(np.mean(d * d))),
                                  "max_by_aot": by_aot}
    out = {
        "sensor": spec.key, "lut": ours.source, "gipp": gipp.source if gipp else None,
        "cases": {"sun_zenith": SUN_ZENITH, "view_zenith": VIEW_ZENITH, "rel_azimuth": REL_AZIMUTH,
                  "altitude_m": ALTITUDE_M, "aot": AOT, "toa_star": TOA.tolist()},
        "n_6s_runs": len(cases), "seconds_6s": round(t_6s, 1), "per_band": table,
    }
    cols = ("ours_6s", "ours_gipp", "gipp_6s")
    print(f"{spec.key}: |d rho_s| max / RMS over {len(cases)} cases x {TOA.size} TOA* values (AOT <= 0.4)")
    print(f"{'band':6}" + "".join(f"{c:>22}" for c in cols))
    for band, t in table.items():
        print(f"{band:6}" + "".join(f"{t[c]['max']:>11.4f} {t[c]['rms']:>9.4f}" if c in t else f"{'-':>22}" for c in cols))
    if gipp is not None:
        print("ours - GIPP, max |d rho_s| by AOT: " + ", ".join(
            f"{a:g}: {max(t['ours_gipp']['max_by_aot'][f'{a:g}'] for t in table.values()):.4f}" for a in AOT))
    path = args.json_out or Path(__file__).resolve().parent / "results" / f"validate_lut_{spec.key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
