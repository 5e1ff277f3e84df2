"""Label regimes: which training labels a downstream run may use (all, k per class, a fraction).

    regime = LabelRegime(kind="per_class", k=10)
    indexes, target = regime.select(task, seed=3)      # 10 samples of every class, seeded

A regime is repeated over seeds; each seed is a new draw of labels (and of head weights), so
the spread over seeds covers both. Per kind of task:

- classification: ``per_class`` takes exactly ``k`` samples of every class (all of a class
  that has fewer), ``fraction`` a seeded random share of the samples (at least one).
- multilabel: ``per_class`` takes ``k`` positive samples of every class (their union).
- segmentation: ``per_class`` keeps ``k`` labelled pixels of every class (sparse labels: the
  other pixels become unlabelled) and the windows holding them; ``fraction`` a share of the
  windows.
- regression: ``fraction`` only.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from geoalign.errors import InvalidInputError
from geoalign.models.evaluation.tasks import IGNORE, TaskData


class LabelRegime(BaseModel):
    """How many training labels a run sees."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # "all" labels, "per_class" (k per class) or "fraction" (a share of the samples).
    kind: Literal["all", "per_class", "fraction"] = "all"
    # Labels per class (per_class only).
    k: int | None = Field(default=None, gt=0)
    # Share of the training samples (fraction only), in (0, 1].
    fraction: float | None = Field(default=None, gt=0.0, le=1.0)

    @model_validator(mode="after")
    def _fields_fit(self) -> LabelRegime:
        if self.kind == "per_class" and self.k is None:
            raise ValueError("a per_class regime needs k (labels per class), e.g. k: 10")
        if self.kind == "fraction" and self.fraction is None:
            raise ValueError("a fraction regime needs fraction, e.g. fraction: 0.1")
        if self.kind != "per_class" and self.k is not None:
            raise ValueError(f"k is only for per_class regimes, not {self.kind!r}")
        if self.kind != "fraction" and self.fraction is not None:
            raise ValueError(f"fraction is only for fraction regimes, not {self.kind!r}")
        return self

    @property
    def name(self) -> str:
        """A short label: ``all``, ``10-per-class``, ``fraction-0.1``."""
        if self.kind == "per_class":
            return f"{self.k}-per-class"
        if self.kind == "fraction":
            return f"fraction-{self.fraction:g}"
        return "all"

    def select(self, task: TaskData, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The training samples this regime keeps, and their (possibly sparsified) targets.

        Args:
            task: The downstream task.
            seed: Seed of the draw.

        Returns:
            ``(indexes, target)``: sorted indexes into the training part and the targets of
            those samples.

        Raises:
            InvalidInputError: ``per_class`` on a regression task.
        """
        target = task.train_target
        n = int(target.shape[0])
        rng = np.random.default_rng(seed)
        if self.kind == "all":
            return np.arange(n), target
        if self.kind == "fraction":
            if self.fraction is None:
                raise InvalidInputError("fraction regime without fraction")
            count = max(1, round(self.fraction * n))
            keep = np.sort(rng.permutation(n)[:count])
            return keep, target[keep]
        if self.k is None:
            raise InvalidInputError("per_class regime without k")
        if task.kind == "regression":
            raise InvalidInputError(
                "a per_class label regime needs classes: use kind: fraction for regression"
            )
        if task.kind == "segmentation":
            return _pixels_per_class(target, self.k, task.num_classes, rng)
        chosen: list[np.ndarray] = []
        for c in range(task.num_classes):
            members = np.flatnonzero(
                target == c if task.kind == "classification" else target[:, c] > 0
            )
            chosen.append(rng.permutation(members)[: self.k])
        keep = np.unique(np.concatenate(chosen)) if chosen else np.arange(0)
        return keep, target[keep]


def _pixels_per_class(
    target: np.ndarray, k: int, classes: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Keep ``k`` labelled pixels per class; return the windows holding them, sparsified."""
    flat = target.reshape(-1)
    sparse = np.full_like(flat, IGNORE)
    for c in range(classes):
        members = np.flatnonzero(flat == c)
        picked = rng.permutation(members)[:k]
        sparse[picked] = c
    sparse = sparse.reshape(target.shape)
    windows = np.flatnonzero((sparse != IGNORE).reshape(target.shape[0], -1).any(axis=1))
    return windows, sparse[windows]
