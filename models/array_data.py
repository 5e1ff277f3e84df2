"""Pretraining on in-memory arrays (one ``.npz`` file, one array per modality).

    module = ArrayDataModule(ArrayDataConfig(path="pixels.npz"), ["s1", "s2"], seed=0)
    module.specs()      # {"s1": ModalitySpec(2, spatial=False), ...}

The generic counterpart of :class:`~geoalign.models.houston.HoustonDataModule`: row ``i`` of
every array is one location (its modalities are positives of each other). Array shapes give the
:class:`~geoalign.models.encoders.ModalitySpec`: ``[P, C]`` vectors, ``[P, S, C]`` series of
vectors, ``[P, C, H, W]`` images, ``[P, S, C, H, W]`` series of images. Locations are split
(seeded) into pretraining and held-out ones; every value is standardised per channel with the
pretraining part's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from geoalign.datasets import collate_samples
from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError
from geoalign.models.config import ArrayDataConfig
from geoalign.models.distributed import GlobalBatchSampler
from geoalign.models.encoders import ModalitySpec
from geoalign.models.houston import PixelPairs, split_pairs


def spec_of(array: np.ndarray) -> ModalitySpec:
    """The :class:`ModalitySpec` of a ``[P, ...]`` array (shapes in the module docstring)."""
    layouts = {2: (1, False, False), 3: (2, False, True), 4: (1, True, False), 5: (2, True, True)}
    if array.ndim not in layouts:
        raise InvalidInputError(
            f"an array of shape {array.shape} is no modality: use [P, C], [P, S, C], "
            "[P, C, H, W] or [P, S, C, H, W]"
        )
    axis, spatial, series = layouts[array.ndim]
    return ModalitySpec(int(array.shape[axis]), spatial=spatial, series=series)


def channel_stats(array: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation (+1e-6), shaped to broadcast over ``array``."""
    spec = spec_of(array)
    axis = 2 if spec.series else 1
    reduce = tuple(i for i in range(array.ndim) if i != axis)
    mean = array.mean(axis=reduce, keepdims=True, dtype=np.float64)
    std = array.std(axis=reduce, keepdims=True, dtype=np.float64) + 1e-6
    return mean[0].astype(np.float32), std[0].astype(np.float32)


def load_arrays(path: Any, modalities: Sequence[str]) -> dict[str, np.ndarray]:
    """The float32 arrays of ``modalities`` from an ``.npz`` file (all with one row count).

    Raises:
        DataFileNotFoundError: The file is missing.
        CorruptDataError: It cannot be read, or the row counts differ.
        InvalidInputError: A modality is not in the file.
    """
    try:
        with np.load(path) as content:
            names = list(content.files)
            arrays = {m: np.asarray(content[m], dtype=np.float32) for m in modalities if m in names}
    except FileNotFoundError:
        raise DataFileNotFoundError(f"array file {path} not found (data.path)") from None
    except (OSError, ValueError) as error:
        raise CorruptDataError(f"cannot read {path} as .npz: {error}") from None
    missing = [m for m in modalities if m not in arrays]
    if missing:
        raise InvalidInputError(
            f"{path} has no arrays {missing} (it has {sorted(names)}): name the config's "
            "modalities after the file's arrays"
        )
    counts = {m: a.shape[0] for m, a in arrays.items()}
    if len(set(counts.values())) > 1:
        raise CorruptDataError(f"the arrays of {path} differ in rows: {counts}")
    return arrays


class ArrayDataModule(L.LightningDataModule):
    """Pretraining and held-out locations of an array file.

    Args:
        config: The data section of the pretraining config.
        modalities: Arrays to use (the config's modality names).
        seed: Seed of the batch order.
    """

    def __init__(self, config: ArrayDataConfig, modalities: Sequence[str], seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.modalities = list(modalities)
        self.seed = seed
        self.arrays = load_arrays(config.path, self.modalities)
        self.train_set: PixelPairs | None = None
        self.holdout_set: PixelPairs | None = None

    def specs(self) -> dict[str, ModalitySpec]:
        """Shape of each modality's samples."""
        return {name: spec_of(array) for name, array in self.arrays.items()}

    def setup(self, stage: str | None = None) -> None:
        """Split the locations and standardise with the pretraining part's statistics."""
        del stage
        if self.train_set is not None:
            return
        count = next(iter(self.arrays.values())).shape[0]
        if self.config.holdout_fraction > 0:
            train, held = split_pairs(count, self.config.holdout_fraction, self.config.split_seed)
        else:
            train, held = np.arange(count), np.arange(0)
        stats = {name: channel_stats(a[train]) for name, a in self.arrays.items()}
        mean = {name: s[0] for name, s in stats.items()}
        std = {name: s[1] for name, s in stats.items()}
        labels = np.zeros(count, dtype=np.int64)
        self.train_set = PixelPairs(
            {k: v[train] for k, v in self.arrays.items()}, labels[train], mean, std
        )
        self.holdout_set = PixelPairs(
            {k: v[held] for k, v in self.arrays.items()}, labels[held], mean, std
        )

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def train_dataloader(self) -> DataLoader[Any]:
        """Seeded global batches, this process's share of each."""
        self.setup()
        if self.train_set is None:
            raise RuntimeError("setup() did not run")
        rank, world = self._rank_world()
        size = min(self.config.batch_size, len(self.train_set))
        sampler = GlobalBatchSampler(
            len(self.train_set), size, rank=rank, world_size=world, seed=self.seed
        )
        return self._loader(self.train_set, sampler, size)

    def val_dataloader(self) -> DataLoader[Any]:
        """Every held-out location once (this process's share), or none.

        A single modality has no validation: one clean view has no positive and nothing to
        retrieve across sensors.
        """
        self.setup()
        single = len(self.modalities) < 2
        if single or self.holdout_set is None or len(self.holdout_set) == 0:
            return DataLoader(TensorDataset(torch.zeros(0)))
        rank, world = self._rank_world()
        sampler = GlobalBatchSampler(
            len(self.holdout_set),
            self.config.batch_size,
            rank=rank,
            world_size=world,
            shuffle=False,
            drop_last=False,
        )
        return self._loader(self.holdout_set, sampler, self.config.batch_size)

    def _loader(
        self, dataset: PixelPairs, sampler: GlobalBatchSampler, size: int
    ) -> DataLoader[Any]:
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=size,
            collate_fn=collate_samples,
            num_workers=self.config.num_workers,
        )
