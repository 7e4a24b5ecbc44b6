"""Surface pressure from altitude: MAJA's law (vnsPressureFunctor, maja-l2a.md §3.3)."""

from __future__ import annotations

import numpy as np

PRESSURE_REFERENCE_HPA = 1013.25


def pressure_ratio(altitude_m):
    """P/P0 with P = 1013.25 (1 - 0.0065 h / 288.15)^5.31 hPa (NumPy in, NumPy out)."""
    h = np.asarray(altitude_m, np.float64)
    return np.power(np.clip(1.0 - 0.0065 * h / 288.15, 1e-6, None), 5.31)
