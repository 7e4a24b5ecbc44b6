"""A cache of decoded band files: each JPEG 2000 band is decoded once, later reads take its DN from
a raster that is fast to read (`TranscodeCache`, the `--cache DIR` of `gpumaja l2a`).

An entry holds the DN exactly as `io.bands.read_source` decodes them from the source file (uint16,
on the file's own grid: resampling onto a group grid happens after the cache), as a tiled GeoTIFF
with the source's georeferencing (`CODECS`; the default, uncompressed, reads fastest: measured
below and in docs/benchmarks.md).

Key: SHA-256 of (format version, source path, size and modification time of the file on disk). For
a band inside an archive (`/vsizip/x.zip/...`) the archive's size and time are used with the full
path, so replacing a source file or archive makes a new key and the old entry is simply not used
again. Entry: `<root>/<FORMAT>/<key[:2]>/<key>.tif`.

An entry is written under a temporary name in its folder and renamed when complete (os.replace), so
a reader sees either no entry or a complete one, and two threads or processes caching the same band
at once both succeed (the last rename wins; both wrote the same pixels). An entry is trusted only
when its tags name the same key and its shape and dtype match them and every pixel decodes;
otherwise it is removed (it is the cache's own file, never a user's) and the band is decoded again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio

from gpumaja.errors import GpumajaError
from gpumaja.io.bands import grid_of
from gpumaja.model.grids import Grid

log = logging.getLogger(__name__)

FORMAT = "gpumaja-dn-v1"  # part of the key and of the folder: bump it when the entry layout changes
TAG_KEY = "GPUMAJA_CACHE_KEY"
TAG_SOURCE = "GPUMAJA_SOURCE"
TAG_SHAPE = "GPUMAJA_SHAPE"
# Tiled GeoTIFF codecs. Measured on a full-size 10980 x 10980 uint16 band (page cache warm, 2 cores):
# uncompressed 0.09 s to read (242 MiB), ZSTD level 1 0.29-0.43 s (190 MiB), ZSTD 1 + predictor
# 0.34-0.78 s (174 MiB), DEFLATE 1 + predictor 0.97 s, LZW + predictor 1.2 s; the JPEG 2000 decode of
# that band took 25-28 s. Uncompressed reads fastest, so it is the default.
_TILES = {"tiled": True, "blockxsize": 512, "blockysize": 512}
CODECS: dict[str, dict[str, object]] = {
    "none": dict(_TILES),
    "zstd": {**_TILES, "compress": "ZSTD", "zstd_level": 1},
    "lzw": {**_TILES, "compress": "LZW", "predictor": 2},
}
DEFAULT_CODEC = "none"
_VSI_ARCHIVES = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/")

Decode = Callable[[str], tuple[np.ndarray, Grid]]


def source_file(source: str) -> str | None:
    """The file on disk whose size and time identify `source` (a plain path, or the archive of a
    `/vsizip/...` path); None when there is none (e.g. /vsicurl/: such sources are not cached)."""
    if not source.startswith("/vsi"):
        return source if os.path.isfile(source) else None
    for prefix in _VSI_ARCHIVES:
        if source.startswith(prefix):
            parts = source[len(prefix):].split("/")
            for i in range(len(parts), 0, -1):
                cand = "/".join(parts[:i])
                if cand and os.path.isfile(cand):
                    return cand
    return None


class TranscodeCache:
    """Decoded DN of band files under `root` (module docstring). Thread-safe."""

    def __init__(self, root: str | os.PathLike, codec: str = DEFAULT_CODEC):
        if codec not in CODECS:
            raise ValueError(f"cache codec must be one of {', '.join(CODECS)}, got {codec!r}")
        self.root = Path(root)
        self.codec = dict(CODECS[codec])
        self.hits = self.misses = self.rejected = 0
        self._lock = threading.Lock()

    # --------------------------------------------------------------------------------- keys
    def key(self, source: str) -> str | None:
        """The key of `source` now (None when the source has no file on disk to identify it)."""
        src = source_file(source)
        if src is None:
            return None
        st = os.stat(src)
        ident = source if source.startswith("/vsi") else os.path.abspath(source)
        doc = {"format": FORMAT, "source": ident, "file": os.path.abspath(src), "size": st.st_size,
               "mtime_ns": st.st_mtime_ns}
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def entry_path(self, key: str) -> Path:
        return self.root / FORMAT / key[:2] / f"{key}.tif"

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + 1)

    # ------------------------------------------------------------------------------ reading
    def get(self, source: str) -> tuple[np.ndarray, Grid] | None:
        """(DN, grid) from the cache, or None on a miss; a bad entry is removed and counts as a miss."""
        key = self.key(source)
        if key is None:
            return None
        path = self.entry_path(key)
        if not path.is_file():
            return None
        try:
            with rasterio.open(path) as ds:
                tags = ds.tags()
                shape = tuple(json.loads(tags.get(TAG_SHAPE, "null")) or ())
                if tags.get(TAG_KEY) != key:
                    raise ValueError("the entry was written for another source")
                if ds.count != 1 or ds.dtypes[0] != "uint16" or (ds.height, ds.width) != shape:
                    raise ValueError(f"shape/dtype {ds.count}x{ds.height}x{ds.width} {ds.dtypes[0]} "
                                     f"differ from the recorded {shape} uint16")
                grid = grid_of(ds, path)
                data = ds.read(1)
        except Exception as exc:  # truncated, garbled, foreign: never trusted
            log.warning("cache entry %s for %s is not usable (%s): decoding the source again", path, source, exc)
            self._count("rejected")
            path.unlink(missing_ok=True)
            return None
        return data, grid

    def put(self, source: str, data: np.ndarray, grid: Grid) -> Path | None:
        """Store the DN of `source`; returns the entry (None when the source cannot be keyed)."""
        key = self.key(source)
        if key is None:
            return None
        data = np.asarray(data)
        if data.dtype != np.uint16 or data.ndim != 2 or data.shape != grid.shape:
            raise ValueError(f"expected uint16 DN of shape {grid.shape}, got {data.dtype} {data.shape}")
        path = self.entry_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        profile = {"driver": "GTiff", "width": grid.width, "height": grid.height, "count": 1, "dtype": "uint16",
                   "crs": grid.crs, "transform": grid.transform, **self.codec}
        if data.nbytes > 3 * 2**30:
            profile["BIGTIFF"] = "YES"
        try:
            with rasterio.open(tmp, "w", **profile) as ds:
                ds.write(data, 1)
                ds.update_tags(**{TAG_KEY: key, TAG_SOURCE: source, TAG_SHAPE: json.dumps(list(data.shape))})
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def read(self, source: str, decode: Decode) -> tuple[np.ndarray, Grid]:
        """(DN, grid) of `source`: from the cache, else `decode(source)` and store it. A failure to
        store (disk full, read-only folder) is logged, never an error of the read."""
        hit = self.get(source)
        if hit is not None:
            self._count("hits")
            return hit
        self._count("misses")
        data, grid = decode(source)
        try:
            self.put(source, data, grid)
        except GpumajaError:
            raise
        except Exception as exc:
            log.warning("cannot store %s in the cache %s: %s", source, self.root, exc)
        return data, grid


def as_cache(cache: TranscodeCache | str | os.PathLike | None) -> TranscodeCache | None:
    """A TranscodeCache from a folder (None stays None)."""
    if cache is None or isinstance(cache, TranscodeCache):
        return cache
    return TranscodeCache(cache)


__all__ = ["CODECS", "DEFAULT_CODEC", "FORMAT", "TranscodeCache", "as_cache", "source_file"]
