"""The pretraining configuration: one validated YAML file, every field documented.

    config = PretrainConfig.from_yaml("tutorials/configs/houston2013_pretrain.yaml")
    geoalign pretrain tutorials/configs/houston2013_pretrain.yaml

Sections: ``data`` (a cube or the Houston 2013 pixel pairs), ``modalities`` (one encoder per
sensor), ``loss``, ``views`` (artificial augmentations), ``optim`` and ``trainer``. Unknown keys
are errors (a typo never passes silently). Relative paths are resolved against the YAML file's
folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from geoalign.config_errors import invalid
from geoalign.errors import DataFileNotFoundError, InvalidInputError

BACKBONES = ("mlp", "alexnet", "resnet18", "resnet50")
LoggerName = Literal["csv", "tensorboard"]


def _csv_only() -> list[LoggerName]:
    return ["csv"]


def read_yaml_mapping(file: Path, what: str, keys: str) -> dict[str, Any]:
    """The mapping in a YAML file.

    Args:
        file: The YAML file.
        what: What it is, for messages ("pretraining config").
        keys: Its expected top-level keys, for messages ("data:, modalities:, ...").

    Raises:
        DataFileNotFoundError: The file does not exist.
        InvalidInputError: The YAML is malformed or not a mapping.
    """
    if not file.is_file():
        raise DataFileNotFoundError(f"{what} {file} not found")
    try:
        raw = yaml.safe_load(file.read_text())
    except yaml.YAMLError as error:
        raise InvalidInputError(f"{file} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise InvalidInputError(f"{file} must hold a mapping ({keys})")
    return raw


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderConfig(_Strict):
    """The backbone of one modality (its input channels come from the data)."""

    # "mlp" (per-pixel feature vectors), "alexnet" (small CNN for 10 m patches), "resnet18",
    # "resnet50" (torchvision), or "timm:<name>" (any timm model, created without weights).
    kind: str = "mlp"
    # Hidden layer widths of the "mlp" backbone; its output size is the last one.
    hidden: list[Annotated[int, Field(gt=0)]] = Field(default_factory=lambda: [256, 256])
    # Spectral front end: a 1-D convolution along the band axis mapping hundreds of bands to
    # this many features per pixel before the backbone (None: bands go straight in).
    spectral_features: int | None = Field(default=None, gt=0)
    # CNNs on small windows (< 64 px): first convolution with stride 1 and no max-pooling.
    small_input: bool = False
    # Dropout before the projection head (0 keeps resumed runs bit-exact).
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Local weights file (torchgeo/timm/torchvision state dict) loaded into the backbone;
    # never downloaded. Relative to the YAML file.
    weights: Path | None = None
    # Prefix stripped from the weights' keys ("backbone." etc. are tried automatically).
    weights_prefix: str = ""

    @field_validator("kind")
    @classmethod
    def _known_kind(cls, value: str) -> str:
        if value in BACKBONES or (value.startswith("timm:") and len(value) > 5):
            return value
        raise ValueError(f"unknown encoder kind {value!r}: use one of {BACKBONES} or 'timm:<name>'")


class TemporalConfig(_Strict):
    """Attention pooling over dates (L-TAE style) for time-series modalities."""

    # Width of the per-date features fed to the attention.
    d_model: int = Field(default=128, gt=0)
    # Attention heads, each a learned master query; must divide d_model.
    heads: int = Field(default=4, gt=0)
    # Period (days) of the longest sinusoid of the date encoding.
    max_period_days: float = Field(default=1000.0, gt=0)

    @model_validator(mode="after")
    def _heads_divide(self) -> TemporalConfig:
        if self.d_model % self.heads:
            raise ValueError(f"heads={self.heads} must divide d_model={self.d_model}")
        return self


class ModalityConfig(_Strict):
    """One sensor: its encoder, and how to pool its dates when it is a time series."""

    # The backbone applied to each image (or each date of a series).
    encoder: EncoderConfig = Field(default_factory=EncoderConfig)
    # Date pooling for a time series (required when the data has a time axis).
    temporal: TemporalConfig | None = None
    # Weight of this modality's auxiliary reconstruction (multiplies loss.reconstruction_weight).
    reconstruction_weight: float = Field(default=1.0, ge=0.0)


class LossConfig(_Strict):
    """The contrastive objective."""

    # "multi_positive" (one softmax over every view) or "pairwise" (CLIP over stream pairs).
    kind: Literal["multi_positive", "pairwise"] = "multi_positive"
    # Softmax temperature tau (initial value when learnable).
    temperature: float = Field(default=0.1, gt=0.01, le=1.0)
    # Learn tau as log(1/tau), clamped to tau >= 0.01.
    learnable_temperature: bool = False
    # Intra-modal InfoNCE term between augmented views of one sensor (needs views.count >= 2).
    intra_modal_weight: float = Field(default=0.0, ge=0.0)
    # Auxiliary head predicting each sensor's per-band input means from its features, to keep
    # sensor-specific information (0 disables).
    reconstruction_weight: float = Field(default=0.0, ge=0.0)


class ViewsConfig(_Strict):
    """Artificial augmentations: augmented copies of each sample become positives too."""

    # Views per location and modality; 1 trains without artificial augmentations.
    count: int = Field(default=1, ge=1, le=8)
    # Random flips of image views.
    flips: bool = True
    # Random 90-degree rotations of image views (square windows only).
    rotations: bool = True
    # Standard deviation of a per-band multiplicative gain (1 + g * N(0, 1)).
    gain_std: float = Field(default=0.05, ge=0.0)
    # Standard deviation of additive Gaussian noise, in normalised units.
    noise_std: float = Field(default=0.05, ge=0.0)


class OptimConfig(_Strict):
    """AdamW with linear warm-up and cosine decay."""

    # Peak learning rate.
    lr: float = Field(default=1e-3, gt=0.0)
    # Decoupled weight decay.
    weight_decay: float = Field(default=1e-4, ge=0.0)
    # Optimizer steps of linear warm-up.
    warmup_steps: int = Field(default=0, ge=0)
    # "cosine" decay to 0 over the run, or "constant" after warm-up.
    schedule: Literal["cosine", "constant"] = "cosine"


class HoustonDataConfig(_Strict):
    """Houston 2013 HSI (144 bands) + LiDAR (21 features) pixel pairs."""

    # Selects this data source.
    kind: Literal["houston2013"] = "houston2013"
    # Folder holding HSI_TrSet.mat, LiDAR_TrSet.mat, TrLabel.mat; default: $GEOALIGN_DATA
    # (or ../shared/data beside the repository) / houston2013.
    path: Path | None = None
    # Fraction of the pairs held out (never trained on) for retrieval validation.
    holdout_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)
    # Seed of the train/held-out split.
    split_seed: int = 0
    # Land-cover classes (1-15) whose pixels serve only as negatives.
    negatives_only_classes: list[Annotated[int, Field(ge=1, le=15)]] = Field(default_factory=list)
    # Locations per batch and process.
    batch_size: int = Field(default=256, ge=2)
    # DataLoader worker processes (0: load in the main process; pixel vectors are in memory).
    num_workers: int = Field(default=0, ge=0)


class ArrayDataConfig(_Strict):
    """In-memory samples from a ``.npz`` file: one array per modality, one row per location.

    Array shapes: ``[P, C]`` per-pixel vectors, ``[P, S, C]`` series of vectors, ``[P, C, H, W]``
    image windows, ``[P, S, C, H, W]`` series of windows. ``geoalign evaluate`` writes such a
    file from a downstream task's training inputs (labels never stored) to pretrain on them.
    """

    # Selects this data source.
    kind: Literal["arrays"] = "arrays"
    # The .npz file (modality name -> array); relative to the YAML file.
    path: Path
    # Fraction of the locations held out (never trained on) for retrieval validation.
    holdout_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    # Seed of the train/held-out split.
    split_seed: int = 0
    # Locations per batch and process.
    batch_size: int = Field(default=256, ge=2)
    # DataLoader worker processes (0: load in the main process; arrays are in memory).
    num_workers: int = Field(default=0, ge=0)


class CubeDataConfig(_Strict):
    """Windows of an aligned cube (geoalign.datasets), one entry per modality."""

    # Selects this data source.
    kind: Literal["cube"] = "cube"
    # A finished cube (Zarr store); relative to the YAML file.
    path: Path
    # Window edge in pixels of the sampling grid (the LCM of the modalities' resolutions).
    window: int = Field(default=32, gt=0)
    # Locations per batch and process (distinct, non-overlapping places).
    batch_size: int = Field(default=32, ge=2)
    # Edge of a place in sampling-grid pixels (>= window; default twice the window): a batch
    # takes at most one window per place.
    place_size: int | None = Field(default=None, gt=0)
    # Training batches per epoch (an epoch is also the checkpoint interval).
    batches_per_epoch: int = Field(default=50, gt=0)
    # Fraction of the footprint (a southern strip) held out for validation windows.
    val_fraction: float = Field(default=0.2, ge=0.0, lt=1.0)
    # Minimum fraction of valid pixels in every modality of a window.
    min_valid: float = Field(default=0.5, ge=0.0, le=1.0)
    # Standardise bands with the statistics stored in the cube (compute_band_stats).
    normalize: bool = True
    # With normalize: compute and store the statistics of modalities that have none yet.
    compute_stats: bool = True
    # Dates per sample of time-series modalities (modality -> number, padded when fewer).
    dates: dict[str, Annotated[int, Field(gt=0)]] = Field(default_factory=dict)
    # Geometric augmentation in the dataset: None, "shared" (registered) or "independent".
    augment: Literal["shared", "independent"] | None = None
    # DataLoader worker processes.
    num_workers: int = Field(default=2, ge=0)


class TrainerConfig(_Strict):
    """Lightning trainer settings."""

    # Training epochs.
    max_epochs: int = Field(default=20, gt=0)
    # Stop after this many optimizer steps (-1: no limit).
    max_steps: int = -1
    # "auto", "cpu" or "gpu".
    accelerator: str = "auto"
    # Devices (processes) to use, or "auto".
    devices: int | Literal["auto"] = "auto"
    # "auto", "ddp", "ddp_spawn"...; with several devices negatives come from the global batch.
    strategy: str = "auto"
    # "auto" (bf16-mixed on a GPU that has it, else 32-true), "32-true", "bf16-mixed"...
    precision: str = "auto"
    # Batches whose gradients add up before a step (negatives stay within one batch).
    accumulate_grad_batches: int = Field(default=1, gt=0)
    # Gradient norm clipping (None: off).
    gradient_clip_val: float | None = Field(default=None, gt=0.0)
    # Convert BatchNorm layers to SyncBatchNorm under DDP.
    sync_batchnorm: bool = False
    # Loggers: "csv" and/or "tensorboard" (needs the tensorboard package).
    loggers: list[LoggerName] = Field(default_factory=_csv_only)
    # Log every n optimizer steps.
    log_every_n_steps: int = Field(default=10, gt=0)
    # Progress bar: "rich", "tqdm" or "none".
    progress_bar: Literal["rich", "tqdm", "none"] = "rich"
    # Save a checkpoint every n epochs (plus last.ckpt); resume is exact from these.
    checkpoint_every_n_epochs: int = Field(default=1, gt=0)
    # Validate every n epochs.
    check_val_every_n_epoch: int = Field(default=1, gt=0)
    # Use deterministic algorithms (slower on GPU).
    deterministic: bool = False
    # Run folder: checkpoints, logs and the resolved config; relative to the YAML file.
    output_dir: Path = Path("runs")


class PretrainConfig(_Strict):
    """A pretraining run."""

    # Run name (a folder below trainer.output_dir).
    name: str = "pretrain"
    # Seed of weights, sampling, views and loaders.
    seed: int = 0
    # Where the samples come from.
    data: Annotated[
        HoustonDataConfig | CubeDataConfig | ArrayDataConfig, Field(discriminator="kind")
    ]
    # Modality name -> its encoder; names are the sample keys (cube groups, "hsi"/"lidar").
    modalities: dict[str, ModalityConfig]
    # Size of the shared embedding space.
    embed_dim: int = Field(default=128, gt=0)
    # Hidden width of the projection heads.
    projection_hidden: int = Field(default=256, gt=0)
    # The contrastive objective.
    loss: LossConfig = Field(default_factory=LossConfig)
    # Artificial augmentations.
    views: ViewsConfig = Field(default_factory=ViewsConfig)
    # Optimizer and schedule.
    optim: OptimConfig = Field(default_factory=OptimConfig)
    # Lightning trainer.
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)

    @model_validator(mode="after")
    def _consistent(self) -> PretrainConfig:
        if self.views.count * len(self.modalities) < 2:
            raise ValueError(
                "one modality with views.count = 1 has no positive pair: add a modality or "
                "set views.count >= 2"
            )
        if self.loss.intra_modal_weight > 0 and self.views.count < 2:
            raise ValueError("loss.intra_modal_weight > 0 needs views.count >= 2")
        if isinstance(self.data, HoustonDataConfig) and set(self.modalities) - {"hsi", "lidar"}:
            raise ValueError(
                f"houston2013 has the modalities 'hsi' and 'lidar', not {sorted(self.modalities)}"
            )
        return self

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> PretrainConfig:
        """Read, validate and resolve a YAML config (paths relative to its folder).

        Raises:
            DataFileNotFoundError: The file does not exist.
            InvalidInputError: The YAML is malformed or a field is invalid (all problems listed).
        """
        file = Path(path)
        raw = read_yaml_mapping(file, "pretraining config", "data:, modalities:, ...")
        return cls.from_dict(raw, base=file.parent, source=file)

    @classmethod
    def from_dict(
        cls, raw: dict[str, Any], *, base: Path | None = None, source: Path | None = None
    ) -> PretrainConfig:
        """Validate a config mapping; relative paths are resolved against ``base``.

        ``source`` is the YAML file the mapping was read from, if any (messages then give the
        line of each problem).

        Raises:
            InvalidInputError: A field is invalid (every problem is listed with its location).
        """
        try:
            config = cls.model_validate(raw)
        except ValidationError as error:
            raise invalid("pretraining config", error, cls, source) from None
        return config.resolved(base) if base is not None else config

    def resolved(self, base: Path) -> PretrainConfig:
        """A copy whose relative paths are made absolute against ``base``."""

        def fix(value: Path | None) -> Path | None:
            return None if value is None or value.is_absolute() else (base / value).resolve()

        data = self.data
        if data.path is not None and not data.path.is_absolute():
            data = data.model_copy(update={"path": fix(data.path)})
        modalities = {}
        for name, modality in self.modalities.items():
            weights = modality.encoder.weights
            if weights is not None and not weights.is_absolute():
                encoder = modality.encoder.model_copy(update={"weights": fix(weights)})
                modality = modality.model_copy(update={"encoder": encoder})
            modalities[name] = modality
        trainer = self.trainer
        if not trainer.output_dir.is_absolute():
            trainer = trainer.model_copy(update={"output_dir": fix(trainer.output_dir)})
        return self.model_copy(update={"data": data, "modalities": modalities, "trainer": trainer})

    def to_yaml(self) -> str:
        """The config as YAML (what a run saves beside its checkpoints)."""
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
