"""``geoalign evaluate``: every tutorial evaluation config validates; the TempCNN one runs as a
fast dev run through the command line (real data, real Lightning runs); bad configs give exit
code 2 and a message naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from support.data import REPO_ROOT

from geoalign.cli.main import main
from geoalign.errors import DataFileNotFoundError, InvalidInputError
from geoalign.models.evaluation import EvaluationConfig

CONFIGS = REPO_ROOT / "tutorials" / "configs"


def test_every_tutorial_evaluation_config_validates():
    files = sorted(CONFIGS.glob("*evaluate*.yaml"))
    names = {f.name for f in files}
    assert names >= {
        "tempcnn_crops_evaluate.yaml",
        "sen1floods11_evaluate.yaml",
        "enmap_potsdam_evaluate.yaml",
        "sits_modis_evaluate.yaml",
    }
    for file in files:
        config = EvaluationConfig.from_yaml(file)
        assert config.output_dir.is_absolute()
        # every variant's pretraining config is valid (built once by from_yaml, again here)
        for variant in config.variants:
            data = (
                {"kind": "arrays", "path": "x.npz"} if config.pretraining.data == "task" else None
            )
            config.variant_pretraining(variant, data)
        text = file.read_text()
        for line in text.splitlines()[:3]:
            assert line.startswith("#")  # documented at the top
        assert EvaluationConfig.from_dict(yaml.safe_load(config.to_yaml())) == config


@pytest.mark.realdata
def test_tempcnn_fast_dev_run_through_the_cli(shared_data: Path, tmp_path: Path, capsys):
    del shared_data  # the config reads ../shared/data/tempcnn_crops
    config = CONFIGS / "tempcnn_crops_evaluate.yaml"
    code = main(["evaluate", str(config), "--fast-dev-run", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "| random init / linear probe |" in out and "supervised: random forest" in out
    assert "fast dev run" in out
    folder = tmp_path / "tempcnn_crops-fast-dev-run"
    assert (folder / "table_all.png").is_file() and (folder / "table_5-per-class.md").is_file()
    assert len(list((folder / "cells").rglob("*.json"))) == 12  # 6 rows x 2 regimes, 1 seed


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return path


BASE = """
name: x
task: {kind: tempcnn_crops}
pretraining:
  data: task
  base: {modalities: {optical: {encoder: {kind: mlp}, temporal: {}}}, views: {count: 2}}
variants: [{name: random init, init: random}]
downstream: {modalities: [[optical]]}
"""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("downstream: {modalities: [[optical]], protocls: [knn]}", "downstream.protocls"),
        ("downstream: {modalities: [[optical]], regimes: [{kind: per_class}]}", "needs k"),
        ("seeds: [1, 1]", "seeds must differ"),
        ("name: 'a b'", "name"),
        ("task: {kind: landsat}", "task"),
        (
            "variants: [{name: a, overrides: {loss: {kind: triplet}}}]",
            "variant 'a': invalid pretraining config:\n  loss.kind",
        ),
        ("variants: [{name: a, modalities: [radar]}]", "modalities ['radar'] are not in the base"),
        ("variants: [{name: a}, {name: a}]", "variant names must differ"),
        ("downstream: {modalities: [[optical], [optical]]}", "distinct"),
    ],
)
def test_bad_configs_name_the_problem(tmp_path: Path, change: str, message: str):
    raw = yaml.safe_load(BASE)
    raw.update(yaml.safe_load(change))
    path = _write(tmp_path, yaml.safe_dump(raw))
    with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        EvaluationConfig.from_yaml(path)


def test_cli_errors_exit_with_code_2(tmp_path: Path, capsys):
    assert main(["evaluate", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err
    path = _write(tmp_path, BASE.replace("kind: mlp", "kind: vgg"))
    assert main(["evaluate", str(path)]) == 2
    assert "encoder.kind" in capsys.readouterr().err
    good = _write(tmp_path, BASE)
    assert main(["evaluate", str(good), "--seeds", "1,x"]) == 2
    assert "--seeds" in capsys.readouterr().err
    with pytest.raises(DataFileNotFoundError, match="pretraining.base"):
        EvaluationConfig.from_yaml(_write(tmp_path, BASE.replace("base: {", "base: nope.yaml #{")))
