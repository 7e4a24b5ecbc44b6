"""Host -> device copies off the compute stream: reusable pinned (page-locked) host buffers and a copy
stream, so that the upload of a band overlaps kernels and the decoding of other bands/dates.

`PinnedUploader.upload_into(dst, host)`: copies `host` into a pinned buffer (one of `slots`, used in
turn), issues the asynchronous copy buffer -> `dst` on the uploader's own non-blocking stream,
records an event there and makes the calling thread's current (compute) stream wait on it: work
queued later on the compute stream sees the data, nothing on the host waits for the copy. A buffer
is refilled only when the copy out of it has completed (its event), so with 2 slots the staging of
band i+1 overlaps the copy of band i. The copy stream first waits for the compute stream's work
queued before it, because `dst` may reuse memory that this work still reads (CuPy's pool is
stream-ordered).

The CPU path never comes here (`stack_to_device` with NumPy inputs on the CPU is plain np.stack in
the callers). Needs CuPy; only made when the GPU backend is active.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np


class PinnedUploader:
    """Uploads through `slots` reusable pinned host buffers on one non-blocking copy stream."""

    def __init__(self, slots: int = 2):
        import cupy

        self.cupy = cupy
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self._buffers: list[np.ndarray | None] = [None] * max(1, slots)
        self._events: list[Any] = [None] * max(1, slots)
        self._next = 0
        self._lock = threading.Lock()

    def _buffer(self, i: int, nbytes: int) -> np.ndarray:
        buf = self._buffers[i]
        if buf is None or buf.nbytes < nbytes:
            import cupyx

            self._buffers[i] = buf = cupyx.empty_pinned((nbytes,), np.uint8)
        return buf

    def upload_into(self, dst, host: np.ndarray) -> None:
        """Copy the NumPy array `host` into the C-contiguous device array `dst` (same shape and dtype)."""
        cupy = self.cupy
        host = np.asarray(host)
        if tuple(dst.shape) != host.shape or dst.dtype != host.dtype or not dst.flags.c_contiguous:
            raise ValueError(f"cannot upload {host.dtype} {host.shape} into {dst.dtype} {tuple(dst.shape)}")
        compute = cupy.cuda.get_current_stream()
        with self._lock:
            i = self._next
            self._next = (i + 1) % len(self._buffers)
            if self._events[i] is not None:
                self._events[i].synchronize()  # the previous copy out of this buffer is done
            staged = self._buffer(i, host.nbytes)[: host.nbytes].view(host.dtype).reshape(host.shape)
            np.copyto(staged, host)
            self.stream.wait_event(compute.record())  # dst's memory is free on the compute stream
            dst.set(staged, stream=self.stream)
            done = self.stream.record()
            self._events[i] = done
        compute.wait_event(done)

    def upload(self, host: np.ndarray):
        """A new device array holding `host`."""
        dst = self.cupy.empty(np.shape(host), np.asarray(host).dtype)
        self.upload_into(dst, host)
        return dst

    def synchronize(self) -> None:
        self.stream.synchronize()


def stack_to_device(arrays: Sequence[Any], uploader: PinnedUploader):
    """(n, ny, nx) device array of `arrays` (2-D, same shape and dtype): NumPy ones through
    `uploader`, device ones copied on the current stream."""
    cupy = uploader.cupy
    first = arrays[0]
    out = cupy.empty((len(arrays), *first.shape), first.dtype)
    for i, a in enumerate(arrays):
        if isinstance(a, np.ndarray):
            uploader.upload_into(out[i], a)
        else:
            out[i] = a
    return out


__all__ = ["PinnedUploader", "stack_to_device"]
