"""A chunk of LiDAR points as plain numpy columns (structure of arrays), the unit of streaming.

Every reader yields :class:`PointChunk` objects of at most a few million points, so that memory
stays bounded whatever the size of the file; rasterization consumes them chunk by chunk.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from geoalign.errors import InvalidInputError

#: ASPRS classes of noise (7 low point, 18 high noise), dropped by default.
NOISE_CLASSES = (7, 18)

#: The columns of a chunk, in order.
_COLUMNS = (
    "x",
    "y",
    "z",
    "intensity",
    "return_number",
    "number_of_returns",
    "classification",
)

#: Packed record used when points are spilled to disk between passes (29 bytes per point).
SPILL_DTYPE = np.dtype(
    [
        ("x", "<f8"),
        ("y", "<f8"),
        ("z", "<f8"),
        ("intensity", "<u2"),
        ("return_number", "u1"),
        ("number_of_returns", "u1"),
        ("classification", "u1"),
    ]
)


@dataclass(frozen=True)
class PointChunk:
    """Points as columns; all arrays have the same length ``n``.

    Attributes:
        x: Easting (or longitude), float64, units of the chunk's horizontal CRS.
        y: Northing (or latitude), float64, units of the chunk's horizontal CRS.
        z: Height, float64; in metres once converted (see :mod:`geoalign.lidar.transform`),
            in the file's vertical unit before.
        intensity: Return intensity, uint16 (sensor digital numbers, uncalibrated).
        return_number: 1-based return number of the pulse, uint8.
        number_of_returns: Returns of the pulse, uint8.
        classification: ASPRS class code, uint8 (2 = ground).
    """

    x: npt.NDArray[np.float64]
    y: npt.NDArray[np.float64]
    z: npt.NDArray[np.float64]
    intensity: npt.NDArray[np.uint16]
    return_number: npt.NDArray[np.uint8]
    number_of_returns: npt.NDArray[np.uint8]
    classification: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @classmethod
    def empty(cls) -> PointChunk:
        """A chunk of zero points."""
        return cls(
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            np.empty(0, np.float64),
            np.empty(0, np.uint16),
            np.empty(0, np.uint8),
            np.empty(0, np.uint8),
            np.empty(0, np.uint8),
        )

    @classmethod
    def from_record(
        cls, record: Any, *, exclude_classes: Sequence[int] = NOISE_CLASSES
    ) -> PointChunk:
        """Columns of a laspy point record, without withheld points and ``exclude_classes``.

        Args:
            record: A ``laspy.ScaleAwarePointRecord`` (from a LAS/LAZ chunk or a COPC query).
            exclude_classes: ASPRS classes to drop (noise by default).
        """
        classification = np.asarray(record.classification, dtype=np.uint8)
        keep = ~np.asarray(record.withheld, dtype=bool)
        if exclude_classes:
            keep &= ~np.isin(classification, np.asarray(exclude_classes, dtype=np.uint8))
        every = bool(keep.all())

        def column(values: Any, dtype: npt.DTypeLike) -> Any:
            array = np.asarray(values, dtype=dtype)
            return array if every else array[keep]

        return cls(
            x=column(record.x, np.float64),
            y=column(record.y, np.float64),
            z=column(record.z, np.float64),
            intensity=column(record.intensity, np.uint16),
            return_number=column(record.return_number, np.uint8),
            number_of_returns=column(record.number_of_returns, np.uint8),
            classification=classification if every else classification[keep],
        )

    def select(self, mask: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> PointChunk:
        """The points where ``mask`` is True (or at the given indexes)."""
        if mask.dtype == np.bool_:
            mask = np.flatnonzero(mask)  # one pass over the mask, then fast takes
        return PointChunk(
            self.x[mask],
            self.y[mask],
            self.z[mask],
            self.intensity[mask],
            self.return_number[mask],
            self.number_of_returns[mask],
            self.classification[mask],
        )

    def with_coordinates(
        self,
        x: npt.NDArray[np.float64],
        y: npt.NDArray[np.float64],
        z: npt.NDArray[np.float64],
    ) -> PointChunk:
        """The same points at new coordinates (after reprojection)."""
        return PointChunk(
            x, y, z, self.intensity, self.return_number, self.number_of_returns, self.classification
        )

    @classmethod
    def allocate(cls, size: int) -> PointChunk:
        """A chunk of ``size`` uninitialised points, to be filled with :meth:`put`."""
        return cls(*(np.empty(size, dtype=SPILL_DTYPE[name]) for name in _COLUMNS))

    def put(self, start: int, other: PointChunk) -> int:
        """Copy ``other`` into this chunk from index ``start``; returns the index after it.

        Raises:
            InvalidInputError: ``other`` does not fit (more points than allocated).
        """
        end = start + len(other)
        if end > len(self):
            raise InvalidInputError(
                f"{end} points do not fit in a chunk of {len(self)}: the file holds more "
                "points than its header announces"
            )
        for name in _COLUMNS:
            getattr(self, name)[start:end] = getattr(other, name)
        return end

    def head(self, size: int) -> PointChunk:
        """The first ``size`` points (views, no copy)."""
        return PointChunk(*(getattr(self, name)[:size] for name in _COLUMNS))

    @classmethod
    def concat(cls, chunks: Sequence[PointChunk]) -> PointChunk:
        """One chunk holding the points of ``chunks`` in order."""
        chunks = [c for c in chunks if len(c)]
        if not chunks:
            return cls.empty()
        if len(chunks) == 1:
            return chunks[0]
        return cls(*(np.concatenate([getattr(c, name) for c in chunks]) for name in _COLUMNS))

    def to_records(self) -> npt.NDArray[Any]:
        """The points packed as :data:`SPILL_DTYPE` records."""
        out = np.empty(len(self), dtype=SPILL_DTYPE)
        for name in SPILL_DTYPE.names or ():
            out[name] = getattr(self, name)
        return out

    @classmethod
    def from_records(cls, records: npt.NDArray[Any]) -> PointChunk:
        """Inverse of :meth:`to_records`."""
        return cls(
            np.ascontiguousarray(records["x"]),
            np.ascontiguousarray(records["y"]),
            np.ascontiguousarray(records["z"]),
            np.ascontiguousarray(records["intensity"]),
            np.ascontiguousarray(records["return_number"]),
            np.ascontiguousarray(records["number_of_returns"]),
            np.ascontiguousarray(records["classification"]),
        )
