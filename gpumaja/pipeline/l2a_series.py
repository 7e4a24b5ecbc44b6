"""The L2A series driver: backward initialisation, nominal forward, the composite carried from date
to date, a checkpoint after every step, read-ahead and the memory plan (maja-l2a.md §2, §6).

One plan per tile (`series_plan.plan_series`). Each step: read the date, `process_date` with the
composite (None = INIT mode), update the composite, write the product for written steps
(`io.muscate.write_l2a`: temporary folder then rename), save the checkpoint.

Off the critical path:
- reading: a reader thread reads the next `MemoryPlan.read_ahead` dates while the current one
  computes, and their band files are queued on one `io.decode.DecodePool` (`decode_workers` threads,
  or nvImageCodec on the GPU; `cache`: an `io.transcode_cache.TranscodeCache` folder), so the decoding
  of several bands and dates overlaps the compute; on the GPU the DN are uploaded through pinned
  buffers on a copy stream (`pipeline.transfer`);
- writing: a written step's product is written on a writer thread while the next step reads and
  computes (`background_write`, default when the memory plan has room for a read-ahead date, i.e.
  for one more date's result in memory). At most one write is pending: step k's write is waited
  for, and step k's checkpoint committed, after step k+1's compute and before step k+1's write is
  queued; a step without a product commits at once (after the pending write). So a checkpoint never
  claims a step whose product is not complete. A write error is raised by the run (the
  writer removes its temporary folder) and that step is not committed; when the compute of step k+1
  fails, step k's write is still awaited and committed before the error propagates.

Composite rules that need the results (§2):
- a result that is not valid (too cloudy / no data, `L2AResult.valid`) does not update the composite:
  MAJA continues from the last valid L2. So an invalid INIT does not initialise and the next step
  (the next older date) is processed in INIT mode ("the next-youngest is tried");
- after the backward pass the composite carries the oldest date (`last_day`) even when the oldest
  date was invalid ("the last valid one is relabelled with the oldest date"). Deviation: MAJA then
  also writes the last valid L2 under the oldest date's name; here the oldest date's product is its
  own (metadata only when invalid), only the composite is relabelled.

Checkpoint, in `out/.gpumaja/<tile>/`: `composite.npz` (`io.composite_store`) and `progress.json`
(a fingerprint of the plan: product ids, steps, parameters, LUT sources, DEM, software version; the
index of the last completed step; the SHA-256 of the composite file of that step). After a step the
new composite is saved as `composite.next.npz`, then `progress.json` is replaced (the commit point;
temp + fsync + os.replace), then the composite is renamed over `composite.npz`; on resume the file
whose SHA-256 is the committed one is used, so a kill at any instant resumes from a consistent state.
The checkpoint folder is removed when the tile's last step is done (keep_checkpoint=False).

Resume: a different fingerprint is an InputError. Steps up to the committed one are skipped; a later
step whose product already exists (killed after the rename, before the commit) is recomputed for the
composite, and its product is kept when complete, else rewritten. Without resume, a checkpoint or a
product to be written that already exists is an InputError unless overwrite.

Test hook: GPUMAJA_TEST_KILL_AFTER_STEP=N makes the process SIGKILL itself when the N-th step
(1-based) has written its product and updated the composite, before its checkpoint is committed
(with background writing that is after step N+1's compute, whose product is not queued yet;
tests/test_l2a_series.py kills a run this way and resumes it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import nvtx

from gpumaja import __version__
from gpumaja.backend import Backend, to_numpy
from gpumaja.composite import CompositeState, day_number, empty_composite, update_composite
from gpumaja.errors import CorruptFileError, InputError
from gpumaja.io.atomic_file import write_json_atomic
from gpumaja.io.composite_store import load_composite, save_composite
from gpumaja.io.decode import DecodePool
from gpumaja.io.muscate import product_files, product_name, product_name_of, write_l2a
from gpumaja.io.product_folder import clean_product_temporaries
from gpumaja.model.bands import group_bands
from gpumaja.model.l2a import L2AResult
from gpumaja.model.params import L2Params, roles_for
from gpumaja.model.product import L1CProduct
from gpumaja.pipeline.l2a_date import process_date
from gpumaja.pipeline.l2a_group import factor, strip_plan
from gpumaja.pipeline.l2a_inputs import DateInputs, prefetch_date, read_date, using_decoder
from gpumaja.pipeline.l2a_multitemporal import shadow_placement
from gpumaja.pipeline.luts import LUTCache
from gpumaja.pipeline.memory import MemoryPlan, free_bytes_for, plan_memory
from gpumaja.pipeline.series_plan import Step, is_last_backward, plan_series
from gpumaja.pipeline.stages import Stages

log = logging.getLogger(__name__)

CHECKPOINT_DIR = ".gpumaja"
PROGRESS_FILE = "progress.json"
COMPOSITE_FILE = "composite.npz"
COMPOSITE_NEXT = "composite.next.npz"
PROGRESS_FORMAT = "gpumaja-series-progress"
PROGRESS_VERSION = 1
KILL_ENV = "GPUMAJA_TEST_KILL_AFTER_STEP"

OnStep = Callable[[int, int, str], None]


# ------------------------------------------------------------------------------------------ files
def checkpoint_dir(out: Path, tile: str) -> Path:
    return Path(out) / CHECKPOINT_DIR / tile


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------------- fingerprint
def plan_fingerprint(products: Sequence[L1CProduct], steps: Sequence[Step], params: L2Params, luts: LUTCache,
                     dem: Path | None) -> tuple[str, dict]:
    """SHA-256 of what determines the products of a tile's series, and the document hashed."""
    params_json = json.dumps(params.to_dict(), sort_keys=True, default=str)
    doc = {
        "products": [p.product_id for p in products],
        "steps": [s.to_list() for s in steps],
        "params_sha256": hashlib.sha256(params_json.encode()).hexdigest(),
        "luts": {p.platform: luts.for_platform(p.platform).source for p in products},
        "dem": str(dem) if dem is not None else None,
        "software": f"gpumaja {__version__}",
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest(), doc


# ------------------------------------------------------------------------------------- tile state
@dataclasses.dataclass(eq=False)
class TileRun:
    tile: str
    products: list[L1CProduct]
    steps: list[Step]
    fingerprint: str
    plan_doc: dict
    ckpt: Path
    start: int = 0  # first step to execute
    state: CompositeState | None = None

    def product_out(self, out: Path, step: Step) -> Path:
        return Path(out) / product_name_of(self.products[step.index])


def _load_checkpoint(tr: TileRun, xp) -> None:
    progress_path = tr.ckpt / PROGRESS_FILE
    try:
        doc = json.loads(progress_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CorruptFileError(f"not a readable checkpoint ({exc})", progress_path) from exc
    if doc.get("format") != PROGRESS_FORMAT or doc.get("version") != PROGRESS_VERSION:
        raise CorruptFileError(f"not a {PROGRESS_FORMAT} file of version {PROGRESS_VERSION}", progress_path)
    if doc.get("fingerprint") != tr.fingerprint:
        raise InputError(
            "the checkpoint of the interrupted run was made for another series (products, processing plan, "
            "parameters, LUTs or DEM differ), so --resume cannot continue it; run again with the same inputs "
            "and options, or without --resume and with --overwrite to start again", progress_path)
    sha = doc.get("composite_sha256")
    state = None
    if sha is not None:
        for name in (COMPOSITE_NEXT, COMPOSITE_FILE):
            cand = tr.ckpt / name
            if cand.is_file() and _sha256(cand) == sha:
                if name == COMPOSITE_NEXT:
                    os.replace(cand, tr.ckpt / COMPOSITE_FILE)
                state = load_composite(tr.ckpt / COMPOSITE_FILE, xp)
                break
        else:
            raise CorruptFileError("the composite of the last completed step is missing or does not match "
                                   f"{PROGRESS_FILE}; run without --resume and with --overwrite", tr.ckpt)
    tr.start = int(doc["last_completed_step"]) + 1
    tr.state = state


def _commit(tr: TileRun, k: int, state: CompositeState | None) -> None:
    """Checkpoint after step k (module docstring: composite.next -> progress.json -> composite)."""
    tr.ckpt.mkdir(parents=True, exist_ok=True)
    sha = None
    if state is not None:
        nxt = save_composite(state, tr.ckpt / COMPOSITE_NEXT)
        sha = _sha256(nxt)
    write_json_atomic(tr.ckpt / PROGRESS_FILE, {
        "format": PROGRESS_FORMAT, "version": PROGRESS_VERSION, "tile": tr.tile, "fingerprint": tr.fingerprint,
        "plan": tr.plan_doc, "last_completed_step": k, "steps_total": len(tr.steps), "composite_sha256": sha,
    })
    if state is not None:
        os.replace(tr.ckpt / COMPOSITE_NEXT, tr.ckpt / COMPOSITE_FILE)
    else:
        (tr.ckpt / COMPOSITE_FILE).unlink(missing_ok=True)


def _remove_stale(out: Path, tr: TileRun) -> None:
    """Temporary folders/files of a killed run: the products' leftovers of this plan
    (`io.product_folder.clean_product_temporaries`: a swapped-out complete product is restored, not
    deleted), and the checkpoint's `.*.tmp-*` files."""
    for s in tr.steps:
        clean_product_temporaries(out, product_name_of(tr.products[s.index]))
    if tr.ckpt.is_dir():
        for p in tr.ckpt.glob(".*.tmp-*"):
            p.unlink(missing_ok=True)


def _finish(out: Path, tr: TileRun, keep: bool) -> None:
    if keep:
        return
    shutil.rmtree(tr.ckpt, ignore_errors=True)
    root = Path(out) / CHECKPOINT_DIR
    try:
        root.rmdir()  # only when empty (other tiles may still have theirs)
    except OSError:
        pass


# --------------------------------------------------------------------------------------- reading
class ReadAhead:
    """Reads step k's date, and queues the next `depth` steps' dates on one reader thread; every
    read date's band files are decoded on `decoder` (queued as soon as the date is scheduled)."""

    def __init__(self, products: Sequence[L1CProduct], steps: Sequence[Step], backend: Backend,
                 dem: Path | None, params: L2Params, depth: int, decoder: DecodePool | None = None):
        self.products, self.steps, self.backend, self.dem, self.params = products, steps, backend, dem, params
        self.depth = max(0, int(depth))
        self.decoder = decoder
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gpumaja-read") if self.depth else None
        self.pending: dict[int, Future] = {}

    def _read(self, k: int) -> DateInputs:
        p = self.products[self.steps[k].index]
        with nvtx.annotate(f"read {p.product_id}", domain="gpumaja"), using_decoder(self.decoder):
            return read_date(p, self.backend, self.dem, self.params.coarse_resolution_m)

    def _prefetch(self, k: int) -> None:
        """Best effort: a date that cannot be queued is read (and its error raised) by _read."""
        if self.decoder is None:
            return
        try:
            prefetch_date(self.products[self.steps[k].index], self.decoder)
        except Exception as exc:
            log.debug("prefetch of step %d skipped: %s", k, exc)

    def get(self, k: int) -> DateInputs:
        if self.pool is None:
            return self._read(k)
        for j in range(k, min(len(self.steps), k + 1 + self.depth)):
            if j not in self.pending:
                self._prefetch(j)
                self.pending[j] = self.pool.submit(self._read, j)
        return self.pending.pop(k).result()

    def close(self) -> None:
        if self.pool is not None:
            for f in self.pending.values():
                f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pending.clear()


# ---------------------------------------------------------------------------------- memory plan
def memory_plan_for(products: Sequence[L1CProduct], params: L2Params, backend: Backend, n_steps: int,
                    free_bytes: int | None = None) -> MemoryPlan:
    """`plan_memory` for the largest product of a tile (group shapes from the product grids)."""
    shapes: dict[str, tuple[int, int, int]] = {}
    factors: dict[str, int] = {}
    coarse = (1, 1)
    for p in products:
        present = {g: [b for b in bs if b.name in p.band_files] for g, bs in group_bands(p.sensor).items()}
        grids = {g: p.grids[g] for g, bs in present.items() if bs and g in p.grids}
        if not grids:
            continue
        finest = min(grids.values(), key=lambda gr: gr.resolution)
        cg = finest.coarsen(params.coarse_resolution_m)
        coarse = max(coarse, tuple(cg.shape))
        for g, grid in grids.items():
            s = (len(present[g]), *grid.shape)
            if g not in shapes or s > shapes[g]:
                shapes[g] = s
            factors[g] = factor(params.coarse_resolution_m, grid.resolution)
    free = free_bytes_for(backend) if free_bytes is None else free_bytes
    plan = plan_memory(n_steps, shapes, coarse, free, backend.is_gpu, factors=factors, params=params)
    log.info("memory plan: read-ahead %d, strips %s, composite %s, cloud-shadow stage %s (model %.2f GiB of "
             "%.2f GiB free)", plan.read_ahead, plan.strip_rows, "on the device" if plan.resident_coarse else
             "on the host", "on the device" if plan.shadow_on_device else "on the host", plan.need_bytes / 2**30,
             free / 2**30)
    return plan


# ------------------------------------------------------------------------------------ one step
_STATE_ARRAYS = ("rta", "rcr", "rtc", "pxd", "ndt", "sto", "cld", "pwa", "twa")


def _to_host(state: CompositeState | None) -> CompositeState | None:
    """The composite with its arrays on the host (MemoryPlan.resident_coarse False)."""
    if state is None:
        return None
    return dataclasses.replace(state, **{k: to_numpy(getattr(state, k)) for k in _STATE_ARRAYS
                                         if getattr(state, k) is not None})


def _to_device(state: CompositeState | None, backend: Backend) -> CompositeState | None:
    if state is None or not backend.is_gpu:
        return state
    xp = backend.xp
    return dataclasses.replace(state, **{k: xp.asarray(getattr(state, k)) for k in _STATE_ARRAYS
                                         if getattr(state, k) is not None})


def _updated(state: CompositeState | None, result: L2AResult, coarse: dict, day: int, params: L2Params,
             xp) -> CompositeState | None:
    """The composite after a date (§2); unchanged (None stays None) when the result is not valid
    (module docstring). `coarse`: what process_date put in coarse_out (update_composite's keyword
    arguments and `bands`)."""
    if not result.valid:
        return state
    kwargs = {k: v for k, v in coarse.items() if k != "bands"}
    base = state if state is not None else empty_composite(tuple(coarse["bands"]), tuple(coarse["aot"].shape),
                                                           params, xp)
    return update_composite(base, day, params=params, **kwargs)


def product_complete(path: Path, result: L2AResult) -> bool:
    """True when the product folder holds every file the writer would write for `result`."""
    name = path.name
    files = list(product_files(name, result).values()) if result.valid else []
    files += [f"{name}_MTD_ALL.xml", f"{name}_STAC.json"]
    return path.is_dir() and all((path / f).is_file() and (path / f).stat().st_size > 0 for f in files)


def _write(result: L2AResult, out: Path, overwrite: bool, resume: bool) -> tuple[Path, bool]:
    """Write the product; on resume keep an existing complete one. Returns (path, kept)."""
    path = Path(out) / product_name(result)
    if path.exists() and resume and not overwrite:
        if product_complete(path, result):
            log.info("%s: kept (written before the interruption)", path.name)
            return path, True
        log.warning("%s: incomplete, rewritten", path.name)
        return write_l2a(result, out, overwrite=True), False
    return write_l2a(result, out, overwrite=overwrite or resume), False


def _r(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 4)


def _summary(product: L1CProduct, result: L2AResult, path: Path, step: Step, k: int, n: int, mode: str,
             updated: bool, kept: bool, t: tuple[float, float, float], times: dict[str, float]) -> dict:
    t0, t1, t2 = t
    return {
        "input": str(product.path), "product": str(path), "name": product_name(result),
        "acquired": product.acquired.isoformat().replace("+00:00", "Z"), "platform": product.platform,
        "valid": result.valid, "cloud_percent": round(result.cloud_percent, 2),
        "snow_percent": round(result.snow_percent, 2), "mean_aot": _r(result.mean_aot),
        "mean_water_vapour": _r(result.mean_water_vapour), "lut": result.lut_source,
        "mode": mode, "planned_mode": step.mode, "direction": step.direction, "step": k, "steps": n,
        "composite_updated": updated, "kept": kept,
        "seconds": {"compute": round(t1 - t0, 3), "write": round(t2 - t1, 3),
                    **{name: round(v, 3) for name, v in times.items()}},
    }


class ProductWriter:
    """Runs product writes on one background thread (`background`), else in the calling thread.
    The driver keeps at most one write pending (module docstring)."""

    def __init__(self, background: bool):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="gpumaja-write") if background else None

    def submit(self, fn: Callable[[], tuple[Path, bool, float]]) -> Future:
        if self.pool is not None:
            return self.pool.submit(fn)
        done: Future = Future()
        done.set_result(fn())  # in this thread: an error is raised here, as before
        return done

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


@dataclasses.dataclass(eq=False)
class _Done:
    """A computed step waiting for its product write (`write`: None when it writes none) and commit."""

    k: int
    step: Step
    product: L1CProduct
    result: L2AResult
    state: CompositeState | None
    mode: str
    updated: bool
    stages: Stages
    t: tuple[float, float]
    write: Future | None


def _run_tile(tr: TileRun, luts: LUTCache, params: L2Params, backend: Backend, out: Path, dem: Path | None,
              resume: bool, overwrite: bool, on_step: OnStep | None, offset: int, total: int,
              mem: MemoryPlan, keep_checkpoint: bool, decoder: DecodePool | None = None,
              background_write: bool | None = None) -> list[dict]:
    xp = backend.xp
    kill_after = int(os.environ.get(KILL_ENV, "0") or 0)
    steps, state = tr.steps, tr.state
    summaries: list[dict] = []
    background = mem.read_ahead > 0 if background_write is None else background_write
    reader = ReadAhead(tr.products, steps, backend, dem, params, mem.read_ahead, decoder)
    writer = ProductWriter(background)

    def timed_write(result: L2AResult) -> tuple[Path, bool, float]:
        t = time.perf_counter()
        with nvtx.annotate(f"write {result.product.product_id}", domain="gpumaja"):
            path, kept = _write(result, out, overwrite, resume)
        return path, kept, time.perf_counter() - t

    def settle(d: _Done) -> None:
        """Wait for d's product (raising its error), then commit d's checkpoint."""
        path, kept, seconds = d.write.result() if d.write is not None else (None, False, 0.0)
        if d.write is not None:
            d.stages.times["write"] = d.stages.times.get("write", 0.0) + seconds
        if kill_after and d.k + 1 == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        with d.stages("checkpoint"):
            _commit(tr, d.k, d.state)
        log.info("step %d/%d %s %s %s: cloud %.1f %%, %s", d.k + 1, len(steps), d.mode, d.step.direction,
                 d.product.product_id, d.result.cloud_percent, "written" if d.step.write else "not written")
        if d.step.write:
            t0, t1 = d.t
            summaries.append(_summary(d.product, d.result, path, d.step, offset + d.k, total, d.mode, d.updated,
                                      kept, (t0, t1, t1 + seconds), d.stages.times))

    pending: _Done | None = None
    try:
        for k in range(tr.start, len(steps)):
            step = steps[k]
            product = tr.products[step.index]
            if on_step:
                on_step(offset + k, total, product.product_id)
            stages = Stages(backend)
            if step.mode == "INIT":  # a segment starts from an empty composite
                state = None
            mode = "INIT" if state is None else "NOMINAL"
            with nvtx.annotate(f"step {k} {mode} {step.direction} {product.product_id}", domain="gpumaja"):
                t0 = time.perf_counter()
                with stages("read"):
                    inp = reader.get(k)
                coarse: dict = {}
                extra = {"composite": _to_device(state, backend)} if state is not None else {}
                with strip_plan(mem.strip_rows), shadow_placement(mem.shadow_on_device):
                    result = process_date(inp, luts.for_platform(product.platform), params, backend, stages,
                                          coarse_out=coarse, **extra)
                del inp
                t1 = time.perf_counter()
                day = day_number(product.acquired.date())
                with stages("composite"):
                    state = _updated(_to_device(state, backend), result, coarse, day,
                                     roles_for(params, product.sensor), xp)
                    updated = result.valid
                    if is_last_backward(steps, k) and state is not None and state.last_day != day:
                        # §2: the last valid composite is relabelled with the oldest date
                        log.info("%s is not valid: the composite of day %d carries its date", product.product_id,
                                 state.last_day)
                        state = dataclasses.replace(state, last_day=day)
                    if not mem.resident_coarse:
                        state = _to_host(state)
                del coarse
                if pending is not None:  # step k-1's product is complete before its commit
                    done, pending = pending, None
                    settle(done)
                d = _Done(k, step, product, result, state, mode, updated, stages, (t0, t1), None)
                if step.write:
                    d.write = writer.submit(lambda r=result: timed_write(r))
                if step.write and background:
                    pending = d  # written while step k+1 reads and computes
                else:
                    settle(d)
    except BaseException:
        if pending is not None:  # its product may be complete: commit it, so a resume need not redo it
            done, pending = pending, None
            try:
                settle(done)
            except BaseException as exc:  # the run's own error is the one raised
                log.error("step %d: %s", done.k + 1, exc)
        raise
    finally:
        writer.close()
        reader.close()
    if pending is not None:
        settle(pending)
    tr.state = state
    _finish(out, tr, keep_checkpoint)
    return summaries


# ----------------------------------------------------------------------------------------- driver
def prepare_tiles(products: Sequence[L1CProduct], luts: LUTCache, params: L2Params, out: Path,
                  dem: Path | None, resume: bool, overwrite: bool, mode: str = "auto", xp=None) -> list[TileRun]:
    """One plan per tile, checked against what `out` holds; raises before anything is written."""
    xp = xp or np
    by_tile: dict[str, list[L1CProduct]] = {}
    for p in sorted(products, key=lambda p: p.acquired):
        by_tile.setdefault(p.tile, []).append(p)
    runs = []
    for tile in sorted(by_tile):
        prods = by_tile[tile]
        steps = plan_series(prods, params, mode)
        fp, doc = plan_fingerprint(prods, steps, params, luts, dem)
        tr = TileRun(tile, prods, steps, fp, doc, checkpoint_dir(out, tile))
        has_ckpt = tr.ckpt.exists() and any(tr.ckpt.iterdir())
        if resume:
            if (tr.ckpt / PROGRESS_FILE).is_file():
                _load_checkpoint(tr, xp)
        elif has_ckpt and not overwrite:
            raise InputError("an interrupted run left its checkpoint here: pass --resume to continue it or "
                             "--overwrite to start again", tr.ckpt)
        if not resume and not overwrite:
            for s in steps:
                if s.write and tr.product_out(out, s).exists():
                    raise InputError(f"product {tr.product_out(out, s).name} already exists (use --overwrite to "
                                     "replace it)", out)
        runs.append(tr)
    return runs


def run_series(
    products: Sequence[L1CProduct], luts: LUTCache, params: L2Params, backend: Backend, out: Path,
    dem: Path | None = None, resume: bool = False, overwrite: bool = False, on_step: OnStep | None = None,
    mode: str = "auto", keep_checkpoint: bool = False, free_bytes: int | None = None,
    cache: str | Path | None = None, decode_workers: int | None = None, decoder: str | None = None,
    background_write: bool | None = None,
) -> list[dict]:
    """Process every tile's series (module docstring); one summary per product written in this call
    (run_l2a's keys plus mode, planned_mode, direction, step, steps, composite_updated, kept).
    `on_step(i, n, product_id)` is called before each step (i counts over all tiles).
    `cache`: a folder for decoded band files (`io.transcode_cache`); `decode_workers`, `decoder`:
    the `io.decode.DecodePool` (None: os.cpu_count() / GPUMAJA_DECODE_WORKERS, GPUMAJA_DECODER or
    auto); `background_write`: None = when the memory plan reads ahead."""
    out = Path(out)
    runs = prepare_tiles(products, luts, params, out, dem, resume, overwrite, mode, backend.xp)
    # every plan before anything is written: a tile that cannot fit fails the run up front
    mems = [memory_plan_for(tr.products, params, backend, len(tr.steps), free_bytes) for tr in runs]
    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(tr.steps) for tr in runs)
    summaries: list[dict] = []
    offset = 0
    with DecodePool(decode_workers, cache, decoder, backend) as pool:
        for tr, mem in zip(runs, mems):
            if not resume:
                shutil.rmtree(tr.ckpt, ignore_errors=True)
            if resume or overwrite:
                _remove_stale(out, tr)
            if tr.start > 0:
                log.info("tile %s: resuming at step %d/%d", tr.tile, tr.start + 1, len(tr.steps))
            if tr.start < len(tr.steps):
                summaries += _run_tile(tr, luts, params, backend, out, dem, resume, overwrite, on_step, offset,
                                       total, mem, keep_checkpoint, pool, background_write)
            else:
                _finish(out, tr, keep_checkpoint)
            offset += len(tr.steps)
    return summaries
