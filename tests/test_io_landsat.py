"""Landsat 8/9 Level-1 reader: the real pre-collection crop, and synthetic Collection-2 products.

Expected values are literals read from the real MTL.txt, or computed here independently (rasterio
reads, numpy block means, a WGS84 geodetic->ECEF of our own); never taken from the reader.
"""

from __future__ import annotations

import logging
import math
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform

from gpumaja.errors import CorruptFileError, MissingFileError, UnknownProductError
from gpumaja.io.landsat import is_landsat, read_landsat
from tests.test_io_mtl import (
    C2_ACQUIRED,
    C2_PRODUCT_ID,
    C2_SUN_AZIMUTH,
    C2_SUN_ELEVATION,
    c2_groups,
    c2_mtl_json,
    c2_mtl_txt,
)

REAL_MTL = "LC80200392015216LGN00_MTL.txt"
REFLECTIVE = ["B1", "B2", "B3", "B4", "B5", "B6", "B7", "B9"]


# --------------------------------------------------------------------------------------------------
# Real pre-collection crop


@pytest.fixture(scope="module")
def real(landsat_crop_dir):
    return read_landsat(landsat_crop_dir)


def test_real_metadata(real, landsat_crop_dir):
    # literals from LC80200392015216LGN00_MTL.txt
    assert real.sensor == "LANDSAT"
    assert real.platform == "LANDSAT_8"
    assert real.tile == "020039"
    assert real.orbit == 20
    assert real.acquired == datetime(2015, 8, 4, 16, 19, 21, 791742, tzinfo=timezone.utc)
    assert real.acquired.tzinfo is not None and real.acquired.utcoffset().total_seconds() == 0
    assert real.processing_baseline == "PRE-COLLECTION"
    assert real.product_id == "LC80200392015216LGN00"
    assert real.extra["PROCESSING_SOFTWARE_VERSION"] == "LPGS_2.5.1"
    assert real.path == landsat_crop_dir
    assert [b.name for b in real.bands] == REFLECTIVE
    assert real.quantification == 1.0
    assert (real.nodata_dn, real.saturated_dn) == (0, 65535)
    for b in REFLECTIVE:
        assert Path(real.band_files[b]).name == f"LC80200392015216LGN00_{b}.TIF"
        assert real.radiometry[b].gain == 2.0e-05
        assert real.radiometry[b].offset == -0.100000
        assert real.radiometry[b].sun_factor == pytest.approx(math.sin(math.radians(64.74360932)), rel=1e-15)
        assert math.isnan(real.radiometry[b].solar_irradiance)


def test_real_sun_angles(real):
    assert real.sun.mean_zenith == pytest.approx(90.0 - 64.74360932, abs=1e-12)
    assert real.sun.mean_azimuth == pytest.approx(115.87210674, abs=1e-12)
    assert np.allclose(real.sun.zenith, 90.0 - 64.74360932, atol=1e-5)
    assert np.allclose(real.sun.azimuth, 115.87210674, atol=1e-5)
    # the angle grid covers the scene, from the same upper-left corner
    left, bottom, right, top = real.sun.grid.bounds
    assert (left, top) == (452475.0, 3408645.0) and right >= 471285.0 and bottom <= 3390555.0


def test_real_grid_from_band_files(real, landsat_crop_dir):
    g = real.grids["R1"]
    assert set(real.grids) == {"R1"}
    with rasterio.open(landsat_crop_dir / "LC80200392015216LGN00_B4.TIF") as ds:
        assert (g.width, g.height) == (ds.width, ds.height)
        assert g.transform == ds.transform
        assert g.crs == f"EPSG:{ds.crs.to_epsg()}"
    assert (g.width, g.height) == (627, 603)
    assert g.resolution == 30.0
    assert g.crs == "EPSG:32616"  # UTM_ZONE = 16 in the MTL
    assert (g.transform.c, g.transform.f) == (452475.0, 3408645.0)  # not the MTL's full-scene corners


def test_real_toa_from_one_dn(real, landsat_crop_dir):
    row, col = 301, 402
    with rasterio.open(landsat_crop_dir / "LC80200392015216LGN00_B4.TIF") as ds:
        dn = int(ds.read(1)[row, col])
    assert 0 < dn < 65535
    # by hand, MTL literals: REFLECTANCE_MULT_BAND_4 = 2.0000E-05, REFLECTANCE_ADD_BAND_4 = -0.100000,
    # SUN_ELEVATION = 64.74360932
    expected = (dn * 2.0e-5 - 0.1) / math.sin(math.radians(64.74360932))
    r = real.radiometry["B4"]
    assert (dn * r.gain + r.offset) / r.sun_factor == pytest.approx(expected, rel=1e-12)
    assert 0.0 < expected < 1.2


def test_real_view_is_nadir_with_warning(landsat_crop_dir, caplog):
    with caplog.at_level(logging.WARNING, logger="gpumaja.io.landsat"):
        p = read_landsat(landsat_crop_dir / REAL_MTL)  # the MTL file itself
    assert any("nadir" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert set(p.view) == set(REFLECTIVE)
    for a in p.view.values():
        assert np.all(a.zenith == 0.0) and np.all(a.azimuth == 0.0)
    assert p.path == landsat_crop_dir / REAL_MTL
    assert p.describe()["tile"] == "020039"


def test_real_is_landsat(landsat_crop_dir, tmp_path):
    assert is_landsat(landsat_crop_dir)
    assert is_landsat(landsat_crop_dir / REAL_MTL)
    assert not is_landsat(landsat_crop_dir / "LC80200392015216LGN00_B1.TIF")
    assert not is_landsat(tmp_path)
    assert not is_landsat(tmp_path / "nothing_here")
    (tmp_path / "notes_MTL.txt").write_text("hello\n")
    assert not is_landsat(tmp_path / "notes_MTL.txt")
    assert not is_landsat(tmp_path)


def test_real_band_on_other_grid_is_corrupt(landsat_crop_dir, tmp_path):
    folder = tmp_path / "crop"
    folder.mkdir()
    for f in landsat_crop_dir.iterdir():
        if f.name.endswith(("_B8.TIF", "_B10.TIF", "_B11.TIF")):
            continue
        shutil.copy(f, folder / f.name)
    b9 = folder / "LC80200392015216LGN00_B9.TIF"
    with rasterio.open(b9) as ds:
        data, profile = ds.read(1), ds.profile
    profile["transform"] = profile["transform"] @ Affine.translation(1, 0)  # shifted by one pixel
    b9.unlink()
    with rasterio.open(b9, "w", **profile) as ds:
        ds.write(data, 1)
    with pytest.raises(CorruptFileError) as err:
        read_landsat(folder)
    assert "B9" in str(err.value)


# --------------------------------------------------------------------------------------------------
# Synthetic Collection-2 products

H, W = 200, 500  # rows, cols at 30 m: more than one coarse angle cell, with partial edge cells
X0, Y0 = 480015.0, 4990005.0  # UTM 31N, a few km west of the central meridian
CRS = "EPSG:32631"


def _tif(path: Path, data: np.ndarray, res: float = 30.0, x0: float = X0, y0: float = Y0) -> None:
    with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0], count=1,
                       dtype=data.dtype, crs=CRS, transform=Affine(res, 0, x0, 0, -res, y0)) as ds:
        ds.write(data, 1)


def synthetic_angles() -> dict[str, np.ndarray]:
    r, c = np.mgrid[0:H, 0:W]
    sza = (3000 + 3 * r + c).astype(np.int16)
    saa = (13650 + c - r).astype(np.int16)
    vza = (500 + 2 * c).astype(np.int16)
    # view azimuth alternating around +/-180 deg, as C2 writes it in [-180, 180]: circular mean ~180
    vaa = np.where((r + c) % 2 == 0, 17900, -17800).astype(np.int16)
    vza[:, :7] = 0  # fill outside the footprint: zenith and azimuth both 0
    vaa[:, :7] = 0
    return {"SZA": sza, "SAA": saa, "VZA": vza, "VAA": vaa}


def make_c2(folder: Path, *, fmt: str = "txt", angle_bands: bool = True, ang_text: str | None = None,
            **group_kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    stem = C2_PRODUCT_ID
    groups = c2_groups(stem, angle_bands=angle_bands, ang_file=ang_text is not None, **group_kw)
    (folder / f"{stem}_MTL.{fmt}").write_text(c2_mtl_txt(groups) if fmt == "txt" else c2_mtl_json(groups))
    rng = np.random.default_rng(7)
    for n in (1, 2, 3, 4, 5, 6, 7, 9):
        _tif(folder / f"{stem}_B{n}.TIF", rng.integers(1, 30000, (H, W)).astype(np.uint16))
    _tif(folder / f"{stem}_QA_RADSAT.TIF", np.zeros((H, W), np.uint16))
    if angle_bands:
        for k, v in synthetic_angles().items():
            _tif(folder / f"{stem}_{k}.TIF", v)
    if ang_text is not None:
        (folder / f"{stem}_ANG.txt").write_text(ang_text)
    return folder


def test_c2_txt_product(tmp_path):
    p = read_landsat(make_c2(tmp_path / "p"))
    assert p.platform == "LANDSAT_9"
    assert p.tile == "198030" and p.orbit == 198
    assert p.acquired == C2_ACQUIRED
    assert p.processing_baseline == "C2"
    assert p.product_id == C2_PRODUCT_ID
    assert p.extra["PROCESSING_SOFTWARE_VERSION"] == "LPGS_16.4.0"
    assert p.extra["COLLECTION_NUMBER"] == "02"
    assert p.extra["QA_RADSAT"].endswith("_QA_RADSAT.TIF")
    assert p.radiometry["B4"].gain == 2.04e-05 and p.radiometry["B4"].offset == -0.104
    assert p.radiometry["B9"].gain == 2.09e-05 and p.radiometry["B9"].offset == -0.109
    assert p.radiometry["B1"].sun_factor == pytest.approx(math.sin(math.radians(float(C2_SUN_ELEVATION))))
    g = p.grids["R1"]
    assert (g.width, g.height, g.crs, g.transform) == (W, H, CRS, Affine(30, 0, X0, 0, -30, Y0))


def test_c2_json_product_matches_txt(tmp_path):
    t = read_landsat(make_c2(tmp_path / "t", fmt="txt"))
    j = read_landsat(make_c2(tmp_path / "j", fmt="json"))
    dt, dj = t.describe(), j.describe()
    for d in (dt, dj):
        d.pop("path")
        d["extra"].pop("MTL_LAYOUT")
        d["extra"].pop("MTL")
        d["extra"].pop("QA_RADSAT")
    assert dj == dt
    assert j.extra["MTL_LAYOUT"] == "C2_JSON" and t.extra["MTL_LAYOUT"] == "C2_TXT"
    assert np.array_equal(j.view["B1"].zenith, t.view["B1"].zenith)


def _block_expect(zen: np.ndarray, az: np.ndarray, k: int):
    """Block means over k x k pixel cells, fill (0, 0) pixels left out, azimuth on the circle."""
    rows, cols = math.ceil(H / k), math.ceil(W / k)
    ez, ea = np.full((rows, cols), np.nan), np.full((rows, cols), np.nan)
    for i in range(rows):
        for j in range(cols):
            z = zen[i * k:(i + 1) * k, j * k:(j + 1) * k].astype(float)
            a = az[i * k:(i + 1) * k, j * k:(j + 1) * k].astype(float)
            ok = ~((z == 0) & (a == 0))
            ez[i, j] = z[ok].mean() / 100
            rad = np.radians(a[ok] / 100)
            ea[i, j] = math.degrees(math.atan2(np.sin(rad).mean(), np.cos(rad).mean())) % 360
    return ez, ea


def test_c2_angle_bands_block_averaged(tmp_path):
    p = read_landsat(make_c2(tmp_path / "p"))
    ang = synthetic_angles()
    sun = p.sun
    # coarse grid: about 5 km cells aligned on the scene's upper-left corner, a whole number of pixels
    k = sun.grid.resolution / 30.0
    assert k == int(k) and 3000 <= sun.grid.resolution <= 6000
    k = int(k)
    assert (sun.grid.transform.c, sun.grid.transform.f) == (X0, Y0)
    assert sun.grid.shape == (math.ceil(H / k), math.ceil(W / k))
    assert sun.grid.shape[0] >= 2 or sun.grid.shape[1] >= 2
    ez, ea = _block_expect(ang["SZA"], ang["SAA"], k)
    np.testing.assert_allclose(sun.zenith, ez, atol=1e-4)
    np.testing.assert_allclose(sun.azimuth, ea, atol=1e-4)
    # the means stay the MTL's scene-centre values
    assert sun.mean_zenith == pytest.approx(90.0 - float(C2_SUN_ELEVATION), abs=1e-12)
    assert sun.mean_azimuth == pytest.approx(float(C2_SUN_AZIMUTH), abs=1e-12)

    view = p.view["B4"]
    assert view.grid == sun.grid
    vz, va = _block_expect(ang["VZA"], ang["VAA"], k)
    np.testing.assert_allclose(view.zenith, vz, atol=1e-4)
    # circular mean: around 180 deg, never the arithmetic ~0 of +179 and -178
    assert np.all(np.abs(va - 180.5) < 0.6)
    np.testing.assert_allclose(view.azimuth, va, atol=1e-3)
    assert all(p.view[b] is view for b in REFLECTIVE)


def _geodetic_to_ecef(lon, lat, h):
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    lon, lat = math.radians(lon), math.radians(lat)
    n = a / math.sqrt(1 - e2 * math.sin(lat) ** 2)
    return ((n + h) * math.cos(lat) * math.cos(lon), (n + h) * math.cos(lat) * math.sin(lon),
            (n * (1 - e2) + h) * math.sin(lat))


def ang_text(positions: list[tuple[float, float, float]]) -> str:
    """A Landsat *_ANG.txt the way USGS writes it: multi-line parenthesised lists, 3 values a line."""

    def lst(values):
        rows = [", ".join(f"{v:.6f}" for v in values[i:i + 3]) for i in range(0, len(values), 3)]
        return "(" + ",\n      ".join(rows) + ")"

    n = len(positions)
    return "\n".join([
        "GROUP = FILE_HEADER",
        '  LANDSAT_SCENE_ID = "LC91980302024153LGN00"',
        '  SPACECRAFT_ID = "LANDSAT_9"',
        "  NUMBER_OF_BANDS = 11",
        "  BAND_LIST = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11)",
        "END_GROUP = FILE_HEADER",
        "GROUP = PROJECTION",
        '  ELEVATION_UNITS = "METERS"',
        '  DATUM = "WGS84"',
        '  PROJECTION = "UTM"',
        "  UTM_ZONE = 31",
        f"  UL_CORNER = ( {X0 - 15:.6f}, {Y0 + 15:.6f})",
        "END_GROUP = PROJECTION",
        "GROUP = EPHEMERIS",
        "  EPHEMERIS_EPOCH_YEAR = 2024",
        "  EPHEMERIS_EPOCH_DAY = 153",
        "  EPHEMERIS_EPOCH_SECONDS = 38214.000000",
        f"  NUMBER_OF_POINTS = {n}",
        f"  EPHEMERIS_TIME = {lst([float(i) for i in range(n)])}",
        f"  EPHEMERIS_ECEF_X = {lst([p[0] for p in positions])}",
        f"  EPHEMERIS_ECEF_Y = {lst([p[1] for p in positions])}",
        f"  EPHEMERIS_ECEF_Z = {lst([p[2] for p in positions])}",
        "END_GROUP = EPHEMERIS",
        "GROUP = SOLAR_VECTOR",
        "  SOLAR_EPOCH_YEAR = 2024",
        "  NUMBER_OF_POINTS = 1",
        "  SAMPLE_TIME = (0.000000)",
        "END_GROUP = SOLAR_VECTOR",
        "END",
        "",
    ])


def test_view_from_ang_ephemeris(tmp_path):
    # First pass without ANG file: learn the coarse angle grid, pick one of its points.
    base = read_landsat(make_c2(tmp_path / "a", angle_bands=False))
    grid = base.view["B1"].grid
    rows, cols = grid.shape
    assert cols >= 3
    r0, c0 = rows // 2, 1
    xs, ys = grid.xy_centres()
    (lon0,), (lat0,) = warp_transform(CRS, "EPSG:4326", [xs[c0]], [ys[r0]])
    # A north-going track along the meridian of that point at 705 km, one sample exactly above it.
    track = [_geodetic_to_ecef(lon0, lat0 + 0.06 * k, 705e3) for k in range(-10, 11)]
    folder = make_c2(tmp_path / "b", angle_bands=False, ang_text=ang_text(track))
    p = read_landsat(folder)
    view = p.view["B1"]
    assert view.grid == grid
    assert view.zenith[r0, c0] < 0.01
    # cross-track: zenith grows with the distance to the track; spherical Earth, H = 705 km
    R, Hs = 6371e3, 705e3
    prev = -1.0
    for c in range(c0 + 1, cols):
        d = abs(xs[c] - xs[c0]) / 0.9996  # UTM scale factor near the central meridian
        g = d / R
        expected = math.degrees(math.atan2((R + Hs) * math.sin(g), (R + Hs) * math.cos(g) - R))
        assert view.zenith[r0, c] == pytest.approx(expected, abs=0.01)
        assert view.zenith[r0, c] > prev
        prev = view.zenith[r0, c]
        assert view.azimuth[r0, c] == pytest.approx(270.0, abs=1.0)  # satellite to the west
    assert view.zenith[r0, c0 - 1] == pytest.approx(
        math.degrees(math.atan2((R + Hs) * math.sin(grid.resolution / 0.9996 / R),
                                (R + Hs) * math.cos(grid.resolution / 0.9996 / R) - R)), abs=0.01)
    assert view.azimuth[r0, c0 - 1] == pytest.approx(90.0, abs=1.0)  # satellite to the east
    # along the track (same column), still almost nadir
    assert np.all(view.zenith[:, c0] < 0.05)
    assert "ANG" in p.extra["VIEW_ANGLES"]


def test_no_angles_at_all_is_nadir_with_warning(tmp_path, caplog):
    folder = make_c2(tmp_path / "p", angle_bands=False)
    with caplog.at_level(logging.WARNING, logger="gpumaja.io.landsat"):
        p = read_landsat(folder)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("nadir" in w for w in warnings)
    assert all(np.all(a.zenith == 0) and np.all(a.azimuth == 0) for a in p.view.values())
    # sun: constant from the MTL
    assert np.allclose(p.sun.zenith, 90.0 - float(C2_SUN_ELEVATION), atol=1e-5)
    assert np.allclose(p.sun.azimuth, float(C2_SUN_AZIMUTH), atol=1e-5)


def test_missing_band_file(tmp_path):
    folder = make_c2(tmp_path / "p")
    (folder / f"{C2_PRODUCT_ID}_B5.TIF").unlink()
    with pytest.raises(MissingFileError) as err:
        read_landsat(folder)
    assert f"{C2_PRODUCT_ID}_B5.TIF" in str(err.value)


def test_unreadable_band_file(tmp_path):
    folder = make_c2(tmp_path / "p")
    (folder / f"{C2_PRODUCT_ID}_B3.TIF").write_bytes(b"II*\x00garbage")
    with pytest.raises(CorruptFileError, match="_B3.TIF"):
        read_landsat(folder)


def test_mtl_missing_key_via_reader(tmp_path):
    folder = make_c2(tmp_path / "p")
    mtl = folder / f"{C2_PRODUCT_ID}_MTL.txt"
    mtl.write_text(c2_mtl_txt(c2_groups(drop=("REFLECTANCE_ADD_BAND_6",))))
    with pytest.raises(CorruptFileError) as err:
        read_landsat(folder)
    assert "REFLECTANCE_ADD_BAND_6" in str(err.value) and mtl.name in str(err.value)


def test_folder_without_mtl_and_missing_path(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MissingFileError, match="MTL"):
        read_landsat(tmp_path / "empty")
    with pytest.raises(MissingFileError):
        read_landsat(tmp_path / "absent")


def test_txt_preferred_when_json_also_there(tmp_path):
    folder = make_c2(tmp_path / "p")
    (folder / f"{C2_PRODUCT_ID}_MTL.json").write_text(c2_mtl_json(c2_groups()))
    assert is_landsat(folder)
    assert read_landsat(folder).extra["MTL_LAYOUT"] == "C2_TXT"
    assert is_landsat(folder / f"{C2_PRODUCT_ID}_MTL.json")


@pytest.mark.parametrize("kw", [{"spacecraft": "LANDSAT_7"}, {"processing_level": "L2SP"}])
def test_unsupported_products(tmp_path, kw):
    with pytest.raises(UnknownProductError):
        read_landsat(make_c2(tmp_path / "p", angle_bands=False, **kw))
