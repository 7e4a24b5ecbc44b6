"""Mini-LUTs for the atmosphere tests: a random one on irregular axes, and a realistic one reduced from
the physical forward model `gpumaja.synth.atmosphere.ForwardLUT` (independent of the code under test)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from gpumaja.atmosphere.minilut import MiniLUT
from gpumaja.synth.atmosphere import ALTITUDE_AXIS, AOT_AXIS, ForwardLUT

# The MAJA GIPP TOA* axis (maja-l2a.md §3.1): -0.2 ... 1.13, step 0.07 (20 values)
GIPP_TOA_AXIS = np.round(-0.2 + 0.07 * np.arange(20), 6)
REALISTIC_BANDS = ("B02", "B04", "B8A", "B11")
SUN_ZENITH = 38.0
SUN_AZIMUTH = 152.0
VIEW_ZENITH = {"B02": 4.0, "B04": 4.5, "B8A": 5.0, "B11": 5.5}
VIEW_AZIMUTH = {"B02": 104.0, "B04": 106.0, "B8A": 108.0, "B11": 110.0}


def random_minilut(seed: int = 0, nb: int = 3, shape: tuple[int, int, int] = (4, 7, 9)) -> MiniLUT:
    """Random smooth-ish tables over irregular, strictly increasing axes."""
    rng = np.random.default_rng(seed)
    na, nt, nr = shape

    def axis(start, n, lo, hi):
        return (start + np.cumsum(rng.uniform(lo, hi, n)) - rng.uniform(lo, hi)).astype(np.float32)

    alt = axis(0.0, na, 300.0, 1500.0)
    aot = axis(0.0, nt, 0.02, 0.3)
    toa = axis(-0.25, nr, 0.05, 0.2)
    toc = rng.uniform(-0.3, 1.2, (nb, na, nt, nr)).astype(np.float32)

    def t2(lo, hi):
        return rng.uniform(lo, hi, (nb, na, nt)).astype(np.float32)

    return MiniLUT(
        tuple(f"X{b}" for b in range(nb)), alt, aot, toa, toc,
        t2(0.4, 0.95), t2(0.02, 0.3), t2(0.3, 0.95), t2(0.02, 0.3), t2(0.02, 0.35),
    )


@lru_cache(maxsize=4)
def forward_model(bands: tuple[str, ...] = REALISTIC_BANDS) -> ForwardLUT:
    return ForwardLUT(bands)


@lru_cache(maxsize=4)
def realistic_minilut(bands: tuple[str, ...] = REALISTIC_BANDS) -> MiniLUT:
    """The ForwardLUT reduced at one geometry (sun 38°, view ~5°) the way MAJA's ReduceLut does.

    toc[b] inverts the uniform-surface model: rho* = path + T_down T_up y with y = rho / (1 - S rho),
    so rho_unif = y / (1 + S y), y = (rho* - path) / (T_down T_up).
    """
    fwd = forward_model(bands)
    alt, aot = np.meshgrid(ALTITUDE_AXIS, AOT_AXIS, indexing="ij")
    toc, dirt_v, dift_v, dirt_s, dift_s, albedo = [], [], [], [], [], []
    for b in bands:
        dphi = SUN_AZIMUTH - VIEW_AZIMUTH[b]
        t = fwd.terms(b, SUN_ZENITH, VIEW_ZENITH[b], dphi, alt, aot, wv=2.0)
        y = (GIPP_TOA_AXIS[None, None, :] - t.path[..., None]) / (
            (t.t_dir_down + t.t_dif_down) * (t.t_dir_up + t.t_dif_up)
        )[..., None]
        toc.append(y / (1.0 + t.spherical_albedo[..., None] * y))
        dirt_v.append(t.t_dir_up)
        dift_v.append(t.t_dif_up)
        dirt_s.append(t.t_dir_down)
        dift_s.append(t.t_dif_down)
        albedo.append(t.spherical_albedo)

    def f32(x):
        return np.asarray(x, dtype=np.float32)

    return MiniLUT(
        tuple(bands), f32(ALTITUDE_AXIS), f32(AOT_AXIS), f32(GIPP_TOA_AXIS), f32(toc),
        f32(dirt_v), f32(dift_v), f32(dirt_s), f32(dift_s), f32(albedo),
    )


def smooth_field(rng: np.random.Generator, shape: tuple[int, int], lo: float, hi: float) -> np.ndarray:
    """A smooth random float32 field in [lo, hi] (sum of a few low-frequency waves)."""
    ny, nx = shape
    y, x = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    f = np.zeros(shape)
    for _ in range(4):
        kx, ky, ph = rng.uniform(0.5, 3.0), rng.uniform(0.5, 3.0), rng.uniform(0, 2 * np.pi)
        f += np.sin(2 * np.pi * (kx * x + ky * y) + ph)
    f = (f - f.min()) / max(f.max() - f.min(), 1e-12)
    return (lo + (hi - lo) * f).astype(np.float32)
