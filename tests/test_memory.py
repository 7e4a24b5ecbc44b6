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
from gpumaja.pipeline.l2a_group import float_rows, mask_rows, strip_spans
from gpumaja.pipeline.memory import (
    InsufficientMemoryError,
    free_bytes_for,
    host_available_bytes,
    plan_memory,
)

# R1 4 bands 1200 x 1200, R2 6 bands 600 x 600, coarse 50 x 50 (f = 24 and 12)
SHAPES = {"R1": (4, 1200, 1200), "R2": (6, 600, 600)}
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


def test_everything_fits_read_ahead_two():
    plan = plan_memory(5, SHAPES, COARSE, 10 * 2**30, is_gpu=True)
    assert plan.read_ahead == 2 and plan.strip_rows == {"R1": None, "R2": None} and plan.resident_coarse
    assert plan.need_bytes == BASE + 2 * DATE_INPUT + READ_TEMP + WHOLE_R1 == 286_305_000


def test_read_ahead_is_limited_by_the_dates():
    assert plan_memory(1, SHAPES, COARSE, 10 * 2**30, True).read_ahead == 0
    assert plan_memory(2, SHAPES, COARSE, 10 * 2**30, True).read_ahead == 1


def test_read_ahead_shrinks_before_strips():
    one = int(SAFETY * 260e6)  # r=2 needs 286.3 MB, r=1 246.7 MB
    plan = plan_memory(5, SHAPES, COARSE, one, True)
    assert plan.read_ahead == 1 and plan.strip_rows == {"R1": None, "R2": None}
    zero = int(SAFETY * 200e6)  # r=0 needs 189.8 MB
    plan = plan_memory(5, SHAPES, COARSE, zero, True)
    assert plan.read_ahead == 0 and plan.strip_rows == {"R1": None, "R2": None}
    assert plan.need_bytes == BASE + WHOLE_R1


def test_strips_when_the_whole_group_does_not_fit():
    free = int(SAFETY * 100e6)  # budget 100 MB, 58.495 MB left after the base
    plan = plan_memory(5, SHAPES, COARSE, free, True)
    # R1: 58_495_000 / (103 * 1200) = 473.3 rows -> 456 (19 coarse rows of 24); R2 fits whole (45.72 MB)
    assert plan.read_ahead == 0 and plan.resident_coarse
    assert plan.strip_rows == {"R1": 456, "R2": None}
    assert plan.need_bytes == BASE + R1_PX * 1200 * 456 <= free / SAFETY


def test_composite_leaves_the_gpu_only_when_that_makes_it_fit():
    free = int(SAFETY * 44.2e6)
    # resident: 2.695 MB left -> 21 rows of R1 < 24 (one coarse row); on the host: 3.16 MB -> R1 24, R2 36
    plan = plan_memory(5, SHAPES, COARSE, free, True)
    assert plan.resident_coarse is False and plan.read_ahead == 0
    assert plan.strip_rows == {"R1": 24, "R2": 36}
    with pytest.raises(InsufficientMemoryError, match="GPU memory.*GiB"):
        plan_memory(5, SHAPES, COARSE, int(SAFETY * 43e6), True)


def test_cpu_counts_the_outputs():
    plan = plan_memory(5, SHAPES, COARSE, 10 * 2**30, is_gpu=False)
    assert plan.read_ahead == 2 and plan.resident_coarse
    assert plan.need_bytes == BASE + HOST + 2 * DATE_INPUT + READ_TEMP + WHOLE_R1
    with pytest.raises(InsufficientMemoryError, match="host memory"):
        plan_memory(5, SHAPES, COARSE, int(SAFETY * 150e6), is_gpu=False)  # base + outputs = 149.9 MB


def test_explicit_factors_align_the_strips():
    free = int(SAFETY * 100e6)
    plan = plan_memory(5, SHAPES, COARSE, free, True, factors={"R1": 10, "R2": 12})
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
