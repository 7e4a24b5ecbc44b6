"""Named pipeline stages: an NVTX range (domain "gpumaja") and a wall-clock time for each.

On the GPU the time is taken after a device synchronisation, so it is the stage's real duration;
`scripts/` benchmarks read `Stages.times`.
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

    def _sync(self) -> None:
        if self.backend.is_gpu:
            import cupy

            cupy.cuda.get_current_stream().synchronize()

    @contextmanager
    def __call__(self, name: str):
        self._sync()
        t0 = time.perf_counter()
        with nvtx.annotate(name, domain="gpumaja"):
            yield
            self._sync()
        self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0
