"""LIS per-date snow detection (wasp-l3a-and-lis-snow.md §2.2-2.4): hand-made cases for every branch,
LIS's own snowline unit test, a realistic DEM-ramp scene, and the CUDA kernels against their NumPy
twins (marked gpu)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja import kernels
from gpumaja.backend import CPU, Backend
from gpumaja.model.lis_params import LisParams
from gpumaja.snow import lis
from gpumaja.snow.lis import (
    dark_cloud_red,
    detect_snow,
    snow_pass1,
    snow_pass1_numpy,
    snow_pass2,
    snow_pass2_numpy,
    snowline,
)

P = LisParams()
NAN = np.nan


def _row(values, dtype=np.float32) -> np.ndarray:
    return np.array([values], dtype=dtype)


# --- intermediate and expert bit layouts agree between Python and CUDA ------------------------------


def test_bit_layout_matches_kernel_defines():
    src = (kernels.kernel_dir() / "snow.cu").read_text()
    defines = {m.group(1): int(m.group(2)) for m in re.finditer(r"#define\s+(\w+)\s+(\d+)u", src)}
    assert defines == {
        "SNOW_BIT_PASS1": lis.BIT_PASS1,
        "SNOW_BIT_ALL_CLOUD": lis.BIT_ALL_CLOUD,
        "SNOW_BIT_CLOUD_REFINE": lis.BIT_CLOUD_REFINE,
        "SNOW_BIT_BACK_TO_CLOUD": lis.BIT_BACK_TO_CLOUD,
        "SNOW_BIT_NODATA": lis.BIT_NODATA,
        "EXPERT_PASS1_SNOW": 1,
        "EXPERT_PASS2_SNOW": 2,
        "EXPERT_PASS1_CLOUD": 4,
        "EXPERT_REFINED_CLOUD": 8,
        "EXPERT_ALL_CLOUD": 16,
        "EXPERT_BAD_SLOPE": 32,
    }
    # reference table: bit n has value 2^(n-1)
    assert [lis.EXPERT_PASS1_SNOW, lis.EXPERT_PASS2_SNOW, lis.EXPERT_PASS1_CLOUD, lis.EXPERT_REFINED_CLOUD,
            lis.EXPERT_ALL_CLOUD, lis.EXPERT_BAD_SLOPE] == [1, 2, 4, 8, 16, 32]
    assert lis.REFINE_CLM_BITS == 32 | 64 | 128


def test_kernel_compiles_without_fma_when_fmad_is_off():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"NVRTC not usable: {exc}")
    prog = nvrtc.createProgram(kernels.kernel_source("snow"), "snow.cu", [], [])
    try:
        nvrtc.compileProgram(prog, ["--gpu-architecture=compute_80", *kernels.COMPILE_OPTIONS, *lis._KERNEL_OPTIONS])
        ptx = nvrtc.getPTX(prog)
    finally:
        nvrtc.destroyProgram(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    assert ".entry snow_pass1" in ptx and ".entry snow_pass2" in ptx
    assert not re.search(r"\bfma\.\w+\.f(32|64)\b", ptx)


# --- hand-made pixels: pass 1, cloud components, pass 2, final codes ----------------------------------

# (name, green, red, swir, red_nn, clm, nodata, dem, bits, SNW, FSC, expert) with the default
# thresholds n1 0.40, r1 0.20, n2 0.15, r2 0.04, r_D 0.30, r_B 0.10 and z_s = 1000 m, pass 2 on.
CASES = [
    # clear snow: NDSI 0.7/0.9 = 0.78 > 0.40, red 0.70 > 0.20 -> pass 1; FSC min(1.45*0.78-0.01, 1) = 1.
    # Above z_s it also passes the pass-2 test (LIS computes the pass-2 mask on its own): expert 1 | 2
    ("pass1 snow", 0.8, 0.70, 0.1, 0.70, 0, 0, 1500, 1, 100, 100, 1 | 2),
    ("pass1 snow below z_s", 0.8, 0.70, 0.1, 0.70, 0, 0, 900, 1, 100, 100, 1),
    # NDSI 0.45/0.55 = 0.82 but red 0.15 <= r1: pass 2 only (red 0.15 > r2, DEM 1500 > 1000)
    ("pass2 only: red", 0.5, 0.15, 0.05, 0.15, 0, 0, 1500, 0, 100, 100, 2),
    # red exactly r1 = 0.20: the strict > fails pass 1, pass 2 takes it
    ("red == r1", 0.8, 0.20, 0.1, 0.20, 0, 0, 1500, 0, 100, 100, 2),
    # NDSI 0.1/0.4 = 0.25 <= n1: pass 2; FSC 100*(1.45*0.25 - 0.01) = 35.25 -> 35
    ("pass2 only: NDSI", 0.25, 0.30, 0.15, 0.30, 0, 0, 1500, 0, 100, 35, 2),
    # same but below the snowline: no snow
    ("below z_s", 0.25, 0.30, 0.15, 0.30, 0, 0, 900, 0, 0, 0, 0),
    # DEM exactly z_s: DEM > z_s is strict
    ("at z_s", 0.25, 0.30, 0.15, 0.30, 0, 0, 1000, 0, 0, 0, 0),
    # land: NDSI (0.1-0.2)/0.3 < 0
    ("no snow", 0.1, 0.08, 0.2, 0.08, 0, 0, 1500, 0, 0, 0, 0),
    # dark MAJA cloud (red_nn 0.25 <= r_D) released; red 0.25 > r_B -> back-to-cloud, but pass 2 finds snow
    ("dark cloud -> snow", 0.5, 0.25, 0.05, 0.25, 2, 0, 1500, 2 | 8, 100, 100, 2 | 4 | 16),
    # dark cloud released, land below, red 0.08 <= r_B: no snow
    ("dark cloud -> no snow", 0.1, 0.08, 0.12, 0.20, 2, 0, 1500, 2, 0, 0, 4 | 16),
    # dark cloud released, no snow, red 0.15 > r_B: back to cloud
    ("dark cloud -> back to cloud", 0.12, 0.15, 0.14, 0.20, 2, 0, 1500, 2 | 8, 205, 205, 4 | 16),
    # bright cloud (red_nn 0.6 > r_D) stays cloud even with a snow-like NDSI
    ("bright cloud", 0.8, 0.60, 0.1, 0.60, 2, 0, 1500, 2 | 4 | 8, 205, 205, 4 | 8 | 16),
    # shadows (bits 5, 6) and cirrus (bit 7) stay cloud although dark and below r_B, with snow-like NDSI
    ("shadow in", 0.5, 0.08, 0.05, 0.05, 32, 0, 1500, 2 | 4, 205, 205, 4 | 8 | 16),
    ("shadow out", 0.5, 0.08, 0.05, 0.05, 64, 0, 1500, 2 | 4, 205, 205, 4 | 8 | 16),
    ("cirrus", 0.5, 0.08, 0.05, 0.05, 128, 0, 1500, 2 | 4, 205, 205, 4 | 8 | 16),
    ("shadow + cloud bits", 0.5, 0.08, 0.05, 0.05, 32 | 2, 0, 1500, 2 | 4, 205, 205, 4 | 8 | 16),
    # the same pixel with only a plain cloud bit is released and becomes pass-2 snow
    ("plain dark cloud", 0.5, 0.08, 0.05, 0.05, 1, 0, 1500, 2, 100, 100, 2 | 4 | 16),
    # nodata: the mask, or a NaN band; nodata wins over snow and cloud
    ("nodata mask", 0.8, 0.70, 0.1, 0.70, 0, 1, 1500, 16, 255, 255, 0),
    ("nodata cloud", 0.8, 0.70, 0.1, 0.70, 2, 1, 1500, 16, 255, 255, 0),
    ("NaN swir", 0.8, 0.70, NAN, 0.70, 0, 0, 1500, 16, 255, 255, 0),
    ("NaN green", NAN, 0.70, 0.1, 0.70, 0, 0, 1500, 16, 255, 255, 0),
    ("NaN red", 0.8, NAN, 0.1, 0.70, 0, 0, 1500, 16, 255, 255, 0),
    # NaN DEM never passes DEM > z_s (pass-1 snow does not need the DEM)
    ("NaN dem pass2", 0.25, 0.30, 0.15, 0.30, 0, 0, NAN, 0, 0, 0, 0),
    ("NaN dem pass1", 0.8, 0.70, 0.1, 0.70, 0, 0, NAN, 1, 100, 100, 1),
]
NAMES = [c[0] for c in CASES]


def _case_arrays():
    cols = list(zip(*CASES, strict=True))
    g, r, s, rnn = (_row(c) for c in cols[1:5])
    clm = _row(cols[5], np.uint8)
    nod = _row(cols[6], np.uint8)
    dem = _row(cols[7])
    exp = [np.array(c, dtype=np.uint8) for c in cols[8:12]]
    return g, r, s, rnn, clm, nod, dem, exp


def test_pass1_bits_hand_cases():
    g, r, s, rnn, clm, nod, _, (bits, _, _, _) = _case_arrays()
    got = snow_pass1(g, r, s, rnn, clm, nod, P, CPU)
    assert got.dtype == np.uint8
    for name, want, have in zip(NAMES, bits, got[0], strict=True):
        assert have == want, f"{name}: bits {have} != {want}"


def test_pass2_codes_fsc_expert_hand_cases():
    g, r, s, rnn, clm, nod, dem, (_, snw, fsc, expert) = _case_arrays()
    bits = snow_pass1(g, r, s, rnn, clm, nod, P, CPU)
    got_snw, got_fsc, got_exp = snow_pass2(g, r, s, dem, bits, 1000.0, True, P, CPU)
    for name, a, b, c, x, y, z in zip(NAMES, snw, fsc, expert, got_snw[0], got_fsc[0], got_exp[0], strict=True):
        assert (x, y, z) == (a, b, c), f"{name}: (SNW, FSC, expert) {(x, y, z)} != {(a, b, c)}"


def test_pass2_off_keeps_pass1_only():
    g, r, s, rnn, clm, nod, dem, (_, snw, _, expert) = _case_arrays()
    bits = snow_pass1(g, r, s, rnn, clm, nod, P, CPU)
    got_snw, _, got_exp = snow_pass2(g, r, s, dem, bits, 1000.0, False, P, CPU)
    for name, want, have, e_want, e_have in zip(NAMES, snw, got_snw[0], expert, got_exp[0], strict=True):
        e_want = int(e_want)
        if e_want & lis.EXPERT_PASS2_SNOW:  # pass-2 bit cleared; pass-2-only snow falls back to cloud / no snow
            assert (have == 100) == bool(e_want & lis.EXPERT_PASS1_SNOW), name
            assert e_have == e_want & ~lis.EXPERT_PASS2_SNOW, name
        else:
            assert have == want, name
            assert e_have == e_want, name
    # the dark cloud that pass 2 would have called snow is back-to-cloud: 205
    assert got_snw[0][NAMES.index("dark cloud -> snow")] == 205
    assert got_snw[0][NAMES.index("pass2 only: red")] == 0


def test_strict_cloud_mask_forbids_snow_on_all_cloud():
    g, r, s, rnn, clm, nod, dem, (_, snw, _, _) = _case_arrays()
    strict = dataclasses.replace(P, strict_cloud_mask=True)
    bits = snow_pass1(g, r, s, rnn, clm, nod, strict, CPU)
    got, _, _ = snow_pass2(g, r, s, dem, bits, 1000.0, True, strict, CPU)
    assert got[0][NAMES.index("dark cloud -> snow")] == 205  # back-to-cloud
    assert got[0][NAMES.index("plain dark cloud")] == 0  # red 0.08 <= r_B
    clear = [i for i, c in enumerate(CASES) if c[5] == 0]
    np.testing.assert_array_equal(got[0][clear], snw[clear])


def test_expert_bad_slope_from_mg2():
    g, r, s, rnn, clm, nod, dem, (_, _, _, expert) = _case_arrays()
    bits = snow_pass1(g, r, s, rnn, clm, nod, P, CPU)
    n = g.shape[1]
    mg2 = _row([63, 64, 65, 255] * (n // 4) + [64] * (n % 4), np.uint8)
    _, _, got = snow_pass2(g, r, s, dem, bits, 1000.0, True, P, CPU, mg2=mg2)
    want = expert | np.where(mg2[0] >= 64, 32, 0).astype(np.uint8)
    want[nod[0] != 0] = 0
    want[np.isnan(g[0]) | np.isnan(r[0]) | np.isnan(s[0])] = 0
    np.testing.assert_array_equal(got[0], want)


@pytest.mark.parametrize(("green", "swir", "fsc"), [
    (0.3, 0.2, 28),  # NDSI 0.20: 100 (1.45*0.20 - 0.01) = 28
    (0.5, 0.3, 35),  # NDSI 0.25: 35.25
    (0.4, 0.1, 86),  # NDSI 0.60: 86
    (0.169, 0.031, 99),  # NDSI 0.69: 99.05
    (0.85, 0.15, 100),  # NDSI 0.70: 100.5 capped at 100
    (0.9, 0.0, 100),  # NDSI 1: 144 capped
])
def test_fsc_by_hand(green, swir, fsc):
    g, s, r = _row([green]), _row([swir]), _row([0.3])
    bits = snow_pass1(g, r, s, r, _row([0], np.uint8), None, P, CPU)
    snw, got, _ = snow_pass2(g, r, s, _row([2000.0]), bits, 1000.0, True, P, CPU)
    assert snw[0, 0] == 100
    assert got[0, 0] == fsc


def test_fsc_clipped_at_one_for_low_ndsi_snow():
    # with n2 lowered to -0.5, NDSI 0 is pass-2 snow: 100 (1.45*0 - 0.01) = -1 -> 1 (1..100 for snow)
    low = dataclasses.replace(P, ndsi_pass2=-0.5)
    g = s = _row([0.3])
    bits = snow_pass1(g, g, s, g, _row([0], np.uint8), None, low, CPU)
    snw, fsc, _ = snow_pass2(g, g, s, _row([2000.0]), bits, 1000.0, True, low, CPU)
    assert (snw[0, 0], fsc[0, 0]) == (100, 1)


@settings(max_examples=40, deadline=None)
@given(
    refl=hnp.arrays(np.float32, (3, 4, 5), elements=st.one_of(st.just(np.nan), st.floats(-0.125, 1.25, width=32))),
    clm=hnp.arrays(np.uint8, (4, 5)),
    dem=hnp.arrays(np.float32, (4, 5), elements=st.floats(0, 3000, width=32)),
    zs=st.sampled_from([-1.0, 800.0, 1500.0]),
    run=st.booleans(),
)
def test_codes_are_consistent(refl, clm, dem, zs, run):
    g, r, s = refl
    bits = snow_pass1_numpy(g, r, s, dark_cloud_red(r, 2, np), clm, None, P)
    snw, fsc, expert = snow_pass2_numpy(g, r, s, dem, bits, zs, run, P)
    assert set(np.unique(snw)) <= {0, 100, 205, 255}
    nodata = np.isnan(g) | np.isnan(r) | np.isnan(s)
    np.testing.assert_array_equal(snw == 255, nodata)
    np.testing.assert_array_equal(fsc == 255, nodata)
    np.testing.assert_array_equal(fsc == 205, snw == 205)
    np.testing.assert_array_equal((fsc >= 1) & (fsc <= 100), snw == 100)
    np.testing.assert_array_equal((expert & 3) != 0, snw == 100)
    np.testing.assert_array_equal((expert & 16) != 0, (clm != 0) & ~nodata)
    np.testing.assert_array_equal((expert & 4) != 0, (expert & 16) != 0)
    if not run:
        assert not (expert & 2).any()
    # pass-1 snow never lies on the original cloud mask
    assert not ((expert & 1) != 0)[clm != 0].any()


# --- §2.2 dark-cloud red ------------------------------------------------------------------------------


def test_dark_cloud_red_block_mean_nearest_neighbour():
    red = np.arange(5 * 6, dtype=np.float32).reshape(5, 6) / 100
    red[0, 0] = np.nan
    red[4, 4:] = np.nan
    got = dark_cloud_red(red, 4, np)
    # blocks: rows 0-3 | 4, cols 0-3 | 4-5 (ceil-sized, partial at the edges)
    b00 = (np.sum(np.arange(24).reshape(4, 6)[:, :4]) - 0) / 15 / 100  # 16 pixels, (0, 0) is NaN
    b01 = np.sum(np.arange(24).reshape(4, 6)[:, 4:]) / 8 / 100
    b10 = (24 + 25 + 26 + 27) / 4 / 100
    b11 = np.nan  # (4, 4) and (4, 5) are both NaN
    want = np.empty((5, 6))
    want[:4, :4], want[:4, 4:], want[4:, :4], want[4:, 4:] = b00, b01, b10, b11
    assert got.shape == (5, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dark_cloud_red_factor_one_is_identity():
    red = np.random.default_rng(0).random((3, 4)).astype(np.float32)
    np.testing.assert_array_equal(dark_cloud_red(red, 1, np), red)
    with pytest.raises(ValueError):
        dark_cloud_red(red, 0, np)


# --- §2.3 snowline ------------------------------------------------------------------------------------


def _lis_unit_test_image(top_pixel_z: float = 81.0):
    """LIS test/histo_utils_snowline_internal_test.cxx: 10x10, 90 pixels at z=0 clear no-snow,
    5 at z=70 cloud + snow, 5 at z=81 clear snow (the pixel positions do not matter)."""
    dem = np.zeros((10, 10), np.float32)
    snow = np.zeros((10, 10), bool)
    cloud = np.zeros((10, 10), bool)
    dem.flat[10:15] = 70
    snow.flat[10:15] = True
    cloud.flat[10:15] = True
    dem.flat[50:55] = top_pixel_z
    snow.flat[50:55] = True
    return dem, snow, cloud


def test_snowline_reference_unit_test():
    dem, snow, cloud = _lis_unit_test_image()
    p = dataclasses.replace(P, fsnow_lim=0.0, fclear_lim=0.0)
    # bins of 20 m: bin 0 clear no snow (snow/clear 0, not > 0), bins 1-2 empty, bin 3 all cloud
    # (clear fraction 0, not > 0), bin 4 [80, 100] clear snow -> i = 4, z_s = 0 + (4 - 2) * 20 = 40
    assert snowline(dem, snow, cloud, np.ones_like(snow), p, np, dz=20, zmin=0, zmax=100) == 40.0


def test_snowline_pixel_at_max_falls_in_last_bin():
    dem, snow, cloud = _lis_unit_test_image(top_pixel_z=100.0)
    p = dataclasses.replace(P, fsnow_lim=0.0, fclear_lim=0.0)
    assert snowline(dem, snow, cloud, np.ones_like(snow), p, np, dz=20, zmin=0, zmax=100) == 40.0
    # without the overrides the range is the data's own [0, 100]: same result
    assert snowline(dem, snow, cloud, np.ones_like(snow), p, np, dz=20) == 40.0
    # a pixel above zmax is not counted: no bin qualifies
    assert snowline(dem, snow, cloud, np.ones_like(snow), p, np, dz=20, zmin=0, zmax=99) == -1.0


def test_snowline_invalid_pixels_are_ignored():
    dem, snow, cloud = _lis_unit_test_image()
    p = dataclasses.replace(P, fsnow_lim=0.0, fclear_lim=0.0)
    valid = np.ones_like(snow)
    valid.flat[50:55] = False  # the clear snow pixels
    assert snowline(dem, snow, cloud, valid, p, np, dz=20, zmin=0, zmax=100) == -1.0
    dem2 = dem.copy()
    dem2.flat[50:55] = np.nan  # NaN DEM: same
    assert snowline(dem2, snow, cloud, np.ones_like(snow), p, np, dz=20, zmin=0, zmax=100) == -1.0


def test_snowline_default_limits_are_strict():
    # one column per 100 m bin (min 1000, max 1500: 5 bins), 10 pixels per bin
    dem = np.repeat(np.array([1000, 1100, 1200, 1300, 1400, 1499, 1500], np.float32)[None], 10, 0)
    snow = np.zeros(dem.shape, bool)
    cloud = np.zeros(dem.shape, bool)
    snow[:1, 2] = True  # bin 2: snow/clear = 1/10 = 0.1, not > 0.1
    cloud[:9, 3] = True  # bin 3: clear 1/10 = 0.1, not > 0.1 (its one clear pixel is snow)
    snow[9, 3] = True
    snow[:2, 4] = True  # bin 4 ([1400, 1500], 30 pixels): snow/clear = 2/30 < 0.1
    valid = np.ones(dem.shape, bool)
    assert snowline(dem, snow, cloud, valid, P, np) == -1.0
    snow[:4, 4] = True  # 4/30 > 0.1 -> i = 4, z_s = 1000 + (4 - 2) * 100
    assert snowline(dem, snow, cloud, valid, P, np) == 1200.0
    snow[:2, 2] = True  # bin 2: 2/10 > 0.1 -> i = 2, z_s = 1000
    assert snowline(dem, snow, cloud, valid, P, np) == 1000.0
    snow[:2, 0] = True  # i = 0: i - 2 clamped at bin 0 -> z_s = 1000
    assert snowline(dem, snow, cloud, valid, P, np) == 1000.0


def test_snowline_bins_span_min_to_max():
    # min 0, max 250, dz 100: nbins = 2 of width 125 (ITK histogram from min to max);
    # snow first in bin 1 -> bin max(1-2, 0) = 0, centre 62.5, z_s = floor(62.5 - 50) = 12
    dem = np.array([[0, 100, 130, 250]], np.float32)
    snow = np.array([[False, False, True, True]])
    none = np.zeros_like(snow)
    assert snowline(dem, snow, none, ~none, P, np) == 12.0


def test_snowline_none():
    dem = np.full((3, 3), 500.0, np.float32)
    snow = np.ones((3, 3), bool)
    none = np.zeros_like(snow)
    assert snowline(dem, snow, none, ~none, P, np) == -1.0  # max - min = 0 < dz: no bin
    dem[0, 0] = 599.0
    assert snowline(dem, snow, none, ~none, P, np) == -1.0  # 99 m < dz
    assert snowline(dem, snow, none, none, P, np) == -1.0  # no valid pixel


# --- §2.3 the chain: pass-2 gating and a realistic scene --------------------------------------------


def _gate_scene(n_snow: int):
    """40 x 51 pixels (2040), DEM 1000 + 20 x (1000..2000 m), land everywhere; `n_snow` pass-1 snow
    pixels at x = 50 (DEM 2000) and pass-2-only candidates (NDSI 0.25, red 0.10) at x = 40..44."""
    h, w = 40, 51
    dem = np.repeat((1000 + 20 * np.arange(w, dtype=np.float32))[None], h, 0)
    g = np.full((h, w), 0.08, np.float32)
    r = np.full((h, w), 0.06, np.float32)
    s = np.full((h, w), 0.15, np.float32)
    g[:, 40:45], s[:, 40:45], r[:, 40:45] = 0.25, 0.15, 0.10
    g[:n_snow, 50], s[:n_snow, 50], r[:n_snow, 50] = 0.9, 0.1, 0.6
    clm = np.zeros((h, w), np.uint8)
    return g, r, s, clm, dem


@pytest.mark.parametrize(("n_snow", "ran"), [(2, False), (3, True)])
def test_pass2_runs_only_above_fsnow_total_lim(n_snow, ran):
    # 2 / 2040 = 0.00098 <= 0.001: skipped; 3 / 2040 = 0.00147 > 0.001: runs.
    # fsnow_lim 0 so that a snowline exists: first snow bin i = 9 ([1900, 2000]) -> z_s = 1000 + 700.
    p = dataclasses.replace(P, fsnow_lim=0.0)
    g, r, s, clm, dem = _gate_scene(n_snow)
    res = detect_snow(g, r, s, clm, dem, None, p, 4, CPU)
    assert res.snowline_m == 1700.0
    assert res.pass2_ran is ran
    assert (res.snw[:, 40:45] == 100).all() == ran
    assert (res.snw[:, 40:45] == 0).all() == (not ran)
    assert (res.snw[:n_snow, 50] == 100).all()
    n_snow_px = n_snow + (200 if ran else 0)
    assert res.snow_percent == pytest.approx(100 * n_snow_px / 2040)
    assert res.cloud_percent == 0.0


def test_pass2_skipped_without_snowline():
    # fsnow_lim 1: snow/clear can never exceed it -> z_s = -1 -> no pass 2 despite plenty of snow
    p = dataclasses.replace(P, fsnow_lim=1.0)
    g, r, s, clm, dem = _gate_scene(40)
    res = detect_snow(g, r, s, clm, dem, None, p, 4, CPU)
    assert res.snowline_m == -1.0
    assert res.pass2_ran is False
    assert (res.snw[:, 40:45] == 0).all()


H, W = 64, 201
FACTOR = 8


def _realistic_scene():
    """DEM ramp 500 + 10 x m (500..2500), snow (NDSI 0.8, red 0.6) from 1500 m, partial snow
    (NDSI ~0.30, red 0.15: pass 2 only) from 1200 to 1500 m, grass below; a bright cloud, a dark MAJA
    cloud over snow, a cloud shadow over snow, nodata rows, MG2 bad-slope pixels."""
    x = np.arange(W)
    dem = np.repeat((500 + 10 * x).astype(np.float32)[None], H, 0)
    g = np.full((H, W), 0.08, np.float32)  # grass: NDSI (0.08-0.15)/0.23 = -0.30
    r = np.full((H, W), 0.06, np.float32)
    s = np.full((H, W), 0.15, np.float32)
    partial = (dem >= 1200) & (dem < 1500)
    g[partial], s[partial], r[partial] = 0.27, 0.145, 0.15  # NDSI 0.125/0.415 = 0.301
    full = dem >= 1500
    g[full], s[full], r[full] = 0.9, 0.1, 0.6  # NDSI 0.8
    clm = np.zeros((H, W), np.uint8)
    bright = (slice(8, 16), slice(160, 176))  # blocks of 8 aligned: red_nn = 0.7
    clm[bright] = 2
    g[bright], s[bright], r[bright] = 0.75, 0.5, 0.7
    dark = (slice(40, 48), slice(176, 192))  # red_nn = 0.25 <= r_D: released, NDSI 0.82 -> pass-2 snow
    clm[dark] = 2
    g[dark], s[dark], r[dark] = 0.5, 0.05, 0.25
    shadow = (slice(24, 32), slice(120, 136))
    clm[shadow] = 32 | 2
    g[shadow], s[shadow], r[shadow] = 0.5, 0.07, 0.35
    nodata = np.zeros((H, W), np.uint8)
    nodata[60:, :] = 1
    s[58, :10] = np.nan
    mg2 = np.zeros((H, W), np.uint8)
    mg2[:, ::7] = 64
    return g, r, s, clm, dem, nodata, mg2, (partial, full, bright, dark, shadow)


def _realistic_expected():
    _, _, s, _, dem, nodata, mg2, (partial, full, bright, dark, shadow) = _realistic_scene()
    z_s = 1300.0  # first snow bin [1500, 1600) is i = 10 -> 500 + (10 - 2) * 100
    snw = np.zeros((H, W), np.uint8)
    fsc = np.zeros((H, W), np.uint8)
    exp = np.zeros((H, W), np.uint8)
    p2 = partial & (dem > z_s)
    snw[p2], fsc[p2], exp[p2] = 100, 43, 2  # 100 (1.45 * 0.301 - 0.01) = 42.7
    snw[full], fsc[full], exp[full] = 100, 100, 1 | 2  # 1.45 * 0.8 - 0.01 > 1; above z_s: pass-2 test too
    snw[bright], fsc[bright], exp[bright] = 205, 205, 4 | 8 | 16
    snw[shadow], fsc[shadow], exp[shadow] = 205, 205, 4 | 8 | 16
    snw[dark], fsc[dark], exp[dark] = 100, 100, 2 | 4 | 16
    exp |= np.where(mg2 >= 64, 32, 0).astype(np.uint8)
    nd = (nodata != 0) | np.isnan(s)
    snw[nd], fsc[nd], exp[nd] = 255, 255, 0
    return z_s, snw, fsc, exp


def test_realistic_scene_cpu():
    g, r, s, clm, dem, nodata, mg2, _ = _realistic_scene()
    z_s, snw, fsc, exp = _realistic_expected()
    res = detect_snow(g, r, s, clm, dem, nodata, P, FACTOR, CPU, mg2=mg2)
    assert res.snowline_m == z_s
    assert res.pass2_ran
    np.testing.assert_array_equal(res.snw, snw)
    np.testing.assert_array_equal(res.fsc, fsc)
    np.testing.assert_array_equal(res.expert, exp)
    assert res.snow_percent == pytest.approx(100 * np.count_nonzero(snw == 100) / (H * W))
    assert res.cloud_percent == pytest.approx(100 * np.count_nonzero(snw == 205) / (H * W))
    # partial snow at and below z_s stays no-snow; only pass 2 catches the rest
    assert (res.snw[:60][dem[:60] == 1300] == 0).all()
    assert (res.snw[:58][dem[:58] == 1310] == 100).all()


def test_realistic_scene_without_pass2_loses_partial_snow():
    g, r, s, clm, dem, nodata, mg2, _ = _realistic_scene()
    s2 = s.copy()
    s2[(dem >= 1500)] = 0.85  # no pass-1 snow anywhere -> fraction 0 -> no pass 2
    res = detect_snow(g, r, s2, clm, dem, nodata, P, FACTOR, CPU, mg2=mg2)
    assert not res.pass2_ran
    assert not (res.snw == 100).any()


def test_detect_snow_checks_shapes():
    g, r, s, clm, dem, nodata, _, _ = _realistic_scene()
    with pytest.raises(ValueError, match="shape"):
        detect_snow(g, r, s, clm[:10], dem, nodata, P, FACTOR, CPU)


# --- GPU: kernels == NumPy twins ----------------------------------------------------------------------


def _gpu() -> Backend:
    import cupy

    return Backend("gpu", cupy, "test GPU")


def _random_inputs(seed: int, shape=(97, 131)):
    rng = np.random.default_rng(seed)
    g, r, s = (rng.uniform(-0.05, 1.0, shape).astype(np.float32) for _ in range(3))
    for a in (g, r, s):
        a[rng.random(shape) < 0.03] = np.nan
    # values straddling the thresholds in float32
    r.flat[::17] = np.float32(P.red_pass1)
    r.flat[5::19] = np.float32(P.red_back_to_cloud)
    g.flat[::23] = s.flat[::23]  # NDSI 0
    g.flat[1::29] = -s.flat[1::29]  # G + S = 0
    clm = (np.arange(shape[0] * shape[1]) % 256).astype(np.uint8).reshape(shape)  # every CLM byte
    rng.shuffle(clm.reshape(-1))
    nodata = (rng.random(shape) < 0.02).astype(np.uint8)
    dem = rng.uniform(0, 3000, shape).astype(np.float32)
    dem[rng.random(shape) < 0.02] = np.nan
    dem.flat[::31] = 1300.0
    mg2 = rng.integers(0, 256, shape).astype(np.uint8)
    return g, r, s, clm, nodata, dem, mg2


@pytest.mark.gpu
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gpu_passes_match_twins_random(seed):
    import cupy

    g, r, s, clm, nodata, dem, mg2 = _random_inputs(seed)
    rnn = dark_cloud_red(r, 5, np)
    bits_c = snow_pass1_numpy(g, r, s, rnn, clm, nodata, P)
    bits_g = snow_pass1(*[cupy.asarray(a) for a in (g, r, s, rnn, clm, nodata)], P, _gpu())
    assert isinstance(bits_g, cupy.ndarray)
    np.testing.assert_array_equal(bits_g.get(), bits_c)
    for params in (P, dataclasses.replace(P, strict_cloud_mask=True)):
        for z_s, run, m in ((1300.0, True, mg2), (1300.0, False, None), (-1.0, True, None)):
            want = snow_pass2_numpy(g, r, s, dem, bits_c, z_s, run, params, mg2=m)
            got = snow_pass2(*[cupy.asarray(a) for a in (g, r, s, dem, bits_c)], z_s, run, params, _gpu(),
                             mg2=None if m is None else cupy.asarray(m))
            for a, b in zip(got, want, strict=True):
                assert isinstance(a, cupy.ndarray)
                np.testing.assert_array_equal(a.get(), b)


@pytest.mark.gpu
def test_gpu_dark_cloud_red_matches_cpu():
    import cupy

    _, r, *_ = _random_inputs(4, shape=(100, 75))
    want = dark_cloud_red(r, 12, np)
    got = dark_cloud_red(cupy.asarray(r), 12, cupy)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_allclose(got.get(), want, rtol=1e-6, equal_nan=True)


@pytest.mark.gpu
def test_gpu_realistic_scene_matches_cpu():
    import cupy

    g, r, s, clm, dem, nodata, mg2, _ = _realistic_scene()
    cpu = detect_snow(g, r, s, clm, dem, nodata, P, FACTOR, CPU, mg2=mg2)
    gpu = detect_snow(*[cupy.asarray(a) for a in (g, r, s, clm, dem, nodata)], P, FACTOR, _gpu(),
                      mg2=cupy.asarray(mg2))
    z_s, snw, _, _ = _realistic_expected()
    for name in ("snw", "fsc", "expert"):
        a = getattr(gpu, name)
        assert isinstance(a, cupy.ndarray)
        np.testing.assert_array_equal(a.get(), getattr(cpu, name))
    np.testing.assert_array_equal(gpu.snw.get(), snw)
    assert (gpu.snowline_m, gpu.pass2_ran) == (cpu.snowline_m, cpu.pass2_ran) == (z_s, True)
    assert gpu.snow_percent == cpu.snow_percent
    assert gpu.cloud_percent == cpu.cloud_percent
