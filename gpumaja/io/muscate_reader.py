"""Read a MUSCATE L2A product folder (gpumaja's or Theia's layout, maja-l2a.md §5) as xarray.

`open_l2a(path, group="R1")` returns one `xarray.Dataset` for one resolution group:

- `sre`, `fre` (band, y, x) float32 reflectance = count / REFLECTANCE_QUANTIFICATION_VALUE, NaN where
  the count is the nodata value (-10000); `fre` only when the product has FRE files;
- `water_vapour` (g/cm2) and `aot` (y, x) float32 = ATB count / quantification value, NaN where the
  count is the ATB nodata (0);
- `clm`, `mg2`, `sat`, `edg`, `iab` (y, x) uint8 bit masks (§1.12), each only when the MTD lists it;
- coords: `x`, `y` (pixel centres, map units), `band` (gpumaja band names "B02", "B8A"; Landsat
  "B1") with `band_id` (MUSCATE ids "B2") and `wavelength_nm`;
- attrs: crs ("EPSG:n"), transform (6 floats a, b, c, d, e, f of the affine transform), product_id,
  platform, acquired (ISO 8601 UTC), tile, group (the MUSCATE group id), cloud_percent,
  snow_percent, valid.

File names, band lists, quantification and nodata values come from the MTD_ALL.xml (`read_mtd`). A
Landsat product's only group is "XS"; group="R1" selects it too. Everything is read eagerly.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from gpumaja.errors import CorruptFileError, GpumajaError, InputError, MissingFileError
from gpumaja.io.muscate_mtd import muscate_band_id, read_mtd
from gpumaja.model.bands import LANDSAT_OLI_BANDS, S2_BANDS
from gpumaja.model.grids import Grid

MASK_VARIABLES = ("CLM", "MG2", "SAT", "EDG", "IAB")


def _gpumaja_band(band_id: str, platform: str) -> tuple[str, float]:
    """(gpumaja band name, centre wavelength nm) of a MUSCATE band id on a platform."""
    family = LANDSAT_OLI_BANDS if platform.upper().startswith("LANDSAT") else S2_BANDS
    for b in family:
        if muscate_band_id(b.name) == band_id:
            return b.name, float(b.wavelength_nm)
    return band_id, float("nan")


def _read(path: Path, band: int = 1) -> tuple[np.ndarray, Grid]:
    import rasterio

    from gpumaja.io.bands import grid_of

    if not path.is_file():
        raise MissingFileError("file listed in the MTD_ALL.xml is missing", path)
    try:
        with rasterio.open(path) as ds:
            if band > ds.count:
                raise CorruptFileError(f"has {ds.count} band(s), band {band} expected", path)
            return ds.read(band), grid_of(ds, path)
    except GpumajaError:
        raise
    except Exception as exc:  # RasterioIOError, CPLE_*
        raise CorruptFileError(f"cannot read raster: {exc}", path) from exc


def _group_id(meta: dict, group: str) -> str:
    groups = list(meta["groups"])
    if group in groups:
        return group
    if group == "R1" and groups == ["XS"]:
        return "XS"
    raise InputError(f"no group {group!r} in the product (groups: {', '.join(groups) or 'none'})",
                     meta["path"])


def open_l2a(path: str | os.PathLike, group: str = "R1"):
    """One resolution group of a MUSCATE L2A product as an xarray.Dataset (see the module doc)."""
    import xarray as xr

    meta = read_mtd(path)
    mtd = meta["path"]
    root = mtd.parent
    if not meta["valid"] and not meta["images"]["SRE"]:
        raise InputError("the product holds metadata only (not valid: too cloudy or no data)", mtd)
    gid = _group_id(meta, group)
    band_ids = meta["groups"][gid]
    if not band_ids:
        raise CorruptFileError(f"group {gid} lists no band", mtd)
    quant = meta["quantification"]
    nodata = meta["nodata"]
    for key in ("reflectance", "water_vapour", "aot"):
        if not quant.get(key):
            raise CorruptFileError(f"no {key} quantification value", mtd)
    refl_nodata = nodata["reflectance"] if nodata["reflectance"] is not None else -10000.0

    grid: Grid | None = None

    def check_grid(g: Grid, file: Path) -> None:
        nonlocal grid
        if grid is None:
            grid = g
        elif g != grid:
            raise CorruptFileError(f"grid {g} differs from the group's {grid}", file)

    variables = {}
    for code, var in (("SRE", "sre"), ("FRE", "fre")):
        listed = meta["images"][code]
        if not listed and code == "FRE":
            continue
        cube = []
        for bid in band_ids:
            if bid not in listed:
                raise CorruptFileError(f"no {code} file listed for band {bid}", mtd)
            counts, g = _read(root / listed[bid])
            check_grid(g, root / listed[bid])
            refl = counts.astype(np.float32) / np.float32(quant["reflectance"])
            refl[counts == refl_nodata] = np.nan
            cube.append(refl)
        variables[var] = (("band", "y", "x"), np.stack(cube))

    atb = meta["images"]["ATB"].get(gid)
    if atb is None:
        raise CorruptFileError(f"no ATB file listed for group {gid}", mtd)
    for var, key in (("water_vapour", "water_vapour"), ("aot", "aot")):
        counts, g = _read(root / atb, meta["atb_band_numbers"][key])
        check_grid(g, root / atb)
        values = counts.astype(np.float32) / np.float32(quant[key])
        nd = nodata[key] if nodata[key] is not None else 0.0
        values[counts == nd] = np.nan
        variables[var] = (("y", "x"), values)

    for code in MASK_VARIABLES:
        rel = meta["mask_files"].get(code, {}).get(gid)
        if rel is None:
            continue
        counts, g = _read(root / rel)
        check_grid(g, root / rel)
        variables[code.lower()] = (("y", "x"), counts.astype(np.uint8, copy=False))

    assert grid is not None
    xs, ys = grid.xy_centres()
    names = [_gpumaja_band(b, meta["platform"]) for b in band_ids]
    coords = {
        "band": [n for n, _ in names],
        "band_id": ("band", list(band_ids)),
        "wavelength_nm": ("band", [w for _, w in names]),
        "y": np.asarray(ys),
        "x": np.asarray(xs),
    }
    attrs = {
        "crs": grid.crs,
        "transform": tuple(float(v) for v in tuple(grid.transform)[:6]),
        "product_id": meta["product_id"],
        "platform": meta["platform"],
        "acquired": meta["acquired"].isoformat().replace("+00:00", "Z"),
        "tile": meta["tile"] or "",
        "group": gid,
        "cloud_percent": meta["cloud_percent"] if meta["cloud_percent"] is not None else float("nan"),
        "snow_percent": meta["snow_percent"] if meta["snow_percent"] is not None else float("nan"),
        "valid": bool(meta["valid"]),
    }
    return xr.Dataset(variables, coords=coords, attrs=attrs)


__all__ = ["open_l2a"]
