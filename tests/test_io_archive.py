"""Zipped SAFE products and archive member checks."""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gpumaja.errors import CorruptFileError, MissingFileError, UnknownProductError, UnsafeArchiveError
from gpumaja.io.archive import DirSource, ZipSource, check_member_name
from gpumaja.io.bands import read_dn
from gpumaja.io.safe import is_safe, read_safe

S2A = "S2A_MSIL1C_20240120T105341_N0510_R051_T31TCJ_20240120T125244"


@pytest.fixture(scope="module")
def s2a_path(s2_safe_dir) -> Path:
    return s2_safe_dir / f"{S2A}.SAFE"


def zip_safe(safe: Path, dest: Path, top: bool = True, extra: dict[str, bytes] | None = None) -> Path:
    """Zip a SAFE folder the way the Copernicus hubs do (one top folder NAME.SAFE/)."""
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in sorted(safe.rglob("*")):
            rel = f.relative_to(safe).as_posix()
            arc = f"{safe.name}/{rel}" if top else rel
            if f.is_dir():
                continue
            zf.write(f, arc)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return dest


@pytest.fixture(scope="module")
def zipped(s2a_path, tmp_path_factory) -> Path:
    return zip_safe(s2a_path, tmp_path_factory.mktemp("zip") / f"{S2A}.zip")


def test_zip_same_metadata(s2a_path, zipped):
    d, z = read_safe(s2a_path), read_safe(zipped)
    assert z.path == zipped
    assert z.product_id == d.product_id == S2A
    for attr in (
        "platform",
        "tile",
        "acquired",
        "orbit",
        "processing_baseline",
        "grids",
        "tile_grid",
        "nodata_dn",
        "saturated_dn",
        "quantification",
        "radiometry",
    ):
        assert getattr(z, attr) == getattr(d, attr), attr
    np.testing.assert_array_equal(z.sun.zenith, d.sun.zenith)
    np.testing.assert_array_equal(z.view["B8A"].azimuth, d.view["B8A"].azimuth)
    assert (
        z.band_files["B02"]
        == f"/vsizip/{zipped.resolve().as_posix()}/{S2A}.SAFE/"
        + "GRANULE/L1C_T31TCJ_A044807_20240120T105433/IMG_DATA/T31TCJ_20240120T105341_B02.jp2"
    )
    assert z.extra["archive"] == "zip"
    assert is_safe(zipped)


def test_zip_same_pixels(s2a_path, zipped):
    d, z = read_safe(s2a_path), read_safe(zipped)
    for b in ("B02", "B05", "B01"):
        np.testing.assert_array_equal(read_dn(z, b), read_dn(d, b))
    assert read_dn(z, "B02")[0, 0] == 2112


def test_zip_without_top_folder(s2a_path, tmp_path):
    z = read_safe(zip_safe(s2a_path, tmp_path / "product.zip", top=False))
    assert z.product_id == S2A  # from PRODUCT_URI
    assert read_dn(z, "B02")[0, 0] == 2112


@pytest.mark.parametrize("member", ["../evil", "S2.SAFE/../../evil", "/etc/evil", "C:/evil", "a\\..\\evil"])
def test_unsafe_member_names(s2a_path, tmp_path, member):
    bad = zip_safe(s2a_path, tmp_path / "bad.zip", extra={member: b"x"})
    with pytest.raises(UnsafeArchiveError) as err:
        read_safe(bad)
    assert "bad.zip" in str(err.value) and repr(member) in str(err.value)


def test_symlink_member(tmp_path):
    path = tmp_path / "link.SAFE.zip"
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo("X.SAFE/MTD_MSIL1C.xml")
        info.create_system = 3
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(UnsafeArchiveError, match=r"link.SAFE.zip.*symbolic link.*MTD_MSIL1C.xml"):
        read_safe(path)


def test_check_member_name_accepts_plain_paths():
    for ok in ("a.SAFE/GRANULE/x/MTD_TL.xml", "MTD_MSIL1C.xml", "a..b/c..jp2"):
        check_member_name(ok, "z.zip")


def test_zip_xxe_refused(s2a_path, tmp_path):
    doc = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
    path = tmp_path / "xxe.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("X.SAFE/MTD_MSIL1C.xml", doc)
    with pytest.raises(CorruptFileError, match=r"xxe.zip!/X.SAFE/MTD_MSIL1C.xml"):
        read_safe(path)


def test_zip_missing_band_member(s2a_path, tmp_path):
    path = tmp_path / "partial.zip"
    with zipfile.ZipFile(path, "w") as zf:
        for f in sorted(s2a_path.rglob("*")):
            if f.is_file() and not f.name.endswith("_B11.jp2"):
                zf.write(f, f"{s2a_path.name}/{f.relative_to(s2a_path).as_posix()}")
    with pytest.raises(MissingFileError, match="T31TCJ_20240120T105341_B11.jp2"):
        read_safe(path)


def test_zip_not_a_safe(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert not is_safe(path)
    with pytest.raises(UnknownProductError, match="other.zip"):
        read_safe(path)


def test_safe_zip_without_mtd(tmp_path):
    path = tmp_path / "Y.SAFE.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("Y.SAFE/manifest.safe", "<x/>")
    with pytest.raises(MissingFileError, match="MTD_MSIL1C.xml"):
        read_safe(path)


def test_broken_zip(tmp_path):
    path = tmp_path / "broken.SAFE.zip"
    path.write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(CorruptFileError, match="broken.SAFE.zip"):
        read_safe(path)


def test_sources_list_and_read(s2a_path, zipped):
    d = DirSource(s2a_path)
    with ZipSource(zipped, prefix=f"{S2A}.SAFE/") as z:
        assert "MTD_MSIL1C.xml" in d.names() and "MTD_MSIL1C.xml" in z.names()
        assert set(d.names()) == set(z.names())
        assert d.read_bytes("MTD_MSIL1C.xml") == z.read_bytes("MTD_MSIL1C.xml")
        with pytest.raises(MissingFileError, match="nothing.xml"):
            z.read_bytes("nothing.xml")
    with pytest.raises(MissingFileError, match="nothing.xml"):
        d.read_bytes("nothing.xml")


def test_read_dn_in_threads(zipped):
    from concurrent.futures import ThreadPoolExecutor

    z = read_safe(zipped)
    names = [b.name for b in z.bands] * 3
    sequential = [read_dn(z, b) for b in names]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda b: read_dn(z, b), names))
    for a, b in zip(sequential, parallel):
        np.testing.assert_array_equal(a, b)
