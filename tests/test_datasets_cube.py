"""Windows read by geoalign.datasets equal the source rasters and the cube, at every resolution."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.warp
import torch
import xarray as xr
from rasterio.enums import Resampling
from rasterio.windows import Window
from test_datasets_fixtures import (
    S2_FILES,
    build_floods_cube,
    build_s2_cube,
    floods_files,
    s2_file,
)

from geoalign.cube_store import open_cube
from geoalign.datasets import (
    CubeDataset,
    CubeIntersectionDataset,
    RandomWindowSampler,
    collate_samples,
    open_cube_dataset,
)


@pytest.fixture(scope="module")
def s2_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_s2_cube(shared_data, tmp_path_factory.mktemp("s2") / "s2.zarr", margin_m=3000)


@pytest.fixture(scope="module")
def floods_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_floods_cube(shared_data, tmp_path_factory.mktemp("floods") / "floods.zarr")


def _windows(dataset: object, size: int, count: int, seed: int = 0) -> list[tuple[slice, ...]]:
    generator = torch.Generator().manual_seed(seed)
    return list(RandomWindowSampler(dataset, size, count, generator=generator))  # type: ignore[arg-type]


def _warped(
    file: Path, band: int, bounds: list[float], shape: tuple[int, int], crs: object
) -> np.ndarray:
    """The source band warped (nearest) onto a window's grid: what alignment must give."""
    out = np.full(shape, np.nan, dtype=np.float64)
    with rasterio.open(file) as src:
        rasterio.warp.reproject(
            src.read(band).astype(np.float64),
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=rasterio.transform.from_bounds(*bounds, shape[1], shape[0]),
            dst_crs=crs,
            resampling=Resampling.nearest,
            src_nodata=src.nodata,
            dst_nodata=np.nan,
        )
    return out


def _agreement(got: np.ndarray, expected: np.ndarray) -> tuple[int, int]:
    same = np.isclose(got, expected) | (np.isnan(got) & np.isnan(expected))
    return int(same.sum()), int(same.size)


def test_10m_windows_are_slices_of_the_source_rasters(shared_data: Path, s2_cube: Path) -> None:
    """The cube's 10 m grid is the source grid: windows are bit-identical to source windows."""
    dataset = CubeDataset(s2_cube, "s2", decode=False)
    band_keys = {name: key for key, name in S2_FILES.items()}
    checked = 0
    for query in _windows(dataset, 48, 25):
        sample = dataset[query]
        for b, band in enumerate(dataset.bands):
            with rasterio.open(s2_file(shared_data, band_keys[band])) as src:
                row, col = src.index(query[0].start + 5, query[1].stop - 5)  # first pixel centre
                window = Window(col, row, 48, 48)
                # 0 is the files' no-data, also beyond them (the margin east of the scene)
                expected = src.read(1, window=window, boundless=True, fill_value=0)
            data = expected != 0
            got = sample["s2"][b].numpy()
            np.testing.assert_array_equal(got[data], expected[data])
            assert (got[~data] == dataset.meta.nodata).all()
            checked += int(data.sum())
    assert checked > 100_000


def test_20m_and_60m_windows_equal_the_sources_aligned_onto_the_window(
    shared_data: Path, s2_cube: Path
) -> None:
    """The 20 and 60 m files sit half a pixel off the cube grid: the cube holds them warped
    (nearest) onto it, exactly what warping each source onto a window's grid gives."""
    dataset = open_cube_dataset(s2_cube, ["s2_20m", "s2_60m"], labels=[], decode=False)
    assert dataset.res == (60.0, 60.0)
    band_keys = {name: key for key, name in S2_FILES.items()}
    agree = total = 0
    for query in _windows(dataset, 8, 20, seed=6):
        sample = dataset[query]
        bounds = sample["bounds"].tolist()
        for member in dataset.datasets:
            for b, band in enumerate(member.bands):
                shape = tuple(sample[member.name].shape[-2:])
                file = s2_file(shared_data, band_keys[band])
                expected = _warped(file, 1, bounds, shape, dataset.crs)  # type: ignore[arg-type]
                got = sample[member.name][b].numpy().astype(np.float64)
                got[~sample[f"{member.name}_valid"].numpy()] = np.nan
                same, count = _agreement(got, expected)
                agree += same
                total += count
    assert agree / total > 0.99


def test_decoded_windows_equal_the_cube_opened_with_xarray(s2_cube: Path) -> None:
    dataset = open_cube_dataset(s2_cube, ["s2", "s2_20m"], labels=[], fill_value=-9.0)
    tree = open_cube(s2_cube)
    for query in _windows(dataset, 4, 20, seed=1):
        sample = dataset[query]
        for group in ("s2", "s2_20m"):
            window = (
                tree[group]["data"]
                .isel(time=0)
                .sel(x=slice(query[0].start, query[0].stop), y=slice(query[1].stop, query[1].start))
            )
            expected = np.nan_to_num(window.values, nan=-9.0)
            np.testing.assert_allclose(sample[group].numpy(), expected, rtol=1e-6)
            valid = tree[group]["valid"].isel(time=0).sel(x=window.x, y=window.y).values
            np.testing.assert_array_equal(sample[f"{group}_valid"].numpy(), valid)
        assert sample["s2"].dtype == torch.float32 and sample["s2"].shape == (
            4,
            8,
            8,
        )  # 4 px of 20 m


def test_multi_resolution_windows_cover_the_same_ground(s2_cube: Path) -> None:
    """red60 is the 10 m red band resampled to 60 m: each window's 60 m pixels are 10 m pixels
    of the same window, at the same place in every 6 x 6 block."""
    dataset = CubeDataset(s2_cube, "s2", bands=["red"], decode=False) & CubeDataset(
        s2_cube, "red60", decode=False
    )
    assert isinstance(dataset, CubeIntersectionDataset)
    full10 = xr.open_zarr(s2_cube, group="s2", mask_and_scale=False, consolidated=False)
    full60 = xr.open_zarr(s2_cube, group="red60", mask_and_scale=False, consolidated=False)
    fine = full10["data"].sel(band="red").isel(time=0).values[:600, :600]
    coarse = full60["data"].isel(time=0, band=0).values[:100, :100]
    offsets = [
        (dy, dx) for dy in range(6) for dx in range(6) if np.array_equal(fine[dy::6, dx::6], coarse)
    ]
    assert len(offsets) == 1  # nearest neighbour picks one pixel per block
    dy, dx = offsets[0]
    for query in _windows(dataset, 5, 30, seed=2):
        sample = dataset[query]
        assert sample["s2"].shape == (1, 30, 30) and sample["red60"].shape == (1, 5, 5)
        np.testing.assert_array_equal(sample["s2"][0, dy::6, dx::6], sample["red60"][0])
        assert sample["bounds"][2] - sample["bounds"][0] == 300.0


def test_sen1floods11_windows_equal_the_sources_warped_onto_the_window(
    shared_data: Path, floods_cube: Path
) -> None:
    dataset = open_cube_dataset(floods_cube, decode=False)
    assert [d.name for d in dataset.datasets] == ["s1", "s2", "label_water"]
    files = floods_files(shared_data)
    agree = total = 0
    for query in _windows(dataset, 32, 6, seed=3):
        sample = dataset[query]
        bounds = sample["bounds"].tolist()
        for key, file in (("s1", files["s1"]), ("label_water", files["label"])):
            warped = _warped(file, 1, bounds, (32, 32), dataset.crs)
            got = sample[key].numpy().astype(np.float64)
            got = got[0] if key == "s1" else np.where(got == -1, np.nan, got)
            same, count = _agreement(got, warped)
            agree += same
            total += count
    # nearest-neighbour warps of a window and of the whole cube may pick a neighbouring source
    # pixel along block edges (GDAL's approximate transformer): almost all pixels agree
    assert agree / total > 0.98
    assert sample["label_water"].dtype == torch.int64


def test_labels_and_validity_come_with_every_modality(floods_cube: Path) -> None:
    dataset = open_cube_dataset(floods_cube)
    tree = open_cube(floods_cube)
    labels = tree["labels/water"]["classes"].values
    query = _windows(dataset, 64, 1, seed=4)[0]
    sample = dataset[query]
    rows = slice(round((float(tree["s1"].y[0]) + 5 - query[1].stop) / 10), None)
    cols = slice(round((query[0].start - float(tree["s1"].x[0]) + 5) / 10), None)
    np.testing.assert_array_equal(
        sample["label_water"].numpy(), labels[rows, cols][:64, :64].astype(np.int64)
    )
    assert set(sample) >= {"s1", "s1_valid", "s1_dates", "s2", "s2_valid", "bounds", "crs"}
    assert sample["s1_dates"].item() == np.datetime64("2019-09-17T18:00:00", "s").astype(int)
    # S1 is stored in dB with NaN no-data: decoded no-data pixels hold the fill value (0)
    assert torch.isfinite(sample["s1"]).all()


def test_windows_beyond_the_cube_are_no_data(s2_cube: Path) -> None:
    dataset = CubeDataset(s2_cube, "s2_60m", decode=False)
    left, bottom, right, top = dataset.meta.bounds
    sample = dataset[left - 120 : left + 120, top - 240 : top + 60]
    assert sample["s2_60m"].shape == (1, 5, 4)
    assert not sample["s2_60m_valid"][:, :2].any() and not sample["s2_60m_valid"][0].any()
    assert (sample["s2_60m"][0, :1] == dataset.meta.nodata).all()
    assert sample["s2_60m_valid"][1:, 2:].all()
    # the margin east of the scene was built as no-data
    east = dataset[right - 600 : right, top - 600 : top]
    assert not east["s2_60m_valid"].any()


def test_batches_read_at_once_equal_samples_read_one_by_one(s2_cube: Path) -> None:
    dataset = open_cube_dataset(s2_cube, ["s2", "s2_20m", "red60"], labels=[])
    queries = _windows(dataset, 3, 8, seed=5)
    batch = dataset.__getitems__(queries)
    collated = collate_samples(batch)
    stacked = collate_samples([dataset[q] for q in queries])
    assert collated.keys() == stacked.keys()
    for key, value in stacked.items():
        if isinstance(value, torch.Tensor):
            torch.testing.assert_close(collated[key], value, rtol=0, atol=0)
    # any collate function can read a batch: it is also the sequence of its samples
    from torch.utils.data import default_collate

    assert default_collate([{"s2": s["s2"]} for s in batch])["s2"].shape == (8, 4, 18, 18)
