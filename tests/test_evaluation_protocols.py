"""Every protocol on every kind of task (regression, multi-label, segmentation): real tiny
Lightning finetuning runs, probes, kNN and forests on small seeded data whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from geoalign.errors import InvalidInputError
from geoalign.models import PretrainConfig
from geoalign.models.evaluation import (
    FinetuneSettings,
    LabelRegime,
    ProtocolSettings,
    TaskData,
    evaluate,
    random_encoders,
)

SETTINGS = ProtocolSettings(
    finetune=FinetuneSettings(epochs=3, min_steps=60, batch_size=32, lr=1e-2),
    probe={"max_iter": 50},
)


def encoders_for(task: TaskData, kind: str = "mlp") -> dict:  # type: ignore[type-arg]
    config = PretrainConfig.from_dict(
        {
            "data": {"kind": "arrays", "path": "unused.npz"},
            "modalities": {m: {"encoder": {"kind": kind, "hidden": [32]}} for m in task.train},
            "embed_dim": 8,
            "projection_hidden": 16,
            "views": {"count": 2},
        }
    )
    return random_encoders(config, task.specs(), seed=0)


def vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype(np.float32)
    return x, x @ np.array([1.0, -1.0, 2.0, 0.0, 0.5, 0.0], dtype=np.float32)


def test_regression_protocols():
    x, y = vectors(300, 0)
    task = TaskData("regression", {"v": x[:200]}, y[:200], {"v": x[200:]}, y[200:])
    encoders = encoders_for(task)
    results = {}
    for protocol in ("linear_probe", "knn", "finetune", "random_forest"):
        scores, used = evaluate(
            task,
            protocol,
            ["v"],
            regime=LabelRegime(kind="fraction", fraction=0.5),
            seed=0,
            settings=SETTINGS,
            encoders=encoders,
        )
        assert used == 100 and set(scores.values) == {"rmse", "mae", "r2"}
        results[protocol] = scores.values["r2"]
    assert results["linear_probe"] > 0.8  # random MLP features keep a linear target
    assert all(r > 0.2 for r in results.values()), results


def test_multilabel_protocols():
    x, _ = vectors(300, 1)
    labels = np.stack([x[:, 0] > 0, x[:, 1] > 0.5, x[:, 2] + x[:, 3] > 0], axis=1).astype(np.int64)
    task = TaskData(
        "multilabel", {"v": x[:200]}, labels[:200], {"v": x[200:]}, labels[200:], ("a", "b", "c")
    )
    encoders = encoders_for(task)
    for protocol in ("linear_probe", "knn", "finetune", "random_forest"):
        scores, used = evaluate(
            task,
            protocol,
            ["v"],
            regime=LabelRegime(kind="per_class", k=20),
            seed=1,
            settings=SETTINGS,
            encoders=encoders,
        )
        assert 20 <= used <= 60 and scores.values["macro_f1"] > 0.5, (protocol, scores.values)


def test_segmentation_protocols_and_knn_refusal():
    rng = np.random.default_rng(2)
    images = rng.normal(size=(40, 2, 16, 16)).astype(np.float32)
    target = (images[:, 0] > 0.3).astype(np.int64)  # a pixel's class is its first band
    target[:, :2] = -1  # unlabelled rows
    task = TaskData(
        "segmentation",
        {"img": images[:30]},
        target[:30],
        {"img": images[30:]},
        target[30:],
        ("low", "high"),
    )
    encoders = encoders_for(task, kind="alexnet")
    quick = SETTINGS.model_copy(update={"finetune": FinetuneSettings(epochs=2, batch_size=16)})
    for protocol in ("linear_probe", "finetune", "random_forest"):
        scores, _ = evaluate(
            task,
            protocol,
            ["img"],
            regime=LabelRegime(),
            seed=0,
            settings=quick,
            encoders=encoders,
        )
        assert 0.0 <= scores.values["miou"] <= 1.0
        if protocol == "random_forest":
            assert scores.values["miou"] > 0.95  # per-pixel band values decide the class
    with pytest.raises(InvalidInputError, match="kNN is not defined for segmentation"):
        evaluate(
            task,
            "knn",
            ["img"],
            regime=LabelRegime(),
            seed=0,
            settings=SETTINGS,
            encoders=encoders,
        )
    with pytest.raises(InvalidInputError, match="needs encoders"):
        evaluate(task, "linear_probe", ["img"], regime=LabelRegime(), seed=0, settings=SETTINGS)


def test_task_data_checks_its_arrays():
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(InvalidInputError, match="4 samples but 3 targets"):
        TaskData(
            "classification",
            {"a": x},
            np.zeros(3, np.int64),
            {"a": x},
            np.zeros(4, np.int64),
            ("c",),
        )
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInputError, match="NaN"):
        TaskData(
            "classification",
            {"a": bad},
            np.zeros(4, np.int64),
            {"a": x},
            np.zeros(4, np.int64),
            ("c",),
        )
    with pytest.raises(InvalidInputError, match="only 1 class names"):
        TaskData("classification", {"a": x}, np.arange(4), {"a": x}, np.zeros(4, np.int64), ("c",))
