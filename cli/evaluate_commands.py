"""Evaluation command: ``evaluate`` (the Berg-style table of an experiment config).

Thin wrapper: parse arguments, call :mod:`geoalign.models.evaluation`, show progress and the
tables with rich. torch and Lightning are imported inside the command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geoalign.errors import InvalidInputError


def evaluate(
    config: Annotated[Path, typer.Argument(help="Evaluation config (YAML).")],
    output_dir: Annotated[
        Path | None, typer.Option(help="Override output_dir (results go to OUTPUT_DIR/NAME).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Delete the experiment's previous results first. Without it a re-run resumes: "
            "finished cells and pretraining runs are reused.",
        ),
    ] = False,
    seeds: Annotated[
        str | None, typer.Option(help="Override seeds, comma-separated (e.g. 0,1,2).")
    ] = None,
    fast_dev_run: Annotated[
        bool,
        typer.Option(
            "--fast-dev-run",
            help="Smoke-test the config: first seed, few samples, two training steps, "
            "results in NAME-fast-dev-run.",
        ),
    ] = False,
) -> None:
    """Evaluate pretraining variants downstream and write the Berg-style table.

    Rows: pretraining variant / protocol, and supervised baselines; columns: downstream
    modality subsets; cells: mean +- std over seeds.

    Writes table_REGIME.md/.csv/.png, results.csv, confusion matrices and one JSON per
    finished cell below OUTPUT_DIR/NAME/.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from geoalign.cli.console import plain_console
    from geoalign.models.evaluation import EvaluationConfig, run_evaluation

    parsed = EvaluationConfig.from_yaml(config)
    updates: dict[str, object] = {}
    if output_dir is not None:
        updates["output_dir"] = output_dir.resolve()
    if seeds is not None:
        try:
            values = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            message = f"--seeds {seeds!r}: give integers separated by commas"
            raise InvalidInputError(message) from None
        if not values or len(set(values)) != len(values):
            raise InvalidInputError(f"--seeds {seeds!r}: give distinct integers, e.g. 0,1,2")
        updates["seeds"] = values
    if updates:
        parsed = parsed.model_copy(update=updates)
    console = plain_console()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        bar = progress.add_task("loading the task", total=None)

        def report(message: str, done: int, total: int) -> None:
            progress.update(bar, description=message[:90], completed=done, total=total)

        result = run_evaluation(
            parsed, overwrite=overwrite, fast_dev_run=fast_dev_run, progress=report
        )
    for table in result.tables.values():
        console.print(table.markdown(), highlight=False, markup=False)
    reused = len(result.cells) - result.computed
    console.print(
        f"{result.computed} cells computed, {reused} reused; results in {result.folder}",
        highlight=False,
    )
    if fast_dev_run:
        console.print("fast dev run: the config works (numbers from 2 training steps mean nothing)")


def register(app: typer.Typer) -> None:
    """Attach the evaluation command to ``app``."""
    app.command()(evaluate)
