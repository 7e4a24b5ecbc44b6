#!/usr/bin/env python3
"""Per-stage times of the one-date L2A chain (INIT mode, or NOMINAL with ``--nominal``) on a synthetic
tile-date held in memory.

The TOA of all 13 S2 bands comes from the real scene of ../shared/data/real/s2_l1c_array_s2cloudless
(real reflectances and cloud structure, 856x512 px at 10 m), mirror-tiled to SIZE x SIZE px at 10 m
(default 10980, a full tile: R1 10980², R2 5490², R3 1830²); the DEM is a smooth synthetic relief
(0-2000 m) so that the slope correction and terrain flags do real work; sun zenith 40°, nadir view.
Reading/decoding and writing are not included (see issue 6): this times compute only, after one
warm-up run on a small tile (kernel compilation, FFT plans). On the GPU, stages are timed with CUDA
events. Prints a table and writes JSON (scripts/results/bench_l2a_<device>_<size>.json).

``--nominal``: a composite is first built (INIT run + composite update, dated 5 days earlier) from the
same scene flipped upside down, so that clouds, shadows and surfaces differ between the composite and
the timed date; the timed run is then NOMINAL mode (multi-temporal cloud tests, correlation,
extension, shadow projection, shadvar, multi-date water, spectro-temporal AOT).

Usage: python scripts/bench_l2a.py [--size 10980] [--device cpu|gpu] [--lut FILE | --gipp DIR] [--nominal]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from compare_s2cloudless import BAND_ORDER, GROUPS, block_mean, load_scene, make_product  # noqa: E402

from gpumaja.backend import select_backend  # noqa: E402
from gpumaja.model.grids import Grid  # noqa: E402
from gpumaja.model.params import L2Params  # noqa: E402
from gpumaja.model.terrain import Terrain, slope_aspect  # noqa: E402
from gpumaja.pipeline.l2a_date import process_date  # noqa: E402
from gpumaja.pipeline.l2a_inputs import DateInputs, GroupTOA  # noqa: E402
from gpumaja.pipeline.luts import LUTCache  # noqa: E402
from gpumaja.pipeline.stages import Stages  # noqa: E402

SCENE = HERE.parents[1] / "shared" / "data" / "real" / "s2_l1c_array_s2cloudless" / "input_arrays.npz"


def mirror_tile(im: np.ndarray, size: int) -> np.ndarray:
    """(size, size, nb) by reflecting the scene (no seams)."""
    h, w = im.shape[:2]
    ry, rx = -(-size // h), -(-size // w)
    rows = [im if i % 2 == 0 else im[::-1] for i in range(ry)]
    col = np.concatenate(rows, axis=0)
    cols = [col if j % 2 == 0 else col[:, ::-1] for j in range(rx)]
    return np.ascontiguousarray(np.concatenate(cols, axis=1)[:size, :size])


def relief(shape: tuple[int, int], res: float, seed: int = 0) -> np.ndarray:
    """Smooth synthetic relief, 0-2000 m, correlation length ~3 km."""
    from scipy.ndimage import gaussian_filter, zoom

    rng = np.random.default_rng(seed)
    coarse = (max(4, int(shape[0] * res / 600)), max(4, int(shape[1] * res / 600)))
    z = gaussian_filter(rng.standard_normal(coarse), 3.0)
    z = zoom(z, (shape[0] / coarse[0], shape[1] / coarse[1]), order=1)[: shape[0], : shape[1]]
    z = (z - z.min()) / (np.ptp(z) + 1e-12) * 2000.0
    return z.astype(np.float32)


def make_inputs(size: int, backend, coarse_res: float = 240.0, flip: bool = False) -> DateInputs:
    xp = backend.xp
    im = mirror_tile(load_scene(SCENE)["s2_im"], size)
    if flip:
        im = np.ascontiguousarray(im[::-1])
    x0, y0 = 300000.0, 4900020.0
    grids, groups, terrain = {}, {}, {}
    z10 = relief((size, size), 10.0)
    for name, (bands, res) in GROUPS.items():
        f = round(res / 10.0)
        grid = Grid.from_origin("EPSG:32631", x0, y0, res, size // f, size // f)
        stack = np.stack([block_mean(im[..., BAND_ORDER.index(b)], f) for b in bands]).astype(np.float32)
        grids[name] = grid
        groups[name] = GroupTOA(name, grid, bands, xp.asarray(stack), xp.zeros(stack.shape, bool))
        if name != "R3":
            z = block_mean(z10, f)
            terrain[name] = Terrain(z, *slope_aspect(z, res), grid, "synthetic relief")
    del im
    coarse = grids["R1"].coarsen(coarse_res)
    zc = block_mean(np.pad(z10, ((0, -size % 24), (0, -size % 24)), mode="edge"), 24)
    terrain["coarse"] = Terrain(zc, *slope_aspect(zc, coarse_res), coarse, "synthetic relief")
    product = make_product(grids, 40.0, 160.0, 100.0)
    return DateInputs(product, groups, coarse, terrain, "synthetic relief")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=10980, help="tile side in 10 m pixels (multiple of 60)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--lut", type=Path)
    ap.add_argument("--gipp", type=Path)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--nominal", action="store_true", help="time NOMINAL mode against a composite")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    if args.size % 60:
        ap.error("--size must be a multiple of 60 (whole 60 m pixels)")
    backend = select_backend(args.device)
    lut = LUTCache(args.gipp, args.lut).for_platform("SENTINEL-2A")
    params = L2Params()

    def composite_for(size: int):
        if not args.nominal:
            return None
        from gpumaja.composite import day_number, empty_composite, update_composite

        base = make_inputs(size, backend, flip=True)
        co: dict = {}
        process_date(base, lut, params, backend, coarse_out=co)
        day = day_number(base.product.acquired.date()) - 5
        state = empty_composite(co.pop("bands"), co["edge"].shape, params, backend.xp)
        return update_composite(state, day, params=params, **co)

    warm = make_inputs(480, backend)
    process_date(warm, lut, params, backend, composite=composite_for(480))  # compile kernels, warm caches
    t0 = time.perf_counter()
    inp = make_inputs(args.size, backend)
    comp = composite_for(args.size)
    t_build = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeats):
        st = Stages(backend)
        t0 = time.perf_counter()
        result = process_date(inp, lut, params, backend, st, composite=comp)
        total = time.perf_counter() - t0
        runs.append({"total_s": total, "stages_s": dict(st.times)})
    best = min(runs, key=lambda r: r["total_s"])
    mem = {}
    if backend.is_gpu:
        import cupy

        pool = cupy.get_default_memory_pool()
        mem = {"device_pool_used_gb": pool.used_bytes() / 1e9, "device_pool_total_gb": pool.total_bytes() / 1e9}
    else:
        import resource

        mem = {"host_peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=HERE).stdout.strip()
    except OSError:
        commit = ""
    out = {
        "size": args.size, "device": backend.description, "machine": platform.processor() or platform.machine(),
        "commit": commit, "lut": lut.source, "mode": "NOMINAL" if args.nominal else "INIT", "cloud_percent": result.cloud_percent, "mean_aot": result.mean_aot,
        "inputs_build_s": t_build, "best_total_s": best["total_s"], "stages_s": best["stages_s"], "memory": mem,
        "runs": runs,
    }
    mode = "NOMINAL" if args.nominal else "INIT"
    print(f"L2A one date ({mode}), {args.size}x{args.size} px at 10 m, {backend.description}, LUT {lut.source}")
    for k, v in best["stages_s"].items():
        print(f"  {k:16} {v:9.3f} s")
    print(f"  {'total':16} {best['total_s']:9.3f} s   memory {mem}")
    path = args.json_out or HERE / "results" / f"bench_l2a_{'gpu' if backend.is_gpu else 'cpu'}_{args.size}{'_nominal' if args.nominal else ''}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
