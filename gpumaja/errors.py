"""The error hierarchy: one root, subclasses that also inherit the built-in that fits.

Every message names the file (or the option) and what was expected, so that the CLI can print it
as is and exit with code 2 for bad input or bad usage, 1 for a processing failure.
"""

from __future__ import annotations

from pathlib import Path


class GpumajaError(Exception):
    """Root of every error gpumaja raises on purpose."""

    exit_code = 1


class InputError(GpumajaError, ValueError):
    """Bad input: a product, a file or an option the user gave is not what it should be."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None):
        self.path = Path(path) if path is not None else None
        super().__init__(f"{path}: {message}" if path is not None else message)


class MissingFileError(InputError, FileNotFoundError):
    """A file a product must hold is not there (e.g. a band file or MTD_TL.xml)."""


class CorruptFileError(InputError, OSError):
    """A file is there but cannot be decoded (truncated JP2, garbled XML, wrong size)."""


class UnknownProductError(InputError):
    """The path is not a product type gpumaja reads."""


class UnsafeArchiveError(InputError):
    """A .zip product holds an absolute path or a path climbing out with '..'."""


class SeriesError(InputError):
    """Products that cannot form one series: mixed tiles or grids, duplicate acquisitions."""


class DeviceError(GpumajaError, RuntimeError):
    """The requested compute device cannot be used (e.g. --device gpu without a usable GPU)."""

    exit_code = 2


class KernelCompileError(GpumajaError, RuntimeError):
    """A CUDA kernel failed to compile; the message carries NVRTC's log with .cu line numbers."""
