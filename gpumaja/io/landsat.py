"""Landsat 8/9 OLI Level-1 reader: a product folder (or its MTL file) -> `L1CProduct`.

Metadata come from the MTL (Collection-2 MTL.txt / MTL.json, or the pre-collection MTL.txt; see
`gpumaja.io.mtl`); georeferencing comes from the band GeoTIFFs themselves (a cropped product keeps the
full scene's corner coordinates in its MTL, so those are never used).

Radiometry, per band n (USGS "Using the Landsat Level-1 data product"):
``rho_toa = (DN * REFLECTANCE_MULT_BAND_n + REFLECTANCE_ADD_BAND_n) / sin(SUN_ELEVATION)``, i.e. the
`L1CProduct` convention with gain = MULT, offset = ADD and sun_factor = sin(SUN_ELEVATION) (the
scene-centre sun-elevation correction). DN 0 is fill (no data). DN 65535 is the top of the OLI range
and taken as saturated; Collection 2 also flags saturation per pixel and per band in QA_RADSAT
(``FILE_NAME_QUALITY_L1_RADIOMETRIC_SATURATION``, kept in ``extra["QA_RADSAT"]``), which a later
issue may read.

Angles:

- sun: the Collection-2 per-pixel solar angle bands (*_SZA.TIF / *_SAA.TIF, int16, hundredths of a
  degree) block-averaged onto a coarse angle grid when they are there, else a constant grid from the
  MTL's SUN_ELEVATION / SUN_AZIMUTH. Either way mean_zenith = 90 - SUN_ELEVATION and mean_azimuth =
  SUN_AZIMUTH exactly.
- view: the per-pixel sensor angle bands (*_VZA.TIF / *_VAA.TIF) block-averaged the same way; else
  computed from the ephemeris of the *_ANG.txt (line of sight to the satellite at closest approach);
  else nadir (zenith 0, azimuth 0) with a warning. The angle bands describe band 4; every band gets
  the same view grid (OLI's band-to-band view differences are a few hundredths of a degree).

The coarse angle grid has cells of ANGLE_CELL_PX x ANGLE_CELL_PX scene pixels (160 x 30 m = 4.8 km,
a multiple of both coarse processing resolutions), same upper-left corner as the scene; values stand
for the cell centres. Azimuths are averaged on the circle.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np

from gpumaja.errors import CorruptFileError, MissingFileError, UnknownProductError
from gpumaja.io.bands import file_grid, grid_of
from gpumaja.io.mtl import REFLECTIVE_BAND_NUMBERS, MtlInfo, looks_like_mtl, parse_mtl, parse_odl
from gpumaja.model.angles import AngleGrid, fill_nan_nearest
from gpumaja.model.grids import Grid
from gpumaja.model.product import BandRadiometry, L1CProduct

log = logging.getLogger(__name__)

SUPPORTED_PLATFORMS = ("LANDSAT_8", "LANDSAT_9")
ANGLE_CELL_PX = 160  # coarse angle cell = 160 scene pixels (4.8 km at 30 m)
NODATA_DN = 0
SATURATED_DN = 65535

# WGS84
_WGS84_A = 6378137.0
_WGS84_F = 1.0 / 298.257223563
_WGS84_E2 = _WGS84_F * (2.0 - _WGS84_F)


# --------------------------------------------------------------------------------------------------
# Detection


def _mtl_candidates(folder: Path) -> list[Path]:
    try:
        entries = [e for e in folder.iterdir() if e.is_file()]
    except OSError:
        return []
    return sorted(e for e in entries if e.name.upper().endswith(("MTL.TXT", "MTL.JSON")))


def find_mtl(path: str | Path) -> Path:
    """The MTL file of a product given as its folder or as the MTL itself (.txt preferred to .json)."""
    p = Path(path)
    if not p.exists():
        raise MissingFileError("no such file or folder", p)
    if p.is_file():
        return p
    cands = _mtl_candidates(p)
    if not cands:
        raise MissingFileError("no *_MTL.txt or *_MTL.json in the Landsat product folder", p)
    stems: dict[str, list[Path]] = {}
    for c in cands:
        stems.setdefault(c.name.rsplit(".", 1)[0].upper(), []).append(c)
    if len(stems) > 1:
        raise UnknownProductError(
            f"folder holds MTL files of several products ({', '.join(sorted(c.name for c in cands))}); "
            "give the MTL file itself", p)
    (group,) = stems.values()
    txt = [c for c in group if c.name.upper().endswith(".TXT")]
    return txt[0] if txt else group[0]


def is_landsat(path: str | Path) -> bool:
    """Cheap test: `path` is a Landsat Level-1 MTL file, or a folder holding exactly one product's MTL.
    Reads only the first 4 kB of the MTL; never raises."""
    try:
        p = Path(path)
        if p.is_file():
            return looks_like_mtl(p)
        if p.is_dir():
            return any(looks_like_mtl(c) for c in _mtl_candidates(p))
    except OSError:
        return False
    return False


# --------------------------------------------------------------------------------------------------
# Raster helpers


def _block_average_angles(zen_path: Path, az_path: Path, cell_px: int) -> tuple[np.ndarray, np.ndarray, Grid]:
    """Zenith/azimuth angle bands (int16, 0.01 deg) averaged over cell_px x cell_px blocks.

    A pixel is invalid where the file's nodata value is, or where zenith and azimuth are both 0 (the
    fill outside the image footprint). Zenith is averaged arithmetically, azimuth on the circle.
    Cells with no valid pixel are filled with the nearest valid cell."""
    import rasterio
    from rasterio.windows import Window

    try:
        zds = rasterio.open(zen_path)
    except Exception as exc:
        raise CorruptFileError(f"cannot read angle band: {exc}", zen_path) from exc
    try:
        ads = rasterio.open(az_path)
    except Exception as exc:
        zds.close()
        raise CorruptFileError(f"cannot read angle band: {exc}", az_path) from exc
    with zds, ads:
        if (zds.width, zds.height, zds.transform) != (ads.width, ads.height, ads.transform):
            raise CorruptFileError(f"angle band is not on the grid of {zen_path.name}", az_path)
        if zds.crs is None:
            raise CorruptFileError("angle band has no CRS", zen_path)
        fine = grid_of(zds, zen_path)
        coarse = fine.coarsen(fine.resolution * cell_px)
        H, W = coarse.shape
        zsum, ssum, csum, cnt = (np.zeros((H, W)) for _ in range(4))
        pad_w = W * cell_px - fine.width

        def cells(x: np.ndarray) -> np.ndarray:  # (h, width) -> (h, W, cell_px), padded with 0
            return np.pad(x, ((0, 0), (0, pad_w))).reshape(x.shape[0], W, cell_px)

        for r in range(H):
            r0 = r * cell_px
            h = min(cell_px, fine.height - r0)
            win = Window(0, r0, fine.width, h)
            try:
                z = zds.read(1, window=win).astype(np.float64)
                a = ads.read(1, window=win).astype(np.float64)
            except Exception as exc:
                raise CorruptFileError(f"cannot decode angle band: {exc}", zen_path) from exc
            valid = ~((z == 0) & (a == 0))
            if zds.nodata is not None:
                valid &= z != zds.nodata
            if ads.nodata is not None:
                valid &= a != ads.nodata
            z, a = z / 100.0, np.radians(a / 100.0)
            v = cells(valid.astype(np.float64))
            zsum[r] = (cells(z) * v).sum(axis=(0, 2))
            ssum[r] = (cells(np.sin(a)) * v).sum(axis=(0, 2))
            csum[r] = (cells(np.cos(a)) * v).sum(axis=(0, 2))
            cnt[r] = v.sum(axis=(0, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        zen = np.where(cnt > 0, zsum / cnt, np.nan)
        az = np.where(cnt > 0, np.degrees(np.arctan2(ssum, csum)) % 360.0, np.nan)
    if np.isnan(zen).all():
        raise CorruptFileError("angle band holds no valid pixel", zen_path)
    zen, az = fill_nan_nearest(zen), fill_nan_nearest(az)
    az = np.where(az >= 360.0, 0.0, az).astype(np.float32)
    return zen.astype(np.float32), az, coarse


# --------------------------------------------------------------------------------------------------
# View angles from the ANG file ephemeris


def geodetic_to_ecef(lon_deg, lat_deg, h=0.0):
    """WGS84 geodetic (degrees, metres) -> ECEF (metres), arrays broadcast."""
    lon, lat = np.radians(lon_deg), np.radians(lat_deg)
    n = _WGS84_A / np.sqrt(1.0 - _WGS84_E2 * np.sin(lat) ** 2)
    x = (n + h) * np.cos(lat) * np.cos(lon)
    y = (n + h) * np.cos(lat) * np.sin(lon)
    z = (n * (1.0 - _WGS84_E2) + h) * np.sin(lat)
    return np.stack([x, y, z], axis=-1)


def read_ephemeris(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(times s, ECEF positions (n, 3) m) from the EPHEMERIS group of a Landsat *_ANG.txt."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise CorruptFileError("ANG file is not UTF-8 text", path) from None
    tree = parse_odl(text, path)

    def find(node, name):
        if name in node and isinstance(node[name], dict):
            return node[name]
        for v in node.values():
            if isinstance(v, dict) and (found := find(v, name)) is not None:
                return found
        return None

    eph = find(tree, "EPHEMERIS")
    if eph is None:
        raise CorruptFileError("no GROUP = EPHEMERIS", path)
    cols = {}
    for key in ("EPHEMERIS_TIME", "EPHEMERIS_ECEF_X", "EPHEMERIS_ECEF_Y", "EPHEMERIS_ECEF_Z"):
        v = eph.get(key)
        if not isinstance(v, list):
            raise CorruptFileError(f"missing list {key} in GROUP = EPHEMERIS", path)
        try:
            cols[key] = np.array([float(x) for x in v])
        except ValueError:
            raise CorruptFileError(f"{key} holds a value that is not a number", path) from None
    n = {len(c) for c in cols.values()}
    declared = eph.get("NUMBER_OF_POINTS")
    if len(n) != 1 or (declared is not None and str(declared).isdigit() and int(declared) not in n):
        raise CorruptFileError(
            f"ephemeris lists differ in length ({sorted(n)}; NUMBER_OF_POINTS = {declared})", path)
    if n.pop() < 2:
        raise CorruptFileError("ephemeris needs at least 2 points", path)
    if not (np.diff(cols["EPHEMERIS_TIME"]) > 0).all():
        raise CorruptFileError("EPHEMERIS_TIME is not strictly increasing", path)
    pos = np.stack([cols["EPHEMERIS_ECEF_X"], cols["EPHEMERIS_ECEF_Y"], cols["EPHEMERIS_ECEF_Z"]], axis=-1)
    if not np.isfinite(pos).all() or (np.linalg.norm(pos, axis=1) < _WGS84_A).any():
        raise CorruptFileError("ephemeris positions are not finite ECEF metres above the Earth", path)
    return cols["EPHEMERIS_TIME"], pos


def view_angles_from_ephemeris(
    grid: Grid, times: np.ndarray, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """View zenith / azimuth (degrees) at `grid`'s cell centres (h = 0 on WGS84) toward the satellite
    at its closest approach along the ephemeris (`times` s, `positions` (n, 3) ECEF m).

    The track is a cubic spline of position over time (a chord between 1 s samples would sag ~0.03 deg
    in view zenith below the orbit); the closest-approach time of each point starts at its nearest
    sample and is refined by Newton steps on d/dt |S(t) - p|^2 = 0, clamped to the ephemeris span."""
    from rasterio.warp import transform as warp_transform
    from scipy.interpolate import CubicSpline

    xs, ys = grid.xy_centres()
    X, Y = np.meshgrid(np.asarray(xs), np.asarray(ys))
    lon, lat = warp_transform(grid.crs, "EPSG:4326", X.ravel().tolist(), Y.ravel().tolist())
    lon, lat = np.asarray(lon), np.asarray(lat)
    p = geodetic_to_ecef(lon, lat, 0.0)  # (m, 3)
    spline = CubicSpline(times, positions, axis=0)
    d1, d2 = spline.derivative(1), spline.derivative(2)
    d2_samples = ((positions[None, :, :] - p[:, None, :]) ** 2).sum(-1)  # (m, n)
    t = times[d2_samples.argmin(axis=1)].astype(np.float64)
    for _ in range(8):
        s, v, acc = spline(t), d1(t), d2(t)
        rel = s - p
        f = (rel * v).sum(-1)
        df = (v * v).sum(-1) + (rel * acc).sum(-1)
        t = np.clip(t - f / np.where(df > 0, df, np.inf), times[0], times[-1])
    los = spline(t) - p
    lo, la = np.radians(lon), np.radians(lat)
    east = np.stack([-np.sin(lo), np.cos(lo), np.zeros_like(lo)], -1)
    north = np.stack([-np.sin(la) * np.cos(lo), -np.sin(la) * np.sin(lo), np.cos(la)], -1)
    up = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], -1)
    e, n, u = (los * east).sum(-1), (los * north).sum(-1), (los * up).sum(-1)
    zen = np.degrees(np.arctan2(np.hypot(e, n), u))
    az = np.degrees(np.arctan2(e, n)) % 360.0
    az = np.where(az >= 360.0, 0.0, az)
    return zen.reshape(grid.shape).astype(np.float32), az.reshape(grid.shape).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# Reader


def _existing(folder: Path, name: str, what: str) -> Path:
    p = folder / name
    if not p.is_file():
        raise MissingFileError(f"{what} named in the MTL is missing", p)
    return p


def read_landsat(path: str | Path) -> L1CProduct:
    """Metadata of the Landsat 8/9 Level-1 product at `path` (its folder or its MTL file)."""
    given = Path(path)
    mtl_path = find_mtl(given)
    info: MtlInfo = parse_mtl(mtl_path)
    if info.spacecraft not in SUPPORTED_PLATFORMS:
        raise UnknownProductError(
            f"SPACECRAFT_ID {info.spacecraft!r} is not supported (Landsat 8/9 OLI only)", mtl_path)
    if info.processing_level and info.processing_level.upper().startswith("L2"):
        raise UnknownProductError(
            f"PROCESSING_LEVEL {info.processing_level} is a Level-2 product; gpumaja reads Level-1", mtl_path)
    folder = info.folder

    band_files: dict[str, str] = {}
    radiometry: dict[str, BandRadiometry] = {}
    sun_factor = math.sin(math.radians(info.sun_elevation))
    if sun_factor <= 0:
        raise UnknownProductError(f"SUN_ELEVATION {info.sun_elevation} is not above the horizon", mtl_path)
    grid: Grid | None = None
    grid_from = ""
    for n in REFLECTIVE_BAND_NUMBERS:
        bpath = _existing(folder, info.band_files[n], f"band file FILE_NAME_BAND_{n}")
        g = file_grid(str(bpath))
        if grid is None:
            grid, grid_from = g, bpath.name
        elif g != grid:
            raise CorruptFileError(
                f"band B{n} is on grid {g}, not on the grid of {grid_from} ({grid}); "
                "all reflective bands must share one 30 m grid", bpath)
        name = f"B{n}"
        band_files[name] = str(bpath)
        radiometry[name] = BandRadiometry(
            gain=info.reflectance_mult[n], offset=info.reflectance_add[n], sun_factor=sun_factor)
    assert grid is not None

    sun_zenith = 90.0 - info.sun_elevation
    sun_azimuth = info.sun_azimuth % 360.0
    extra: dict[str, str] = {
        "MTL": mtl_path.name,
        "MTL_LAYOUT": info.layout,
        "SATURATION": "DN 65535; Collection 2 flags saturation per pixel in QA_RADSAT (not read yet)",
    }
    for key, value in (("PROCESSING_SOFTWARE_VERSION", info.processing_software),
                       ("COLLECTION_NUMBER", info.collection_number),
                       ("COLLECTION_CATEGORY", info.collection_category),
                       ("PROCESSING_LEVEL", info.processing_level),
                       ("SENSOR_ID", info.sensor_id),
                       ("LANDSAT_SCENE_ID", info.scene_id),
                       ("EARTH_SUN_DISTANCE", None if info.earth_sun_distance is None
                        else repr(info.earth_sun_distance))):
        if value is not None:
            extra[key] = value
    for key, name in info.qa_files.items():
        if (folder / name).is_file():
            extra[key] = str(folder / name)

    coarse = grid.coarsen(grid.resolution * ANGLE_CELL_PX)
    angle_paths = {k: folder / v for k, v in info.angle_files.items() if (folder / v).is_file()}
    for k, v in info.angle_files.items():
        if k not in angle_paths:
            log.warning("%s: angle band %s named in the MTL is missing; falling back", mtl_path, v)

    # Sun
    if "SZA" in angle_paths and "SAA" in angle_paths:
        z, a, g = _block_average_angles(angle_paths["SZA"], angle_paths["SAA"], ANGLE_CELL_PX)
        sun = AngleGrid(z, a, g, sun_zenith, sun_azimuth)
        extra["SUN_ANGLES"] = "angle bands (SZA/SAA)"
    else:
        sun = AngleGrid.constant(sun_zenith, sun_azimuth, coarse)
        extra["SUN_ANGLES"] = "MTL SUN_ELEVATION/SUN_AZIMUTH (constant)"

    # View
    if "VZA" in angle_paths and "VAA" in angle_paths:
        z, a, g = _block_average_angles(angle_paths["VZA"], angle_paths["VAA"], ANGLE_CELL_PX)
        view_grid = AngleGrid(z, a, g)
        extra["VIEW_ANGLES"] = "angle bands (VZA/VAA)"
    elif info.ang_file is not None and (folder / info.ang_file).is_file():
        ang_path = folder / info.ang_file
        times, positions = read_ephemeris(ang_path)
        z, a = view_angles_from_ephemeris(coarse, times, positions)
        view_grid = AngleGrid(z, a, coarse)
        extra["VIEW_ANGLES"] = f"ANG ephemeris ({ang_path.name})"
    else:
        if info.ang_file is not None:
            log.warning("%s: ANG file %s named in the MTL is missing", mtl_path, info.ang_file)
        log.warning(
            "%s: no angle bands and no ANG file; assuming nadir viewing (view zenith 0) for %s",
            mtl_path, info.product_id)
        view_grid = AngleGrid.constant(0.0, 0.0, coarse)
        extra["VIEW_ANGLES"] = "nadir (assumed: no angle bands, no ANG file)"

    return L1CProduct(
        path=given,
        sensor="LANDSAT",
        platform=info.spacecraft,
        tile=info.tile,
        acquired=info.acquired,
        orbit=info.wrs_path,
        processing_baseline=info.processing_baseline,
        product_id=info.product_id,
        band_files=band_files,
        radiometry=radiometry,
        grids={"R1": grid},
        sun=sun,
        view={b: view_grid for b in band_files},
        nodata_dn=NODATA_DN,
        saturated_dn=SATURATED_DN,
        quantification=1.0,
        tile_grid=None,
        extra=extra,
    )
