"""The tile-series data model: bands, grids, angles, per-date metadata and the series itself."""

from gpumaja.model.angles import AngleGrid
from gpumaja.model.bands import Band, bands_of, group_bands
from gpumaja.model.grids import Grid
from gpumaja.model.product import BandRadiometry, L1CProduct

__all__ = ["AngleGrid", "Band", "BandRadiometry", "Grid", "L1CProduct", "bands_of", "group_bands"]
