"""Run a pretraining config: data module, task, Lightning trainer, checkpoints and logs.

    result = pretrain(PretrainConfig.from_yaml("houston.yaml"))
    result = pretrain(config, resume="last")          # continue an interrupted run exactly
    result = pretrain(config, overwrite=True)         # replace an earlier run of the same name

A run writes to ``<trainer.output_dir>/<name>/``: ``config.yaml`` (the resolved config),
``checkpoints/`` (``last.ckpt``, the latest ``epochNNN.ckpt`` and, with validation, the
``best-epochNNN.ckpt`` of the best retrieval top-1), ``csv/`` (metrics) and
``tensorboard/``. Resuming restores weights, optimizer, schedule, loop counters and RNG
states; batches and views are seeded from ``(seed, epoch, batch)``, so a run resumed from an
epoch checkpoint ends with the same weights as one that was never interrupted. A fresh run never
writes into the folder of an earlier one (checkpoints and logs of two runs would mix).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, LearningRateMonitor, ModelCheckpoint

from geoalign.errors import DataFileNotFoundError, InvalidInputError, OutputExistsError
from geoalign.models.array_data import ArrayDataModule
from geoalign.models.config import (
    ArrayDataConfig,
    CubeDataConfig,
    HoustonDataConfig,
    PretrainConfig,
)
from geoalign.models.cube_data import CubeDataModule
from geoalign.models.encoders import ModalitySpec
from geoalign.models.houston import HoustonDataModule
from geoalign.models.pretrain import ContrastivePretraining


@dataclass(frozen=True)
class PretrainResult:
    """What a run leaves behind.

    Attributes:
        run_dir: The run folder.
        last_checkpoint: ``checkpoints/last.ckpt`` (None if no epoch finished).
        best_checkpoint: The checkpoint of the best validation top-1 retrieval, if validated.
        metrics: Final logged values (``train/loss``, ``val/top1``...).
    """

    run_dir: Path
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    metrics: dict[str, float] = field(default_factory=dict)


def make_datamodule(config: PretrainConfig) -> HoustonDataModule | CubeDataModule | ArrayDataModule:
    """The data module of a config's ``data`` section."""
    if isinstance(config.data, HoustonDataConfig):
        return HoustonDataModule(config.data, seed=config.seed)
    if isinstance(config.data, ArrayDataConfig):
        return ArrayDataModule(config.data, list(config.modalities), seed=config.seed)
    return CubeDataModule(config.data, list(config.modalities), seed=config.seed)


def resolve_precision(precision: str, accelerator: str) -> str:
    """``"auto"``: bf16 mixed precision on a GPU that supports it, else full float32."""
    if precision != "auto":
        return precision
    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    return "bf16-mixed" if gpu and torch.cuda.is_bf16_supported() else "32-true"


def run_dir(config: PretrainConfig) -> Path:
    """The folder of a run: ``<trainer.output_dir>/<name>``."""
    return Path(config.trainer.output_dir) / config.name


def _resume_path(config: PretrainConfig, resume: str | os.PathLike[str] | None) -> str | None:
    if resume is None:
        return None
    if str(resume) == "last":
        last = run_dir(config) / "checkpoints" / "last.ckpt"
        if not last.is_file():
            raise DataFileNotFoundError(
                f"resume='last' but {last} does not exist: the run never finished an epoch, or "
                "trainer.output_dir/name differ from the interrupted run's"
            )
        return str(last)
    path = Path(resume)
    if not path.is_file():
        raise DataFileNotFoundError(f"checkpoint {path} to resume from does not exist")
    return str(path)


def _claim_run_dir(config: PretrainConfig, *, overwrite: bool) -> None:
    """Make sure a fresh run starts in an empty folder: refuse an earlier run's, or delete it.

    Only the first process acts (DDP workers re-enter ``pretrain`` while rank 0 waits in ``fit``).

    Raises:
        OutputExistsError: ``run_dir(config)`` holds files and ``overwrite`` is False, or it holds
            files but no ``config.yaml`` (not a run folder: never deleted).
    """
    from lightning.pytorch.utilities import rank_zero_only

    folder = run_dir(config)
    rank = getattr(rank_zero_only, "rank", 0)  # set by Lightning from the launcher's variables
    if rank != 0 or not folder.is_dir() or not any(folder.iterdir()):
        return
    if overwrite and (folder / "config.yaml").is_file():
        shutil.rmtree(folder)
        return
    if overwrite:
        raise OutputExistsError(
            f"{folder} holds files but is not a pretraining run (no config.yaml): refusing to "
            "delete it; choose another name or trainer.output_dir (CLI: --output-dir)"
        )
    last = folder / "checkpoints" / "last.ckpt"
    hint = "resume='last' (CLI: --resume last) to continue it, " if last.is_file() else ""
    raise OutputExistsError(
        f"{folder} already holds the run {config.name!r}: pass {hint}overwrite=True (CLI: "
        "--overwrite) to replace it, or choose another name or trainer.output_dir (CLI: "
        "--output-dir)"
    )


def _loggers(config: PretrainConfig, folder: Path) -> list[Any]:
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    loggers: list[Any] = []
    for kind in config.trainer.loggers:
        if kind == "csv":
            loggers.append(CSVLogger(folder, name="csv"))
        else:
            if importlib.util.find_spec("tensorboard") is None:
                raise InvalidInputError(
                    "trainer.loggers has 'tensorboard' but the tensorboard package is not "
                    "installed: pip install tensorboard, or log with 'csv' only"
                )
            loggers.append(TensorBoardLogger(folder, name="tensorboard", default_hp_metric=False))
    return loggers


def has_validation(config: PretrainConfig) -> bool:
    """Whether the run measures cross-modal retrieval on held-out locations."""
    data = config.data
    if isinstance(data, CubeDataConfig):
        held_out = data.val_fraction > 0
    else:
        held_out = data.holdout_fraction > 0
    return held_out and len(config.modalities) >= 2


def _callbacks(
    config: PretrainConfig, folder: Path, *, smoke_test: bool
) -> tuple[list[Callback], ModelCheckpoint | None]:
    """Callbacks: progress bar, learning rates, checkpoints (and the best one's, if validated)."""
    trainer = config.trainer
    callbacks: list[Callback] = []
    if trainer.progress_bar == "rich":
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar(leave=True))
    if smoke_test:
        return callbacks, None
    if trainer.loggers:
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    every = trainer.checkpoint_every_n_epochs
    # the latest epoch (and a copy as last.ckpt, what resume="last" reads): Lightning writes
    # last.ckpt only when its callback saved a checkpoint, so it gets one without a monitor
    callbacks.append(
        ModelCheckpoint(
            dirpath=folder / "checkpoints",
            filename="epoch{epoch:03d}",
            auto_insert_metric_name=False,
            every_n_epochs=every,
            save_last=True,
            save_top_k=1,
        )
    )
    if not has_validation(config):
        return callbacks, None
    checkpoint = ModelCheckpoint(
        dirpath=folder / "checkpoints",
        filename="best-epoch{epoch:03d}",
        monitor="val/top1",
        mode="max",
        auto_insert_metric_name=False,
        every_n_epochs=every,
        save_top_k=1,
    )
    callbacks.append(checkpoint)
    return callbacks, checkpoint


def build_trainer(
    config: PretrainConfig,
    *,
    fast_dev_run: bool | int = False,
    callbacks: Sequence[Callback] = (),
) -> tuple[L.Trainer, ModelCheckpoint | None]:
    """The Lightning trainer of a config (and its best-checkpoint callback, if any)."""
    settings = config.trainer
    folder = run_dir(config)
    smoke_test = bool(fast_dev_run)
    own, checkpoint = _callbacks(config, folder, smoke_test=smoke_test)
    trainer = L.Trainer(
        default_root_dir=folder,
        max_epochs=settings.max_epochs,
        max_steps=settings.max_steps,
        accelerator=settings.accelerator,
        devices=settings.devices,
        strategy=settings.strategy,
        precision=resolve_precision(settings.precision, settings.accelerator),  # type: ignore[arg-type]
        accumulate_grad_batches=settings.accumulate_grad_batches,
        gradient_clip_val=settings.gradient_clip_val,
        sync_batchnorm=settings.sync_batchnorm,
        logger=False if smoke_test else _loggers(config, folder),
        enable_checkpointing=not smoke_test,
        callbacks=[*own, *callbacks],
        log_every_n_steps=settings.log_every_n_steps,
        check_val_every_n_epoch=settings.check_val_every_n_epoch,
        enable_progress_bar=settings.progress_bar != "none",
        enable_model_summary=False,
        deterministic=settings.deterministic,
        use_distributed_sampler=False,  # the data modules split global batches themselves
        fast_dev_run=fast_dev_run,
    )
    return trainer, checkpoint


def pretrain(
    config: PretrainConfig,
    *,
    resume: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    fast_dev_run: bool | int = False,
    callbacks: Sequence[Callback] = (),
) -> PretrainResult:
    """Pretrain the encoders of a config.

    Args:
        config: A validated config (see :class:`PretrainConfig`).
        resume: ``"last"`` (the run's ``last.ckpt``) or a checkpoint path; None starts afresh.
        overwrite: Starting afresh, delete an earlier run of the same name and output folder
            first (without it, such a run is an error).
        fast_dev_run: Run 1 (or n) training and validation batches only, without logs or
            checkpoints (a smoke test of the config).
        callbacks: Extra Lightning callbacks.

    Returns:
        Where the checkpoints are and the final metrics.

    Raises:
        DataFileNotFoundError: Missing data or checkpoint.
        InvalidInputError: A config that does not fit the data.
        OutputExistsError: Starting afresh where an earlier run is, without ``overwrite``.
    """
    L.seed_everything(config.seed, workers=True, verbose=False)
    ckpt_path = _resume_path(config, resume)
    if ckpt_path is None and not fast_dev_run:
        _claim_run_dir(config, overwrite=overwrite)
    datamodule = make_datamodule(config)
    specs: dict[str, ModalitySpec] = datamodule.specs()
    task = ContrastivePretraining(config, specs)
    folder = run_dir(config)
    trainer, checkpoint = build_trainer(config, fast_dev_run=fast_dev_run, callbacks=callbacks)
    if not fast_dev_run and trainer.is_global_zero:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.yaml").write_text(config.to_yaml())
    trainer.fit(task, datamodule=datamodule, ckpt_path=ckpt_path)
    last = folder / "checkpoints" / "last.ckpt"
    saved = not fast_dev_run and last.is_file()
    metrics = {
        key: float(value) for key, value in trainer.callback_metrics.items() if value.numel() == 1
    }
    return PretrainResult(
        run_dir=folder,
        last_checkpoint=last if saved else None,
        best_checkpoint=_best(checkpoint),
        metrics=metrics,
    )


def _best(checkpoint: ModelCheckpoint | None) -> Path | None:
    path = checkpoint.best_model_path if checkpoint is not None else ""
    return Path(path) if path else None
