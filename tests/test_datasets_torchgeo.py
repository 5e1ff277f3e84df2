"""torchgeo integration: `&`, torchgeo's samplers in pixel and CRS units, and 0.8.1's defects."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import shapely
import torch
from test_datasets_fixtures import build_floods_cube, build_s2_cube
from torch.utils.data import DataLoader
from torchgeo.datasets import IntersectionDataset, stack_samples
from torchgeo.samplers import GridGeoSampler, RandomBatchGeoSampler, RandomGeoSampler, Units

from geoalign.datasets import (
    CubeDataset,
    CubeIntersectionDataset,
    GridWindowSampler,
    MultiPlaceBatchSampler,
    RandomWindowSampler,
    collate_samples,
)
from geoalign.errors import CRSError, InvalidInputError, NoDataFoundError


@pytest.fixture(scope="module")
def s2_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_s2_cube(shared_data, tmp_path_factory.mktemp("s2") / "s2.zarr")


@pytest.fixture(scope="module")
def floods_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_floods_cube(shared_data, tmp_path_factory.mktemp("floods") / "floods.zarr")


def test_and_keeps_every_modality_at_its_own_resolution(s2_cube: Path) -> None:
    s2, s20, s60 = (CubeDataset(s2_cube, g) for g in ("s2", "s2_20m", "s2_60m"))
    dataset = s2 & s20 & s60
    assert isinstance(dataset, CubeIntersectionDataset)
    assert isinstance(dataset, IntersectionDataset)  # a torchgeo intersection
    assert [d.res for d in dataset.datasets] == [(10.0, 10.0), (20.0, 20.0), (60.0, 60.0)]
    assert dataset.res == (60.0, 60.0) and dataset.crs == s2.crs
    assert isinstance(dataset.index.index, pd.IntervalIndex)
    sampler = RandomGeoSampler(dataset, 4, 5, generator=torch.Generator().manual_seed(0))
    for query in sampler:
        sample = dataset[query]
        assert sample["s2"].shape == (4, 24, 24)
        assert sample["s2_20m"].shape == (2, 12, 12)
        assert sample["s2_60m"].shape == (1, 4, 4)


@pytest.mark.parametrize("units", [Units.PIXELS, Units.CRS])
def test_torchgeo_samplers_drive_cube_datasets_in_pixel_and_crs_units(
    floods_cube: Path, units: Units
) -> None:
    dataset = CubeDataset(floods_cube, "s1") & CubeDataset(floods_cube, "labels/water")
    size = 32 if units == Units.PIXELS else 320.0
    generator = torch.Generator().manual_seed(1)
    samplers = [
        RandomGeoSampler(dataset, size, 6, units=units, generator=generator),
        GridGeoSampler(dataset, size, units=units),
    ]
    for sampler in samplers:
        loader = DataLoader(dataset, sampler=sampler, batch_size=3, collate_fn=collate_samples)
        batch = next(iter(loader))
        assert batch["s1"].shape == (3, 2, 32, 32) and batch["label_water"].shape == (3, 32, 32)
    batches = RandomBatchGeoSampler(dataset, size, 4, 8, units=units, generator=generator)
    loader = DataLoader(dataset, batch_sampler=batches, collate_fn=stack_samples)
    batch = next(iter(loader))  # torchgeo's own collate works too
    assert batch["s1"].shape == (4, 2, 32, 32)


def test_unaligned_queries_are_snapped_to_the_shared_grid(s2_cube: Path) -> None:
    dataset = CubeDataset(s2_cube, "s2", bands=["red"]) & CubeDataset(s2_cube, "s2_60m")
    left, _, _, top = dataset.index.total_bounds
    sample = dataset[left + 70 : left + 70 + 290, top - 400 : top - 17]
    # 70 m -> 60 m, 290 m -> 300 m, and every group covers exactly those bounds
    assert sample["bounds"].tolist() == [left + 60, top - 360, left + 360, top]
    assert sample["s2"].shape == (1, 36, 30) and sample["s2_60m"].shape == (1, 6, 5)


def test_spatial_only_intersection_keeps_a_time_index_samplers_can_use(floods_cube: Path) -> None:
    """torchgeo 0.8.1: IntersectionDataset(spatial_only=True) drops the IntervalIndex and every
    sampler fails. S1 and S2 of this cube are one day apart: only a spatial intersection works."""
    s1, s2 = CubeDataset(floods_cube, "s1"), CubeDataset(floods_cube, "s2")
    with pytest.raises(NoDataFoundError, match="spatial_only=True"):
        CubeIntersectionDataset(s1, s2, spatial_only=False)
    dataset = CubeIntersectionDataset(s1, s2, spatial_only=True)
    interval = dataset.index.index[0]
    assert interval.left == pd.Timestamp("2019-09-17T18:00") < interval.right
    query = next(iter(RandomGeoSampler(dataset, 16, 1, generator=torch.Generator())))
    sample = dataset[query]
    # each modality keeps its own date
    assert sample["s1_dates"] != sample["s2_dates"]


def test_torchgeo_canary_spatial_only_index_is_broken_upstream(floods_cube: Path) -> None:
    """Documents the defect worked around above; when this fails, torchgeo fixed it."""
    s1, s2 = CubeDataset(floods_cube, "s1"), CubeDataset(floods_cube, "s2")
    broken = IntersectionDataset(s1, s2, spatial_only=True)
    assert not isinstance(broken.index.index, pd.IntervalIndex)
    with pytest.raises(AttributeError):
        RandomGeoSampler(broken, 16, 1)


def test_torchgeo_intersection_cannot_force_one_crs_or_resolution(s2_cube: Path) -> None:
    s2, s60 = CubeDataset(s2_cube, "s2"), CubeDataset(s2_cube, "s2_60m")
    with pytest.raises(InvalidInputError, match="combine cube datasets with `&`"):
        IntersectionDataset(s2, s60)  # torchgeo's class sets s60.res = s2.res
    assert s60.res == (60.0, 60.0)
    with pytest.raises(CRSError, match="does not reproject"):
        s2.crs = "EPSG:4326"
    s2.crs = s2.crs  # the same CRS is fine
    dataset = s2 & s60
    with pytest.raises(InvalidInputError, match="cannot be resampled"):
        dataset.res = 10.0


def test_groups_of_different_cubes_must_share_crs_and_grid(
    s2_cube: Path, floods_cube: Path
) -> None:
    with pytest.raises(CRSError, match="one CRS"):
        CubeDataset(s2_cube, "s2") & CubeDataset(floods_cube, "s1")
    with pytest.raises(InvalidInputError, match="more than once"):
        CubeDataset(s2_cube, "s2") & CubeDataset(s2_cube, "s2")


def test_seeded_samplers_ignore_the_global_torch_rng(s2_cube: Path) -> None:
    """torchgeo 0.8.1's Random*GeoSampler draw the tile with torch.multinomial on the global
    RNG; the cube samplers draw everything from their generator."""
    dataset = CubeDataset(s2_cube, "s2_60m") & CubeDataset(s2_cube, "red60")

    def draws(seed: int, global_seed: int) -> list[list[float]]:
        torch.manual_seed(global_seed)
        out = []
        for sampler in (
            RandomWindowSampler(dataset, 4, 5, generator=torch.Generator().manual_seed(seed)),
            MultiPlaceBatchSampler(dataset, 4, 3, 2, generator=torch.Generator().manual_seed(seed)),
        ):
            for item in sampler:
                queries = item if isinstance(item, list) else [item]
                out.extend([q[0].start, q[1].start] for q in queries)
        return out

    assert draws(7, 0) == draws(7, 123)
    assert draws(7, 0) != draws(8, 0)


def test_grid_sampler_covers_the_footprint_without_hanging_over(s2_cube: Path) -> None:
    dataset = CubeDataset(s2_cube, "s2_60m")
    sampler = GridWindowSampler(dataset, 100, units=Units.PIXELS)
    left, bottom, right, top = dataset.index.total_bounds
    boxes = [shapely.box(q[0].start, q[1].start, q[0].stop, q[1].stop) for q in sampler]
    union = shapely.union_all(boxes)
    assert union.equals(shapely.box(left, bottom, right, top))
    assert all(b.within(shapely.box(left, bottom, right, top)) for b in boxes)
    assert len(sampler) == 16  # 325 x 323 pixels: 4 x 4 windows, the last ones moved inside
