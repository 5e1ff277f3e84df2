"""Downstream task data: labelled inputs per modality, a training and a test part.

    task = TaskData(
        kind="classification",
        train={"lidar": x_train}, train_target=y_train,       # x [N, 21], y [N] in 0..K-1
        test={"lidar": x_test}, test_target=y_test,
        class_names=("grass", "trees", ...),
    )

Inputs are float32 arrays, one per modality, row ``i`` being sample ``i``: ``[N, C]`` per-pixel
vectors (pixel classification), ``[N, S, C]`` time series of vectors, ``[N, C, H, W]`` image
windows (scene/patch classification, segmentation), ``[N, S, C, H, W]`` series of windows.
Targets by ``kind``:

- ``classification``: ``[N]`` int64 classes ``0..K-1`` (single-label).
- ``multilabel``: ``[N, K]`` {0, 1}.
- ``segmentation``: ``[N, H, W]`` int64 classes ``0..K-1``, ``-1`` where unlabelled.
- ``regression``: ``[N]`` or ``[N, T]`` float32 (e.g. canopy height in m, vegetation fraction).

Inputs should be standardised (the loaders use the training part's statistics only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from geoalign.errors import InvalidInputError
from geoalign.models.array_data import spec_of
from geoalign.models.encoders import ModalitySpec

TaskKind = Literal["classification", "multilabel", "segmentation", "regression"]
#: Value of unlabelled pixels in segmentation targets.
IGNORE = -1


@dataclass(frozen=True)
class TaskData:
    """A downstream task (shapes in the module docstring).

    Attributes:
        kind: What is predicted.
        train: Modality -> training inputs.
        train_target: Training targets.
        test: Modality -> test inputs (may hold fewer modalities than ``train``: a sensor
            absent at test time, as Houston 2013's hyperspectral test set).
        test_target: Test targets.
        class_names: Names of classes ``0..K-1`` (classification kinds), or target names
            (regression).
        metadata: Free-form provenance (files, split) stored with the results.
    """

    kind: TaskKind
    train: dict[str, np.ndarray]
    train_target: np.ndarray
    test: dict[str, np.ndarray]
    test_target: np.ndarray
    class_names: tuple[str, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_part("train", self.train, self.train_target, self.kind)
        _check_part("test", self.test, self.test_target, self.kind)
        for name, array in self.test.items():
            if name not in self.train:
                raise InvalidInputError(f"test modality {name!r} has no training inputs")
            if array.shape[1:] != self.train[name].shape[1:]:
                raise InvalidInputError(
                    f"modality {name!r}: training samples {self.train[name].shape[1:]} and test "
                    f"samples {array.shape[1:]} differ in shape"
                )
        if self.kind != "regression":
            k = self.num_classes
            for part, target in (("train", self.train_target), ("test", self.test_target)):
                high = int(target.max(initial=-1))
                if high >= k:
                    raise InvalidInputError(
                        f"{part} targets reach class {high} but only {k} class names are given"
                    )

    @property
    def num_classes(self) -> int:
        """Classes ``K`` (or regression targets ``T``)."""
        if self.kind == "regression":
            return 1 if self.train_target.ndim == 1 else int(self.train_target.shape[1])
        return len(self.class_names)

    @property
    def modalities(self) -> list[str]:
        """Modalities with training inputs."""
        return list(self.train)

    def specs(self) -> dict[str, ModalitySpec]:
        """Modality -> shape of its samples."""
        return {name: spec_of(array) for name, array in self.train.items()}

    def check_modalities(self, modalities: list[str]) -> None:
        """Raise if ``modalities`` cannot be evaluated (missing in training or test inputs)."""
        for name in modalities:
            if name not in self.train:
                raise InvalidInputError(
                    f"downstream modality {name!r} is not in the task (it has {self.modalities})"
                )
            if name not in self.test:
                raise InvalidInputError(
                    f"downstream modality {name!r} has no test inputs (the test set has "
                    f"{sorted(self.test)}): evaluate a subset of those"
                )


def _check_part(
    part: str, inputs: dict[str, np.ndarray], target: np.ndarray, kind: TaskKind
) -> None:
    if not inputs:
        raise InvalidInputError(f"the {part} part has no modality")
    n = target.shape[0]
    for name, array in inputs.items():
        spec_of(array)
        if array.shape[0] != n:
            raise InvalidInputError(
                f"{part} modality {name!r} has {array.shape[0]} samples but {n} targets"
            )
        if not np.isfinite(array).all():
            raise InvalidInputError(
                f"{part} modality {name!r} holds NaN or infinite values: fill or mask them first"
            )
    expected = {"classification": 1, "multilabel": 2, "segmentation": 3}
    if kind in expected and target.ndim != expected[kind]:
        raise InvalidInputError(
            f"{kind} targets must have {expected[kind]} dimension(s), got shape {target.shape}"
        )
    if kind == "regression" and target.ndim not in (1, 2):
        raise InvalidInputError(f"regression targets must be [N] or [N, T], got {target.shape}")
    if kind == "regression" and not np.isfinite(target).all():
        raise InvalidInputError(f"{part} regression targets hold NaN or infinite values")
