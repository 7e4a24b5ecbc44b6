"""Which atmospheric LUT a product is corrected with: a MAJA GIPP set, a LUT file, or the default
LUT shipped in the package (built with `gpumaja lut build`)."""

from __future__ import annotations

import logging
from pathlib import Path

from gpumaja.atmosphere.minilut import AtmosphereLUT
from gpumaja.errors import InputError
from gpumaja.lut.sensors import platform_key

log = logging.getLogger(__name__)

# platforms without a shipped LUT -> the closest shipped one
_FALLBACK = {"S2C": "S2B", "L9": "L8"}


class LUTCache:
    """Loads each LUT once per run (one per platform)."""

    def __init__(self, gipp: Path | None = None, lut_file: Path | None = None):
        if gipp is not None and lut_file is not None:
            raise InputError("give either --gipp or --lut, not both")
        self.gipp, self.lut_file = gipp, lut_file
        self._luts: dict[str, AtmosphereLUT] = {}

    def for_platform(self, platform: str) -> AtmosphereLUT:
        key = platform_key(platform)
        if key not in self._luts:
            self._luts[key] = self._load(key)
        return self._luts[key]

    def _load(self, key: str) -> AtmosphereLUT:
        if self.gipp is not None:
            from gpumaja.io.gipp import load_gipp_lut

            return load_gipp_lut(self.gipp, key)
        if self.lut_file is not None:
            from gpumaja.io.lutfile import load_lut

            lut = load_lut(self.lut_file)
            if lut.sensor != key:
                raise InputError(f"this LUT was built for {lut.sensor}, the product is {key}: a LUT of another "
                                 "sensor would give wrong reflectances", self.lut_file)
            return lut
        from gpumaja.io.lutfile import default_lut_path, load_lut

        shipped = key
        if key in _FALLBACK:
            shipped = _FALLBACK[key]
            log.warning("no default LUT for %s: using the %s LUT (build one with 'gpumaja lut build --sensor %s')",
                        key, shipped, key)
        return load_lut(default_lut_path(shipped))
