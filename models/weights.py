"""Initialise a backbone from a local weights file (torchgeo, timm, torchvision, Lightning).

Weights are never downloaded at run time: download them once (e.g. torchgeo's
``ResNet18_Weights.SENTINEL2_ALL_MOCO.url``) and point ``encoder.weights`` at the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError

#: Prefixes tried, in order, when the file's keys do not match the backbone's as they are.
COMMON_PREFIXES = ("", "backbone.", "model.", "encoder.", "module.", "net.")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """The tensors of a ``.pth``/``.ckpt`` file (a Lightning checkpoint's ``state_dict``).

    Raises:
        DataFileNotFoundError: No such file.
        CorruptDataError: The file holds no state dict.
    """
    file = Path(path)
    if not file.is_file():
        raise DataFileNotFoundError(
            f"weights file {file} not found: download it once and give its local path "
            "(geoalign never downloads weights at run time)"
        )
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and torch errors alike
        raise CorruptDataError(f"cannot read weights from {file}: {error}") from None
    if isinstance(content, Mapping) and isinstance(content.get("state_dict"), Mapping):
        content = content["state_dict"]
    if not isinstance(content, Mapping) or not all(isinstance(v, Tensor) for v in content.values()):
        raise CorruptDataError(f"{file} holds no state dict (a mapping of names to tensors)")
    return {str(k): v for k, v in content.items()}


def _strip(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def load_backbone_weights(
    module: nn.Module, path: str | os.PathLike[str], *, prefix: str = ""
) -> int:
    """Load a weights file into ``module``: every parameter and buffer must be found.

    The keys are matched as they are, after removing ``prefix``, or after one of
    :data:`COMMON_PREFIXES`; classifier weights (``fc.``, ``head.``...) absent from the module
    (and any other key the module lacks) are ignored. Wrappers of this package (``model.``
    inside a flattening wrapper) are handled.

    Args:
        module: The backbone.
        path: Local weights file.
        prefix: Key prefix to remove first.

    Returns:
        Number of tensors loaded.

    Raises:
        InvalidInputError: Keys missing or shapes that differ (e.g. another number of bands).
    """
    state = read_state_dict(path)
    target = module.state_dict()
    best: dict[str, Tensor] = {}
    for candidate in (prefix, *COMMON_PREFIXES) if prefix else COMMON_PREFIXES:
        stripped = _strip(state, candidate)
        for wrap in ("", "model."):
            mapped = {wrap + k: v for k, v in stripped.items()}
            if len(set(mapped) & set(target)) > len(set(best) & set(target)):
                best = mapped
    missing = sorted(set(target) - set(best))
    if missing:
        raise InvalidInputError(
            f"weights {path} lack {len(missing)} of the backbone's {len(target)} tensors "
            f"(e.g. {missing[:3]}); give weights_prefix if the keys carry one, or use weights "
            "made for this backbone"
        )
    wrong = [
        f"{k}: file {tuple(best[k].shape)} vs model {tuple(target[k].shape)}"
        for k in target
        if best[k].shape != target[k].shape
    ]
    if wrong:
        raise InvalidInputError(
            f"weights {path} do not fit the backbone: {wrong[:3]}; the first layer differs when "
            "the number of bands differs (use weights made for this sensor's bands)"
        )
    # extra keys (a classifier head, projection layers of the pretraining) are not an error
    module.load_state_dict({k: best[k] for k in target})
    return len(target)
