"""Split a grid into tiles and hand each tile its points, holding a bounded number in memory.

The grid is cut into square tiles (a multiple of 256 pixels, anchored at the grid origin) and
each tile is rasterized with a margin (:attr:`RasterizeOptions.halo`) so that the DTM is
interpolated across tile edges. Points reach a tile in one of three ways:

- COPC files are queried by the tile's bounds (transformed to the file's CRS): only the octree
  nodes that intersect the tile are read;
- LAS/LAZ files whose points fit in the memory budget are read once, reprojected, and kept;
- larger LAS/LAZ files are streamed once and spilled to one temporary file per tile (29 bytes
  per point), then read back tile by tile.

So memory is bounded by ``max_points_in_memory`` (plus one chunk), whatever the file sizes.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox

from geoalign.lidar.points import SPILL_DTYPE, PointChunk
from geoalign.lidar.products import RasterizeOptions
from geoalign.lidar.reader import PointCloud
from geoalign.lidar.transform import PointTransformer

#: Tile edges are multiples of this (the block size of the GeoTIFFs written).
BLOCK = 256
#: Largest tile edge: per-cell accumulators of a tile are float64 (32 MB each at 2048 pixels).
_MAX_TILE = 2048


@dataclass(frozen=True)
class Tile:
    """One tile of the grid, in pixel indexes of the full grid (end exclusive)."""

    row0: int
    row1: int
    col0: int
    col1: int

    def name(self) -> str:
        """``"tile rows a:b cols c:d"`` for messages."""
        return f"tile rows {self.row0}:{self.row1} cols {self.col0}:{self.col1}"


@dataclass(frozen=True)
class Source:
    """A point cloud with its transformer to the grid CRS and its extent in grid pixels."""

    cloud: PointCloud
    transformer: PointTransformer
    extent: tuple[int, int, int, int]  # row0, row1, col0, col1 (clipped to the grid)


def pixel_extent(geobox: GeoBox, bounds: Sequence[float]) -> tuple[int, int, int, int]:
    """Rows and columns of ``geobox`` that ``bounds`` (grid CRS) touch, clipped; may be empty."""
    transform = geobox.affine
    xmin, ymin, xmax, ymax = bounds
    col0 = math.floor((xmin - transform.c) / transform.a)
    col1 = math.floor((xmax - transform.c) / transform.a) + 1
    row0 = math.floor((ymax - transform.f) / transform.e)
    row1 = math.floor((ymin - transform.f) / transform.e) + 1
    height, width = geobox.shape.y, geobox.shape.x
    return (
        min(max(row0, 0), height),
        min(max(row1, 0), height),
        min(max(col0, 0), width),
        min(max(col1, 0), width),
    )


def union_extent(sources: Sequence[Source]) -> tuple[int, int, int, int] | None:
    """The block-aligned pixel extent holding every source, or None when all are empty."""
    boxes = [s.extent for s in sources if s.extent[1] > s.extent[0] and s.extent[3] > s.extent[2]]
    if not boxes:
        return None
    row0 = min(b[0] for b in boxes) // BLOCK * BLOCK
    col0 = min(b[2] for b in boxes) // BLOCK * BLOCK
    return row0, max(b[1] for b in boxes), col0, max(b[3] for b in boxes)


def tile_size(
    sources: Sequence[Source], options: RasterizeOptions, extent: tuple[int, int, int, int]
) -> int:
    """Tile edge (pixels) so that a tile and its margin hold about ``max_points_in_memory``.

    When every file is a LAS/LAZ held in memory anyway, one tile covers the whole extent (up to
    2048 pixels): points are then binned without being split by tile.
    """
    if options.tile_size is not None:
        return options.tile_size
    held = sum(s.cloud.info.point_count for s in sources)
    if held <= options.max_points_in_memory and not any(s.cloud.info.is_copc for s in sources):
        span = max(extent[1] - extent[0], extent[3] - extent[2])
        return int(min(max(-(-span // BLOCK) * BLOCK, BLOCK), _MAX_TILE))
    per_cell = 0.0
    for source in sources:
        row0, row1, col0, col1 = source.extent
        cells = max((row1 - row0) * (col1 - col0), 1)
        per_cell += source.cloud.info.point_count / cells
    if per_cell <= 0:
        return _MAX_TILE
    edge = math.sqrt(options.max_points_in_memory / per_cell) - 2 * options.halo
    return int(min(max(edge // BLOCK * BLOCK, BLOCK), _MAX_TILE))


def plan_tiles(extent: tuple[int, int, int, int], size: int) -> list[Tile]:
    """Tiles of ``size`` pixels covering ``extent`` (row0, row1, col0, col1), row-major."""
    row0, row1, col0, col1 = extent
    return [
        Tile(r, min(r + size, row1), c, min(c + size, col1))
        for r in range(row0, row1, size)
        for c in range(col0, col1, size)
    ]


def tile_geobox(geobox: GeoBox, tile: Tile, halo: int) -> GeoBox:
    """The tile's grid grown by ``halo`` pixels on every side (it may extend past the grid)."""
    transform = geobox.affine
    x0 = transform.c + (tile.col0 - halo) * transform.a
    y0 = transform.f + (tile.row0 - halo) * transform.e
    shape = (tile.row1 - tile.row0 + 2 * halo, tile.col1 - tile.col0 + 2 * halo)
    return GeoBox(shape, Affine(transform.a, 0.0, x0, 0.0, transform.e, y0), geobox.crs)


class TileFeeder:
    """Gives each tile the points of every source that fall in it (with its margin).

    Args:
        sources: The point clouds and their transformers.
        geobox: The full grid.
        tiles: The tiles that will be asked for (:func:`plan_tiles`).
        size: Their edge in pixels.
        options: Memory budget, chunk size and margin.
        spill_dir: Folder for spill files (a temporary one by default, removed by
            :meth:`close`).
    """

    def __init__(
        self,
        sources: Sequence[Source],
        geobox: GeoBox,
        tiles: Sequence[Tile],
        size: int,
        options: RasterizeOptions,
        spill_dir: str | Path | None = None,
    ) -> None:
        self.geobox = geobox
        self.size = size
        self.options = options
        self.tiles = list(tiles)
        self._copc = [s for s in sources if s.cloud.info.is_copc]
        self._memory: list[PointChunk] = []
        self._spilled: dict[int, Path] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._spill_dir = Path(spill_dir) if spill_dir is not None else None
        budget = options.max_points_in_memory
        for source in (s for s in sources if not s.cloud.info.is_copc):
            if source.cloud.info.point_count <= budget:
                budget -= source.cloud.info.point_count
                self._memory.append(self._load(source))
            else:
                self._spill(source)

    def _load(self, source: Source) -> PointChunk:
        """All points of a file, reprojected, in arrays allocated once (no chunk list copy)."""
        held = PointChunk.allocate(source.cloud.info.point_count)
        end = 0
        for chunk in source.cloud.chunks():
            end = held.put(end, source.transformer(chunk))
        return held.head(end)

    def _folder(self) -> Path:
        if self._spill_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="geoalign-lidar-")
            self._spill_dir = Path(self._tmp.name)
        self._spill_dir.mkdir(parents=True, exist_ok=True)
        return self._spill_dir

    def _spill(self, source: Source) -> None:
        """Stream a large file once, appending each point to the tiles whose margin holds it.

        Tiles are a regular row-major grid (:func:`plan_tiles`), so a point's tile is plain
        integer division; a point within ``halo`` of a tile edge also goes to the neighbour (at
        most two tiles along each axis). One stable sort of small integer keys per chunk groups
        the points by tile.
        """
        folder = self._folder()
        halo = self.options.halo
        transform = self.geobox.affine
        first, size = self.tiles[0], self.size
        n_cols = len({t.col0 for t in self.tiles})
        n_rows = len(self.tiles) // n_cols
        key_type = np.int16 if len(self.tiles) < 2**15 else np.int32
        for chunk in source.cloud.chunks():
            moved = source.transformer(chunk)
            col = np.floor((moved.x - transform.c) / transform.a).astype(np.int64) - first.col0
            row = np.floor((moved.y - transform.f) / transform.e).astype(np.int64) - first.row0
            r_lo, r_hi = (row - halo) // size, (row + halo) // size
            c_lo, c_hi = (col - halo) // size, (col + halo) // size
            keys, which = [], []
            for r_index, c_index, extra in (
                (r_lo, c_lo, None),
                (r_hi, c_lo, r_hi != r_lo),
                (r_lo, c_hi, c_hi != c_lo),
                (r_hi, c_hi, (r_hi != r_lo) & (c_hi != c_lo)),
            ):
                ok = (r_index >= 0) & (r_index < n_rows) & (c_index >= 0) & (c_index < n_cols)
                if extra is not None:
                    ok &= extra
                picked = np.flatnonzero(ok)
                keys.append((r_index[picked] * n_cols + c_index[picked]).astype(key_type))
                which.append(picked)
            self._append(folder, np.concatenate(keys), np.concatenate(which), moved.to_records())

    def _append(
        self, folder: Path, keys: np.ndarray, which: np.ndarray, records: np.ndarray
    ) -> None:
        """Append ``records[which]`` to the spill file of tile ``keys`` (same lengths)."""
        order = np.argsort(keys, kind="stable")  # radix sort for small integer keys
        sorted_keys = keys[order]
        # Gather whole records as opaque bytes: ten times faster than a structured gather.
        raw = records.view(np.dtype((np.void, records.dtype.itemsize)))
        starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_keys)) + 1])
        ends = [*starts[1:].tolist(), len(sorted_keys)]
        for start, end in zip(starts.tolist(), ends, strict=True):
            index = int(sorted_keys[start])
            path = self._spilled.setdefault(index, folder / f"tile-{index}.bin")
            with open(path, "ab") as handle:
                raw[which[order[start:end]]].tofile(handle)

    def points(self, index: int) -> PointChunk:
        """The points (grid CRS, heights in metres) of tile ``index`` and its margin."""
        tile = self.tiles[index]
        grown = tile_geobox(self.geobox, tile, self.options.halo)
        xmin, ymin, xmax, ymax = grown.extent.boundingbox
        parts: list[PointChunk] = []
        for held in self._memory:
            inside = (held.x >= xmin) & (held.x < xmax) & (held.y > ymin) & (held.y <= ymax)
            parts.append(held if bool(inside.all()) else held.select(inside))
        if index in self._spilled:
            parts.append(PointChunk.from_records(np.fromfile(self._spilled[index], SPILL_DTYPE)))
        for source in self._copc:
            query = source.transformer.to_source((xmin, ymin, xmax, ymax))
            # tiles are sized to the memory budget: one bounds query per tile
            chunks = source.cloud.chunks(query, chunk_points=self.options.max_points_in_memory)
            parts.extend(source.transformer(c) for c in chunks)
        return PointChunk.concat(parts)

    def close(self) -> None:
        """Remove the spill files."""
        for path in self._spilled.values():
            path.unlink(missing_ok=True)
        self._spilled.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __iter__(self) -> Iterator[tuple[Tile, PointChunk]]:
        for index, tile in enumerate(self.tiles):
            yield tile, self.points(index)
