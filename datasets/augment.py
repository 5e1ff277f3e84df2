"""Geometric augmentations that keep multi-resolution modalities registered (or not, on purpose).

    Augmentation()                                   # flips, 90-degree turns, crop 0.9-1, shared
    Augmentation(mode="independent")                 # each modality draws its own
    open_cube_dataset("cube.zarr", augment=Augmentation(crop_scale=None))

``"shared"``: one draw per sample applies to every modality, its validity mask, and the label
layers, so they keep covering the same ground: crops are chosen on the pixel grid of the coarsest
modality of the sample (a 10 m crop edge is a 1 m crop edge too) and every entry is resized back
to its own size. ``"independent"``: each modality draws its own transform (label layers follow
the first modality); useful for contrastive views that must not share geometry.

Images are resized bilinearly when they are floats (decoded values) and with nearest neighbour
otherwise (raw integers, validity masks, class labels). Rotations by 90 or 270 degrees happen
only for square windows, so sample shapes never change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F

from geoalign.datasets.query import Role
from geoalign.errors import InvalidInputError

AugmentMode = Literal["shared", "independent"]


class Draw(NamedTuple):
    """One random draw: flips, quarter turns and a crop in units of the coarsest grid."""

    vflip: bool
    hflip: bool
    quarter_turns: int
    crop: tuple[int, int, int, int] | None  # (row, col, height, width) on the coarsest grid


@dataclass(frozen=True)
class Augmentation:
    """Random flips, 90-degree rotations and resized crops for multi-modal samples.

    Attributes:
        flips: Flip vertically and horizontally, each with probability 0.5.
        rotations: Rotate by a random multiple of 90 degrees (0/180 only for non-square windows).
        crop_scale: Range of the crop's area as a fraction of the window (the crop keeps the
            window's aspect and is resized back to it); None disables cropping. Default
            ``(0.9, 1.0)``: mild crops, so windows still cover nearly the same ground.
        mode: ``"shared"`` (one draw for all modalities) or ``"independent"`` (one per modality).
    """

    flips: bool = True
    rotations: bool = True
    crop_scale: tuple[float, float] | None = (0.9, 1.0)
    mode: AugmentMode = "shared"

    def __post_init__(self) -> None:
        if self.mode not in ("shared", "independent"):
            raise InvalidInputError(
                f"Augmentation mode={self.mode!r}: use 'shared' (modalities stay registered) or "
                "'independent' (each modality draws its own transform)"
            )
        if self.crop_scale is not None:
            low, high = self.crop_scale
            if not 0 < low <= high <= 1:
                raise InvalidInputError(
                    f"crop_scale={self.crop_scale}: need 0 < low <= high <= 1 (the crop's area "
                    "as a fraction of the window, e.g. (0.9, 1.0)); None disables cropping"
                )

    def draw(self, rng: np.random.Generator, coarse_hw: tuple[int, int]) -> Draw:
        """Draw one transform for a window of ``coarse_hw`` pixels on its coarsest grid."""
        h, w = coarse_hw
        vflip = bool(self.flips and rng.random() < 0.5)
        hflip = bool(self.flips and rng.random() < 0.5)
        turns = 0
        if self.rotations:
            turns = int(rng.integers(4)) if h == w else 2 * int(rng.integers(2))
        crop = None
        if self.crop_scale is not None:
            scale = float(rng.uniform(*self.crop_scale))
            ch = min(h, max(1, round(math.sqrt(scale) * h)))
            cw = min(w, max(1, round(math.sqrt(scale) * w)))
            if (ch, cw) != (h, w):
                crop = (int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1)), ch, cw)
        return Draw(vflip, hflip, turns, crop)

    def apply(
        self,
        sample: dict[str, Any],
        groups: Sequence[Sequence[str]],
        roles: Mapping[str, Role],
        rngs: Sequence[np.random.Generator],
    ) -> dict[str, Any]:
        """Augment the spatial entries of ``sample`` (tensors ``[..., H, W]``) in place.

        Args:
            sample: Sample dict of tensors.
            groups: Keys that share one draw (all keys in ``"shared"`` mode, or one group per
                modality in ``"independent"`` mode).
            roles: Key -> role (``"image"``, ``"valid"``, ``"label"``; others are left alone).
            rngs: One generator per group.

        Returns:
            ``sample``, with its spatial entries replaced.
        """
        for keys, rng in zip(groups, rngs, strict=True):
            spatial = [k for k in keys if roles.get(k) in ("image", "valid", "label")]
            if not spatial:
                continue
            coarse = min(spatial, key=lambda k: int(sample[k].shape[-2]))
            coarse_hw = (int(sample[coarse].shape[-2]), int(sample[coarse].shape[-1]))
            drawn = self.draw(rng, coarse_hw)
            for key in spatial:
                smooth = roles[key] == "image" and sample[key].is_floating_point()
                sample[key] = transform(sample[key], drawn, coarse_hw, smooth=smooth)
        return sample


def transform(
    tensor: torch.Tensor, drawn: Draw, coarse_hw: tuple[int, int], *, smooth: bool
) -> torch.Tensor:
    """Apply one draw to a ``[..., H, W]`` tensor whose window is ``coarse_hw`` coarse pixels."""
    height, width = int(tensor.shape[-2]), int(tensor.shape[-1])
    out = tensor
    if drawn.crop is not None:
        row, col, ch, cw = drawn.crop
        fy, fx = height / coarse_hw[0], width / coarse_hw[1]  # integers within one cube's grid
        r0, r1 = round(row * fy), round((row + ch) * fy)
        c0, c1 = round(col * fx), round((col + cw) * fx)
        out = _resize(out[..., r0:r1, c0:c1], (height, width), smooth=smooth)
    if drawn.vflip:
        out = torch.flip(out, dims=(-2,))
    if drawn.hflip:
        out = torch.flip(out, dims=(-1,))
    if drawn.quarter_turns:
        out = torch.rot90(out, drawn.quarter_turns, dims=(-2, -1))
    return out.contiguous()


def _resize(tensor: torch.Tensor, size: tuple[int, int], *, smooth: bool) -> torch.Tensor:
    """Resize the last two dims to ``size`` (bilinear for floats when ``smooth``, else nearest)."""
    lead = tensor.shape[:-2]
    flat = tensor.reshape(-1, 1, tensor.shape[-2], tensor.shape[-1])
    if smooth:
        resized = F.interpolate(flat, size=size, mode="bilinear", align_corners=False)
    else:
        # nearest-exact: the source pixel whose centre is nearest, never a shifted one
        resized = F.interpolate(flat.float(), size=size, mode="nearest-exact").to(tensor.dtype)
    return resized.reshape(*lead, *size)
