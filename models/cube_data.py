"""Multi-modal windows of an aligned cube for pretraining (geoalign.datasets under Lightning).

    module = CubeDataModule(CubeDataConfig(path="cube.zarr", window=32), ["s2", "s1"], seed=0)
    module.specs()        # {"s2": ModalitySpec(13, series=True), "s1": ModalitySpec(2)}

Training batches come from :class:`~geoalign.datasets.MultiPlaceBatchSampler` (windows from
distinct, non-overlapping places: many different negatives), reseeded from ``(seed, epoch)``
at each epoch so that a resumed run draws the same windows. Under DDP one global batch of
``W * B`` places is drawn and each process reads its share. Validation windows lie on a grid
over a southern strip of the footprint that training never samples (held-out places).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import shapely
import torch
from torch.utils.data import DataLoader, TensorDataset

from geoalign.datasets import (
    Augmentation,
    CubeIntersectionDataset,
    GridWindowSampler,
    MultiPlaceBatchSampler,
    TimeSelection,
    collate_samples,
    compute_band_stats,
    open_cube_dataset,
    read_band_stats,
)
from geoalign.errors import InvalidInputError
from geoalign.models.config import CubeDataConfig
from geoalign.models.distributed import epoch_generator
from geoalign.models.encoders import ModalitySpec


class EpochBatches:
    """This process's share of a batch sampler's global batches, reseeded at every epoch.

    Lightning calls ``set_epoch`` on ``batch_sampler.sampler``; this object is its own
    ``sampler`` so that the call reaches it.

    Args:
        sampler: A :class:`MultiPlaceBatchSampler` drawing global batches.
        dataset: The dataset (its per-sample randomness follows the epoch too).
        seed: Run seed.
        rank: This process.
        world_size: Number of processes.
    """

    def __init__(
        self,
        sampler: MultiPlaceBatchSampler,
        dataset: CubeIntersectionDataset,
        *,
        seed: int,
        rank: int,
        world_size: int,
    ) -> None:
        self.batches = sampler
        self.dataset = dataset
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.sampler = self
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Reseed the window draws and the dataset's augmentations for ``epoch``."""
        self.batches.generator = epoch_generator(self.seed, epoch)
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[list[Any]]:
        """Queries of this process's share of each global batch."""
        for batch in self.batches:
            share = len(batch) // self.world_size
            yield batch[self.rank * share : (self.rank + 1) * share]

    def __len__(self) -> int:
        return len(self.batches)


class CubeDataModule(L.LightningDataModule):
    """Training and held-out validation windows of a cube, one entry per modality.

    Args:
        config: The data section of the pretraining config.
        modalities: Cube groups to sample (the config's modality names).
        seed: Run seed (window draws, augmentations, random dates).
    """

    def __init__(self, config: CubeDataConfig, modalities: Sequence[str], seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.modalities = list(modalities)
        self.seed = seed
        self._dataset: CubeIntersectionDataset | None = None

    @property
    def dataset(self) -> CubeIntersectionDataset:
        """The multi-modal cube dataset (opened on first use)."""
        if self._dataset is None:
            config = self.config
            unknown = sorted(set(config.dates) - set(self.modalities))
            if unknown:
                raise InvalidInputError(
                    f"data.dates names {unknown}, which are not modalities of the config "
                    f"{self.modalities}"
                )
            time = {
                name: TimeSelection("fixed", length=config.dates[name])
                if name in config.dates
                else "all"
                for name in self.modalities
            }
            if config.normalize and config.compute_stats:
                for name in self.modalities:
                    if read_band_stats(config.path, name) is None:
                        compute_band_stats(config.path, name)
            self._dataset = open_cube_dataset(
                config.path,
                self.modalities,
                labels=[],
                time=time,  # type: ignore[arg-type]
                normalize=config.normalize,
                augment=Augmentation(mode=config.augment) if config.augment else None,
                seed=self.seed,
            )
            for member in self._dataset.datasets:
                if member.time.mode == "all" and member.meta.times.size > 1:
                    raise InvalidInputError(
                        f"modality {member.name!r} has {member.meta.times.size} dates: give its "
                        f"number of dates per sample in data.dates (e.g. {member.name}: 4), so "
                        "that every sample of a batch has the same shape"
                    )
        return self._dataset

    def specs(self) -> dict[str, ModalitySpec]:
        """Shape of each modality's samples (bands, time axis)."""
        return {
            member.name: ModalitySpec(
                len(member.bands), spatial=True, series=not member.squeeze_time
            )
            for member in self.dataset.datasets
        }

    def _regions(self) -> tuple[shapely.Polygon, shapely.Polygon | None]:
        """Training region and the southern validation strip (None without validation)."""
        xmin, ymin, xmax, ymax = (float(v) for v in self.dataset.index.total_bounds)
        if self.config.val_fraction == 0:
            return shapely.box(xmin, ymin, xmax, ymax), None
        cut = ymin + self.config.val_fraction * (ymax - ymin)
        return shapely.box(xmin, cut, xmax, ymax), shapely.box(xmin, ymin, xmax, cut)

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def train_dataloader(self) -> DataLoader[Any]:
        """Batches of windows from distinct places of the training region."""
        rank, world = self._rank_world()
        train_roi, _ = self._regions()
        sampler = MultiPlaceBatchSampler(
            self.dataset,
            self.config.window,
            self.config.batch_size * world,
            self.config.batches_per_epoch,
            place_size=self.config.place_size,
            min_valid=self.config.min_valid,
            roi=train_roi,
        )
        batches = EpochBatches(sampler, self.dataset, seed=self.seed, rank=rank, world_size=world)
        return DataLoader(
            self.dataset,
            batch_sampler=batches,
            collate_fn=collate_samples,
            num_workers=self.config.num_workers,
        )

    def val_dataloader(self) -> DataLoader[Any]:
        """Grid windows of the held-out strip (this process's share), or none."""
        _, val_roi = self._regions()
        if val_roi is None:
            return DataLoader(TensorDataset(torch.zeros(0)))
        rank, world = self._rank_world()
        queries = list(
            GridWindowSampler(
                self.dataset, self.config.window, min_valid=self.config.min_valid, roi=val_roi
            )
        )
        return DataLoader(
            self.dataset,
            sampler=queries[rank::world],
            batch_size=self.config.batch_size,
            collate_fn=collate_samples,
            num_workers=self.config.num_workers,
        )
