"""Spectral bands of the sensors gpumaja reads, and their resolution groups.

Sentinel-2 groups follow the MUSCATE convention: R1 = 10 m (B2 B3 B4 B8), R2 = 20 m (B5 B6 B7 B8A B11
B12), R3 = 60 m (B1 B9 B10). Central wavelengths are the S2A values used in the MAJA GIPP file names
(443 ... 2200 nm). Landsat 8/9 OLI reflective bands form one 30 m group; B8 (panchromatic, 15 m) is not
used by the L2A chain and is left out; TIRS bands (B10, B11) are thermal and carry no reflectance.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Band:
    name: str  # "B02", "B8A" (S2) or "B2" (Landsat)
    wavelength_nm: float
    resolution_m: float
    group: str  # "R1" | "R2" | "R3" for S2, "R1" for Landsat


S2_BANDS: tuple[Band, ...] = (
    Band("B01", 443, 60, "R3"),
    Band("B02", 490, 10, "R1"),
    Band("B03", 560, 10, "R1"),
    Band("B04", 665, 10, "R1"),
    Band("B05", 705, 20, "R2"),
    Band("B06", 740, 20, "R2"),
    Band("B07", 783, 20, "R2"),
    Band("B08", 842, 10, "R1"),
    Band("B8A", 865, 20, "R2"),
    Band("B09", 945, 60, "R3"),
    Band("B10", 1375, 60, "R3"),
    Band("B11", 1610, 20, "R2"),
    Band("B12", 2190, 20, "R2"),
)

LANDSAT_OLI_BANDS: tuple[Band, ...] = (
    Band("B1", 443, 30, "R1"),
    Band("B2", 482, 30, "R1"),
    Band("B3", 561, 30, "R1"),
    Band("B4", 655, 30, "R1"),
    Band("B5", 865, 30, "R1"),
    Band("B6", 1609, 30, "R1"),
    Band("B7", 2201, 30, "R1"),
    Band("B9", 1373, 30, "R1"),
)

GROUP_RESOLUTION = {"S2": {"R1": 10.0, "R2": 20.0, "R3": 60.0}, "LANDSAT": {"R1": 30.0}}


def bands_of(sensor: str) -> tuple[Band, ...]:
    """All bands of a sensor family: "S2" or "LANDSAT"."""
    if sensor == "S2":
        return S2_BANDS
    if sensor == "LANDSAT":
        return LANDSAT_OLI_BANDS
    raise ValueError(f"unknown sensor family {sensor!r}; expected 'S2' or 'LANDSAT'")


def group_bands(sensor: str) -> dict[str, tuple[Band, ...]]:
    """Bands per resolution group, in band order: {"R1": (...), "R2": (...), ...}."""
    groups: dict[str, list[Band]] = {}
    for band in bands_of(sensor):
        groups.setdefault(band.group, []).append(band)
    return {g: tuple(b) for g, b in sorted(groups.items())}


def band(sensor: str, name: str) -> Band:
    for b in bands_of(sensor):
        if b.name == name:
            return b
    raise KeyError(f"{sensor} has no band {name!r}")
