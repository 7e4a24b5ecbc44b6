"""Leftovers of a killed run (`l2a_series._remove_stale`): temporary folders go, but a complete
product an --overwrite run had swapped out (`.<name>.old-<pid>`) before being killed is restored when
its final folder is missing, never deleted (never lose a user's data)."""

from __future__ import annotations

from types import SimpleNamespace

from gpumaja.pipeline import l2a_series as S
from gpumaja.pipeline.series_plan import Step


def _tile_run(tmp_path, names):
    steps = [Step(i, "INIT", "forward", True) for i in range(len(names))]
    return S.TileRun("T31TCJ", [SimpleNamespace(name=n) for n in names], steps, "fp", {}, tmp_path / ".gpumaja" / "T")


def _product(folder, text):
    folder.mkdir(parents=True)
    (folder / "MTD_ALL.xml").write_text(text)


def test_old_copy_is_restored_when_the_final_folder_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(S, "product_name_of", lambda p: p.name)
    tr = _tile_run(tmp_path, ["A", "B"])
    _product(tmp_path / ".A.old-123", "old A")  # killed between final -> old and tmp -> final
    _product(tmp_path / ".A.tmp-123", "new A, maybe partial")
    _product(tmp_path / "B", "B kept")
    _product(tmp_path / ".B.old-9", "B's previous version")  # swap finished: final exists
    S._remove_stale(tmp_path, tr)
    assert (tmp_path / "A" / "MTD_ALL.xml").read_text() == "old A"
    assert (tmp_path / "B" / "MTD_ALL.xml").read_text() == "B kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["A", "B"]


def test_temporary_folders_of_other_products_are_left_alone(monkeypatch, tmp_path):
    monkeypatch.setattr(S, "product_name_of", lambda p: p.name)
    tr = _tile_run(tmp_path, ["A"])
    _product(tmp_path / ".C.tmp-1", "another series' work in progress")
    S._remove_stale(tmp_path, tr)
    assert (tmp_path / ".C.tmp-1").is_dir()
