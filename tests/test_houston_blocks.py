"""Spatially blocked validation of Houston 2013 from the real overlapping LiDAR patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from support.data import REPO_ROOT

from geoalign.errors import DataFileNotFoundError, InvalidInputError
from geoalign.models.evaluation import EvaluationConfig, run_evaluation
from geoalign.models.houston import load_houston2013
from geoalign.models.houston_blocks import (
    blocked_folds,
    houston_validation_task,
    load_lidar_patches,
    pixel_positions,
    spatial_blocks,
)


@pytest.fixture(scope="module")
def houston(shared_data: Path) -> Path:
    return shared_data / "houston2013"


@pytest.fixture(scope="module")
def patches(houston: Path) -> np.ndarray:
    return load_lidar_patches(houston)


def test_patch_centres_are_the_pixel_vectors(houston: Path, patches: np.ndarray):
    assert patches.shape == (2832, 7, 7, 21)
    np.testing.assert_allclose(patches[:, 3, 3], load_houston2013(houston).lidar, atol=1e-6)


def test_positions_are_consistent_inside_each_region(patches: np.ndarray):
    region, rowcol = pixel_positions(patches)
    assert 100 < region.max() + 1 < 400  # a few hundred labelled polygons, not single pixels
    # two pixels of one region share a (row, col) only when their whole patches are identical
    # (the files repeat some pixels, and flat ground gives constant patches)
    first: dict[tuple[int, int, int], int] = {}
    for index, (rid, (row, col)) in enumerate(zip(region, rowcol, strict=True)):
        other = first.setdefault((int(rid), int(row), int(col)), index)
        np.testing.assert_array_equal(patches[other], patches[index])
    # the patch of a pixel holds, at the recovered offset, the vector of its neighbour
    members = np.flatnonzero(region == np.bincount(region).argmax())
    offsets = rowcol[members][:, None] - rowcol[members][None]  # [i, j] = pos(i) - pos(j)
    i, j = np.nonzero((np.abs(offsets) <= 3).all(-1) & ~np.eye(members.size, dtype=bool))
    dr, dc = (rowcol[members[i]] - rowcol[members[j]]).T
    np.testing.assert_array_equal(patches[members[j], 3 + dr, 3 + dc], patches[members[i], 3, 3])


def test_folds_take_whole_blocks_and_every_class(houston: Path, patches: np.ndarray):
    labels = load_houston2013(houston).labels - 1
    blocks = spatial_blocks(patches, max_block=80)
    assert np.bincount(blocks).max() <= 80 + 1
    # synthetic grass (class 2) is one polygon: cut into stripes, it reaches several folds
    assert np.unique(blocks[labels == 2]).size >= 3
    folds = blocked_folds(labels, blocks, folds=3)
    seen = np.zeros(labels.size, dtype=int)
    for train, val in folds:
        assert np.intersect1d(blocks[train], blocks[val]).size == 0
        assert set(labels[train]) == set(labels[val]) == set(range(15))
        seen[val] += 1
    assert (seen == 1).all()


def test_validation_task_runs_the_tutorial_evaluation(houston: Path, tmp_path: Path):
    task = houston_validation_task(fold=1, path=houston)
    assert set(task.train) == {"hsi", "lidar"} and set(task.test) == {"lidar"}
    assert task.train["lidar"].shape[0] + task.test["lidar"].shape[0] == 2832
    assert abs(float(task.train["lidar"].mean())) < 1e-4  # standardised on training blocks
    raw = EvaluationConfig.from_yaml(
        REPO_ROOT / "tutorials" / "configs" / "houston2013_evaluate.yaml"
    ).model_dump(mode="json")
    raw.update(seeds=[0], output_dir=str(tmp_path), variants=raw["variants"][:3])
    raw["downstream"]["protocols"] = ["linear_probe"]
    raw["downstream"]["regimes"] = [{"kind": "per_class", "k": 10}]
    result = run_evaluation(EvaluationConfig.from_dict(raw), task=task, fast_dev_run=True)
    table = next(iter(result.tables.values()))
    mean, _, count = table.stats("multi-modal HSI+LiDAR / linear probe", "lidar")
    assert count == 1 and 0.0 <= mean <= 100.0


def test_bad_arguments_are_named(houston: Path, tmp_path: Path, patches: np.ndarray):
    with pytest.raises(InvalidInputError, match="fold=3"):
        houston_validation_task(fold=3, path=houston)
    with pytest.raises(InvalidInputError, match="max_block"):
        spatial_blocks(patches, max_block=0)
    with pytest.raises(InvalidInputError, match=r"\[P, 7, 7, C\]"):
        pixel_positions(patches[:, :5])
    with pytest.raises(DataFileNotFoundError, match="LiDAR_TrSet_patches"):
        load_lidar_patches(tmp_path)
