import pytest

from gpumaja.model.grids import Grid


def test_bounds_and_centres():
    g = Grid.from_origin("EPSG:32631", 300000, 4900020, 10, 30, 20)
    assert g.shape == (20, 30)
    assert g.bounds == (300000, 4899820, 300300, 4900020)
    xs, ys = g.xy_centres()
    assert xs[0] == 300005 and ys[0] == 4900015 and xs[-1] == 300295


def test_rescaled_keeps_footprint():
    g = Grid.from_origin("EPSG:32631", 350000, 4850020, 10, 30, 30)
    r2 = g.rescaled(20)
    assert (r2.width, r2.height, r2.resolution) == (15, 15, 20)
    assert r2.bounds == g.bounds
    with pytest.raises(ValueError, match="not a multiple"):
        g.rescaled(60.0 * 7)


def test_coarsen_covers_footprint():
    g = Grid.from_origin("EPSG:32631", 300000, 4900020, 10, 10980, 10980)
    c = g.coarsen(240)
    assert c.shape == (458, 458)  # 109800 m / 240 m = 457.5 -> 458 cells (maja-l2a.md: ~458x458)
    assert c.bounds[0] == 300000 and c.bounds[3] == 4900020
    assert c.bounds[2] >= g.bounds[2] and c.bounds[1] <= g.bounds[1]
    assert g.coarsen(120).shape == (915, 915)
    with pytest.raises(ValueError):
        g.coarsen(5)


def test_grids_compare_by_value_and_reject_rotation():
    a = Grid.from_origin("EPSG:32631", 0, 100, 10, 5, 5)
    b = Grid.from_origin("EPSG:32631", 0, 100, 10, 5, 5)
    assert a == b and hash(a) == hash(b)
    assert a != Grid.from_origin("EPSG:32632", 0, 100, 10, 5, 5)
    from affine import Affine

    with pytest.raises(ValueError):
        Grid("EPSG:32631", Affine(10, 1, 0, 0, -10, 100), 5, 5)


def test_contains():
    tile = Grid.from_origin("EPSG:32631", 300000, 4900020, 10, 10980, 10980)
    win = Grid.from_origin("EPSG:32631", 350000, 4850020, 10, 30, 30)
    assert tile.contains(win) and not win.contains(tile)
