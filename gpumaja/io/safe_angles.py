"""Sun and viewing angle grids of a Sentinel-2 L1C MTD_TL.xml (Tile_Angles).

The grids are 23x23 samples every 5 km (COL_STEP/ROW_STEP); the first sample lies on the tile's
upper-left corner, so as cell centres of a `Grid` the grid starts half a step up and left of it.
Viewing angles come per band and per detector; detectors are merged (mean zenith and circular mean
azimuth where their footprints overlap) and the cells no detector sees are filled with the nearest
valid value.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from xml.etree.ElementTree import Element

import numpy as np
from affine import Affine

from gpumaja.errors import CorruptFileError
from gpumaja.io.xml import find_local, findall_local, local, require_text
from gpumaja.model.angles import AngleGrid, circular_mean_deg, fill_nan_nearest
from gpumaja.model.bands import S2_BANDS
from gpumaja.model.grids import Grid

# MTD bandId / band_id 0..12 -> band name
S2_BAND_IDS: dict[int, str] = {i: b.name for i, b in enumerate(S2_BANDS)}


def _child(el: Element, name: str) -> Element | None:
    for c in el:
        if local(c.tag) == name:
            return c
    return None


def angle_values(el: Element, label: str | Path) -> tuple[np.ndarray, float, float]:
    """(values, col_step, row_step) of a <Zenith> or <Azimuth> element."""
    try:
        col = float(require_text(el, "COL_STEP", label))
        row = float(require_text(el, "ROW_STEP", label))
        rows = [[float(v) for v in r.text.split()] for r in findall_local(el, "VALUES") if r.text]
    except ValueError as exc:
        raise CorruptFileError(f"bad angle value in <{local(el.tag)}>: {exc}", label) from exc
    if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
        raise CorruptFileError(f"angle grid <{local(el.tag)}> is empty or ragged", label)
    if col <= 0 or row <= 0:
        raise CorruptFileError(f"angle grid step must be positive, got {col:g}/{row:g}", label)
    return np.asarray(rows, np.float64), col, row


def angle_pair(el: Element, label: str | Path) -> tuple[np.ndarray, np.ndarray, float, float]:
    zen_el, az_el = _child(el, "Zenith"), _child(el, "Azimuth")
    if zen_el is None or az_el is None:
        raise CorruptFileError(f"<{local(el.tag)}> lacks <Zenith> or <Azimuth>", label)
    zen, col, row = angle_values(zen_el, label)
    az, col2, row2 = angle_values(az_el, label)
    if zen.shape != az.shape or (col, row) != (col2, row2):
        raise CorruptFileError(f"zenith and azimuth grids of <{local(el.tag)}> differ in shape", label)
    return zen, az, col, row


def angle_grid_geometry(crs: str, ulx: float, uly: float, col: float, row: float, shape: tuple[int, int]) -> Grid:
    return Grid(crs, Affine(col, 0.0, ulx - col / 2.0, 0.0, -row, uly + row / 2.0), shape[1], shape[0])


def _means(el: Element | None, label: str | Path) -> tuple[float, float]:
    if el is None:
        return float("nan"), float("nan")
    try:
        return float(require_text(el, "ZENITH_ANGLE", label)), float(require_text(el, "AZIMUTH_ANGLE", label))
    except ValueError as exc:
        raise CorruptFileError(f"bad mean angle: {exc}", label) from exc


def finish_angle_grid(zen: np.ndarray, az: np.ndarray, grid: Grid, mz: float, ma: float) -> AngleGrid:
    zen = fill_nan_nearest(zen).astype(np.float32)
    az = (fill_nan_nearest(az) % 360.0).astype(np.float32)
    az[az >= 360.0] -= 360.0  # -1e-15 % 360 rounds to 360.0 in float32
    return AngleGrid(zen, az, grid, mz, ma % 360.0 if np.isfinite(ma) else ma)


def read_sun_angles(root: Element, crs: str, ulx: float, uly: float, label: str | Path) -> AngleGrid:
    """Sun zenith/azimuth grid and Mean_Sun_Angle of an MTD_TL.xml root."""
    el = find_local(root, "Sun_Angles_Grid")
    if el is None:
        raise CorruptFileError("missing element <Sun_Angles_Grid>", label)
    zen, az, col, row = angle_pair(el, label)
    if np.isnan(zen).all():
        raise CorruptFileError("sun zenith grid holds no value", label)
    mz, ma = _means(find_local(root, "Mean_Sun_Angle"), label)
    return finish_angle_grid(zen, az, angle_grid_geometry(crs, ulx, uly, col, row, zen.shape), mz, ma)


def read_view_angles(
    root: Element, crs: str, ulx: float, uly: float, label: str | Path
) -> dict[str, AngleGrid]:
    """Viewing angle grids per band name, detectors merged, NaN cells filled."""
    per_band: dict[str, list[tuple[np.ndarray, np.ndarray, float, float]]] = {}
    for el in findall_local(root, "Viewing_Incidence_Angles_Grids"):
        name = _band_name(el.get("bandId"), label)
        per_band.setdefault(name, []).append(angle_pair(el, label))
    means: dict[str, tuple[float, float]] = {}
    for el in findall_local(root, "Mean_Viewing_Incidence_Angle"):
        means[_band_name(el.get("bandId"), label)] = _means(el, label)

    out: dict[str, AngleGrid] = {}
    for name in [b.name for b in S2_BANDS]:
        grids = per_band.get(name)
        mz, ma = means.get(name, (float("nan"), float("nan")))
        if not grids:
            continue
        shapes = {g[0].shape for g in grids}
        steps = {(g[2], g[3]) for g in grids}
        if len(shapes) != 1 or len(steps) != 1:
            raise CorruptFileError(f"viewing angle grids of band {name} differ in shape or step", label)
        zen = np.stack([g[0] for g in grids])
        az = np.stack([g[1] for g in grids])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
            zen_m = np.nanmean(zen, axis=0)
            az_m = circular_mean_deg(az, axis=0)
        col, row = grids[0][2], grids[0][3]
        grid = angle_grid_geometry(crs, ulx, uly, col, row, zen_m.shape)
        if np.isnan(zen_m).all():
            if not (np.isfinite(mz) and np.isfinite(ma)):
                raise CorruptFileError(f"viewing angle grids of band {name} hold no value", label)
            out[name] = AngleGrid.constant(mz, ma, grid)
            continue
        out[name] = finish_angle_grid(zen_m, az_m, grid, mz, ma)
    return out


def _band_name(band_id: str | None, label: str | Path) -> str:
    try:
        return S2_BAND_IDS[int(band_id)]  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        raise CorruptFileError(f"bad bandId {band_id!r} in angle grids", label) from None
