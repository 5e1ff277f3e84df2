# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Sampling an aligned cube with torchgeo
#
# The Sen1Floods11 cube of `tutorials/recipes/sen1floods11.yaml` (Sentinel-1 and Sentinel-2 on
# one 10 m UTM grid, with the hand-made water label) becomes a multi-modal torchgeo dataset.
# Build it first (from the repository root):
#
#     geoalign cube tutorials/recipes/sen1floods11.yaml --overwrite
#
# `GEOALIGN_TUTORIAL_CUBE` points the tutorial at another cube.

# %%
import os
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from geoalign.datasets import (
    Augmentation,
    CubeDataset,
    MultiPlaceBatchSampler,
    RandomWindowSampler,
    collate_samples,
    compute_band_stats,
    open_cube_dataset,
)

cube = Path(os.environ.get("GEOALIGN_TUTORIAL_CUBE", "out/sen1floods11.zarr"))

# %% [markdown]
# Each group of the cube is a torchgeo `GeoDataset` read at its own resolution; `&` combines
# them. A query is a window in the cube CRS: the dataset slices the stored grid, it never warps.

# %%
s1 = CubeDataset(cube, "s1")
s2 = CubeDataset(cube, "s2", bands=["red", "nir"])
water = CubeDataset(cube, "labels/water")
dataset = s1 & s2 & water
print(dataset)

sampler = RandomWindowSampler(dataset, 64, 4, min_valid=0.9, generator=torch.Generator().manual_seed(0))
sample = dataset[next(iter(sampler))]
print("CRS:", dataset.crs.to_string(), "| sampling step:", dataset.res[0], "m")
for key, value in sample.items():
    if isinstance(value, torch.Tensor):
        print(f"{key:<16}", tuple(value.shape), value.dtype)

# %% [markdown]
# Training batches: windows from distinct places (many different negatives for a contrastive
# loss), standardised bands (statistics computed once from the cube and stored in it), the same
# flips, rotations and mild crops for every modality, and two DataLoader workers (each opens
# the store itself; the batches do not depend on the number of workers).

# %%
for group in ("s1", "s2"):
    compute_band_stats(cube, group)
train = open_cube_dataset(cube, normalize=True, augment=Augmentation(), seed=0)
batches = MultiPlaceBatchSampler(train, 32, 8, 4, min_valid=0.9, generator=torch.Generator().manual_seed(0))
loader = DataLoader(train, batch_sampler=batches, collate_fn=collate_samples, num_workers=2)
for epoch in range(2):
    train.set_epoch(epoch)
    for batch in loader:
        pass
print({key: tuple(value.shape) for key, value in batch.items() if isinstance(value, torch.Tensor)})
print("water fraction in the last batch:", float((batch["label_water"] == 1).float().mean()))
