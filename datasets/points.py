"""Labelled points of a cube (``labels/<name>`` point tables): lookup by window.

A point table holds ``x``, ``y`` (cube CRS) and ``attr_<column>`` values per point (facility
type as in Meter-ML, GEDI canopy height, a field-plot measurement...). A window drawn around a
point (:class:`geoalign.datasets.PointWindowSampler`) gets that point's attributes attached as
``point_<name>_<column>`` entries, plus ``point_<name>_xy`` (its coordinates) and
``point_<name>_found`` (False if no point lies in the window, e.g. a random window).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geoalign.datasets.cube_meta import read_group_meta
from geoalign.errors import InvalidInputError, NoDataFoundError


class PointTable:
    """The points of one point group, sorted by x for fast window lookups.

    Args:
        path: A finished cube.
        group: A point group (``"labels/plots"``).

    Attributes:
        name: Short name used in sample keys (``"plots"``).
        x: Easting of each point in the cube CRS, sorted, shape ``(N,)``.
        y: Northing of each point, shape ``(N,)``.
        attrs: Column name -> values ``(N,)`` (float64 for numbers, object for strings).
    """

    def __init__(self, path: str | os.PathLike[str], group: str) -> None:
        meta = read_group_meta(path, group)
        if meta.kind != "points":
            raise InvalidInputError(
                f"{group!r} is a {meta.kind} group, not a point table: pass a group whose "
                "geoalign_kind is 'points' (made from a point layer by build_cube)"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=UserWarning)
            ds = xr.open_zarr(str(Path(path)), group=group, consolidated=False).load()
        if ds.sizes.get("point", 0) == 0:
            raise NoDataFoundError(f"point table {group!r} of {path} has no point inside the grid")
        order = np.argsort(ds["x"].values, kind="stable")
        self.group = group
        self.name = meta.name
        self.x = ds["x"].values.astype(np.float64)[order]
        self.y = ds["y"].values.astype(np.float64)[order]
        self.attrs: dict[str, np.ndarray] = {}
        for var in ds.data_vars:
            if not str(var).startswith("attr_"):
                continue
            values = ds[var].values[order]
            column = str(var).removeprefix("attr_")
            if values.dtype.kind in "biuf":
                self.attrs[column] = values.astype(np.float64)
            else:
                self.attrs[column] = np.array([str(v) for v in values], dtype=object)

    def __len__(self) -> int:
        return int(self.x.size)

    def keys(self) -> list[str]:
        """Sample keys this table adds."""
        prefix = f"point_{self.name}"
        return [f"{prefix}_found", f"{prefix}_xy", *(f"{prefix}_{c}" for c in self.attrs)]

    def nearest(self, bounds: tuple[float, float, float, float]) -> int | None:
        """Index of the point inside ``bounds`` nearest to the window centre, or None."""
        lo = int(np.searchsorted(self.x, bounds[0], "left"))
        hi = int(np.searchsorted(self.x, bounds[2], "left"))
        if hi <= lo:
            return None
        ys = self.y[lo:hi]
        inside = np.flatnonzero((ys >= bounds[1]) & (ys < bounds[3]))
        if inside.size == 0:
            return None
        cx, cy = (bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2
        dist = (self.x[lo + inside] - cx) ** 2 + (ys[inside] - cy) ** 2
        return lo + int(inside[int(np.argmin(dist))])

    def entries(self, bounds: tuple[float, float, float, float]) -> dict[str, Any]:
        """The sample entries of the point nearest the centre of ``bounds`` (numpy / str)."""
        index = self.nearest(bounds)
        prefix = f"point_{self.name}"
        found = index is not None
        out: dict[str, Any] = {
            f"{prefix}_found": np.array(found),
            f"{prefix}_xy": np.array(
                [self.x[index], self.y[index]] if index is not None else [np.nan, np.nan]
            ),
        }
        for column, values in self.attrs.items():
            if values.dtype == object:
                out[f"{prefix}_{column}"] = str(values[index]) if index is not None else ""
            else:
                out[f"{prefix}_{column}"] = np.array(
                    values[index] if index is not None else np.nan, dtype=np.float64
                )
        return out
