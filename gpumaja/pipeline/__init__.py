"""Pipelines: order the I/O and compute steps and hold their state."""
