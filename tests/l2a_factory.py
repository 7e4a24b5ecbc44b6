"""Small hand-made L1CProduct / L2AResult objects for the MUSCATE writer and reader tests.

Not a test module (no test_ prefix): imported by tests/test_io_muscate*.py. Needs no shared data.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from gpumaja.model.angles import AngleGrid
from gpumaja.model.bands import bands_of, group_bands
from gpumaja.model.grids import Grid
from gpumaja.model.l2a import L2AGroup, L2AResult
from gpumaja.model.params import L2Params
from gpumaja.model.product import BandRadiometry, L1CProduct

S2_ACQUIRED = datetime(2024, 1, 20, 10, 58, 50, 500329, tzinfo=timezone.utc)
L8_ACQUIRED = datetime(2015, 8, 4, 15, 59, 11, 123999, tzinfo=timezone.utc)
# S2A solar irradiance as in MTD_MSIL1C.xml (W m-2 um-1), B01..B12 with B8A after B08
S2_E0 = dict(zip([b.name for b in bands_of("S2")],
                 (1884.69, 1959.66, 1823.24, 1512.06, 1424.64, 1287.61, 1162.08, 1041.63, 955.32, 812.92,
                  367.15, 245.59, 85.25)))


def make_product(sensor: str = "S2", r1_shape: tuple[int, int] = (40, 50)) -> L1CProduct:
    """A product whose R1 grid is `r1_shape` px (S2: 10 m, R2 at 20 m, R3 at 60 m; Landsat: 30 m)."""
    ny, nx = r1_shape
    if sensor == "S2":
        crs, x0, y0 = "EPSG:32631", 300000.0, 4900020.0
        res = {"R1": 10.0, "R2": 20.0, "R3": 60.0}
        grids = {g: Grid.from_origin(crs, x0, y0, r, max(1, nx * 10 // int(r)), max(1, ny * 10 // int(r)))
                 for g, r in res.items()}
        platform, tile, acquired, orbit, pid = "SENTINEL-2A", "T31TCJ", S2_ACQUIRED, 51, \
            "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244"
    else:
        crs, x0, y0 = "EPSG:32616", 600000.0, 3700020.0
        grids = {"R1": Grid.from_origin(crs, x0, y0, 30.0, nx, ny)}
        platform, tile, acquired, orbit, pid = "LANDSAT_8", "020039", L8_ACQUIRED, 20, \
            "LC08_L1TP_020039_20150804_20200909_02_T1"
    bands = [b for b in bands_of(sensor) if b.group in grids]
    angle_grid = Grid.from_origin(crs, x0 - 2500.0, y0 + 2500.0, 5000.0, 3, 3)
    zen = (np.array([[30.0, 30.5, 31.0], [30.2, 30.7, 31.2], [30.4, 30.9, 31.4]], np.float32))
    azi = np.full((3, 3), 160.0, np.float32)
    sun = AngleGrid(zen, azi, angle_grid, mean_zenith=30.7, mean_azimuth=160.0)
    view = {b.name: AngleGrid.constant(5.0 + 0.1 * i, 100.0 + i, angle_grid) for i, b in enumerate(bands)}
    radiometry = {b.name: BandRadiometry(1e-4, -0.1, 1.0, S2_E0.get(b.name, float("nan")) if sensor == "S2"
                                         else float("nan")) for b in bands}
    return L1CProduct(
        path=Path("/nonexistent") / pid, sensor=sensor, platform=platform, tile=tile, acquired=acquired,
        orbit=orbit, processing_baseline="05.10" if sensor == "S2" else "C2", product_id=pid,
        band_files={b.name: f"/nonexistent/{b.name}.tif" for b in bands}, radiometry=radiometry,
        grids=grids, sun=sun, view=view, tile_grid=grids["R1"],
    )


def make_group(name: str, grid: Grid, bands: tuple[str, ...], rng: np.random.Generator) -> L2AGroup:
    """Random but plausible outputs; a nodata block (NaN + EDG) in the upper-left corner."""
    ny, nx = grid.shape
    nb = len(bands)
    sre = rng.uniform(-0.05, 0.9, (nb, ny, nx)).astype(np.float32)
    hole = (slice(0, max(1, ny // 4)), slice(0, max(1, nx // 5)))
    edg = np.zeros((ny, nx), np.uint8)
    edg[hole] = 1
    sre[:, hole[0], hole[1]] = np.nan
    fre = (sre * np.float32(1.02)).astype(np.float32)
    wv = rng.uniform(0.3, 4.0, (ny, nx)).astype(np.float32)
    aot = rng.uniform(0.01, 0.9, (ny, nx)).astype(np.float32)
    wv[hole] = np.nan
    aot[hole] = np.nan
    return L2AGroup(
        name=name, grid=grid, bands=bands, sre=sre, fre=fre, water_vapour=wv, aot=aot,
        clm=rng.integers(0, 256, (ny, nx), dtype=np.uint8),
        mg2=rng.integers(0, 256, (ny, nx), dtype=np.uint8),
        sat=rng.integers(0, 2 ** nb, (ny, nx)).astype(np.uint8),
        edg=edg,
        iab=rng.integers(0, 4, (ny, nx), dtype=np.uint8),
    )


def make_result(product: L1CProduct | None = None, cloud_percent: float = 12.7, snow_percent: float = 3.4,
                seed: int = 0, groups: tuple[str, ...] | None = None) -> L2AResult:
    product = product or make_product()
    rng = np.random.default_rng(seed)
    by_group = group_bands(product.sensor)
    names = groups or (("R1", "R2") if product.sensor == "S2" else ("R1",))
    out = {}
    for g in names:
        bands = tuple(b.name for b in by_group[g] if b.name != "B9")  # Landsat cirrus is not output
        out[g] = make_group(g, product.grids[g], bands, rng)
    return L2AResult(
        product=product, groups=out, cloud_percent=cloud_percent, snow_percent=snow_percent,
        nodata_percent=4.0, lut_source="test-lut", aot_method="MULTISPECTRAL",
        params=L2Params().to_dict(), mean_aot=0.12, mean_water_vapour=1.8,
        quality={"RainDetected": False, "HotSpotDetected": True, "SunGlintDetected": False},
    )
