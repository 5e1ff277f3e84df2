"""Real downstream datasets: the loaders' shapes and splits, and fast dev runs of the EnMAP
Potsdam and sits MODIS evaluation configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.data import REPO_ROOT

from geoalign.models.evaluation import EvaluationConfig, run_evaluation
from geoalign.models.evaluation.loaders import (
    load_enmap_task,
    load_enmap_vegetation_task,
    load_sits_task,
    load_tempcnn_task,
    spatial_blocks,
)

CONFIGS = REPO_ROOT / "tutorials" / "configs"
pytestmark = pytest.mark.realdata


def test_tempcnn_and_enmap_loaders(shared_data: Path):
    crops = load_tempcnn_task(shared_data / "tempcnn_crops")
    assert crops.train["optical"].shape == (260, 149, 3) and crops.test["optical"].shape == (
        260,
        149,
        3,
    )
    assert crops.class_names[:2] == ("wheat", "barley") and crops.num_classes == 13
    assert np.bincount(crops.train_target).tolist() == [20] * 13
    # standardised with training statistics only
    assert np.allclose(crops.train["optical"].mean(axis=(0, 1)), 0, atol=1e-4)
    assert not np.allclose(crops.test["optical"].mean(axis=(0, 1)), 0, atol=1e-4)
    enmap = load_enmap_task(shared_data / "enmap_potsdam", include_validation=False)
    assert enmap.train["enmap"].shape == (3806, 218) and enmap.test["enmap"].shape == (660, 218)
    # counts of the authors' Summary_train_val.csv (classes 1-6 -> 0-5)
    assert np.bincount(enmap.train_target).tolist() == [402, 704, 847, 1660, 41, 152]
    assert np.bincount(enmap.test_target, minlength=6).tolist() == [55, 146, 315, 124, 20, 0]


def test_sits_blocks_are_spatially_separate(shared_data: Path):
    task = load_sits_task(shared_data / "sits_modis", 0.3, 0.25, 0)
    assert task.train["ndvi"].shape[1:] == (12, 1)
    assert task.train_target.size + task.test_target.size == 1218
    assert task.class_names == ("Cerrado", "Forest", "Pasture", "Soy_Corn")
    assert 0.28 < task.test_target.size / 1218 < 0.35
    rng = np.random.default_rng(0)
    lon, lat = rng.uniform(-60, -50, 500), rng.uniform(-15, -10, 500)
    test = spatial_blocks(lon, lat, block=1.0, test_fraction=0.3, seed=2)
    blocks = np.floor(lon).astype(int) * 1000 + np.floor(lat).astype(int)
    assert not set(blocks[test]) & set(blocks[~test])
    assert test.mean() >= 0.3
    assert np.array_equal(test, spatial_blocks(lon, lat, block=1.0, test_fraction=0.3, seed=2))


def test_enmap_vegetation_points_are_a_regression_task(shared_data: Path):
    task = load_enmap_vegetation_task(shared_data / "enmap_potsdam", 0.3, 600.0, 0)
    assert task.kind == "regression" and task.num_classes == 1
    assert (
        task.train["enmap"].shape[1] == 218
        and task.train_target.size + task.test_target.size == 200
    )
    assert task.train_target.min() >= 0.0 and task.train_target.max() <= 1.0
    assert 55 <= task.test_target.size <= 70


@pytest.mark.parametrize("name", ["enmap_potsdam", "sits_modis", "enmap_vegetation"])
def test_config_fast_dev_run(shared_data: Path, tmp_path: Path, name: str):
    del shared_data  # the configs read ../shared/data
    config = EvaluationConfig.from_yaml(CONFIGS / f"{name}_evaluate.yaml")
    config = config.model_copy(update={"output_dir": tmp_path})
    result = run_evaluation(config, fast_dev_run=True)
    assert result.folder == tmp_path / f"{name}-fast-dev-run"
    assert len(result.cells) == 6 * 2 and not any(c.skipped for c in result.cells)
    table = result.tables["all"]
    assert table.stats("supervised: random forest", table.columns[0]) is not None
    second = config.downstream.regimes[1].name
    assert (result.folder / f"table_{second}.png").is_file()
