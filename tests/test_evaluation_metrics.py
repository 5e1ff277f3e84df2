"""Evaluation building blocks against references: metrics vs scikit-learn, label regimes,
the L-BFGS probe, kNN and the random forest baseline on real Houston 2013 LiDAR pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    jaccard_score,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
)

from geoalign.errors import InvalidInputError
from geoalign.models.evaluation import (
    IGNORE,
    LabelRegime,
    LinearProbe,
    TaskData,
    knn_predict,
    random_forest_predict,
    score_predictions,
)
from geoalign.models.evaluation.loaders import load_houston_task


def test_classification_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    target = rng.integers(0, 5, 400)
    predicted = np.where(rng.random(400) < 0.6, target, rng.integers(0, 5, 400))
    predicted[predicted == 4] = 3  # class 4 is never predicted: its F1 is 0
    scores = score_predictions("classification", predicted, target, num_classes=5)
    assert scores.values["oa"] == pytest.approx(accuracy_score(target, predicted))
    assert scores.values["macro_f1"] == pytest.approx(f1_score(target, predicted, average="macro"))
    per_class = f1_score(target, predicted, average=None)
    for k in range(5):
        assert scores.values[f"f1/{k}"] == pytest.approx(per_class[k])
    assert scores.values["miou"] == pytest.approx(jaccard_score(target, predicted, average="macro"))
    assert scores.confusion is not None
    assert (
        scores.confusion.sum() == 400 and np.trace(scores.confusion) == (target == predicted).sum()
    )
    assert scores.confusion[2].sum() == (target == 2).sum()  # rows are true classes


def test_segmentation_metrics_ignore_unlabelled_pixels():
    rng = np.random.default_rng(1)
    target = rng.integers(-1, 3, (6, 8, 8))
    predicted = rng.integers(0, 3, (6, 8, 8))
    scores = score_predictions("segmentation", predicted, target, num_classes=3)
    keep = target.reshape(-1) != IGNORE
    t, p = target.reshape(-1)[keep], predicted.reshape(-1)[keep]
    assert scores.values["miou"] == pytest.approx(jaccard_score(t, p, average="macro"))
    assert scores.values["oa"] == pytest.approx(accuracy_score(t, p))
    with pytest.raises(InvalidInputError, match="no labelled test sample"):
        score_predictions("segmentation", predicted, np.full_like(target, IGNORE), num_classes=3)


def test_regression_and_multilabel_metrics_equal_sklearn():
    rng = np.random.default_rng(2)
    target = rng.normal(10, 3, 200).astype(np.float32)
    predicted = (target + rng.normal(0, 1, 200)).astype(np.float32)
    scores = score_predictions("regression", predicted, target, num_classes=1).values
    assert scores["rmse"] == pytest.approx(np.sqrt(mean_squared_error(target, predicted)), rel=1e-5)
    assert scores["mae"] == pytest.approx(mean_absolute_error(target, predicted), rel=1e-5)
    assert scores["r2"] == pytest.approx(r2_score(target, predicted), rel=1e-4)
    labels = rng.integers(0, 2, (100, 4))
    guess = np.where(rng.random((100, 4)) < 0.7, labels, 1 - labels)
    multi = score_predictions("multilabel", guess, labels, num_classes=4).values
    assert multi["macro_f1"] == pytest.approx(f1_score(labels, guess, average="macro"))
    assert multi["micro_f1"] == pytest.approx(f1_score(labels, guess, average="micro"))
    with pytest.raises(InvalidInputError, match="differ in shape"):
        score_predictions("regression", predicted[:5], target, num_classes=1)


def _task(kind: str, target: np.ndarray, names: tuple[str, ...]) -> TaskData:
    n = target.shape[0]
    x = (
        np.zeros((n, 2), np.float32)
        if kind != "segmentation"
        else np.zeros((n, 1, 4, 4), np.float32)
    )
    return TaskData(kind, {"a": x}, target, {"a": x[:2]}, target[:2], names)  # type: ignore[arg-type]


def test_per_class_regime_takes_exactly_k_per_class_reproducibly():
    target = np.repeat(np.arange(4), [30, 12, 7, 50])
    task = _task("classification", target, ("a", "b", "c", "d"))
    regime = LabelRegime(kind="per_class", k=10)
    index, labels = regime.select(task, seed=3)
    assert np.bincount(labels).tolist() == [10, 10, 7, 10]  # class 2 has only 7
    assert (target[index] == labels).all() and len(set(index)) == index.size
    again, _ = regime.select(task, seed=3)
    other, _ = regime.select(task, seed=4)
    assert (again == index).all() and not np.array_equal(other, index)
    fraction, _ = LabelRegime(kind="fraction", fraction=0.1).select(task, seed=0)
    assert fraction.size == 10
    assert LabelRegime(kind="all").select(task, seed=0)[0].size == 99
    assert regime.name == "10-per-class"


def test_segmentation_per_class_regime_keeps_k_pixels_per_class():
    rng = np.random.default_rng(0)
    target = rng.integers(-1, 2, (20, 4, 4))
    task = _task("segmentation", target, ("dry", "water"))
    windows, sparse = LabelRegime(kind="per_class", k=5).select(task, seed=1)
    assert [(sparse == c).sum() for c in (0, 1)] == [5, 5]
    kept = sparse != IGNORE
    assert (sparse[kept] == target[windows][kept]).all()
    assert kept.reshape(len(windows), -1).any(axis=1).all()  # only windows with labels


def test_regime_errors_name_the_problem():
    with pytest.raises(ValueError, match="needs k"):
        LabelRegime(kind="per_class")
    with pytest.raises(ValueError, match="only for fraction"):
        LabelRegime(kind="all", fraction=0.5)
    task = _task("regression", np.zeros(10, np.float32), ())
    with pytest.raises(InvalidInputError, match="use kind: fraction for regression"):
        LabelRegime(kind="per_class", k=2).select(task, seed=0)


def test_linear_probe_is_deterministic_and_matches_sklearn_logistic_regression():
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 2, (3, 8))
    y = rng.integers(0, 3, 300)
    x = (centres[y] + rng.normal(0, 1.5, (300, 8))).astype(np.float32)
    train, test = slice(0, 200), slice(200, 300)
    probe = LinearProbe("classification", 3, l2=1e-3).fit(
        torch.from_numpy(x[train]), torch.from_numpy(y[train])
    )
    ours = probe.predict(torch.from_numpy(x[test])).numpy()
    again = LinearProbe("classification", 3, l2=1e-3).fit(
        torch.from_numpy(x[train]), torch.from_numpy(y[train])
    )
    assert torch.equal(probe.weight, again.weight)  # type: ignore[arg-type]
    mean, std = x[train].mean(0), x[train].std(0)
    # the same objective: mean log-loss + l2 ||W||^2  <=>  C = 1 / (2 * l2 * n)
    reference = LogisticRegression(C=1 / (2 * 1e-3 * 200), max_iter=1000)
    reference.fit((x[train] - mean) / std, y[train])
    theirs = reference.predict((x[test] - mean) / std)
    assert (ours == theirs).mean() >= 0.98
    assert (ours == y[test]).mean() > 0.8


def test_ridge_probe_and_knn():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 4).astype(np.float32)
    probe = LinearProbe("regression", 1, l2=1e-6).fit(
        torch.from_numpy(x[:200]), torch.from_numpy(y[:200])
    )
    assert np.allclose(probe.predict(torch.from_numpy(x[200:])).numpy(), y[200:], atol=1e-3)
    classes = (x[:, 0] > 0).astype(np.int64)
    predicted = knn_predict(
        torch.from_numpy(x[:200]),
        torch.from_numpy(classes[:200]),
        torch.from_numpy(x[200:]),
        kind="classification",
        k=5,
        num_classes=2,
    )
    assert (predicted.numpy() == classes[200:]).mean() > 0.8
    with pytest.raises(InvalidInputError, match="k=0"):
        knn_predict(
            torch.zeros(2, 2),
            torch.zeros(2),
            torch.zeros(1, 2),
            kind="classification",
            k=0,
            num_classes=2,
        )


@pytest.mark.realdata
def test_random_forest_on_real_houston_lidar(shared_data: Path):
    task = load_houston_task(shared_data / "houston2013")
    assert task.train["lidar"].shape == (2832, 21) and task.test["lidar"].shape == (12197, 21)
    assert task.train["hsi"].shape == (2832, 144) and "hsi" not in task.test
    assert task.num_classes == 15 and task.train_target.min() == 0 and task.train_target.max() == 14
    index, target = LabelRegime(kind="per_class", k=20).select(task, seed=0)
    train = {"lidar": task.train["lidar"][index]}
    predicted = random_forest_predict(
        "classification",
        train,
        target,
        {"lidar": task.test["lidar"]},
        modalities=["lidar"],
        trees=30,
        seed=0,
    )
    again = random_forest_predict(
        "classification",
        train,
        target,
        {"lidar": task.test["lidar"]},
        modalities=["lidar"],
        trees=30,
        seed=0,
    )
    assert np.array_equal(predicted, again)
    oa = score_predictions("classification", predicted, task.test_target, num_classes=15).values[
        "oa"
    ]
    assert 0.3 < oa < 0.8  # 300 labels, LiDAR features only (chance 1/15)
