"""`gpumaja l2a` end to end through `gpumaja.cli.main.run`: real SAFEs with the real MAJA GIPP set, a
synthetic series with its DEM, our LUT file format, and bad inputs (exit 2, a message naming the file,
nothing left in --out). maja-l2a.md §5 (product), §1.12 (masks), §3.7 (FRE), P16/P21 Max_Cloud_Percentage."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import gpumaja
from gpumaja.cli.main import run
from gpumaja.io.cog import validate_cog
from gpumaja.io.lutfile import save_lut
from tests.conftest import gpu_available
from tests.lut_fakes import fake_runner, tiny_tables
from tests.test_pipeline_l2a import assert_masks_consistent

S2A_NAME = "SENTINEL2A_20240120-105850-500_L2A_T31TCJ_C_V1-0"
S2B_NAME = "SENTINEL2B_20240305-105854-168_L2A_T31TCJ_C_V1-0"


def call(capsys, *args):
    code = run([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def flat(text: str) -> str:
    """stderr without the line breaks rich inserts in long messages (paths included)."""
    return text.replace("\n", "")


def listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def assert_nothing_written(out: Path, root: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), sorted(out.rglob("*"))
    leftovers = [p for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]
    assert not leftovers


def s2a(s2_safe_dir: Path) -> Path:
    return next(s2_safe_dir.glob("S2A*.SAFE"))


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def default_run(tmp_path_factory, s2_safe_dir, gipp_dir):
    out = tmp_path_factory.mktemp("l2a_default") / "out"
    code = run(["-q", "l2a", str(s2_safe_dir), "--out", str(out), "--gipp", str(gipp_dir), "--device", "cpu"])
    return code, out


@pytest.fixture(scope="module")
def all_valid_run(tmp_path_factory, s2_safe_dir, gipp_dir):
    tmp = tmp_path_factory.mktemp("l2a_all_valid")
    params = tmp / "params.toml"
    params.write_text("max_cloud_percentage = 100\n")
    out = tmp / "out"
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        code = run(["-q", "l2a", *map(str, sorted(s2_safe_dir.glob("*.SAFE"))), "--out", str(out), "--gipp",
                    str(gipp_dir), "--params", str(params), "--json", "--device", "cpu"])
    return code, out, buf.getvalue()


@pytest.fixture(scope="module")
def synth_series(tmp_path_factory):
    from gpumaja.synth import generate_series

    tmp = tmp_path_factory.mktemp("l2a_synth")
    safes = generate_series(tmp / "series", dates=2, size=120, seed=1)
    return safes, tmp / "series" / "truth" / "dem.tif"


@pytest.fixture(scope="module")
def synth_run(tmp_path_factory, gipp_dir, synth_series):
    safes, dem = synth_series
    out = tmp_path_factory.mktemp("l2a_synth_run") / "out"
    code = run(["-q", "l2a", *map(str, safes), "--out", str(out), "--gipp", str(gipp_dir),
                "--dem", str(dem), "--device", "cpu"])
    return code, out


# ------------------------------------------------------------------------------- real SAFEs, GIPP
def test_default_rule_s2b_too_cloudy_is_metadata_only(default_run):
    code, out = default_run
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [S2A_NAME, S2B_NAME]
    # MAJA: a date above Max_Cloud_Percentage (90 %) gets its metadata only
    assert listing(out / S2B_NAME) == {f"{S2B_NAME}_MTD_ALL.xml", f"{S2B_NAME}_STAC.json"}
    with pytest.raises(gpumaja.errors.InputError, match="metadata only"):
        gpumaja.open_l2a(out / S2B_NAME)
    files = listing(out / S2A_NAME)
    assert len([f for f in files if f.endswith(".tif")]) == 2 * 10 + 2 + 2 * 5  # SRE+FRE, ATB, 5 masks x 2
    assert gpumaja.open_l2a(out / S2A_NAME).attrs["valid"]


def test_human_output_flags_the_cloudy_date(capsys, s2_safe_dir, gipp_dir, tmp_path):
    code, out, _ = call(capsys, "-q", "l2a", s2_safe_dir, "--out", tmp_path / "o", "--gipp", gipp_dir)
    assert code == 0
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 2
    assert S2A_NAME in lines[0] and "metadata only" not in lines[0]
    assert S2B_NAME in lines[1] and "too cloudy: metadata only" in lines[1]


def test_json_names_the_products(all_valid_run):
    code, out, stdout = all_valid_run
    assert code == 0
    doc = json.loads(stdout)
    assert doc["backend"] == "NumPy on the CPU"
    names = [p["name"] for p in doc["products"]]
    assert names == [S2A_NAME, S2B_NAME]
    for p in doc["products"]:
        assert Path(p["product"]) == out / p["name"] and Path(p["product"]).is_dir()
        assert p["valid"] is True and "MAJA GIPP" in p["lut"]
        assert p["seconds"]["compute"] >= 0 and p["seconds"]["write"] >= 0
    assert doc["products"][1]["cloud_percent"] > 90.0


def test_all_valid_products_read_back(all_valid_run):
    _, out, _ = all_valid_run
    for name, platform in ((S2A_NAME, "SENTINEL2A"), (S2B_NAME, "SENTINEL2B")):
        for group, bands, shape in (("R1", ["B02", "B03", "B04", "B08"], (30, 30)),
                                    ("R2", ["B05", "B06", "B07", "B8A", "B11", "B12"], (15, 15))):
            ds = gpumaja.open_l2a(out / name, group)
            assert ds.attrs["valid"] and ds.attrs["tile"] == "T31TCJ" and ds.attrs["platform"] == platform
            assert list(ds.band.values) == bands and ds.sre.shape == (len(bands), *shape)
            # flat terrain (no --dem): the slope correction is the identity, FRE == SRE to the count
            np.testing.assert_array_equal(ds.fre.values, ds.sre.values)
            assert_masks_consistent(ds.clm.values, ds.mg2.values, ds.edg.values, ds.sat.values, ds.iab.values)
            edge = ds.edg.values.astype(bool)
            assert np.isnan(ds.sre.values[:, edge]).all() and np.isfinite(ds.sre.values[:, ~edge]).all()
    cloudy = gpumaja.open_l2a(out / S2B_NAME)
    assert (cloudy.clm.values & 2).astype(bool).mean() > 0.9


def test_all_valid_products_cogs_and_stac(all_valid_run):
    pytest.importorskip("jsonschema")
    from pystac import STACObjectType
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    _, out, _ = all_valid_run
    validator = JsonSchemaSTACValidator()
    for name in (S2A_NAME, S2B_NAME):
        tifs = sorted((out / name).rglob("*.tif"))
        assert len(tifs) == 32
        for tif in tifs:
            ok, errors, _ = validate_cog(tif)
            assert ok, (tif.name, errors)
        item = json.loads((out / name / f"{name}_STAC.json").read_text())
        assert item["id"] == name
        uri = validator.validate_core(item, STACObjectType.ITEM, item["stac_version"])
        assert uri is not None and uri.endswith("item.json")
        for asset in item["assets"].values():
            assert (out / name / asset["href"]).is_file()


# --------------------------------------------------------------------------- synthetic with DEM
def test_synthetic_series_with_dem(synth_run):
    code, out = synth_run
    assert code == 0
    products = sorted(out.iterdir())
    assert len(products) == 2
    for path in products:
        if not (path / f"{path.name}_SRE_B2.tif").exists():  # a too cloudy date: metadata only
            continue
        ds = gpumaja.open_l2a(path, "R1")
        sre, fre = ds.sre.values, ds.fre.values
        assert sre.shape == (4, 120, 120)
        assert (np.abs(fre - sre) > 0.002).any()  # counts differ on slopes
        clear = (ds.clm.values == 0) & (ds.edg.values == 0)
        assert clear.any()
        # > 1 or < -0.05 happens on bright snow of this tiny, very steep scene when the one-date AOT misses
        # the altitude dependence of the true AOT (docs/validation.md §2)
        assert ((sre[:, clear] >= -0.05) & (sre[:, clear] <= 1.0)).mean() > 0.95
        assert_masks_consistent(ds.clm.values, ds.mg2.values, ds.edg.values, ds.sat.values, ds.iab.values)


# ------------------------------------------------------------------------- --mode and --resume
def test_mode_init_and_auto(capsys, synth_series, gipp_dir, tmp_path):
    safes, dem = synth_series
    common = [*safes, "--gipp", gipp_dir, "--dem", dem, "--device", "cpu", "--json"]
    code, out, err = call(capsys, "-q", "l2a", *common, "--out", tmp_path / "init", "--mode", "init")
    assert code == 0, err
    products = json.loads(out)["products"]
    assert [(p["mode"], p["direction"], p["step"], p["steps"]) for p in products] == [
        ("INIT", "forward", 0, 2), ("INIT", "forward", 1, 2)]
    code, out, err = call(capsys, "-q", "l2a", *common, "--out", tmp_path / "auto")
    assert code == 0, err
    products = json.loads(out)["products"]
    # two dates 5 days apart: INIT on the younger, NOMINAL back to the older (written), NOMINAL forward
    assert [(p["planned_mode"], p["direction"], p["step"], p["steps"]) for p in products] == [
        ("NOMINAL", "backward", 1, 3), ("NOMINAL", "forward", 2, 3)]
    assert sorted(p.name for p in (tmp_path / "auto").iterdir()) == sorted(p["name"] for p in products)
    code, _, err = call(capsys, "l2a", *common, "--out", tmp_path / "x", "--mode", "backward")
    assert code == 2 and "--mode" in err


def test_resume_keeps_complete_products(capsys, synth_series, gipp_dir, tmp_path):
    safes, dem = synth_series
    common = [*safes, "--gipp", gipp_dir, "--dem", dem, "--device", "cpu", "--out", tmp_path / "o"]
    code, _, err = call(capsys, "-q", "l2a", *common)
    assert code == 0, err
    stamps = {p: p.stat().st_mtime_ns for p in (tmp_path / "o").rglob("*")}
    code, _, err = call(capsys, "l2a", *common)
    assert code == 2 and "already exists" in flat(err) and "--overwrite" in flat(err)
    # nothing to resume from (the run was complete): every date is recomputed, no product rewritten
    code, out, err = call(capsys, "-q", "l2a", *common, "--resume", "--json")
    assert code == 0, err
    assert all(p["kept"] for p in json.loads(out)["products"])
    assert {p: p.stat().st_mtime_ns for p in (tmp_path / "o").rglob("*")} == stamps


# ------------------------------------------------------------------------------------ --lut file
def test_lut_file_of_the_right_sensor(capsys, s2_safe_dir, tmp_path):
    from gpumaja.lut.build import build_lut
    from gpumaja.lut.grid import SMOKE_GRID
    from gpumaja.lut.sensors import sensor_spec

    lut = save_lut(build_lut(sensor_spec("S2A"), tmp_path / "c.jsonl", SMOKE_GRID, runner=fake_runner),
                   tmp_path / "fake_S2A.npz")
    code, out, err = call(capsys, "-q", "l2a", s2a(s2_safe_dir), "--out", tmp_path / "o", "--lut", lut, "--json")
    assert code == 0, err
    (p,) = json.loads(out)["products"]
    assert p["name"] == S2A_NAME and "gpumaja 6S LUT S2A" in p["lut"] and "fake_S2A.npz" in p["lut"]
    ds = gpumaja.open_l2a(p["product"])
    assert np.isfinite(ds.sre.values).all()


# ------------------------------------------------------------------------------------ bad inputs
def test_gipp_of_another_platform(capsys, s2_safe_dir, gipp_dir, tmp_path):
    only_s2b = tmp_path / "gipp_s2b"
    only_s2b.mkdir()
    for f in gipp_dir.iterdir():
        if f.name.startswith(("S2B_", "S2__")):
            (only_s2b / f.name).symlink_to(f)
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--gipp", only_s2b)
    assert code == 2
    msg = flat(err)
    assert str(only_s2b) in msg and "S2A" in msg and "S2B" in msg and "Traceback" not in msg
    assert_nothing_written(out, tmp_path)


def test_lut_file_of_another_sensor(capsys, s2_safe_dir, tmp_path):
    lut = save_lut(tiny_tables("L8", ("B1", "B2")), tmp_path / "landsat8.npz")
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--lut", lut)
    assert code == 2
    msg = flat(err)
    assert str(lut) in msg and "L8" in msg and "S2A" in msg
    assert_nothing_written(out, tmp_path)


def test_lut_file_that_is_not_a_lut(capsys, s2_safe_dir, tmp_path):
    junk = tmp_path / "junk.npz"
    np.savez(junk, something=np.arange(3))  # an .npz, but not ours (a truncated .npz: see test_lut_build.py)
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--lut", junk)
    assert code == 2 and str(junk) in flat(err)
    assert_nothing_written(out, tmp_path)


def test_dem_not_covering_the_tile(capsys, s2_safe_dir, gipp_dir, tmp_path):
    import rasterio
    from affine import Affine

    dem = tmp_path / "far_dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32",
                       crs="EPSG:32631", transform=Affine(30.0, 0.0, 600000.0, 0.0, -30.0, 4000000.0)) as ds:
        ds.write(np.full((1, 20, 20), 300.0, np.float32))
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--gipp", gipp_dir, "--dem", dem)
    assert code == 2
    msg = flat(err)
    assert str(dem) in msg and "cover" in msg
    assert_nothing_written(out, tmp_path)


def _copy_with_tl(s2_safe_dir: Path, tmp_path: Path, edit) -> tuple[Path, Path]:
    src = s2a(s2_safe_dir)
    safe = shutil.copytree(src, tmp_path / src.name)
    (tl,) = safe.glob("GRANULE/*/MTD_TL.xml")
    text = tl.read_text()
    new = edit(text)
    assert new != text
    tl.write_text(new)
    return safe, tl


def _nan_values(block: str) -> str:
    return re.sub(r"<VALUES>[^<]*</VALUES>", lambda m: "<VALUES>" + " ".join(
        "NaN" for _ in m.group(0)[8:-9].split()) + "</VALUES>", block)


ANGLE_EDITS = {
    # no sun angle grid: the reader refuses the tile metadata
    "no_sun_grid": (lambda t: re.sub(r"<Sun_Angles_Grid>.*?</Sun_Angles_Grid>", "", t, flags=re.DOTALL), "tl",
                    "Sun_Angles_Grid"),
    # no viewing grid at all: the SAFE reader refuses it (the L2A preflight would too, see
    # test_pipeline_l2a.py::test_angle_checks_name_the_product)
    "no_view_grids": (lambda t: re.sub(r"<Viewing_Incidence_Angles_Grids .*?</Viewing_Incidence_Angles_Grids>",
                                       "", t, flags=re.DOTALL), "tl", "no viewing angle grid for band(s) B01"),
    # a sun grid of NaN only
    "nan_sun_grid": (lambda t: re.sub(r"<Sun_Angles_Grid>.*?</Sun_Angles_Grid>",
                                      lambda m: _nan_values(m.group(0)), t, flags=re.DOTALL), "tl", "no value"),
    # viewing grids of NaN only and no mean viewing angles to fall back on
    "nan_view_grids": (lambda t: re.sub(r"<Mean_Viewing_Incidence_Angle_List>.*?</Mean_Viewing_Incidence_Angle_List>",
                                        "", re.sub(r"<Viewing_Incidence_Angles_Grids .*?</Viewing_Incidence_Angles_Grids>",
                                                   lambda m: _nan_values(m.group(0)), t, flags=re.DOTALL), flags=re.DOTALL),
                       "tl", "no value"),
}


@pytest.mark.parametrize("case", sorted(ANGLE_EDITS))
def test_products_without_usable_angles(capsys, s2_safe_dir, gipp_dir, tmp_path, case):
    edit, named, words = ANGLE_EDITS[case]
    safe, tl = _copy_with_tl(s2_safe_dir, tmp_path, edit)
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", safe, "--out", out, "--gipp", gipp_dir)
    msg = flat(err)
    assert code == 2, msg
    assert str(tl if named == "tl" else safe) in msg and words in msg, msg
    assert_nothing_written(out, tmp_path)


def test_gipp_and_lut_together_is_a_usage_error(capsys, s2_safe_dir, gipp_dir, tmp_path):
    lut = save_lut(tiny_tables("S2A", ("B02", "B04")), tmp_path / "s2a.npz")
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--gipp", gipp_dir, "--lut", lut)
    assert code == 2 and "--gipp" in err and "--lut" in err
    assert_nothing_written(out, tmp_path)


def test_nonexistent_input(capsys, gipp_dir, tmp_path):
    missing = tmp_path / "S2A_MSIL1C_nothing_here.SAFE"
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", missing, "--out", out, "--gipp", gipp_dir)
    assert code == 2 and str(missing) in flat(err) and "Traceback" not in err
    assert_nothing_written(out, tmp_path)


def test_bad_params_file(capsys, s2_safe_dir, gipp_dir, tmp_path):
    params = tmp_path / "p.toml"
    params.write_text("max_cloud_percent = 100\n")  # not a parameter name
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--gipp", gipp_dir, "--params", params)
    assert code == 2 and str(params) in flat(err) and "max_cloud_percent" in err
    assert_nothing_written(out, tmp_path)


def test_missing_required_out_is_a_usage_error(capsys, s2_safe_dir):
    code, _, _ = call(capsys, "l2a", s2a(s2_safe_dir))
    assert code == 2


@pytest.mark.skipif(gpu_available(), reason="a GPU is available here")
def test_device_gpu_without_gpu(capsys, s2_safe_dir, gipp_dir, tmp_path):
    out = tmp_path / "out"
    code, _, err = call(capsys, "l2a", s2a(s2_safe_dir), "--out", out, "--gipp", gipp_dir, "--device", "gpu")
    assert code == 2 and "gpu" in err.lower()
    assert_nothing_written(out, tmp_path)
