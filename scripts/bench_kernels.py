#!/usr/bin/env python
"""Benchmark the first gpumaja kernels: dn_to_toa and block_mean (not a test).

GPU (default when CuPy sees a device): a Sentinel-2 10 m resolution group, 4 bands x 10980 x 10980
random non-zero uint16 DN (with 1 % nodata, 0.5 % saturated), and block_mean of the resulting TOA stack
(with its NaN holes) by a factor 24 (10 m -> 240 m). Timed with CUDA events after warm-up, median of
--repeats runs of the full Python wrapper (kernel + small per-call host work).

CPU (no GPU, or --device cpu): the NumPy twins on a smaller stack, 4 x 2048 x 2048 by default, timed
with time.perf_counter (median of --repeats after one warm-up).

Reported per kernel: ms, effective bandwidth in GB/s (bytes the kernel must read + write once:
dn_to_toa 2 + 4 + 1 B per uint16 pixel, block_mean 4 B per input pixel + 8 B per output cell) and Mpix/s
(input pixels, all bands). Writes JSON (--out, default bench_kernels.json) with date, device, git
commit, sizes and figures.

    python scripts/bench_kernels.py                       # GPU if available
    python scripts/bench_kernels.py --device cpu --size 4x1024x1024 --out /tmp/bench.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout without installing (imports are in the functions)


GPU_SIZE = (4, 10980, 10980)
CPU_SIZE = (4, 2048, 2048)
S2_GAIN = np.full(4, 1e-4)
S2_OFFSET = np.full(4, -0.1)


def git_commit() -> str | None:
    try:
        out = subprocess.run(  # read-only: the commit being benchmarked
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() or None


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def random_dn(xp, shape, seed=0):
    """Random valid uint16 DN (1..65534), 1 % nodata (0), 0.5 % saturated (65535)."""
    rs = xp.random.RandomState(seed)
    dn = rs.randint(1, 65535, size=shape, dtype=np.int32).astype(np.uint16)
    u = rs.random_sample(shape, dtype=np.float32) if xp.__name__ == "cupy" else rs.random_sample(shape)
    dn[u < 0.01] = 0
    dn[(u >= 0.01) & (u < 0.015)] = 65535
    return dn


def time_gpu(fn, repeats: int, warmup: int = 2) -> list[float]:
    import cupy

    for _ in range(warmup):
        fn()
    cupy.cuda.Device().synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, stop))  # ms
    return times


def time_cpu(fn, repeats: int, warmup: int = 1) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def figures(name: str, times_ms: list[float], nbytes: int, npix: int, extra: dict) -> dict:
    ms = statistics.median(times_ms)
    return {
        "kernel": name,
        "ms_median": round(ms, 4),
        "ms_min": round(min(times_ms), 4),
        "repeats": len(times_ms),
        "bytes": nbytes,
        "gb_per_s": round(nbytes / (ms * 1e-3) / 1e9, 3),
        "mpix_per_s": round(npix / (ms * 1e-3) / 1e6, 3),
        **extra,
    }


def run(device: str, size: tuple[int, int, int], factor: int, repeats: int) -> dict:
    from gpumaja.radiometry.coarse import block_mean, coarse_shape
    from gpumaja.radiometry.toa import dn_to_toa

    nb, h, w = size
    npix = nb * h * w
    hc, wc = coarse_shape(h, w, factor)
    gain, offset = np.resize(S2_GAIN, nb), np.resize(S2_OFFSET, nb)
    if device == "gpu":
        import cupy

        xp = cupy
        props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        timer = time_gpu
        info = {
            "device": f"GPU: {name}",
            "cupy": cupy.__version__,
            "cuda_runtime": cupy.cuda.runtime.runtimeGetVersion(),
        }
    else:
        xp = np
        timer = time_cpu
        info = {"device": f"CPU: {cpu_name()} ({cpu_count()} cores available)"}

    dn = random_dn(xp, size)
    toa_out = {}

    def toa_call():
        toa_out["toa"], _ = dn_to_toa(dn, gain, offset, 1.0)

    t_toa = timer(toa_call, repeats)
    stack = toa_out["toa"]  # float32 TOA with NaN at nodata

    def mean_call():
        block_mean(stack, factor)

    t_mean = timer(mean_call, repeats)
    results = [
        figures(
            "dn_to_toa",
            t_toa,
            npix * (2 + 4 + 1),
            npix,
            {"input": f"{nb}x{h}x{w} uint16", "output": "float32 toa + uint8 flags"},
        ),
        figures(
            "block_mean",
            t_mean,
            npix * 4 + nb * hc * wc * 8,
            npix,
            {"input": f"{nb}x{h}x{w} float32", "factor": factor, "output": f"{nb}x{hc}x{wc}"},
        ),
    ]
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": device,
        **info,
        "git_commit": git_commit(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "size": list(size),
        "timing": "CUDA events, median" if device == "gpu" else "time.perf_counter, median",
        "results": results,
    }


def print_table(report: dict) -> None:
    cols = ("kernel", "input", "ms_median", "ms_min", "gb_per_s", "mpix_per_s")
    heads = ("kernel", "input", "ms (median)", "ms (min)", "GB/s", "Mpix/s")
    title = f"{report['device']}  |  commit {(report['git_commit'] or 'unknown')[:10]}  |  {report['timing']}"
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(title)
        print("  ".join(f"{h:>14}" for h in heads))
        for r in report["results"]:
            print("  ".join(f"{r[c]!s:>14}" for c in cols))
        return
    table = Table(title=title)
    for h in heads:
        table.add_column(h, justify="right")
    for r in report["results"]:
        table.add_row(*(str(r[c]) for c in cols))
    Console().print(table)


def parse_size(text: str) -> tuple[int, int, int]:
    parts = tuple(int(p) for p in text.lower().split("x"))
    if len(parts) != 3 or min(parts) < 1:
        raise argparse.ArgumentTypeError(f"size must be BANDSxHEIGHTxWIDTH, got {text!r}")
    return parts  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto")
    ap.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help=f"BANDSxHEIGHTxWIDTH (default GPU {'x'.join(map(str, GPU_SIZE))}, "
        f"CPU {'x'.join(map(str, CPU_SIZE))})",
    )
    ap.add_argument("--factor", type=int, default=24, help="block_mean factor (default 24: 10 m -> 240 m)")
    ap.add_argument("--repeats", type=int, default=None, help="timed runs (default GPU 20, CPU 5)")
    ap.add_argument("--out", type=Path, default=Path("bench_kernels.json"))
    args = ap.parse_args(argv)

    from gpumaja.backend import gpu_problem

    problem = gpu_problem()
    device = args.device
    if device == "auto":
        device = "gpu" if problem is None else "cpu"
    elif device == "gpu" and problem is not None:
        print(f"--device gpu: {problem}", file=sys.stderr)
        return 2
    size = args.size or (GPU_SIZE if device == "gpu" else CPU_SIZE)
    repeats = args.repeats or (20 if device == "gpu" else 5)

    report = run(device, size, args.factor, repeats)
    print_table(report)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
