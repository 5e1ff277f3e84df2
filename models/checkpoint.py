"""Load the encoders of a geoalign pretraining checkpoint safely (tensors only, never code).

    loaded = load_encoders("runs/x/checkpoints/last.ckpt", ["s1", "s2"])
    loaded.encoders["s2"](batch)        # a ModalityEncoder in eval mode
    loaded.sha256                       # provenance of exported products

A checkpoint is read with ``torch.load(weights_only=True)``: a file holding anything but
tensors and plain values is refused before any of its code could run. The encoders are rebuilt
from the config and modality specs saved in it (``hyper_parameters``) and their weights loaded
strictly.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from geoalign.embed_cog import file_sha256
from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError
from geoalign.models.config import PretrainConfig
from geoalign.models.encoders import ModalityEncoder, ModalitySpec, build_encoder


@dataclass(frozen=True)
class LoadedEncoders:
    """Encoders of a checkpoint, ready for inference.

    Attributes:
        path: The checkpoint file.
        sha256: Hex SHA-256 of the file.
        config: The pretraining config saved in it.
        specs: Modality -> shape of its samples (bands, time axis).
        encoders: Modality -> encoder (eval mode, on CPU), for the modalities asked for.
    """

    path: Path
    sha256: str
    config: PretrainConfig
    specs: dict[str, ModalitySpec]
    encoders: dict[str, ModalityEncoder]


def _not_ours(path: Path, why: str) -> InvalidInputError:
    return InvalidInputError(
        f"{path} is not a geoalign pretraining checkpoint ({why}): give a checkpoint written by "
        "geoalign pretrain (runs/<name>/checkpoints/last.ckpt)"
    )


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The content of a checkpoint, loaded with ``weights_only=True``.

    Raises:
        DataFileNotFoundError: No such file.
        InvalidInputError: The file holds objects other than tensors and plain values, or is not
            a geoalign pretraining checkpoint.
        CorruptDataError: The file cannot be read as a PyTorch file.
    """
    file = Path(path)
    if not file.is_file():
        raise DataFileNotFoundError(f"checkpoint {file} does not exist: check the path")
    try:
        content = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else "unsafe objects"
        raise _not_ours(
            file, f"it holds objects that weights_only loading refuses: {first}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise CorruptDataError(f"cannot read {file} as a PyTorch checkpoint: {error}") from None
    if not isinstance(content, Mapping):
        raise _not_ours(file, f"it holds a {type(content).__name__}, not a checkpoint mapping")
    hparams = content.get("hyper_parameters")
    if not isinstance(hparams, Mapping) or not {"config", "specs"} <= set(hparams):
        raise _not_ours(file, "no hyper_parameters with a pretraining config and modality specs")
    if not isinstance(content.get("state_dict"), Mapping):
        raise _not_ours(file, "no state_dict")
    return dict(content)


def load_encoders(
    path: str | os.PathLike[str], modalities: Sequence[str] | None = None
) -> LoadedEncoders:
    """Rebuild the encoders of ``modalities`` (default: all) from a checkpoint, in eval mode.

    Raises:
        InvalidInputError: Not a geoalign checkpoint, unknown modalities, or weights that do
            not fit the saved architecture.
    """
    file = Path(path)
    content = read_checkpoint(file)
    hparams = content["hyper_parameters"]
    try:
        config = PretrainConfig.from_dict(dict(hparams["config"]))
        specs = {name: ModalitySpec(**dict(spec)) for name, spec in hparams["specs"].items()}
    except (InvalidInputError, TypeError) as error:
        raise _not_ours(file, f"its saved config does not validate: {error}") from None
    known = list(config.modalities)
    chosen = known if modalities is None else list(modalities)
    unknown = [m for m in chosen if m not in known]
    if unknown or not chosen:
        raise InvalidInputError(
            f"modalities {unknown or chosen}: the checkpoint {file.name} has encoders for "
            f"{known} only"
        )
    state: Mapping[str, Tensor] = content["state_dict"]
    reconstruct = config.loss.reconstruction_weight > 0
    encoders = {}
    for name in chosen:
        modality = config.modalities[name]
        # the backbone's initial weights file (maybe absent here) is replaced by the checkpoint's
        encoder_config = modality.encoder.model_copy(update={"weights": None})
        encoder = build_encoder(
            specs[name],
            encoder_config,
            embed_dim=config.embed_dim,
            projection_hidden=config.projection_hidden,
            temporal=modality.temporal,
            reconstruct=reconstruct and modality.reconstruction_weight > 0,
        )
        prefix = f"encoders.{name}."
        own = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        try:
            encoder.load_state_dict(own, strict=True)
        except RuntimeError as error:
            raise InvalidInputError(
                f"the weights of encoder {name!r} in {file} do not fit its saved config: {error}"
            ) from None
        encoders[name] = encoder.eval()
    return LoadedEncoders(file, file_sha256(file), config, specs, encoders)
