"""gpumaja: MAJA / WASP / Let-It-Snow science for Sentinel-2 and Landsat, on the GPU or the CPU."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())


def open_l2a(path, group: str = "R1"):
    """One resolution group ("R1", "R2"; Landsat "R1"/"XS") of a MUSCATE L2A product folder as an
    xarray.Dataset (see gpumaja.io.muscate_reader.open_l2a). Imported lazily: `import gpumaja` stays
    cheap."""
    from gpumaja.io.muscate_reader import open_l2a as _open_l2a

    return _open_l2a(path, group)
