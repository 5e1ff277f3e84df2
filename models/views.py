"""Artificial augmentations on batch tensors: ``T`` augmented views of every sample.

With ``views.count == 1`` samples are used as they are (training without artificial
augmentations: the positives are the other sensors only). With ``T >= 2`` every view gets its
own random draw: a dihedral transform (flips, quarter turns) for image windows, a per-band gain
and additive Gaussian noise for every modality. Draws come from a generator seeded by the
caller (run seed, epoch, batch, process, modality), so a resumed run repeats them exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geoalign.models.config import ViewsConfig
from geoalign.models.encoders import ModalitySpec


def view_generator(device: torch.device, *keys: int) -> torch.Generator:
    """A generator on ``device`` seeded by integer ``keys`` (e.g. seed, epoch, batch, rank)."""
    state = 0
    for key in keys:
        state = (state * 1_000_003 + int(key) + 1) % (2**61 - 1)
    return torch.Generator(device=device).manual_seed(state)


def _dihedral(x: Tensor, code: Tensor) -> Tensor:
    """Apply dihedral transform ``code[i]`` (0-7: quarter turns + 4 * flip) to sample ``i``."""
    out = x.clone()
    for k in torch.unique(code).tolist():
        index = (code == k).nonzero().squeeze(1)
        part = x[index]
        if k >= 4:
            part = torch.flip(part, dims=(-1,))
        if k % 4:
            part = torch.rot90(part, k % 4, dims=(-2, -1))
        out[index] = part
    return out


def augment(
    x: Tensor, spec: ModalitySpec, config: ViewsConfig, generator: torch.Generator
) -> Tensor:
    """One augmented view of a batch (shapes as :class:`~geoalign.models.ModalitySpec` says).

    Args:
        x: ``[N, ...]`` batch of one modality.
        spec: Its shape description.
        config: Which augmentations, how strong.
        generator: Random source, on ``x``'s device.

    Returns:
        A tensor shaped like ``x``.
    """
    n = x.shape[0]
    out = x
    if spec.spatial and (config.flips or config.rotations):
        square = x.shape[-1] == x.shape[-2]
        turns = torch.randint(4, (n,), generator=generator, device=x.device)
        if not config.rotations:
            turns = torch.zeros_like(turns)
        elif not square:
            turns = (turns // 2) * 2  # 0 or 180 degrees keep the shape
        flips = torch.randint(2, (n,), generator=generator, device=x.device)
        if not config.flips:
            flips = torch.zeros_like(flips)
        out = _dihedral(out, turns + 4 * flips)
    channel_axis = 2 if spec.series else 1
    if config.gain_std > 0:
        shape = [n] + [1] * (x.ndim - 1)
        shape[channel_axis] = x.shape[channel_axis]
        gain = 1.0 + config.gain_std * torch.randn(
            shape, generator=generator, device=x.device, dtype=x.dtype
        )
        out = out * gain
    if config.noise_std > 0:
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        out = out + config.noise_std * noise
    return out


def make_views(
    x: Tensor, spec: ModalitySpec, config: ViewsConfig, generator: torch.Generator
) -> Tensor:
    """``T = config.count`` views of a batch, view-major: ``[N, ...]`` -> ``[T * N, ...]``.

    With ``T == 1`` the batch is returned unchanged (no artificial augmentation).
    """
    if config.count == 1:
        return x
    return torch.cat([augment(x, spec, config, generator) for _ in range(config.count)])
