"""Products written on the writer thread of the series driver (gpumaja/pipeline/l2a_series.py).

With the driver world of tests/test_l2a_series.py (fake read/compute, 5 dates = 9 steps: backward
d4 INIT, d3, d2, d1, d0 (written), forward d1, d2, d3, d4 (written)):
- a write that fails on the writer thread fails the run with that very error, leaves no partial
  product, and the checkpoint does not claim that step (it claims the step before);
- a write runs while the next step computes (the write waits for the next compute to start:
  without overlap it would time out), and each step's commit comes after its write has finished;
- a compute failure while a write is pending: the write completes and its step is committed;
- background_write=False writes in the calling thread, as before.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from gpumaja.io.product_folder import write_product_folder
from gpumaja.pipeline import l2a_series as S
from tests.test_l2a_series import World, products, run

VALIDITY = dict.fromkeys(("d0", "d1", "d2", "d3", "d4"), True)
# step index -> product written at that step (the plan of tests/test_l2a_series.py for 5 dates)
WRITTEN_AT = {4: "d0", 5: "d1", 6: "d2", 7: "d3", 8: "d4"}


def progress(out: Path) -> dict:
    return json.loads((S.checkpoint_dir(out, "T31TCJ") / S.PROGRESS_FILE).read_text())


def test_background_write_error_fails_the_run_and_is_not_committed(monkeypatch, tmp_path):
    World(monkeypatch, VALIDITY)
    threads = {}

    def write(result, out, overwrite, resume):
        name = result.product.product_id
        threads[name] = threading.current_thread().name

        def fill(tmp: Path) -> None:
            (tmp / "SRE.tif").write_bytes(b"x" * 100)  # a partial product ...
            if name == "d2":
                raise OSError(28, "No space left on device")  # ... then the disk is full

        return write_product_folder(out, name, fill), False

    monkeypatch.setattr(S, "_write", write)
    with pytest.raises(OSError, match="No space left on device"):
        run(products(0, 5, 10, 15, 20), tmp_path)
    assert threads["d2"].startswith("gpumaja-write")  # it did fail on the writer thread
    assert progress(tmp_path)["last_completed_step"] == 5  # d1 (step 5) committed, d2 (step 6) not
    assert sorted(p.name for p in tmp_path.iterdir()) == [S.CHECKPOINT_DIR, "d0", "d1"]  # no partial d2


def test_write_overlaps_the_next_compute_and_precedes_its_commit(monkeypatch, tmp_path):
    w = World(monkeypatch, VALIDITY)
    events: list[tuple[str, int]] = []
    lock = threading.Lock()
    computing = {k: threading.Event() for k in range(9)}  # the 9 steps

    def log(what: str, k: int) -> None:
        with lock:
            events.append((what, k))

    real_process = w.process_date

    def process_date(inp, *a, **kw):
        k = len(w.calls)
        log("compute", k)
        computing[k].set()
        return real_process(inp, *a, **kw)

    def write(result, out, overwrite, resume):
        k = {v: s for s, v in WRITTEN_AT.items()}[result.product.product_id]
        log("write start", k)
        if k + 1 in computing:  # the last step's write has no next compute to wait for
            assert computing[k + 1].wait(10), f"step {k + 1} did not compute while step {k} was written"
        log("write end", k)
        return Path(out) / result.product.product_id, False

    real_commit = S._commit

    def commit(tr, k, state):
        log("commit", k)
        real_commit(tr, k, state)

    monkeypatch.setattr(S, "process_date", process_date)
    monkeypatch.setattr(S, "_write", write)
    monkeypatch.setattr(S, "_commit", commit)
    summaries = run(products(0, 5, 10, 15, 20), tmp_path, keep_checkpoint=True)
    assert [s["name"] for s in summaries] == ["d0", "d1", "d2", "d3", "d4"]
    assert [e for e in events if e[0] == "commit"] == [("commit", k) for k in range(9)]
    for k in WRITTEN_AT:
        assert events.index(("write end", k)) < events.index(("commit", k))
        if k < 8:
            assert events.index(("compute", k + 1)) < events.index(("write end", k))
    assert progress(tmp_path)["last_completed_step"] == 8


def test_compute_error_with_a_pending_write_commits_that_write(monkeypatch, tmp_path):
    w = World(monkeypatch, VALIDITY)
    w.fail_at = 6  # the compute of step 6 (d2 forward) fails while d1's write (step 5) is pending
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(products(0, 5, 10, 15, 20), tmp_path)
    assert w.written == ["d0", "d1"]
    assert progress(tmp_path)["last_completed_step"] == 5


def test_foreground_write_runs_in_the_calling_thread(monkeypatch, tmp_path):
    World(monkeypatch, VALIDITY)
    threads = []

    def write(result, out, overwrite, resume):
        threads.append(threading.current_thread().name)
        return Path(out) / result.product.product_id, False

    monkeypatch.setattr(S, "_write", write)
    summaries = run(products(0, 5, 10, 15, 20), tmp_path, background_write=False)
    assert len(summaries) == 5
    assert threads == [threading.current_thread().name] * 5
