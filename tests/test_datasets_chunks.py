"""The chunk reader: windows of any Zarr layout equal numpy slicing, edges and gaps included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_datasets_fixtures import s2_items, s2_scene

from geoalign.datasets import ChunkCache, CubeDataset, RandomWindowSampler
from geoalign.datasets.chunk_cache import ChunkStore
from geoalign.datasets.chunks import ChunkedArray

LAYOUTS = ["plain", "zstd", "blosc", "sharded"]
FILL = 7


def _store(tmp: Path, layout: str, data: np.ndarray, chunks: tuple[int, ...]) -> ChunkedArray:
    options: dict[str, object] = {"compressors": None}
    if layout == "zstd":
        options = {"compressors": [zarr.codecs.ZstdCodec(level=1)]}
    elif layout == "blosc":
        options = {"compressors": [zarr.codecs.BloscCodec(cname="lz4")]}
    elif layout == "sharded":
        options = {"compressors": None, "shards": tuple(2 * c for c in chunks)}
    array = zarr.create_array(
        str(tmp),
        name="a",
        shape=data.shape,
        chunks=chunks,
        dtype=data.dtype,
        fill_value=FILL,
        **options,  # type: ignore[arg-type]
    )
    array[...] = data
    return ChunkedArray(tmp, "a")


def _reference(
    data: np.ndarray, t: int, rows: tuple[int, int], cols: tuple[int, int]
) -> np.ndarray:
    """numpy slicing with -1 wherever the window leaves the array."""
    height, width = data.shape[-2:]
    out = np.full((*data.shape[1:-2], rows[1] - rows[0], cols[1] - cols[0]), -1, data.dtype)
    r0, r1, c0, c1 = max(rows[0], 0), min(rows[1], height), max(cols[0], 0), min(cols[1], width)
    if r0 < r1 and c0 < c1:
        out[..., r0 - rows[0] : r1 - rows[0], c0 - cols[0] : c1 - cols[0]] = data[
            t, ..., r0:r1, c0:c1
        ]
    return out


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    layout=st.sampled_from(LAYOUTS),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(5, 40), st.integers(5, 40)),
    chunk=st.tuples(st.integers(2, 16), st.integers(2, 16)),
    window=st.tuples(
        st.integers(-10, 45), st.integers(-10, 45), st.integers(1, 30), st.integers(1, 30)
    ),
    blank=st.booleans(),
)
def test_windows_equal_numpy_slicing_for_any_layout(
    tmp_path_factory: pytest.TempPathFactory,
    layout: str,
    shape: tuple[int, int, int, int],
    chunk: tuple[int, int],
    window: tuple[int, int, int, int],
    blank: bool,
) -> None:
    data = np.random.default_rng(sum(shape)).integers(-500, 500, shape).astype(np.int16)
    if blank:  # whole chunks equal to the fill value are never written: read as gaps
        data[:, :, : chunk[0], : chunk[1]] = FILL
    array = _store(tmp_path_factory.mktemp(layout), layout, data, (1, shape[1], *chunk))
    r0, c0, h, w = window
    for t in range(shape[0]):
        out = np.empty((shape[1], h, w), np.int16)
        array.read_into(out, (t,), (r0, r0 + h), (c0, c0 + w), -1)
        np.testing.assert_array_equal(out, _reference(data, t, (r0, r0 + h), (c0, c0 + w)))
    expected_mode = {"plain": "mmap", "zstd": "decode", "blosc": "decode", "sharded": "zarr"}
    assert array.mode == expected_mode[layout]


def test_band_chunks_split_across_files_are_read_through_zarr(tmp_path: Path) -> None:
    data = np.arange(2 * 4 * 9 * 9, dtype=np.float32).reshape(2, 4, 9, 9)
    array = _store(tmp_path, "plain", data, (1, 2, 4, 4))  # bands split over two chunks
    out = np.empty((4, 5, 5), np.float32)
    array.read_into(out, (1,), (-2, 3), (6, 11), -1)
    np.testing.assert_array_equal(out, _reference(data, 1, (-2, 3), (6, 11)))


def test_chunk_cache_drops_the_oldest_chunks_beyond_its_budget() -> None:
    cache = ChunkCache(max_bytes=3 * 800)
    store = ChunkStore()
    for i in range(5):
        cache.add(store, (i,), np.zeros(100, dtype=np.float64))  # 800 bytes each
    assert sorted(store) == [(2,), (3,), (4,)] and cache.nbytes == 2400 and len(cache) == 3
    cache.add(store, (9,), None)  # a gap costs nothing
    cache.clear()
    assert not store and cache.nbytes == 0


def test_lz4_cube_reads_like_an_uncompressed_one(shared_data: Path, tmp_path: Path) -> None:
    from odc.geo.geom import box

    from geoalign.cube import ModalityRequest, build_cube

    bounds, crs = s2_scene(shared_data)
    request = [
        ModalityRequest(
            "s2",
            "sentinel-2-l2a",
            s2_items(shared_data, ["2018-06-01T15:30:00Z"]),
            60,
            bands=["red", "nir"],
            mask_clouds=False,
        )
    ]
    cubes = {
        compression: build_cube(
            tmp_path / f"{compression}.zarr",
            request,
            aoi=box(*bounds, crs),
            crs=crs,
            compression=compression,
        )
        for compression in ("none", "lz4")
    }
    plain, lz4 = (CubeDataset(cubes[c], "s2") for c in ("none", "lz4"))
    assert plain._data.mode == "mmap" and lz4._data.mode == "decode"
    for query in RandomWindowSampler(plain, 40, 5, generator=torch.Generator().manual_seed(0)):
        a, b = plain[query], lz4[query]
        torch.testing.assert_close(a["s2"], b["s2"], rtol=0, atol=0)
        assert torch.equal(a["s2_valid"], b["s2_valid"])
