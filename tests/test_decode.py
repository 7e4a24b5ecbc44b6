"""Band decoding in a pool of threads, the decoder choice and the GPU paths (gpumaja/io/decode.py,
gpumaja/pipeline/transfer.py, the decode pool in gpumaja/pipeline/l2a_inputs.py).

Checked: the choice of decoder (parameter, GPUMAJA_DECODER, auto on the CPU, refusals) and its log
line; the worker count; bands decode concurrently on the pool's threads, each decoded once when
prefetched; the pool gives the arrays of the sequential read_dn on the real SAFE (every band, the
resampled ones included) and read_date with a pool gives the inputs of read_date without; a band's
error is raised by decode. On a GPU: nvImageCodec decodes real and 15-bit lossless JP2 files to the
bytes rasterio/OpenJPEG gives, and pinned uploads give the host arrays.
"""

from __future__ import annotations

import logging
import threading

import numpy as np
import pytest

from gpumaja.backend import CPU, Backend
from gpumaja.errors import DeviceError, InputError, MissingFileError
from gpumaja.io import decode as D
from gpumaja.io.bands import read_dn, read_source


@pytest.fixture(scope="module")
def product(s2_safe_dir):
    from gpumaja.io.products import open_product

    return open_product(sorted(s2_safe_dir.glob("*.SAFE"))[0])


# ------------------------------------------------------------------------------ decoder choice
def test_decoder_choice(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="gpumaja.io.decode")
    monkeypatch.delenv(D.DECODER_ENV, raising=False)
    assert D.select_decoder(None, CPU) == "rasterio"
    assert "decoder: rasterio/OpenJPEG (auto: the CPU backend is active)" in caplog.text
    assert D.select_decoder("rasterio", CPU) == "rasterio"
    with pytest.raises(DeviceError, match="nvimgcodec decoder was requested but the CPU backend"):
        D.select_decoder("nvimgcodec", CPU)
    monkeypatch.setenv(D.DECODER_ENV, "nvimgcodec")
    with pytest.raises(DeviceError):
        D.select_decoder(None, CPU)
    monkeypatch.setenv(D.DECODER_ENV, "opencv")
    with pytest.raises(InputError, match="GPUMAJA_DECODER"):
        D.select_decoder(None, CPU)


def test_auto_without_nvimgcodec_on_the_gpu_backend(monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="gpumaja.io.decode")
    monkeypatch.delenv(D.DECODER_ENV, raising=False)
    monkeypatch.setattr(D, "nvimgcodec_problem", lambda: "nvImageCodec is not installed")
    fake_gpu = Backend("gpu", np, "fake GPU")
    assert D.select_decoder("auto", fake_gpu) == "rasterio"
    assert "decoder: rasterio/OpenJPEG (auto: nvImageCodec is not installed)" in caplog.text


def test_worker_count(monkeypatch):
    monkeypatch.delenv(D.WORKERS_ENV, raising=False)
    assert D.decode_workers(3) == 3
    assert D.decode_workers() >= 1
    monkeypatch.setenv(D.WORKERS_ENV, "5")
    assert D.decode_workers() == 5
    for bad in ("0", "many"):
        monkeypatch.setenv(D.WORKERS_ENV, bad)
        with pytest.raises(InputError):
            D.decode_workers()


# ----------------------------------------------------------------------------------- the pool
def test_bands_decode_concurrently_once_each(monkeypatch, product):
    bands = ("B02", "B03", "B04", "B08")
    together = threading.Barrier(2, timeout=20)  # two decodes must be running at once
    calls = []
    lock = threading.Lock()

    def fake_read_dn(p, band, cache=None):
        with lock:
            calls.append((band, threading.current_thread().name))
        together.wait()
        return np.full((2, 2), int(band[1:]), np.uint16)

    monkeypatch.setattr(D, "read_dn", fake_read_dn)
    with D.DecodePool(workers=2, decoder="rasterio") as pool:
        pool.prefetch(product, bands)
        out = pool.decode(product, bands)
    assert sorted(b for b, _ in calls) == sorted(bands)  # prefetched bands are not decoded twice
    assert all(t.startswith("gpumaja-decode") for _, t in calls)
    for b in bands:
        np.testing.assert_array_equal(out[b], np.full((2, 2), int(b[1:]), np.uint16))


def test_pool_gives_the_sequential_arrays(product):
    bands = tuple(product.band_files)
    with D.DecodePool(workers=2, decoder="rasterio") as pool:
        out = pool.decode(product, bands)
        stack = pool.decode_stack(product, ("B02", "B03", "B04"))
    for b in bands:
        expected = read_dn(product, b)
        assert out[b].dtype == np.uint16
        np.testing.assert_array_equal(out[b], expected)
    np.testing.assert_array_equal(stack, np.stack([read_dn(product, b) for b in ("B02", "B03", "B04")]))


def test_decode_bands_with_a_cache(product, tmp_path):
    bands = ("B05", "B8A")
    first = D.decode_bands(product, bands, cache=tmp_path / "cache")
    again = D.decode_bands(product, bands, cache=tmp_path / "cache")
    assert len(list((tmp_path / "cache").rglob("*.tif"))) == 2
    for b in bands:
        np.testing.assert_array_equal(first[b], read_dn(product, b))
        np.testing.assert_array_equal(again[b], first[b])


def test_read_date_with_a_pool_gives_the_same_inputs(product):
    from gpumaja.pipeline.l2a_inputs import read_date, using_decoder

    plain = read_date(product, CPU)
    with D.DecodePool(workers=2, decoder="rasterio") as pool, using_decoder(pool):
        pooled = read_date(product, CPU)
    assert plain.groups.keys() == pooled.groups.keys()
    for g in plain.groups:
        a, b = plain.groups[g], pooled.groups[g]
        assert a.bands == b.bands
        np.testing.assert_array_equal(a.toa, b.toa)
        np.testing.assert_array_equal(a.saturated, b.saturated)


def test_a_band_error_is_raised_by_decode(product, tmp_path):
    import dataclasses

    broken = dataclasses.replace(product, band_files={**product.band_files, "B03": str(tmp_path / "gone.jp2")})
    with D.DecodePool(workers=2, decoder="rasterio") as pool:
        pool.prefetch(broken, ("B02", "B03"))
        with pytest.raises(MissingFileError, match="gone.jp2"):
            pool.decode(broken, ("B02", "B03"))


# ----------------------------------------------------------- GPU routing, with a fake decoder
class FakeNvImg:
    """Stands for NvImgCodecDecoder: 'decodes' with rasterio on the host, records the files."""

    seen: list[str] = []
    fail_all = False

    def __init__(self, cpu_threads: int = 0):
        pass

    def decode(self, paths, shapes):
        FakeNvImg.seen += list(paths)
        return [None if self.fail_all else read_source(p)[0] for p in paths]


@pytest.fixture
def fake_gpu(monkeypatch):
    monkeypatch.delenv(D.DECODER_ENV, raising=False)
    monkeypatch.setattr(D, "nvimgcodec_problem", lambda: None)
    monkeypatch.setattr(D, "NvImgCodecDecoder", FakeNvImg)
    FakeNvImg.seen, FakeNvImg.fail_all = [], False
    return Backend("gpu", np, "fake GPU")


def test_gpu_decoder_takes_jp2_files_on_their_grid(fake_gpu, product, tmp_path):
    bands = ("B02", "B04", "B05", "B8A")  # the 20 m bands of this windowed SAFE are resampled 10 m files
    with D.DecodePool(workers=2, decoder="auto", backend=fake_gpu) as pool:
        assert pool.kind == "nvimgcodec"
        out = pool.decode(product, bands)
    assert sorted(FakeNvImg.seen) == sorted(product.band_files[b] for b in ("B02", "B04"))
    for b in bands:
        np.testing.assert_array_equal(out[b], read_dn(product, b))
    FakeNvImg.seen = []
    with D.DecodePool(workers=2, decoder="auto", backend=fake_gpu, cache=tmp_path / "c") as pool:
        pool.decode(product, bands)
    assert FakeNvImg.seen == []  # with a cache every band is read through it on the CPU


def test_gpu_decoder_that_decodes_nothing_falls_back(fake_gpu, product, caplog):
    FakeNvImg.fail_all = True
    with D.DecodePool(workers=2, decoder="auto", backend=fake_gpu) as pool:
        first = pool.decode(product, ("B02", "B03"))
        FakeNvImg.seen = []
        pool.decode(product, ("B04",))
    assert FakeNvImg.seen == []  # not asked again
    assert "decoded none of 2 JPEG 2000 files" in caplog.text
    for b in ("B02", "B03"):
        np.testing.assert_array_equal(first[b], read_dn(product, b))


def test_gpu_decoder_that_cannot_start(fake_gpu, monkeypatch, caplog):
    def broken(*a, **k):
        raise RuntimeError("no nvjpeg2k")

    monkeypatch.setattr(D, "NvImgCodecDecoder", broken)
    with D.DecodePool(workers=1, decoder="auto", backend=fake_gpu) as pool:
        assert pool.kind == "rasterio"
    assert "failed to start (no nvjpeg2k)" in caplog.text
    with pytest.raises(DeviceError, match="failed to start"):
        D.DecodePool(workers=1, decoder="nvimgcodec", backend=fake_gpu)


# ------------------------------------------------------------------------------------ the GPU
def _nvimgcodec():
    if D.nvimgcodec_problem() is not None:
        pytest.skip(D.nvimgcodec_problem())
    return D.NvImgCodecDecoder()


def _lossless_15bit(path, n=1100):
    """A 15-bit lossless JP2 of several 512 px tiles, like an S2 band (known content)."""
    import rasterio
    from rasterio.transform import from_origin

    yy, xx = np.mgrid[0:n, 0:n]
    data = ((yy * 7 + xx * 13) % 32000 + np.random.default_rng(0).integers(0, 700, (n, n))).astype(np.uint16)
    with rasterio.open(path, "w", driver="JP2OpenJPEG", width=n, height=n, count=1, dtype="uint16",
                       crs="EPSG:32631", transform=from_origin(300000, 4900020, 10, 10), QUALITY=100,
                       REVERSIBLE="YES", NBITS=15, BLOCKXSIZE=512, BLOCKYSIZE=512) as ds:
        ds.write(data, 1)
    return data


@pytest.mark.gpu
def test_nvimgcodec_decodes_the_bytes_of_openjpeg(s2_safe_dir, tmp_path):
    dec = _nvimgcodec()
    real = sorted(s2_safe_dir.glob("*.SAFE/GRANULE/*/IMG_DATA/*_B0[1-8].jp2"))
    assert real
    synth = tmp_path / "B04_15bit.jp2"
    data = _lossless_15bit(synth)
    paths = [str(p) for p in real] + [str(synth)]
    refs = [read_source(p)[0] for p in paths]
    np.testing.assert_array_equal(refs[-1], data)
    got = dec.decode(paths, [r.shape for r in refs])
    for p, r, g in zip(paths, refs, got):
        assert g is not None, p
        g = g.get()
        assert g.dtype == np.uint16 and g.shape == r.shape, p
        assert g.tobytes() == r.tobytes(), p


@pytest.mark.gpu
def test_nvimgcodec_pool_stack_equals_the_cpu_stack(product):
    _nvimgcodec()
    from gpumaja.backend import select_backend

    gpu = select_backend("gpu")
    bands = ("B02", "B03", "B04", "B08")
    with D.DecodePool(workers=2, decoder="nvimgcodec", backend=gpu) as pool:
        assert pool.kind == "nvimgcodec"
        stack = pool.decode_stack(product, bands)
    np.testing.assert_array_equal(stack.get(), np.stack([read_dn(product, b) for b in bands]))


@pytest.mark.gpu
def test_pinned_uploads_equal_the_host_arrays():
    import cupy

    from gpumaja.pipeline.transfer import PinnedUploader, stack_to_device

    up = PinnedUploader(slots=2)
    rng = np.random.default_rng(5)
    host = [rng.integers(0, 65535, (257, 311), dtype=np.uint16) for _ in range(5)]
    dev = stack_to_device(host, up)  # 5 uploads through 2 reused buffers
    one = up.upload(host[0].astype(np.float32))
    big = rng.random((1000, 1200), dtype=np.float32)  # a buffer grows when needed
    dev_big = up.upload(big)
    cupy.cuda.get_current_stream().synchronize()
    np.testing.assert_array_equal(dev.get(), np.stack(host))
    np.testing.assert_array_equal(one.get(), host[0].astype(np.float32))
    np.testing.assert_array_equal(dev_big.get(), big)
    mixed = stack_to_device([host[1], cupy.asarray(host[2])], up)
    np.testing.assert_array_equal(mixed.get(), np.stack(host[1:3]))
