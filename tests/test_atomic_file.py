"""`io.atomic_file`: the final file is replaced only on a clean exit; an error leaves the old file and
no temporary file."""

from __future__ import annotations

import json

import pytest

from gpumaja.io.atomic_file import atomic_file, write_json_atomic


def test_error_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.json"
    write_json_atomic(path, {"step": 1})
    with pytest.raises(RuntimeError):
        with atomic_file(path, "w", encoding="utf-8") as fh:
            fh.write('{"step": ')
            raise RuntimeError("killed mid-write")
    assert json.loads(path.read_text()) == {"step": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_clean_exit_replaces_the_file(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with atomic_file(path) as fh:
        fh.write(b"new")
    assert path.read_bytes() == b"new" and [p.name for p in tmp_path.iterdir()] == ["a.bin"]
