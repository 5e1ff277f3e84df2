"""One encoder per sensor: backbone (+ spectral front end, + date pooling) and projection head.

    spec = ModalitySpec(channels=144, spatial=False)                  # HSI pixel vectors
    encoder = build_encoder(spec, EncoderConfig(kind="mlp", spectral_features=32), embed_dim=128)
    out = encoder(x)            # x [N, 144] -> out.features [N, F], out.embedding [N, 128]

Input shapes by :class:`ModalitySpec`: vectors ``[N, C]``, images ``[N, C, H, W]``, series of
either with a date axis after ``N`` (``[N, S, C]``, ``[N, S, C, H, W]``) plus ``time_valid``
``[N, S]`` and ``dates`` ``[N, S]`` (seconds since 1970), as geoalign.datasets samples have them.
``features`` (the backbone's, pooled over dates) is the representation for downstream tasks;
``embedding`` lives in the space shared by every sensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor, nn

from geoalign.errors import InvalidInputError
from geoalign.models.backbones import (
    AlexNetBackbone,
    MLPBackbone,
    SpectralFrontEnd,
    out_width,
    timm_backbone,
    torchvision_resnet,
)
from geoalign.models.config import EncoderConfig, TemporalConfig
from geoalign.models.temporal import TemporalAttentionPooling
from geoalign.models.weights import load_backbone_weights


@dataclass(frozen=True)
class ModalitySpec:
    """What one modality's samples look like.

    Attributes:
        channels: Bands or features ``C``.
        spatial: Image windows ``[..., C, H, W]`` (True) or per-pixel vectors ``[..., C]``.
        series: A date axis after the batch axis (``[N, S, ...]``).
    """

    channels: int
    spatial: bool = True
    series: bool = False

    @property
    def ndim(self) -> int:
        """Dimensions of a batch of this modality."""
        return 2 + (2 if self.spatial else 0) + (1 if self.series else 0)


class EncoderOutput(NamedTuple):
    """What an encoder returns for a batch.

    Attributes:
        features: ``[N, F]`` backbone features (pooled over dates).
        embedding: ``[N, D]`` projection into the shared space (not normalised).
        reconstruction: ``[N, C]`` predicted per-band input means, or None without that head.
    """

    features: Tensor
    embedding: Tensor
    reconstruction: Tensor | None


class ProjectionHead(nn.Module):
    """Linear -> GELU -> Linear to the shared embedding size.

    SimCLR's head without BatchNorm, so that the embeddings of a sample never depend on the
    rest of its batch (and DDP gives the single-process result).

    Args:
        in_features: Backbone width ``F``.
        hidden: Hidden width.
        out_features: Embedding size ``D``.
    """

    def __init__(self, in_features: int, hidden: int, out_features: int) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, out_features)
        )

    def forward(self, x: Tensor) -> Tensor:
        """``[N, F]`` -> ``[N, D]``."""
        out: Tensor = self.layers(x)
        return out


class ModalityEncoder(nn.Module):
    """Backbone, optional spectral front end and date pooling, projection and reconstruction.

    Args:
        spec: Shape of the modality's samples.
        backbone: Per-image (or per-vector) module with ``out_features``.
        embed_dim: Shared embedding size ``D``.
        projection_hidden: Hidden width of the projection head.
        front_end: Spectral front end applied before the backbone.
        temporal: Date pooling (required when ``spec.series``).
        reconstruct: Add the auxiliary head predicting per-band input means.
        dropout: Dropout on the features before the heads.
    """

    def __init__(
        self,
        spec: ModalitySpec,
        backbone: nn.Module,
        *,
        embed_dim: int,
        projection_hidden: int,
        front_end: nn.Module | None = None,
        temporal: TemporalAttentionPooling | None = None,
        reconstruct: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if spec.series and temporal is None:
            raise InvalidInputError(
                "this modality is a time series: give its encoder a temporal: section (date "
                "pooling), or select one date per sample in the data"
            )
        self.spec = spec
        self.front_end = front_end
        self.backbone = backbone
        self.temporal = temporal
        width = out_width(temporal if temporal is not None else backbone)
        self.out_features = width
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.projection = ProjectionHead(width, projection_hidden, embed_dim)
        self.reconstruction = nn.Linear(width, spec.channels) if reconstruct else None

    def _check(self, x: Tensor) -> None:
        spec = self.spec
        channel_axis = 2 if spec.series else 1
        if x.ndim != spec.ndim or x.shape[channel_axis] != spec.channels:
            kind = ("series of " if spec.series else "") + ("images" if spec.spatial else "vectors")
            raise InvalidInputError(
                f"encoder for {spec.channels}-band {kind} got a batch of shape {tuple(x.shape)}: "
                "check the modality's bands and time selection against the config"
            )

    def features(
        self, x: Tensor, time_valid: Tensor | None = None, dates: Tensor | None = None
    ) -> Tensor:
        """Backbone features ``[N, F]`` of a batch (shapes in the module docstring)."""
        self._check(x)
        if not self.spec.series:
            return self._per_image(x)
        if self.temporal is None:
            raise InvalidInputError("a time-series encoder needs date pooling (temporal:)")
        n, s = int(x.shape[0]), int(x.shape[1])
        per_date = self._per_image(x.reshape(n * s, *x.shape[2:])).reshape(n, s, -1)
        pooled: Tensor = self.temporal(per_date, time_valid, dates)
        return pooled

    def _per_image(self, x: Tensor) -> Tensor:
        if self.front_end is not None:
            x = self.front_end(x)
        out: Tensor = self.backbone(x)
        return out

    def forward(
        self, x: Tensor, time_valid: Tensor | None = None, dates: Tensor | None = None
    ) -> EncoderOutput:
        """Features, shared-space embedding and (optional) reconstruction of a batch."""
        features = self.features(x, time_valid, dates)
        hidden = self.dropout(features)
        embedding = self.projection(hidden)
        reconstruction = self.reconstruction(hidden) if self.reconstruction is not None else None
        return EncoderOutput(features, embedding, reconstruction)

    def reconstruction_target(self, x: Tensor, time_valid: Tensor | None = None) -> Tensor:
        """Per-band mean of the input over pixels (and valid dates): ``[N, C]``."""
        self._check(x)
        values = x.float()
        if self.spec.spatial:
            values = values.mean(dim=(-2, -1))  # [N, (S,) C]
        if not self.spec.series:
            return values
        if time_valid is None:
            return values.mean(dim=1)
        weights = time_valid.to(values.dtype)[..., None]  # [N, S, 1]
        return (values * weights).sum(1) / weights.sum(1).clamp(min=1.0)


def build_backbone(kind: str, in_channels: int, config: EncoderConfig) -> nn.Module:
    """The backbone named by ``kind`` for ``in_channels`` inputs (see :class:`EncoderConfig`)."""
    if kind == "mlp":
        return MLPBackbone(in_channels, list(config.hidden))
    if kind == "alexnet":
        return AlexNetBackbone(in_channels, small_input=config.small_input)
    if kind in ("resnet18", "resnet50"):
        return torchvision_resnet(kind, in_channels, small_input=config.small_input)
    if kind.startswith("timm:"):
        return timm_backbone(kind.removeprefix("timm:"), in_channels)
    raise InvalidInputError(f"unknown encoder kind {kind!r}")


def build_encoder(
    spec: ModalitySpec,
    config: EncoderConfig,
    *,
    embed_dim: int,
    projection_hidden: int = 256,
    temporal: TemporalConfig | None = None,
    reconstruct: bool = False,
) -> ModalityEncoder:
    """Build one modality's encoder from its config; loads local weights when given.

    Raises:
        InvalidInputError: A CNN for vectors, an MLP for images, a series without date pooling,
            or weights that do not fit.
    """
    if config.kind == "mlp" and spec.spatial:
        raise InvalidInputError(
            "the mlp encoder takes per-pixel vectors: use alexnet, resnet18, resnet50 or "
            "timm:<name> for image windows"
        )
    if config.kind != "mlp" and not spec.spatial:
        raise InvalidInputError(
            f"encoder {config.kind!r} takes image windows but this modality has per-pixel "
            "vectors: use kind: mlp"
        )
    front_end = None
    channels = spec.channels
    if config.spectral_features is not None:
        front_end = SpectralFrontEnd(spec.channels, config.spectral_features)
        channels = front_end.out_features
    backbone = build_backbone(config.kind, channels, config)
    if config.weights is not None:
        load_backbone_weights(backbone, config.weights, prefix=config.weights_prefix)
    pooling = None
    if spec.series:
        if temporal is None:
            raise InvalidInputError(
                "this modality is a time series: add a temporal: section to its config"
            )
        pooling = TemporalAttentionPooling(
            out_width(backbone), temporal.d_model, temporal.heads, temporal.max_period_days
        )
    return ModalityEncoder(
        spec,
        backbone,
        embed_dim=embed_dim,
        projection_hidden=projection_hidden,
        front_end=front_end,
        temporal=pooling,
        reconstruct=reconstruct,
        dropout=config.dropout,
    )
