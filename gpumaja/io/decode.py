"""Decoding the band files of a date off the critical path: a pool of CPU decode threads, or the GPU.

`DecodePool` decodes band files in `workers` threads (default `os.cpu_count()`, or the
GPUMAJA_DECODE_WORKERS environment variable), each read opening its own rasterio/GDAL dataset
(`io.bands.read_dn`: no dataset is shared between threads); rasterio releases the GIL while GDAL
decodes, so the threads decode in parallel. Each thread sets GDAL_NUM_THREADS (GDAL's JP2OpenJPEG
driver hands it to OpenJPEG) to cpu_count // workers, at least 1, so that the pool does not
oversubscribe the cores. `prefetch` queues a date's bands (the series read-ahead queues the next
dates while one computes); `decode` returns them, taking the queued ones.

Decoder (logged once per pool: "decoder: nvimgcodec" or "decoder: rasterio/OpenJPEG"): `decoder=`
or the GPUMAJA_DECODER environment variable, one of `DECODERS`:
- "rasterio": OpenJPEG through rasterio/GDAL on the CPU, always available;
- "nvimgcodec": NVIDIA nvImageCodec (nvJPEG2000, PyPI `nvidia-nvimgcodec-cu12/cu13` with
  `nvidia-nvjpeg2k-cu12/cu13`) decodes JPEG 2000 band files straight to device arrays; needs the GPU
  backend and the package (DeviceError otherwise);
- "auto" (default): nvimgcodec when the GPU backend is active and it imports, else rasterio.
nvImageCodec only takes plain .jp2 files already on their group grid; other bands (in a .zip, a
window to resample, GeoTIFF) and a file it cannot decode go through the CPU pool. With a
`TranscodeCache` (`cache=`), every band is read through the cache on the CPU (a re-run then never
decodes a JPEG 2000 file).

`decode_bands(product, bands, pool=None, cache=None)` is the one call a benchmark times.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import rasterio

from gpumaja.backend import CPU, Backend, to_numpy
from gpumaja.errors import DeviceError, InputError
from gpumaja.io.bands import band_source, file_grid, read_dn
from gpumaja.io.transcode_cache import TranscodeCache, as_cache
from gpumaja.model.product import L1CProduct

log = logging.getLogger(__name__)

DECODER_ENV = "GPUMAJA_DECODER"
WORKERS_ENV = "GPUMAJA_DECODE_WORKERS"
DECODERS = ("auto", "rasterio", "nvimgcodec")


def decode_workers(workers: int | None = None) -> int:
    """`workers`, else GPUMAJA_DECODE_WORKERS, else os.cpu_count() (at least 1)."""
    if workers is None:
        env = os.environ.get(WORKERS_ENV, "").strip()
        if env:
            try:
                workers = int(env)
            except ValueError:
                raise InputError(f"{WORKERS_ENV} must be a whole number, got {env!r}") from None
        else:
            workers = os.cpu_count() or 1
    if workers < 1:
        raise InputError(f"the number of decode workers must be at least 1, got {workers}")
    return int(workers)


def nvimgcodec_problem() -> str | None:
    """None when nvImageCodec imports, else why not."""
    try:
        import nvidia.nvimgcodec  # noqa: F401
    except ImportError:
        return "nvImageCodec is not installed (pip install nvidia-nvimgcodec-cu12[nvjpeg2k] or -cu13)"
    except Exception as exc:  # a broken CUDA install can fail at import time
        return f"nvImageCodec failed to import: {exc}"
    return None


def _requested(requested: str | None) -> str:
    return (requested or os.environ.get(DECODER_ENV, "") or "auto").strip().lower()


def select_decoder(requested: str | None = None, backend: Backend = CPU) -> str:
    """"rasterio" or "nvimgcodec" for `requested` (None: GPUMAJA_DECODER, else "auto"); logs the choice."""
    req = _requested(requested)
    if req not in DECODERS:
        raise InputError(f"the decoder ({DECODER_ENV}) must be one of {', '.join(DECODERS)}, got {req!r}")
    if req == "rasterio":
        log.info("decoder: rasterio/OpenJPEG (requested)")
        return "rasterio"
    problem = None if backend.is_gpu else "the CPU backend is active"
    problem = problem or nvimgcodec_problem()
    if problem is None:
        log.info("decoder: nvimgcodec (GPU JPEG 2000; other files: rasterio/OpenJPEG)")
        return "nvimgcodec"
    if req == "nvimgcodec":
        raise DeviceError(f"the nvimgcodec decoder was requested but {problem}")
    log.info("decoder: rasterio/OpenJPEG (auto: %s)", problem)
    return "rasterio"


# ------------------------------------------------------------------------------------ the GPU
class NvImgCodecDecoder:
    """JPEG 2000 files -> uint16 device arrays (CuPy) with nvImageCodec, native bit depth."""

    def __init__(self, cpu_threads: int = 0):
        import cupy
        from nvidia import nvimgcodec as nv

        self.nv, self.cupy = nv, cupy
        self.decoder = nv.Decoder(max_num_cpu_threads=cpu_threads)
        # native depth (no scaling to 8 bits), no colour conversion of the single grey component
        self.params = nv.DecodeParams(allow_any_depth=True, color_spec=nv.ColorSpec.UNCHANGED)
        self.stream = cupy.cuda.Stream(non_blocking=True)
        self.lock = threading.Lock()

    def decode(self, paths: Sequence[str], shapes: Sequence[tuple[int, int]]) -> list[Any]:
        """One device array (ny, nx) uint16 per path, or None where nvImageCodec could not decode it
        to that shape (the caller decodes those on the CPU)."""
        cupy = self.cupy
        with self.lock:
            images = self.decoder.read([self.nv.CodeStream(str(p)) for p in paths], params=self.params,
                                       cuda_stream=self.stream.ptr)
            out = []
            with self.stream:
                for img, shape in zip(images, shapes):
                    arr = None
                    if img is not None:
                        a = cupy.asarray(img)
                        if a.dtype in (np.uint16, np.int16) and a.size == shape[0] * shape[1]:
                            arr = a.view(np.uint16).reshape(shape).copy()  # our own memory, C order
                    out.append(arr)
            self.stream.synchronize()  # consumers use the arrays on other streams
        return out


def _gpu_eligible(path: str, target) -> bool:
    return (not path.startswith("/vsi") and Path(path).suffix.lower() in (".jp2", ".j2k")
            and file_grid(path) == target)


# ------------------------------------------------------------------------------------ the pool
class DecodePool:
    """Band decoding in worker threads (module docstring). Use as a context manager or close()."""

    def __init__(self, workers: int | None = None, cache: TranscodeCache | str | os.PathLike | None = None,
                 decoder: str | None = None, backend: Backend = CPU):
        self.workers = decode_workers(workers)
        self.cache = as_cache(cache)
        self.backend = backend
        self.kind = select_decoder(decoder, backend)
        self.gdal_threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="gpumaja-decode")
        self._gpu: NvImgCodecDecoder | None = None
        self._gpu_pool: ThreadPoolExecutor | None = None
        if self.kind == "nvimgcodec":
            try:
                self._gpu = NvImgCodecDecoder()
            except Exception as exc:
                if _requested(decoder) == "nvimgcodec":
                    raise DeviceError(f"the nvimgcodec decoder was requested but it failed to start: {exc}") from exc
                log.warning("nvImageCodec failed to start (%s): decoder: rasterio/OpenJPEG", exc)
                self.kind = "rasterio"
            else:
                self._gpu_pool = ThreadPoolExecutor(1, thread_name_prefix="gpumaja-nvimgcodec")
        self._pending: dict[tuple[str, str], Future] = {}
        self._lock = threading.Lock()
        self._uploader = None
        log.info("decode pool: %d thread(s), GDAL_NUM_THREADS=%d each%s", self.workers, self.gdal_threads,
                 f", cache {self.cache.root}" if self.cache is not None else "")

    # ----------------------------------------------------------------------------- work
    def _host(self, product: L1CProduct, band: str) -> np.ndarray:
        with rasterio.Env(GDAL_NUM_THREADS=str(self.gdal_threads)):
            return read_dn(product, band, self.cache)

    def _gpu_batch(self, product: L1CProduct, bands: Sequence[str]) -> dict[str, Any]:
        srcs = [band_source(product, b) for b in bands]
        arrays = self._gpu.decode([p for p, _ in srcs], [g.shape for _, g in srcs])
        if all(a is None for a in arrays):  # e.g. no JPEG 2000 codec registered (nvjpeg2k missing)
            log.warning("nvimgcodec decoded none of %d JPEG 2000 files (is nvidia-nvjpeg2k installed?): "
                        "decoder: rasterio/OpenJPEG from now on", len(arrays))
            self._gpu = None
            return {b: self._host(product, b) for b in bands}
        out = {}
        for b, (path, _), a in zip(bands, srcs, arrays):
            if a is None:
                log.warning("nvimgcodec could not decode %s: decoding it on the CPU", path)
                a = self._host(product, b)
            out[b] = a
        return out

    def _submit(self, product: L1CProduct, bands: Sequence[str]) -> dict[str, Future]:
        futures: dict[str, Future] = {}
        gpu: list[str] = []
        if self._gpu is not None and self.cache is None:
            for b in bands:
                path, target = band_source(product, b)
                if _gpu_eligible(path, target):
                    gpu.append(b)
        if gpu:
            batch = self._gpu_pool.submit(self._gpu_batch, product, gpu)
            for b in gpu:
                futures[b] = _item(batch, b)
        for b in bands:
            if b not in futures:
                futures[b] = self._pool.submit(self._host, product, b)
        return futures

    # ------------------------------------------------------------------------------ API
    def prefetch(self, product: L1CProduct, bands: Sequence[str]) -> None:
        """Start decoding `bands` of `product` (in the pool's FIFO order); `decode` takes them."""
        with self._lock:
            todo = [b for b in bands if (product.product_id, b) not in self._pending]
            for b, f in self._submit(product, todo).items():
                self._pending[(product.product_id, b)] = f

    def decode(self, product: L1CProduct, bands: Sequence[str]) -> dict[str, Any]:
        """{band: DN (ny, nx) uint16 on the band's group grid}: NumPy arrays, or CuPy arrays for
        the bands nvImageCodec decoded. Errors of a band are raised here (the first in `bands` order)."""
        with self._lock:
            have = {b: self._pending.pop((product.product_id, b)) for b in bands
                    if (product.product_id, b) in self._pending}
            have.update(self._submit(product, [b for b in bands if b not in have]))
        return {b: have[b].result() for b in bands}

    def decode_stack(self, product: L1CProduct, bands: Sequence[str], backend: Backend | None = None):
        """The DN of `bands` as one (nb, ny, nx) uint16 array on `backend` (default the pool's): on
        the GPU, host bands go through pinned buffers on a copy stream (`pipeline.transfer`)."""
        backend = backend or self.backend
        dn = self.decode(product, bands)
        arrays = [dn[b] for b in bands]
        if not backend.is_gpu:
            return np.stack([to_numpy(a) for a in arrays])
        from gpumaja.pipeline.transfer import stack_to_device

        return stack_to_device(arrays, self.uploader)

    @property
    def uploader(self):
        """The pool's `pipeline.transfer.PinnedUploader` (GPU only; made on first use)."""
        if self._uploader is None:
            from gpumaja.pipeline.transfer import PinnedUploader

            self._uploader = PinnedUploader()
        return self._uploader

    def close(self) -> None:
        with self._lock:
            for f in self._pending.values():
                f.cancel()
            self._pending.clear()
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._gpu_pool is not None:
            self._gpu_pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _item(batch: Future, key: str) -> Future:
    """A future of `batch.result()[key]`."""
    out: Future = Future()

    def done(f: Future) -> None:
        if f.cancelled():
            out.cancel()
        elif f.exception() is not None:
            out.set_exception(f.exception())
        else:
            out.set_result(f.result()[key])

    batch.add_done_callback(done)
    return out


def decode_bands(product: L1CProduct, bands: Sequence[str], pool: DecodePool | None = None,
                 cache: TranscodeCache | str | os.PathLike | None = None) -> dict[str, Any]:
    """{band: DN on its group grid} of `product` (module docstring); without `pool`, a CPU pool of
    decode_workers() threads is made for the call (with `cache` if given)."""
    if pool is not None:
        return pool.decode(product, bands)
    with DecodePool(cache=cache, decoder="rasterio") as p:
        return p.decode(product, bands)


__all__ = ["DECODERS", "DECODER_ENV", "WORKERS_ENV", "DecodePool", "NvImgCodecDecoder", "decode_bands",
           "decode_workers", "nvimgcodec_problem", "select_decoder"]
