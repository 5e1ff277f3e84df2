"""Houston 2013 (IEEE GRSS DFC 2013) HSI + LiDAR pixel pairs for pretraining and its checks.

    pixels = load_houston2013()                        # 2,832 paired training pixels
    pixels.hsi.shape, pixels.lidar.shape               # (2832, 144), (2832, 21)
    module = HoustonDataModule(HoustonDataConfig(), seed=0)

The files (``HSI_TrSet.mat``, ``LiDAR_TrSet.mat``, ``TrLabel.mat``, from Hong et al.'s MDL-RS
repository) hold per-pixel vectors of the standard training split: CASI hyperspectral
reflectance (144 bands) and 21 LiDAR-derived features, with 15 land-cover classes. They are not
image windows nor georeferenced: a plain torch ``Dataset`` of vectors, not a cube. The pairs
are split (seeded) into pretraining and held-out locations; features are standardised with the
pretraining part's statistics only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from geoalign.datasets import SampleBatch, collate_samples
from geoalign.errors import CorruptDataError, DataFileNotFoundError
from geoalign.models.config import HoustonDataConfig
from geoalign.models.distributed import GlobalBatchSampler
from geoalign.models.encoders import ModalitySpec

#: Land-cover classes 1-15 of Houston 2013, in label order.
CLASSES = (
    "healthy grass",
    "stressed grass",
    "synthetic grass",
    "trees",
    "soil",
    "water",
    "residential",
    "commercial",
    "road",
    "highway",
    "railway",
    "parking lot 1",
    "parking lot 2",
    "tennis court",
    "running track",
)
_FILES = {"hsi": "HSI_TrSet", "lidar": "LiDAR_TrSet", "label": "TrLabel"}


def default_houston_dir() -> Path:
    """``$GEOALIGN_DATA/houston2013``, or ``../shared/data/houston2013`` from the working dir."""
    root = os.environ.get("GEOALIGN_DATA")
    base = Path(root) if root else Path.cwd().parent / "shared" / "data"
    return base / "houston2013"


@dataclass(frozen=True)
class HoustonPixels:
    """The paired training pixels.

    Attributes:
        hsi: ``[P, 144]`` float32 hyperspectral vectors.
        lidar: ``[P, 21]`` float32 LiDAR features.
        labels: ``[P]`` int64 classes 1-15 (see :data:`CLASSES`).
    """

    hsi: np.ndarray
    lidar: np.ndarray
    labels: np.ndarray


def _read_mat(path: Path, name: str) -> np.ndarray:
    """One variable of a MATLAB file (v5 with scipy, v7.3 with h5py)."""
    if not path.is_file():
        raise DataFileNotFoundError(
            f"{path} not found: point data.path (or GEOALIGN_DATA) at the houston2013 folder "
            "holding HSI_TrSet.mat, LiDAR_TrSet.mat and TrLabel.mat"
        )
    import scipy.io

    try:
        content = scipy.io.loadmat(path)
        return np.asarray(content[name])
    except NotImplementedError:  # MATLAB v7.3 is HDF5
        import h5py

        with h5py.File(path, "r") as handle:
            return np.asarray(handle[name]).T
    except (KeyError, ValueError, OSError) as error:
        raise CorruptDataError(f"cannot read variable {name!r} from {path}: {error}") from None


def load_houston2013(path: str | os.PathLike[str] | None = None) -> HoustonPixels:
    """Read the 2,832 paired HSI/LiDAR training pixels and their labels.

    Raises:
        DataFileNotFoundError: A file is missing.
        CorruptDataError: A file cannot be read, or the arrays disagree on the pixel count.
    """
    folder = Path(path) if path is not None else default_houston_dir()
    arrays = {key: _read_mat(folder / f"{name}.mat", name) for key, name in _FILES.items()}
    hsi = arrays["hsi"].astype(np.float32)
    lidar = arrays["lidar"].astype(np.float32)
    labels = arrays["label"].reshape(-1).astype(np.int64)
    if not hsi.shape[0] == lidar.shape[0] == labels.shape[0]:
        raise CorruptDataError(
            f"houston2013 files in {folder} disagree: {hsi.shape[0]} HSI, {lidar.shape[0]} "
            f"LiDAR and {labels.shape[0]} label rows"
        )
    return HoustonPixels(hsi, lidar, labels)


def split_pairs(count: int, holdout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of ``count`` locations into (pretraining, held-out) sorted indexes."""
    order = np.random.default_rng(seed).permutation(count)
    held = max(1, round(holdout_fraction * count))
    return np.sort(order[held:]), np.sort(order[:held])


class PixelPairs(Dataset[dict[str, Any]]):
    """Per-pixel vectors of several modalities, standardised, one location per index.

    Items are ``{"hsi": [144], "lidar": [21], "label": int64, "location": int64,
    "negatives_only": bool}``; ``__getitems__`` reads a whole batch at once.

    Args:
        features: Modality -> ``[P, C]`` array.
        labels: ``[P]`` classes.
        mean: Modality -> ``[C]`` mean used for standardisation.
        std: Modality -> ``[C]`` standard deviation.
        negatives_only_classes: Classes flagged ``negatives_only``.
    """

    def __init__(
        self,
        features: dict[str, np.ndarray],
        labels: np.ndarray,
        mean: dict[str, np.ndarray],
        std: dict[str, np.ndarray],
        negatives_only_classes: list[int] | None = None,
    ) -> None:
        self.tensors = {
            name: torch.from_numpy(((values - mean[name]) / std[name]).astype(np.float32))
            for name, values in features.items()
        }
        self.labels = torch.from_numpy(labels)
        self.negatives_only = torch.from_numpy(np.isin(labels, negatives_only_classes or []))

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: int) -> dict[str, Any]:
        """One location."""
        return self.__getitems__([index])[0]

    def __getitems__(self, indexes: list[int]) -> SampleBatch:
        """A whole batch at once, already stacked (``collate_samples`` returns it as is)."""
        index = torch.as_tensor(indexes, dtype=torch.long)
        batch: dict[str, Tensor] = {name: t[index] for name, t in self.tensors.items()}
        batch["label"] = self.labels[index]
        batch["location"] = index
        batch["negatives_only"] = self.negatives_only[index]
        return SampleBatch(batch, len(indexes))


class HoustonDataModule(L.LightningDataModule):
    """Pretraining and held-out HSI/LiDAR pixel pairs of Houston 2013.

    Args:
        config: The data section of the pretraining config.
        seed: Seed of the batch order.
    """

    def __init__(self, config: HoustonDataConfig, seed: int = 0) -> None:
        super().__init__()
        self.config = config
        self.seed = seed
        self.train_set: PixelPairs | None = None
        self.holdout_set: PixelPairs | None = None

    def specs(self) -> dict[str, ModalitySpec]:
        """Shapes of the two modalities (per-pixel vectors)."""
        return {"hsi": ModalitySpec(144, spatial=False), "lidar": ModalitySpec(21, spatial=False)}

    def setup(self, stage: str | None = None) -> None:
        """Load the pixels, split them and standardise with the pretraining part's statistics."""
        del stage
        if self.train_set is not None:
            return
        pixels = load_houston2013(self.config.path)
        train, held = split_pairs(
            pixels.labels.size, self.config.holdout_fraction, self.config.split_seed
        )
        features = {"hsi": pixels.hsi, "lidar": pixels.lidar}
        mean = {k: v[train].mean(axis=0) for k, v in features.items()}
        std = {k: v[train].std(axis=0) + 1e-6 for k, v in features.items()}
        negatives = list(self.config.negatives_only_classes)
        self.train_set = PixelPairs(
            {k: v[train] for k, v in features.items()}, pixels.labels[train], mean, std, negatives
        )
        self.holdout_set = PixelPairs(
            {k: v[held] for k, v in features.items()}, pixels.labels[held], mean, std, negatives
        )

    def _rank_world(self) -> tuple[int, int]:
        trainer = getattr(self, "trainer", None)
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def train_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Seeded global batches, this process's share of each."""
        self.setup()
        if self.train_set is None:
            raise RuntimeError("setup() did not run")
        rank, world = self._rank_world()
        sampler = GlobalBatchSampler(
            len(self.train_set),
            self.config.batch_size,
            rank=rank,
            world_size=world,
            seed=self.seed,
        )
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> DataLoader[dict[str, Any]]:
        """Every held-out location once (this process's share)."""
        self.setup()
        if self.holdout_set is None:
            raise RuntimeError("setup() did not run")
        rank, world = self._rank_world()
        sampler = GlobalBatchSampler(
            len(self.holdout_set),
            self.config.batch_size,
            rank=rank,
            world_size=world,
            shuffle=False,
            drop_last=False,
        )
        return self._loader(self.holdout_set, sampler)

    def _loader(self, dataset: PixelPairs, sampler: GlobalBatchSampler) -> DataLoader[Any]:
        return DataLoader(
            dataset,
            sampler=sampler,
            batch_size=self.config.batch_size,
            collate_fn=collate_samples,
            num_workers=self.config.num_workers,
        )
