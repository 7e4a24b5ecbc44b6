"""`gpumaja batch`: one L2A task per tile series on a Dask cluster, nothing lost, nothing twice.

The task (`run_tile`, run on a worker): open the entry's products (the tile id is the manifest's,
checked against them, else theirs), take the tile's lock, then `run_l2a` with resume semantics
(`l2a_series`): a checkpoint in `out/.gpumaja/<tile>/` is continued, an existing complete product is
kept, not rewritten; a tile whose products are all there and that has no checkpoint is skipped
without computing. With `overwrite` the first attempt replaces the tile's products and checkpoint,
a retry continues that attempt's checkpoint and rewrites the rest.

A killed worker loses nothing and duplicates nothing:
- the scheduler re-runs a task whose worker died (`distributed.scheduler.allowed-failures`) and a
  task that raised (`retries`); deterministic bad input (an InputError: a corrupt product, a
  checkpoint of another series, ...) is reported at once, not retried;
- two attempts of one tile never run at once: each holds `out/.gpumaja/<tile>.lock` with
  fcntl.flock, which the kernel releases when the holding process dies (a second attempt waits);
- products appear by an atomic rename of a complete temporary folder and the series checkpoint is
  committed after each step (`l2a_series`), so a re-run resumes where the dead one stopped and
  removes its temporary folders.

Under the lock, `out/.gpumaja/<tile>.batch.json` records this batch's attempts at the tile (id of
the batch, attempt count, products that existed before its first attempt, pid/host/worker of each
attempt). The driver (`run_batch`) removes the lock and state files when every task has ended and
writes `out/batch_summary.json` atomically: per tile the status (ok/failed), products written and
skipped, the error (type, message) of a failure, attempts, seconds; and the totals.

Test hook: GPUMAJA_TEST_BATCH_STEP_SLEEP=S makes each task sleep S seconds before each series step
(tests/test_batch.py slows the tasks so that a worker is killed while it processes a tile).
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpumaja import __version__
from gpumaja.errors import GpumajaError, InputError
from gpumaja.io.atomic_file import write_json_atomic
from gpumaja.io.manifest import TileEntry
from gpumaja.io.product_folder import clean_product_temporaries
from gpumaja.pipeline.l2a_series import CHECKPOINT_DIR, PROGRESS_FILE, checkpoint_dir

log = logging.getLogger(__name__)

SUMMARY_FILE = "batch_summary.json"
SUMMARY_FORMAT = "gpumaja-batch-summary"
SUMMARY_VERSION = 1
LOCK_SUFFIX = ".lock"
STATE_SUFFIX = ".batch.json"
TOPIC = "gpumaja-batch"  # worker -> client progress events
SLEEP_ENV = "GPUMAJA_TEST_BATCH_STEP_SLEEP"


@dataclasses.dataclass(frozen=True)
class BatchOptions:
    """What every tile task shares. dem/gipp/lut/params: defaults for entries that give none."""

    out: Path
    device: str = "auto"
    mode: str = "auto"
    overwrite: bool = False
    dem: Path | None = None
    gipp: Path | None = None
    lut: Path | None = None
    params: Path | None = None
    cache: Path | None = None  # decoded-band cache folder shared by the workers (`gpumaja l2a --cache`)
    decode_workers: int | None = None  # decode threads per task (`gpumaja l2a --decode-workers`)
    lock_timeout: float | None = None  # seconds to wait for another attempt's lock; None = no limit
    log_level: int = logging.INFO


class TileError(GpumajaError, RuntimeError):
    """A tile's task failed with an unexpected error (retried by the scheduler); carries the tile,
    the original error's type and message and the attempt number."""

    def __init__(self, tile: str, error_type: str, message: str, attempt: int | None = None,
                 seconds: float | None = None):
        self.tile, self.error_type, self.message, self.attempt, self.seconds = (
            tile, error_type, message, attempt, seconds)
        super().__init__(f"tile {tile}: {error_type}: {message}")

    def __reduce__(self):
        return TileError, (self.tile, self.error_type, self.message, self.attempt, self.seconds)


class TileLockTimeout(GpumajaError, TimeoutError):
    """Another attempt of the tile held its lock longer than lock_timeout."""


# ------------------------------------------------------------------------------------ the lock
def lock_path(out: Path, tile: str) -> Path:
    return Path(out) / CHECKPOINT_DIR / f"{tile}{LOCK_SUFFIX}"


def state_path(out: Path, tile: str) -> Path:
    return Path(out) / CHECKPOINT_DIR / f"{tile}{STATE_SUFFIX}"


class TileLock:
    """Exclusive fcntl.flock on out/.gpumaja/<tile>.lock (released by the kernel if the process dies)."""

    def __init__(self, out: Path, tile: str, timeout: float | None = None, poll_s: float = 0.5):
        self.path, self.timeout, self.poll_s = lock_path(out, tile), timeout, poll_s
        self.fd: int | None = None

    def _open(self) -> int:
        for _ in range(20):  # out/.gpumaja may be removed between mkdir and open (l2a_series._finish)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:
                continue
        raise OSError(f"{self.path}: cannot create the lock file")

    def __enter__(self) -> TileLock:
        t0 = time.monotonic()
        waiting = False
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if not waiting:
                    log.info("%s: another attempt holds the lock, waiting", self.path.name)
                    waiting = True
                if self.timeout is not None and time.monotonic() - t0 > self.timeout:
                    raise TileLockTimeout(f"{self.path}: another attempt held the lock for more than "
                                          f"{self.timeout:g} s") from None
                time.sleep(self.poll_s)
                continue
            try:  # the file we locked must still be the one at the path (not unlinked meanwhile)
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the flock
            self.fd = None


def remove_lock_files(out: Path, tile: str) -> None:
    """The tile's lock and state files, when no attempt holds the lock (driver, after the batch)."""
    path = lock_path(out, tile)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        state_path(out, tile).unlink(missing_ok=True)
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        log.warning("%s: still held by a running attempt, left in place", path)
        os.close(fd)
        return
    try:
        state_path(out, tile).unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------- products
def product_done(path: Path) -> bool:
    """A product folder in place (folders appear complete, by rename) with its MTD and STAC item."""
    name = path.name
    return path.is_dir() and all((path / f).is_file() and (path / f).stat().st_size > 0
                                 for f in (f"{name}_MTD_ALL.xml", f"{name}_STAC.json"))


def expected_products(products: Sequence[Any], params: Any, mode: str) -> list[str]:
    """Names of the products the series plan writes, in date order."""
    from gpumaja.io.muscate import product_name_of
    from gpumaja.pipeline.series_plan import plan_series

    names = {product_name_of(products[s.index]) for s in plan_series(products, params, mode) if s.write}
    return [product_name_of(p) for p in products if product_name_of(p) in names]


def tile_of(entry: TileEntry, products: Sequence[Any]) -> str:
    """The entry's tile: the products' one tile, which must be the manifest's when it gives one."""
    tiles = sorted({p.tile for p in products})
    where = f"{entry.where}: " if entry.where else ""
    if len(tiles) != 1:
        raise InputError(f"{where}the products are of tiles {', '.join(tiles)}: one tile per entry",
                         entry.inputs[0])
    tile = tiles[0]
    if entry.tile is not None and entry.tile.upper().lstrip("T") != tile.upper().lstrip("T"):
        raise InputError(f"{where}the manifest says tile {entry.tile} but the products are of tile {tile}",
                         entry.inputs[0])
    return tile


# ------------------------------------------------------------------------------- attempt state
def _read_state(out: Path, tile: str, batch_id: str) -> dict:
    import json

    try:
        doc = json.loads(state_path(out, tile).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) and doc.get("batch") == batch_id else {}


def attempts_of(out: Path, tile: str, batch_id: str) -> int | None:
    """How many attempts this batch made at the tile (None: unknown)."""
    return _read_state(out, tile, batch_id).get("attempts")


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except Exception:
        return None


def _notify(msg: dict) -> None:
    """A progress event to the client (no-op outside a Dask worker)."""
    try:
        from distributed import get_worker

        get_worker().log_event(TOPIC, msg)
    except Exception:
        pass


def _setup_worker_logging(level: int) -> None:
    root = logging.getLogger("gpumaja")
    if all(isinstance(h, logging.NullHandler) for h in root.handlers):  # a worker process: logs to its stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s [pid %(process)d]: %(message)s"))
        root.addHandler(handler)
        root.setLevel(level)
        root.propagate = False


def _start_attempt(out: Path, tile: str, batch_id: str, entry: TileEntry, names: Sequence[str]) -> dict:
    """Count this attempt in the tile's state file (under its lock); the first attempt of the batch
    records the products already there."""
    state = _read_state(out, tile, batch_id)
    attempt = int(state.get("attempts", 0)) + 1
    if attempt == 1:
        state = {"batch": batch_id, "tile": tile, "where": entry.where,
                 "preexisting": [n for n in names if product_done(out / n)], "done": False}
    elif state.get("where") != entry.where:
        raise InputError(f"{entry.where}: the products are of tile {tile}, which {state.get('where')} of the "
                         "manifest also holds: one entry per tile series", entry.inputs[0])
    state["attempts"] = attempt
    state.setdefault("history", []).append({
        "attempt": attempt, "pid": os.getpid(), "host": socket.gethostname(), "worker": _worker_address(),
        "started": _now()})
    write_json_atomic(state_path(out, tile), state)
    _notify({"tile": tile, "event": "start", "attempt": attempt})
    return state


# -------------------------------------------------------------------------------------- the task
def run_tile(entry: TileEntry, opts: BatchOptions, batch_id: str) -> dict:
    """The Dask task of one tile series (module docstring). Returns its summary record; an
    InputError (deterministic) is returned as a failed record, anything else raises TileError (the
    scheduler retries it)."""
    t0 = time.perf_counter()
    _setup_worker_logging(opts.log_level)
    tile, attempt = entry.label, None
    try:
        from gpumaja.backend import select_backend
        from gpumaja.io.params import read_params
        from gpumaja.model.params import L2Params
        from gpumaja.pipeline.l2a import open_inputs, run_l2a

        params_path = entry.params or opts.params
        params = read_params(params_path) if params_path is not None else L2Params()
        products = open_inputs(entry.inputs)
        tile = tile_of(entry, products)
        names = expected_products(products, params, opts.mode)
        out = Path(opts.out)
        with TileLock(out, tile, opts.lock_timeout):
            state = _start_attempt(out, tile, batch_id, entry, names)
            attempt = state["attempts"]

            resumed = (checkpoint_dir(out, tile) / PROGRESS_FILE).is_file()
            complete = not resumed and all(product_done(out / n) for n in names)
            if state["done"] or (complete and not opts.overwrite):
                log.info("tile %s: all %d products are there, skipped", tile, len(names))
                _remove_temporaries(out, names)
                computed = False
            else:
                backend = select_backend(opts.device)
                sleep_s = float(os.environ.get(SLEEP_ENV, "0") or 0)

                def on_step(i: int, n: int, product_id: str) -> None:
                    _notify({"tile": tile, "event": "step", "step": i + 1, "steps": n, "product": product_id})
                    if sleep_s:
                        time.sleep(sleep_s)

                first_overwrite = opts.overwrite and attempt == 1
                run_l2a(entry.inputs, out, backend, params, dem=entry.dem or opts.dem, gipp=entry.gipp or opts.gipp,
                        lut_file=entry.lut or opts.lut, overwrite=opts.overwrite,
                        resume=not first_overwrite, on_product=on_step, mode=opts.mode, cache=opts.cache,
                        decode_workers=opts.decode_workers)
                computed = True
            missing = [n for n in names if not product_done(out / n)]
            if missing:
                raise RuntimeError(f"{len(missing)} product(s) missing after the run: {', '.join(missing)}")
            state["done"] = True
            write_json_atomic(state_path(out, tile), state)
        before = set(state["preexisting"])
        written = names if opts.overwrite else [n for n in names if n not in before]
        return {
            "tile": tile, "where": entry.where, "inputs": [str(p) for p in entry.inputs], "status": "ok",
            "products": names, "written": len(written), "skipped": len(names) - len(written),
            "computed": computed, "resumed": resumed, "attempts": attempt,
            "seconds": round(time.perf_counter() - t0, 3), "worker": _worker_address(), "error": None,
        }
    except GpumajaError as exc:
        if exc.exit_code != 2:
            raise TileError(tile, type(exc).__name__, str(exc), attempt, time.perf_counter() - t0) from exc
        log.error("tile %s: %s", tile, exc)
        return failed_record(entry, tile, type(exc).__name__, str(exc), attempt, time.perf_counter() - t0)
    except Exception as exc:
        log.error("tile %s: attempt %s failed: %s: %s", tile, attempt, type(exc).__name__, exc)
        raise TileError(tile, type(exc).__name__, str(exc), attempt, time.perf_counter() - t0) from exc


def _remove_temporaries(out: Path, names: Sequence[str]) -> None:
    """What a killed writer left for these products (`io.product_folder.clean_product_temporaries`;
    under the tile's lock, so no live writer owns them)."""
    for n in names:
        clean_product_temporaries(out, n)


def failed_record(entry: TileEntry, tile: str, error_type: str, message: str, attempts: int | None,
                  seconds: float | None) -> dict:
    return {
        "tile": tile, "where": entry.where, "inputs": [str(p) for p in entry.inputs], "status": "failed",
        "products": [], "written": 0, "skipped": 0, "computed": None, "resumed": None, "attempts": attempts,
        "seconds": None if seconds is None else round(seconds, 3), "worker": None,
        "error": {"type": error_type, "message": message},
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


# ------------------------------------------------------------------------------------ the driver
def run_batch(
    entries: Sequence[TileEntry], opts: BatchOptions, client: Any, retries: int = 2,
    on_event: Callable[[dict], None] | None = None, on_done: Callable[[dict], None] | None = None,
    meta: dict | None = None,
) -> dict:
    """Submit one `run_tile` per entry to `client`, collect the results, write and return the
    summary (module docstring). `on_event(msg)`: progress events of the workers (another thread);
    `on_done(record)`: each tile's record as it ends. `meta`: extra keys for the summary."""
    from distributed import as_completed

    out = Path(opts.out).absolute()
    opts = dataclasses.replace(opts, out=out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the output folder ({exc})", out) from None
    batch_id = uuid.uuid4().hex
    started, t0 = _now(), time.perf_counter()
    if on_event is not None:
        client.subscribe_topic(TOPIC, lambda event: on_event(event[1]))
    futures = {}
    for i, e in enumerate(entries):
        key = f"gpumaja-l2a-{e.label}-{i}-{batch_id[:8]}"
        futures[client.submit(run_tile, e, opts, batch_id, key=key, pure=False, retries=retries)] = (i, e)
    log.info("batch %s: %d tile series submitted (retries %d)", batch_id[:8], len(entries), retries)
    records: dict[int, dict] = {}
    try:
        for fut in as_completed(list(futures)):
            i, entry = futures[fut]
            record = _record(fut, entry, out, batch_id)
            record["elapsed"] = round(time.perf_counter() - t0, 3)
            records[i] = record
            _log_record(record)
            if on_done is not None:
                on_done(record)
    finally:
        if on_event is not None:
            try:
                client.unsubscribe_topic(TOPIC)
            except Exception:
                pass
    ordered = [records[i] for i in sorted(records)]
    for tile in {r["tile"] for r in ordered} | {e.tile for e in entries if e.tile}:
        remove_lock_files(out, tile)
    try:
        (out / CHECKPOINT_DIR).rmdir()  # only when empty (failed tiles keep their checkpoints)
    except OSError:
        pass
    summary = {
        "format": SUMMARY_FORMAT, "version": SUMMARY_VERSION, "software": f"gpumaja {__version__}",
        "batch": batch_id, "out": str(out), **(meta or {}), "device": opts.device, "mode": opts.mode,
        "overwrite": opts.overwrite, "retries": retries, "started": started, "finished": _now(),
        "seconds": round(time.perf_counter() - t0, 3),
        "totals": {
            "tiles": len(ordered), "ok": sum(r["status"] == "ok" for r in ordered),
            "failed": sum(r["status"] == "failed" for r in ordered),
            "products": sum(len(r["products"]) for r in ordered),
            "written": sum(r["written"] for r in ordered), "skipped": sum(r["skipped"] for r in ordered),
        },
        "tiles": ordered,
    }
    write_json_atomic(out / SUMMARY_FILE, summary)
    return summary


def _record(fut: Any, entry: TileEntry, out: Path, batch_id: str) -> dict:
    if fut.status == "finished":
        return fut.result()
    exc = fut.exception()
    if isinstance(exc, TileError):
        attempts = attempts_of(out, exc.tile, batch_id) or exc.attempt
        return failed_record(entry, exc.tile, exc.error_type, exc.message, attempts, exc.seconds)
    tile = entry.tile or entry.label
    name = type(exc).__name__
    if name == "KilledWorker":
        message = (f"the workers running it died {getattr(exc, 'allowed_failures', 0) + 1} times "
                   "(distributed.scheduler.allowed-failures)")
    else:
        message = str(exc) or repr(exc)
    attempts = attempts_of(out, tile, batch_id) if entry.tile else None
    return failed_record(entry, tile, name, message, attempts, None)


def _log_record(r: dict) -> None:
    if r["status"] == "ok":
        log.info("tile %s ok: %d product(s), %d written, %d skipped (attempt %s, %.1f s)", r["tile"],
                 len(r["products"]), r["written"], r["skipped"], r["attempts"], r["seconds"])
    else:
        log.error("tile %s failed: %s: %s", r["tile"], r["error"]["type"], r["error"]["message"])


__all__ = ["BatchOptions", "TileError", "TileLock", "expected_products", "product_done", "run_batch", "run_tile",
           "tile_of"]
