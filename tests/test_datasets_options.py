"""Sampling options: time series selection, band statistics, augmentations, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import zarr
from test_datasets_fixtures import SERIES_DATES, build_s2_cube, build_series_cube

from geoalign.cube_store import open_cube
from geoalign.datasets import (
    Augmentation,
    CubeDataset,
    RandomWindowSampler,
    TimeSelection,
    collate_samples,
    compute_band_stats,
    open_cube_dataset,
    read_band_stats,
)
from geoalign.errors import DataFileNotFoundError, IncompleteCubeError, InvalidInputError


@pytest.fixture(scope="module")
def series(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_series_cube(shared_data, tmp_path_factory.mktemp("series") / "series.zarr")


@pytest.fixture(scope="module")
def s2_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_s2_cube(shared_data, tmp_path_factory.mktemp("s2") / "s2.zarr", margin_m=3000)


def _queries(dataset: object, size: int, count: int, seed: int = 0) -> list[tuple[slice, ...]]:
    generator = torch.Generator().manual_seed(seed)
    return list(RandomWindowSampler(dataset, size, count, generator=generator))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- time series


def test_all_dates_of_a_series_and_a_single_date_modality(series: Path) -> None:
    dataset = open_cube_dataset(series)
    sample = dataset[_queries(dataset, 4, 1)[0]]
    assert sample["s2"].shape == (3, 2, 8, 8) and sample["s2_valid"].shape == (3, 8, 8)
    expected = [np.datetime64(d[:-1], "s").astype(np.int64) for d in SERIES_DATES]
    assert sample["s2_dates"].tolist() == expected
    assert sample["s2_time_valid"].all()
    assert sample["swir"].shape == (1, 4, 4) and "swir_time_valid" not in sample
    # a query's time range selects dates
    query = _queries(dataset, 4, 1)[0]
    two = dataset[query[0], query[1], slice(np.datetime64("2018-06-05"), None)]
    assert two["s2"].shape[0] == 2 and two["s2_dates"].tolist() == expected[1:]


def test_random_subsets_of_dates_are_reproducible_per_seed_and_epoch(series: Path) -> None:
    def draws(seed: int, epoch: int) -> list[list[int]]:
        dataset = CubeDataset(series, "s2", time=TimeSelection("random", length=2), seed=seed)
        dataset.set_epoch(epoch)
        return [dataset[q]["s2_dates"].tolist() for q in _queries(dataset, 4, 12)]

    first = draws(0, 0)
    assert all(len(d) == 2 and d[0] < d[1] for d in first)
    assert first == draws(0, 0)
    assert first != draws(0, 1) and first != draws(1, 0)
    assert len({tuple(d) for d in first}) > 1


def test_fixed_length_pads_with_a_mask_or_spreads_the_dates(series: Path) -> None:
    padded = CubeDataset(series, "s2", time=TimeSelection("fixed", length=5), fill_value=-1.0)
    query = _queries(padded, 4, 1)[0]
    sample = padded[query]
    assert sample["s2"].shape == (5, 2, 4, 4)
    assert sample["s2_time_valid"].tolist() == [True, True, True, False, False]
    assert (sample["s2"][3:] == -1.0).all() and not sample["s2_valid"][3:].any()
    assert (sample["s2_dates"][3:] == 0).all()
    spread = CubeDataset(series, "s2", time=TimeSelection("fixed", length=2))[query]
    assert spread["s2_dates"].tolist() == sample["s2_dates"][[0, 2]].tolist()


def test_time_selection_is_validated() -> None:
    with pytest.raises(InvalidInputError, match="needs length"):
        TimeSelection("random")
    with pytest.raises(InvalidInputError, match="no length"):
        TimeSelection("all", length=3)
    with pytest.raises(InvalidInputError, match="unknown"):
        TimeSelection("some")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ statistics


def test_band_statistics_are_computed_from_valid_pixels_and_stored(
    series: Path, tmp_path: Path
) -> None:
    cube = tmp_path / "series.zarr"
    shutil.copytree(series, cube)
    with pytest.raises(InvalidInputError, match="compute_band_stats"):
        CubeDataset(cube, "s2", normalize=True)
    stats = compute_band_stats(cube, "s2")
    decoded = xr.open_zarr(cube, group="s2", consolidated=False)
    for band in ("red", "nir"):
        values = decoded["data"].sel(band=band).values
        values = values[np.isfinite(values)]
        assert stats[band].count == values.size
        assert stats[band].mean == pytest.approx(values.mean(), rel=1e-9)
        assert stats[band].std == pytest.approx(values.std(), rel=1e-6)
        assert (stats[band].min, stats[band].max) == (values.min(), values.max())
        assert stats[band].p02 == pytest.approx(np.percentile(values, 2), abs=0.01)
    assert read_band_stats(cube, "s2") == stats
    # stored with the cube, visible to readers of the consolidated metadata
    assert "red" in json.loads(open_cube(cube)["s2"].attrs["band_stats"])
    normalized = CubeDataset(cube, "s2", normalize=True)
    plain = CubeDataset(cube, "s2")
    query = _queries(plain, 8, 1, seed=3)[0]
    a, b = normalized[query], plain[query]
    for i, band in enumerate(("red", "nir")):
        expected = (b["s2"][:, i] - stats[band].mean) / stats[band].std
        valid = b["s2_valid"]
        torch.testing.assert_close(a["s2"][:, i][valid], expected[valid], rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------- augmentations


def _registered(fine: torch.Tensor, coarse: torch.Tensor) -> bool:
    """True if the coarse image is one pixel per 6 x 6 block of the fine one (nearest)."""
    return any(torch.equal(fine[..., dy::6, dx::6], coarse) for dy in range(6) for dx in range(6))


def _correlation(fine: torch.Tensor, coarse: torch.Tensor) -> float:
    blocks = torch.nn.functional.avg_pool2d(fine.double()[None], 6)[0]
    return float(np.corrcoef(blocks.flatten(), coarse.double().flatten())[0, 1])


def test_shared_augmentations_keep_resolutions_registered(s2_cube: Path) -> None:
    no_crop = Augmentation(crop_scale=None)
    dataset = open_cube_dataset(
        s2_cube, ["s2", "red60"], labels=[], bands={"s2": ["red"]}, decode=False, augment=no_crop
    )
    changed = 0
    plain = open_cube_dataset(
        s2_cube, ["s2", "red60"], labels=[], bands={"s2": ["red"]}, decode=False
    )
    for query in _queries(dataset, 6, 16, seed=8):
        sample, original = dataset[query], plain[query]
        assert _registered(sample["s2"], sample["red60"])
        changed += not torch.equal(sample["s2"], original["s2"])
        # the validity mask follows its image
        has_data = (sample["s2"] != -32768).any(dim=0)
        assert torch.equal(has_data, sample["s2_valid"])
    assert changed > 8

    # with crops, resampling blurs the exact relation: the 60 m image correlates with the 6 x 6
    # block means of the 10 m one as well as without augmentation (and not when independent)
    def correlations(augment: Augmentation | None) -> np.ndarray:
        dataset = open_cube_dataset(
            s2_cube, ["s2", "red60"], labels=[], bands={"s2": ["red"]}, augment=augment
        )
        samples = (dataset[q] for q in _queries(dataset, 12, 12, seed=9))
        return np.array([_correlation(s["s2"][0], s["red60"][0]) for s in samples])

    baseline = correlations(None)
    assert np.abs(correlations(Augmentation()) - baseline).max() < 0.05
    assert correlations(Augmentation(mode="independent")).mean() < baseline.mean() - 0.3


def test_independent_augmentations_draw_per_modality(s2_cube: Path) -> None:
    dataset = open_cube_dataset(
        s2_cube,
        ["s2", "red60"],
        labels=[],
        bands={"s2": ["red"]},
        decode=False,
        augment=Augmentation(crop_scale=None, mode="independent"),
    )
    registered = [
        _registered(s["s2"], s["red60"]) for s in (dataset[q] for q in _queries(dataset, 6, 16))
    ]
    assert not all(registered)
    for query in _queries(dataset, 6, 4, seed=1):
        sample = dataset[query]
        assert torch.equal((sample["s2"] != -32768).any(dim=0), sample["s2_valid"])


def test_augmented_batches_read_at_once_equal_samples_one_by_one(s2_cube: Path) -> None:
    dataset = open_cube_dataset(s2_cube, ["s2", "s2_60m"], labels=[], augment=Augmentation())
    queries = _queries(dataset, 4, 6, seed=2)
    batch = collate_samples(dataset.__getitems__(queries))
    single = collate_samples([dataset[q] for q in queries])
    for key in ("s2", "s2_valid", "s2_60m"):
        torch.testing.assert_close(batch[key], single[key], rtol=0, atol=0)


def test_augmentation_options_are_validated() -> None:
    with pytest.raises(InvalidInputError, match="crop_scale"):
        Augmentation(crop_scale=(0.95, 0.9))
    with pytest.raises(InvalidInputError, match="'shared'"):
        Augmentation(mode="both")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------- errors


def test_errors_name_the_problem_and_the_fix(s2_cube: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="PointWindowSampler"):
        CubeDataset(s2_cube, "labels/plots")
    with pytest.raises(InvalidInputError, match="has no modality or label group 'b2'"):
        CubeDataset(s2_cube, "b2")
    with pytest.raises(InvalidInputError, match="the modality has"):
        CubeDataset(s2_cube, "s2", bands=["swir16"])
    with pytest.raises(InvalidInputError, match="cannot be sampled"):
        open_cube_dataset(s2_cube, ["s2", "s9"])
    with pytest.raises(DataFileNotFoundError, match="build it"):
        CubeDataset(tmp_path / "nothing.zarr", "s2")
    (tmp_path / "file.zarr").write_text("not a store")
    with pytest.raises(InvalidInputError, match="is not a geoalign cube: it is a file"):
        open_cube_dataset(tmp_path / "file.zarr")
    (tmp_path / "empty.zarr").mkdir()
    with pytest.raises(InvalidInputError, match="a folder without zarr.json.*geoalign cube RECIPE"):
        open_cube_dataset(tmp_path / "empty.zarr")
    with pytest.raises(InvalidInputError, match="local disk"):
        CubeDataset("s3://bucket/cube.zarr", "s2")
    unfinished = tmp_path / "unfinished.zarr"
    shutil.copytree(s2_cube, unfinished)
    zarr.open_group(str(unfinished), mode="r+").attrs["geoalign_complete"] = False
    with pytest.raises(IncompleteCubeError, match="resume"):
        open_cube_dataset(unfinished)
    dataset = open_cube_dataset(s2_cube, ["s2"], labels=[])
    a, b = dataset[_queries(dataset, 2, 1)[0]], dataset[_queries(dataset, 3, 1)[0]]
    with pytest.raises(InvalidInputError, match="different shapes"):
        collate_samples([a, b])
