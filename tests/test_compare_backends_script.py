"""scripts/compare_backends.py: the CPU vs GPU product-equivalence check of issue 4.

- The pure comparisons on arrays where the test plants known differences (flipped mask bits, +1/+3 DN,
  nodata on one side only) and counts the expected figures itself.
- The product-tree walk on two copies of one real product tree from the chain (2-date synthetic series,
  120 px), one copy edited with rasterio (a CLM file, an SRE file; a removed mask file).
- `main` end to end with --backends cpu,cpu on a generated 3-date series: exit 0, all identical, JSON keys,
  pixel counts from the grid sizes, nothing left in --workdir.
- --backends cpu,gpu without a usable GPU: exit 2 before anything runs (skipped where a GPU is usable).
- On a GPU machine (gpu marker): cpu vs gpu meets the issue's thresholds.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpumaja_scripts_compare_backends",
                                                  REPO / "scripts" / "compare_backends.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


cb = _load()
NODATA = -10000


# ============================================================================ pure comparisons
def test_compare_masks_counts_whole_values_and_bits():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (50, 40), dtype=np.uint8)
    b = a.copy()
    flat = b.reshape(-1)
    idx = rng.permutation(a.size)
    only3, both, only0 = idx[:17], idx[17:22], idx[22:31]  # bit 3 in 17 + 5 px, bit 0 in 5 + 9 px
    flat[only3] ^= 1 << 3
    flat[both] ^= (1 << 3) | 1
    flat[only0] ^= 1
    r = cb.compare_masks(a, b, bits=True)
    n = 50 * 40
    assert r["n"] == n and r["identical"] == n - 31
    assert r["share_identical"] == pytest.approx((n - 31) / n)
    assert r["bits"]["3"]["differ"] == 22 and r["bits"]["0"]["differ"] == 14
    assert r["bits"]["3"]["share_identical"] == pytest.approx((n - 22) / n)
    assert all(r["bits"][str(k)]["differ"] == 0 for k in (1, 2, 4, 5, 6, 7))
    assert "bits" not in cb.compare_masks(a, b)
    same = cb.compare_masks(a, a.copy(), bits=True)
    assert same["share_identical"] == 1.0 and all(v["differ"] == 0 for v in same["bits"].values())
    with pytest.raises(ValueError, match="shapes differ"):
        cb.compare_masks(a, b[:-1])


def test_compare_reflectance_counts_dn_differences_and_nodata():
    rng = np.random.default_rng(4)
    a = rng.integers(-500, 9000, (30, 30)).astype(np.int16)
    a[0, :5] = NODATA  # nodata on both sides: not compared
    b = a.copy()
    valid = np.flatnonzero(a.reshape(-1) != NODATA)
    pick = rng.permutation(valid)
    plus1, minus1, plus2, plus3 = pick[:11], pick[11:15], pick[15:22], pick[22:25]
    a_only, b_only = pick[25], pick[26]
    fb = b.reshape(-1)
    fb[plus1] += 1
    fb[minus1] -= 1
    fb[plus2] += 2
    fb[plus3] += 3
    fb[a_only] = NODATA  # valid in a, nodata in b
    fa = a.reshape(-1)
    fa[b_only] = NODATA  # nodata in a, valid in b
    r = cb.compare_reflectance(a, b, NODATA)
    n = 900 - 5  # valid on at least one side
    assert r["n"] == n and r["both_nodata"] == 5
    assert r["nodata_mismatch"] == 2
    assert r["within_1"] == n - 7 - 3 - 2
    assert r["identical"] == n - 11 - 4 - 7 - 3 - 2
    assert r["max_abs_diff"] == 3
    assert r["share_within_1"] == pytest.approx((n - 12) / n)
    assert r["share_identical"] == pytest.approx((n - 27) / n)


def test_compare_reflectance_edge_cases():
    empty = np.full((4, 4), NODATA, np.int16)
    r = cb.compare_reflectance(empty, empty.copy(), NODATA)
    assert r["n"] == 0 and r["max_abs_diff"] is None and r["share_within_1"] == 1.0
    a = np.arange(16, dtype=np.int16).reshape(4, 4)
    r = cb.compare_reflectance(a, a + 5, None)  # no nodata value: every pixel compared
    assert r["n"] == 16 and r["within_1"] == 0 and r["max_abs_diff"] == 5
    one = cb.one_sided_reflectance(np.where(a < 4, NODATA, a).astype(np.int16), NODATA)
    assert one["n"] == 12 and one["nodata_mismatch"] == 12 and one["within_1"] == 0
    m = cb.one_sided_mask(np.zeros((3, 5), np.uint8), bits=True)
    assert m["n"] == 15 and m["identical"] == 0 and m["bits"]["0"]["differ"] == 15


def test_accumulation_is_pixel_weighted():
    a = cb.compare_reflectance(np.zeros(10, np.int16), np.array([0] * 8 + [2, 2], np.int16), NODATA)
    b = cb.compare_reflectance(np.zeros(90, np.int16), np.zeros(90, np.int16), NODATA)
    acc = cb.add_reflectance(cb.add_reflectance({}, a), b)
    assert acc["n"] == 100 and acc["within_1"] == 98 and acc["share_within_1"] == pytest.approx(0.98)
    assert acc["max_abs_diff"] == 2


# ============================================================================ product trees
@pytest.fixture(scope="module")
def product_tree(tmp_path_factory):
    """A real L2A output folder: the chain on a 2-date, 120 px synthetic series, every date written."""
    from gpumaja.backend import CPU
    from gpumaja.model.params import L2Params
    from gpumaja.pipeline.l2a import run_l2a
    from gpumaja.synth import generate_series

    tmp = tmp_path_factory.mktemp("cmp_tree")
    generate_series(tmp / "series", dates=2, size=120, seed=1)
    out = tmp / "out"
    run_l2a([tmp / "series"], out, CPU, L2Params().replace(max_cloud_percentage=100.0),
            dem=tmp / "series" / "truth" / "dem.tif")
    prods = sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert len(prods) == 2 and all(list(p.glob("MASKS/*_CLM_R1.tif")) for p in prods)
    return out


def _read(path: Path):
    import rasterio

    with rasterio.open(path) as src:
        return src.read(1), src.profile, src.nodata


def _write(path: Path, data: np.ndarray, profile: dict) -> None:
    import rasterio

    path.unlink()
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _pixels(folder: Path, pattern: str, valid_only: bool = False) -> int:
    total = 0
    for f in folder.rglob(pattern):
        data, _, nodata = _read(f)
        total += int(np.count_nonzero(data != nodata)) if valid_only else data.size
    return total


def test_tree_comparison_reports_planted_differences(product_tree, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(product_tree, a)
    shutil.copytree(product_tree, b)
    first = sorted(p for p in b.iterdir() if p.is_dir())[0]
    second_name = sorted(p.name for p in b.iterdir() if p.is_dir())[1]
    rng = np.random.default_rng(5)

    clm = next(first.glob("MASKS/*_CLM_R1.tif"))
    data, profile, _ = _read(clm)
    k = 37
    flip = rng.choice(data.size, k, replace=False)
    data.reshape(-1)[flip] ^= 1 << 1  # CLM bit 1 ("all clouds") flipped on k pixels
    _write(clm, data, profile)

    sre = next(first.glob("*_SRE_B2.tif"))
    data, profile, nodata = _read(sre)
    assert nodata == NODATA
    flat = data.reshape(-1)
    valid = np.flatnonzero((flat != nodata) & (flat < 30000))
    pick = rng.permutation(valid)
    m, n3 = 23, 6
    flat[pick[:m]] += 1
    flat[pick[m:m + n3]] += 3
    flat[pick[m + n3]] = nodata  # valid in a, nodata in b
    _write(sre, data, profile)

    res = cb.compare_trees(a, b)
    assert [p["product"] for p in res["products"]] == sorted(p.name for p in a.iterdir() if p.is_dir())
    assert res["validity_mismatches"] == [] and res["files_only_in_a"] == [] and res["files_only_in_b"] == []

    t = res["totals"]
    mask_px = _pixels(a, "MASKS/*.tif")
    assert t["masks"]["n"] == mask_px and t["masks"]["identical"] == mask_px - k
    clm_px = _pixels(a, "MASKS/*_CLM_*.tif")
    assert t["masks_by_code"]["CLM"]["bits"]["1"]["differ"] == k
    assert t["masks_by_code"]["CLM"]["bits"]["1"]["share_identical"] == pytest.approx((clm_px - k) / clm_px)
    assert t["masks_by_code"]["CLM"]["bits"]["2"]["differ"] == 0
    assert t["masks_by_code"]["MG2"]["identical"] == t["masks_by_code"]["MG2"]["n"]

    refl_px = _pixels(a, "*_SRE_*.tif", valid_only=True) + _pixels(a, "*_FRE_*.tif", valid_only=True)
    r = t["reflectance"]
    assert r["n"] == refl_px
    assert r["within_1"] == refl_px - n3 - 1 and r["identical"] == refl_px - m - n3 - 1
    assert r["max_abs_diff"] == 3 and r["nodata_mismatch"] == 1
    assert t["reflectance_by_code"]["FRE"]["identical"] == t["reflectance_by_code"]["FRE"]["n"]

    sre_px = int(np.count_nonzero(_read(next((a / first.name).glob("*_SRE_B2.tif")))[0] != NODATA))
    assert res["worst"]["reflectance"]["file"] == f"{first.name}/{sre.name}"
    assert res["worst"]["reflectance"]["share_within_1"] == pytest.approx((sre_px - n3 - 1) / sre_px)
    assert res["worst"]["mask"]["file"] == f"{first.name}/MASKS/{clm.name}"
    clm_file_px = _read(clm)[0].size
    assert res["worst"]["mask"]["share_identical"] == pytest.approx((clm_file_px - k) / clm_file_px)
    by_name = {p["product"]: p for p in res["products"]}
    assert by_name[second_name]["totals"]["masks"]["share_identical"] == 1.0
    assert by_name[second_name]["totals"]["reflectance"]["share_within_1"] == 1.0
    assert all(s["share_within_1"] == 1.0 for s in t["atb"].values())

    v = cb.verdict(res)
    assert v["masks_share_identical"] == pytest.approx((mask_px - k) / mask_px)
    assert v["masks_pass"] == ((mask_px - k) / mask_px >= 0.999)
    assert v["reflectance_pass"] == ((refl_px - n3 - 1) / refl_px >= 0.9999)
    assert v["pass"] == (v["masks_pass"] and v["reflectance_pass"])
    assert "**Verdict:" in cb.markdown({"comparison": res, "verdict": v, "backends": [
        {"label": "x-0", "description": "x", "seconds": 1.0}, {"label": "y-1", "description": "y", "seconds": 2.0}],
        "series": "s", "dates": ["d"], "mode": "auto", "sizes": {"R1": [120, 120]}, "commit": None})


def test_tree_comparison_counts_files_and_products_on_one_side(product_tree, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(product_tree, a)
    shutil.copytree(product_tree, b)
    first, second = sorted(p for p in b.iterdir() if p.is_dir())
    sat = next(first.glob("MASKS/*_SAT_R2.tif"))
    sat_px = _read(sat)[0].size
    sat.unlink()
    shutil.rmtree(second)

    res = cb.compare_trees(a, b)
    assert res["files_only_in_a"] == [f"{first.name}/MASKS/{sat.name}"] and res["files_only_in_b"] == []
    assert res["products_only_in_a"] == [second.name] and res["validity_mismatches"] == [second.name]
    second_masks = _pixels(a / second.name, "MASKS/*.tif")
    second_refl = _pixels(a / second.name, "*_SRE_*.tif", True) + _pixels(a / second.name, "*_FRE_*.tif", True)
    t = res["totals"]
    assert t["masks"]["n"] == _pixels(a, "MASKS/*.tif")
    assert t["masks"]["n"] - t["masks"]["identical"] == sat_px + second_masks
    assert t["reflectance"]["n"] - t["reflectance"]["within_1"] == second_refl
    assert t["reflectance"]["nodata_mismatch"] == second_refl
    assert not cb.verdict(res)["pass"]


def test_classify():
    assert cb.classify("MASKS/X_L2A_T_C_V1-0_CLM_R1.tif") == ("mask", "CLM", "R1")
    assert cb.classify("X_L2A_T_C_V1-0_SRE_B8A.tif") == ("reflectance", "SRE", "B8A")
    assert cb.classify("X_L2A_T_C_V1-0_ATB_XS.tif") == ("atb", "ATB", "XS")
    assert cb.classify("X_L2A_T_C_V1-0_MTD_ALL.xml") is None


# ============================================================================ main
def _gpu_problem():
    from gpumaja.backend import gpu_problem

    return gpu_problem()


def test_main_cpu_cpu_end_to_end(tmp_path, capsys):
    params = tmp_path / "params.toml"
    params.write_text("max_cloud_percentage = 100\n")  # every date written (no metadata-only product)
    work, js, md = tmp_path / "work", tmp_path / "r.json", tmp_path / "r.md"
    code = cb.main(["--synth-size", "120", "--dates", "3", "--seed", "1", "--backends", "cpu,cpu",
                    "--params", str(params), "--workdir", str(work), "--out-json", str(js), "--out-md", str(md)])
    out = capsys.readouterr().out
    assert code == 0
    assert "| **all** |" in out and "Verdict: PASS" in out and md.read_text().strip() == out.strip()
    doc = json.loads(js.read_text())
    assert {"commit", "date", "device_name", "backends", "series", "synthetic", "dates", "sizes", "verdict",
            "comparison"} <= set(doc)
    assert [b["label"] for b in doc["backends"]] == ["cpu-0", "cpu-1"]
    assert all(b["seconds"] > 0 for b in doc["backends"]) and doc["device_name"] is None
    assert len(doc["dates"]) == 3 and doc["sizes"] == {"R1": [120, 120], "R2": [60, 60]}
    t = doc["comparison"]["totals"]
    # 3 dates x 5 masks (CLM, MG2, SAT, EDG, IAB) x (120^2 px at R1 + 60^2 px at R2)
    assert t["masks"]["n"] == 3 * 5 * (120 * 120 + 60 * 60) and t["masks"]["share_identical"] == 1.0
    assert t["reflectance"]["share_within_1"] == 1.0 and t["reflectance"]["share_identical"] == 1.0
    assert t["reflectance"]["max_abs_diff"] == 0 and t["reflectance"]["n"] > 0
    assert doc["verdict"]["pass"] and doc["comparison"]["validity_mismatches"] == []
    assert len(doc["comparison"]["products"]) == 3
    assert work.is_dir() and list(work.iterdir()) == []  # what the run created there is removed


@pytest.mark.skipif(_gpu_problem() is None, reason="a usable GPU is present")
def test_main_without_gpu_exits_2_before_running(tmp_path, capsys):
    work = tmp_path / "work"
    code = cb.main(["--synth-size", "120", "--dates", "3", "--backends", "cpu,gpu", "--workdir", str(work),
                    "--out-json", str(tmp_path / "r.json"), "--out-md", str(tmp_path / "r.md")])
    err = capsys.readouterr().err
    assert code == 2
    assert "GPU backend cannot be used" in err and _gpu_problem() in err
    assert not work.exists() and not (tmp_path / "r.json").exists()


def test_main_refuses_bad_backends_and_a_used_workdir(tmp_path, capsys):
    args = ["--synth-size", "120", "--dates", "2", "--out-json", str(tmp_path / "r.json"),
            "--out-md", str(tmp_path / "r.md")]
    assert cb.main([*args, "--backends", "cpu"]) == 2
    assert "--backends" in capsys.readouterr().err
    work = tmp_path / "work"
    (work / "cpu-0").mkdir(parents=True)
    (work / "cpu-0" / "mine.txt").write_text("user data")
    assert cb.main([*args, "--backends", "cpu,cpu", "--workdir", str(work)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (work / "cpu-0" / "mine.txt").read_text() == "user data"
    assert sorted(p.name for p in work.iterdir()) == ["cpu-0"]


@pytest.mark.gpu
@pytest.mark.slow
def test_cpu_vs_gpu_meets_the_issue_thresholds(tmp_path):
    params = tmp_path / "params.toml"
    params.write_text("max_cloud_percentage = 100\n")
    js = tmp_path / "r.json"
    code = cb.main(["--synth-size", "240", "--dates", "4", "--seed", "2", "--backends", "cpu,gpu",
                    "--params", str(params), "--out-json", str(js), "--out-md", str(tmp_path / "r.md")])
    doc = json.loads(js.read_text())
    v = doc["verdict"]
    assert doc["device_name"]
    assert v["validity_mismatches"] == 0
    assert v["masks_share_identical"] >= 0.999, v["worst_mask_file"]
    assert v["reflectance_share_within_1"] >= 0.9999, v["worst_reflectance_file"]
    assert code == 0
