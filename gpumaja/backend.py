"""Compute backend: NumPy on the CPU or CuPy on a CUDA GPU, chosen once per run.

`select_backend("auto")` picks the GPU when `cupy.cuda.is_available()` is true, else the CPU;
`select_backend("gpu")` without a usable GPU raises `DeviceError` (CLI exit 2). The chosen backend is
logged. Array code is written once against `backend.xp`; hot paths call raw CUDA kernels through
`gpumaja.kernels` when `backend.is_gpu`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from gpumaja.errors import DeviceError

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "gpu")


@dataclass(frozen=True)
class Backend:
    name: str  # "cpu" | "gpu"
    xp: ModuleType  # numpy or cupy
    description: str

    @property
    def is_gpu(self) -> bool:
        return self.name == "gpu"

    def asarray(self, a: Any, dtype: Any = None):
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Any) -> np.ndarray:
        return to_numpy(a)


CPU = Backend("cpu", np, "NumPy on the CPU")


def gpu_problem() -> str | None:
    """None when a CUDA GPU is usable through CuPy, else why not (for the error message)."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'gpumaja[cuda12]' or 'gpumaja[cuda13]')"
    except Exception as exc:  # a broken CUDA install can fail at import time
        return f"CuPy failed to import: {exc}"
    try:
        if not cupy.cuda.is_available():
            return "CuPy found no usable CUDA device (no GPU or no driver)"
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return f"CUDA is not usable: {exc}"
    return None


def select_backend(device: str = "auto") -> Backend:
    """The backend for `device` in {"auto", "cpu", "gpu"}; logs the choice."""
    if device not in DEVICES:
        raise DeviceError(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        log.info("backend: %s (requested)", CPU.description)
        return CPU
    problem = gpu_problem()
    if problem is None:
        import cupy

        dev = cupy.cuda.Device()
        props = cupy.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        free, total = dev.mem_info
        backend = Backend("gpu", cupy, f"CuPy on GPU {dev.id} ({name}, {free / 2**30:.1f}/{total / 2**30:.1f} GiB free)")
        log.info("backend: %s", backend.description)
        return backend
    if device == "gpu":
        raise DeviceError(f"--device gpu was requested but {problem}")
    log.info("backend: %s (auto: %s)", CPU.description, problem)
    return CPU


def array_module(a: Any) -> ModuleType:
    """numpy or cupy, whichever `a` belongs to."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def to_numpy(a: Any) -> np.ndarray:
    if type(a).__module__.startswith("cupy"):
        return a.get()
    return np.asarray(a)
