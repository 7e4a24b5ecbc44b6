"""The product quicklook `<name>_QKL_ALL.jpg`: an RGB JPEG of B4, B3, B2 (maja-l2a.md §5).

Each channel is stretched linearly between its 2nd and 98th percentile over the valid (non-NaN)
pixels to 1..255; no-data pixels are black (0). The image is subsampled by a whole step so that its
larger side is at most 1000 px. The JPEG is written by GDAL's JPEG driver (rasterio buffers it in a
MEM dataset and copies it), with no georeferencing and no .aux.xml side file.
"""

from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning

MAX_SIDE = 1000
STRETCH_PERCENTILES = (2.0, 98.0)
JPEG_QUALITY = 85


def subsample_step(height: int, width: int, max_side: int = MAX_SIDE) -> int:
    """Smallest whole step s with ceil(side / s) <= max_side for both sides."""
    return max(1, math.ceil(max(height, width) / max_side))


def stretch_to_byte(channel: np.ndarray,
                    percentiles: tuple[float, float] = STRETCH_PERCENTILES) -> np.ndarray:
    """uint8 image of one channel: valid pixels mapped linearly from [p_low, p_high] to [1, 255]
    (clipped), NaN -> 0. A channel without valid pixels is all 0; a flat one is all 128."""
    channel = np.asarray(channel, np.float64)
    valid = np.isfinite(channel)
    out = np.zeros(channel.shape, np.uint8)
    if not valid.any():
        return out
    lo, hi = np.percentile(channel[valid], percentiles)
    if hi <= lo:
        out[valid] = 128
        return out
    scaled = 1.0 + (channel[valid] - lo) * (254.0 / (hi - lo))
    out[valid] = np.clip(np.rint(scaled), 1, 255).astype(np.uint8)
    return out


def write_quicklook(path: str | os.PathLike, rgb: np.ndarray) -> Path:
    """Write a (3, ny, nx) float reflectance array (red, green, blue; NaN = no data) as a JPEG."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] != 3:
        raise ValueError(f"{path}: quicklook needs a (3, ny, nx) array, got shape {rgb.shape}")
    step = subsample_step(*rgb.shape[1:])
    sub = rgb[:, ::step, ::step]
    image = np.stack([stretch_to_byte(c) for c in sub])
    path = Path(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(
                path, "w", driver="JPEG", width=image.shape[2], height=image.shape[1], count=3, dtype="uint8",
                QUALITY=JPEG_QUALITY) as dst:
            dst.write(image)
    return path


__all__ = ["stretch_to_byte", "subsample_step", "write_quicklook"]
