"""Training commands: ``pretrain``.

Thin wrappers: parse arguments, call :mod:`geoalign.models`, print with rich. torch and
Lightning are imported inside the command so that ``geoalign --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from geoalign.errors import InvalidInputError


def pretrain(
    config: Annotated[Path, typer.Argument(help="Pretraining config (YAML).")],
    resume: Annotated[
        str | None,
        typer.Option(help="Continue a run: 'last' (its last.ckpt) or a checkpoint path."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Override trainer.output_dir (runs go below it).")
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an earlier run of the same name.")
    ] = False,
    max_epochs: Annotated[int | None, typer.Option(help="Override trainer.max_epochs.")] = None,
    accelerator: Annotated[
        str | None, typer.Option(help="Override trainer.accelerator (cpu, gpu, auto).")
    ] = None,
    devices: Annotated[
        int | None, typer.Option(help="Override trainer.devices (processes; DDP when > 1).")
    ] = None,
    fast_dev_run: Annotated[
        bool,
        typer.Option(
            "--fast-dev-run", help="One training and validation batch, no logs: test a config."
        ),
    ] = False,
) -> None:
    """Pretrain one encoder per modality with a multi-modal contrastive loss.

    The config names the data, encoders, loss, views and trainer (see tutorials/configs/).

    Checkpoints and CSV/TensorBoard logs go to OUTPUT_DIR/NAME/.

    Cross-modal retrieval on held-out locations (top-1, top-5) is printed at the end.
    """
    from geoalign.models.config import PretrainConfig
    from geoalign.models.run import pretrain as run_pretraining

    parsed = PretrainConfig.from_yaml(config)
    overrides: dict[str, Any] = {}
    if output_dir is not None:
        overrides["output_dir"] = output_dir.resolve()
    if max_epochs is not None:
        if max_epochs < 1:
            raise InvalidInputError(f"--max-epochs {max_epochs}: give at least 1")
        overrides["max_epochs"] = max_epochs
    if accelerator is not None:
        overrides["accelerator"] = accelerator
    if devices is not None:
        if devices < 1:
            raise InvalidInputError(f"--devices {devices}: give at least 1")
        overrides["devices"] = devices
    if overrides:
        merged = parsed.model_dump(mode="json")
        merged["trainer"].update(
            {k: str(v) if isinstance(v, Path) else v for k, v in overrides.items()}
        )
        parsed = PretrainConfig.from_dict(merged)
    result = run_pretraining(parsed, resume=resume, overwrite=overwrite, fast_dev_run=fast_dev_run)
    _summary(result.metrics, result.last_checkpoint, result.best_checkpoint, fast_dev_run)


def _summary(
    metrics: dict[str, float], last: Path | None, best: Path | None, fast_dev_run: bool
) -> None:
    from rich.table import Table

    from geoalign.cli.console import plain_console

    console = plain_console()
    rows = sorted(k for k in metrics if k.startswith("val/") and "top" in k)
    if rows:
        table = Table(title="cross-modal retrieval on held-out locations")
        table.add_column("metric")
        table.add_column("value", justify="right")
        for key in rows:
            table.add_row(key.removeprefix("val/"), f"{metrics[key]:.4f}")
        console.print(table)
    if "train/loss" in metrics:
        console.print(f"final training loss: {metrics['train/loss']:.4f}")
    if fast_dev_run:
        console.print("fast dev run: the config works (nothing was saved)")
        return
    console.print(f"last checkpoint: {last}")
    if best is not None:
        console.print(f"best checkpoint (val top-1): {best}")


def register(app: typer.Typer) -> None:
    """Attach the training commands to ``app``."""
    app.command()(pretrain)
