"""The series driver (gpumaja/pipeline/l2a_series.py, maja-l2a.md §2 backward mode, §6).

- A driver world with a fake process_date whose validity is chosen per call: the INIT retry ("the
  next-youngest is tried"), the relabelling of the composite with the oldest date, segments
  starting from an empty composite, an interrupted run resumed giving the same calls and composite,
  the checkpoint commit protocol, the refusals.
- The real chain on a synthetic 5-date series: a run killed with SIGKILL right after the 2nd
  product's rename (GPUMAJA_TEST_KILL_AFTER_STEP) and resumed gives the products of an uninterrupted
  run byte for byte, except the production timestamps (MTD_ALL.xml PRODUCTION_DATE,
  START_PRODUCTION_DATE, END_PRODUCTION_DATE and the STAC item's `created`), which are stripped
  before comparing; and the 10/20 m stage in row strips gives
  the whole-image result bit for bit.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from gpumaja.backend import CPU
from gpumaja.composite import day_number, empty_composite
from gpumaja.errors import CorruptFileError, InputError
from gpumaja.io.composite_store import load_composite
from gpumaja.model.params import L2Params
from gpumaja.pipeline import l2a_series as S
from gpumaja.pipeline.memory import MemoryPlan
from tests.product_files import files, stripped

REPO = Path(__file__).resolve().parents[1]
START = datetime(2024, 1, 5, 10, 50, tzinfo=timezone.utc)


# ============================================================================ the driver world
@dataclasses.dataclass(frozen=True)
class FakeProduct:
    product_id: str
    acquired: datetime
    tile: str = "T31TCJ"
    platform: str = "SENTINEL-2A"
    sensor: str = "S2"

    @property
    def path(self) -> Path:
        return Path(f"/nowhere/{self.product_id}.SAFE")


class FakeLUTs:
    def for_platform(self, platform: str):
        return SimpleNamespace(source=f"fake LUT {platform}")


class World:
    """Fakes for read_date / process_date / the writer; records what the driver asked for."""

    BANDS = ("B02", "B04", "B8A")

    def __init__(self, monkeypatch, validity, read_ahead: int = 1):
        self.validity = validity  # product_id -> bool, or a list consumed call by call
        self.calls: list[tuple[str, int | None]] = []  # (product, last_day of the composite given / None)
        self.reads: list[tuple[str, str]] = []
        self.written: list[str] = []
        self.fail_at: int | None = None  # raise in the call of this index
        monkeypatch.setattr(S, "read_date", self.read_date)
        monkeypatch.setattr(S, "process_date", self.process_date)
        monkeypatch.setattr(S, "_write", self.write)
        monkeypatch.setattr(S, "product_name_of", lambda p: p.product_id)
        monkeypatch.setattr(S, "product_name", lambda r: r.product.product_id)
        monkeypatch.setattr(S, "memory_plan_for", lambda *a, **k: MemoryPlan(read_ahead, {}, True))

    def read_date(self, product, backend, dem, res):
        self.reads.append((product.product_id, threading.current_thread().name))
        return SimpleNamespace(product=product)

    def process_date(self, inp, lut, params, backend, stages=None, coarse_out=None, composite=None):
        if self.fail_at is not None and len(self.calls) == self.fail_at:
            raise RuntimeError("simulated crash")
        p = inp.product
        self.calls.append((p.product_id, None if composite is None else composite.last_day))
        if isinstance(self.validity, list):
            valid = self.validity[len(self.calls) - 1]
        else:
            valid = self.validity[p.product_id]
        day = day_number(p.acquired.date())
        shape = (2, 3)
        cube = np.full((len(self.BANDS), *shape), day / 10000.0, np.float32)
        no = np.zeros(shape, bool)
        coarse_out.update(bands=self.BANDS, rta=cube, rcr=cube + np.float32(0.01), rtc=cube + np.float32(0.02),
                          aot=np.full(shape, 0.1, np.float32), all_clouds=no, clouds_and_shadows=no, edge=no,
                          snow=no, saturated_any=no, global_flags={})
        return SimpleNamespace(product=p, valid=valid, cloud_percent=0.0 if valid else 100.0, snow_percent=0.0,
                               mean_aot=0.1, mean_water_vapour=1.0, lut_source="fake LUT")

    def write(self, result, out, overwrite, resume):
        self.written.append(result.product.product_id)
        return Path(out) / result.product.product_id, False


def products(*days: float) -> list[FakeProduct]:
    return [FakeProduct(f"d{i}", START + timedelta(days=d)) for i, d in enumerate(days)]


def day(p: FakeProduct) -> int:
    return day_number(p.acquired.date())


def run(prods, out, params=None, **kw):
    return S.run_series(prods, FakeLUTs(), params or L2Params(), CPU, out, None, **kw)


def test_invalid_init_retries_older_and_invalid_oldest_is_relabelled(monkeypatch, tmp_path):
    d0, d1, d2, _d3 = prods = products(0, 5, 10, 15)
    w = World(monkeypatch, {"d0": False, "d1": True, "d2": True, "d3": False})
    summaries = run(prods, tmp_path, keep_checkpoint=True)
    assert w.calls == [
        ("d3", None),  # planned INIT: not valid, does not initialise
        ("d2", None),  # the next-youngest is tried in INIT mode
        ("d1", day(d2)), ("d0", day(d1)),  # NOMINAL back in time; d0 invalid -> composite keeps d1's data
        ("d1", day(d0)),  # ... but carries the oldest date (relabelled), so the forward pass can start at d1
        ("d2", day(d1)), ("d3", day(d2)),
    ]
    assert w.written == ["d0", "d1", "d2", "d3"]
    assert [(s["name"], s["mode"], s["direction"], s["step"], s["composite_updated"]) for s in summaries] == [
        ("d0", "NOMINAL", "backward", 3, False), ("d1", "NOMINAL", "forward", 4, True),
        ("d2", "NOMINAL", "forward", 5, True), ("d3", "NOMINAL", "forward", 6, False)]
    state = load_composite(S.checkpoint_dir(tmp_path, "T31TCJ") / S.COMPOSITE_FILE)
    assert [(h["day"], h["mode"]) for h in state.history] == [
        (day(d2), "INIT"), (day(d1), "NOMINAL"), (day(d1), "NOMINAL"), (day(d2), "NOMINAL")]
    assert state.last_day == day(d2)


def test_segments_restart_from_an_empty_composite(monkeypatch, tmp_path):
    d0, d1, d2, d3 = prods = products(0, 5, 40, 45)
    w = World(monkeypatch, dict.fromkeys(("d0", "d1", "d2", "d3"), True))
    run(prods, tmp_path)
    assert w.calls == [("d1", None), ("d0", day(d1)), ("d1", day(d0)),
                       ("d3", None), ("d2", day(d3)), ("d3", day(d2))]
    assert w.written == ["d0", "d1", "d2", "d3"]
    assert not (tmp_path / S.CHECKPOINT_DIR).exists()  # removed when the run is complete


def test_no_valid_date_in_the_backward_pass(monkeypatch, tmp_path):
    _d0, d1, _d2 = prods = products(0, 5, 10)
    w = World(monkeypatch, [False, False, False, True, True])
    summaries = run(prods, tmp_path)
    assert w.calls == [("d2", None), ("d1", None), ("d0", None), ("d1", None), ("d2", day(d1))]
    assert [(s["name"], s["mode"], s["valid"]) for s in summaries] == [
        ("d0", "INIT", False), ("d1", "INIT", True), ("d2", "NOMINAL", True)]


def test_init_mode_never_passes_a_composite(monkeypatch, tmp_path):
    prods = products(0, 5, 10)
    w = World(monkeypatch, dict.fromkeys(("d0", "d1", "d2"), True))
    summaries = run(prods, tmp_path, mode="init")
    assert w.calls == [("d0", None), ("d1", None), ("d2", None)]
    assert [s["mode"] for s in summaries] == ["INIT"] * 3


def test_read_ahead_reads_in_step_order_on_the_reader_thread(monkeypatch, tmp_path):
    prods = products(0, 5, 10, 15)
    w = World(monkeypatch, dict.fromkeys(("d0", "d1", "d2", "d3"), True), read_ahead=2)
    seen = []
    run(prods, tmp_path, on_step=lambda i, n, name: seen.append((i, n, name)))
    order = ["d3", "d2", "d1", "d0", "d1", "d2", "d3"]
    assert [r[0] for r in w.reads] == order
    assert all(r[1].startswith("gpumaja-read") for r in w.reads)
    assert seen == [(i, 7, name) for i, name in enumerate(order)]


def test_the_plan_places_the_shadow_stage(monkeypatch, tmp_path):
    from gpumaja.pipeline.l2a_multitemporal import shadow_on_device

    prods = products(0, 5)
    w = World(monkeypatch, {"d0": True, "d1": True})
    seen: list[bool] = []
    fake = w.process_date
    monkeypatch.setattr(S, "process_date", lambda *a, **k: seen.append(shadow_on_device()) or fake(*a, **k))
    monkeypatch.setattr(S, "memory_plan_for", lambda *a, **k: MemoryPlan(0, {}, True, shadow_on_device=False))
    run(prods, tmp_path / "host")
    assert seen == [False] * 3 and shadow_on_device()  # d1 INIT, d0, d1; the default again after the run
    seen.clear()
    monkeypatch.setattr(S, "memory_plan_for", lambda *a, **k: MemoryPlan(0, {}, True))
    run(prods, tmp_path / "device")
    assert seen == [True] * 3


class _OnDevice(np.ndarray):
    """Stands for a device array: `to_numpy` gives a plain ndarray of it, the fake GPU's asarray one."""


def _fake_gpu():
    from gpumaja.backend import Backend

    xp = SimpleNamespace(asarray=lambda a, dtype=None: np.asarray(a, dtype).view(_OnDevice))
    return Backend("gpu", xp, "fake GPU")  # type: ignore[arg-type]


def _shadow_args(scene: dict) -> tuple:
    dev = {k: v.view(_OnDevice) if isinstance(v, np.ndarray) else v for k, v in scene.items()}
    maps = [dev[k] for k in ("clouds", "clouds_dilated", "tocr_shadow_band", "rcr_shadow_band", "edge",
                             "composite_water", "altitude")]
    return (*maps, (dev["sun_zenith"], dev["sun_azimuth"]), (dev["view_zenith"], dev["view_azimuth"]),
            scene["resolution_m"])


def test_shadow_stage_on_the_host_calls_the_cpu_path(monkeypatch):
    """`shadow_stage` with the shadow stage off the device on a (fake) GPU backend: `cloud_shadows` gets the
    CPU backend and host arrays, and its mask comes back through the backend's asarray."""
    from gpumaja.masks.shadow import cloud_shadows
    from gpumaja.pipeline import l2a_multitemporal as M
    from tests.test_masks_shadow import PARAMS, _scene

    scene, _, _ = _scene(2000.0)
    expected = cloud_shadows(**scene, params=PARAMS, backend=CPU)
    assert expected.any()
    gpu = _fake_gpu()
    calls: list[tuple] = []

    def spy(*args):
        calls.append((args[-1], [type(a) for a in args[:11]]))
        return cloud_shadows(*args) if args[-1] is CPU else "device path"

    monkeypatch.setattr(M, "cloud_shadows", spy)
    with M.shadow_placement(False):
        got = M.shadow_stage(*_shadow_args(scene), PARAMS, gpu)
    assert calls == [(CPU, [np.ndarray] * 11)]
    assert type(got) is _OnDevice and got.dtype == bool
    np.testing.assert_array_equal(np.asarray(got), expected)
    # explicit on_device wins over the placement in force
    assert M.shadow_stage(*_shadow_args(scene), PARAMS, gpu, on_device=True) == "device path"
    calls.clear()
    # the default placement: on the device, with the arrays as given
    assert M.shadow_stage(*_shadow_args(scene), PARAMS, gpu) == "device path"
    assert calls[0][0] is gpu and calls[0][1][:7] == [_OnDevice] * 7
    calls.clear()
    # the CPU backend runs on the CPU whatever the placement
    with M.shadow_placement(False):
        np.testing.assert_array_equal(M.shadow_stage(*_shadow_args(scene), PARAMS, CPU), expected)
    assert calls[0][0] is CPU


VALIDITY5 = {"d0": True, "d1": False, "d2": True, "d3": True, "d4": False}


@pytest.mark.parametrize("fail_at", [0, 3, 5, 8])
def test_interrupted_run_resumes_to_the_same_calls_and_composite(monkeypatch, tmp_path, fail_at):
    prods = products(0, 5, 10, 15, 20)
    w = World(monkeypatch, VALIDITY5)
    run(prods, tmp_path / "a", keep_checkpoint=True)
    calls_a = list(w.calls)
    written_a = list(w.written)

    w.calls.clear()
    w.written.clear()
    w.fail_at = fail_at
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(prods, tmp_path / "b")
    if fail_at:
        progress = json.loads((S.checkpoint_dir(tmp_path / "b", "T31TCJ") / S.PROGRESS_FILE).read_text())
        assert progress["last_completed_step"] == fail_at - 1 and progress["steps_total"] == 9
    assert w.calls == calls_a[:fail_at]
    w.fail_at = None
    if fail_at:
        with pytest.raises(InputError, match="--resume"):  # a checkpoint is there
            run(prods, tmp_path / "b")
    run(prods, tmp_path / "b", resume=True, keep_checkpoint=True)
    assert w.calls == calls_a  # the resumed run continues exactly where the other one was
    assert w.written == written_a
    a = load_composite(S.checkpoint_dir(tmp_path / "a", "T31TCJ") / S.COMPOSITE_FILE)
    b = load_composite(S.checkpoint_dir(tmp_path / "b", "T31TCJ") / S.COMPOSITE_FILE)
    for k in ("rta", "rcr", "rtc", "pxd", "ndt", "sto", "cld"):
        np.testing.assert_array_equal(np.asarray(getattr(a, k)).view(np.uint8), np.asarray(getattr(b, k)).view(np.uint8))
    assert (a.history, a.sto_days, a.last_day) == (b.history, b.sto_days, b.last_day)


def test_crash_inside_the_checkpoint_commit(monkeypatch, tmp_path):
    """Killed after composite.next was saved but before progress.json was replaced: the resumed run
    uses the previous composite (the SHA-256 of progress.json decides) and redoes that step."""
    prods = products(0, 5, 10, 15, 20)
    w = World(monkeypatch, VALIDITY5)
    run(prods, tmp_path / "a", keep_checkpoint=True)
    calls_a = list(w.calls)
    w.calls.clear()
    real = S.write_json_atomic
    count = {"n": 0}

    def flaky(path, doc):
        count["n"] += 1
        if count["n"] == 4:
            raise KeyboardInterrupt  # as if killed between the two files
        real(path, doc)

    monkeypatch.setattr(S, "write_json_atomic", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(prods, tmp_path / "b")
    ckpt = S.checkpoint_dir(tmp_path / "b", "T31TCJ")
    assert (ckpt / S.COMPOSITE_NEXT).is_file()
    assert json.loads((ckpt / S.PROGRESS_FILE).read_text())["last_completed_step"] == 2
    monkeypatch.setattr(S, "write_json_atomic", real)
    run(prods, tmp_path / "b", resume=True, keep_checkpoint=True)
    assert w.calls == calls_a[:4] + calls_a[3:]
    a = load_composite(S.checkpoint_dir(tmp_path / "a", "T31TCJ") / S.COMPOSITE_FILE)
    b = load_composite(ckpt / S.COMPOSITE_FILE)
    assert a.history == b.history
    np.testing.assert_array_equal(a.rtc, b.rtc)


def test_commit_then_killed_before_the_rename(tmp_path):
    """progress.json committed, composite.next not yet renamed: the resume promotes composite.next."""
    params = L2Params()
    tr = S.TileRun("T00XXX", [], [], "f" * 64, {}, tmp_path / "ckpt")
    old = empty_composite(("B04",), (2, 2), params)
    S._commit(tr, 0, old)
    new = dataclasses.replace(old, last_day=1234)
    S.save_composite(new, tr.ckpt / S.COMPOSITE_NEXT)
    doc = json.loads((tr.ckpt / S.PROGRESS_FILE).read_text())
    doc.update(last_completed_step=1, composite_sha256=S._sha256(tr.ckpt / S.COMPOSITE_NEXT))
    S.write_json_atomic(tr.ckpt / S.PROGRESS_FILE, doc)
    S._load_checkpoint(tr, np)
    assert tr.start == 2 and tr.state.last_day == 1234
    assert not (tr.ckpt / S.COMPOSITE_NEXT).exists() and (tr.ckpt / S.COMPOSITE_FILE).is_file()
    (tr.ckpt / S.COMPOSITE_FILE).write_bytes(b"garbage")
    with pytest.raises(CorruptFileError, match="does not match"):
        S._load_checkpoint(tr, np)


def test_resume_refuses_another_series(monkeypatch, tmp_path):
    prods = products(0, 5, 10)
    w = World(monkeypatch, dict.fromkeys(("d0", "d1", "d2"), True))
    w.fail_at = 2
    with pytest.raises(RuntimeError):
        run(prods, tmp_path)
    w.fail_at = None
    for other, kw in ((prods, {"params": L2Params(max_cloud_percentage=50.0)}),
                      (prods[:2], {}), (prods, {"mode": "init"})):
        with pytest.raises(InputError, match="another series"):
            run(other, tmp_path, resume=True, **kw)
    # --overwrite (without --resume) starts again from the first step
    w.calls.clear()
    run(prods, tmp_path, overwrite=True)
    assert w.calls[0] == ("d2", None) and len(w.calls) == 5


def test_existing_product_needs_overwrite(monkeypatch, tmp_path):
    prods = products(0, 5)
    World(monkeypatch, {"d0": True, "d1": True})
    (tmp_path / "d1").mkdir()
    with pytest.raises(InputError, match="already exists"):
        run(prods, tmp_path)
    assert not (tmp_path / S.CHECKPOINT_DIR).exists()
    run(prods, tmp_path, overwrite=True)


def test_several_tiles_one_plan_each(monkeypatch, tmp_path):
    a = [FakeProduct(f"a{i}", START + timedelta(days=5 * i), tile="T31TCJ") for i in range(2)]
    b = [FakeProduct(f"b{i}", START + timedelta(days=5 * i + 1), tile="T31TCK") for i in range(2)]
    w = World(monkeypatch, {p.product_id: True for p in a + b})
    run(a + b, tmp_path)
    assert w.calls == [("a1", None), ("a0", day(a[1])), ("a1", day(a[0])),
                       ("b1", None), ("b0", day(b[1])), ("b1", day(b[0]))]


# ========================================================================= the real chain
@pytest.fixture(scope="module")
def series(tmp_path_factory):
    from gpumaja.synth import generate_series

    tmp = tmp_path_factory.mktemp("series5")
    safes = generate_series(tmp / "series", dates=5, size=120, seed=1)
    return safes, tmp / "series" / "truth" / "dem.tif"







@pytest.fixture(scope="module")
def uninterrupted(series, tmp_path_factory):
    from gpumaja.pipeline.l2a import run_l2a

    safes, dem = series
    a = tmp_path_factory.mktemp("run_a") / "A"
    summaries = run_l2a(safes, a, CPU, dem=dem)
    assert len(summaries) == 5 and len({s["name"] for s in summaries}) == 5
    return a, summaries


def assert_same_products(a: Path, b: Path) -> None:
    fa, fb = files(a), files(b)
    assert sorted(fa) == sorted(fb)
    assert not any(".tmp-" in k or ".old-" in k or k.startswith(S.CHECKPOINT_DIR) for k in fb)
    for rel in fa:
        assert stripped(fa[rel]) == stripped(fb[rel]), rel


def test_killed_and_resumed_run_gives_the_same_products(series, uninterrupted, tmp_path):
    from gpumaja.pipeline.l2a import run_l2a

    safes, dem = series
    a, summaries = uninterrupted
    b = tmp_path / "B"

    script = ("import sys; from pathlib import Path; from gpumaja.backend import CPU; "
              "from gpumaja.pipeline.l2a import run_l2a; "
              "run_l2a(sys.argv[3:], Path(sys.argv[1]), CPU, dem=Path(sys.argv[2]))")
    env = {**os.environ, S.KILL_ENV: "6"}  # step 6 of 9 writes the 2nd product (the 2nd oldest date)
    proc = subprocess.run([sys.executable, "-c", script, str(b), str(dem), *map(str, safes)], cwd=REPO, env=env,
                          capture_output=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    first, second = sorted(summaries, key=lambda s: s["acquired"])[:2]
    assert sorted(p.name for p in b.iterdir()) == sorted([S.CHECKPOINT_DIR, first["name"], second["name"]])
    progress = json.loads((S.checkpoint_dir(b, "T31TCJ") / S.PROGRESS_FILE).read_text())
    assert progress["last_completed_step"] == 4  # step 6 (index 5) was killed before its commit
    inode = (b / second["name"]).stat().st_ino

    with pytest.raises(InputError, match="--resume"):
        run_l2a(safes, b, CPU, dem=dem)
    resumed = run_l2a(safes, b, CPU, dem=dem, resume=True)
    assert [s["name"] for s in resumed] == [s["name"] for s in summaries[1:]]
    assert resumed[0]["kept"] is True and (b / second["name"]).stat().st_ino == inode  # not rewritten
    assert_same_products(a, b)


def test_series_in_strips_gives_the_same_products(series, uninterrupted, tmp_path):
    """A memory budget that forces strips (by hand from memory.py's model for this 120 px tile: base
    1_595_400 B = 1_506_000 B of date input, read and host outputs + 100 coarse px (120 m grid, 10 x 10)
    x 894 B (13 bands x 32 + 256 coarse chain, 222 composite); 1_320_000 B left, which holds the CPU's
    cloud-shadow stage (100 px x (109 + 136) + 3_300 rays x (104 + 29 + 256) = 1_308_200 B) but not R1
    whole (1_958_400 B): R1 136 B/px (group_masks with the 10/20 m cloud evidence) x 120 px = 16_320 B
    per row -> 80 rows, i.e. 72 (a multiple of 12 fine rows per coarse row); R2 whole (280 x 60 x 60 =
    1_008_000 B), R3 whole (39 + 49 + 36 x 48 = 1_816 B x 20 x 20 = 726_400 B)) gives the products of
    the whole-image run."""
    from gpumaja.pipeline.l2a import open_inputs
    from gpumaja.pipeline.luts import LUTCache
    from gpumaja.pipeline.memory import InsufficientMemoryError

    safes, dem = series
    a, _ = uninterrupted
    prods = open_inputs(safes)
    free = int(1.25 * (1_595_400 + 1_320_000))
    plan = S.memory_plan_for(prods, L2Params(), CPU, 9, free)
    assert plan.read_ahead == 0 and plan.strip_rows == {"R1": 72, "R2": None, "R3": None} and plan.shadow_on_device
    S.run_series(prods, LUTCache(), L2Params(), CPU, tmp_path / "C", dem, free_bytes=free)
    assert_same_products(a, tmp_path / "C")
    with pytest.raises(InsufficientMemoryError, match="not enough host memory"):
        S.run_series(prods, LUTCache(), L2Params(), CPU, tmp_path / "D", dem, free_bytes=1_000_000)
    assert not (tmp_path / "D").exists()


def test_strips_give_the_whole_image_result(series, monkeypatch):
    from gpumaja.io.products import open_product
    from gpumaja.pipeline import l2a_group
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.l2a_group import strip_plan
    from gpumaja.pipeline.l2a_inputs import read_date
    from gpumaja.pipeline.luts import LUTCache

    safes, dem = series
    product = open_product(safes[0])
    params = L2Params()
    lut = LUTCache().for_platform(product.platform)
    inp = read_date(product, CPU, dem, params.coarse_resolution_m)
    spans = []
    real = l2a_group._products_strip
    monkeypatch.setattr(l2a_group, "_products_strip", lambda *a: spans.append(a[-2:]) or real(*a))
    whole = process_date(inp, lut, params, CPU)
    assert spans == [(0, 120), (0, 60)]
    spans.clear()
    # R1: 120 rows, 24 per coarse row -> 5 strips; R2: 60 rows in strips of 7 (not a coarse-row multiple)
    with strip_plan({"R1": 24, "R2": 7}):
        strips = process_date(inp, lut, params, CPU)
    assert spans == [(y, y + 24) for y in range(0, 120, 24)] + [(y, min(60, y + 7)) for y in range(0, 60, 7)]
    assert set(whole.groups) == set(strips.groups) == {"R1", "R2"}
    for g in whole.groups:
        for k in ("sre", "fre", "water_vapour", "aot", "clm", "mg2", "sat", "edg", "iab"):
            x, y = getattr(whole.groups[g], k), getattr(strips.groups[g], k)
            assert x.dtype == y.dtype and x.shape == y.shape, (g, k)
            np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8), err_msg=f"{g} {k}")
    assert np.isfinite(whole.groups["R1"].sre).any()


@pytest.mark.gpu
def test_strips_give_the_whole_image_result_on_the_gpu(series):
    from gpumaja.backend import select_backend
    from gpumaja.io.products import open_product
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.l2a_group import strip_plan
    from gpumaja.pipeline.l2a_inputs import read_date
    from gpumaja.pipeline.luts import LUTCache

    gpu = select_backend("gpu")
    safes, dem = series
    product = open_product(safes[1])
    params = L2Params()
    lut = LUTCache().for_platform(product.platform)
    inp = read_date(product, gpu, dem, params.coarse_resolution_m)
    whole = process_date(inp, lut, params, gpu)
    with strip_plan({"R1": 48, "R2": 5}):
        strips = process_date(inp, lut, params, gpu)
    for g in whole.groups:
        for k in ("sre", "fre", "water_vapour", "aot", "clm", "mg2", "sat", "edg", "iab"):
            x, y = getattr(whole.groups[g], k), getattr(strips.groups[g], k)
            np.testing.assert_array_equal(x.view(np.uint8), y.view(np.uint8), err_msg=f"{g} {k}")


@pytest.mark.gpu
def test_series_with_the_shadow_stage_on_the_host_gives_the_same_products(series, tmp_path, monkeypatch):
    """A GPU run whose plan puts the cloud-shadow stage on the host (NumPy) writes the products of the
    default plan (the stage on the device) byte for byte."""
    from gpumaja.backend import select_backend
    from gpumaja.pipeline import l2a_multitemporal as M
    from gpumaja.pipeline.l2a import run_l2a

    gpu = select_backend("gpu")
    safes, dem = series
    ran: list[tuple[str, int]] = []  # (backend of cloud_shadows, shadow pixels), call by call
    real = M.cloud_shadows

    def spy(*args):
        mask = real(*args)
        ran.append((args[-1].name, int(mask.sum())))
        return mask

    monkeypatch.setattr(M, "cloud_shadows", spy)
    plans: list = []
    planned = S.memory_plan_for
    monkeypatch.setattr(S, "memory_plan_for", lambda *a, **k: plans.append(planned(*a, **k)) or plans[-1])
    run_l2a(safes, tmp_path / "A", gpu, dem=dem)
    assert plans and all(p.shadow_on_device for p in plans)
    on_device, ran[:] = list(ran), []
    monkeypatch.setattr(S, "memory_plan_for",
                        lambda *a, **k: dataclasses.replace(planned(*a, **k), shadow_on_device=False))
    run_l2a(safes, tmp_path / "B", gpu, dem=dem)
    assert [n for n, _ in on_device] == ["gpu"] * len(on_device) and [n for n, _ in ran] == ["cpu"] * len(ran)
    assert [k for _, k in ran] == [k for _, k in on_device]
    assert any(k > 0 for _, k in ran)  # shadow pixels 2, 9, 9, 2 in the NOMINAL steps of the CPU run
    assert_same_products(tmp_path / "A", tmp_path / "B")


@pytest.mark.gpu
def test_series_on_the_gpu_resumes_identically(series, tmp_path):
    from gpumaja.backend import select_backend
    from gpumaja.pipeline.l2a import run_l2a

    gpu = select_backend("gpu")
    safes, dem = series
    a, b = tmp_path / "A", tmp_path / "B"
    run_l2a(safes, a, gpu, dem=dem)
    script = ("import sys; from pathlib import Path; from gpumaja.backend import select_backend; "
              "from gpumaja.pipeline.l2a import run_l2a; "
              "run_l2a(sys.argv[3:], Path(sys.argv[1]), select_backend('gpu'), dem=Path(sys.argv[2]))")
    proc = subprocess.run([sys.executable, "-c", script, str(b), str(dem), *map(str, safes)], cwd=REPO,
                          env={**os.environ, S.KILL_ENV: "3"}, capture_output=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    run_l2a(safes, b, gpu, dem=dem, resume=True)
    assert_same_products(a, b)


def _nominal_inputs(series):
    """Date 1 of the series with the composite of date 0 (INIT), for process_date."""
    from gpumaja.composite import day_number, empty_composite, update_composite
    from gpumaja.io.products import open_product
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.l2a_inputs import read_date
    from gpumaja.pipeline.luts import LUTCache

    safes, dem = series
    params = L2Params()
    products = sorted((open_product(s) for s in safes), key=lambda p: p.acquired)
    coarse: dict = {}
    p0 = products[0]
    inp0 = read_date(p0, CPU, dem, params.coarse_resolution_m)
    process_date(inp0, LUTCache().for_platform(p0.platform), params, CPU, coarse_out=coarse)
    day0 = day_number(p0.acquired.date())
    base = empty_composite(tuple(coarse["bands"]), tuple(coarse["aot"].shape), params)
    comp = update_composite(base, day0, params=params, **{k: v for k, v in coarse.items() if k != "bands"})
    p1 = products[1]
    inp1 = read_date(p1, CPU, dem, params.coarse_resolution_m)
    return inp1, LUTCache().for_platform(p1.platform), comp


def test_fine_cloud_masks_in_strips_and_within_majas_masks(series):
    """A NOMINAL date: the 10/20 m cloud masks (fine evidence, ours) are the same whole or in strips
    (R2 strips of 7 rows cut the 60 m cirrus rows and the 2 x 2 blocks of R1 rows), and their cloud
    bits (1-4, 7) only remove pixels from MAJA's resampled masks (fine_cloud_masks = False)."""
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.l2a_group import strip_plan

    inp, lut, comp = _nominal_inputs(series)
    params = L2Params()
    whole = process_date(inp, lut, params, CPU, composite=comp)
    with strip_plan({"R1": 24, "R2": 7}):
        strips = process_date(inp, lut, params, CPU, composite=comp)
    maja = process_date(inp, lut, params.replace(fine_cloud_masks=False), CPU, composite=comp)
    removed = 0
    for g in whole.groups:
        for k in ("clm", "mg2"):
            np.testing.assert_array_equal(getattr(whole.groups[g], k), getattr(strips.groups[g], k), err_msg=g)
        ours, theirs = whole.groups[g].clm, maja.groups[g].clm
        cloud_bits = np.uint8(0b10011110)
        assert not (ours & ~theirs & cloud_bits).any(), g
        removed += int((theirs & ~ours & 0b10).astype(bool).sum())
        np.testing.assert_array_equal(whole.groups[g].sre, maja.groups[g].sre)  # masks only
    assert removed > 0  # the series has partly cloudy cells, some 10/20 m pixels are released


def test_fine_shadow_darkening_surface_vs_rayleigh(series):
    """The fine shadow test's darkening (ours): "surface" (TOC at the date's AOT over the composite's
    RTC, the default) and "rayleigh" (TOCR over RCR) change shadow bits only, and the same way whole
    and in strips; an unknown mode is refused by L2Params."""
    from gpumaja.pipeline.l2a_date import process_date
    from gpumaja.pipeline.l2a_group import strip_plan

    inp, lut, comp = _nominal_inputs(series)
    surface = process_date(inp, lut, L2Params(), CPU, composite=comp)
    rayleigh = process_date(inp, lut, L2Params(fine_shadow_darkening="rayleigh"), CPU, composite=comp)
    with strip_plan({"R1": 24, "R2": 7}):
        strips = process_date(inp, lut, L2Params(), CPU, composite=comp)
    shadow_bits = np.uint8(0b01100001)  # bits 5-6 and bit 0 (all clouds and shadows)
    differ = 0
    for g in surface.groups:
        a, b = surface.groups[g].clm, rayleigh.groups[g].clm
        assert not ((a ^ b) & ~shadow_bits).any(), g
        differ += int(((a ^ b) & 0b01100000).astype(bool).sum())
        np.testing.assert_array_equal(a, strips.groups[g].clm, err_msg=g)
        np.testing.assert_array_equal(surface.groups[g].sre, rayleigh.groups[g].sre)
    assert differ > 0  # the two darkenings disagree on some shadow pixels of this series
    with pytest.raises(ValueError, match="fine_shadow_darkening"):
        L2Params(fine_shadow_darkening="toa")
