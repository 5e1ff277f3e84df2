"""Real Lightning runs on Houston 2013 pixel pairs: fit, checkpoints, exact resume, retrieval."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch

from geoalign.errors import DataFileNotFoundError, InvalidInputError, OutputExistsError
from geoalign.models import ContrastivePretraining, PretrainConfig, pretrain
from geoalign.models.houston import HoustonDataModule, load_houston2013, split_pairs


def config(tmp_path: Path, data: Path, **trainer: Any) -> PretrainConfig:
    return PretrainConfig.from_dict(
        {
            "name": "houston",
            "seed": 7,
            "data": {
                "kind": "houston2013",
                "path": str(data),
                "batch_size": 1024,
                "negatives_only_classes": [6],
            },
            "modalities": {
                "hsi": {"encoder": {"kind": "mlp", "hidden": [32], "spectral_features": 16}},
                "lidar": {"encoder": {"kind": "mlp", "hidden": [16]}},
            },
            "embed_dim": 16,
            "projection_hidden": 32,
            "views": {"count": 2},
            "loss": {
                "learnable_temperature": True,
                "intra_modal_weight": 0.5,
                "reconstruction_weight": 0.1,
            },
            "optim": {"lr": 3e-3, "warmup_steps": 2},
            "trainer": {
                "max_epochs": 2,
                "accelerator": "cpu",
                "devices": 1,
                "progress_bar": "none",
                "log_every_n_steps": 1,
                "loggers": ["csv", "tensorboard"],
                "output_dir": str(tmp_path),
                **trainer,
            },
        }
    )


class StopAfterEpochs(L.Callback):
    """Simulates an interrupted run: stop at the end of epoch ``epochs``."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch + 1 >= self.epochs:
            trainer.should_stop = True


@pytest.fixture(scope="module")
def houston(shared_data: Path) -> Path:
    return shared_data / "houston2013"


def test_houston_pixels_and_split(houston: Path):
    pixels = load_houston2013(houston)
    assert pixels.hsi.shape == (2832, 144) and pixels.lidar.shape == (2832, 21)
    assert sorted(set(pixels.labels.tolist())) == list(range(1, 16))
    train, held = split_pairs(2832, 0.2, 0)
    assert len(held) == 566 and not set(train) & set(held) and len(train) + len(held) == 2832
    module = HoustonDataModule(config(Path("."), houston).data)  # type: ignore[arg-type]
    module.setup()
    assert module.train_set is not None and module.holdout_set is not None
    batch = next(iter(module.train_dataloader()))
    assert batch["hsi"].shape == (1024, 144) and batch["lidar"].shape == (1024, 21)
    assert bool(batch["negatives_only"].eq(batch["label"] == 6).all())
    # standardised with the pretraining split's statistics
    assert module.train_set.tensors["hsi"].mean(0).abs().max() < 1e-4
    with pytest.raises(DataFileNotFoundError, match="houston2013"):
        load_houston2013(houston / "nowhere")


def test_fit_checkpoint_and_exact_resume(tmp_path: Path, houston: Path):
    straight = pretrain(config(tmp_path / "a", houston))
    interrupted = pretrain(config(tmp_path / "b", houston), callbacks=[StopAfterEpochs(1)])
    assert interrupted.last_checkpoint is not None
    assert torch.load(interrupted.last_checkpoint)["epoch"] == 0
    resumed = pretrain(config(tmp_path / "b", houston), resume="last")
    assert straight.last_checkpoint is not None and resumed.last_checkpoint is not None
    expected = torch.load(straight.last_checkpoint)
    got = torch.load(resumed.last_checkpoint)
    assert got["global_step"] == expected["global_step"] == 2 * 2  # 2,266 pairs, batches of 1,024
    for key, value in expected["state_dict"].items():
        assert torch.equal(got["state_dict"][key], value), key
    assert "criterion.temperature.log_scale" in expected["state_dict"]
    # logs: CSV metrics with validation retrieval, TensorBoard events, the resolved config
    rows = list(csv.DictReader((straight.run_dir / "csv" / "version_0" / "metrics.csv").open()))
    tops = [float(r["val/top1"]) for r in rows if r.get("val/top1")]
    assert len(tops) == 2 and all(0 <= t <= 1 for t in tops)
    assert {"train/intra_modal", "train/reconstruction", "lr-AdamW/pg1"} <= set(rows[0])
    assert list((straight.run_dir / "tensorboard").rglob("events.out.tfevents.*"))
    assert PretrainConfig.from_yaml(straight.run_dir / "config.yaml") == config(
        tmp_path / "a", houston
    )
    assert straight.best_checkpoint is not None and straight.best_checkpoint.is_file()
    # the checkpoint rebuilds the task, whose encoders embed new batches
    task = ContrastivePretraining.load_from_checkpoint(straight.last_checkpoint)
    task.eval()
    batch = {"hsi": torch.randn(4, 144), "lidar": torch.randn(4, 21)}
    embeddings = task.embed(batch)
    assert embeddings["hsi"].shape == (4, 16)
    torch.testing.assert_close(embeddings["lidar"].norm(dim=1), torch.ones(4))
    with pytest.raises(DataFileNotFoundError, match="last.ckpt"):
        pretrain(config(tmp_path / "c", houston), resume="last")
    # a fresh run never writes into an earlier run's folder; overwrite=True replaces that run
    with pytest.raises(OutputExistsError, match="holds the run 'houston'.*--resume last"):
        pretrain(config(tmp_path / "b", houston))
    replaced = pretrain(
        config(tmp_path / "b", houston), overwrite=True, callbacks=[StopAfterEpochs(1)]
    )
    assert replaced.last_checkpoint is not None
    assert torch.load(replaced.last_checkpoint)["epoch"] == 0  # not the resumed run's epoch 1
    assert [p.name for p in (replaced.run_dir / "csv").iterdir()] == ["version_0"]
    assert not list((replaced.run_dir / "checkpoints").glob("epoch001*"))
    stranger = tmp_path / "d" / "houston"
    stranger.mkdir(parents=True)
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(OutputExistsError, match="not a pretraining run.*refusing to delete"):
        pretrain(config(tmp_path / "d", houston), overwrite=True)
    assert (stranger / "notes.txt").read_text() == "keep me"


@pytest.mark.slow
def test_houston_retrieval_far_above_chance_on_held_out_pairs(tmp_path: Path, houston: Path):
    run_config = PretrainConfig.from_dict(
        {
            "name": "retrieval",
            "data": {"kind": "houston2013", "path": str(houston), "batch_size": 128},
            "modalities": {
                "hsi": {"encoder": {"kind": "mlp", "hidden": [128]}},
                "lidar": {"encoder": {"kind": "mlp", "hidden": [64]}},
            },
            "embed_dim": 32,
            "projection_hidden": 64,
            "loss": {"temperature": 0.2},
            "optim": {"lr": 1e-2, "warmup_steps": 10},
            "trainer": {
                "max_epochs": 12,
                "accelerator": "cpu",
                "devices": 1,
                "progress_bar": "none",
                "loggers": [],
                "check_val_every_n_epoch": 12,
                "output_dir": str(tmp_path),
            },
        }
    )
    result = pretrain(run_config)
    metrics = result.metrics
    assert metrics["val/chance_top1"] == pytest.approx(1 / 566)
    print({k: round(v, 4) for k, v in metrics.items() if k.startswith("val/")})
    # chance is 0.18% (top-1) and 0.88% (top-5) among 566 held-out locations
    assert metrics["val/top1"] > 8 * metrics["val/chance_top1"]
    assert metrics["val/top5"] > 8 * metrics["val/chance_top5"]
    assert metrics["val/top1/hsi_to_lidar"] > 0.01 and metrics["val/top1/lidar_to_hsi"] > 0.01


def test_config_that_does_not_fit_the_data_is_refused(tmp_path: Path, houston: Path):
    bad = config(tmp_path, houston).model_dump()
    bad["modalities"]["s2"] = {"encoder": {"kind": "alexnet"}}
    with pytest.raises(InvalidInputError, match="houston2013 has the modalities"):
        PretrainConfig.from_dict(bad)
    specs = HoustonDataModule(config(tmp_path, houston).data).specs()  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="not in the data"):
        ContrastivePretraining(config(tmp_path, houston), {"hsi": specs["hsi"]})
