"""The wheel ships every CUDA source (kernels/*.cu and *.cuh as gpumaja/_kernels/) and the default LUTs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

_MISSING = [m for m in ("build", "hatchling") if importlib.util.find_spec(m) is None]


@pytest.mark.slow
@pytest.mark.skipif(
    bool(_MISSING),
    reason=f"{', '.join(_MISSING)} not importable; the dev extra installs build and hatchling (as CI does)",
)
def test_wheel_contains_every_kernel(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        cwd=tmp_path,
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"wheel build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    wheels = list(tmp_path.glob("gpumaja-*.whl"))
    assert len(wheels) == 1, wheels
    with zipfile.ZipFile(wheels[0]) as zf:
        names = set(zf.namelist())
    shipped = {Path(n).name for n in names if n.startswith("gpumaja/_kernels/") and n.endswith((".cu", ".cuh"))}
    sources = {p.name for p in (REPO / "kernels").glob("*.cu*")}
    assert sources, "no kernels/*.cu in the checkout"
    assert sources <= shipped, f"missing from the wheel: {sorted(sources - shipped)}"
    assert "gpumaja/kernels.py" in names
    assert "gpumaja/radiometry/toa.py" in names and "gpumaja/radiometry/coarse.py" in names
    # the default 6S LUTs travel with the package (gpumaja l2a works with no download)
    luts = {Path(p).name for p in (REPO / "gpumaja" / "data" / "luts").glob("*.npz")}
    assert luts and {f"gpumaja/data/luts/{n}" for n in luts} <= names
