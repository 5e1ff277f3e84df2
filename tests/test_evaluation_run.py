"""The experiment matrix end to end on real Houston 2013 pixels (a small subset, tiny runs):
pretraining variants through geoalign.models.run.pretrain, probe / kNN / finetune rows,
baselines, tables, and resume that skips finished cells."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from geoalign.errors import InvalidInputError
from geoalign.models.evaluation import EvaluationConfig, TaskData, run_evaluation
from geoalign.models.evaluation.loaders import load_houston_task


@pytest.fixture(scope="module")
def small_houston(shared_data: Path) -> TaskData:
    """300 training pixels (20 per class, HSI + LiDAR) and 600 LiDAR-only test pixels."""
    task = load_houston_task(shared_data / "houston2013")
    rng = np.random.default_rng(0)
    train = np.concatenate(
        [rng.permutation(np.flatnonzero(task.train_target == c))[:20] for c in range(15)]
    )
    test = rng.permutation(task.test_target.size)[:600]
    return TaskData(
        "classification",
        {m: a[train] for m, a in task.train.items()},
        task.train_target[train],
        {"lidar": task.test["lidar"][test]},
        task.test_target[test],
        task.class_names,
    )


def raw_config(tmp_path: Path, **changes: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "name": "houston",
        "threads": 1,
        "seeds": [0],
        "output_dir": str(tmp_path / "out"),
        "task": {"kind": "houston2013"},
        "pretraining": {
            "data": "task",
            "batch_size": 64,
            "base": {
                "modalities": {
                    "hsi": {"encoder": {"kind": "mlp", "hidden": [32]}},
                    "lidar": {"encoder": {"kind": "mlp", "hidden": [16]}},
                },
                "embed_dim": 8,
                "projection_hidden": 16,
                "trainer": {"max_epochs": 2, "accelerator": "cpu", "devices": 1},
            },
        },
        "variants": [
            {"name": "random init", "init": "random"},
            {
                "name": "single-modal",
                "modalities": ["lidar"],
                "overrides": {"views": {"count": 2}},
            },
            {"name": "multi-modal"},
        ],
        "downstream": {
            "modalities": [["lidar"], ["hsi", "lidar"]],
            "protocols": ["linear_probe", "knn", "finetune"],
            "regimes": [{"kind": "all"}],
            "settings": {
                "probe": {"max_iter": 50},
                "knn": {"k": 5},
                "finetune": {"epochs": 1, "batch_size": 64},
                "forest": {"trees": 10},
            },
        },
    }
    raw.update(changes)
    return raw


@pytest.fixture(scope="module")
def held_out(small_houston: TaskData) -> TaskData:
    """Both sensors in the test part: 100 of the training pixels held out."""
    order = np.random.default_rng(1).permutation(small_houston.train_target.size)
    fit, held = order[:200], order[200:]
    return TaskData(
        "classification",
        {m: a[fit] for m, a in small_houston.train.items()},
        small_houston.train_target[fit],
        {m: a[held] for m, a in small_houston.train.items()},
        small_houston.train_target[held],
        small_houston.class_names,
    )


def test_columns_must_exist_in_the_test_part(tmp_path: Path, small_houston: TaskData):
    # Houston's test set has LiDAR only: an hsi+lidar column cannot be scored
    with pytest.raises(InvalidInputError, match="has no test inputs"):
        run_evaluation(EvaluationConfig.from_dict(raw_config(tmp_path)), task=small_houston)


@pytest.mark.slow
def test_matrix_tables_and_resume(tmp_path: Path, held_out: TaskData):
    config = EvaluationConfig.from_dict(raw_config(tmp_path))
    messages: list[str] = []
    result = run_evaluation(config, task=held_out, progress=lambda m, d, t: messages.append(m))
    rows = 3 * 3 + 2  # variants x protocols + supervised network + random forest
    assert len(result.cells) == rows * 2 and result.computed == len(result.cells)
    assert messages[-1] == "tables" and len(messages) == len(result.cells) + 1
    table = result.tables["all"]
    assert table.columns == ["lidar", "hsi+lidar"]
    assert table.rows[-2:] == [
        "supervised: same network, random init",
        "supervised: random forest",
    ]
    # the single-modal LiDAR variant has no HSI encoder: that cell is empty, not invented
    assert table.text("single-modal / linear probe", "hsi+lidar") == "-"
    assert table.stats("single-modal / linear probe", "lidar") is not None
    for row in table.rows:
        for column in table.columns:
            if not row.startswith("single-modal"):
                mean, std, seeds = table.stats(row, column)  # type: ignore[misc]
                assert 0.0 <= mean <= 100.0 and math.isnan(std) and seeds == 1
    folder = tmp_path / "out" / "houston"
    for name in ("table_all.md", "table_all.csv", "table_all.png", "results.csv", "config.yaml"):
        assert (folder / name).is_file(), name
    assert "| random init / linear probe |" in (folder / "table_all.md").read_text()
    assert any((folder / "confusion").glob("*.png"))
    # two pretraining runs (single- and multi-modal) went through geoalign.models.run.pretrain
    runs = sorted(p.parent.parent.name for p in (folder / "pretrain").glob("*/*/last.ckpt"))
    assert len(runs) == 2 and runs[0].startswith("multi-modal-seed0")
    stored = json.loads(next((folder / "cells").rglob("*.json")).read_text())
    assert set(stored) >= {"row", "column", "regime", "seed", "metrics", "labels_used"}

    # resume: nothing is recomputed, no cell file is rewritten
    cells = sorted((folder / "cells").rglob("*.json"))
    stamps = [p.stat().st_mtime_ns for p in cells]
    again = run_evaluation(config, task=held_out)
    assert again.computed == 0
    assert [p.stat().st_mtime_ns for p in cells] == stamps
    assert again.tables["all"].markdown() == table.markdown()

    # a smaller matrix with a new seed and regime (and another finetuning schedule, which
    # probe cells do not depend on) computes only the cells it lacks
    raw = raw_config(
        tmp_path,
        seeds=[0, 1],
        variants=[{"name": "random init", "init": "random"}],
        baselines={"random_forest": False, "supervised": False},
    )
    raw["downstream"]["protocols"] = ["linear_probe"]
    raw["downstream"]["regimes"] = [{"kind": "all"}, {"kind": "per_class", "k": 5}]
    raw["downstream"]["settings"]["finetune"]["epochs"] = 3  # keeps the probe's cells
    grown = run_evaluation(EvaluationConfig.from_dict(raw), task=held_out)
    assert len(grown.cells) == 8 and grown.computed == 6
    few = [c for c in grown.cells if c.regime == "5-per-class"]
    assert {c.labels_used for c in few} == {75}  # 5 x 15 classes

    # overwrite starts afresh and reproduces the probe exactly (deterministic per seed)
    raw.update(seeds=[1])
    raw["downstream"]["regimes"] = [{"kind": "per_class", "k": 5}]
    fresh = run_evaluation(EvaluationConfig.from_dict(raw), task=held_out, overwrite=True)
    assert fresh.computed == 2
    before = {c.column: c.metrics for c in few if c.seed == 1}
    assert {c.column: c.metrics for c in fresh.cells} == before


def test_overwrite_refuses_a_folder_that_is_not_an_evaluation(
    tmp_path: Path, small_houston: TaskData
):
    folder = tmp_path / "out" / "houston"
    folder.mkdir(parents=True)
    (folder / "precious.txt").write_text("keep me")
    raw = raw_config(tmp_path, variants=[{"name": "random init", "init": "random"}])
    raw["downstream"]["modalities"] = [["lidar"]]
    with pytest.raises(InvalidInputError, match="not an evaluation folder"):
        run_evaluation(EvaluationConfig.from_dict(raw), task=small_houston, overwrite=True)
    assert (folder / "precious.txt").read_text() == "keep me"
