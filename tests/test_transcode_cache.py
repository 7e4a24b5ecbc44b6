"""The transcoded band cache (gpumaja/io/transcode_cache.py).

Sources are small lossless JPEG 2000 files written here from known arrays (the expected DN), and the
real SAFE bands of ../shared. Checked: a miss decodes and stores, a hit does not decode; a changed
source (content, size, time; or its .zip) is decoded again; the cache gives the source's arrays and
grids; two threads caching one band at once both get it and leave one complete entry; truncated,
garbled or foreign entries are rejected, removed and re-created; sources without a file on disk are
not cached.
"""

from __future__ import annotations

import os
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from gpumaja.io.bands import read_dn, read_source
from gpumaja.io.transcode_cache import FORMAT, TranscodeCache, source_file
from gpumaja.model.grids import Grid

GRID = Grid.from_origin("EPSG:32631", 300000.0, 4900020.0, 20.0, 48, 40)


def dn(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, 20000, GRID.shape, dtype=np.uint16)


def write_jp2(path: Path, data: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=GRID.width, height=GRID.height, count=1,
                       dtype="uint16", crs=GRID.crs, transform=GRID.transform, QUALITY=100, REVERSIBLE="YES") as ds:
        ds.write(data, 1)
    return path


class Counting:
    """read_source, counting its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, path: str):
        self.calls += 1
        return read_source(path)


@pytest.fixture
def source(tmp_path) -> tuple[Path, np.ndarray]:
    data = dn(1)
    return write_jp2(tmp_path / "B05.jp2", data), data


def entries(root: Path) -> list[Path]:
    return sorted(p for p in (root / FORMAT).rglob("*") if p.is_file())


def test_miss_then_hit(source, tmp_path):
    src, data = source
    cache, decode = TranscodeCache(tmp_path / "cache"), Counting()
    a, grid_a = cache.read(str(src), decode)
    b, grid_b = cache.read(str(src), decode)
    assert decode.calls == 1 and (cache.misses, cache.hits) == (1, 1)
    np.testing.assert_array_equal(a, data)  # lossless source: the DN written
    np.testing.assert_array_equal(b, data)
    assert b.dtype == np.uint16 and grid_a == grid_b == GRID
    [entry] = entries(tmp_path / "cache")
    assert entry.suffix == ".tif" and not entry.name.startswith(".")


def test_a_changed_source_is_decoded_again(source, tmp_path):
    src, _ = source
    cache, decode = TranscodeCache(tmp_path / "cache"), Counting()
    cache.read(str(src), decode)
    new = dn(2)
    write_jp2(src, new)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later time even on a coarse clock
    a, _ = cache.read(str(src), decode)
    assert decode.calls == 2
    np.testing.assert_array_equal(a, new)
    # same content and size, only the time changes: a new key too
    key = cache.key(str(src))
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))
    assert cache.key(str(src)) != key


def test_a_band_in_a_zip_is_keyed_by_the_archive(source, tmp_path):
    src, data = source
    zpath = tmp_path / "p.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.write(src, "P.SAFE/B05.jp2")
    vsi = f"/vsizip/{zpath}/P.SAFE/B05.jp2"
    assert source_file(vsi) == str(zpath)
    cache, decode = TranscodeCache(tmp_path / "cache"), Counting()
    a, _ = cache.read(vsi, decode)
    cache.read(vsi, decode)
    assert decode.calls == 1
    np.testing.assert_array_equal(a, data)
    key = cache.key(vsi)
    with zipfile.ZipFile(zpath, "a") as z:
        z.writestr("P.SAFE/other.txt", "more")  # the archive changed
    assert cache.key(vsi) != key


def test_sources_without_a_file_are_not_cached(tmp_path):
    cache = TranscodeCache(tmp_path / "cache")
    assert cache.key("/vsicurl/https://example.invalid/B04.jp2") is None
    calls = []

    def decode(path):
        calls.append(path)
        return dn(3), GRID

    cache.read("/vsicurl/https://example.invalid/B04.jp2", decode)
    cache.read("/vsicurl/https://example.invalid/B04.jp2", decode)
    assert len(calls) == 2 and not (tmp_path / "cache").exists()


def test_two_threads_caching_the_same_band(source, tmp_path):
    src, data = source
    cache = TranscodeCache(tmp_path / "cache")
    both_missed = threading.Barrier(2, timeout=20)

    def decode(path):
        out = read_source(path)
        both_missed.wait()  # both threads decode before either stores: two concurrent writers
        return out

    results = [None, None]

    def work(i):
        results[i] = cache.read(str(src), decode)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert cache.misses == 2
    for arr, grid in results:
        np.testing.assert_array_equal(arr, data)
        assert grid == GRID
    [entry] = entries(tmp_path / "cache")  # one entry, no temporary file left
    got = cache.get(str(src))
    assert got is not None
    np.testing.assert_array_equal(got[0], data)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign"])
def test_a_bad_entry_is_recreated(source, tmp_path, damage, caplog):
    src, data = source
    cache, decode = TranscodeCache(tmp_path / "cache"), Counting()
    cache.read(str(src), decode)
    [entry] = entries(tmp_path / "cache")
    if damage == "truncate":
        entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    elif damage == "garbage":
        entry.write_bytes(b"II*\x00" + os.urandom(4000))
    else:  # a complete entry of another source, at this source's name
        other = write_jp2(tmp_path / "other.jp2", dn(4))
        TranscodeCache(tmp_path / "c2").read(str(other), read_source)
        [foreign] = entries(tmp_path / "c2")
        entry.write_bytes(foreign.read_bytes())
    assert cache.get(str(src)) is None  # never trusted ...
    assert cache.rejected == 1 and "not usable" in caplog.text
    assert not entry.exists()  # ... removed
    a, _ = cache.read(str(src), decode)  # ... and re-created from the source
    assert decode.calls == 2
    np.testing.assert_array_equal(a, data)
    np.testing.assert_array_equal(cache.get(str(src))[0], data)


def test_read_dn_through_the_cache_equals_the_source_on_real_bands(s2_safe_dir, tmp_path):
    from gpumaja.io.products import open_product

    product = open_product(sorted(s2_safe_dir.glob("*.SAFE"))[0])
    cache = TranscodeCache(tmp_path / "cache")
    for band in product.band_files:
        direct = read_dn(product, band)
        first = read_dn(product, band, cache)  # miss: decoded, stored
        again = read_dn(product, band, cache)  # hit
        for a in (first, again):
            assert a.dtype == direct.dtype and a.shape == direct.shape
            np.testing.assert_array_equal(a, direct)
    assert cache.hits == cache.misses == len(product.band_files)


def test_unknown_codec_is_refused(tmp_path):
    with pytest.raises(ValueError, match="codec"):
        TranscodeCache(tmp_path, codec="jpeg")
