"""Encoders for downstream use, and frozen features of any subset of modalities.

    encoders = load_encoders("runs/x/checkpoints/last.ckpt")     # pretrained
    encoders = random_encoders(pretrain_config, task.specs(), seed=0)   # random init
    z = extract_features(encoders, task.test, ["lidar"], fusion="concat")   # [N, F]
    maps = feature_maps(encoders["s1"], x)                        # [N, F, h, w]

Features are the backbone's (pooled over dates), before the projection head, as in linear
evaluation protocols (SimCLR, Berg et al.). Fusion of several modalities: ``concat`` (features
side by side, ``[N, sum F_m]``) or ``mean`` (average of the L2-normalised features of the
modalities; all must have one width).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoalign.errors import DataFileNotFoundError, InvalidInputError
from geoalign.models.backbones import AlexNetBackbone, MLPBackbone
from geoalign.models.config import PretrainConfig
from geoalign.models.encoders import ModalityEncoder, ModalitySpec
from geoalign.models.pretrain import ContrastivePretraining

Fusion = Literal["concat", "mean"]


def load_encoders(checkpoint: str | Path) -> dict[str, ModalityEncoder]:
    """The encoders of a :class:`ContrastivePretraining` checkpoint (CPU, eval mode).

    Raises:
        DataFileNotFoundError: The checkpoint does not exist.
    """
    path = Path(checkpoint)
    if not path.is_file():
        raise DataFileNotFoundError(f"pretraining checkpoint {path} not found")
    task = ContrastivePretraining.load_from_checkpoint(path, map_location="cpu")
    return {name: task.encoder(name).eval() for name in task.modality_names}


def random_encoders(
    config: PretrainConfig, specs: Mapping[str, ModalitySpec], *, seed: int
) -> dict[str, ModalityEncoder]:
    """Encoders of ``config``'s architecture with seeded random weights (no training).

    Only the modalities present in both ``config`` and ``specs`` are built.
    """
    names = [name for name in config.modalities if name in specs]
    if not names:
        raise InvalidInputError(
            f"the pretraining config's modalities {list(config.modalities)} are not in the "
            f"task ({sorted(specs)})"
        )
    subset = config.model_copy(
        update={"modalities": {n: config.modalities[n] for n in names}, "views": config.views}
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        task = _build_task(subset, {n: specs[n] for n in names})
    return {name: task.encoder(name).eval() for name in names}


def _build_task(
    config: PretrainConfig, specs: Mapping[str, ModalitySpec]
) -> ContrastivePretraining:
    # a single modality with one view is refused by PretrainConfig (no positive pair), but its
    # encoder architecture is still well defined: build it with two views
    if config.views.count * len(config.modalities) < 2:
        config = config.model_copy(update={"views": config.views.model_copy(update={"count": 2})})
    return ContrastivePretraining(config, dict(specs))


def copy_encoders(encoders: Mapping[str, ModalityEncoder]) -> dict[str, ModalityEncoder]:
    """Independent copies (finetuning never changes the cached originals)."""
    return {name: copy.deepcopy(encoder) for name, encoder in encoders.items()}


def _batches(count: int, batch_size: int) -> list[slice]:
    return [slice(i, min(i + batch_size, count)) for i in range(0, count, batch_size)]


@torch.no_grad()
def extract_features(
    encoders: Mapping[str, ModalityEncoder],
    inputs: Mapping[str, np.ndarray],
    modalities: Sequence[str],
    *,
    fusion: Fusion = "concat",
    batch_size: int = 1024,
) -> Tensor:
    """Frozen backbone features of ``modalities``, fused: ``[N, F]`` float32.

    Raises:
        InvalidInputError: A modality without encoder or inputs; ``mean`` fusion of features
            of different widths.
    """
    parts = []
    for name in modalities:
        if name not in encoders:
            raise InvalidInputError(f"no encoder for modality {name!r} (have {sorted(encoders)})")
        if name not in inputs:
            raise InvalidInputError(f"no inputs for modality {name!r} (have {sorted(inputs)})")
        encoder = encoders[name].eval()
        x = torch.from_numpy(np.ascontiguousarray(inputs[name]))
        chunks = [encoder.features(x[part]).float() for part in _batches(len(x), batch_size)]
        parts.append(torch.cat(chunks) if chunks else torch.zeros(0, encoder.out_features))
    return fuse(parts, fusion)


def fuse(parts: Sequence[Tensor], fusion: Fusion) -> Tensor:
    """Fuse per-modality features ``[N, F_m]`` (or maps ``[N, F_m, h, w]``) along axis 1."""
    if len(parts) == 1:
        return parts[0]
    if fusion == "concat":
        return torch.cat(list(parts), dim=1)
    widths = {int(p.shape[1]) for p in parts}
    if len(widths) > 1:
        raise InvalidInputError(
            f"mean fusion needs features of one width, got {sorted(widths)}: use fusion: concat"
        )
    return torch.stack([F.normalize(p, dim=1) for p in parts]).mean(0)


def feature_maps(encoder: ModalityEncoder, x: Tensor) -> Tensor:
    """Spatial backbone features ``[N, F, h, w]`` of image windows ``[N, C, H, W]``.

    Supported: the AlexNet-style backbone (before its global pooling), torchvision ResNets
    (after ``layer4``), timm models (``forward_features``), and the MLP applied to every pixel
    (``h, w = H, W``). Time series are not supported here (pool dates first).

    Raises:
        InvalidInputError: A time-series or vector modality, or an unsupported backbone.
    """
    spec = encoder.spec
    if not spec.spatial or spec.series:
        raise InvalidInputError(
            "segmentation needs image windows [N, C, H, W] of a single date (the modality is "
            f"{'a time series' if spec.series else 'per-pixel vectors'})"
        )
    if encoder.front_end is not None:
        x = encoder.front_end(x)
    backbone = encoder.backbone
    if isinstance(backbone, AlexNetBackbone):
        layers = backbone.features
        out: Tensor = layers[:-1](x)  # drop AdaptiveAvgPool2d
        return out
    if isinstance(backbone, MLPBackbone):
        n, c, h, w = x.shape
        flat: Tensor = backbone(x.permute(0, 2, 3, 1).reshape(n * h * w, c))
        return flat.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    model = getattr(backbone, "model", None)
    if model is not None and hasattr(model, "forward_features"):
        maps: Tensor = model.forward_features(x)
        return maps
    if model is not None and hasattr(model, "layer4"):
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        maps = model.layer4(model.layer3(model.layer2(model.layer1(y))))
        return maps
    raise InvalidInputError(
        f"cannot take feature maps from a {type(backbone).__name__} backbone: use alexnet, "
        "resnet18/50, timm or mlp encoders for segmentation"
    )


def fused_feature_maps(
    encoders: Mapping[str, nn.Module] | nn.ModuleDict,
    batch: Mapping[str, Tensor],
    modalities: Sequence[str],
    fusion: Fusion,
) -> Tensor:
    """Feature maps of several modalities resized to the largest one and fused."""
    maps = []
    for name in modalities:
        encoder = encoders[name]
        if not isinstance(encoder, ModalityEncoder):
            raise InvalidInputError(f"no encoder for modality {name!r}")
        maps.append(feature_maps(encoder, batch[name]))
    size = max((m.shape[-2], m.shape[-1]) for m in maps)
    maps = [
        m if (m.shape[-2], m.shape[-1]) == size else F.interpolate(m, size=size, mode="bilinear")
        for m in maps
    ]
    return fuse(maps, fusion)


@torch.no_grad()
def extract_feature_maps(
    encoders: Mapping[str, ModalityEncoder],
    inputs: Mapping[str, np.ndarray],
    modalities: Sequence[str],
    *,
    fusion: Fusion = "concat",
    batch_size: int = 64,
) -> Tensor:
    """Frozen fused feature maps ``[N, F, h, w]`` of image windows (see :func:`feature_maps`)."""
    for encoder in encoders.values():
        encoder.eval()
    n = next(iter(inputs.values())).shape[0]
    chunks = []
    for part in _batches(n, batch_size):
        batch = {m: torch.from_numpy(np.ascontiguousarray(inputs[m][part])) for m in modalities}
        chunks.append(fused_feature_maps(encoders, batch, modalities, fusion).float())
    return torch.cat(chunks)


class FrozenFeatures:
    """Frozen features of a task's whole training and test parts, computed once per subset.

    Label regimes and seeds select rows of the same features, so one encoder set is run over
    the data once per modality subset (features of vectors and series, feature maps of image
    windows).

    Args:
        encoders: Modality -> frozen encoder.
        train: Modality -> all training inputs.
        test: Modality -> all test inputs.
        fusion: How modalities combine.
    """

    def __init__(
        self,
        encoders: Mapping[str, ModalityEncoder],
        train: Mapping[str, np.ndarray],
        test: Mapping[str, np.ndarray],
        fusion: Fusion = "concat",
    ) -> None:
        self.encoders = encoders
        self.parts = {"train": train, "test": test}
        self.fusion: Fusion = fusion
        self._cache: dict[tuple[str, tuple[str, ...], bool], Tensor] = {}

    def get(
        self, part: Literal["train", "test"], modalities: Sequence[str], *, maps: bool
    ) -> Tensor:
        """``[N, F]`` features (``maps=False``) or ``[N, F, h, w]`` maps of a whole part."""
        key = (part, tuple(modalities), maps)
        if key not in self._cache:
            extract = extract_feature_maps if maps else extract_features
            self._cache[key] = extract(
                self.encoders, self.parts[part], list(modalities), fusion=self.fusion
            )
        return self._cache[key]
