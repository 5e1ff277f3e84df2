"""Embeddings of batches of windows: dense maps on the output grid, and one vector per window.

Both products L2-normalise every embedding. Fusion across modalities: ``concat`` (unit vectors
of every modality side by side, divided by ``sqrt(M)`` so the result is a unit vector of
``M * D`` values), ``mean`` (the mean of the unit vectors, normalised again) or ``none`` (one
output per modality).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from geoalign.errors import InvalidInputError
from geoalign.models.dense import backbone_map, dense_embedding
from geoalign.models.embed_inputs import ModalityInput
from geoalign.models.encoders import ModalityEncoder

Fusion = Literal["concat", "mean", "none"]
FUSIONS: tuple[str, ...] = ("concat", "mean", "none")
#: A modality's windows: ``x`` [N, (S,) C, H, W], ``valid`` [N, H, W], ``time_valid`` and
#: ``dates`` [N, S] (series) or None.
Batch = tuple[Tensor, Tensor, Tensor | None, Tensor | None]


def read_batch(source: ModalityInput, bounds: Sequence[Sequence[float]]) -> Batch:
    """Stack the windows ``bounds`` (CRS) of one modality into tensors."""
    parts = [source.read(b) for b in bounds]
    x = torch.from_numpy(np.stack([p[0] for p in parts]))
    valid = torch.from_numpy(np.stack([p[1] for p in parts]))
    if parts[0][2] is None:
        return x, valid, None, None
    time_valid = torch.from_numpy(np.stack([p[2] for p in parts]))  # type: ignore[misc]
    dates = torch.from_numpy(np.stack([p[3] for p in parts]))  # type: ignore[misc]
    return x, valid, time_valid, dates


def resample_map(values: Tensor, size: int, margin: int = 0) -> Tensor:
    """``[N, D, h, h]`` cells of a window of ``size`` output pixels -> its core, resampled.

    Bilinear upsampling, block averaging, or as is, to ``size`` pixels, of which the centre
    ``size - 2 * margin`` are returned. Only the cells the core needs are resampled (plus one
    on each side for the bilinear kernel): the same values as resampling the whole window,
    without its memory.
    """
    cells = int(values.shape[-1])
    core = size - 2 * margin
    if cells == size:
        return values[..., margin : size - margin, margin : size - margin]
    if size > cells:
        if size % cells:
            raise InvalidInputError(f"cannot upsample {cells} cells to {size} pixels evenly")
        ratio = size // cells
        first = max(0, margin // ratio - 1)
        last = min(cells, -(-(size - margin) // ratio) + 1)
        part = values[..., first:last, first:last]
        up = F.interpolate(part, scale_factor=ratio, mode="bilinear", align_corners=False)
        offset = margin - first * ratio
        return up[..., offset : offset + core, offset : offset + core]
    if cells % size:
        raise InvalidInputError(f"cannot average {cells} cells to {size} pixels evenly")
    factor = cells // size
    part = values[
        ..., margin * factor : (size - margin) * factor, margin * factor : (size - margin) * factor
    ]
    return F.avg_pool2d(part, factor)


def resample_valid(valid: Tensor, size: int) -> Tensor:
    """Validity ``[N, H, W]`` on ``size x size`` pixels: nearest up, at least half valid down."""
    cells = int(valid.shape[-1])
    as_float = valid.float()[:, None]
    if size >= cells:
        return F.interpolate(as_float, size=(size, size), mode="nearest")[:, 0] > 0.5
    return F.avg_pool2d(as_float, cells // size)[:, 0] >= 0.5


def fuse(per_modality: Mapping[str, Tensor], fusion: Fusion) -> dict[str, Tensor]:
    """Unit embeddings ``[N, D, ...]`` per modality -> the output streams (see module doc)."""
    if fusion == "none":
        return dict(per_modality)
    stacked = list(per_modality.values())
    if fusion == "concat":
        return {"": torch.cat(stacked, dim=1) / math.sqrt(len(stacked))}
    if fusion == "mean":
        return {"": F.normalize(torch.stack(stacked).mean(dim=0), dim=1)}
    raise InvalidInputError(f"fusion={fusion!r}: use one of {FUSIONS}")


def fuse_valid(per_modality: Mapping[str, Tensor], fusion: Fusion) -> dict[str, Tensor]:
    """Validity of each output stream: every fused modality valid."""
    if fusion == "none":
        return dict(per_modality)
    masks = list(per_modality.values())
    out = masks[0]
    for mask in masks[1:]:
        out = out & mask
    return {"": out}


@torch.no_grad()
def dense_batch(
    encoders: Mapping[str, ModalityEncoder],
    batches: Mapping[str, Batch],
    size: int,
    fusion: Fusion,
    device: torch.device,
    margin: int = 0,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Dense unit embeddings of the cores of windows of ``size x size`` output pixels.

    Returns:
        Stream -> ``[N, B, c, c]`` float32 (CPU) with ``c = size - 2 * margin``, and stream ->
        validity ``[N, c, c]`` bool.
    """
    core = slice(margin, size - margin)
    maps: dict[str, Tensor] = {}
    valid: dict[str, Tensor] = {}
    for name, (x, mask, time_valid, dates) in batches.items():
        encoder = encoders[name]
        out = dense_embedding(
            encoder,
            x.to(device),
            None if time_valid is None else time_valid.to(device),
            None if dates is None else dates.to(device),
        )
        maps[name] = F.normalize(resample_map(out.float(), size, margin), dim=1).cpu()
        valid[name] = resample_valid(mask, size)[:, core, core]
    return fuse(maps, fusion), fuse_valid(valid, fusion)


def split_windows(x: Tensor, k: int) -> Tensor:
    """A tile ``[..., k * h, k * w]`` cut into ``k * k`` windows ``[k * k, ..., h, w]`` (rows)."""
    lead = x.shape[:-2]
    h, w = int(x.shape[-2]) // k, int(x.shape[-1]) // k
    parts = x.reshape(*lead, k, h, k, w)
    order = (len(lead), len(lead) + 2, *range(len(lead)), len(lead) + 1, len(lead) + 3)
    return parts.permute(order).reshape(k * k, *lead, h, w)


@torch.no_grad()
def window_batch(
    encoders: Mapping[str, ModalityEncoder],
    batches: Mapping[str, Batch],
    k: int,
    fusion: Fusion,
    device: torch.device,
) -> tuple[dict[str, Tensor], Tensor]:
    """One unit embedding per window of each tile (``k x k`` windows per tile).

    Args:
        batches: Modality -> tiles (a batch of ``N`` tiles, each ``k`` windows on a side).

    Returns:
        Stream -> ``[N, B, k, k]`` float32 (CPU), and the smallest valid fraction over the
        modalities of each window ``[N, k, k]``.
    """
    vectors: dict[str, Tensor] = {}
    fractions: list[Tensor] = []
    for name, (x, mask, time_valid, dates) in batches.items():
        encoder = encoders[name]
        n = int(x.shape[0])
        windows = torch.cat([split_windows(tile, k) for tile in x])  # [N * k * k, ...]
        frac = torch.stack([split_windows(m.float(), k).mean(dim=(-2, -1)) for m in mask])
        fractions.append(frac.reshape(n, k, k))

        def per_window(values: Tensor | None) -> Tensor | None:
            return None if values is None else values.repeat_interleave(k * k, dim=0).to(device)

        if encoder.spec.spatial:
            out = encoder(windows.to(device), per_window(time_valid), per_window(dates))
            embedding = out.embedding
        else:  # per-pixel encoders: the projection of the window's mean features
            features = backbone_map(encoder, windows.to(device)).mean(dim=(-2, -1))
            embedding = encoder.projection(features)
        unit = F.normalize(embedding.float(), dim=-1).cpu()  # [N * k * k, D]
        vectors[name] = unit.reshape(n, k, k, -1).permute(0, 3, 1, 2)
    fraction = torch.stack(fractions).amin(dim=0)
    return fuse(vectors, fusion), fraction
