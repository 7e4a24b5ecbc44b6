from datetime import datetime, timezone
from pathlib import Path

import pytest

from gpumaja.errors import SeriesError
from gpumaja.io.series import assemble_series
from gpumaja.model.angles import AngleGrid
from gpumaja.model.grids import Grid
from gpumaja.model.product import BandRadiometry, L1CProduct

GRID = Grid.from_origin("EPSG:32631", 300000, 4900020, 10, 60, 60)


def product(day, tile="T31TCJ", platform="SENTINEL-2A", baseline="05.10", grid=GRID, name=None):
    when = datetime(2024, 1, day, 10, 53, 41, tzinfo=timezone.utc)
    angles = AngleGrid.constant(40.0, 160.0, Grid.from_origin(GRID.crs, 297500, 4902520, 5000, 3, 3))
    pid = name or f"{platform}_{day}_{baseline}"
    return L1CProduct(
        path=Path(pid), sensor="S2", platform=platform, tile=tile, acquired=when, orbit=51,
        processing_baseline=baseline, product_id=pid, band_files={"B02": "x"},
        radiometry={"B02": BandRadiometry(1e-4, -0.1)}, grids={"R1": grid}, sun=angles, view={"B02": angles},
    )


def test_sorted_by_date_whatever_the_order():
    ps = [product(20), product(5), product(12)]
    assert [p.acquired.day for p in assemble_series(ps)] == [5, 12, 20]


def test_mixed_tiles_name_both_products():
    a, b = product(5), product(6, tile="T31TCK")
    with pytest.raises(SeriesError) as e:
        assemble_series([a, b])
    assert a.product_id in str(e.value) and b.product_id in str(e.value)


def test_mixed_grids_are_an_error():
    other = Grid.from_origin("EPSG:32631", 300010, 4900020, 10, 60, 60)
    with pytest.raises(SeriesError, match="grids differ"):
        assemble_series([product(5), product(6, grid=other)])


def test_duplicates_error_unless_dedupe_which_keeps_newest_baseline():
    old, new = product(5, baseline="04.00"), product(5, baseline="05.10")
    with pytest.raises(SeriesError, match="duplicate acquisition"):
        assemble_series([old, new])
    kept = assemble_series([new, old], dedupe=True)
    assert len(kept) == 1 and kept[0] is new
    # another platform at the same second is not a duplicate
    assert len(assemble_series([old, product(5, platform="SENTINEL-2B")])) == 2


def test_empty_series_is_an_error():
    with pytest.raises(SeriesError):
        assemble_series([])
