"""dn_to_toa: NumPy twin against hand-computed values, and the CUDA kernel against the twin."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gpumaja.backend import CPU, Backend
from gpumaja.radiometry.toa import FLAG_NODATA, FLAG_SATURATED, dn_to_toa, dn_to_toa_numpy

# Sentinel-2 L1C, processing baseline >= 04.00 (05.10 for the Toulouse SAFEs): QUANTIFICATION_VALUE
# 10000, RADIO_ADD_OFFSET -1000 -> rho = (DN - 1000) / 10000.
S2_GAIN = 1.0 / 10000.0
S2_OFFSET = -1000.0 / 10000.0
# Landsat Collection 2: REFLECTANCE_MULT 2.0e-5, REFLECTANCE_ADD -0.1, / sin(sun elevation).
LS_GAIN = 2.0e-5
LS_OFFSET = -0.1


def test_flag_constants():
    assert FLAG_NODATA == 1
    assert FLAG_SATURATED == 2


def test_s2_hand_values():
    dn = np.array([[1000, 1500, 11000, 0, 65535]], dtype=np.uint16)
    toa, flags = dn_to_toa(dn, [S2_GAIN], [S2_OFFSET])
    assert toa.dtype == np.float32 and flags.dtype == np.uint8
    assert toa.shape == dn.shape and flags.shape == dn.shape
    np.testing.assert_allclose(toa[0, :3], [0.0, 0.05, 1.0], rtol=1e-6, atol=1e-7)
    assert math.isnan(toa[0, 3])
    np.testing.assert_allclose(toa[0, 4], (65535 - 1000) / 10000.0, rtol=1e-6)
    assert flags.tolist() == [[0, 0, 0, FLAG_NODATA, FLAG_SATURATED]]


def test_landsat_hand_values():
    elev = 38.5
    dn = np.array([[7823, 10000, 20000]], dtype=np.uint16)
    toa, flags = dn_to_toa(dn, LS_GAIN, LS_OFFSET, math.sin(math.radians(elev)))
    expected = (dn[0].astype(np.float64) * LS_GAIN + LS_OFFSET) / math.sin(math.radians(elev))
    np.testing.assert_allclose(toa[0], expected, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(toa[0, 1], 0.1 / math.sin(math.radians(elev)), rtol=1e-6)
    assert not flags.any()


def test_per_band_parameters_and_3d_shape():
    dn = np.full((3, 2, 4), 2000, dtype=np.uint16)
    toa, flags = dn_to_toa(dn, [1e-4, 2e-4, 1e-4], [-0.1, 0.0, 0.0], [1.0, 1.0, 0.5])
    assert toa.shape == (3, 2, 4)
    np.testing.assert_allclose(toa[0], 0.1, rtol=1e-6)
    np.testing.assert_allclose(toa[1], 0.4, rtol=1e-6)
    np.testing.assert_allclose(toa[2], 0.4, rtol=1e-6)
    assert not flags.any()


def test_exact_float32_arithmetic():
    """The twin does (float32(DN) * gain + offset) * float32(1 / sun_factor), rounding each step."""
    rng = np.random.default_rng(1)
    dn = rng.integers(1, 65535, size=(2, 1000), dtype=np.uint16)
    gain, offset, sun = [2.0e-5, 1e-4], [-0.1, -0.1], [0.7, 1.0]
    toa, _ = dn_to_toa_numpy(dn, gain, offset, sun)
    for b in range(2):
        g, o = np.float32(gain[b]), np.float32(offset[b])
        inv = np.float32(1.0 / sun[b])
        expected = ((dn[b].astype(np.float32) * g) + o) * inv
        np.testing.assert_array_equal(toa[b], expected.astype(np.float32))


def test_nodata_and_saturated_custom_values():
    dn = np.array([[5, 7, 9, 100]], dtype=np.uint16)
    toa, flags = dn_to_toa(dn, 1.0, 0.0, nodata=5, saturated=9)
    assert flags.tolist() == [[FLAG_NODATA, 0, FLAG_SATURATED, 0]]
    assert math.isnan(toa[0, 0])
    assert toa[0, 1:].tolist() == [7.0, 9.0, 100.0]


def test_float_dn_nan_is_nodata():
    dn = np.array([[np.nan, 0.0, 1500.0, 65535.0]], dtype=np.float32)
    toa, flags = dn_to_toa(dn, S2_GAIN, S2_OFFSET)
    assert flags.tolist() == [[FLAG_NODATA, FLAG_NODATA, 0, FLAG_SATURATED]]
    assert np.isnan(toa[0, :2]).all()
    np.testing.assert_allclose(toa[0, 2], 0.05, rtol=1e-6)


def test_other_integer_dtypes_match_uint16():
    rng = np.random.default_rng(2)
    dn16 = rng.integers(0, 65536, size=(2, 300), dtype=np.uint16)
    a = dn_to_toa(dn16, S2_GAIN, S2_OFFSET)
    b = dn_to_toa(dn16.astype(np.int32), S2_GAIN, S2_OFFSET)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_explicit_cpu_backend_returns_numpy():
    toa, flags = dn_to_toa(np.ones((1, 3), np.uint16), 1.0, 0.0, backend=CPU)
    assert type(toa) is np.ndarray and type(flags) is np.ndarray


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"gain": [1.0, 2.0, 3.0], "offset": 0.0}, "gain has 3 values for 2 bands"),
        ({"gain": 1.0, "offset": [0.0]}, None),
        ({"gain": 1.0, "offset": 0.0, "sun_factor": 0.0}, "sun_factor"),
    ],
)
def test_parameter_validation(kwargs, match):
    dn = np.ones((2, 4), np.uint16)
    if match is None:
        dn_to_toa(dn, **kwargs)  # a single value broadcasts to every band
        return
    with pytest.raises(ValueError, match=match):
        dn_to_toa(dn, **kwargs)


def test_rejects_1d():
    with pytest.raises(ValueError, match="bands"):
        dn_to_toa(np.ones(5, np.uint16), 1.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(
    dn=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=12)),
    gain=st.floats(1e-6, 1e-2),
    offset=st.floats(-0.2, 0.2),
    elev=st.floats(5.0, 90.0),
)
def test_property_matches_float64_formula(dn, gain, offset, elev):
    sun = math.sin(math.radians(elev))
    toa, flags = dn_to_toa(dn, gain, offset, sun)
    nodata = dn == 0
    assert np.array_equal((flags & FLAG_NODATA) != 0, nodata)
    assert np.array_equal((flags & FLAG_SATURATED) != 0, dn == 65535)
    assert np.isnan(toa[nodata]).all()
    expected = (dn.astype(np.float64) * np.float32(gain) + np.float32(offset)) * np.float32(1.0 / sun)
    scale = (65535.0 * gain + abs(offset)) / sun  # magnitude of the terms: bounds the rounding error
    np.testing.assert_allclose(toa[~nodata], expected[~nodata], rtol=1e-6, atol=1e-6 * scale)


# ----------------------------------------------------------------------------------------------
# Real Sentinel-2 L1C band files (30 x 30 crops of T31TCJ, baseline 05.10)

S2_10M = ("B02", "B03", "B04", "B08")


def _read_s2_dn(safe: Path, bands=S2_10M) -> np.ndarray:
    rasterio = pytest.importorskip("rasterio")
    arrays = []
    for band in bands:
        files = sorted(safe.glob(f"GRANULE/*/IMG_DATA/*_{band}.jp2"))
        assert files, f"{safe}: no {band} band file"
        with rasterio.open(files[0]) as ds:
            arrays.append(ds.read(1))
    dn = np.stack(arrays)
    # The S2B crops were re-encoded (OTB) as int16; the values are still the L1C uint16 DNs.
    assert dn.dtype in (np.uint16, np.int16) and dn.min() >= 0, (safe, dn.dtype, dn.min())
    return dn.astype(np.uint16)


def _safes(s2_safe_dir: Path) -> list[Path]:
    safes = sorted(s2_safe_dir.glob("*.SAFE"))
    assert safes, f"no SAFE in {s2_safe_dir}"
    return safes


def test_real_s2_numpy_twin(s2_safe_dir):
    for safe in _safes(s2_safe_dir):
        assert "_N05" in safe.name  # RADIO_ADD_OFFSET -1000 from baseline 04.00 on
        dn = _read_s2_dn(safe)
        assert dn.ndim == 3 and dn.shape[0] == 4 and (dn > 0).all()
        toa, flags = dn_to_toa(dn, S2_GAIN, S2_OFFSET)
        np.testing.assert_allclose(toa, (dn.astype(np.float64) - 1000.0) / 10000.0, rtol=1e-6, atol=1e-7)
        assert not (flags & FLAG_NODATA).any()


# ----------------------------------------------------------------------------------------------
# GPU: the CUDA kernel against the NumPy twin


@pytest.fixture
def cp():
    import cupy

    return cupy


def _random_dn(rng, shape, nodata_frac=0.03, sat_frac=0.02) -> np.ndarray:
    dn = rng.integers(1, 65535, size=shape, dtype=np.uint16)  # valid range 1..65534
    u = rng.random(shape)
    dn[u < nodata_frac] = 0
    dn[(u >= nodata_frac) & (u < nodata_frac + sat_frac)] = 65535
    return dn


def _assert_gpu_matches(cp, dn_gpu, toa_gpu, flags_gpu, dn_host, *params):
    assert type(toa_gpu) is cp.ndarray and type(flags_gpu) is cp.ndarray
    assert toa_gpu.dtype == cp.float32 and flags_gpu.dtype == cp.uint8
    assert toa_gpu.shape == dn_gpu.shape == flags_gpu.shape
    toa_ref, flags_ref = dn_to_toa_numpy(dn_host, *params)
    toa, flags = cp.asnumpy(toa_gpu), cp.asnumpy(flags_gpu)
    np.testing.assert_array_equal(flags, flags_ref)
    nan = np.isnan(toa_ref)
    np.testing.assert_array_equal(np.isnan(toa), nan)
    np.testing.assert_array_max_ulp(toa[~nan], toa_ref[~nan], maxulp=1)


@pytest.mark.gpu
@pytest.mark.parametrize("shape", [(4, 1001, 517), (1, 7, 3), (13, 5000), (6, 257, 1031)])
def test_gpu_matches_numpy_random_uint16(cp, shape):
    rng = np.random.default_rng(sum(shape))
    dn = _random_dn(rng, shape)
    nb = shape[0]
    gain = rng.uniform(1e-5, 2e-4, nb)
    offset = rng.uniform(-0.2, 0.0, nb)
    sun = rng.uniform(0.2, 1.0, nb)
    d_dn = cp.asarray(dn)
    toa, flags = dn_to_toa(d_dn, gain, offset, sun)
    _assert_gpu_matches(cp, d_dn, toa, flags, dn, gain, offset, sun)
    assert (cp.asnumpy(flags) == FLAG_NODATA).any() and (cp.asnumpy(flags) == FLAG_SATURATED).any()


@pytest.mark.gpu
def test_gpu_matches_numpy_landsat_and_s2(cp):
    rng = np.random.default_rng(7)
    dn = _random_dn(rng, (3, 333, 444))
    for params in ((S2_GAIN, S2_OFFSET, 1.0), (LS_GAIN, LS_OFFSET, math.sin(math.radians(27.3)))):
        d_dn = cp.asarray(dn)
        toa, flags = dn_to_toa(d_dn, *params)
        _assert_gpu_matches(cp, d_dn, toa, flags, dn, *params)


@pytest.mark.gpu
def test_gpu_float_instance(cp):
    rng = np.random.default_rng(3)
    dn = _random_dn(rng, (2, 123, 77)).astype(np.float32)
    dn[0, 5, 5] = np.nan
    d_dn = cp.asarray(dn)
    toa, flags = dn_to_toa(d_dn, [S2_GAIN, LS_GAIN], [S2_OFFSET, LS_OFFSET], [1.0, 0.8])
    _assert_gpu_matches(cp, d_dn, toa, flags, dn, [S2_GAIN, LS_GAIN], [S2_OFFSET, LS_OFFSET], [1.0, 0.8])
    assert int(flags[0, 5, 5]) == FLAG_NODATA


@pytest.mark.gpu
def test_gpu_non_contiguous_and_custom_flags(cp):
    rng = np.random.default_rng(4)
    dn = _random_dn(rng, (3, 64, 90))
    dn[:, ::7, ::5] = 17
    dn[:, 3, :] = 60000
    d_dn = cp.asarray(dn)[:, :, ::2]  # not contiguous: the wrapper copies
    toa, flags = dn_to_toa(d_dn, 1e-4, 0.0, nodata=17, saturated=60000)
    _assert_gpu_matches(cp, d_dn, toa, flags, dn[:, :, ::2], 1e-4, 0.0, 1.0, 17, 60000)


@pytest.mark.gpu
def test_gpu_backend_moves_numpy_input(cp):
    from gpumaja.backend import select_backend

    backend = select_backend("gpu")
    assert isinstance(backend, Backend) and backend.is_gpu
    dn = _random_dn(np.random.default_rng(5), (2, 50, 60))
    toa, flags = dn_to_toa(dn, S2_GAIN, S2_OFFSET, backend=backend)
    _assert_gpu_matches(cp, dn, toa, flags, dn, S2_GAIN, S2_OFFSET)
    # an explicit CPU backend brings a CuPy input back to NumPy
    toa_cpu, _ = dn_to_toa(cp.asarray(dn), S2_GAIN, S2_OFFSET, backend=CPU)
    assert type(toa_cpu) is np.ndarray


@pytest.mark.gpu
def test_gpu_empty(cp):
    toa, flags = dn_to_toa(cp.zeros((2, 0), cp.uint16), 1.0, 0.0)
    assert toa.shape == (2, 0) and flags.shape == (2, 0) and type(toa) is cp.ndarray


@pytest.mark.gpu
def test_gpu_real_s2(cp, s2_safe_dir):
    for safe in _safes(s2_safe_dir):
        dn = _read_s2_dn(safe)
        dn[1, :3, :3] = 0  # a few nodata pixels
        d_dn = cp.asarray(dn)
        toa, flags = dn_to_toa(d_dn, S2_GAIN, S2_OFFSET)
        _assert_gpu_matches(cp, d_dn, toa, flags, dn, S2_GAIN, S2_OFFSET)
        valid = dn > 0
        np.testing.assert_allclose(
            cp.asnumpy(toa)[valid], (dn[valid].astype(np.float64) - 1000.0) / 10000.0, rtol=1e-6, atol=1e-7
        )
