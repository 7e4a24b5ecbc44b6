"""Product sources: the files of a product, whether it is a folder or a `.zip` holding one.

A `ProductSource` lists the product's files (POSIX paths relative to the product root), reads
small members (XML) as bytes, and gives a path rasterio can open for a member:
the plain absolute path for a folder, ``/vsizip/<absolute zip>/<member>`` for a zip (no extraction).

Every member name of a zip is checked before anything is read: absolute paths, drive letters,
backslashes, NUL bytes, any ``..`` component and symbolic links are refused with
`UnsafeArchiveError` naming the zip and the member.
"""

from __future__ import annotations

import os
import re
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from gpumaja.errors import CorruptFileError, MissingFileError, UnsafeArchiveError

if TYPE_CHECKING:
    from typing_extensions import Self

MAX_XML_BYTES = 256 * 1024 * 1024  # a metadata member larger than this is not metadata

_DRIVE = re.compile(r"^[A-Za-z]:")


def check_member_name(name: str, archive: str | Path) -> None:
    """Raise UnsafeArchiveError unless `name` is a plain relative path inside the archive."""
    bad = (
        not name
        or "\x00" in name
        or "\\" in name
        or name.startswith("/")
        or _DRIVE.match(name) is not None
        or ".." in PurePosixPath(name).parts
    )
    if bad:
        raise UnsafeArchiveError(f"refused unsafe member name {name!r}", archive)


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = (info.external_attr >> 16) & 0xFFFF
    return info.create_system == 3 and stat.S_ISLNK(mode)


class ProductSource:
    """The files of one product. `root` is the product as the user gave it (folder or zip)."""

    root: Path

    def names(self) -> list[str]:  # pragma: no cover - interface
        """Every file of the product, relative POSIX paths."""
        raise NotImplementedError

    def exists(self, name: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def read_bytes(self, name: str) -> bytes:  # pragma: no cover - interface
        """Content of a (small) member; MissingFileError naming it when it is not there."""
        raise NotImplementedError

    def gdal_path(self, name: str) -> str:  # pragma: no cover - interface
        """A path rasterio/GDAL can open for the member."""
        raise NotImplementedError

    def label(self, name: str) -> str:  # pragma: no cover - interface
        """How error messages name the member."""
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class DirSource(ProductSource):
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._abs = self.root.resolve()

    def names(self) -> list[str]:
        out = []
        for dirpath, _dirs, files in os.walk(self._abs):
            rel = Path(dirpath).relative_to(self._abs)
            out.extend((rel / f).as_posix() for f in files)
        return sorted(n.removeprefix("./") for n in out)

    def _path(self, name: str) -> Path:
        return self._abs / PurePosixPath(name)

    def exists(self, name: str) -> bool:
        return self._path(name).is_file()

    def read_bytes(self, name: str) -> bytes:
        path = self._path(name)
        if not path.is_file():
            raise MissingFileError("file not found", path)
        try:
            return path.read_bytes()
        except OSError as exc:
            raise CorruptFileError(f"cannot read: {exc}", path) from exc

    def gdal_path(self, name: str) -> str:
        return str(self._path(name))

    def label(self, name: str) -> str:
        return str(self._path(name))


class ZipSource(ProductSource):
    """A zip archive; `prefix` ("S2A_....SAFE/" or "") is prepended to every member name."""

    def __init__(self, path: str | Path, prefix: str = ""):
        self.root = Path(path)
        self._abs = self.root.resolve()
        try:
            self._zip = zipfile.ZipFile(self._abs)
        except FileNotFoundError as exc:
            raise MissingFileError("file not found", self.root) from exc
        except (zipfile.BadZipFile, OSError, ValueError) as exc:
            raise CorruptFileError(f"not a readable zip archive: {exc}", self.root) from exc
        try:
            infos = self._zip.infolist()
            for info in infos:
                check_member_name(info.filename, self.root)
                if _is_symlink(info):
                    raise UnsafeArchiveError(f"refused symbolic link member {info.filename!r}", self.root)
        except BaseException:
            self._zip.close()
            raise
        self.prefix = prefix
        self._infos = {i.filename: i for i in infos if not i.is_dir()}

    def all_members(self) -> list[str]:
        """Every file member of the archive, whatever the prefix."""
        return sorted(self._infos)

    def names(self) -> list[str]:
        p = self.prefix
        return sorted(n[len(p) :] for n in self._infos if n.startswith(p))

    def exists(self, name: str) -> bool:
        return self.prefix + name in self._infos

    def read_bytes(self, name: str) -> bytes:
        member = self.prefix + name
        info = self._infos.get(member)
        if info is None:
            raise MissingFileError("file not found in archive", self.label(name))
        if info.file_size > MAX_XML_BYTES:
            raise CorruptFileError(f"member too large ({info.file_size} bytes)", self.label(name))
        try:
            return self._zip.read(info)
        except Exception as exc:  # BadZipFile (CRC), zlib.error, NotImplementedError (compression)
            raise CorruptFileError(f"cannot read member: {exc}", self.label(name)) from exc

    def gdal_path(self, name: str) -> str:
        return f"/vsizip/{self._abs.as_posix()}/{self.prefix}{name}"

    def label(self, name: str) -> str:
        return f"{self.root}!/{self.prefix}{name}"

    def close(self) -> None:
        self._zip.close()
