"""The synthetic series' forward model from 6S: `ForwardLUT` tables filled from our shipped 6S LUT.

`gpumaja.synth.atmosphere.ForwardLUT` evaluates the TOA of a Lambertian pixel in a Lambertian
environment from tabulated path reflectance, direct/diffuse transmissions and spherical albedo, plus
SMAC gas absorption. Its own tables come from an analytic single-layer model (delta-Eddington
multiple scattering), which departs from 6S by up to ~0.015 in path reflectance at 443 nm for sun
zenith angles near 70° (docs/validation.md). `sixs_forward` replaces, for every band the 6S LUT
holds, those tables by the 6S quantities (path reflectance, total transmissions, spherical albedo,
optical depth -> direct transmission), evaluated on the ForwardLUT's own axes; B09/B10 keep the
analytic tables, and the gas absorption stays the synthetic model's own SMAC set (independent of the
coefficients our LUT builder fitted).

The inversion in the L2A chain uses the same 6S numbers but none of this code: its mini-LUT
reduction, interpolations, AOT inversion, masks and adjacency correction are what a synthetic series
made this way tests.
"""

from __future__ import annotations

import numpy as np

from gpumaja.atmosphere.sixs_lut import SixSLUT, _resample_alt_aot
from gpumaja.synth.atmosphere import (
    ALTITUDE_AXIS,
    AOT_AXIS,
    REL_AZIMUTH_AXIS,
    S2_BAND_NAMES,
    SUN_ZENITH_AXIS,
    VIEW_ZENITH_AXIS,
    ZENITH_AXIS,
    ForwardLUT,
)


class SixSForwardLUT(ForwardLUT):
    """`ForwardLUT` whose scattering tables come from a 6S `SixSLUT` (bands it holds)."""

    def __init__(self, sixs: SixSLUT, bands: tuple[str, ...] = S2_BAND_NAMES):
        super().__init__(bands)
        self.source = sixs.source
        t = sixs.tables
        alt, aot = t.altitude.astype(np.float64), t.aot.astype(np.float64)
        alt_f, aot_f = ALTITUDE_AXIS.astype(np.float64), AOT_AXIS.astype(np.float64)

        def fine(table, log=False):
            return _resample_alt_aot(table, alt, aot, alt_f, aot_f, log)

        for b in self.bands:
            if b not in sixs.bands:
                continue
            i = [sixs.bands.index(b)]
            path = np.empty((SUN_ZENITH_AXIS.size, VIEW_ZENITH_AXIS.size, REL_AZIMUTH_AXIS.size,
                             alt_f.size, aot_f.size))
            for a, sz in enumerate(SUN_ZENITH_AXIS):
                for v, vz in enumerate(VIEW_ZENITH_AXIS):
                    for d, dp in enumerate(REL_AZIMUTH_AXIS):
                        path[a, v, d] = fine(sixs.path(float(sz), float(vz), float(dp), i)[0])
            tau = fine(t.tau[i].astype(np.float64))[0]
            t_dir = np.empty((ZENITH_AXIS.size, alt_f.size, aot_f.size))
            t_dif = np.empty_like(t_dir)
            for z, zen in enumerate(ZENITH_AXIS):
                total = fine(sixs.transmission(float(zen), i), log=True)[0]
                t_dir[z] = np.exp(-tau / np.cos(np.radians(zen)))
                t_dif[z] = total - t_dir[z]
            self.path[b] = path
            self.t_dir[b], self.t_dif[b] = t_dir, t_dif
            self.albedo[b] = fine(t.albedo[i].astype(np.float64))[0]


_CACHE: dict[str, SixSForwardLUT] = {}


def sixs_forward(sensor: str = "S2A") -> SixSForwardLUT:
    """The 6S forward model of a shipped default LUT (built once per process, ~1 s)."""
    if sensor not in _CACHE:
        from gpumaja.io.lutfile import default_lut_path, load_lut

        _CACHE[sensor] = SixSForwardLUT(load_lut(default_lut_path(sensor)))
    return _CACHE[sensor]
