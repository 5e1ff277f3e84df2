"""Fraction of valid pixels of every window on a sampling grid, from a cube's ``valid`` arrays.

The ``valid`` array of each modality (True where a pixel has data and, for optical sensors, clear
sky) is averaged over dates and over the cells of the sampling grid (the intersection's step,
e.g. 10 m), once, chunk strip by chunk strip. Summed-area tables then give the valid fraction of
any window of whole cells in O(1); a window's fraction is the smallest over its modalities, so a
threshold means "at least this much of every modality is usable". Memory: 8 bytes per cell and
modality (a 20 x 20 km area at 10 m: 32 MB).
"""

from __future__ import annotations

import math

import numpy as np

from geoalign.datasets.cube_dataset import CubeDataset
from geoalign.datasets.intersection import CubeIntersectionDataset
from geoalign.errors import InvalidInputError

#: Rows of fine pixels read per strip (bounded memory for 1 m modalities).
STRIP_ROWS = 1024


class ValidityGrid:
    """Valid fractions of windows of a cube dataset, per cell of its sampling grid.

    Args:
        dataset: A :class:`CubeDataset` or an intersection of them.

    Attributes:
        left: West edge of the grid (CRS units).
        top: North edge of the grid.
        step: Cell size (the dataset's ``res``).
        shape: ``(rows, cols)`` of cells covering the dataset's footprint.
    """

    def __init__(self, dataset: CubeDataset | CubeIntersectionDataset) -> None:
        self.step = float(dataset.res[0])
        xmin, ymin, xmax, ymax = (float(v) for v in dataset.index.total_bounds)
        self.left, self.top = xmin, ymax
        self.shape = (round((ymax - ymin) / self.step), round((xmax - xmin) / self.step))
        members = dataset.members if isinstance(dataset, CubeIntersectionDataset) else [dataset]
        self._tables = [self._table(m) for m in members if not m.is_label]

    def _table(self, member: CubeDataset) -> np.ndarray:
        """Summed-area table ``(rows + 1, cols + 1)`` of one modality's per-cell valid fraction."""
        res = member.res[0]
        ratio = self.step / res
        if abs(ratio - round(ratio)) > 1e-6:
            raise InvalidInputError(
                f"the sampling step {self.step:g} is not a multiple of the {res:g} pixels of "
                f"{member.meta.group!r}"
            )
        k = round(ratio)
        rows, cols = self.shape
        r_off = round((member.meta.top - self.top) / res)
        c_off = round((self.left - member.meta.left) / res)
        valid = member.valid_array
        cells = np.zeros((rows, cols), dtype=np.float64)
        strip = max(1, STRIP_ROWS // k)
        times = max(1, member.meta.times.size)
        for first in range(0, rows, strip):
            last = min(rows, first + strip)
            window_rows = (r_off + first * k, r_off + last * k)
            window_cols = (c_off, c_off + cols * k)
            total = np.zeros((last - first, cols), dtype=np.float64)
            for t in range(member.meta.times.size):
                mask = valid.read((t,), window_rows, window_cols, False)
                total += mask.reshape(last - first, k, cols, k).sum(axis=(1, 3))
            cells[first:last] = total / (k * k * times)
        table = np.zeros((rows + 1, cols + 1), dtype=np.float64)
        np.cumsum(np.cumsum(cells, axis=0), axis=1, out=table[1:, 1:])
        return table

    def all_windows(self, height: int, width: int) -> np.ndarray:
        """Valid fraction of every window of ``height x width`` cells fully inside the grid.

        Returns:
            Array ``(rows - height + 1, cols - width + 1)``: entry ``[r, c]`` is the window whose
            top-left cell is ``(r, c)``; empty if the window is larger than the grid.
        """
        rows, cols = self.shape
        if height > rows or width > cols:
            return np.zeros((0, 0))
        out = np.ones((rows - height + 1, cols - width + 1))
        for table in self._tables:
            sums = (
                table[height:, width:]
                - table[:-height, width:]
                - table[height:, :-width]
                + table[:-height, :-width]
            )
            np.minimum(out, sums / (height * width), out=out)
        return out

    def fractions(self, rows: np.ndarray, cols: np.ndarray, height: int, width: int) -> np.ndarray:
        """Valid fraction of windows at any cell offsets (parts outside the grid count invalid)."""
        n_rows, n_cols = self.shape
        r0, r1 = np.clip(rows, 0, n_rows), np.clip(rows + height, 0, n_rows)
        c0, c1 = np.clip(cols, 0, n_cols), np.clip(cols + width, 0, n_cols)
        out = np.ones(np.shape(rows))
        for table in self._tables:
            sums = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
            np.minimum(out, sums / (height * width), out=out)
        return out


def window_cells(
    size: float | tuple[float, float], step: float, *, pixels: bool
) -> tuple[int, int]:
    """Window size ``(rows, cols)`` in cells of ``step`` from a sampler's ``size``."""
    pair = (size, size) if isinstance(size, int | float) else size
    if pixels:
        cells = (round(pair[0]), round(pair[1]))
    else:
        cells = (round(pair[0] / step), round(pair[1] / step))
    if min(cells) < 1 or any(not math.isfinite(v) for v in pair):
        raise InvalidInputError(
            f"size={size} is smaller than one {step:g} cell of the sampling grid: give the size "
            "in pixels of the grid (units=Units.PIXELS) or in CRS units (Units.CRS)"
        )
    return cells
