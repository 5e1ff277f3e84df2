"""End-to-end finetuning (Lightning): encoders + a linear head or a light segmentation decoder.

    model = Finetuner(encoders, ["s1"], kind="segmentation", num_classes=2,
                      settings=FinetuneSettings(lr=1e-3, encoder_lr_fraction=0.1))
    model.fit(train_inputs, train_target, seed=0)
    predicted = model.predict(test_inputs)           # numpy, shapes as the task's targets

The encoders' learning rate is ``encoder_lr_fraction`` times the head's (0 freezes them: a
linear probe trained by SGD; 1 trains everything alike, as the supervised baseline "the same
network from random init" does). Segmentation uses the encoders' feature maps (see
:func:`~geoalign.models.evaluation.features.feature_maps`), fused, then a 3x3 convolution,
BatchNorm, ReLU and a 1x1 convolution to class logits, upsampled bilinearly to the label grid;
unlabelled pixels (-1) are ignored by the loss. Regression targets are standardised for
training and predictions returned in the targets' units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from geoalign.models.encoders import ModalityEncoder
from geoalign.models.evaluation.features import Fusion, fuse, fused_feature_maps
from geoalign.models.evaluation.tasks import IGNORE, TaskKind


class FinetuneSettings(BaseModel):
    """Finetuning schedule (AdamW, cosine decay, fixed number of epochs)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Epochs over the labelled training samples.
    epochs: int = Field(default=20, gt=0)
    # At least this many optimizer steps: runs with few labels (k per class) get more epochs,
    # instead of a handful of steps (0: epochs only).
    min_steps: int = Field(default=0, ge=0)
    # Samples per batch.
    batch_size: int = Field(default=64, gt=0)
    # Learning rate of the head (or decoder).
    lr: float = Field(default=1e-3, gt=0.0)
    # Encoder learning rate as a fraction of the head's (0 freezes the encoders).
    encoder_lr_fraction: float = Field(default=0.1, ge=0.0, le=1.0)
    # AdamW decoupled weight decay.
    weight_decay: float = Field(default=1e-4, ge=0.0)
    # Hidden channels of the segmentation decoder.
    decoder_channels: int = Field(default=64, gt=0)


class _Arrays(Dataset[dict[str, Tensor]]):
    """Rows of several arrays (and an optional target) as dict samples, batched at once."""

    def __init__(self, inputs: Mapping[str, np.ndarray], target: np.ndarray | None) -> None:
        self.inputs = {m: torch.from_numpy(np.ascontiguousarray(a)) for m, a in inputs.items()}
        self.target = None if target is None else torch.from_numpy(np.ascontiguousarray(target))
        self.size = int(next(iter(self.inputs.values())).shape[0])

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indexes: list[int]) -> list[dict[str, Tensor]]:
        index = torch.as_tensor(indexes, dtype=torch.long)
        batch = {m: a[index] for m, a in self.inputs.items()}
        if self.target is not None:
            batch["target"] = self.target[index]
        return [batch]


def _first(samples: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return samples[0]


class Finetuner(L.LightningModule):
    """Encoders of some modalities, fused, and a head trained end to end.

    Args:
        encoders: Modality -> encoder (trained in place: pass copies).
        modalities: Modalities fed to the head, in order.
        kind: Task kind.
        num_classes: Classes ``K`` (regression: targets ``T``).
        settings: Schedule and learning rates.
        fusion: ``concat`` or ``mean`` (see :func:`~geoalign.models.evaluation.features.fuse`).
    """

    def __init__(
        self,
        encoders: Mapping[str, ModalityEncoder],
        modalities: Sequence[str],
        *,
        kind: TaskKind,
        num_classes: int,
        settings: FinetuneSettings,
        fusion: Fusion = "concat",
    ) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict({m: encoders[m] for m in modalities})
        self.modalities = list(modalities)
        self.kind = kind
        self.settings = settings
        self.fusion = fusion
        widths = [encoders[m].out_features for m in modalities]
        width = sum(widths) if fusion == "concat" else widths[0]
        self.head: nn.Module
        if kind == "segmentation":
            self.head = nn.Sequential(
                nn.Conv2d(width, settings.decoder_channels, 3, padding=1),
                nn.BatchNorm2d(settings.decoder_channels),
                nn.ReLU(inplace=True),
                nn.Conv2d(settings.decoder_channels, num_classes, 1),
            )
        else:
            self.head = nn.Linear(width, num_classes)
        self.register_buffer("target_mean", torch.zeros(num_classes))
        self.register_buffer("target_std", torch.ones(num_classes))

    def forward(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Logits ``[N, K]`` (``[N, K, H, W]`` for segmentation, at the inputs' size)."""
        if self.kind == "segmentation":
            maps = fused_feature_maps(self.encoders, batch, self.modalities, self.fusion)
            logits: Tensor = self.head(maps)
            size = batch[self.modalities[0]].shape[-2:]
            return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        parts = []
        for m in self.modalities:
            encoder = self.encoders[m]
            parts.append(encoder.features(batch[m]))  # type: ignore[operator]
        out: Tensor = self.head(fuse(parts, self.fusion))
        return out

    def _loss(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.kind == "regression":
            y = target.float().reshape(logits.shape)
            return F.mse_loss(logits, (y - self.target_mean) / self.target_std)
        if self.kind == "multilabel":
            return F.binary_cross_entropy_with_logits(logits, target.float())
        if self.kind == "segmentation" and not bool((target != IGNORE).any()):
            return logits.sum() * 0.0  # a batch without labelled pixels
        return F.cross_entropy(logits, target.long(), ignore_index=IGNORE)

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        """Loss of one batch."""
        del batch_idx
        loss = self._loss(self(batch), batch["target"])
        self.log("train/loss", loss, prog_bar=False, batch_size=int(batch["target"].shape[0]))
        return loss

    def configure_optimizers(self) -> Any:
        """AdamW: head at ``lr``, encoders at ``lr * encoder_lr_fraction``; cosine decay."""
        s = self.settings
        groups: list[dict[str, Any]] = [{"params": list(self.head.parameters()), "lr": s.lr}]
        if s.encoder_lr_fraction > 0:
            groups.append(
                {"params": list(self.encoders.parameters()), "lr": s.lr * s.encoder_lr_fraction}
            )
        else:
            self.encoders.requires_grad_(False)
        optimizer = torch.optim.AdamW(groups, weight_decay=s.weight_decay)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def fit(
        self,
        inputs: Mapping[str, np.ndarray],
        target: np.ndarray,
        *,
        seed: int,
        max_steps: int = -1,
    ) -> Finetuner:
        """Train on labelled samples (seeded order, weights, dropout).

        Args:
            inputs: Modality -> ``[N, ...]`` float32 inputs.
            target: Targets (see :class:`~geoalign.models.evaluation.tasks.TaskData`).
            seed: Seed of the batch order.
            max_steps: Stop after this many steps (-1: all epochs; smoke tests).
        """
        if self.kind == "regression":
            y = torch.from_numpy(target.reshape(target.shape[0], -1)).float()
            self.target_mean = y.mean(0)
            self.target_std = y.std(0, unbiased=False) + 1e-6
        data = _Arrays({m: inputs[m] for m in self.modalities}, target)
        batch = min(self.settings.batch_size, len(data))
        loader = DataLoader(
            data,
            batch_size=batch,
            shuffle=True,
            drop_last=len(data) > batch,  # BatchNorm needs more than one sample
            collate_fn=_first,
            generator=torch.Generator().manual_seed(seed),
        )
        steps_per_epoch = len(data) // batch if len(data) > batch else 1
        epochs = max(self.settings.epochs, -(-self.settings.min_steps // steps_per_epoch))
        trainer = L.Trainer(
            accelerator="cpu",
            devices=1,
            max_epochs=epochs,
            max_steps=max_steps,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            deterministic=True,
            num_sanity_val_steps=0,
        )
        self.train()  # encoders may come in eval mode (frozen feature extraction)
        trainer.fit(self, train_dataloaders=loader)
        return self

    @torch.no_grad()
    def predict(self, inputs: Mapping[str, np.ndarray], batch_size: int = 256) -> np.ndarray:
        """Predictions in the targets' form (classes, {0, 1}, values)."""
        self.eval()
        data = _Arrays({m: inputs[m] for m in self.modalities}, None)
        outputs = []
        for start in range(0, len(data), batch_size):
            batch = data.__getitems__(list(range(start, min(start + batch_size, len(data)))))[0]
            logits = self(batch)
            if self.kind == "regression":
                values = logits * self.target_std + self.target_mean
                outputs.append(values.squeeze(1) if values.shape[1] == 1 else values)
            elif self.kind == "multilabel":
                outputs.append((logits > 0).long())
            else:
                outputs.append(logits.argmax(1))
        return torch.cat(outputs).numpy()
