#!/usr/bin/env python
"""Benchmark the L3A (WASP) and snow cover duration compute on resident data (not a test).

L3A tile-month: --dates dates (default 9) of an R1 group (4 bands, N x N at 10 m) and an R2 group (6 bands,
N/2 x N/2 at 20 m), random but realistic inputs (reflectance 0.02-0.5 with 1 % no data, clouds as blobs
on ~25 % of the tile, 3 % water, 5 % snow, AOT 0.05-0.6). Per date: the cloud weight (block fraction
to 240 m, two Gaussian blurs, bilinear back to both grids), the total weight (kernel `wasp_weight`) and
the running synthesis (kernel `wasp_update`) of both groups. Directional normalisation and file I/O are
not included (see `gpumaja l3a` timings for the end-to-end run).

SCD tile-year: a (T, M, M) uint8 stack of LIS codes (0 / 100 / 205 / 255, a seasonal snow line over an
elevation ramp, 30 % cloud) over a 365-day period; kernel `snow_duration` (SCD, SOD, SMOD, NOBS).

Timed on the GPU with CUDA events after one warm-up run (median of --repeats), inputs already on the
device; on the CPU with time.perf_counter. Full size (the issue's figures): N = 10980, T = 120, M = 5490 —
the default on a GPU; the CPU default is smaller (N = 2196, M = 1098). Prints a table and writes JSON.

    python scripts/bench_l3a_snow.py                       # GPU if available, else CPU at reduced size
    python scripts/bench_l3a_snow.py --device cpu --l3a-size 1098 --scd-size 549 --out /tmp/b.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def _blobs(rng, shape, fraction, scale):
    from scipy import ndimage

    small = rng.random((max(2, shape[0] // scale), max(2, shape[1] // scale)))
    field = ndimage.zoom(ndimage.gaussian_filter(small, 1.0), (shape[0] / small.shape[0], shape[1] / small.shape[1]),
                         order=1)[: shape[0], : shape[1]]
    return field > np.quantile(field, 1 - fraction)


def make_l3a_inputs(n: int, dates: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(dates):
        d = {}
        for g, nb, size in (("R1", 4, n), ("R2", 6, n // 2)):
            refl = rng.uniform(0.02, 0.5, (nb, size, size)).astype(np.float32)
            refl[:, rng.random((size, size)) < 0.01] = np.nan
            d[g] = {
                "refl": refl,
                "aot": rng.uniform(0.05, 0.6, (size, size)).astype(np.float32),
                "cloud": _blobs(rng, (size, size), 0.25, 64),
                "water": rng.random((size, size)) < 0.03,
                "snow": rng.random((size, size)) < 0.05,
            }
        out.append(d)
    return out


def make_scd_stack(t: int, m: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    days = np.sort(rng.choice(np.arange(-15, 380), size=t, replace=False)).astype(np.int32)
    elev = np.linspace(200, 3000, m, dtype=np.float32)[None, :].repeat(m, axis=0)
    stack = np.empty((t, m, m), np.uint8)
    for k, d in enumerate(days):
        line = 1200 + 1400 * (1 - np.cos(2 * np.pi * (d - 120) / 365)) / 2  # lowest in winter
        codes = np.where(elev > line, 100, 0).astype(np.uint8)
        codes[rng.random((m, m)) < 0.3] = 205
        codes[rng.random((m, m)) < 0.01] = 255
        stack[k] = codes
    return stack, days


class Timer:
    def __init__(self, backend):
        self.backend = backend

    def __call__(self, fn, repeats: int) -> list[float]:
        fn()  # warm-up (kernel compilation, memory pool)
        times = []
        for _ in range(repeats):
            if self.backend.is_gpu:
                import cupy

                start, stop = cupy.cuda.Event(), cupy.cuda.Event()
                start.record()
                fn()
                stop.record()
                stop.synchronize()
                times.append(cupy.cuda.get_elapsed_time(start, stop) / 1000.0)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return times


def bench_l3a(backend, n: int, dates: int, repeats: int) -> dict:
    from gpumaja.l3a.synthesis import new_state, total_weight, update_synthesis
    from gpumaja.l3a.weights import cloud_blurs, cloud_weight, upsample_coarse
    from gpumaja.model.wasp_params import WaspParams

    params = WaspParams()
    xp = backend.xp
    host = make_l3a_inputs(n, dates)
    dev = [{g: {k: xp.asarray(v) for k, v in d[g].items()} for g in d} for d in host]

    def run():
        states = {"R1": new_state(4, (n, n), xp), "R2": new_state(6, (n // 2, n // 2), xp)}
        for i, d in enumerate(dev):
            gs, gl = cloud_blurs(d["R1"]["cloud"], None, 24, params, xp)
            for g, f in (("R1", 24), ("R2", 12)):
                shape = d[g]["aot"].shape
                wc = cloud_weight(upsample_coarse(gs, shape, f, xp), upsample_coarse(gl, shape, f, xp), xp)
                w = total_weight(d[g]["aot"], wc, 1.0, 1.0 - 0.02 * i, params, backend)
                update_synthesis(states[g], d[g]["refl"], w, float(100 + 5 * i), d[g]["cloud"],
                                 d[g]["snow"], d[g]["water"], d[g]["refl"][0], backend)
        return states

    times = Timer(backend)(run, repeats)
    bytes_moved = dates * sum(4 * (nb + 2) * s * s + 3 * s * s for nb, s in ((4, n), (6, n // 2)))
    return {"what": f"L3A tile-month: {dates} dates, R1 4x{n}^2 + R2 6x{n // 2}^2", "seconds": times,
            "median_s": statistics.median(times), "input_bytes": bytes_moved}


def bench_scd(backend, t: int, m: int, repeats: int) -> dict:
    from gpumaja.model.lis_params import ScdParams
    from gpumaja.snow.duration import snow_duration

    stack, days = make_scd_stack(t, m)
    xp = backend.xp
    s_dev, d_dev = xp.asarray(stack), np.asarray(days)
    times = Timer(backend)(lambda: snow_duration(s_dev, d_dev, 365, ScdParams(), backend), repeats)
    return {"what": f"SCD tile-year: {t} dates x {m}^2, 365 days", "seconds": times,
            "median_s": statistics.median(times), "input_bytes": int(stack.nbytes)}


def main(argv=None) -> int:
    from gpumaja.backend import select_backend
    from scripts.bench_kernels import cpu_name, git_commit

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "gpu"])
    ap.add_argument("--l3a-size", type=int, default=None, help="R1 side N (default 10980 GPU, 2196 CPU)")
    ap.add_argument("--dates", type=int, default=9)
    ap.add_argument("--scd-size", type=int, default=None, help="SCD side M (default 5490 GPU, 1098 CPU)")
    ap.add_argument("--scd-dates", type=int, default=120)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "scripts" / "results" / "bench_l3a_snow.json")
    a = ap.parse_args(argv)
    backend = select_backend(a.device)
    n = a.l3a_size or (10980 if backend.is_gpu else 2196)
    m = a.scd_size or (5490 if backend.is_gpu else 1098)
    if n % 2:
        ap.error("--l3a-size must be even (R2 is N/2 at 20 m)")
    results = [bench_l3a(backend, n, a.dates, a.repeats), bench_scd(backend, a.scd_dates, m, a.repeats)]
    device = backend.description
    if backend.is_gpu:
        import cupy

        device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "device": device,
              "cpu": cpu_name(), "python": platform.python_version(), "commit": git_commit(), "results": results}
    print(f"{'what':60s} {'median s':>10s}")
    for r in results:
        print(f"{r['what']:60s} {r['median_s']:10.3f}")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
