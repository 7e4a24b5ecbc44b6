"""The `gpumaja batch` manifest (gpumaja/io/manifest.py): both forms, relative paths, and every
refusal naming the manifest file and the line or entry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gpumaja.errors import InputError, MissingFileError
from gpumaja.io.manifest import TileEntry, parse_manifest, read_manifest


@pytest.fixture
def site(tmp_path) -> Path:
    for name in ("a", "b", "c", "dem", "gipp"):
        (tmp_path / name).mkdir()
    (tmp_path / "dem" / "a.tif").write_bytes(b"x")
    (tmp_path / "p.toml").write_text("")
    return tmp_path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_text_form_comments_blank_lines_relative_and_absolute(site):
    m = write(site / "tiles.txt", f"# tiles of the run\n\na\n  b   # second tile\n{site / 'c'}\n")
    entries = read_manifest(m)
    assert entries == [
        TileEntry(inputs=(site / "a",), where="line 3"),
        TileEntry(inputs=(site / "b",), where="line 4"),
        TileEntry(inputs=(site / "c",), where="line 5"),
    ]
    assert [e.label for e in entries] == ["a", "b", "c"]


def test_json_form(site):
    doc = {"tiles": [
        {"tile": "T31TCJ", "inputs": ["a", str(site / "b")], "dem": "dem/a.tif", "gipp": "gipp", "params": "p.toml"},
        {"inputs": "c"},
    ]}
    entries = read_manifest(write(site / "m.json", json.dumps(doc)))
    assert entries[0] == TileEntry(inputs=(site / "a", site / "b"), tile="T31TCJ", dem=site / "dem" / "a.tif",
                                   gipp=site / "gipp", params=site / "p.toml", where="entry 1")
    assert entries[1] == TileEntry(inputs=(site / "c",), where="entry 2")
    assert [e.label for e in entries] == ["T31TCJ", "c"]


def test_json_told_by_content_and_paths_relative_to_the_manifest_folder(site, monkeypatch, tmp_path_factory):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    entries = read_manifest(write(site / "tiles.lst", '  {"tiles": [{"inputs": "a"}]}'))
    assert entries[0].inputs == (site / "a",)


@pytest.mark.parametrize("name, text, where, what", [
    ("m.txt", "a\nmissing_folder\n", "line 2", "folder .*missing_folder does not exist"),
    ("m.txt", "# only a comment\n\n", None, "lists no tile series"),
    ("m.txt", "a\nb\n./a\n", "line 3", r"input .*a is already part of line 1"),
    ("m.json", '{"tiles": []}', None, "lists no tile series"),
    ("m.json", '{"tiles": [{"inputs": "a"}, {"inputs": "b", "dem": "nodem.tif"}]}', "entry 2",
     "dem .*nodem.tif does not exist"),
    ("m.json", '{"tiles": [{"tile": "T31TCJ", "inputs": "a"}, {"tile": "T31TCJ", "inputs": "b"}]}', "entry 2",
     "tile T31TCJ is already given in entry 1"),
    ("m.json", '{"tiles": [{"input": "a"}]}', "entry 1", "unknown key.*'input'"),
    ("m.json", '{"tiles": [{"inputs": []}]}', "entry 1", "'inputs' must be a path or a non-empty list"),
    ("m.json", '{"tiles": [{"inputs": "a", "tile": "../T31"}]}', "entry 1", "'tile' must be a tile id"),
    ("m.json", '{"tiles": [{"inputs": "a"}], "default": 1}', None, "unknown top-level key"),
    ("m.json", '{"tiles": [{"inputs": "a"}', None, "not valid JSON"),
    ("m.json", '["a"]', None, "expected a JSON object"),
    ("m.json", '{"tiles": ["a"]}', "entry 1", "must be an object"),
])
def test_refusals_name_the_manifest_and_the_entry(site, name, text, where, what):
    m = write(site / name, text)
    with pytest.raises(InputError, match=what) as info:
        read_manifest(m)
    assert info.value.path == m
    msg = str(info.value)
    assert msg.startswith(f"{m}: ")
    if where is not None:
        assert msg.startswith(f"{m}: {where}: ")


def test_missing_manifest(tmp_path):
    with pytest.raises(MissingFileError, match="manifest not found"):
        read_manifest(tmp_path / "nope.json")


def test_parse_manifest_needs_no_file_for_absolute_paths(site):
    entries = parse_manifest(f"{site / 'a'}\n", Path("/nowhere/tiles.txt"))
    assert entries[0].inputs == (site / "a",)
