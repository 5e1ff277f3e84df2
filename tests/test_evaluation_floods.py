"""Segmentation from a cube's label layer on the real Sen1Floods11 chip: the cube is built from
the tutorial recipe on first use, windows split into a northern training part and a southern
test strip, and the tutorial evaluation config runs as a fast dev run (pretraining S1 + S2 on
the cube, per-pixel probes on frozen S1 feature maps, decoder finetuning, per-pixel forest)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from support.data import REPO_ROOT

from geoalign.errors import DataFileNotFoundError
from geoalign.models.evaluation import IGNORE, EvaluationConfig, run_evaluation
from geoalign.models.evaluation.sources import CubeSource

CONFIG = REPO_ROOT / "tutorials" / "configs" / "sen1floods11_evaluate.yaml"
pytestmark = pytest.mark.realdata


def config_in(tmp_path: Path) -> dict[str, Any]:
    """The tutorial config with its cube and outputs moved to ``tmp_path``."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["task"]["path"] = str(tmp_path / "floods.zarr")
    raw["pretraining"]["base"]["data"]["path"] = str(tmp_path / "floods.zarr")
    raw["output_dir"] = str(tmp_path / "out")
    return raw


@pytest.mark.slow
def test_floods_segmentation_fast_dev_run(shared_data: Path, tmp_path: Path):
    del shared_data  # the recipe reads the real chip from ../shared/data
    config = EvaluationConfig.from_dict(config_in(tmp_path), base=CONFIG.parent)
    task = config.task.load()  # builds the cube from the recipe
    assert (tmp_path / "floods.zarr").is_dir()
    assert task.kind == "segmentation" and task.class_names == ("dry", "water")
    s1 = task.train["s1"]
    assert s1.shape[1:] == (2, 32, 32) and task.test["s1"].shape[1:] == (2, 32, 32)
    assert task.train["s2"].shape[1:] == (6, 32, 32)
    assert task.train_target.shape == (s1.shape[0], 32, 32)
    assert set(np.unique(task.train_target)) <= {IGNORE, 0, 1}
    assert (task.test_target == 1).any() and (task.train_target == 1).any()  # water on both sides
    n_train, n_test = s1.shape[0], task.test["s1"].shape[0]
    assert 0.2 < n_test / (n_train + n_test) < 0.4  # the southern 30%

    result = run_evaluation(config, task=task, fast_dev_run=True)
    assert len(result.cells) == 6 * 2 and not any(c.skipped for c in result.cells)
    for cell in result.cells:
        assert 0.0 <= cell.metrics["miou"] <= 1.0 and set(cell.metrics) >= {"oa", "macro_f1"}
    per_class = [c for c in result.cells if c.regime == "200-per-class"]
    assert all(c.labels_used <= 64 for c in per_class)  # windows holding the sparse pixels
    assert result.tables["all"].metric == "miou"
    assert (result.folder / "table_all.png").is_file()
    assert any((result.folder / "pretrain").glob("*/checkpoints/last.ckpt"))


def test_missing_cube_without_recipe_says_how_to_build_it(tmp_path: Path):
    source = CubeSource(
        path=tmp_path / "none.zarr", modalities=["s1"], label="water", class_names=["a", "b"]
    )
    with pytest.raises(DataFileNotFoundError, match="geoalign cube RECIPE"):
        source.load()
