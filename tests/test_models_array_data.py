"""Pretraining on arrays (``data: {kind: arrays}``): shapes to specs, standardisation, errors,
and a real Lightning run on the TempCNN series through geoalign.models.run.pretrain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError
from geoalign.models import PretrainConfig, pretrain
from geoalign.models.array_data import ArrayDataModule, load_arrays, spec_of
from geoalign.models.config import ArrayDataConfig
from geoalign.models.encoders import ModalitySpec
from geoalign.models.evaluation.loaders import load_tempcnn_task


def test_array_shapes_give_specs():
    assert spec_of(np.zeros((5, 3))) == ModalitySpec(3, spatial=False)
    assert spec_of(np.zeros((5, 7, 3))) == ModalitySpec(3, spatial=False, series=True)
    assert spec_of(np.zeros((5, 4, 8, 8))) == ModalitySpec(4)
    assert spec_of(np.zeros((5, 2, 4, 8, 8))) == ModalitySpec(4, series=True)
    with pytest.raises(InvalidInputError, match=r"\[P, C\]"):
        spec_of(np.zeros(5))


def test_array_file_errors(tmp_path: Path):
    with pytest.raises(DataFileNotFoundError, match="data.path"):
        load_arrays(tmp_path / "none.npz", ["a"])
    np.savez(tmp_path / "x.npz", a=np.zeros((4, 2)), b=np.zeros((3, 2)))
    with pytest.raises(InvalidInputError, match=r"has no arrays \['c'\]"):
        load_arrays(tmp_path / "x.npz", ["c"])
    with pytest.raises(CorruptDataError, match="differ in rows"):
        load_arrays(tmp_path / "x.npz", ["a", "b"])
    (tmp_path / "bad.npz").write_text("not a zip")
    with pytest.raises(CorruptDataError, match="cannot read"):
        load_arrays(tmp_path / "bad.npz", ["a"])


def test_standardised_with_the_pretraining_part_only(tmp_path: Path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", s=rng.normal(5, 2, (100, 6, 3)), v=rng.normal(-1, 3, (100, 4)))
    config = ArrayDataConfig(path=tmp_path / "x.npz", holdout_fraction=0.2, batch_size=16)
    module = ArrayDataModule(config, ["s", "v"], seed=0)
    module.setup()
    assert module.specs() == {
        "s": ModalitySpec(3, spatial=False, series=True),
        "v": ModalitySpec(4, spatial=False),
    }
    assert module.train_set is not None and module.holdout_set is not None
    assert len(module.train_set) == 80 and len(module.holdout_set) == 20
    series = module.train_set.tensors["s"].numpy()
    assert np.allclose(series.mean(axis=(0, 1)), 0, atol=1e-5)
    assert np.allclose(series.std(axis=(0, 1)), 1, atol=1e-3)
    batch = next(iter(module.train_dataloader()))
    assert batch["s"].shape == (16, 6, 3) and batch["v"].shape == (16, 4)


@pytest.mark.realdata
def test_pretrain_on_real_time_series(shared_data: Path, tmp_path: Path):
    task = load_tempcnn_task(shared_data / "tempcnn_crops")
    np.savez(tmp_path / "crops.npz", optical=task.train["optical"])
    config = PretrainConfig.from_dict(
        {
            "name": "crops",
            "data": {"kind": "arrays", "path": str(tmp_path / "crops.npz"), "batch_size": 64},
            "modalities": {
                "optical": {"encoder": {"kind": "mlp", "hidden": [16]}, "temporal": {"d_model": 16}}
            },
            "embed_dim": 8,
            "projection_hidden": 16,
            "views": {"count": 2},
            "trainer": {
                "max_epochs": 2,
                "accelerator": "cpu",
                "devices": 1,
                "progress_bar": "none",
                "loggers": ["csv"],
                "output_dir": str(tmp_path / "runs"),
            },
        }
    )
    result = pretrain(config)
    assert result.last_checkpoint is not None and result.last_checkpoint.is_file()
    assert np.isfinite(result.metrics["train/loss"])
    assert result.best_checkpoint is None  # one sensor: no cross-modal retrieval to validate
