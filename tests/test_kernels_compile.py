"""Every kernels/*.cu compiles with NVRTC for sm_80 and sm_90, no GPU needed.

A new .cu file is covered automatically (parametrized over `kernel_files()`); its template
instantiations come from its `// gpumaja-instantiate: ...` line (`declared_instances`), the same list
the Python wrappers compile, and each one must be a `.entry` of the PTX.
"""

from __future__ import annotations

import re

import pytest

from gpumaja import kernels
from gpumaja.errors import KernelCompileError

ARCHS = ("compute_80", "compute_90")


def _nvrtc_problem() -> str | None:
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
    except Exception as exc:  # noqa: BLE001 -- ImportError, or libnvrtc not found at call time
        return f"{type(exc).__name__}: {exc}"
    return None


_PROBLEM = _nvrtc_problem()
pytestmark = pytest.mark.skipif(
    _PROBLEM is not None,
    reason=(
        f"NVRTC is not usable ({_PROBLEM}); install the dev extra (cupy-cuda12x + "
        "nvidia-cuda-nvrtc-cu12), which CI does, so this skip must not happen there"
    ),
)

KERNEL_NAMES = [p.stem for p in kernels.kernel_files()]


@pytest.fixture(autouse=True)
def _fresh_source_cache():
    kernels.kernel_source.cache_clear()
    kernels.declared_instances.cache_clear()
    yield
    kernels.kernel_source.cache_clear()
    kernels.declared_instances.cache_clear()


def test_there_are_kernels():
    assert {"toa", "coarse"} <= set(KERNEL_NAMES)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_kernel_compiles_to_ptx(name, arch):
    instances = kernels.declared_instances(name)
    ptx, lowered = kernels.nvrtc_compile_entries(name, arch, instances)
    entries = set(re.findall(r"\.entry\s+([A-Za-z_$][\w$]*)\s*\(", ptx))
    assert entries, f"kernels/{name}.cu compiled to PTX without any .entry"
    target = arch.replace("compute_", "sm_")
    assert re.search(rf"^\.target\s+{target}\b", ptx, re.MULTILINE), f"PTX of {name}.cu is not for {target}"
    for inst in instances:
        assert lowered[inst] in entries, f"{inst} ({lowered[inst]}) is not an entry of {name}.cu: {entries}"


def test_declared_instances_of_the_first_kernels():
    assert kernels.declared_instances("toa") == ("dn_to_toa<unsigned short>", "dn_to_toa<float>")
    assert kernels.declared_instances("coarse") == ("block_mean",)


def test_split_instances_keeps_template_arguments_together():
    assert kernels._split_instances(" a<unsigned short>  a<float> b<int, unsigned char> c ") == [
        "a<unsigned short>",
        "a<float>",
        "b<int, unsigned char>",
        "c",
    ]


def test_nvrtc_compile_returns_ptx():
    ptx = kernels.nvrtc_compile("toa", "compute_80", kernels.declared_instances("toa"))
    assert ".entry" in ptx


def test_toa_kernel_does_not_fuse_multiply_add():
    """The NumPy twin rounds after each float32 operation; an FMA would not."""
    ptx = kernels.nvrtc_compile("toa", "compute_80", kernels.declared_instances("toa"))
    assert not re.search(r"\bfma\.\w+\.f32\b", ptx)


BROKEN = """\
// gpumaja-instantiate: broken<float>
template <typename T>
__global__ void broken(T* out, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = undefined_symbol_here;
}
"""
BROKEN_LINE = 6


def test_broken_kernel_names_file_and_line(tmp_path, monkeypatch):
    (tmp_path / "broken.cu").write_text(BROKEN)
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    assert [p.name for p in kernels.kernel_files()] == ["broken.cu"]
    with pytest.raises(KernelCompileError) as info:
        kernels.nvrtc_compile("broken", "compute_80", kernels.declared_instances("broken"))
    message = str(info.value)
    assert "broken.cu" in message
    assert f"broken.cu({BROKEN_LINE})" in message, message
    assert "undefined_symbol_here" in message


def test_missing_kernel_source_raises(tmp_path, monkeypatch):
    (tmp_path / "other.cu").write_text('extern "C" __global__ void k() {}\n')
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    with pytest.raises(KernelCompileError, match="nope.cu"):
        kernels.nvrtc_compile("nope")


def test_local_header_is_inlined_with_line_directives(tmp_path, monkeypatch):
    (tmp_path / "h.cuh").write_text("#pragma once\n__device__ int f() { return 1; }\n")
    (tmp_path / "k.cu").write_text('// k\n#include "h.cuh"\nextern "C" __global__ void g() {}\n')
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    src = kernels.kernel_source("k").splitlines()
    assert src[0] == f'#line 1 "{tmp_path / "k.cu"}"'
    assert src[2] == f'#line 1 "{tmp_path / "h.cuh"}"'
    assert "__device__ int f() { return 1; }" in src
    assert "#pragma once" not in src
    assert src[src.index("__device__ int f() { return 1; }") + 1] == f'#line 3 "{tmp_path / "k.cu"}"'


def test_missing_header_is_a_compile_error(tmp_path, monkeypatch):
    (tmp_path / "k.cu").write_text('#include "nope.cuh"\n')
    monkeypatch.setattr(kernels, "kernel_dir", lambda: tmp_path)
    with pytest.raises(KernelCompileError, match="nope.cuh"):
        kernels.kernel_source("k")
