"""`gpumaja batch` (gpumaja/pipeline/batch.py, gpumaja/cluster.py, gpumaja/cli/batch.py) on loopback.

Three tiny synthetic tile series (three tile ids, 120 px, 3 dates), each with its own DEM; the
reference is a serial `run_l2a` of each tile. Products are compared file by file, byte for byte,
except the production timestamps of MTD_ALL.xml and the STAC item (as tests/test_l2a_series.py).

- a worker killed with SIGKILL while it processes a tile (found from the tile's attempt record,
  once the tile's first product is on disk and before its last): every product complete and equal
  to the reference, none twice, no temporary folder left, the summary right (3 ok, the killed
  tile resumed in a 2nd attempt);
- a corrupt input in one tile: that tile failed with the reason, the other ok, exit 1;
- a second batch over the same --out computes nothing and rewrites nothing;
- bad manifests / cluster values exit 2 before anything starts; the tile lock excludes a second
  holder and is released when its holder is killed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpumaja.cli.main import run
from gpumaja.pipeline import batch as B
from tests.product_files import files, stripped

REPO = Path(__file__).resolve().parents[1]
TILES = ("T31TCJ", "T31TCK", "T31TDJ")
DATES = 4
# in-process workers are threads: io/quicklook.py's warnings.catch_warnings (not thread-safe) may let
# its silenced NotGeoreferencedWarning through when two tiles write quicklooks at once
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    """A folder with one synthetic series per tile id (TILES), each with truth/dem.tif."""
    from gpumaja.synth import generate_series, scene

    root = tmp_path_factory.mktemp("tiles")
    for i, tile in enumerate(TILES):
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scene, "TILE", tile)  # the synthetic scene's tile id
            # the analytic forward model: no 6S table set-up (~10 s), inputs as good for this test
            generate_series(root / tile, dates=DATES, size=120, seed=i + 1, forward="analytic")
    return root


@pytest.fixture(scope="module")
def reference(tiles, tmp_path_factory) -> Path:
    """Serial run_l2a of each tile, all products in one folder."""
    from gpumaja.backend import CPU
    from gpumaja.pipeline.l2a import run_l2a

    ref = tmp_path_factory.mktemp("reference") / "out"
    for tile in TILES:
        summaries = run_l2a([tiles / tile], ref, CPU, dem=tiles / tile / "truth" / "dem.tif")
        assert len(summaries) == DATES
    return ref


def manifest(tiles: Path, folder: Path, names=TILES, explicit=True) -> Path:
    entries = [{"inputs": [str(tiles / t)], "dem": str(tiles / t / "truth" / "dem.tif"),
                **({"tile": t} if explicit else {})} for t in names]
    path = folder / "tiles.json"
    path.write_text(json.dumps({"tiles": entries}), encoding="utf-8")
    return path


def call(capsys, *args) -> tuple[int, str, str]:
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def in_process(*extra) -> list[str]:
    """A LocalCluster of two worker threads in this process (fast; no worker to kill)."""
    return ["--cluster", "local", "--threads", "--workers", "2", *extra]





def products_of(folder: Path, tile: str) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and f"_L2A_{tile}_" in p.name
                  and not p.name.startswith("."))


def assert_same_products(ref: Path, out: Path, tiles=TILES) -> None:
    """out holds exactly the reference products of `tiles` (plus batch_summary.json), equal byte for byte."""
    names = {p.name for p in ref.iterdir() if any(f"_L2A_{t}_" in p.name for t in tiles)}
    assert {p.name for p in out.iterdir()} == names | {B.SUMMARY_FILE}  # no temporary folder, no .gpumaja
    for name in names:
        fa, fb = files(ref / name), files(out / name)
        assert sorted(fa) == sorted(fb), name
        for rel in fa:
            assert stripped(fa[rel]) == stripped(fb[rel]), f"{name}/{rel}"


def load_summary(out: Path) -> dict:
    return json.loads((out / B.SUMMARY_FILE).read_text(encoding="utf-8"))


# -------------------------------------------------------------------- the loopback, a worker killed
def _descendants(pid: int) -> set[int]:
    import psutil

    try:
        return {p.pid for p in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def _attempt_record(out: Path, tile: str) -> dict | None:
    try:
        return json.loads(B.state_path(out, tile).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


@pytest.mark.slow
def test_batch_with_a_worker_killed_mid_tile(tiles, reference, tmp_path):
    out = tmp_path / "out"
    m = manifest(tiles, tmp_path)
    # each step of a task sleeps 0.4 s, so a tile lasts a few seconds and the kill lands inside one
    env = {**os.environ, B.SLEEP_ENV: "0.4"}
    cmd = [sys.executable, "-m", "gpumaja.cli.main", "batch", str(m), "--out", str(out), "--cluster", "local",
           "--workers", "2", "--retries", "2", "--json"]
    with open(tmp_path / "stderr.txt", "wb") as err:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err)
        killed = None
        deadline = time.monotonic() + 150
        while proc.poll() is None and time.monotonic() < deadline:
            if killed is None:
                for tile in TILES:
                    rec = _attempt_record(out, tile)
                    if not rec or rec.get("attempts") != 1 or rec.get("done"):
                        continue
                    written = products_of(out, tile)
                    if 1 <= len(written) < DATES:  # the tile is half done: its worker is running it
                        pid = rec["history"][-1]["pid"]
                        assert pid != proc.pid and pid in _descendants(proc.pid)  # a worker, not the driver
                        os.kill(pid, signal.SIGKILL)
                        killed = (tile, pid, written)
                        break
            time.sleep(0.02)
        stdout, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    log = (tmp_path / "stderr.txt").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    assert killed is not None, "no tile was caught half done: the kill did not land inside a task"
    tile, pid, written_then = killed

    summary = json.loads(stdout)
    assert summary == load_summary(out)
    assert summary["totals"] == {"tiles": 3, "ok": 3, "failed": 0, "products": 3 * DATES, "written": 3 * DATES,
                                 "skipped": 0}
    by_tile = {r["tile"]: r for r in summary["tiles"]}
    assert sorted(by_tile) == sorted(TILES)
    for t, r in by_tile.items():
        assert r["status"] == "ok" and r["error"] is None
        assert r["products"] == sorted(products_of(reference, t), key=lambda n: n.split("_")[1])
        assert r["written"] == DATES and r["skipped"] == 0
        # the killed tile ran again (and resumed from its checkpoint); the others ran once
        assert r["attempts"] == (2 if t == tile else 1), (t, r)
    assert by_tile[tile]["resumed"] is True
    assert set(written_then) < set(by_tile[tile]["products"])
    assert_same_products(reference, out)  # all complete, none twice, nothing temporary, same bytes


# --------------------------------------------------------------------- one tile fails, the others not
def test_a_corrupt_tile_fails_alone(tiles, reference, tmp_path, capsys):
    bad = tmp_path / "bad" / "T31TCK"
    shutil.copytree(tiles / "T31TCK", bad, ignore=shutil.ignore_patterns("truth"))
    latest = max(bad.glob("*.SAFE"), key=lambda p: p.name.split("_")[2])  # read by the first step
    jp2 = next(latest.rglob("*_B04.jp2"))
    data = jp2.read_bytes()
    jp2.write_bytes(data[: len(data) // 3])  # opens (header intact), fails when read
    doc = {"tiles": [{"tile": "T31TCJ", "inputs": str(tiles / "T31TCJ"),
                      "dem": str(tiles / "T31TCJ" / "truth" / "dem.tif")},
                     {"inputs": str(bad)}]}
    m = tmp_path / "tiles.json"
    m.write_text(json.dumps(doc))
    out = tmp_path / "out"
    code, stdout, err = call(capsys, "batch", m, "--out", out, *in_process("--json"))
    assert code == 1, err
    summary = json.loads(stdout)
    assert summary == load_summary(out)
    assert summary["totals"] == {"tiles": 2, "ok": 1, "failed": 1, "products": DATES, "written": DATES,
                                 "skipped": 0}
    good, failed = summary["tiles"]
    assert good["tile"] == "T31TCJ" and good["status"] == "ok" and good["written"] == DATES
    assert failed["tile"] == "T31TCK" and failed["status"] == "failed" and failed["where"] == "entry 2"
    assert failed["error"]["type"] == "CorruptFileError"
    assert str(jp2) in failed["error"]["message"]
    assert failed["attempts"] == 1  # bad input is not retried
    assert_same_products(reference, out, tiles=("T31TCJ",))


# ------------------------------------------------------------------------------------ resumability
def test_second_batch_skips_complete_products(tiles, reference, tmp_path, capsys):
    out = tmp_path / "out"
    m = manifest(tiles, tmp_path, names=("T31TCJ", "T31TDJ"), explicit=False)  # tile ids from the products
    code, stdout, err = call(capsys, "batch", m, "--out", out, *in_process("--json"))
    assert code == 0, err
    first = json.loads(stdout)
    assert [r["tile"] for r in first["tiles"]] == ["T31TCJ", "T31TDJ"]
    assert first["totals"]["written"] == 2 * DATES and first["totals"]["skipped"] == 0
    assert_same_products(reference, out, tiles=("T31TCJ", "T31TDJ"))
    stamp = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*") if B.SUMMARY_FILE not in p.name}

    code, stdout, err = call(capsys, "batch", m, "--out", out, *in_process("--json"))
    assert code == 0, err
    second = json.loads(stdout)
    assert second["totals"] == {"tiles": 2, "ok": 2, "failed": 0, "products": 2 * DATES, "written": 0,
                                "skipped": 2 * DATES}
    assert all(r["computed"] is False and r["attempts"] == 1 for r in second["tiles"])
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.rglob("*")
            if B.SUMMARY_FILE not in p.name} == stamp  # nothing rewritten
    assert second["batch"] != first["batch"]


def test_batch_with_a_decode_cache(tiles, reference, tmp_path, capsys):
    """--cache reaches every tile task: the cache fills with one entry per band file read, and the
    products are those of the run without a cache."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    m = manifest(tiles, tmp_path, names=("T31TCJ",))
    code, stdout, err = call(capsys, "batch", m, "--out", out, "--cache", cache, "--decode-workers", "2",
                             *in_process("--json"))
    assert code == 0, err
    assert json.loads(stdout)["totals"]["ok"] == 1
    jp2 = sorted(p for p in (tiles / "T31TCJ").rglob("*.jp2") if "IMG_DATA" in p.parts)
    entries = sorted(cache.rglob("*.tif"))
    assert jp2 and len(entries) == len(jp2)
    assert_same_products(reference, out, tiles=("T31TCJ",))


def test_half_done_tile_is_completed_not_rewritten(tiles, reference, tmp_path, capsys):
    """A tile with one product already in --out (and no checkpoint): the batch keeps it (same
    inode) and writes the others."""
    out = tmp_path / "out"
    out.mkdir()
    keep = products_of(reference, "T31TDJ")[0]
    shutil.copytree(reference / keep, out / keep)
    inode = (out / keep).stat().st_ino
    code, stdout, err = call(capsys, "batch", manifest(tiles, tmp_path, names=("T31TDJ",)), "--out", out,
                             *in_process("--json"))
    assert code == 0, err
    (r,) = json.loads(stdout)["tiles"]
    assert (r["written"], r["skipped"], r["computed"]) == (DATES - 1, 1, True)
    assert (out / keep).stat().st_ino == inode
    assert_same_products(reference, out, tiles=("T31TDJ",))


# ----------------------------------------------------------------------------------------- retries
def test_unexpected_error_is_retried_then_reported(tiles, reference, tmp_path, capsys, monkeypatch):
    """In-process workers see this module's monkeypatch: the series driver crashes on the first
    call of each tile (retried: ok at attempt 2), and always for T31TDJ (failed after 1 + --retries
    attempts, with the error's type and message)."""
    from gpumaja.pipeline import l2a

    real, calls = l2a.run_l2a, []

    def flaky(inputs, *args, **kwargs):
        tile = Path(inputs[0]).name
        calls.append(tile)
        if tile == "T31TDJ" or calls.count(tile) == 1:
            raise RuntimeError(f"simulated crash in {tile}")
        return real(inputs, *args, **kwargs)

    monkeypatch.setattr(l2a, "run_l2a", flaky)
    out = tmp_path / "out"
    m = manifest(tiles, tmp_path, names=("T31TCJ", "T31TDJ"))
    code, stdout, err = call(capsys, "batch", m, "--out", out, *in_process("--json", "--retries", "1"))
    assert code == 1, err
    ok, failed = json.loads(stdout)["tiles"]
    assert (ok["tile"], ok["status"], ok["attempts"], ok["written"]) == ("T31TCJ", "ok", 2, DATES)
    assert (failed["tile"], failed["status"], failed["attempts"]) == ("T31TDJ", "failed", 2)
    assert failed["error"] == {"type": "RuntimeError", "message": "simulated crash in T31TDJ"}
    assert sorted(calls) == ["T31TCJ", "T31TCJ", "T31TDJ", "T31TDJ"]
    assert_same_products(reference, out, tiles=("T31TCJ",))


# ---------------------------------------------------------------------------------- bad input: exit 2
def test_bad_manifest_exits_2_naming_the_line(tmp_path, capsys):
    m = tmp_path / "tiles.txt"
    m.write_text(f"# two tiles\n{tmp_path}\n{tmp_path / 'nope'}\n")
    code, _, err = call(capsys, "batch", m, "--out", tmp_path / "out")
    assert code == 2
    flat = err.replace("\n", "")
    assert str(m) in flat and "line 3" in flat and "does not exist" in flat
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", ["lcoal", "tcp//host", "slurm:abc"])
def test_unknown_cluster_exits_2(tmp_path, capsys, value):
    m = tmp_path / "tiles.txt"
    m.write_text(f"{tmp_path}\n")
    code, _, err = call(capsys, "batch", m, "--out", tmp_path / "out", "--cluster", value)
    assert code == 2 and "--cluster must be" in err.replace("\n", "")
    assert not (tmp_path / "out").exists()


def test_local_cuda_without_dask_cuda_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "dask_cuda", None)  # import dask_cuda -> ImportError
    m = tmp_path / "tiles.txt"
    m.write_text(f"{tmp_path}\n")
    code, _, err = call(capsys, "batch", m, "--out", tmp_path / "out", "--cluster", "local-cuda")
    assert code == 2
    assert "dask-cuda" in err and "gpumaja[cluster-cuda]" in err.replace("\n", "")


def test_unreachable_scheduler_is_an_input_error():
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from gpumaja.cluster import ClusterOptions, open_client
    from gpumaja.errors import InputError

    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        with open_client(f"tcp://127.0.0.1:{port}", ClusterOptions(connect_timeout=0.5)):
            pass


# ------------------------------------------------------------------------------------------ slurm
def test_slurm_settings_file_then_cli_overrides(tmp_path):
    pytest.importorskip("dask_jobqueue")
    from gpumaja.cluster import ClusterOptions, make_cluster, slurm_settings

    cfg = tmp_path / "slurm.toml"
    cfg.write_text('queue = "cpu"\naccount = "eo"\nwalltime = "02:00:00"\ncores = 8\nmemory = "32GB"\njobs = 4\n'
                   'job_extra_directives = ["--gres=gpu:1"]\n')
    opts = ClusterOptions(config=cfg, slurm={"queue": "gpu", "walltime": None, "jobs": None})
    kwargs, jobs = slurm_settings(opts)
    assert jobs == 4
    assert kwargs == {"queue": "gpu", "account": "eo", "walltime": "02:00:00", "cores": 8, "memory": "32GB",
                      "job_extra_directives": ["--gres=gpu:1"], "processes": 1}
    yml = tmp_path / "slurm.yaml"
    yml.write_text("slurm:\n  cores: 4\n  memory: 16GB\n")
    assert slurm_settings(ClusterOptions(config=yml, slurm={"jobs": 2})) == (
        {"cores": 4, "memory": "16GB", "processes": 1}, 2)

    cluster = make_cluster("slurm", opts)  # no job submitted: not scaled
    try:
        script = cluster.job_script()
    finally:
        cluster.close()
    for directive in ("#SBATCH -p gpu", "#SBATCH -A eo", "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:1"):
        assert directive in script


def test_slurm_bad_settings_are_input_errors(tmp_path):
    pytest.importorskip("dask_jobqueue")
    from gpumaja.cluster import ClusterOptions, slurm_settings
    from gpumaja.errors import InputError

    bad = tmp_path / "slurm.toml"
    bad.write_text("cores = [\n")
    with pytest.raises(InputError, match="not a readable cluster configuration"):
        slurm_settings(ClusterOptions(config=bad))
    neg = tmp_path / "neg.toml"
    neg.write_text("cores = 2\nmemory = '4GB'\njobs = -1\n")
    with pytest.raises(InputError, match="'jobs' must be a non-negative integer"):
        slurm_settings(ClusterOptions(config=neg))


# ---------------------------------------------------------------------------------------- the lock
def test_tile_lock_excludes_and_is_released_when_its_holder_dies(tmp_path):
    ready = tmp_path / "ready"
    script = ("import sys, time; from pathlib import Path; from gpumaja.pipeline.batch import TileLock\n"
              "with TileLock(Path(sys.argv[1]), 'T31TCJ'):\n"
              "    Path(sys.argv[2]).touch(); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), str(ready)], cwd=REPO)
    try:
        deadline = time.monotonic() + 30
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready.exists()
        with pytest.raises(B.TileLockTimeout):
            with B.TileLock(tmp_path, "T31TCJ", timeout=0.3, poll_s=0.05):
                pass
        with B.TileLock(tmp_path, "T31TCK", timeout=0.3):  # another tile: its own lock
            pass
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        with B.TileLock(tmp_path, "T31TCJ", timeout=5, poll_s=0.05):  # the kernel released it
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    B.remove_lock_files(tmp_path, "T31TCJ")
    assert not B.lock_path(tmp_path, "T31TCJ").exists()
