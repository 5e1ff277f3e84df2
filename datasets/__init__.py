"""geoalign.datasets: torchgeo datasets and samplers over aligned cubes (imports torch).

    from geoalign.datasets import open_cube_dataset, MultiPlaceBatchSampler, collate_samples

    dataset = open_cube_dataset("cube.zarr", augment=Augmentation())   # s2 & s1 & ortho & labels
    sampler = MultiPlaceBatchSampler(dataset, size=64, batch_size=32, min_valid=0.8)
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_samples, num_workers=2)
    batch = next(iter(loader))  # batch["s2"]: [32, T, C, 64, 64]; batch["ortho"]: [32, C, 640, 640]

Each modality is a :class:`CubeDataset` (a torchgeo ``GeoDataset``) read at its own resolution;
``&`` combines them (:class:`CubeIntersectionDataset`); torchgeo's samplers and the ones here
(valid-data thresholds, diverse batches, point-centred windows) draw the windows.
"""

from geoalign.datasets.augment import Augmentation
from geoalign.datasets.chunk_cache import ChunkCache, default_cache
from geoalign.datasets.collate import SampleBatch, collate_samples
from geoalign.datasets.cube_dataset import CubeDataset
from geoalign.datasets.cube_meta import GroupMeta, cube_groups, read_group_meta
from geoalign.datasets.intersection import CubeIntersectionDataset
from geoalign.datasets.open import open_cube_dataset
from geoalign.datasets.points import PointTable
from geoalign.datasets.samplers import (
    GridWindowSampler,
    MultiPlaceBatchSampler,
    PointWindowSampler,
    RandomWindowSampler,
)
from geoalign.datasets.stats import BandStats, compute_band_stats, read_band_stats
from geoalign.datasets.time_series import TimeSelection
from geoalign.datasets.validity import ValidityGrid

__all__ = [
    "Augmentation",
    "BandStats",
    "ChunkCache",
    "CubeDataset",
    "CubeIntersectionDataset",
    "GridWindowSampler",
    "GroupMeta",
    "MultiPlaceBatchSampler",
    "PointTable",
    "PointWindowSampler",
    "RandomWindowSampler",
    "SampleBatch",
    "TimeSelection",
    "ValidityGrid",
    "collate_samples",
    "compute_band_stats",
    "cube_groups",
    "default_cache",
    "open_cube_dataset",
    "read_band_stats",
    "read_group_meta",
]
