import numpy as np
import pytest

from gpumaja.backend import array_module, select_backend, to_numpy
from gpumaja.errors import DeviceError
from tests.conftest import gpu_available


def test_cpu_backend_is_numpy(caplog):
    caplog.set_level("INFO", logger="gpumaja")
    b = select_backend("cpu")
    assert b.xp is np and not b.is_gpu
    assert "backend" in caplog.text


def test_unknown_device_is_an_error():
    with pytest.raises(DeviceError, match="--device"):
        select_backend("tpu")


@pytest.mark.skipif(gpu_available(), reason="needs a machine without a usable GPU")
def test_gpu_without_gpu_is_a_clear_error_and_auto_falls_back():
    with pytest.raises(DeviceError, match="--device gpu"):
        select_backend("gpu")
    assert select_backend("auto").name == "cpu"


@pytest.mark.gpu
def test_auto_picks_the_gpu():
    b = select_backend("auto")
    assert b.is_gpu
    a = b.xp.arange(3)
    assert array_module(a) is b.xp
    assert isinstance(to_numpy(a), np.ndarray)
