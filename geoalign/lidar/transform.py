"""Reproject points to the cube's CRS with pyproj, and heights to metres.

Horizontal coordinates go through one ``pyproj.Transformer`` (``always_xy``: easting first,
whatever the axis order of either CRS); heights are multiplied by the file's height unit
(:attr:`geoalign.lidar.crs.PointCRS.z_to_metres`) and keep their vertical datum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj

from geoalign.errors import CRSError
from geoalign.lidar.crs import PointCRS
from geoalign.lidar.points import PointChunk

#: A bounding box ``(xmin, ymin, xmax, ymax)``.
Box = tuple[float, float, float, float]

#: Points added along each edge when a bounding box is transformed (curved edges).
_DENSIFY = 21


def as_pyproj(crs: Any) -> pyproj.CRS:
    """A ``pyproj.CRS`` from an odc-geo or rasterio CRS, an EPSG code, WKT or PROJJSON."""
    if isinstance(crs, pyproj.CRS):
        return crs
    native = getattr(crs, "proj", None)  # odc.geo.crs.CRS wraps a pyproj CRS
    if isinstance(native, pyproj.CRS):
        return native
    try:
        text = crs.to_wkt() if hasattr(crs, "to_wkt") else crs
        return pyproj.CRS.from_user_input(text)
    except pyproj.exceptions.CRSError as error:
        raise CRSError(f"{str(crs)[:80]!r} is not a CRS pyproj understands: {error}") from error


class PointTransformer:
    """Moves points from a point cloud's CRS into a target horizontal CRS.

    Args:
        source: The point cloud's CRS (horizontal part and height unit).
        target: Target horizontal CRS (the cube's), anything :func:`as_pyproj` accepts.

    Raises:
        CRSError: PROJ finds no transformation between the two.
    """

    def __init__(self, source: PointCRS, target: Any) -> None:
        self.source = source
        self.target = as_pyproj(target)
        self.identity = source.horizontal == self.target
        self._transformer: pyproj.Transformer | None = None
        if not self.identity:
            try:
                self._transformer = pyproj.Transformer.from_crs(
                    source.horizontal, self.target, always_xy=True
                )
            except pyproj.exceptions.ProjError as error:
                raise CRSError(
                    f"no transformation from {source.horizontal.name} to {self.target.name}: "
                    f"{error}"
                ) from error

    def __call__(self, chunk: PointChunk) -> PointChunk:
        """The chunk in the target CRS, heights in metres (a new chunk; the input is unchanged).

        Points that PROJ cannot transform (outside the CRS's domain) are dropped.
        """
        z = chunk.z * self.source.z_to_metres if self.source.z_to_metres != 1.0 else chunk.z
        if self._transformer is None:
            return chunk.with_coordinates(chunk.x, chunk.y, z)
        x, y = self._transformer.transform(chunk.x, chunk.y)
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        moved = chunk.with_coordinates(x, y, z)
        finite = np.isfinite(x) & np.isfinite(y)
        return moved if bool(finite.all()) else moved.select(finite)

    def to_target(self, bounds: Box) -> Box:
        """A bounding box of the source CRS as a box of the target CRS (covering, densified)."""
        if self._transformer is None:
            return bounds
        return _box(self._transformer.transform_bounds(*bounds, densify_pts=_DENSIFY))

    def to_source(self, bounds: Box) -> Box:
        """A bounding box of the target CRS as a box of the source CRS (covering, densified)."""
        if self._transformer is None:
            return bounds
        inverse = pyproj.enums.TransformDirection.INVERSE
        return _box(
            self._transformer.transform_bounds(*bounds, densify_pts=_DENSIFY, direction=inverse)
        )


def _box(values: Any) -> Box:
    xmin, ymin, xmax, ymax = (float(v) for v in values)
    return xmin, ymin, xmax, ymax
