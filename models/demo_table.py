"""The demo's evaluation table: what the pretrained encoders give downstream, against random init.

Task: land-cover classification (5 classes) of cube windows, each labelled with the majority
class of its 10 m label pixels; the windows of the southern strip of the area are the test set
(the demo's pretraining never samples it). Rows: a linear probe on frozen features of the
pretrained encoders, the same probe on randomly initialised encoders of the same architecture,
and a random forest on the raw inputs (a supervised baseline); columns: each sensor alone and
all five fused. Cells: overall accuracy (%) on the test strip, one seed. Built from the blocks
of :mod:`geoalign.models.evaluation` (:func:`evaluate`, :class:`ResultTable`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from geoalign.demo import CLASSES
from geoalign.models.config import PretrainConfig
from geoalign.models.evaluation import (
    LabelRegime,
    ProbeSettings,
    ProtocolSettings,
    ResultTable,
    TaskData,
    evaluate,
    load_encoders,
    random_encoders,
)
from geoalign.models.evaluation.features import FrozenFeatures
from geoalign.models.evaluation.report import plot_table
from geoalign.models.evaluation.sources import CubeSource

#: Table rows.
PRETRAINED = "contrastive pretraining / linear probe"
RANDOM = "random init / linear probe"
FOREST = "supervised: random forest"
#: Short row names for a terminal (the files keep the full ones).
SHORT_ROWS = {
    RANDOM: "random init + probe",
    PRETRAINED: "pretrained + probe",
    FOREST: "random forest",
}
#: Table columns: each sensor alone, then all of them.
COLUMNS: tuple[tuple[str, ...], ...] = (
    ("s2",),
    ("s1",),
    ("ortho",),
    ("lidar",),
    ("hsi",),
    ("s2", "s1", "ortho", "lidar", "hsi"),
)


def column_name(modalities: tuple[str, ...]) -> str:
    """``"s2"``, or ``"all 5"`` for every sensor."""
    return modalities[0] if len(modalities) == 1 else f"all {len(modalities)}"


class PerModalityFeatures(FrozenFeatures):
    """Frozen features whose concatenation of several modalities reuses each one's features."""

    def get(
        self, part: Literal["train", "test"], modalities: Sequence[str], *, maps: bool
    ) -> Tensor:
        """As :meth:`FrozenFeatures.get`; several modalities (vectors) concatenate cached ones."""
        if maps or len(modalities) == 1 or self.fusion != "concat":
            return super().get(part, modalities, maps=maps)
        parts = [super(PerModalityFeatures, self).get(part, [m], maps=False) for m in modalities]
        return torch.cat(parts, dim=1)


def window_classes(task: TaskData) -> TaskData:
    """A segmentation task turned into classification of its windows by majority label.

    Windows without any labelled pixel are dropped.
    """
    k = len(task.class_names)

    def majority(target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        flat = target.reshape(len(target), -1)
        counts = np.stack([(flat == c).sum(axis=1) for c in range(k)], axis=1)
        return counts.argmax(axis=1).astype(np.int64), counts.sum(axis=1) > 0

    y_train, keep_train = majority(task.train_target)
    y_test, keep_test = majority(task.test_target)
    return TaskData(
        "classification",
        {m: a[keep_train] for m, a in task.train.items()},
        y_train[keep_train],
        {m: a[keep_test] for m, a in task.test.items()},
        y_test[keep_test],
        task.class_names,
        {**task.metadata, "target": "majority label class of each window"},
    )


def evaluate_demo(
    folder: Path,
    checkpoint: Path,
    window: int,
    seed: int,
    test_fraction: float,
    report: Callable[[str, int, int | None], None],
) -> tuple[dict[str, Path], str, str, dict[tuple[str, str], float]]:
    """Evaluate the demo's checkpoint; write ``evaluation/table.md``, ``.csv`` and ``.png``.

    Returns:
        The files written, a sentence saying what was evaluated on which windows, the Markdown
        table (that sentence included) and ``(row, column)`` -> overall accuracy (%).
    """
    cells = [(row, column) for column in COLUMNS for row in (RANDOM, PRETRAINED, FOREST)]
    report("evaluate", 0, len(cells) + 1)
    task = window_classes(
        CubeSource(
            path=folder / "cube.zarr",
            modalities=sorted({m for c in COLUMNS for m in c}),
            label="labels/landcover",
            class_names=list(CLASSES),
            window=window,
            test_fraction=test_fraction,
        ).load()
    )
    config = PretrainConfig.from_yaml(folder / "pretrain.yaml")
    encoders = {
        PRETRAINED: load_encoders(checkpoint),
        RANDOM: random_encoders(config, task.specs(), seed=seed),
    }
    settings = ProtocolSettings(fusion="concat", probe=ProbeSettings(max_iter=100))
    features = {
        row: PerModalityFeatures(encoder_set, task.train, task.test, "concat")
        for row, encoder_set in encoders.items()
    }
    regime = LabelRegime(kind="all")
    values: dict[tuple[str, str], list[float]] = {}
    for done, (row, column) in enumerate(cells, start=1):
        report("evaluate", done, len(cells) + 1)
        scores, _ = evaluate(
            task,
            "random_forest" if row == FOREST else "linear_probe",
            list(column),
            regime=regime,
            seed=seed,
            settings=settings,
            encoders=encoders.get(row),
            features=features.get(row),
        )
        values[(row, column_name(column))] = [scores.values["oa"]]
    table = ResultTable(
        regime="all",
        metric="oa",
        rows=[RANDOM, PRETRAINED, FOREST],
        columns=[column_name(c) for c in COLUMNS],
        values=values,
    )
    out = folder / "evaluation"
    out.mkdir(exist_ok=True)
    intro = (
        "Land-cover classification (majority class of each window) of the held-out southern "
        f"strip ({len(task.test_target)} windows; training: {len(task.train_target)} windows "
        f"north of it), classes {', '.join(CLASSES)}."
    )
    markdown = intro + "\n\n" + table.markdown()
    (out / "table.md").write_text(markdown)
    (out / "table.csv").write_text(table.csv())
    plot = plot_table(table, out / "table.png", "geoalign demo")
    report("evaluate", len(cells) + 1, len(cells) + 1)
    percent = {key: value[0] * table.scale for key, value in values.items()}
    return (
        {"evaluation table": out / "table.md", "evaluation plot": plot},
        intro,
        markdown,
        percent,
    )
