"""Sensors the LUT builder knows: product band names and the Py6S spectral responses.

Py6S 1.9.2 ships the spectral response functions (SRF) of Sentinel-2A/2B MSI and Landsat-8 OLI.
Sentinel-2C and Landsat-9 are not in it; for them the builder uses the closest available SRF set
(S2B for S2C, L8 OLI for L9 OLI-2) and records that in the LUT's metadata (`srf_source`), unless a
CSV of the real responses is given with `--srf` (columns: wavelength in um, then one column per band
named like the product bands).
"""

from __future__ import annotations

from dataclasses import dataclass

# Sentinel-2 band name -> Py6S PredefinedWavelengths suffix
_S2_PY6S = {
    "B01": "01", "B02": "02", "B03": "03", "B04": "04", "B05": "05", "B06": "06", "B07": "07",
    "B08": "08", "B8A": "8A", "B09": "09", "B10": "10", "B11": "11", "B12": "12",
}
# bands whose TOC tables the L2A chain uses (B09/B10 are used as TOA only: water vapour, cirrus)
S2_RT_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12")
S2_GAS_BANDS = tuple(_S2_PY6S)
L8_RT_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7")
L8_GAS_BANDS = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9")


@dataclass(frozen=True)
class SensorSpec:
    key: str  # "S2A" | "S2B" | "S2C" | "L8" | "L9"
    family: str  # "S2" | "LANDSAT"
    rt_bands: tuple[str, ...]
    gas_bands: tuple[str, ...]
    py6s_names: dict[str, str]  # band -> attribute of Py6S.PredefinedWavelengths
    srf_source: str
    wv_band: str | None = None  # water-vapour band and its reference (WATV table), S2 only
    wv_reference_band: str | None = None

    @property
    def srf_substituted(self) -> bool:
        """True when Py6S lacks this sensor's responses and another sensor's are used."""
        return "(no " in self.srf_source


def sensor_spec(key: str) -> SensorSpec:
    key = key.upper()
    if key in ("S2A", "S2B", "S2C"):
        srf = {"S2A": "S2A", "S2B": "S2B", "S2C": "S2B"}[key]
        names = {b: f"{srf}_MSI_{s}" for b, s in _S2_PY6S.items()}
        note = f"Py6S {srf}_MSI" + ("" if srf == key else f" (no {key} SRF in Py6S: closest available)")
        return SensorSpec(key, "S2", S2_RT_BANDS, S2_GAS_BANDS, names, note, "B09", "B8A")
    if key in ("L8", "L9"):
        names = {b: f"LANDSAT_OLI_{b}" for b in L8_GAS_BANDS}
        note = "Py6S LANDSAT_OLI" + ("" if key == "L8" else " (no OLI-2 SRF in Py6S: OLI used)")
        return SensorSpec(key, "LANDSAT", L8_RT_BANDS, L8_GAS_BANDS, names, note)
    raise ValueError(f"unknown sensor {key!r}; expected one of S2A, S2B, S2C, L8, L9")


def platform_key(platform: str) -> str:
    """L1CProduct.platform ("SENTINEL-2A", "LANDSAT_8") -> LUT sensor key ("S2A", "L8")."""
    p = platform.upper().replace("_", "-")
    if p.startswith("SENTINEL-2") and len(p) == len("SENTINEL-2A"):
        return "S2" + p[-1]
    if p.startswith("LANDSAT-"):
        return "L" + p.split("-")[-1]
    raise ValueError(f"no LUT sensor for platform {platform!r}")
