"""torchgeo samplers for cubes: valid-data thresholds, diverse batches, windows on points.

All of them are torchgeo ``GeoSampler``/``BatchGeoSampler`` subclasses yielding torchgeo queries
``(slice(xmin, xmax), slice(ymin, ymax), slice(tmin, tmax))`` on the dataset's sampling grid,
so they also drive any torchgeo code. Unlike torchgeo 0.8.1's ``RandomGeoSampler`` and
``RandomBatchGeoSampler``, which draw the tile with ``torch.multinomial`` on the *global* RNG even
when given a generator, every random draw here uses the sampler's ``generator`` (or, when None,
one seed taken from torch's global RNG per epoch), so a seeded run repeats exactly.

- :class:`RandomWindowSampler`: uniform windows whose valid fraction is at least ``min_valid``.
- :class:`GridWindowSampler`: a regular grid of windows (the last row/column moved inside the
  footprint instead of hanging over its edge), those below ``min_valid`` skipped.
- :class:`MultiPlaceBatchSampler`: each batch takes one window from each of ``batch_size``
  distinct places (tiles of the footprint): windows of a batch never overlap, which gives a
  contrastive loss many different negatives. torchgeo's ``RandomBatchGeoSampler`` draws a
  whole batch inside one tile of its index.
- :class:`PointWindowSampler`: one window centred on each point of a point table.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import torch
from shapely import Polygon
from torchgeo.datasets.utils import GeoSlice
from torchgeo.samplers import BatchGeoSampler, GeoSampler, Units

from geoalign.datasets.cube_dataset import CubeDataset
from geoalign.datasets.intersection import CubeIntersectionDataset
from geoalign.datasets.points import PointTable
from geoalign.datasets.validity import ValidityGrid, window_cells
from geoalign.errors import InvalidInputError, NoDataFoundError

Query = tuple[slice, slice, slice]
#: Valid fractions are sums of per-cell means: a window exactly at the threshold may compute a
#: hair below it.
TOLERANCE = 1e-9
CubeLike = CubeDataset | CubeIntersectionDataset


class _Windows:
    """Window positions (top-left cells) on a dataset's sampling grid, filtered by validity."""

    def __init__(
        self,
        dataset: CubeLike,
        size: float | tuple[float, float],
        units: Units,
        min_valid: float,
        roi: Polygon | None,
    ) -> None:
        if not isinstance(dataset, CubeDataset | CubeIntersectionDataset):
            raise InvalidInputError(
                f"{type(dataset).__name__} is not a cube dataset: these samplers need the "
                "cube's grid and valid masks; use torchgeo's samplers for other GeoDatasets"
            )
        if not 0.0 <= min_valid <= 1.0:
            raise InvalidInputError(f"min_valid={min_valid}: give a fraction between 0 and 1")
        self.step = float(dataset.res[0])
        xmin, ymin, xmax, ymax = (float(v) for v in dataset.index.total_bounds)
        self.left, self.top = xmin, ymax
        self.grid_shape = (round((ymax - ymin) / self.step), round((xmax - xmin) / self.step))
        self.cells = window_cells(size, self.step, pixels=units == Units.PIXELS)
        self.min_valid = min_valid
        self.validity = ValidityGrid(dataset) if min_valid > 0 else None
        self.limits = self._roi_limits(roi)

    def _roi_limits(self, roi: Polygon | None) -> tuple[int, int, int, int]:
        """First/last-plus-one rows and columns of cells a window may cover."""
        rows, cols = self.grid_shape
        if roi is None:
            return 0, rows, 0, cols
        rx0, ry0, rx1, ry1 = roi.bounds
        r0 = max(0, int(np.ceil((self.top - ry1) / self.step - 1e-9)))
        r1 = min(rows, int(np.floor((self.top - ry0) / self.step + 1e-9)))
        c0 = max(0, int(np.ceil((rx0 - self.left) / self.step - 1e-9)))
        c1 = min(cols, int(np.floor((rx1 - self.left) / self.step + 1e-9)))
        return r0, r1, c0, c1

    def passing(self) -> np.ndarray:
        """Boolean ``(rows, cols)`` of top-left cells whose window fits and passes ``min_valid``."""
        rows, cols = self.grid_shape
        h, w = self.cells
        ok = np.zeros((max(rows - h + 1, 0), max(cols - w + 1, 0)), dtype=bool)
        r0, r1, c0, c1 = self.limits
        ok[r0 : max(r1 - h + 1, r0), c0 : max(c1 - w + 1, c0)] = True
        if self.validity is not None and ok.size:
            ok &= self.validity.all_windows(h, w) >= self.min_valid - TOLERANCE
        if not ok.any():
            raise NoDataFoundError(
                f"no window of {h} x {w} cells of {self.step:g} fits the area"
                + (f" with at least {self.min_valid:.0%} valid pixels" if self.min_valid else "")
                + ": lower min_valid, use smaller windows, or widen the region of interest"
            )
        return ok

    def query(self, row: int, col: int, times: pd.Interval) -> Query:
        """The torchgeo query of the window whose top-left cell is ``(row, col)``."""
        h, w = self.cells
        xmin = self.left + col * self.step
        ymax = self.top - row * self.step
        return (
            slice(xmin, xmin + w * self.step),
            slice(ymax - h * self.step, ymax),
            slice(times.left, times.right),
        )


def _generator(generator: torch.Generator | None) -> torch.Generator:
    """The sampler's generator, or a fresh one seeded from torch's global RNG (one draw)."""
    if generator is not None:
        return generator
    fresh = torch.Generator()
    fresh.manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
    return fresh


class RandomWindowSampler(GeoSampler):
    """Random windows, uniform over positions whose valid fraction is at least ``min_valid``.

    Args:
        dataset: A cube dataset or intersection.
        size: Window ``(height, width)`` or edge, in pixels of ``dataset.res`` or CRS units.
        length: Windows per epoch (default: as many as tile the footprint without overlap).
        units: ``Units.PIXELS`` or ``Units.CRS``.
        min_valid: Minimum fraction of valid pixels of every modality (0 keeps all windows).
        roi: Region of interest (windows lie inside its bounding box).
        toi: Time of interest (the time range of every query).
        generator: Random generator; the only source of randomness.
    """

    def __init__(
        self,
        dataset: CubeLike,
        size: float | tuple[float, float],
        length: int | None = None,
        *,
        units: Units = Units.PIXELS,
        min_valid: float = 0.0,
        roi: Polygon | None = None,
        toi: pd.Interval | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dataset, roi, toi)
        self.windows = _Windows(dataset, size, units, min_valid, roi)
        self._positions = np.flatnonzero(self.windows.passing())
        self._width = self.windows.grid_shape[1] - self.windows.cells[1] + 1
        rows, cols = self.windows.grid_shape
        self.length = length or max(
            1, (rows // self.windows.cells[0]) * (cols // self.windows.cells[1])
        )
        self.generator = generator

    def __iter__(self) -> Iterator[Query]:
        """Yield ``length`` random windows."""
        rng = _generator(self.generator)
        picks = torch.randint(len(self._positions), (self.length,), generator=rng).numpy()
        for flat in self._positions[picks].tolist():
            yield self.windows.query(flat // self._width, flat % self._width, self.toi)

    def __len__(self) -> int:
        return int(self.length)


class GridWindowSampler(GeoSampler):
    """Windows on a regular grid covering the footprint; those below ``min_valid`` are skipped.

    Args:
        dataset: A cube dataset or intersection.
        size: Window size (see :class:`RandomWindowSampler`).
        stride: Distance between windows, same units (default: ``size``, no overlap).
        units: ``Units.PIXELS`` or ``Units.CRS``.
        min_valid: Minimum fraction of valid pixels of every modality.
        roi: Region of interest.
        toi: Time of interest.
    """

    def __init__(
        self,
        dataset: CubeLike,
        size: float | tuple[float, float],
        stride: float | tuple[float, float] | None = None,
        *,
        units: Units = Units.PIXELS,
        min_valid: float = 0.0,
        roi: Polygon | None = None,
        toi: pd.Interval | None = None,
    ) -> None:
        super().__init__(dataset, roi, toi)
        self.windows = _Windows(dataset, size, units, 0.0, roi)
        step = self.windows.step
        sy, sx = window_cells(
            size if stride is None else stride, step, pixels=units == Units.PIXELS
        )
        h, w = self.windows.cells
        r0, r1, c0, c1 = self.windows.limits
        rows = _starts(r0, r1 - h, sy)
        cols = _starts(c0, c1 - w, sx)
        grid_r, grid_c = np.meshgrid(rows, cols, indexing="ij")
        keep = np.ones(grid_r.shape, dtype=bool)
        if min_valid > 0:
            keep = ValidityGrid(dataset).fractions(grid_r, grid_c, h, w) >= min_valid - TOLERANCE
        self._cells = list(zip(grid_r[keep].tolist(), grid_c[keep].tolist(), strict=True))
        if not self._cells:
            raise NoDataFoundError(
                f"no grid window of {h} x {w} cells passes min_valid={min_valid}: lower it"
            )

    def __iter__(self) -> Iterator[Query]:
        """Yield the windows row by row."""
        for row, col in self._cells:
            yield self.windows.query(row, col, self.toi)

    def __len__(self) -> int:
        return len(self._cells)


def _starts(first: int, last: int, stride: int) -> np.ndarray:
    """Window starts from ``first`` every ``stride``, plus ``last`` so the edge is covered."""
    if last < first:
        return np.zeros(0, dtype=np.int64)
    starts = list(range(first, last + 1, stride))
    if starts[-1] != last:
        starts.append(last)
    return np.array(starts, dtype=np.int64)


class MultiPlaceBatchSampler(BatchGeoSampler):
    """Batches whose windows come from ``batch_size`` distinct places and never overlap.

    The footprint is cut into square places of ``place_size``; a batch picks distinct places
    at random (among those holding a window that passes ``min_valid``) and one random window
    inside each.

    Args:
        dataset: A cube dataset or intersection.
        size: Window size (see :class:`RandomWindowSampler`).
        batch_size: Windows per batch (distinct places).
        length: Batches per epoch (default: as many windows as tile the footprint).
        place_size: Edge of a place, same units as ``size`` (default: twice the window).
        units: ``Units.PIXELS`` or ``Units.CRS``.
        min_valid: Minimum fraction of valid pixels of every modality.
        roi: Region of interest.
        toi: Time of interest.
        generator: Random generator; the only source of randomness.

    Raises:
        InvalidInputError: Fewer eligible places than ``batch_size``.
    """

    def __init__(
        self,
        dataset: CubeLike,
        size: float | tuple[float, float],
        batch_size: int,
        length: int | None = None,
        *,
        place_size: float | tuple[float, float] | None = None,
        units: Units = Units.PIXELS,
        min_valid: float = 0.0,
        roi: Polygon | None = None,
        toi: pd.Interval | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dataset, roi, toi)
        self.windows = _Windows(dataset, size, units, min_valid, roi)
        h, w = self.windows.cells
        if place_size is None:
            ph, pw = 2 * h, 2 * w
        else:
            ph, pw = window_cells(place_size, self.windows.step, pixels=units == Units.PIXELS)
        if ph < h or pw < w:
            raise InvalidInputError(f"place_size {place_size} is smaller than the window {size}")
        ok = self.windows.passing()
        rows, cols = self.windows.grid_shape
        self._places: list[np.ndarray] = []  # per place: passing top-left cells as r * cols + c
        for pr in range(0, rows - h + 1, ph):
            for pc in range(0, cols - w + 1, pw):
                block = ok[pr : pr + ph - h + 1, pc : pc + pw - w + 1]
                rr, cc = np.nonzero(block)
                if rr.size:
                    self._places.append((rr + pr) * cols + (cc + pc))
        if len(self._places) < batch_size:
            raise InvalidInputError(
                f"only {len(self._places)} places of {ph} x {pw} cells hold a usable window, "
                f"fewer than batch_size={batch_size}: use a smaller place_size or batch_size"
            )
        self.batch_size = batch_size
        self._cols = cols
        self.length = length or max(1, (rows // h) * (cols // w) // batch_size)
        self.generator = generator

    def __iter__(self) -> Iterator[list[GeoSlice]]:
        """Yield ``length`` batches of windows from distinct places."""
        rng = _generator(self.generator)
        for _ in range(self.length):
            places = torch.randperm(len(self._places), generator=rng)[: self.batch_size]
            batch: list[GeoSlice] = []
            for place in places.tolist():
                cells = self._places[place]
                pick = int(torch.randint(len(cells), (1,), generator=rng).item())
                flat = int(cells[pick])
                batch.append(self.windows.query(flat // self._cols, flat % self._cols, self.toi))
            yield batch

    def __len__(self) -> int:
        return int(self.length)


class PointWindowSampler(GeoSampler):
    """One window centred on each point of a point table (in table order, or shuffled).

    Combine with ``points=`` on the intersection (or :func:`open_cube_dataset`) to attach the
    point's attributes (its label) to the sample.

    Args:
        dataset: A cube dataset or intersection.
        points: A point group of the cube (``"labels/plots"``) or a loaded :class:`PointTable`.
        size: Window size (see :class:`RandomWindowSampler`).
        units: ``Units.PIXELS`` or ``Units.CRS``.
        min_valid: Skip points whose window has less valid data (outside the cube is invalid).
        shuffle: Visit the points in a random order each epoch.
        generator: Random generator for ``shuffle``.
    """

    def __init__(
        self,
        dataset: CubeLike,
        points: str | PointTable,
        size: float | tuple[float, float],
        *,
        units: Units = Units.PIXELS,
        min_valid: float = 0.0,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(dataset)
        if isinstance(points, str):
            store = (
                dataset.members[0].meta.store
                if isinstance(dataset, CubeIntersectionDataset)
                else dataset.meta.store
            )
            points = PointTable(store, points)
        self.table = points
        self.windows = _Windows(dataset, size, units, 0.0, None)
        h, w = self.windows.cells
        step = self.windows.step
        col = np.round((points.x - self.windows.left) / step - w / 2).astype(np.int64)
        row = np.round((self.windows.top - points.y) / step - h / 2).astype(np.int64)
        keep = np.ones(col.shape, dtype=bool)
        if min_valid > 0:
            keep = ValidityGrid(dataset).fractions(row, col, h, w) >= min_valid - TOLERANCE
        self._cells = np.stack([row[keep], col[keep]], axis=1)
        if not len(self._cells):
            raise NoDataFoundError(f"no point's window passes min_valid={min_valid}: lower it")
        self.shuffle = shuffle
        self.generator = generator

    def __iter__(self) -> Iterator[Query]:
        """Yield one window per point."""
        order: Any = range(len(self._cells))
        if self.shuffle:
            order = torch.randperm(len(self._cells), generator=_generator(self.generator)).tolist()
        for i in order:
            row, col = self._cells[i]
            yield self.windows.query(int(row), int(col), self.toi)

    def __len__(self) -> int:
        return len(self._cells)
