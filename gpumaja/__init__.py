"""gpumaja: MAJA / WASP / Let-It-Snow science for Sentinel-2 and Landsat, on the GPU or the CPU."""

from __future__ import annotations

import logging

__version__ = "0.1.0"

logging.getLogger(__name__).addHandler(logging.NullHandler())
