"""Sun and viewing angles of a MUSCATE L2A MTD_ALL.xml (Theia's or gpumaja's), as `AngleGrid`s.

Theia products carry `Angles_Grids_List`: a `Sun_Angles_Grids` pair and, per band, one
`Viewing_Incidence_Angles_Grids` pair per detector (23x23 samples every 5 km, the first sample on the
tile's upper-left corner, as in the L1C MTD_TL.xml). Detectors are merged as WASP merges them: "last
non-NaN detector wins" (wasp-l3a-and-lis-snow.md §1.4, ViewingAngles.cpp); cells no detector sees are
filled with the nearest valid value. gpumaja's own L2A products carry the sun grid and the mean
viewing angles only; where a grid is missing the mean angle is used as a constant grid.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np

from gpumaja.errors import CorruptFileError
from gpumaja.io.safe_angles import angle_grid_geometry, angle_pair, finish_angle_grid
from gpumaja.io.xml import find_local, findall_local, parse_xml
from gpumaja.model.angles import AngleGrid
from gpumaja.model.grids import Grid


def _merge_detectors(pairs: list[tuple[np.ndarray, np.ndarray, float, float]]) -> tuple[np.ndarray, np.ndarray]:
    zen = np.full(pairs[0][0].shape, np.nan)
    az = np.full(pairs[0][0].shape, np.nan)
    for z, a, _, _ in pairs:  # document order: the last detector with a value wins
        ok = np.isfinite(z) & np.isfinite(a)
        zen[ok] = z[ok]
        az[ok] = a[ok]
    return zen, az


def read_muscate_angles(mtd: str | Path, meta: dict, grid: Grid) -> tuple[AngleGrid, dict[str, AngleGrid]]:
    """(sun angles, {MUSCATE band id "B2": viewing angles}) of the product whose parsed metadata is `meta`
    (`read_mtd`) and whose R1 (or XS) grid is `grid` (for the angle grids' origin)."""
    label = str(mtd)
    root: Element = parse_xml(Path(mtd))
    ulx, uly = grid.bounds[0], grid.bounds[3]
    sun_el = find_local(root, "Sun_Angles_Grids")
    mean_sun = meta.get("sun_angles") or {}
    if sun_el is not None:
        z, a, col, row = angle_pair(sun_el, label)
        sun = finish_angle_grid(z, a, angle_grid_geometry(grid.crs, ulx, uly, col, row, z.shape),
                                mean_sun.get("zenith") or float("nan"), mean_sun.get("azimuth") or float("nan"))
    elif mean_sun.get("zenith") is not None and mean_sun.get("azimuth") is not None:
        sun = AngleGrid.constant(mean_sun["zenith"], mean_sun["azimuth"], grid)
    else:
        raise CorruptFileError("no sun angles (neither <Sun_Angles_Grids> nor <Sun_Angles>)", label)

    per_band: dict[str, list] = {}
    for el in findall_local(root, "Band_Viewing_Incidence_Angles_Grids_List"):
        band = el.get("band_id")
        if band:
            per_band[band] = [angle_pair(d, label) for d in findall_local(el, "Viewing_Incidence_Angles_Grids")]
    views: dict[str, AngleGrid] = {}
    for band in dict.fromkeys([*(meta.get("bands") or []), *per_band, *(meta.get("view_angles") or {})]):
        mean = (meta.get("view_angles") or {}).get(band) or {}
        mz, ma = mean.get("zenith"), mean.get("azimuth")
        pairs = per_band.get(band) or []
        if pairs:
            zen, az = _merge_detectors(pairs)
            if np.isfinite(zen).any():
                col, row = pairs[0][2], pairs[0][3]
                g = angle_grid_geometry(grid.crs, ulx, uly, col, row, zen.shape)
                views[band] = finish_angle_grid(zen, az, g, mz if mz is not None else float("nan"),
                                                ma if ma is not None else float("nan"))
                continue
        if mz is not None and ma is not None:
            views[band] = AngleGrid.constant(mz, ma, grid)
    return sun, views


__all__ = ["read_muscate_angles"]
