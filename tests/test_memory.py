"""Memory plan (gpumaja/pipeline/memory.py) from its documented byte model, computed here by hand, and
the row-strip resampling of pipeline/l2a_group.py against the whole-image resampling (maja-l2a.md §6,
§1.11). The whole-date strips == whole test is in tests/test_l2a_series.py (it needs a product)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpumaja.backend import CPU
from gpumaja.masks.morphology import resample_float, resample_mask
from gpumaja.model.params import L2Params
from gpumaja.pipeline.l2a_group import float_rows, mask_rows, strip_spans
from gpumaja.pipeline.memory import (
    InsufficientMemoryError,
    free_bytes_for,
    host_available_bytes,
    plan_memory,
    shadow_bytes,
)

# R1 4 bands 1200 x 1200, R2 6 bands 600 x 600, coarse 50 x 50 (f = 24 and 12)
SHAPES = {"R1": (4, 1200, 1200), "R2": (6, 600, 600)}
# the figures below are those of MAJA's coarse masks; the 10/20 m cloud evidence has its own test
COARSE_ONLY = L2Params(fine_cloud_masks=False)
COARSE = (50, 50)
# by hand from the module docstring:
DATE_INPUT = 4 * 1200 * 1200 * 5 + 6 * 600 * 600 * 5  # TOA f32 + saturated bool = 39_600_000
READ_TEMP = 4 * 1200 * 1200 * 3  # DN u16 + flags u8 of the largest group = 17_280_000
COARSE_B = (10 * 8 * 4 + 64 * 4) * 50 * 50  # 1_440_000
COMPOSITE_B = (3 * 10 * 4 + 10 * 4 + 2 * 10 + 4 + 2) * 50 * 50  # 465_000
R1_PX = 4 * 12 + 55  # 103 bytes per fine pixel in group_products
R2_PX = 6 * 12 + 55  # 127
WHOLE_R1 = R1_PX * 1200 * 1200  # 148_320_000
HOST = (4 * 8 + 25) * 1200 * 1200 + (6 * 8 + 25) * 600 * 600  # CPU outputs + terrain: 108_360_000
BASE = DATE_INPUT + COARSE_B + COMPOSITE_B  # 41_505_000
SAFETY = 1.25
# cloud-shadow stage, every one of the 2_500 coarse px cloudy, 33 altitudes: 82_500 rays, one chunk (< 2**22):
# 109 B per px + 72 (GPU) / 104 (CPU) B per pair x 82_500 pairs at most + 29 B per ray + 136 B per chunk px,
# and on the CPU the NumPy twin's 256 B per ray of its sub-chunk (82_500 < 2**18 rays)
SHADOW_GPU = 109 * 2500 + 72 * 82_500 + 29 * 82_500 + 136 * 2500  # 8_945_000
SHADOW_CPU = 109 * 2500 + 104 * 82_500 + 29 * 82_500 + 136 * 2500 + 256 * 82_500  # 32_705_000


def test_everything_fits_read_ahead_two():
    plan = plan_memory(5, SHAPES, COARSE, 10 * 2**30, is_gpu=True, params=COARSE_ONLY)
    assert plan.read_ahead == 2 and plan.strip_rows == {"R1": None, "R2": None} and plan.resident_coarse
    assert plan.need_bytes == BASE + 2 * DATE_INPUT + READ_TEMP + WHOLE_R1 == 286_305_000


def test_read_ahead_is_limited_by_the_dates():
    assert plan_memory(1, SHAPES, COARSE, 10 * 2**30, True, params=COARSE_ONLY).read_ahead == 0
    assert plan_memory(2, SHAPES, COARSE, 10 * 2**30, True, params=COARSE_ONLY).read_ahead == 1


def test_read_ahead_shrinks_before_strips():
    one = int(SAFETY * 260e6)  # r=2 needs 286.3 MB, r=1 246.7 MB
    plan = plan_memory(5, SHAPES, COARSE, one, True, params=COARSE_ONLY)
    assert plan.read_ahead == 1 and plan.strip_rows == {"R1": None, "R2": None}
    zero = int(SAFETY * 200e6)  # r=0 needs 189.8 MB
    plan = plan_memory(5, SHAPES, COARSE, zero, True, params=COARSE_ONLY)
    assert plan.read_ahead == 0 and plan.strip_rows == {"R1": None, "R2": None}
    assert plan.need_bytes == BASE + WHOLE_R1


def test_strips_when_the_whole_group_does_not_fit():
    free = int(SAFETY * 100e6)  # budget 100 MB, 58.495 MB left after the base
    plan = plan_memory(5, SHAPES, COARSE, free, True, params=COARSE_ONLY)
    # R1: 58_495_000 / (103 * 1200) = 473.3 rows -> 456 (19 coarse rows of 24); R2 fits whole (45.72 MB)
    assert plan.read_ahead == 0 and plan.resident_coarse
    assert plan.strip_rows == {"R1": 456, "R2": None}
    assert plan.need_bytes == BASE + R1_PX * 1200 * 456 <= free / SAFETY


def test_composite_leaves_the_gpu_only_when_that_makes_it_fit():
    free = int(SAFETY * 50.2e6)
    # resident: 8.695 MB left < the shadow stage's 8.945 MB; on the host: 9.16 MB -> R1 74 rows -> 72 (3
    # coarse rows of 24), R2 (45.72 MB whole) 120 rows of 76_200 B, a multiple of 12
    plan = plan_memory(5, SHAPES, COARSE, free, True, params=COARSE_ONLY)
    assert plan.resident_coarse is False and plan.read_ahead == 0 and plan.shadow_on_device
    assert plan.strip_rows == {"R1": 72, "R2": 120}
    assert plan.need_bytes == DATE_INPUT + COARSE_B + R2_PX * 600 * 120 == 50_184_000


def test_the_shadow_stage_leaves_the_gpu_only_when_nothing_else_fits():
    # 49.9 MB: 8.395 MB left with the composite on the device, 8.86 MB without: both < the shadow stage's
    # 8.945 MB; with the shadow stage on the host and the composite on the device: R1 8_395_000 / 123_600
    # = 67 rows -> 48 (2 coarse rows of 24), R2 8_395_000 / 76_200 = 110 rows -> 108 (a multiple of 12)
    plan = plan_memory(5, SHAPES, COARSE, int(SAFETY * 49.9e6), True, params=COARSE_ONLY)
    assert plan.shadow_on_device is False and plan.resident_coarse and plan.read_ahead == 0
    assert plan.strip_rows == {"R1": 48, "R2": 108}
    assert plan.need_bytes == BASE + R2_PX * 600 * 108 == 49_734_600
    # 44.2 MB: resident, 2.695 MB left -> 21 rows of R1 < 24; both on the host: 3.16 MB -> R1 3_160_000 /
    # 123_600 = 25 rows -> 24, R2 3_160_000 / 76_200 = 41 -> 36
    plan = plan_memory(5, SHAPES, COARSE, int(SAFETY * 44.2e6), True, params=COARSE_ONLY)
    assert plan.shadow_on_device is False and plan.resident_coarse is False and plan.read_ahead == 0
    assert plan.strip_rows == {"R1": 24, "R2": 36}
    assert plan.need_bytes == DATE_INPUT + COARSE_B + R1_PX * 1200 * 24 == 44_006_400
    # 44.0 MB: both on the host, 2.96 MB left < one coarse row of R1 (2_966_400 B)
    with pytest.raises(InsufficientMemoryError, match=r"GPU memory.*coarse row \(0.00 GiB\), with the composite "
                       r"and the cloud-shadow stage on the host, need 0.05 GiB"):  # 44_006_400 x 1.25 B
        plan_memory(5, SHAPES, COARSE, int(SAFETY * 44.0e6), True, params=COARSE_ONLY)


def test_the_cpu_keeps_the_shadow_stage_in_its_budget():
    # base + outputs = 149_865_000; 200 MB: 50.135 MB left >= the CPU's shadow stage (32.705 MB); R1
    # 50_135_000 / 123_600 = 405 rows -> 384, R2 whole (45.72 MB)
    plan = plan_memory(5, SHAPES, COARSE, int(SAFETY * 200e6), False, params=COARSE_ONLY)
    assert plan.shadow_on_device and plan.strip_rows == {"R1": 384, "R2": None} and plan.read_ahead == 0
    assert plan.need_bytes == BASE + HOST + R1_PX * 1200 * 384 == 197_327_400
    # 180 MB: 30.135 MB left would hold 240 rows of R1 but not the shadow stage, which stays counted
    with pytest.raises(InsufficientMemoryError, match=r"host memory.*cloud-shadow stage \(0.03 GiB\)"):
        plan_memory(5, SHAPES, COARSE, int(SAFETY * 180e6), False, params=COARSE_ONLY)


def test_a_full_s2_tile_fits_a_gpu_with_7_gib_free():
    # 10 m: 4 bands 10980^2, 20 m: 6 bands 5490^2, 60 m: 3 bands 1830^2; coarse 120 m: 915^2 = 837_225 px
    shapes = {"R1": (4, 10980, 10980), "R2": (6, 5490, 5490), "R3": (3, 1830, 1830)}
    factors = {"R1": 12, "R2": 6, "R3": 2}
    date_input = (4 * 10980**2 + 6 * 5490**2 + 3 * 1830**2) * 5  # 3_365_644_500
    coarse = (13 * 8 * 4 + 64 * 4) * 837_225  # 562_615_200
    comp = (3 * 13 * 4 + 10 * 4 + 2 * 10 + 4 + 2) * 837_225  # 185_863_950
    shadow = 109 * 837_225 + 72 * 33 * 837_225 + 29 * (2**22 // 33 * 33) + 136 * (2**22 // 33)  # 2_219_424_425
    free = 7 * 2**30
    budget = free / SAFETY  # 6_012_954_214.4
    left = budget - (date_input + coarse + comp)  # 1_898_830_564.4
    assert left < shadow and left + comp < shadow  # the shadow stage fits on the device in neither placement
    plan = plan_memory(20, shapes, (915, 915), free, True, factors=factors, params=COARSE_ONLY)
    # R1 1_898_830_564 / (103 * 10980) = 1679 rows -> 1668; R2 / (127 * 5490) = 2723 -> 2718; R3 whole (305 MB)
    assert plan.shadow_on_device is False and plan.resident_coarse and plan.read_ahead == 0
    assert plan.strip_rows == {"R1": 1668, "R2": 2718, "R3": None}
    assert plan.need_bytes == date_input + coarse + comp + 127 * 5490 * 2718 == 6_009_194_790
    # 7.5 GiB: 2.43 GB left, the shadow stage stays on the device
    assert plan_memory(20, shapes, (915, 915), int(7.5 * 2**30), True, factors=factors, params=COARSE_ONLY).shadow_on_device


def test_shadow_stage_bytes_by_hand():
    assert shadow_bytes(COARSE, L2Params(), True) == SHADOW_GPU == 8_945_000
    assert shadow_bytes(COARSE, L2Params(), False) == SHADOW_CPU == 32_705_000
    # a full S2 tile at 120 m: 837_225 px, chunks of 2**22 // 33 = 127_100 px = 4_194_300 rays
    n = 915 * 915
    assert shadow_bytes((915, 915), L2Params(), True) == (109 * n + 72 * 33 * n + 29 * 4_194_300
                                                         + 136 * 127_100) == 2_219_424_425
    # the twin's sub-chunk (2**18 rays) on the CPU
    assert shadow_bytes((915, 915), L2Params(), False) == (109 * n + 104 * 33 * n + 29 * 4_194_300
                                                          + 136 * 127_100 + 256 * 2**18)
    # 5 altitudes (0, 2000, ..., 8000 m): 5 pairs per px at most
    five = L2Params().replace(delta_h_step=2000.0)
    assert shadow_bytes(COARSE, five, True) == 109 * 2500 + 72 * 12_500 + 29 * 12_500 + 136 * 2500


def test_the_shadow_stage_shrinks_the_read_ahead():
    # one group of 4 bands 200 x 200 on the 50 x 50 coarse grid: the whole group (4.12 MB) needs less
    # than the shadow stage (8.945 MB), which takes its place
    shapes = {"R1": (4, 200, 200)}
    date_input = 4 * 200 * 200 * 5  # 800_000
    read_temp = 4 * 200 * 200 * 3  # 480_000
    coarse = (4 * 8 * 4 + 64 * 4) * 2500  # 960_000
    comp = (3 * 4 * 4 + 10 * 4 + 2 * 10 + 4 + 2) * 2500  # 285_000
    whole = R1_PX * 200 * 200  # 4_120_000
    base = date_input + coarse + comp  # 2_045_000
    assert whole < SHADOW_GPU
    plan = plan_memory(5, shapes, COARSE, int(SAFETY * 13.07e6), True, params=COARSE_ONLY)
    assert plan.read_ahead == 2 and plan.need_bytes == base + 2 * date_input + read_temp + SHADOW_GPU == 13_070_000
    # 12 MB held read-ahead 2 with the group alone (8.245 MB); with the shadow stage r=1 needs 12.27 MB
    assert base + 2 * date_input + read_temp + whole == 8_245_000
    plan = plan_memory(5, shapes, COARSE, int(SAFETY * 12e6), True, params=COARSE_ONLY)
    assert plan.read_ahead == 0 and plan.resident_coarse and plan.strip_rows == {"R1": None}
    assert plan.need_bytes == base + SHADOW_GPU == 10_990_000
    # 10.9 MB: the composite must leave (10_705_000 without it); strips cannot help the shadow stage
    plan = plan_memory(5, shapes, COARSE, int(SAFETY * 10.9e6), True, params=COARSE_ONLY)
    assert plan.read_ahead == 0 and not plan.resident_coarse and plan.strip_rows == {"R1": None}
    assert plan.shadow_on_device
    assert plan.need_bytes == base - comp + SHADOW_GPU == 10_705_000
    # 10.6 MB: no placement holds the shadow stage on the device (8.555 MB, 8.84 MB without the composite);
    # on the host, read-ahead 2 with the composite on the device fits (8.245 MB)
    plan = plan_memory(5, shapes, COARSE, int(SAFETY * 10.6e6), True, params=COARSE_ONLY)
    assert plan.shadow_on_device is False and plan.read_ahead == 2 and plan.resident_coarse
    assert plan.need_bytes == base + 2 * date_input + read_temp + whole == 8_245_000
    # both on the host: 1_760_000 + one coarse row of R1 (4 rows of 20_600 B) = 1_842_400
    assert plan_memory(5, shapes, COARSE, int(SAFETY * 1.85e6), True, params=COARSE_ONLY).strip_rows == {"R1": 4}
    with pytest.raises(InsufficientMemoryError, match="GPU memory"):
        plan_memory(5, shapes, COARSE, int(SAFETY * 1.84e6), True, params=COARSE_ONLY)
    # on the CPU: the host outputs (57 B per px) and the CPU's shadow stage (32.705 MB)
    host = (4 * 8 + 25) * 200 * 200  # 2_280_000
    plan = plan_memory(5, shapes, COARSE, 10 * 2**30, False, params=COARSE_ONLY)
    assert plan.need_bytes == base + host + 2 * date_input + read_temp + SHADOW_CPU == 39_110_000


def test_cpu_counts_the_outputs():
    plan = plan_memory(5, SHAPES, COARSE, 10 * 2**30, is_gpu=False, params=COARSE_ONLY)
    assert plan.read_ahead == 2 and plan.resident_coarse and plan.shadow_on_device
    assert plan.need_bytes == BASE + HOST + 2 * DATE_INPUT + READ_TEMP + WHOLE_R1
    with pytest.raises(InsufficientMemoryError, match="host memory"):
        plan_memory(5, SHAPES, COARSE, int(SAFETY * 150e6), is_gpu=False, params=COARSE_ONLY)  # base + outputs = 149.9 MB


def test_explicit_factors_align_the_strips():
    free = int(SAFETY * 100e6)
    plan = plan_memory(5, SHAPES, COARSE, free, True, factors={"R1": 10, "R2": 12}, params=COARSE_ONLY)
    assert plan.strip_rows["R1"] == 470  # 473 rows -> multiple of 10


def test_free_memory_queries(tmp_path):
    assert free_bytes_for(CPU) > 0
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       32000000 kB\nMemFree:  100 kB\nMemAvailable:   12345 kB\n")
    assert host_available_bytes(fake) == 12345 * 1024
    assert host_available_bytes(tmp_path / "missing") > 0


def test_strip_spans():
    assert strip_spans(10, None) == [(0, 10)]
    assert strip_spans(10, 10) == [(0, 10)]
    assert strip_spans(10, 4) == [(0, 4), (4, 8), (8, 10)]
    with pytest.raises(ValueError):
        strip_spans(10, 0)


def _field(seed: int, cy: int, cx: int, nan_share: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, (cy, cx)).astype(np.float32)
    a[rng.random((cy, cx)) < nan_share] = np.nan
    return a


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31), cy=st.integers(1, 7), cx=st.integers(1, 7), f=st.integers(1, 6),
       crop=st.integers(0, 5), nan_share=st.sampled_from([0.0, 0.3, 0.9]), data=st.data())
def test_rows_equal_whole_resampling_bitwise(seed, cy, cx, f, crop, nan_share, data):
    shape = (max(1, cy * f - crop), max(1, cx * f - crop))
    y0 = data.draw(st.integers(0, shape[0] - 1))
    y1 = data.draw(st.integers(y0 + 1, shape[0]))
    a = _field(seed, cy, cx, nan_share)
    whole = resample_float(a, f, shape, np)[y0:y1]
    rows = float_rows(a, f, shape, y0, y1, np)
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows.view(np.uint32), whole.view(np.uint32))
    m = a > 0.2
    np.testing.assert_array_equal(mask_rows(m, f, shape, y0, y1, 0.25, np),
                                  resample_mask(m, f, shape, threshold=0.25, xp=np)[y0:y1])


@pytest.mark.gpu
def test_rows_equal_whole_resampling_on_the_gpu():
    import cupy

    for seed, (cy, cx, f) in enumerate([(5, 7, 24), (46, 46, 12), (3, 2, 1)]):
        a = cupy.asarray(_field(seed, cy, cx, 0.3))
        shape = (cy * f - 1, cx * f)
        whole = resample_float(a, f, shape, cupy)
        for y0, y1 in strip_spans(shape[0], max(1, shape[0] // 3)):
            rows = float_rows(a, f, shape, y0, y1, cupy)
            assert isinstance(rows, cupy.ndarray)
            np.testing.assert_array_equal(cupy.asnumpy(rows).view(np.uint32),
                                          cupy.asnumpy(whole[y0:y1]).view(np.uint32))
            m = a > 0.2
            np.testing.assert_array_equal(cupy.asnumpy(mask_rows(m, f, shape, y0, y1, 0.25, cupy)),
                                          cupy.asnumpy(resample_mask(m, f, shape, 0.25, cupy)[y0:y1]))


def test_the_fine_cloud_evidence_counts_in_the_group_stage():
    """With fine_cloud_masks (the default), group_masks computes two bands' TOCR on the finest group:
    R1 (k = 1) 39 + 49 + 48 = 136 B per pixel (> 103 of group_products), R2 (k = 2) 39 + 49 + 4 x 48 =
    280 B (> 127)."""
    plan = plan_memory(5, SHAPES, COARSE, 10 * 2**30, True)
    assert plan.read_ahead == 2 and plan.strip_rows == {"R1": None, "R2": None}
    assert plan.need_bytes == BASE + 2 * DATE_INPUT + READ_TEMP + 136 * 1200 * 1200 == 333_825_000
    # 60 MB over the base: R1 60e6 / (136 x 1200) = 367.6 rows -> 360 (15 coarse rows of 24);
    # R2 whole needs 280 x 600 x 600 = 100.8 MB -> 60e6 / (280 x 600) = 357.1 rows -> 348 (29 of 12)
    plan = plan_memory(5, SHAPES, COARSE, int(SAFETY * (BASE + 60e6)), True)
    assert plan.read_ahead == 0 and plan.strip_rows == {"R1": 360, "R2": 348}
    assert plan.resident_coarse and plan.shadow_on_device
    assert plan.need_bytes == BASE + 136 * 1200 * 360 == 100_257_000
