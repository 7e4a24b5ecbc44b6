"""Named pipeline stages: an NVTX range (domain "gpumaja") and a wall-clock time for each.

On the GPU a stage is timed with CUDA events recorded on the current stream around it (read after a
synchronisation), on the CPU with the wall clock; `scripts/` benchmarks read `Stages.times` (seconds).
"""

from __future__ import annotations

import time
from contextlib import contextmanager

import nvtx

from gpumaja.backend import Backend


class Stages:
    def __init__(self, backend: Backend):
        self.backend = backend
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        if self.backend.is_gpu:
            import cupy

            start, stop = cupy.cuda.Event(), cupy.cuda.Event()
            start.record()
            with nvtx.annotate(name, domain="gpumaja"):
                yield
            stop.record()
            stop.synchronize()
            elapsed = cupy.cuda.get_elapsed_time(start, stop) / 1000.0
        else:
            t0 = time.perf_counter()
            with nvtx.annotate(name, domain="gpumaja"):
                yield
            elapsed = time.perf_counter() - t0
        self.times[name] = self.times.get(name, 0.0) + elapsed
