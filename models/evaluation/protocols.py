"""One evaluation: a protocol (probe, kNN, finetuning, random forest) on one label draw.

    scores = evaluate(task, "linear_probe", ["lidar"], encoders=encoders,
                      regime=LabelRegime(kind="per_class", k=10), seed=0,
                      settings=ProtocolSettings())

``encoders`` are the frozen (probe, kNN) or starting (finetune) weights; the random forest
uses the raw inputs and needs none. The seed draws the labels (see
:class:`~geoalign.models.evaluation.regimes.LabelRegime`) and seeds the head, the batch order
and the forest, so one (task, protocol, regime, seed) always gives the same result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from geoalign.errors import InvalidInputError
from geoalign.models.encoders import ModalityEncoder
from geoalign.models.evaluation.baselines import random_forest_predict
from geoalign.models.evaluation.features import FrozenFeatures, Fusion, copy_encoders
from geoalign.models.evaluation.finetune import Finetuner, FinetuneSettings
from geoalign.models.evaluation.metrics import Scores, score_predictions
from geoalign.models.evaluation.probes import LinearProbe, knn_predict
from geoalign.models.evaluation.regimes import LabelRegime
from geoalign.models.evaluation.tasks import IGNORE, TaskData

Protocol = Literal["linear_probe", "knn", "finetune", "random_forest"]


class ProbeSettings(BaseModel):
    """Linear probe (logistic regression by L-BFGS; ridge for regression)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # L2 penalty on the weights (on standardised features).
    l2: float = Field(default=1e-4, ge=0.0)
    # L-BFGS iterations.
    max_iter: int = Field(default=200, gt=0)
    # Segmentation: labelled training pixels drawn (seeded) for the per-pixel probe.
    max_pixels: int = Field(default=50_000, gt=0)


class KnnSettings(BaseModel):
    """k nearest neighbours by cosine similarity of frozen features."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Neighbours that vote.
    k: int = Field(default=20, gt=0)


class ForestSettings(BaseModel):
    """Random forest baseline (scikit-learn) on the raw inputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Trees of the forest.
    trees: int = Field(default=200, gt=0)
    # Segmentation: labelled training pixels drawn (seeded).
    max_pixels: int = Field(default=50_000, gt=0)
    # Parallel jobs of scikit-learn (-1: every core).
    n_jobs: int = 1


class ProtocolSettings(BaseModel):
    """Settings of every protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # How features of several modalities combine: "concat" or "mean" (same widths).
    fusion: Fusion = "concat"
    # Linear probe.
    probe: ProbeSettings = Field(default_factory=ProbeSettings)
    # kNN.
    knn: KnnSettings = Field(default_factory=KnnSettings)
    # Finetuning of pretrained (or random) encoders.
    finetune: FinetuneSettings = Field(default_factory=FinetuneSettings)
    # Random forest.
    forest: ForestSettings = Field(default_factory=ForestSettings)
    # Smoke tests: stop finetuning after this many steps (-1: no limit).
    max_steps: int = -1


def _subset(inputs: Mapping[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {m: a[index] for m, a in inputs.items()}


def evaluate(
    task: TaskData,
    protocol: Protocol,
    modalities: Sequence[str],
    *,
    regime: LabelRegime,
    seed: int,
    settings: ProtocolSettings,
    encoders: Mapping[str, ModalityEncoder] | None = None,
    features: FrozenFeatures | None = None,
) -> tuple[Scores, int]:
    """Train a protocol on the regime's labels and score it on the test part.

    ``features`` (frozen features of ``encoders`` over the task's whole parts) is reused by
    the probe and kNN across regimes and seeds; made afresh when None.

    Returns:
        The scores and the number of labelled training samples used.

    Raises:
        InvalidInputError: Modalities missing from the task, or no encoders for a protocol
            that needs them.
    """
    modalities = list(modalities)
    task.check_modalities(modalities)
    index, target = regime.select(task, seed)
    train = _subset({m: task.train[m] for m in modalities}, index)
    test = {m: task.test[m] for m in modalities}
    if protocol == "random_forest":
        f = settings.forest
        predicted = random_forest_predict(
            task.kind,
            train,
            target,
            test,
            modalities=modalities,
            trees=f.trees,
            seed=seed,
            max_pixels=f.max_pixels,
            n_jobs=f.n_jobs,
        )
        return _score(task, predicted), int(index.size)
    if encoders is None or any(m not in encoders for m in modalities):
        have = sorted(encoders or {})
        raise InvalidInputError(
            f"protocol {protocol!r} needs encoders for {modalities} (have {have})"
        )
    L.seed_everything(seed, workers=True, verbose=False)
    if protocol == "finetune":
        model = Finetuner(
            copy_encoders({m: encoders[m] for m in modalities}),
            modalities,
            kind=task.kind,
            num_classes=task.num_classes,
            settings=settings.finetune,
            fusion=settings.fusion,
        )
        model.fit(train, target, seed=seed, max_steps=settings.max_steps)
        return _score(task, model.predict(test)), int(index.size)
    if features is None:
        features = FrozenFeatures(encoders, task.train, task.test, settings.fusion)
    rows = torch.from_numpy(index)
    if task.kind == "segmentation":
        if protocol == "knn":
            raise InvalidInputError("kNN is not defined for segmentation: use linear_probe")
        maps = features.get("train", modalities, maps=True)[rows]
        test_maps = features.get("test", modalities, maps=True)
        predicted = _segmentation_probe(task, maps, target, test_maps, seed, settings)
        return _score(task, predicted), int(index.size)
    z_train = features.get("train", modalities, maps=False)[rows]
    z_test = features.get("test", modalities, maps=False)
    y = torch.from_numpy(target)
    if protocol == "knn":
        out = knn_predict(
            z_train, y, z_test, kind=task.kind, k=settings.knn.k, num_classes=task.num_classes
        )
    else:
        probe = LinearProbe(
            task.kind, task.num_classes, l2=settings.probe.l2, max_iter=settings.probe.max_iter
        )
        out = probe.fit(z_train, y).predict(z_test)
    return _score(task, out.numpy()), int(index.size)


def _score(task: TaskData, predicted: np.ndarray) -> Scores:
    return score_predictions(
        task.kind,
        predicted.astype(task.test_target.dtype),
        task.test_target,
        num_classes=task.num_classes,
    )


def _pixel_features(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[N, F, h, w]`` maps upsampled to ``size`` as pixel rows ``[N * H * W, F]``."""
    up = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    return up.permute(0, 2, 3, 1).reshape(-1, up.shape[1])


def _segmentation_probe(
    task: TaskData,
    maps: torch.Tensor,
    target: np.ndarray,
    test_maps: torch.Tensor,
    seed: int,
    settings: ProtocolSettings,
) -> np.ndarray:
    """Per-pixel logistic regression on upsampled frozen feature maps ``[N, F, h, w]``.

    At most ``probe.max_pixels`` labelled training pixels (seeded draw) are used; features
    are upsampled 64 windows at a time, so memory stays bounded by the draw.
    """
    size = (int(target.shape[-2]), int(target.shape[-1]))
    pixels_per_window = size[0] * size[1]
    y = torch.from_numpy(target.reshape(-1))
    labelled = torch.nonzero(y != IGNORE).squeeze(1)
    if labelled.numel() > settings.probe.max_pixels:
        generator = torch.Generator().manual_seed(seed)
        pick = torch.randperm(labelled.numel(), generator=generator)[: settings.probe.max_pixels]
        labelled = labelled[pick.sort().values]
    rows = []
    for start in range(0, int(maps.shape[0]), 64):
        stop = start + 64
        inside = labelled[
            (labelled >= start * pixels_per_window) & (labelled < stop * pixels_per_window)
        ]
        if inside.numel():
            chunk = _pixel_features(maps[start:stop], size)
            rows.append(chunk[inside - start * pixels_per_window])
    probe = LinearProbe(
        "classification", task.num_classes, l2=settings.probe.l2, max_iter=settings.probe.max_iter
    ).fit(torch.cat(rows), y[labelled])
    n = int(test_maps.shape[0])
    predicted = torch.cat(
        [probe.predict(_pixel_features(test_maps[i : i + 64], size)) for i in range(0, n, 64)]
    ).reshape(n, *size)
    return predicted.numpy()
