"""The pretraining task: one encoder per sensor, one contrastive loss for all (Lightning).

    task = ContrastivePretraining(config, specs)          # specs: modality -> ModalitySpec
    trainer.fit(task, datamodule=module)
    embeddings = task.embed(batch)                        # modality -> [N, D], L2-normalised

A training step encodes ``T`` views of every modality (cost linear in the number of sensors),
gathers the embeddings of every process under DDP (negatives from the global batch, gradients
through the gather), and computes the loss rows of this process's locations against every view
in float32 (outside autocast, so bf16 mixed precision never reaches the softmax). Validation
logs the loss and cross-modal retrieval top-1/top-5 over the whole held-out set.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoalign.errors import InvalidInputError
from geoalign.models.config import PretrainConfig
from geoalign.models.distributed import gather_batch
from geoalign.models.encoders import ModalityEncoder, ModalitySpec, build_encoder
from geoalign.models.losses import (
    ContrastiveOutput,
    MultiPositiveInfoNCE,
    PairwiseInfoNCE,
    multi_positive_info_nce,
)
from geoalign.models.retrieval import CrossModalRetrieval
from geoalign.models.views import make_views, view_generator

_RNG_KEY = "geoalign_rng_states"


class ContrastivePretraining(L.LightningModule):
    """Multi-modal contrastive pretraining of one encoder per modality.

    Args:
        config: The pretraining config (a :class:`PretrainConfig` or its dict form).
        specs: Modality -> shape of its samples (:class:`ModalitySpec` or its dict form); from
            the data module's ``specs()``. Both are saved in checkpoints, so
            ``ContrastivePretraining.load_from_checkpoint(path)`` rebuilds the task.
    """

    def __init__(
        self,
        config: PretrainConfig | Mapping[str, Any],
        specs: Mapping[str, ModalitySpec | Mapping[str, Any]],
    ) -> None:
        super().__init__()
        if not isinstance(config, PretrainConfig):
            config = PretrainConfig.from_dict(dict(config))
        parsed = {
            name: spec if isinstance(spec, ModalitySpec) else ModalitySpec(**spec)
            for name, spec in specs.items()
        }
        missing = [name for name in config.modalities if name not in parsed]
        if missing:
            raise InvalidInputError(
                f"modalities {missing} of the config are not in the data (which has "
                f"{sorted(parsed)}): name the config's modalities after the data's"
            )
        self.save_hyperparameters(
            {
                "config": config.model_dump(mode="json"),
                "specs": {n: vars(parsed[n]).copy() for n in config.modalities},
            }
        )
        self.config = config
        self.modality_names = list(config.modalities)
        reconstruct = config.loss.reconstruction_weight > 0
        self.encoders = nn.ModuleDict(
            {
                name: build_encoder(
                    parsed[name],
                    modality.encoder,
                    embed_dim=config.embed_dim,
                    projection_hidden=config.projection_hidden,
                    temporal=modality.temporal,
                    reconstruct=reconstruct and modality.reconstruction_weight > 0,
                )
                for name, modality in config.modalities.items()
            }
        )
        loss = config.loss
        self.criterion: MultiPositiveInfoNCE | PairwiseInfoNCE
        if loss.kind == "multi_positive":
            self.criterion = MultiPositiveInfoNCE(
                loss.temperature,
                learnable_temperature=loss.learnable_temperature,
                intra_modal_weight=loss.intra_modal_weight,
            )
        else:
            self.criterion = PairwiseInfoNCE(
                loss.temperature, learnable_temperature=loss.learnable_temperature
            )
        # cross-modal retrieval needs two sensors (one sensor with views trains, unmeasured)
        self.val_retrieval = (
            CrossModalRetrieval(self.modality_names) if len(self.modality_names) >= 2 else None
        )

    # ------------------------------------------------------------------------ encoding

    def encoder(self, name: str) -> ModalityEncoder:
        """The encoder of modality ``name``."""
        module = self.encoders[name]
        if not isinstance(module, ModalityEncoder):
            raise InvalidInputError(f"no encoder for modality {name!r}")
        return module

    def _inputs(self, batch: Mapping[str, Any], name: str) -> tuple[Tensor, Any, Any]:
        if name not in batch:
            raise InvalidInputError(
                f"the batch has no entry {name!r} (it has {sorted(batch)}): the config's "
                "modality names must be the data's"
            )
        return batch[name], batch.get(f"{name}_time_valid"), batch.get(f"{name}_dates")

    def embed(self, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        """L2-normalised embeddings ``[N, D]`` of every modality of a batch (no augmentation)."""
        out = {}
        for name in self.modality_names:
            x, time_valid, dates = self._inputs(batch, name)
            out[name] = F.normalize(
                self.encoder(name)(x, time_valid, dates).embedding.float(), dim=-1
            )
        return out

    def _encode_views(
        self, batch: Mapping[str, Any], batch_idx: int
    ) -> tuple[dict[str, Tensor], Tensor]:
        """Embeddings ``[N, T, D]`` of ``T`` views per modality and the reconstruction loss."""
        views = self.config.views
        embeddings: dict[str, Tensor] = {}
        reconstruction = torch.zeros((), device=self.device)
        total_weight = 0.0
        for index, name in enumerate(self.modality_names):
            x, time_valid, dates = self._inputs(batch, name)
            encoder = self.encoder(name)
            n = int(x.shape[0])
            generator = view_generator(
                x.device, self.config.seed, self.current_epoch, batch_idx, self.global_rank, index
            )
            stacked = make_views(x, encoder.spec, views, generator)  # [T * N, ...]
            repeat = views.count
            tv = None if time_valid is None else time_valid.repeat(repeat, 1)
            dt = None if dates is None else dates.repeat(repeat, 1)
            out = encoder(stacked, tv, dt)
            embeddings[name] = out.embedding.reshape(repeat, n, -1).transpose(0, 1)  # [N, T, D]
            if out.reconstruction is not None:
                weight = self.config.modalities[name].reconstruction_weight
                target = encoder.reconstruction_target(x, time_valid).repeat(repeat, 1)
                reconstruction = reconstruction + weight * F.mse_loss(
                    out.reconstruction.float(), target
                )
                total_weight += weight
        if total_weight > 0:
            reconstruction = reconstruction / total_weight
        return embeddings, reconstruction

    def _contrastive(
        self, embeddings: dict[str, Tensor], negatives_only: Tensor | None, *, gather: bool
    ) -> ContrastiveOutput:
        """The loss in float32, over the global batch when ``gather`` under DDP.

        Without ``gather`` (validation: one clean view per modality) the intra-modal term,
        which needs augmented copies, is left out.
        """
        with torch.autocast(device_type=self.device.type, enabled=False):
            z = {name: e.float() for name, e in embeddings.items()}
            anchors = None
            if gather and self.trainer.world_size > 1:
                n = next(iter(z.values())).shape[0]
                z = {name: gather_batch(e) for name, e in z.items()}
                if negatives_only is not None:
                    negatives_only = gather_batch(negatives_only)
                anchors = slice(self.global_rank * n, (self.global_rank + 1) * n)
            if not gather and isinstance(self.criterion, MultiPositiveInfoNCE):
                scale = self.criterion.temperature()
                return multi_positive_info_nce(z, scale, negatives_only=negatives_only)
            out: ContrastiveOutput = self.criterion(z, negatives_only, anchors)
            return out

    # ----------------------------------------------------------------------- Lightning

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        """Loss of one batch: contrastive (+ intra-modal) + weighted reconstruction."""
        embeddings, reconstruction = self._encode_views(batch, batch_idx)
        out = self._contrastive(embeddings, batch.get("negatives_only"), gather=True)
        loss = out.loss + self.config.loss.reconstruction_weight * reconstruction
        n = int(next(iter(embeddings.values())).shape[0])
        logged = {
            "train/loss": loss,
            "train/contrastive": out.contrastive,
            "train/positive_similarity": out.positive_similarity,
            "train/negative_similarity": out.negative_similarity,
            "train/temperature": 1.0 / self.criterion.temperature().detach(),
        }
        if self.config.loss.intra_modal_weight > 0:
            logged["train/intra_modal"] = out.intra_modal
        if self.config.loss.reconstruction_weight > 0:
            logged["train/reconstruction"] = reconstruction
        # under DDP each process holds the loss of its own anchors: the mean over processes is
        # the loss of the global batch (equal shares)
        self.log_dict(logged, batch_size=n, sync_dist=self.trainer.world_size > 1)
        self.log("loss", loss.detach(), prog_bar=True, logger=False, batch_size=n)
        return loss

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        """Loss (this process's batch) and retrieval embeddings of held-out locations."""
        del batch_idx
        embeddings = self.embed(batch)
        n = int(next(iter(embeddings.values())).shape[0])
        # one sensor's single clean view has no positive: no validation loss to compute
        if n >= 2 and len(self.modality_names) >= 2:
            out = self._contrastive(embeddings, batch.get("negatives_only"), gather=False)
            self.log("val/loss", out.contrastive, batch_size=n, sync_dist=True)
        if self.val_retrieval is not None:
            self.val_retrieval.update(embeddings)

    def on_validation_epoch_end(self) -> None:
        """Log top-1/top-5 retrieval for every modality pair and their means."""
        if self.val_retrieval is None:
            return
        figures = self.val_retrieval.compute()
        self.val_retrieval.reset()
        logged = {f"val/{key}": value for key, value in figures.items() if key != "locations"}
        self.log_dict(logged, sync_dist=False, rank_zero_only=False)
        self.log("val_top1", figures["top1"], prog_bar=True, logger=False)

    def configure_optimizers(self) -> Any:
        """AdamW (no decay on norms, biases and temperature), warm-up then cosine or constant."""
        optim = self.config.optim
        decay: list[nn.Parameter] = []
        no_decay: list[nn.Parameter] = []
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            plain = parameter.ndim <= 1 or name.startswith("criterion.")
            (no_decay if plain else decay).append(parameter)
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": optim.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=optim.lr,
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = optim.warmup_steps
        cosine = optim.schedule == "cosine"

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if not cosine:
                return 1.0
            progress = min(1.0, (step - warmup) / max(1, total - warmup))
            return 0.5 * (1.0 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Save the global RNG states too (exact resume even with dropout).

        Stored as tensors and plain numbers, so checkpoints load with ``weights_only=True``.
        """
        _, keys, position, has_gauss, cached = np.random.get_state()
        version, python_state, gauss_next = random.getstate()
        states: dict[str, Any] = {
            "torch": torch.get_rng_state(),
            "numpy": [
                torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                position,
                has_gauss,
                cached,
            ],
            "python": [version, list(python_state), gauss_next],
        }
        if torch.cuda.is_available():
            states["cuda"] = torch.cuda.get_rng_state_all()
        checkpoint[_RNG_KEY] = states

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Restore the RNG states saved by :meth:`on_save_checkpoint`."""
        states = checkpoint.get(_RNG_KEY)
        if not states:
            return
        torch.set_rng_state(states["torch"])
        keys, position, has_gauss, cached = states["numpy"]
        np.random.set_state(
            ("MT19937", keys.numpy().astype(np.uint32), position, has_gauss, cached)
        )
        version, python_state, gauss_next = states["python"]
        random.setstate((version, tuple(python_state), gauss_next))
        if "cuda" in states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(states["cuda"])
