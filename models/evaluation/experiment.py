"""Run an evaluation config: pretraining variants x protocols x modality subsets x regimes x seeds.

    result = run_evaluation(EvaluationConfig.from_yaml("houston_evaluate.yaml"))
    result.tables["all"].markdown()            # the Berg-style table of the "all" regime

Results go to ``<output_dir>/<name>/``: ``config.yaml``; ``cells/`` (one JSON per finished cell,
named by a fingerprint of everything that determines it: a re-run skips it, a changed setting
computes a new one); ``pretrain/`` (one pretraining run per variant and seed, reused when
finished, resumed from ``last.ckpt`` when interrupted); and per regime ``table_<regime>.md``,
``.csv``, ``.png``, plus ``results.csv`` (every cell, every metric) and confusion matrices.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoalign.errors import InvalidInputError
from geoalign.models.config import CubeDataConfig, PretrainConfig
from geoalign.models.encoders import ModalityEncoder
from geoalign.models.evaluation.config import EvaluationConfig, VariantConfig, merge
from geoalign.models.evaluation.features import FrozenFeatures, load_encoders, random_encoders
from geoalign.models.evaluation.metrics import PRIMARY
from geoalign.models.evaluation.probes import single_thread
from geoalign.models.evaluation.protocols import Protocol, ProtocolSettings, evaluate
from geoalign.models.evaluation.regimes import LabelRegime
from geoalign.models.evaluation.report import ResultTable, write_reports
from geoalign.models.evaluation.tasks import TaskData

#: ``progress(message, done, total)``, called before each cell and once at the end.
ProgressCallback = Callable[[str, int, int], None]
_MARKER = "evaluation.json"


@dataclass(frozen=True)
class Row:
    """One table row: a variant with a protocol, or a supervised baseline."""

    label: str
    protocol: Protocol
    variant: VariantConfig | None = None  # None: a baseline


@dataclass(frozen=True)
class CellResult:
    """One finished (row, column, regime, seed), as stored in ``cells/``."""

    row: str
    column: str
    regime: str
    seed: int
    metrics: dict[str, float]
    labels_used: int
    seconds: float
    confusion: list[list[int]] | None = None
    skipped: str | None = None  # why a cell has no result (e.g. no encoder for a modality)


@dataclass(frozen=True)
class EvaluationResult:
    """What a run produced."""

    folder: Path
    cells: list[CellResult]
    tables: dict[str, ResultTable]
    files: list[Path] = field(default_factory=list)
    computed: int = 0  # cells computed by this run (the rest were loaded)


def column_label(modalities: list[str]) -> str:
    """``hsi+lidar``."""
    return "+".join(modalities)


def _slug(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "-" for c in text.lower())
    return "-".join(part for part in keep.split("-") if part)[:60] or "x"


def _digest(value: Any) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def task_fingerprint(task: TaskData) -> str:
    """A hash of the task's arrays, targets and class names."""
    h = hashlib.sha1(task.kind.encode())
    for part in (task.train, task.test):
        for name in sorted(part):
            h.update(name.encode())
            h.update(np.ascontiguousarray(part[name]).tobytes())
    h.update(np.ascontiguousarray(task.train_target).tobytes())
    h.update(np.ascontiguousarray(task.test_target).tobytes())
    h.update("|".join(task.class_names).encode())
    return h.hexdigest()[:12]


def rows_of(config: EvaluationConfig) -> list[Row]:
    """The table's rows in order: variants x protocols, then the baselines."""
    rows = [
        Row(f"{v.name} / {p.replace('_', ' ')}", p, v)
        for v in config.variants
        for p in config.downstream.protocols
    ]
    if config.baselines.supervised:
        rows.append(Row("supervised: same network, random init", "finetune"))
    if config.baselines.random_forest:
        rows.append(Row("supervised: random forest", "random_forest"))
    return rows


def _fast(config: EvaluationConfig, task: TaskData) -> tuple[EvaluationConfig, TaskData]:
    """A smoke-test version: first seed, few samples, two optimizer steps, small forests."""
    rng = np.random.default_rng(0)

    def few(n: int, limit: int) -> np.ndarray:
        return np.sort(rng.permutation(n)[:limit])

    train = few(task.train_target.shape[0], 64)
    test = few(task.test_target.shape[0], 32)
    small = TaskData(
        task.kind,
        {m: a[train] for m, a in task.train.items()},
        task.train_target[train],
        {m: a[test] for m, a in task.test.items()},
        task.test_target[test],
        task.class_names,
        task.metadata,
    )
    s = config.downstream.settings
    settings = s.model_copy(
        update={
            "probe": s.probe.model_copy(update={"max_iter": 5, "max_pixels": 2000}),
            "finetune": s.finetune.model_copy(update={"epochs": 1, "batch_size": 16}),
            "forest": s.forest.model_copy(update={"trees": 5, "max_pixels": 2000}),
            "max_steps": 2,
        }
    )
    # validation only in the sanity check (2 batches): the smoke test is about the pipeline
    trainer = {
        "max_epochs": 1,
        "max_steps": 2,
        "log_every_n_steps": 1,
        "check_val_every_n_epoch": 1000,
    }
    pretraining = config.pretraining.model_copy(
        update={
            "overrides": merge(config.pretraining.overrides, {"trainer": trainer}),
            "batch_size": min(config.pretraining.batch_size, 16),
        }
    )
    fast = config.model_copy(
        update={
            "name": f"{config.name}-fast-dev-run",
            "seeds": config.seeds[:1],
            "pretraining": pretraining,
            "downstream": config.downstream.model_copy(update={"settings": settings}),
        }
    )
    return fast, small


class _Encoders:
    """Encoders per (variant, seed): random, or pretrained once and reused from disk."""

    def __init__(
        self, config: EvaluationConfig, task: TaskData, folder: Path, fingerprint: str, fast: bool
    ) -> None:
        self.config = config
        self.task = task
        self.folder = folder
        self.fingerprint = fingerprint
        self.fast = fast
        self.cache: dict[tuple[str, int], tuple[dict[str, ModalityEncoder], FrozenFeatures]] = {}

    def pretraining_config(self, variant: VariantConfig, seed: int) -> PretrainConfig:
        data = None
        if self.config.pretraining.data == "task":
            data = {
                "kind": "arrays",
                "path": str(self._task_arrays()),
                "batch_size": self.config.pretraining.batch_size,
            }
        base = self.config.variant_pretraining(variant, data)
        if data is not None and len(base.modalities) < 2:
            # one sensor has no cross-modal retrieval to validate: pretrain on every location
            base = base.model_copy(
                update={"data": base.data.model_copy(update={"holdout_fraction": 0.0})}
            )
        raw = base.model_dump(mode="json")
        raw["seed"] = seed
        key = _digest({"config": raw, "task": self.fingerprint if data else None})
        raw["name"] = f"{_slug(variant.name)}-seed{seed}-{key}"
        raw["trainer"].update(
            {
                "output_dir": str(self.folder / "pretrain"),
                "progress_bar": "none",
                "loggers": ["csv"],
            }
        )
        if self.fast and isinstance(base.data, CubeDataConfig):
            raw["data"].update(
                {
                    "batches_per_epoch": 2,
                    "batch_size": min(base.data.batch_size, 4),
                    "num_workers": 0,
                }
            )
        return PretrainConfig.from_dict(raw)

    def _task_arrays(self) -> Path:
        path = self.folder / "pretrain" / f"task-{self.fingerprint}.npz"
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".partial.npz")
            savez: Any = np.savez  # numpy's stub types ** arguments as its own options
            savez(partial, **self.task.train)
            partial.replace(path)
        return path

    def key(self, variant: VariantConfig, seed: int) -> dict[str, Any]:
        """What determines this variant's encoders (for cell fingerprints)."""
        s = seed if self.config.pretraining.per_seed else self.config.seeds[0]
        if variant.init == "random":
            raw = self.config.variant_pretraining(variant, self._placeholder()).model_dump(
                mode="json"
            )
            return {"random": raw["modalities"], "embed": raw["embed_dim"], "seed": s}
        return {"pretrained": self.pretraining_config(variant, s).name}

    def _placeholder(self) -> dict[str, Any] | None:
        return (
            {"kind": "arrays", "path": "task.npz"}
            if self.config.pretraining.data == "task"
            else None
        )

    def get(
        self, variant: VariantConfig, seed: int
    ) -> tuple[dict[str, ModalityEncoder], FrozenFeatures]:
        """The variant's encoders for ``seed`` and their memoised frozen features."""
        s = seed if self.config.pretraining.per_seed else self.config.seeds[0]
        if (variant.name, s) in self.cache:
            return self.cache[(variant.name, s)]
        if variant.init == "random":
            base = self.config.variant_pretraining(variant, self._placeholder())
            encoders = random_encoders(base, self.task.specs(), seed=s)
        else:
            encoders = load_encoders(self._pretrain(self.pretraining_config(variant, s)))
        fusion = self.config.downstream.settings.fusion
        features = FrozenFeatures(encoders, self.task.train, self.task.test, fusion)
        self.cache = {(variant.name, s): (encoders, features)}  # one set in memory
        return self.cache[(variant.name, s)]

    def _pretrain(self, config: PretrainConfig) -> Path:
        from geoalign.models.run import pretrain, run_dir

        folder = run_dir(config)
        last = folder / "checkpoints" / "last.ckpt"
        if (folder / "done.json").is_file() and last.is_file():
            return last
        resume = "last" if last.is_file() else None
        # the experiment owns its run folders: an unfinished run without last.ckpt starts over
        result = pretrain(config, resume=resume, overwrite=resume is None)
        if result.last_checkpoint is None:
            raise InvalidInputError(f"pretraining {config.name} saved no checkpoint")
        (folder / "done.json").write_text(json.dumps(result.metrics, indent=1))
        return result.last_checkpoint


def _prepare_folder(folder: Path, config: EvaluationConfig, overwrite: bool) -> None:
    if folder.exists() and overwrite:
        if any(folder.iterdir()) and not (folder / _MARKER).is_file():
            raise InvalidInputError(
                f"{folder} exists and is not an evaluation folder: refusing to delete it; "
                "choose another output_dir or name"
            )
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _MARKER).write_text(json.dumps({"name": config.name}))
    (folder / "config.yaml").write_text(config.to_yaml())


def run_evaluation(
    config: EvaluationConfig,
    *,
    task: TaskData | None = None,
    overwrite: bool = False,
    fast_dev_run: bool = False,
    progress: ProgressCallback | None = None,
) -> EvaluationResult:
    """Run (or resume) every cell of the experiment and write its tables.

    Args:
        config: The experiment.
        task: The downstream data; default ``config.task.load()`` (pass your own, e.g. a
            validation split, to evaluate on it).
        overwrite: Delete the experiment's folder first (only if it is one).
        fast_dev_run: Smoke test: first seed, 64 training / 32 test samples, two steps of
            pretraining and finetuning, into ``<name>-fast-dev-run`` (always overwritten).
        progress: Called with a message and counts before each cell.

    Returns:
        The cells, the tables per regime and the files written.
    """
    with _quiet_lightning(), single_thread(False):  # restores the thread count afterwards
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        return _run(config, task, overwrite, fast_dev_run, progress)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's per-fit banners (GPU available, tips) at WARNING level during the run."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _run(
    config: EvaluationConfig,
    task: TaskData | None,
    overwrite: bool,
    fast_dev_run: bool,
    progress: ProgressCallback | None,
) -> EvaluationResult:
    task = config.task.load() if task is None else task
    for column in config.downstream.modalities:
        task.check_modalities(column)
    if fast_dev_run:
        config, task = _fast(config, task)
        overwrite = True
    folder = config.output_dir / config.name
    _prepare_folder(folder, config, overwrite)
    fingerprint = task_fingerprint(task)
    encoders = _Encoders(config, task, folder, fingerprint, fast_dev_run)
    settings = config.downstream.settings
    rows = rows_of(config)
    jobs = [
        (row, column, regime, seed)
        for row in rows
        for seed in config.seeds
        for column in config.downstream.modalities
        for regime in config.downstream.regimes
    ]
    cells: list[CellResult] = []
    computed = 0
    for done, (row, column, regime, seed) in enumerate(jobs):
        label = column_label(column)
        if progress is not None:
            progress(f"{row.label} | {label} | {regime.name} | seed {seed}", done, len(jobs))
        path = _cell_path(folder, row, label, regime, seed, fingerprint, settings, encoders)
        if path.is_file():
            cells.append(CellResult(**json.loads(path.read_text())))
            continue
        cell = _run_cell(task, row, column, regime, seed, settings, encoders, config)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(cell.__dict__, indent=1))
        partial.replace(path)
        cells.append(cell)
        computed += 1
    if progress is not None:
        progress("tables", len(jobs), len(jobs))
    metric = config.downstream.metric or PRIMARY[task.kind]
    tables, files = write_reports(
        folder,
        cells,
        rows=[r.label for r in rows],
        columns=[column_label(c) for c in config.downstream.modalities],
        regimes=[r.name for r in config.downstream.regimes],
        metric=metric,
        class_names=task.class_names,
        title=config.name,
    )
    return EvaluationResult(folder, cells, tables, files, computed)


def relevant_settings(settings: ProtocolSettings, protocol: Protocol) -> dict[str, Any]:
    """The settings a protocol's result depends on.

    Only these enter a cell's fingerprint: a changed finetune schedule keeps probe cells.
    """
    own = {
        "linear_probe": ["fusion", "probe"],
        "knn": ["fusion", "knn"],
        "finetune": ["fusion", "finetune", "max_steps"],
        "random_forest": ["forest"],
    }[protocol]
    return settings.model_dump(mode="json", include=set(own))


def _cell_path(
    folder: Path,
    row: Row,
    column: str,
    regime: LabelRegime,
    seed: int,
    fingerprint: str,
    settings: ProtocolSettings,
    encoders: _Encoders,
) -> Path:
    what: dict[str, Any] = {
        "task": fingerprint,
        "protocol": row.protocol,
        "regime": regime.model_dump(),
        "seed": seed,
        "column": column,
        "settings": relevant_settings(settings, row.protocol),
    }
    if row.variant is not None:
        what["encoders"] = encoders.key(row.variant, seed)
    elif row.protocol == "finetune":
        what["network"] = encoders.config.base_pretraining(encoders._placeholder())["modalities"]
    name = f"{_slug(column)}-{regime.name}-seed{seed}-{_digest(what)}.json"
    return folder / "cells" / _slug(row.label) / name


def _run_cell(
    task: TaskData,
    row: Row,
    column: list[str],
    regime: LabelRegime,
    seed: int,
    settings: ProtocolSettings,
    encoders: _Encoders,
    config: EvaluationConfig,
) -> CellResult:
    start = time.perf_counter()
    label = column_label(column)
    models: dict[str, ModalityEncoder] | None = None
    features: FrozenFeatures | None = None
    if row.variant is not None:
        models, features = encoders.get(row.variant, seed)
        missing = [m for m in column if m not in models]
        if missing:
            return CellResult(
                row.label,
                label,
                regime.name,
                seed,
                {},
                0,
                0.0,
                skipped=f"variant has no encoder for {missing}",
            )
    elif row.protocol == "finetune":  # the same network from random init, trained end to end
        base = PretrainConfig.from_dict(config.base_pretraining(encoders._placeholder()))
        models = random_encoders(base, task.specs(), seed=seed)
        finetune = settings.finetune.model_copy(update={"encoder_lr_fraction": 1.0})
        settings = settings.model_copy(update={"finetune": finetune})
    scores, used = evaluate(
        task,
        row.protocol,
        column,
        regime=regime,
        seed=seed,
        settings=settings,
        encoders=models,
        features=features,
    )
    confusion = None if scores.confusion is None else scores.confusion.astype(int).tolist()
    return CellResult(
        row.label,
        label,
        regime.name,
        seed,
        scores.values,
        used,
        round(time.perf_counter() - start, 3),
        confusion,
    )
