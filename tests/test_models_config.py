"""Pretraining configs: validation, the tutorial configs (fast dev runs) and the CLI command."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from support.data import REPO_ROOT
from typer.testing import CliRunner

from geoalign.cli import train_commands
from geoalign.errors import DataFileNotFoundError, InvalidInputError, OutputExistsError
from geoalign.models import PretrainConfig, pretrain

CONFIGS = REPO_ROOT / "tutorials" / "configs"


def test_every_tutorial_config_is_valid_and_resolves_its_paths():
    # *evaluate*.yaml are evaluation configs (tests/test_evaluation_cli.py runs them)
    files = sorted(f for f in CONFIGS.glob("*.yaml") if "evaluate" not in f.name)
    assert {f.name for f in files} >= {"houston2013_pixels.yaml", "sen1floods11_cube.yaml"}
    for file in files:
        config = PretrainConfig.from_yaml(file)
        assert config.trainer.output_dir.is_absolute()
        assert config.data.path is not None and config.data.path.is_absolute()
        # what a run saves reads back to the same config
        assert PretrainConfig.from_dict(__import__("yaml").safe_load(config.to_yaml())) == config


def test_invalid_configs_list_every_problem(tmp_path: Path):
    file = tmp_path / "bad.yaml"
    file.write_text(
        "data: {kind: houston2013, batch_size: 1}\n"
        "modalities: {hsi: {encoder: {kind: vgg}}, lidar: {}}\n"
        "loss: {temperature: 0}\n"
        "trainer: {max_epoch: 3}\n"
    )
    with pytest.raises(InvalidInputError) as error:
        PretrainConfig.from_yaml(file)
    message = str(error.value)
    for part in (
        "data.houston2013.batch_size",
        "unknown encoder kind",
        "loss.temperature",
        "max_epoch",
    ):
        assert part in message, part
    file.write_text("- data\n- modalities\n")
    with pytest.raises(InvalidInputError, match="mapping"):
        PretrainConfig.from_yaml(file)
    file.write_text("data: {kind: houston2013\n")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        PretrainConfig.from_yaml(file)
    with pytest.raises(DataFileNotFoundError):
        PretrainConfig.from_yaml(tmp_path / "missing.yaml")
    one = {"data": {"kind": "houston2013"}, "modalities": {"hsi": {}}}
    with pytest.raises(InvalidInputError, match="no positive pair"):
        PretrainConfig.from_dict(one)
    two = {**one, "modalities": {"hsi": {}, "lidar": {}}, "loss": {"intra_modal_weight": 1}}
    with pytest.raises(InvalidInputError, match="views.count >= 2"):
        PretrainConfig.from_dict(two)


def test_houston_tutorial_config_fast_dev_run(shared_data: Path, tmp_path: Path):
    del shared_data  # the config points at ../shared/data/houston2013
    config = PretrainConfig.from_yaml(CONFIGS / "houston2013_pixels.yaml")
    raw = config.model_dump(mode="json")
    raw["trainer"].update(
        {"output_dir": str(tmp_path), "progress_bar": "rich", "accumulate_grad_batches": 2}
    )
    result = pretrain(PretrainConfig.from_dict(raw), fast_dev_run=2)
    assert result.metrics["train/loss"] > 0 and result.last_checkpoint is None
    assert not (tmp_path / config.name).exists()  # a smoke test writes nothing


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def root() -> None:
        """geoalign (test app with the training commands only)."""

    train_commands.register(app)
    return app


def test_cli_pretrain_runs_a_config_with_overrides(shared_data: Path, tmp_path: Path):
    del shared_data
    config = tmp_path / "houston.yaml"
    text = (CONFIGS / "houston2013_pixels.yaml").read_text()
    text = text.replace(
        "../../../shared/data/houston2013",
        str(REPO_ROOT.parent / "shared" / "data" / "houston2013"),
    )
    text = text.replace("hidden: [256, 256]", "hidden: [32]").replace(
        "hidden: [128, 128]", "hidden: [16]"
    )
    text = text.replace("progress_bar: rich", "progress_bar: none").replace(
        "batch_size: 128", "batch_size: 1024"
    )
    config.write_text(text)
    args = ["pretrain", str(config), "--max-epochs", "1", "--output-dir", str(tmp_path / "runs")]
    result = CliRunner().invoke(_app(), [*args, "--accelerator", "cpu"])
    assert result.exit_code == 0, result.output
    assert "top1" in result.output and "last checkpoint" in result.output
    assert (tmp_path / "runs" / "houston2013_pixels" / "checkpoints" / "last.ckpt").is_file()
    saved = PretrainConfig.from_yaml(tmp_path / "runs" / "houston2013_pixels" / "config.yaml")
    assert saved.trainer.max_epochs == 1
    again = CliRunner().invoke(_app(), args)
    assert isinstance(again.exception, OutputExistsError), again.output
    assert "--overwrite" in str(again.exception)
    assert CliRunner().invoke(_app(), [*args, "--overwrite"]).exit_code == 0
    bad = CliRunner().invoke(_app(), ["pretrain", str(config), "--max-epochs", "0"])
    assert isinstance(bad.exception, InvalidInputError)
