"""Cloud, cirrus, snow and water masks at the coarse grid, their dilation and resampling."""
