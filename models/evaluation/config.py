"""The evaluation config: one YAML file describes the whole experiment matrix.

    config = EvaluationConfig.from_yaml("tutorials/configs/tempcnn_crops_evaluate.yaml")
    geoalign evaluate tutorials/configs/tempcnn_crops_evaluate.yaml

Rows of the result table are pretraining variants (each a pretraining config: the base one with
overrides, run by :func:`geoalign.models.run.pretrain`, or random weights) times protocols,
plus the supervised baselines; columns are downstream modality subsets; each cell is repeated
over ``seeds`` and label regimes. Unknown keys are errors; relative paths are resolved against
the YAML file's folder.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from geoalign.config_errors import invalid
from geoalign.errors import DataFileNotFoundError, InvalidInputError
from geoalign.models.config import PretrainConfig, read_yaml_mapping
from geoalign.models.evaluation.protocols import ProtocolSettings
from geoalign.models.evaluation.regimes import LabelRegime
from geoalign.models.evaluation.sources import TaskSource


def _probe_only() -> list[Literal["linear_probe", "knn", "finetune"]]:
    return ["linear_probe"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Strict):
    """One pretraining variant (a row group of the table)."""

    # Row label, e.g. "multi-modal (HSI+LiDAR)".
    name: str = Field(min_length=1)
    # "pretrained": run the pretraining config; "random": the same encoders, random weights.
    init: Literal["pretrained", "random"] = "pretrained"
    # Modalities of the base pretraining config to pretrain (default all): [lidar] makes a
    # single-modal variant (give it views: {count: 2} in overrides).
    modalities: list[str] | None = None
    # Changes to the base pretraining config, merged key by key (e.g. {loss: {kind: pairwise}}).
    overrides: dict[str, Any] = Field(default_factory=dict)


class PretrainingSection(_Strict):
    """Where the variants' pretraining configs come from."""

    # The base pretraining config: a YAML path (relative to this file) or the mapping itself.
    base: Path | dict[str, Any]
    # "task": pretrain on the downstream task's training inputs (labels never used), written
    # to an array file; "config": the base config's own data section (a cube, Houston pairs).
    data: Literal["task", "config"] = "config"
    # Locations per pretraining batch when data is "task".
    batch_size: int = Field(default=256, ge=2)
    # One pretraining run per seed (True: the spread covers pretraining too) or one for all.
    per_seed: bool = True
    # Overrides applied to every variant (before the variant's own), e.g. {trainer: {...}}.
    overrides: dict[str, Any] = Field(default_factory=dict)


class BaselinesConfig(_Strict):
    """Supervised baselines trained on the same labels."""

    # A random forest on the raw inputs of each column's modalities.
    random_forest: bool = True
    # The same network from random init trained end to end (finetune, encoder lr = head lr).
    supervised: bool = True


class DownstreamConfig(_Strict):
    """Columns, protocols and label regimes."""

    # Table columns: each a list of modalities seen downstream, e.g. [[lidar], [hsi, lidar]].
    modalities: list[list[str]] = Field(min_length=1)
    # Protocols run for every pretraining variant: linear_probe, knn, finetune.
    protocols: list[Literal["linear_probe", "knn", "finetune"]] = Field(
        default_factory=_probe_only, min_length=1
    )
    # Label regimes, one table each: {kind: all}, {kind: per_class, k: 10}, {kind: fraction, ...}.
    regimes: list[LabelRegime] = Field(default_factory=lambda: [LabelRegime()], min_length=1)
    # Settings of the protocols (fusion, probe, knn, finetune, forest).
    settings: ProtocolSettings = Field(default_factory=ProtocolSettings)
    # Metric of the table cells (default: oa, macro_f1, miou or rmse by task kind).
    metric: str | None = None


class EvaluationConfig(_Strict):
    """A downstream evaluation experiment."""

    # Experiment name (a folder below output_dir).
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    # Seeds: each is a label draw, head initialisation and (per_seed) pretraining run.
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    # The downstream task's data (houston2013, tempcnn_crops, sits_modis, enmap_potsdam, cube,
    # arrays).
    task: TaskSource
    # Pretraining variants' base config.
    pretraining: PretrainingSection
    # The rows: pretraining variants (random init, single-modal, multi-modal...).
    variants: list[VariantConfig] = Field(min_length=1)
    # Columns, protocols, regimes.
    downstream: DownstreamConfig
    # Supervised baselines.
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    # Results folder: <output_dir>/<name>/ (cells/, pretrain/, tables); relative to this file.
    output_dir: Path = Path("runs/evaluation")
    # torch intra-op threads during the run (None: torch's default). Small encoders on a busy
    # machine run fastest with 1.
    threads: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> EvaluationConfig:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ: {names}")
        columns = [tuple(m) for m in self.downstream.modalities]
        if len(set(columns)) != len(columns) or any(not c for c in columns):
            raise ValueError(
                f"downstream.modalities: give distinct, non-empty subsets, got {columns}"
            )
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds must differ: {self.seeds}")
        return self

    # ------------------------------------------------------------------ pretraining configs

    def base_pretraining(self, data: dict[str, Any] | None = None) -> dict[str, Any]:
        """The base pretraining config as a mapping.

        The file is read, ``data`` (when given) replaces its data section, then the section's
        overrides are merged.
        """
        base = self.pretraining.base
        if isinstance(base, Path):
            if not base.is_file():
                raise DataFileNotFoundError(f"pretraining.base: config {base} not found")
            raw = yaml.safe_load(base.read_text())
            if not isinstance(raw, dict):
                raise InvalidInputError(f"pretraining.base: {base} must hold a mapping")
            raw = PretrainConfig.from_dict(raw, base=base.parent).model_dump(mode="json")
        else:
            raw = copy.deepcopy(base)
        if data is not None:
            raw["data"] = data
        return merge(raw, self.pretraining.overrides)

    def variant_pretraining(
        self, variant: VariantConfig, data: dict[str, Any] | None
    ) -> PretrainConfig:
        """The pretraining config of a variant (validated; ``data`` replaces the data section).

        Raises:
            InvalidInputError: The merged config is invalid (the message names the variant).
        """
        raw = self.base_pretraining(data)
        if variant.modalities is not None:
            unknown = [m for m in variant.modalities if m not in raw.get("modalities", {})]
            if unknown:
                raise InvalidInputError(
                    f"variant {variant.name!r}: modalities {unknown} are not in the base "
                    f"pretraining config (it has {sorted(raw.get('modalities', {}))})"
                )
            raw["modalities"] = {m: raw["modalities"][m] for m in variant.modalities}
        raw = merge(raw, variant.overrides)
        try:
            return PretrainConfig.from_dict(raw)
        except InvalidInputError as error:
            raise InvalidInputError(f"variant {variant.name!r}: {error}") from None

    # ------------------------------------------------------------------------- loading

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> EvaluationConfig:
        """Read, validate and resolve a YAML config (paths relative to its folder).

        Raises:
            DataFileNotFoundError: The file does not exist.
            InvalidInputError: Malformed YAML or invalid fields (every problem listed).
        """
        file = Path(path)
        raw = read_yaml_mapping(file, "evaluation config", "name:, task:, variants:, ...")
        return cls.from_dict(raw, base=file.parent.resolve(), source=file)

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], *, base: Path | None = None, source: Path | None = None
    ) -> EvaluationConfig:
        """Validate a mapping; relative paths resolved against ``base`` (default: cwd).

        ``source`` is the YAML file the mapping was read from, if any (messages then give the
        line of each problem).

        Every variant's pretraining config is built once here, so an invalid override fails
        now, naming the variant.

        Raises:
            InvalidInputError: A field is invalid (each problem with its location).
        """
        try:
            config = cls.model_validate(raw)
        except ValidationError as error:
            raise invalid("evaluation config", error, cls, source) from None
        config = config.resolved(base or Path.cwd())
        placeholder = {"kind": "arrays", "path": "task.npz"}
        for variant in config.variants:
            data = placeholder if config.pretraining.data == "task" else None
            config.variant_pretraining(variant, data)
        return config

    def resolved(self, base: Path) -> EvaluationConfig:
        """A copy whose relative paths are absolute against ``base``."""
        pretraining = self.pretraining
        if isinstance(pretraining.base, Path) and not pretraining.base.is_absolute():
            pretraining = pretraining.model_copy(
                update={"base": (base / pretraining.base).resolve()}
            )
        elif isinstance(pretraining.base, dict):
            raw = dict(pretraining.base)
            placeholder = "data" not in raw
            if placeholder:
                raw["data"] = {"kind": "arrays", "path": "task.npz"}
            dumped = PretrainConfig.from_dict(raw, base=base).model_dump(mode="json")
            if placeholder:
                del dumped["data"]
            pretraining = pretraining.model_copy(update={"base": dumped})
        output = (
            self.output_dir if self.output_dir.is_absolute() else (base / self.output_dir).resolve()
        )
        return self.model_copy(
            update={
                "pretraining": pretraining,
                "task": self.task.resolved(base),
                "output_dir": output,
            }
        )

    def to_yaml(self) -> str:
        """The config as YAML (saved beside the results)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` merged key by key (nested mappings merged, others replaced)."""
    out = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
