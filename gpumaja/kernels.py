"""Loads and caches the raw CUDA kernels of `kernels/*.cu`.

- Sources ship inside the wheel as `gpumaja/_kernels/*.cu`; in a source checkout they are read from the
  repository's `kernels/` folder.
- Each source is prefixed with `#line 1 "<path>"`, so NVRTC errors point at the real `.cu` line.
- Templated kernels are instantiated through `name_expressions` (e.g. "dn_to_toa<unsigned short>").
  Each .cu lists the instances it provides on a `// gpumaja-instantiate: ...` line, read by
  `declared_instances`; the wrappers and the NVRTC compile test use that same list.
- Compiled modules are memoized per device (CuPy also keeps its on-disk cache, `CUPY_CACHE_DIR`).
- `nvrtc_compile` compiles a source to PTX through `cupy_backends.cuda.libs.nvrtc` without any GPU or
  driver (the `nvidia-cuda-nvrtc-cu12` wheel is enough): CI uses it so that a kernel that does not
  compile fails the tests.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from pathlib import Path

from gpumaja.errors import KernelCompileError

_PACKAGE_DIR = Path(__file__).resolve().parent
COMPILE_OPTIONS = ("--std=c++17",)
_lock = threading.Lock()
_modules: dict[tuple, object] = {}


def kernel_dir() -> Path:
    """Folder holding the .cu sources: the wheel's `_kernels`, else the checkout's `kernels/`."""
    for candidate in (_PACKAGE_DIR / "_kernels", _PACKAGE_DIR.parent / "kernels"):
        if candidate.is_dir() and any(candidate.glob("*.cu")):
            return candidate
    raise KernelCompileError(f"no CUDA sources found in {_PACKAGE_DIR / '_kernels'} or {_PACKAGE_DIR.parent / 'kernels'}")


def kernel_files() -> list[Path]:
    return sorted(kernel_dir().glob("*.cu"))


_INCLUDE = re.compile(r'^\s*#include\s+"([A-Za-z0-9_]+\.cuh)"\s*$')


@lru_cache(maxsize=None)
def kernel_source(name: str) -> str:
    """Source of `kernels/<name>.cu` with `#line` directives naming the file; a local
    `#include "x.cuh"` is replaced by that header's text (with its own `#line`), so NVRTC compiles the
    program without an include path and its errors still point at the right file and line."""
    path = kernel_dir() / f"{name}.cu"
    if not path.is_file():
        raise KernelCompileError(f"{path}: no such kernel source")
    out = [f'#line 1 "{path}"']
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        m = _INCLUDE.match(line)
        if m is None:
            out.append(line)
            continue
        header = kernel_dir() / m.group(1)
        if not header.is_file():
            raise KernelCompileError(f"{path}:{n}: included header {header.name} not found in {kernel_dir()}")
        out.append(f'#line 1 "{header}"')
        out.extend(ln for ln in header.read_text().splitlines() if ln.strip() != "#pragma once")
        out.append(f'#line {n + 1} "{path}"')
    return "\n".join(out) + "\n"


INSTANTIATE_TAG = "gpumaja-instantiate:"


def _split_instances(text: str) -> list[str]:
    """Split on whitespace outside <...>, so "f<unsigned short> f<float>" gives two names."""
    out, cur, depth = [], [], 0
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        if ch.isspace() and depth == 0:
            if cur:
                out.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


@lru_cache(maxsize=None)
def declared_instances(name: str) -> tuple[str, ...]:
    """Kernel names / template instantiations that `kernels/<name>.cu` declares on its
    `// gpumaja-instantiate: a<unsigned short> a<float> b` comment line(s), in order."""
    found: list[str] = []
    for line in kernel_source(name).splitlines():
        stripped = line.strip()
        if stripped.startswith("//") and INSTANTIATE_TAG in stripped:
            for inst in _split_instances(stripped.split(INSTANTIATE_TAG, 1)[1]):
                if inst not in found:
                    found.append(inst)
    return tuple(found)


def get_module(name: str, name_expressions: tuple[str, ...] = (), options: tuple[str, ...] = ()):
    """The compiled `cupy.RawModule` of `kernels/<name>.cu` on the current device (memoized)."""
    import cupy

    key = (cupy.cuda.Device().id, name, tuple(name_expressions), tuple(options))
    with _lock:
        module = _modules.get(key)
        if module is None:
            module = cupy.RawModule(
                code=kernel_source(name),
                options=COMPILE_OPTIONS + tuple(options),
                name_expressions=list(name_expressions) or None,
            )
            try:
                module.compile()
            except cupy.cuda.compiler.CompileException as exc:
                raise KernelCompileError(f"kernels/{name}.cu failed to compile:\n{exc}") from exc
            _modules[key] = module
    return module


def get_function(name: str, function: str, name_expressions: tuple[str, ...] = ()):
    """A kernel function of `kernels/<name>.cu`; `function` may be a template instantiation."""
    module = get_module(name, name_expressions=name_expressions or ((function,) if "<" in function else ()))
    return module.get_function(function)


def nvrtc_compile(name: str, arch: str = "compute_80", name_expressions: tuple[str, ...] = ()) -> str:
    """Compile `kernels/<name>.cu` to PTX with NVRTC, no GPU needed. Returns the PTX text.

    Raises KernelCompileError with NVRTC's log (pointing into the .cu file) when compilation fails.
    """
    return nvrtc_compile_entries(name, arch, name_expressions)[0]


def nvrtc_compile_entries(
    name: str, arch: str = "compute_80", name_expressions: tuple[str, ...] = ()
) -> tuple[str, dict[str, str]]:
    """Like `nvrtc_compile`, also returning {name expression: lowered (mangled) name}."""
    from cupy_backends.cuda.libs import nvrtc

    prog = nvrtc.createProgram(kernel_source(name), f"{name}.cu", [], [])
    try:
        for expr in name_expressions:
            nvrtc.addNameExpression(prog, expr)
        try:
            nvrtc.compileProgram(prog, [f"--gpu-architecture={arch}", *COMPILE_OPTIONS])
        except nvrtc.NVRTCError as exc:
            raise KernelCompileError(
                f"kernels/{name}.cu failed to compile:\n{nvrtc.getProgramLog(prog)}"
            ) from exc
        lowered = {}
        for expr in name_expressions:
            low = nvrtc.getLoweredName(prog, expr)
            lowered[expr] = low.decode() if isinstance(low, bytes) else low
        ptx = nvrtc.getPTX(prog)
        return (ptx.decode() if isinstance(ptx, bytes) else ptx), lowered
    finally:
        nvrtc.destroyProgram(prog)


def launch_config(n: int, block: int = 256) -> tuple[tuple[int], tuple[int]]:
    """1-D grid/block sizes covering n elements."""
    return ((max(1, (n + block - 1) // block),), (block,))
