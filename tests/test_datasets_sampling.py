"""Samplers: valid-data thresholds, diverse batches, point-centred windows, workers and seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
import torch
from test_datasets_fixtures import build_s2_cube, plot_points
from torch.utils.data import DataLoader
from torchgeo.samplers import RandomGeoSampler

from geoalign.datasets import (
    Augmentation,
    CubeDataset,
    GridWindowSampler,
    MultiPlaceBatchSampler,
    PointWindowSampler,
    RandomWindowSampler,
    ValidityGrid,
    collate_samples,
    open_cube_dataset,
)
from geoalign.errors import InvalidInputError, NoDataFoundError


@pytest.fixture(scope="module")
def cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The S2 scene with 6 km of no data east of it (a quarter of the cube)."""
    return build_s2_cube(shared_data, tmp_path_factory.mktemp("s2") / "s2.zarr", margin_m=6000)


def _fraction(sample: dict[str, torch.Tensor], names: list[str]) -> float:
    return min(float(sample[f"{n}_valid"].double().mean()) for n in names)


def test_min_valid_skips_windows_with_too_little_data(cube: Path) -> None:
    dataset = open_cube_dataset(cube, ["s2_60m", "red60"], labels=[])
    generator = torch.Generator().manual_seed(0)
    loose = [dataset[q] for q in RandomWindowSampler(dataset, 20, 60, generator=generator)]
    fractions = [_fraction(s, ["s2_60m", "red60"]) for s in loose]
    assert min(fractions) < 0.5  # without a threshold, windows fall in the margin
    strict = RandomWindowSampler(dataset, 20, 60, min_valid=0.95, generator=generator)
    grid = ValidityGrid(dataset)
    for query in strict:
        sample = dataset[query]
        assert _fraction(sample, ["s2_60m", "red60"]) >= 0.95
        row = round((grid.top - query[1].stop) / grid.step)
        col = round((query[0].start - grid.left) / grid.step)
        expected = grid.fractions(np.array([row]), np.array([col]), 20, 20)[0]
        assert expected == pytest.approx(_fraction(sample, ["s2_60m", "red60"]))
    gridded = GridWindowSampler(dataset, 20, min_valid=0.95)
    assert 0 < len(gridded) < len(GridWindowSampler(dataset, 20))
    with pytest.raises(NoDataFoundError, match="lower min_valid"):
        RandomWindowSampler(dataset, 400, min_valid=0.99)
    with pytest.raises(InvalidInputError, match="between 0 and 1"):
        RandomWindowSampler(dataset, 20, min_valid=1.5)


def test_multi_place_batches_never_overlap_and_come_from_distinct_places(cube: Path) -> None:
    dataset = open_cube_dataset(cube, ["s2", "s2_60m"], labels=[])
    sampler = MultiPlaceBatchSampler(
        dataset, 8, 16, 5, min_valid=0.5, generator=torch.Generator().manual_seed(2)
    )
    assert len(sampler) == 5
    step = dataset.res[0]
    for batch in sampler:
        assert len(batch) == 16
        boxes = [shapely.box(q[0].start, q[1].start, q[0].stop, q[1].stop) for q in batch]
        for i, a in enumerate(boxes):
            assert all(a.intersection(b).area == 0 for b in boxes[i + 1 :])
        place = 16 * step  # default places: twice the window
        places = {
            (
                (q[0].start - sampler.windows.left) // place,
                (sampler.windows.top - q[1].stop) // place,
            )
            for q in batch
        }
        assert len(places) == 16
    loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_samples)
    batch = next(iter(loader))
    assert batch["s2"].shape == (16, 4, 48, 48) and (batch["s2_valid"].float().mean() > 0.4)
    with pytest.raises(InvalidInputError, match="fewer than batch_size"):
        MultiPlaceBatchSampler(dataset, 8, 10_000)


def test_windows_centred_on_points_carry_their_labels(shared_data: Path, cube: Path) -> None:
    dataset = open_cube_dataset(cube, ["s2", "s2_20m"], labels=[], points="labels/plots")
    sampler = PointWindowSampler(dataset, "labels/plots", 4, min_valid=0.5)
    frame = plot_points(shared_data)
    assert len(sampler) == len(frame)
    loader = DataLoader(dataset, sampler=sampler, batch_size=8, collate_fn=collate_samples)
    seen = 0
    for batch in loader:
        assert batch["point_plots_found"].all()
        for xy, kind, height, bounds in zip(
            batch["point_plots_xy"],
            batch["point_plots_kind"],
            batch["point_plots_height"],
            batch["bounds"],
            strict=True,
        ):
            match = frame[(frame.geometry.x == float(xy[0])) & (frame.geometry.y == float(xy[1]))]
            assert match["kind"].item() == kind and match["height"].item() == float(height)
            cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
            assert abs(float(xy[0] - cx)) <= 30 and abs(float(xy[1] - cy)) <= 30
            seen += 1
    assert seen == len(frame)
    # a random window far from every point says so
    random_window = dataset[next(iter(RandomGeoSampler(dataset, 1, 1)))]
    assert random_window["point_plots_kind"] in ("", *frame["kind"])


def test_dataloader_workers_give_the_same_batches_as_the_main_process(cube: Path) -> None:
    """Stores are opened per worker; randomness (augmentations) depends on the seed, epoch and
    window only, so 0 or 2 workers give identical batches."""
    dataset = open_cube_dataset(cube, ["s2", "red60"], labels=[], augment=Augmentation(), seed=11)

    def run(workers: int) -> list[dict[str, torch.Tensor]]:
        sampler = RandomWindowSampler(dataset, 6, 12, generator=torch.Generator().manual_seed(3))
        loader = DataLoader(
            dataset,
            sampler=sampler,
            batch_size=4,
            num_workers=workers,
            collate_fn=collate_samples,
            multiprocessing_context="fork" if workers else None,
        )
        return list(loader)

    main, workers = run(0), run(2)
    assert len(main) == len(workers) == 3
    for a, b in zip(main, workers, strict=True):
        for key in ("s2", "s2_valid", "red60", "bounds"):
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)
    # a new epoch draws new augmentations for the same windows
    dataset.set_epoch(1)
    again = run(0)
    assert any(not torch.equal(a["s2"], b["s2"]) for a, b in zip(main, again, strict=True))


def test_pickled_datasets_reopen_the_store(cube: Path) -> None:
    """What a spawned DataLoader worker gets: no chunk (no memory map) travels with the
    dataset; the copy reads its own."""
    import pickle

    dataset = CubeDataset(cube, "s2_60m") & CubeDataset(cube, "red60")
    queries = list(RandomWindowSampler(dataset, 4, 4, generator=torch.Generator().manual_seed(4)))
    before = collate_samples([dataset[q] for q in queries])
    payload = pickle.dumps(dataset)
    assert len(payload) < 200_000  # metadata only
    copy = pickle.loads(payload)
    assert all(len(member._data.held) == 0 for member in copy.datasets)
    after = collate_samples([copy[q] for q in queries])
    torch.testing.assert_close(before["red60"], after["red60"], rtol=0, atol=0)
