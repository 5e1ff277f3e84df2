"""Open raster files shared by every thread of a build, and their footprints on a target CRS.

Opening a file with rasterio costs 1-2 ms (GDAL open, CRS parsing); a cube build touches each
asset when planning (to check it) and in every read block. The pool keeps files open between
uses: a thread takes an idle handle out, reads, and puts it back, so one handle serves every
thread in turn (a GDAL dataset must not be used by two threads at once, but may be used by
several one after another). Local files are re-opened when their size or modification time
changed, so a file rewritten in place is never read through a stale handle.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import rasterio
import rasterio.errors
import rasterio.warp

from geoalign.errors import AssetMissingError, AssetReadError


def _signature(href: str) -> tuple[int, int] | None:
    """(size, mtime in ns) of a local file; None for URLs and GDAL virtual paths."""
    if "://" in href or href.startswith("/vsi"):
        return None
    try:
        stat = os.stat(href)
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


def open_raster(href: str) -> Any:
    """Open ``href`` with rasterio.

    Raises:
        AssetMissingError: The file does not exist (any more: planning checked it).
        AssetReadError: GDAL cannot open it (damaged, or a remote server refused it).

    Both carry the href, so that a build with ``on_error="skip"`` can leave its item out, and are
    raised with no exception chained (see :func:`geoalign.reading.gdal_read`).
    """
    try:
        return rasterio.open(href)
    except rasterio.errors.RasterioIOError as error:
        message = str(error)
        missing = "No such file" in message or "does not exist" in message
        what = "does not exist" if missing else f"cannot be opened by GDAL ({message})"
        kind = AssetMissingError if missing else AssetReadError
        failure = kind(
            f"asset {href} {what}: check the item's href, or build with on_error='skip' "
            "(recipe: on_error: skip) to leave its item out and record it",
            href,
            f"could not be opened while building: {message}",
        )
    raise failure  # outside the except clause: no exception chained


@dataclass
class _Handle:
    dataset: Any
    signature: tuple[int, int] | None


class RasterPool:
    """Idle open datasets per href, least recently used closed first beyond ``size``."""

    def __init__(self, size: int = 256) -> None:
        self._size = size
        self._idle: OrderedDict[str, list[_Handle]] = OrderedDict()
        self._count = 0
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def use(self, href: str) -> Iterator[Any]:
        """Lend an open dataset of ``href`` to the calling thread until the block ends."""
        handle = self._take(href)
        if handle is None:
            handle = _Handle(open_raster(href), _signature(href))
        try:
            yield handle.dataset
        finally:
            self._give(href, handle)

    def keep(self, href: str, dataset: Any) -> None:
        """Put an already open ``dataset`` of ``href`` in the pool (instead of closing it)."""
        self._give(href, _Handle(dataset, _signature(href)))

    def _take(self, href: str) -> _Handle | None:
        signature = _signature(href)
        stale: list[_Handle] = []
        handle = None
        with self._lock:
            handles = self._idle.get(href, [])
            while handles and handle is None:
                candidate = handles.pop()
                self._count -= 1
                if candidate.signature == signature:
                    handle = candidate
                else:  # the file changed on disk since it was opened
                    stale.append(candidate)
            if not handles:
                self._idle.pop(href, None)
        for old in stale:
            old.dataset.close()
        return handle

    def _give(self, href: str, handle: _Handle) -> None:
        closing = []
        with self._lock:
            self._idle.setdefault(href, []).append(handle)
            self._idle.move_to_end(href)
            self._count += 1
            while self._count > self._size:
                oldest, handles = next(iter(self._idle.items()))
                closing.append(handles.pop(0))
                self._count -= 1
                if not handles:
                    del self._idle[oldest]
        for old in closing:
            old.dataset.close()


#: The process-wide pool used by the readers (each dask worker process has its own).
POOL = RasterPool()


@dataclass(frozen=True)
class Footprint:
    """Where a file lies relative to a target CRS.

    Attributes:
        same_crs: The file's CRS is the target CRS.
        bounds: ``(left, bottom, right, top)`` in the target CRS, padded by one source pixel,
            or None when unknown (no CRS, or the bounds cannot be transformed).
    """

    same_crs: bool
    bounds: tuple[float, float, float, float] | None


_FOOTPRINTS: dict[tuple[str, tuple[int, int] | None, str], Footprint] = {}
_FOOTPRINTS_LOCK = threading.Lock()


def footprint(href: str, crs: Any) -> Footprint:
    """The :class:`Footprint` of ``href`` in ``crs`` (an odc-geo CRS), computed once per file.

    Bounds are transformed with 21 points per edge (``rasterio.warp.transform_bounds``) after
    padding them by one source pixel, so they contain every pixel centre the file can warp to.
    """
    key = (href, _signature(href), str(crs))
    with _FOOTPRINTS_LOCK:
        found = _FOOTPRINTS.get(key)
    if found is not None:
        return found
    with POOL.use(href) as src:
        if src.crs is None or crs is None:
            result = Footprint(False, None)
        else:
            same = bool(crs == src.crs)
            left, bottom, right, top = src.bounds
            pad_x, pad_y = abs(src.transform.a), abs(src.transform.e)
            padded = (left - pad_x, bottom - pad_y, right + pad_x, top + pad_y)
            if same:
                result = Footprint(True, padded)
            else:
                try:
                    box = rasterio.warp.transform_bounds(src.crs, str(crs), *padded, densify_pts=21)
                except Exception:  # outside the target CRS's domain: let the warper decide
                    box = None
                if box is not None and not all(math.isfinite(v) for v in box):
                    box = None
                result = Footprint(False, None if box is None else tuple(box))
    with _FOOTPRINTS_LOCK:
        if len(_FOOTPRINTS) > 65536:
            _FOOTPRINTS.clear()
        _FOOTPRINTS[key] = result
    return result
