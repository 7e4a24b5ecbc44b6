"""Shared fixtures: the real data in ../shared/data (skip cleanly when absent) and the GPU marker."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def gpu_available() -> bool:
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:
        return False


def pytest_collection_modifyitems(config, items):
    if gpu_available():
        return
    skip = pytest.mark.skip(reason="no usable CUDA GPU (cupy.cuda.is_available() is false)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def _shared(sub: str) -> Path:
    path = SHARED_DATA / sub
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _shared("")


@pytest.fixture(scope="session")
def s2_safe_dir() -> Path:
    """Folder with the two real T31TCJ SAFEs (S2A 2024-01-20, S2B 2024-03-05)."""
    return _shared("real/s2_l1c_safe_toulouse")


@pytest.fixture(scope="session")
def landsat_crop_dir() -> Path:
    return _shared("real/landsat8_l1_cloudy_crop")


@pytest.fixture(scope="session")
def gipp_dir() -> Path:
    return _shared("maja_gipp_s2")
