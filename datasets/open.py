"""Open a whole cube (or some of its groups) as one multi-modal torchgeo dataset."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from geoalign.datasets.augment import Augmentation
from geoalign.datasets.cube_dataset import CubeDataset
from geoalign.datasets.cube_meta import cube_groups
from geoalign.datasets.intersection import CubeIntersectionDataset
from geoalign.datasets.time_series import TimeMode, TimeSelection
from geoalign.errors import InvalidInputError


def open_cube_dataset(
    path: str | os.PathLike[str],
    modalities: Sequence[str] | None = None,
    *,
    labels: Sequence[str] | None = None,
    points: str | None = None,
    bands: Mapping[str, Sequence[str]] | None = None,
    time: TimeSelection | TimeMode | Mapping[str, TimeSelection | TimeMode] = "all",
    decode: bool = True,
    normalize: bool = False,
    fill_value: float = 0.0,
    augment: Augmentation | None = None,
    seed: int = 0,
    spatial_only: bool = True,
    transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> CubeIntersectionDataset:
    """Every modality and label raster of a cube as one dataset, each at its own resolution.

    Args:
        path: A finished cube.
        modalities: Modality groups to sample (default: all of them).
        labels: Label rasters (``"water"`` or ``"labels/water"``); default all, ``[]`` none.
        points: A point group whose nearest point is attached to each sample.
        bands: Modality -> bands to keep (default: all bands).
        time: Date selection for every modality, or per modality (see :class:`TimeSelection`).
        decode: Physical float32 values (True) or the stored integers (False).
        normalize: Standardise bands with their stored statistics.
        fill_value: Value of no-data pixels in decoded samples.
        augment: Geometric augmentations (see :class:`Augmentation`).
        seed: Seed of the per-sample randomness (augmentations, random dates).
        spatial_only: See :class:`CubeIntersectionDataset`.
        transforms: Callable applied to each merged sample.

    Raises:
        InvalidInputError: Unknown modality or label names.
    """
    groups = cube_groups(path)
    all_modalities = [g for g, kind in groups.items() if kind == "modality"]
    all_labels = [g for g, kind in groups.items() if kind == "labels"]
    chosen = list(all_modalities if modalities is None else modalities)
    unknown = [m for m in chosen if m not in all_modalities]
    label_groups = [
        name if name.startswith("labels/") else f"labels/{name}"
        for name in (all_labels if labels is None else labels)
    ]
    unknown += [g for g in label_groups if g not in all_labels]
    unknown += [m for m in (bands or {}) if m not in chosen]
    if unknown or not chosen + label_groups:
        raise InvalidInputError(
            f"groups {unknown or 'none'} cannot be sampled: the cube {path} has modalities "
            f"{all_modalities} and label rasters {all_labels}"
        )
    per_time = time if isinstance(time, Mapping) else dict.fromkeys(chosen, time)
    members = [
        CubeDataset(
            path,
            name,
            bands=(bands or {}).get(name),
            time=per_time.get(name, "all"),
            decode=decode,
            normalize=normalize,
            fill_value=fill_value,
            seed=seed,
        )
        for name in chosen
    ]
    members += [CubeDataset(path, group) for group in label_groups]
    return CubeIntersectionDataset(
        *members,
        spatial_only=spatial_only,
        augment=augment,
        points=points,
        seed=seed,
        transforms=transforms,
    )
