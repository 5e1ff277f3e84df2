"""Chunk files written directly: the same files, bytes and values as zarr writes, or zarr itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.codecs import BloscCodec, BytesCodec

from geoalign.chunk_files import direct_root, file_dtype, write_block
from geoalign.errors import InvalidInputError

SHAPE = (2, 3, 70, 45)  # (time, band, y, x): edge chunks on both spatial axes
CHUNKS = (1, 3, 32, 16)


def _values(dtype: str, shape: tuple[int, ...] = SHAPE) -> np.ndarray:
    rng = np.random.default_rng(0)
    if dtype == "bool":
        return rng.random(shape) > 0.5
    if np.dtype(dtype).kind == "f":
        values = rng.normal(size=shape).astype(dtype)
        values[0, 0, :3, :3] = np.nan
        return values
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


def _array(root: Path, name: str, dtype: str, fill: Any, **options: Any) -> zarr.Array:
    return zarr.create_array(
        str(root),
        name=name,
        shape=SHAPE,
        chunks=CHUNKS,
        dtype=dtype,
        fill_value=fill,
        config={"write_empty_chunks": True},
        **{"compressors": None, **options},
    )


def _blocks(array: zarr.Array, values: np.ndarray, rows: int = 64, cols: int = 32) -> None:
    """Write ``values`` block by block (whole chunks, ragged at the array's edge)."""
    for t in range(SHAPE[0]):
        for y in range(0, SHAPE[2], rows):
            for x in range(0, SHAPE[3], cols):
                block = values[t : t + 1, :, y : y + rows, x : x + cols]
                write_block(array, (t, 0, y, x), block)


def _chunk_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "zarr.json"
    }


@pytest.mark.parametrize(
    ("dtype", "fill"),
    [("uint8", 0), ("uint16", 0), ("int16", -32768), ("float32", float("nan")), ("bool", False)],
)
def test_direct_chunks_are_the_files_zarr_writes(tmp_path: Path, dtype: str, fill: Any) -> None:
    values = _values(dtype)
    ours = _array(tmp_path / "ours", "a", dtype, fill)
    assert direct_root(ours) == tmp_path / "ours" / "a"
    _blocks(ours, values)
    theirs = _array(tmp_path / "zarr", "a", dtype, fill)
    theirs[...] = values
    # same chunk files with the same bytes (edge chunks padded with the fill value alike)...
    assert _chunk_files(tmp_path / "ours") == _chunk_files(tmp_path / "zarr")
    # ... so zarr reads them back as written, and no temporary file is left
    back = zarr.open_array(str(tmp_path / "ours"), path="a", mode="r")[...]
    np.testing.assert_array_equal(back, values)
    assert not list((tmp_path / "ours").rglob("*.partial"))


def test_big_endian_chunks_follow_the_bytes_codec(tmp_path: Path) -> None:
    values = _values("float32")
    big = {"serializer": BytesCodec(endian="big")}
    ours = _array(tmp_path / "ours", "a", "float32", float("nan"), **big)
    assert file_dtype(ours) == np.dtype(">f4")
    _blocks(ours, values)
    theirs = _array(tmp_path / "zarr", "a", "float32", float("nan"), **big)
    theirs[...] = values
    assert _chunk_files(tmp_path / "ours") == _chunk_files(tmp_path / "zarr")
    np.testing.assert_array_equal(
        zarr.open_array(str(tmp_path / "ours"), path="a", mode="r")[...], values
    )


@pytest.mark.parametrize(
    "options",
    [
        {"compressors": [BloscCodec(cname="lz4")]},
        {"shards": (1, 3, 64, 32)},
    ],
    ids=["compressed", "sharded"],
)
def test_other_arrays_are_written_through_zarr(tmp_path: Path, options: dict[str, Any]) -> None:
    values = _values("uint16")
    array = _array(tmp_path / "store", "a", "uint16", 0, **options)
    assert direct_root(array) is None
    _blocks(array, values)
    np.testing.assert_array_equal(array[...], values)


def test_memory_store_is_written_through_zarr() -> None:
    array = zarr.create_array(
        zarr.storage.MemoryStore(), shape=(4, 4), chunks=(2, 2), dtype="uint8", fill_value=0
    )
    assert direct_root(array) is None
    write_block(array, (2, 0), np.full((2, 4), 7, np.uint8))
    assert array[...].tolist() == [[0] * 4, [0] * 4, [7] * 4, [7] * 4]


@pytest.mark.parametrize(
    ("start", "shape", "problem"),
    [
        # starts inside a chunk, ends inside a chunk, ends beyond the array, wrong dimensions
        ((0, 0, 10, 0), (1, 3, 32, 16), "axis 2: indexes 10:42 of 70 are not whole chunks"),
        ((0, 0, 0, 0), (1, 3, 40, 16), "axis 2: indexes 0:40 of 70 are not whole chunks"),
        ((0, 0, 64, 32), (1, 3, 32, 16), "axis 2: indexes 64:96 lie outside the array"),
        ((0, 0, 0), (1, 3, 32), "does not match the 4-d array"),
    ],
)
def test_unaligned_blocks_are_refused_and_nothing_is_written(
    tmp_path: Path, start: tuple[int, ...], shape: tuple[int, ...], problem: str
) -> None:
    array = _array(tmp_path / "store", "a", "uint8", 0)
    with pytest.raises(InvalidInputError, match="whole chunks|outside|does not match") as error:
        write_block(array, start, np.ones(shape, np.uint8))
    assert problem in str(error.value)
    assert _chunk_files(tmp_path / "store") == {}
