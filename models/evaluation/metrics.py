"""Downstream metrics with torchmetrics: OA, macro-F1, per-class F1, mIoU, RMSE, MAE, R^2.

    scores = score_predictions(task.kind, prediction, target, num_classes=K)
    scores.values      # {"oa": 0.91, "macro_f1": 0.88, "miou": 0.80, "f1/0": ...}
    scores.confusion   # [K, K] counts (rows: true class, columns: predicted) or None

Classification and segmentation predictions are class indexes (segmentation pixels whose
target is -1 are ignored); multilabel predictions are {0, 1} per class; regression ones are
values in the target's units. Fractions are in [0, 1] (tables show percent).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchmetrics.functional.classification as C
import torchmetrics.functional.regression as R

from geoalign.errors import InvalidInputError
from geoalign.models.evaluation.tasks import IGNORE, TaskKind

#: The metric each kind of task is ranked by (the table's cells).
PRIMARY = {
    "classification": "oa",
    "multilabel": "macro_f1",
    "segmentation": "miou",
    "regression": "rmse",
}
#: Metrics where lower is better.
LOWER_IS_BETTER = frozenset({"rmse", "mae"})


@dataclass(frozen=True)
class Scores:
    """Metrics of one evaluation.

    Attributes:
        values: Metric name -> value (``f1/<class>`` per class).
        confusion: ``[K, K]`` confusion counts (rows true, columns predicted), or None.
    """

    values: dict[str, float]
    confusion: np.ndarray | None = None


def score_predictions(
    kind: TaskKind, prediction: np.ndarray, target: np.ndarray, *, num_classes: int
) -> Scores:
    """Metrics of predictions against targets (shapes in the module docstring).

    Raises:
        InvalidInputError: Shapes differ, or there is nothing to score.
    """
    if prediction.shape != target.shape:
        raise InvalidInputError(
            f"predictions {prediction.shape} and targets {target.shape} differ in shape"
        )
    if kind == "regression":
        return _regression(torch.as_tensor(prediction).float(), torch.as_tensor(target).float())
    if kind == "multilabel":
        p = torch.as_tensor(prediction).long()
        t = torch.as_tensor(target).long()
        values = {
            "macro_f1": float(C.multilabel_f1_score(p, t, num_labels=num_classes, average="macro")),
            "micro_f1": float(C.multilabel_f1_score(p, t, num_labels=num_classes, average="micro")),
            "accuracy": float(C.multilabel_accuracy(p, t, num_labels=num_classes, average="micro")),
        }
        per_class = C.multilabel_f1_score(p, t, num_labels=num_classes, average="none")
        values.update({f"f1/{i}": float(v) for i, v in enumerate(per_class)})
        return Scores(values)
    p = torch.as_tensor(prediction).long().reshape(-1)
    t = torch.as_tensor(target).long().reshape(-1)
    keep = t != IGNORE
    p, t = p[keep], t[keep]
    if t.numel() == 0:
        raise InvalidInputError("no labelled test sample to score")
    k = num_classes
    per_class = C.multiclass_f1_score(p, t, average="none", num_classes=k)
    values = {
        "oa": float(C.multiclass_accuracy(p, t, average="micro", num_classes=k)),
        "macro_f1": float(C.multiclass_f1_score(p, t, average="macro", num_classes=k)),
        "miou": float(C.multiclass_jaccard_index(p, t, average="macro", num_classes=k)),
    }
    values.update({f"f1/{i}": float(v) for i, v in enumerate(per_class)})
    confusion = C.multiclass_confusion_matrix(p, t, num_classes=k).numpy()
    return Scores(values, confusion)


def _regression(p: torch.Tensor, t: torch.Tensor) -> Scores:
    if t.numel() < 2:
        raise InvalidInputError("regression needs at least two test samples (R^2)")
    return Scores(
        {
            "rmse": float(R.mean_squared_error(p, t, squared=False)),
            "mae": float(R.mean_absolute_error(p, t)),
            "r2": float(R.r2_score(p.reshape(t.shape[0], -1), t.reshape(t.shape[0], -1))),
        }
    )
