"""Synthetic Sentinel-2 L1C time series with truth (`gpumaja synth`), for tests, demo and benchmarks."""

from gpumaja.synth.series import generate_series

__all__ = ["generate_series"]
