"""Open LAS, LAZ and COPC point clouds, local or over HTTP, and read them in bounded chunks.

:class:`PointCloud` reads only the header when opened. Points come out as
:class:`~geoalign.lidar.points.PointChunk` columns in the file's own CRS and units:

- LAS and LAZ are streamed front to back in chunks of ``chunk_points`` points;
- COPC files are queried by bounds (laspy's ``CopcReader``): only the octree nodes that
  intersect the bounds are read, from disk or with HTTP range requests
  (:mod:`geoalign.lidar.remote`). A whole COPC file is streamed as a grid of bounds queries.

Truncated or corrupt files raise :class:`~geoalign.errors.CorruptDataError` naming the file.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import laspy
import numpy as np

from geoalign.errors import (
    CorruptDataError,
    DataFileNotFoundError,
    GeoAlignError,
    InvalidInputError,
)
from geoalign.lidar.crs import PointCRS, crs_from_vlrs, resolve_point_crs
from geoalign.lidar.points import NOISE_CLASSES, PointChunk
from geoalign.lidar.remote import is_remote, open_remote

#: Layers a LAS 1.4 LAZ reader decompresses (the others, RGB, GPS time..., are skipped).
_SELECTION = (
    laspy.DecompressionSelection.XY_RETURNS_CHANNEL
    | laspy.DecompressionSelection.Z
    | laspy.DecompressionSelection.CLASSIFICATION
    | laspy.DecompressionSelection.FLAGS
    | laspy.DecompressionSelection.INTENSITY
)

#: Errors of laspy/lazrs that mean the bytes are not a readable point cloud.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (
    laspy.errors.LaspyException,
    ValueError,
    EOFError,
    OSError,
    RuntimeError,
)

#: A 2D bounding box ``(xmin, ymin, xmax, ymax)`` in the units of the point cloud's CRS.
Bounds2D = tuple[float, float, float, float]


@dataclass(frozen=True)
class PointCloudInfo:
    """What a point cloud's header says.

    Attributes:
        href: Local path or URL.
        point_count: Points in the file (all classes).
        bounds: ``(xmin, ymin, xmax, ymax)`` in the file's horizontal CRS units.
        z_range: ``(zmin, zmax)`` in the file's height unit.
        crs: The file's CRS (or the one given where it has none).
        is_copc: True for a Cloud-Optimized Point Cloud (spatially indexed).
        point_format: LAS point data record format id.
        version: LAS version (``"1.4"``).
    """

    href: str
    point_count: int
    bounds: Bounds2D
    z_range: tuple[float, float]
    crs: PointCRS
    is_copc: bool
    point_format: int
    version: str


def _is_panic(error: BaseException) -> bool:
    """True for lazrs' Rust panics on garbled bytes (``pyo3_runtime.PanicException``)."""
    return type(error).__name__ == "PanicException"


@contextmanager
def _decoding(href: str) -> Iterator[None]:
    """Turn what laspy/lazrs raise on a broken file (including lazrs panics) into one error."""
    try:
        yield
    except GeoAlignError:
        raise
    except _DECODE_ERRORS as error:
        raise _corrupt(href, error) from error
    except BaseException as error:
        if _is_panic(error):
            raise _corrupt(href, error) from error
        raise


def _corrupt(href: str, error: BaseException) -> CorruptDataError:
    return CorruptDataError(
        f"point cloud {href} cannot be read ({type(error).__name__}: {error}); the file is "
        "truncated or corrupt: download it again or check it with `pdal info`, or build with "
        "on_error='skip' to go on without it"
    )


class PointCloud:
    """A LAS/LAZ/COPC file or URL, opened lazily; each read opens its own stream (thread-safe).

    Args:
        href: Local path or ``http(s)://`` URL.
        crs: CRS to use when the file declares none (anything pyproj accepts, or a
            :class:`~geoalign.lidar.crs.PointCRS`); ignored when the file has one.
        exclude_classes: ASPRS classes dropped while reading (noise by default).
        chunk_points: Points per chunk when streaming (memory: about 40 bytes per point).

    Raises:
        DataFileNotFoundError: A local file that does not exist (or HTTP 404).
        CorruptDataError: The header cannot be read.
        CRSError: Neither the file nor ``crs`` gives a CRS.
    """

    def __init__(
        self,
        href: str | os.PathLike[str],
        *,
        crs: Any = None,
        exclude_classes: tuple[int, ...] = NOISE_CLASSES,
        chunk_points: int = 250_000,
    ) -> None:
        if chunk_points < 1:
            raise InvalidInputError(f"chunk_points={chunk_points} must be a positive integer")
        self.href = str(href)
        self.exclude_classes = tuple(exclude_classes)
        self.chunk_points = int(chunk_points)
        if not is_remote(self.href) and not Path(self.href).is_file():
            raise DataFileNotFoundError(
                f"point cloud {self.href} does not exist: check the path or the item's href"
            )
        with self._stream() as stream, _decoding(self.href):
            header = laspy.LasReader(stream, closefd=False).header
            size = stream.seek(0, os.SEEK_END)
        first = header.vlrs[0] if len(header.vlrs) else None
        is_copc = first is not None and str(first.user_id).strip("\0") == "copc"
        _check_size(self.href, header, first if is_copc else None, size)
        declared = crs_from_vlrs(header.vlrs, header.evlrs)
        # Stored coordinates are rounded to the scale: pad the header bounds by it.
        self._pad = 2.0 * float(max(header.scales[0], header.scales[1]))
        self.info = PointCloudInfo(
            href=self.href,
            point_count=int(header.point_count),
            bounds=(
                float(header.mins[0]),
                float(header.mins[1]),
                float(header.maxs[0]),
                float(header.maxs[1]),
            ),
            z_range=(float(header.mins[2]), float(header.maxs[2])),
            crs=resolve_point_crs(declared, crs, self.href),
            is_copc=is_copc,
            point_format=int(header.point_format.id),
            version=str(header.version),
        )

    def __repr__(self) -> str:
        kind = "COPC" if self.info.is_copc else "LAS/LAZ"
        return f"PointCloud({self.href!r}, {kind}, {self.info.point_count} points)"

    @contextmanager
    def _stream(self) -> Iterator[BinaryIO]:
        if is_remote(self.href):
            with open_remote(self.href) as remote:
                yield remote
        else:
            with open(self.href, "rb") as local:
                yield local

    def chunks(
        self, bounds: Bounds2D | None = None, *, chunk_points: int | None = None
    ) -> Iterator[PointChunk]:
        """Stream the points (inside ``bounds``, when given) in chunks of the file's CRS.

        Args:
            bounds: ``(xmin, ymin, xmax, ymax)`` in the file's CRS units; points on the edges
                are included. A COPC file reads only the octree nodes that intersect it.
            chunk_points: Points per chunk (about), default the reader's ``chunk_points``.

        Raises:
            CorruptDataError: The file is truncated or corrupt.
        """
        size = chunk_points or self.chunk_points
        if self.info.is_copc:
            yield from self._copc_chunks(bounds, size)
            return
        expected = self.info.point_count
        seen = 0
        with self._stream() as stream, _decoding(self.href):
            reader = laspy.LasReader(stream, closefd=False, decompression_selection=_SELECTION)
            for record in reader.chunk_iterator(size):
                seen += len(record)
                chunk = PointChunk.from_record(record, exclude_classes=self.exclude_classes)
                if bounds is not None:
                    chunk = chunk.select(_inside(chunk, bounds))
                yield chunk
        if seen < expected:
            raise CorruptDataError(
                f"point cloud {self.href} is truncated: its header announces {expected} points "
                f"but only {seen} could be read; download it again"
            )

    def query(self, bounds: Bounds2D | None = None) -> PointChunk:
        """All points inside ``bounds`` (file CRS) as one chunk; see :meth:`chunks`."""
        return PointChunk.concat(list(self.chunks(bounds)))

    def _copc_chunks(self, bounds: Bounds2D | None, chunk_points: int) -> Iterator[PointChunk]:
        """A grid of COPC bounds queries covering ``bounds`` (half-open cells, no duplicates)."""
        pad = self._pad
        file_xmin, file_ymin, file_xmax, file_ymax = self.info.bounds
        file_xmin, file_ymin, file_xmax, file_ymax = (
            file_xmin - pad,
            file_ymin - pad,
            file_xmax + pad,
            file_ymax + pad,
        )
        xmin, ymin, xmax, ymax = (
            bounds if bounds is not None else (file_xmin, file_ymin, file_xmax, file_ymax)
        )
        # Only the part of the query inside the file; a grid dense enough for chunk_points.
        xmin, ymin = max(xmin, file_xmin), max(ymin, file_ymin)
        xmax, ymax = min(xmax, file_xmax), min(ymax, file_ymax)
        if xmax < xmin or ymax < ymin:
            return
        file_area = max((file_xmax - file_xmin) * (file_ymax - file_ymin), 1e-12)
        share = min(1.0, (xmax - xmin) * (ymax - ymin) / file_area)
        cells = max(1, math.ceil(math.sqrt(self.info.point_count * share / chunk_points)))
        xs = np.linspace(xmin, xmax, cells + 1)
        ys = np.linspace(ymin, ymax, cells + 1)
        with self._stream() as stream, _decoding(self.href):
            reader = laspy.CopcReader(stream, close_fd=False, decompression_selection=_SELECTION)
            for i in range(cells):
                for j in range(cells):
                    cell = (float(xs[j]), float(ys[i]), float(xs[j + 1]), float(ys[i + 1]))
                    query = laspy.copc.Bounds(mins=np.array(cell[:2]), maxs=np.array(cell[2:]))
                    record = reader.query(bounds=query)
                    chunk = PointChunk.from_record(record, exclude_classes=self.exclude_classes)
                    last = (j == cells - 1, i == cells - 1)
                    yield chunk.select(_inside(chunk, cell, closed=last))


def _check_size(href: str, header: Any, copc_info: Any, size: int) -> None:
    """Refuse a file shorter than its header says (cut off while copying or downloading).

    The end of the uncompressed points, of the EVLRs' start and of the COPC hierarchy must all
    lie inside the file; a truncated COPC would otherwise read as one with fewer points.
    """
    needed = int(header.offset_to_point_data)
    if not header.are_points_compressed:
        needed += int(header.point_count) * int(header.point_format.size)
    if int(getattr(header, "number_of_evlrs", 0) or 0) > 0:
        needed = max(needed, int(header.start_of_first_evlr) + 60)  # one EVLR header
    if copc_info is not None and hasattr(copc_info, "hierarchy_root_offset"):
        end = int(copc_info.hierarchy_root_offset) + int(copc_info.hierarchy_root_size)
        needed = max(needed, end)
    if size < needed:
        raise CorruptDataError(
            f"point cloud {href} is truncated: its header needs at least {needed} bytes but the "
            f"file has {size}; download it again, or build with on_error='skip'"
        )


def _inside(
    chunk: PointChunk, bounds: Bounds2D, closed: tuple[bool, bool] = (True, True)
) -> np.ndarray:
    """Mask of points in ``bounds``; the max edges are excluded unless ``closed`` says so."""
    xmin, ymin, xmax, ymax = bounds
    x_ok = (chunk.x >= xmin) & ((chunk.x <= xmax) if closed[0] else (chunk.x < xmax))
    y_ok = (chunk.y >= ymin) & ((chunk.y <= ymax) if closed[1] else (chunk.y < ymax))
    mask: np.ndarray = x_ok & y_ok
    return mask


def read_points(
    href: str | os.PathLike[str], *, bounds: Bounds2D | None = None, crs: Any = None
) -> tuple[PointChunk, PointCloudInfo]:
    """Read the points of one file (inside ``bounds``) at once, in the file's CRS.

    For files larger than memory use :class:`PointCloud` and :meth:`PointCloud.chunks`, or
    :func:`geoalign.lidar.rasterize_points`, which stream.

    Returns:
        The points and the file's :class:`PointCloudInfo`.
    """
    cloud = PointCloud(href, crs=crs)
    return cloud.query(bounds), cloud.info
