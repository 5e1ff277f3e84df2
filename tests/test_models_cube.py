"""Cube-based pretraining on real data: the Sen1Floods11 cube of the tutorial recipe (S1 + S2),
and a time series made from the same S2 chip dated three times."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from support.data import REPO_ROOT, S2_13_BANDS

from geoalign.cube import ModalityRequest, build_cube
from geoalign.errors import InvalidInputError
from geoalign.models import CubeDataConfig, PretrainConfig, pretrain
from geoalign.models.cube_data import CubeDataModule
from geoalign.models.pretrain import ContrastivePretraining

RECIPE = REPO_ROOT / "tutorials" / "recipes" / "sen1floods11.yaml"
CONFIG = REPO_ROOT / "tutorials" / "configs" / "sen1floods11_cube.yaml"


@pytest.fixture(scope="module")
def floods_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe
    from geoalign.sensors import reset_sensors

    del shared_data  # the recipe reads the real chip from the shared data folder
    recipe, base = load_recipe(RECIPE)
    try:
        run = plan_recipe(recipe, base)
        out = tmp_path_factory.mktemp("floods") / "cube.zarr"
        return dataclasses.replace(run, output=out).write()
    finally:
        reset_sensors()


@pytest.fixture(scope="module")
def series_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from geoalign.stac_items import items_from_rasters

    folder = shared_data / "sen1floods11"
    bands = S2_13_BANDS
    dates = ["2019-09-18T11:00:00Z", "2019-09-28T11:00:00Z", "2019-10-08T11:00:00Z"]
    items = items_from_rasters(
        [str(folder / "Spain_7370579_S2Hand.tif")] * 3,
        collection="s2",
        datetime=dates,
        ids=[f"s2-{i}" for i in range(3)],
        sensor_band_names=bands,
    )
    import rasterio

    with rasterio.open(folder / "Spain_7370579_S2Hand.tif") as src:
        bounds = tuple(src.bounds)
    request = ModalityRequest(
        "s2", "sentinel-2-l2a", items, 20, bands=["red", "nir"], mask_clouds=False
    )
    single = ModalityRequest(
        "s2_rgb", "sentinel-2-l2a", items[:1], 10, bands=["blue", "green", "red"], mask_clouds=False
    )
    out = tmp_path_factory.mktemp("series") / "cube.zarr"
    return build_cube(out, [request, single], aoi=bounds)


def test_tutorial_cube_config_runs_on_the_cube_of_the_tutorial_recipe(
    floods_cube: Path, tmp_path: Path
):
    config = PretrainConfig.from_yaml(CONFIG)
    raw = config.model_dump(mode="json")
    raw["data"].update({"path": str(floods_cube), "num_workers": 0, "batch_size": 4})
    raw["trainer"].update(
        {"output_dir": str(tmp_path), "progress_bar": "none", "accelerator": "cpu"}
    )
    result = pretrain(PretrainConfig.from_dict(raw), fast_dev_run=True)
    assert result.last_checkpoint is None  # a fast dev run saves nothing
    assert result.metrics["train/loss"] > 0
    assert 0 <= result.metrics["val/top1"] <= 1


def test_cube_batches_are_seeded_per_epoch_and_split_across_processes(floods_cube: Path):
    config = CubeDataConfig(
        path=floods_cube, window=16, batch_size=4, batches_per_epoch=3, num_workers=0
    )
    module = CubeDataModule(config, ["s1", "s2"], seed=5)
    specs = module.specs()
    assert specs["s1"].channels == 2 and specs["s2"].channels == 6 and not specs["s2"].series
    loader = module.train_dataloader()
    loader.batch_sampler.set_epoch(1)  # type: ignore[union-attr]
    first = [b["bounds"] for b in loader]
    assert len(first) == 3 and first[0].shape == (4, 4)
    batch = next(iter(loader))
    assert batch["s1"].shape == (4, 2, 16, 16) and batch["s2"].shape == (4, 6, 16, 16)
    loader.batch_sampler.set_epoch(1)  # type: ignore[union-attr]
    assert all(torch.equal(a, b["bounds"]) for a, b in zip(first, loader, strict=True))
    loader.batch_sampler.set_epoch(2)  # type: ignore[union-attr]
    assert not torch.equal(first[0], next(iter(loader))["bounds"])
    # the training windows never enter the validation strip, and places differ within a batch
    val = next(iter(module.val_dataloader()))
    assert float(val["bounds"][:, 3].max()) <= float(torch.cat(first)[:, 1].min()) + 1e-6
    assert len({tuple(b.tolist()) for b in first[0]}) == 4
    # two processes of batch 2 read the halves of the global batch of 4
    half = config.model_copy(update={"batch_size": 2})
    shares = []
    for rank in range(2):
        part = CubeDataModule(half, ["s1", "s2"], seed=5)
        part._rank_world = lambda r=rank: (r, 2)  # type: ignore[method-assign]
        part_loader = part.train_dataloader()
        part_loader.batch_sampler.set_epoch(1)  # type: ignore[union-attr]
        shares.append([b["bounds"] for b in part_loader])
    for k in range(3):
        torch.testing.assert_close(torch.cat([shares[0][k], shares[1][k]]), first[k])


def test_time_series_modality_with_date_pooling(series_cube: Path, tmp_path: Path):
    base = {
        "name": "series",
        "data": {
            "kind": "cube",
            "path": str(series_cube),
            "window": 8,
            "batch_size": 4,
            "batches_per_epoch": 2,
            "num_workers": 0,
        },
        "modalities": {
            "s2": {"encoder": {"kind": "alexnet", "small_input": True}},
            "s2_rgb": {"encoder": {"kind": "alexnet", "small_input": True}},
        },
        "trainer": {"output_dir": str(tmp_path), "progress_bar": "none", "accelerator": "cpu"},
    }
    with pytest.raises(InvalidInputError, match="data.dates"):
        CubeDataModule(PretrainConfig.from_dict(base).data, ["s2", "s2_rgb"]).specs()  # type: ignore[arg-type]
    base["data"]["dates"] = {"s2": 2}
    with pytest.raises(InvalidInputError, match="temporal"):
        pretrain(PretrainConfig.from_dict(base), fast_dev_run=True)
    base["modalities"]["s2"]["temporal"] = {"d_model": 32, "heads": 2}
    config = PretrainConfig.from_dict(base)
    module = CubeDataModule(config.data, ["s2", "s2_rgb"])  # type: ignore[arg-type]
    specs = module.specs()
    assert specs["s2"].series and specs["s2"].channels == 2 and not specs["s2_rgb"].series
    batch = next(iter(module.train_dataloader()))
    # windows count pixels of the sampling grid (20 m): 8 px of s2, 16 px of the 10 m modality
    assert batch["s2"].shape == (4, 2, 2, 8, 8) and batch["s2_rgb"].shape == (4, 3, 16, 16)
    assert batch["s2_time_valid"].shape == (4, 2)
    task = ContrastivePretraining(config, specs)
    embeddings = task.embed(batch)
    assert embeddings["s2"].shape == (4, config.embed_dim)
    result = pretrain(config, fast_dev_run=2)
    assert result.metrics["train/loss"] > 0
