"""Dense (per-pixel) embeddings from the encoders of a checkpoint.

    maps = dense_embedding(encoder, x)          # x [N, C, H, W] -> [N, D, H / s, W / s]
    geometry = map_geometry(encoder)            # stride s and context (input pixels) per side

An encoder maps a window to one vector: backbone feature map -> global average -> projection
head. The dense product keeps the backbone's feature map (before the global average) and
applies the projection head at every cell (the head is per-vector, so this is exact), giving
a map of embeddings at the backbone's output stride: 2 for AlexNet with ``small_input``, 8 for
ResNets with ``small_input``, 32 for standard ResNets, 1 for per-pixel MLPs. Time series are
pooled per cell by the encoder's date attention. :func:`map_geometry` measures, by
back-propagation through the real network, how much context on each side of a cell it needs:
windows with at least that margin give the same values as one large window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from geoalign.errors import InvalidInputError
from geoalign.models.backbones import AlexNetBackbone, MLPBackbone
from geoalign.models.encoders import ModalityEncoder

#: Largest probe window (pixels) when measuring the context of a backbone.
MAX_PROBE = 1024
#: Measured geometries by architecture (the geometry does not depend on the weights).
_GEOMETRIES: dict[str, MapGeometry] = {}


def _resnet_map(model: Any, x: Tensor) -> Tensor:
    """A torchvision ResNet up to its last stage: ``[N, C, H, W]`` -> ``[N, F, h, w]``."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    out: Tensor = model.layer4(model.layer3(model.layer2(model.layer1(x))))
    return out


def backbone_map(encoder: ModalityEncoder, x: Tensor) -> Tensor:
    """The backbone's feature map of images ``[N, C, H, W]``: ``[N, F, h, w]``.

    Raises:
        InvalidInputError: The backbone has no spatial feature map (e.g. a vision transformer).
    """
    if encoder.front_end is not None:
        x = encoder.front_end(x)
    backbone = encoder.backbone
    if isinstance(backbone, MLPBackbone):
        n, c, h, w = x.shape
        pixels: Tensor = backbone(x.permute(0, 2, 3, 1).reshape(n * h * w, c))
        return pixels.reshape(n, h, w, -1).permute(0, 3, 1, 2)
    if isinstance(backbone, AlexNetBackbone):
        out: Tensor = backbone.features[:-1](x)  # all but the global average
        return out
    model: Any = getattr(backbone, "model", None)
    if model is not None and all(hasattr(model, a) for a in ("conv1", "layer4", "maxpool")):
        return _resnet_map(model, x)
    if model is not None and hasattr(model, "forward_features"):
        out = model.forward_features(x)
        if isinstance(out, Tensor) and out.ndim == 4:
            return out
    raise InvalidInputError(
        f"the {type(backbone).__name__} backbone has no spatial feature map to embed pixel by "
        "pixel: use the per-window product (product='windows')"
    )


def _project(encoder: ModalityEncoder, features: Tensor) -> Tensor:
    """Projection head at every cell: ``[N, F, h, w]`` -> ``[N, D, h, w]``."""
    n, f, h, w = features.shape
    flat = features.permute(0, 2, 3, 1).reshape(n * h * w, f)
    projected: Tensor = encoder.projection(flat)
    return projected.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def _pool_dates(
    encoder: ModalityEncoder, per_date: Tensor, time_valid: Tensor | None, dates: Tensor | None
) -> Tensor:
    """Date attention per cell: ``[N, S, F, h, w]`` -> ``[N, d, h, w]``."""
    if encoder.temporal is None:
        raise InvalidInputError("a time-series encoder needs date pooling (temporal:)")
    n, s, f, h, w = per_date.shape
    cells = per_date.permute(0, 3, 4, 1, 2).reshape(n * h * w, s, f)

    def per_cell(values: Tensor | None) -> Tensor | None:
        if values is None:
            return None
        return values[:, None, :].expand(n, h * w, s).reshape(n * h * w, s)

    pooled: Tensor = encoder.temporal(cells, per_cell(time_valid), per_cell(dates))
    return pooled.reshape(n, h, w, -1).permute(0, 3, 1, 2)


def dense_embedding(
    encoder: ModalityEncoder,
    x: Tensor,
    time_valid: Tensor | None = None,
    dates: Tensor | None = None,
) -> Tensor:
    """Embedding map (not normalised) of windows: ``[N, D, h, w]`` at the backbone's stride.

    Args:
        encoder: One modality's encoder (eval mode).
        x: ``[N, C, H, W]``, or ``[N, S, C, H, W]`` for a time series.
        time_valid: ``[N, S]`` bool, False for padded dates (series only).
        dates: ``[N, S]`` seconds since 1970 (series only).
    """
    if encoder.spec.series:
        if x.ndim != 5:
            raise InvalidInputError(f"a time-series encoder takes [N, S, C, H, W], got {x.shape}")
        n, s = int(x.shape[0]), int(x.shape[1])
        maps = backbone_map(encoder, x.reshape(n * s, *x.shape[2:]))
        features = _pool_dates(encoder, maps.reshape(n, s, *maps.shape[1:]), time_valid, dates)
    else:
        if x.ndim != 4:
            raise InvalidInputError(f"the encoder takes windows [N, C, H, W], got {x.shape}")
        features = backbone_map(encoder, x)
    return _project(encoder, encoder.dropout(features))


@dataclass(frozen=True)
class MapGeometry:
    """How a backbone's feature map sits on its input.

    Attributes:
        stride: Input pixels per feature cell (along each axis).
        context: Input pixels a cell needs on each side of its own ``stride`` pixels so that
            it does not depend on where the window ends.
    """

    stride: int
    context: int


@torch.no_grad()
def _stride(encoder: ModalityEncoder, channels: int, size: int) -> int:
    out = backbone_map(encoder, torch.zeros(1, channels, size, size))
    if size % int(out.shape[-1]):
        raise InvalidInputError(
            f"the backbone maps {size} pixels to {int(out.shape[-1])} cells: its stride is not "
            "an integer"
        )
    return size // int(out.shape[-1])


def map_geometry(encoder: ModalityEncoder, *, seed: int = 0) -> MapGeometry:
    """Measure a backbone's stride and context (input pixels) on a random probe window.

    The context is read from the gradient of one central cell with respect to the input: the
    extent of the non-zero gradient is the cell's receptive field. The probe grows until the
    field fits inside it (up to :data:`MAX_PROBE` pixels). Results are cached per architecture.
    """
    key = f"{encoder.spec.channels}|{encoder.front_end}|{encoder.backbone}"
    if key not in _GEOMETRIES:
        _GEOMETRIES[key] = _measure(encoder, seed)
    return _GEOMETRIES[key]


def _measure(encoder: ModalityEncoder, seed: int) -> MapGeometry:
    channels = encoder.spec.channels
    generator = torch.Generator().manual_seed(seed)
    size = 128  # ResNet-18 small_input needs 117 px, AlexNet 18 px: one probe for both
    stride = _stride(encoder, channels, size)
    while True:
        probe = torch.randn(1, channels, size, size, generator=generator).requires_grad_(True)
        with torch.enable_grad():
            out = backbone_map(encoder, probe)
            ci, cj = int(out.shape[-2]) // 2, int(out.shape[-1]) // 2
            torch.autograd.backward(out[0, :, ci, cj].sum())
        assert probe.grad is not None  # backward always fills it
        touched = probe.grad.abs().sum(dim=(0, 1)) > 0
        rows = torch.nonzero(touched.any(dim=1)).flatten()
        cols = torch.nonzero(touched.any(dim=0)).flatten()
        reaches_edge = bool(rows[0] == 0 or cols[0] == 0 or rows[-1] == size - 1)
        if not reaches_edge or size >= MAX_PROBE:
            break
        size *= 2
    before = max(ci * stride - int(rows[0]), cj * stride - int(cols[0]))
    after = max(int(rows[-1]) - ((ci + 1) * stride - 1), int(cols[-1]) - ((cj + 1) * stride - 1))
    return MapGeometry(stride=stride, context=max(0, before, after))
