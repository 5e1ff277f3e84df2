"""Result tables (Markdown, CSV), a bar-chart figure and confusion matrices.

    table = ResultTable.from_cells(cells, rows, columns, regime="all", metric="oa")
    print(table.markdown())     # | pretraining | lidar | hsi+lidar |  cells "66.4 ± 1.1"

Cells are the mean ± standard deviation (``ddof=1``) over seeds, the value alone for one seed (the
CSV then has an empty std); fractions
(OA, F1, mIoU, accuracy) are shown in percent, errors (RMSE, MAE) and R^2 as they are.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from geoalign.models.evaluation.experiment import CellResult

_RAW = frozenset({"rmse", "mae", "r2"})


@dataclass(frozen=True)
class ResultTable:
    """The Berg-style table of one regime and metric.

    Attributes:
        regime: Label regime name.
        metric: Metric of the cells.
        rows: Row labels (pretraining variant / protocol, baselines).
        columns: Column labels (downstream modality subsets).
        values: ``(row, column)`` -> per-seed values (absent: no result).
    """

    regime: str
    metric: str
    rows: list[str]
    columns: list[str]
    values: dict[tuple[str, str], list[float]]

    @classmethod
    def from_cells(
        cls,
        cells: Sequence[CellResult],
        rows: list[str],
        columns: list[str],
        *,
        regime: str,
        metric: str,
    ) -> ResultTable:
        """Collect the cells of one regime."""
        values: dict[tuple[str, str], list[float]] = {}
        for cell in cells:
            if cell.regime != regime or cell.skipped or metric not in cell.metrics:
                continue
            values.setdefault((cell.row, cell.column), []).append(cell.metrics[metric])
        return cls(regime, metric, rows, columns, values)

    @property
    def scale(self) -> float:
        """100 for fractions shown in percent, else 1."""
        return 1.0 if self.metric in _RAW else 100.0

    def stats(self, row: str, column: str) -> tuple[float, float, int] | None:
        """Mean, standard deviation (``ddof=1``) and seeds of a cell, in display units."""
        found = self.values.get((row, column))
        if not found:
            return None
        a = np.asarray(found) * self.scale
        return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else math.nan, int(a.size)

    def text(self, row: str, column: str) -> str:
        """``66.4 ± 1.1``, ``66.4`` for one seed, or ``-`` without a result."""
        s = self.stats(row, column)
        if s is None:
            return "-"
        digits = 1 if self.scale == 100.0 else 3
        return f"{s[0]:.{digits}f}" + (f" ± {s[1]:.{digits}f}" if s[2] > 1 else "")

    def markdown(self) -> str:
        """A Markdown table: rows x columns, cells mean ± std over seeds."""
        unit = " (%)" if self.scale == 100.0 else ""
        head = "| pretraining / protocol | " + " | ".join(self.columns) + " |"
        lines = [
            f"{self.metric}{unit}, label regime {self.regime}, {self.seeds_note()}",
            "",
            head,
            "|---|" + "---|" * len(self.columns),
        ]
        for row in self.rows:
            lines.append(f"| {row} | " + " | ".join(self.text(row, c) for c in self.columns) + " |")
        return "\n".join(lines) + "\n"

    def seeds_note(self) -> str:
        """``one seed`` or ``mean ± std over seeds`` (what the cells show)."""
        seeds = {len(v) for v in self.values.values() if v}
        return "one seed" if seeds == {1} else "mean ± std over seeds"

    def csv(self) -> str:
        """CSV: row, column, mean, std, seeds (display units)."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["row", "column", "regime", "metric", "mean", "std", "seeds"])
        for row in self.rows:
            for column in self.columns:
                s = self.stats(row, column)
                if s is not None:
                    std = f"{s[1]:.4f}" if s[2] > 1 else ""
                    writer.writerow(
                        [row, column, self.regime, self.metric, f"{s[0]:.4f}", std, s[2]]
                    )
        return out.getvalue()


def plot_table(table: ResultTable, path: Path, title: str) -> Path:
    """A grouped bar chart (one group per column, one bar per row, std as error bars)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, columns = table.rows, table.columns
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.2 + 0.45 * len(rows) * len(columns)), 4.5))
    cmap = plt.get_cmap("tab20")
    for i, row in enumerate(rows):
        means, errors, xs = [], [], []
        for j, column in enumerate(columns):
            s = table.stats(row, column)
            if s is not None:
                xs.append(j + (i - (len(rows) - 1) / 2) * width)
                means.append(s[0])
                errors.append(s[1] if s[2] > 1 else 0.0)
        bars = errors if any(errors) else None  # no error bars for one seed
        ax.bar(xs, means, width, yerr=bars, capsize=2, label=row, color=cmap(i % 20))
    ax.set_xticks(range(len(columns)), columns)
    ax.set_xlabel("downstream modalities")
    unit = " (%)" if table.scale == 100.0 else ""
    ax.set_ylabel(f"{table.metric}{unit}")
    ax.set_title(
        f"{title}\n{table.metric}, labels {table.regime}, {table.seeds_note()}", fontsize=10
    )
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_confusion(matrix: np.ndarray, class_names: Sequence[str], path: Path, title: str) -> Path:
    """A row-normalised confusion matrix (rows: true class) with counts in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = matrix.shape[0]
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    totals = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, totals, out=np.zeros(matrix.shape, float), where=totals > 0)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            if matrix[i, j]:
                ax.text(
                    j,
                    i,
                    f"{share[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_reports(
    folder: Path,
    cells: Sequence[CellResult],
    *,
    rows: list[str],
    columns: list[str],
    regimes: list[str],
    metric: str,
    class_names: Sequence[str],
    title: str,
) -> tuple[dict[str, ResultTable], list[Path]]:
    """Write the tables and figures of a run.

    Tables (md, csv, png) per regime, ``results.csv`` (every cell) and confusion matrices
    (summed over seeds) of the first regime.

    Returns:
        The tables per regime and the files written.
    """
    files: list[Path] = []
    tables: dict[str, ResultTable] = {}
    for regime in regimes:
        table = ResultTable.from_cells(cells, rows, columns, regime=regime, metric=metric)
        tables[regime] = table
        # names built whole: with_suffix would cut "fraction-0.5" at its dot
        markdown, table_csv = folder / f"table_{regime}.md", folder / f"table_{regime}.csv"
        markdown.write_text(f"# {title}\n\n" + table.markdown())
        table_csv.write_text(table.csv())
        files += [markdown, table_csv]
        if table.values:
            files.append(plot_table(table, folder / f"table_{regime}.png", title))
    files.append(_results_csv(folder / "results.csv", cells))
    confusion: dict[tuple[str, str], Any] = {}
    for cell in cells:
        if cell.regime == regimes[0] and cell.confusion is not None:
            key = (cell.row, cell.column)
            confusion[key] = confusion.get(key, 0) + np.asarray(cell.confusion)
    out = folder / "confusion"
    if confusion:
        out.mkdir(exist_ok=True)
    for (row, column), matrix in confusion.items():
        name = "".join(c if c.isalnum() else "_" for c in f"{row}__{column}")
        files.append(
            plot_confusion(
                matrix, class_names, out / f"{name}.png", f"{row}\n{column}, labels {regimes[0]}"
            )
        )
    return tables, files


def _results_csv(path: Path, cells: Sequence[CellResult]) -> Path:
    # overall metrics first, then per-class ones in class order (f1/2 before f1/10)
    metrics = sorted(
        {k for c in cells for k in c.metrics},
        key=lambda k: (k.count("/"), k.split("/")[0], int(k.split("/")[1]) if "/" in k else 0),
    )
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["row", "column", "regime", "seed", "labels_used", "seconds", "skipped", *metrics]
        )
        for c in cells:
            writer.writerow(
                [
                    c.row,
                    c.column,
                    c.regime,
                    c.seed,
                    c.labels_used,
                    c.seconds,
                    c.skipped or "",
                    *(f"{c.metrics[m]:.6f}" if m in c.metrics else "" for m in metrics),
                ]
            )
    return path
