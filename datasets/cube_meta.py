"""What a sampler needs to know about one group of a finished cube, read once from its metadata."""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import xarray as xr
from pyproj import CRS

from geoalign.errors import (
    CorruptDataError,
    CRSError,
    InvalidInputError,
)

GroupKind = Literal["modality", "labels", "points"]


@dataclass(frozen=True)
class GroupMeta:
    """One modality, label raster or point table of a cube.

    Attributes:
        store: Root folder of the cube (a local Zarr directory store).
        group: Group path in the cube (``"s2"``, ``"labels/water"``).
        kind: ``"modality"`` (``data`` and ``valid``), ``"labels"`` (``classes``) or
            ``"points"`` (a table).
        crs: The cube CRS.
        resolution: Pixel size in CRS units (0 for point tables).
        left: West edge of the grid in CRS units.
        top: North edge of the grid in CRS units.
        height: Rows of the grid.
        width: Columns of the grid.
        bands: Band names in storage order (empty for labels and points).
        times: Time steps as ``datetime64[ns]`` (UTC, naive), shape ``(T,)``; empty for labels.
        scale: CF ``scale_factor``: physical = raw * scale + offset.
        offset: CF ``add_offset``.
        nodata: Stored value meaning "no data" (CF ``_FillValue``; NaN for float stores), or
            the ignore value of a label raster; None when the store records none.
        dtype: Storage dtype of the pixel array.
        attrs: Attributes of the group (sensor, provenance, band statistics...).
    """

    store: Path
    group: str
    kind: GroupKind
    crs: CRS
    resolution: float
    left: float
    top: float
    height: int
    width: int
    bands: tuple[str, ...] = ()
    times: np.ndarray = field(default_factory=lambda: np.array([], dtype="datetime64[ns]"))
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    dtype: np.dtype[Any] = field(default_factory=lambda: np.dtype("float32"))
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """Last component of the group path (``"water"`` for ``"labels/water"``)."""
        return self.group.rsplit("/", 1)[-1]

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(left, bottom, right, top)`` of the grid in CRS units."""
        return (
            self.left,
            self.top - self.height * self.resolution,
            self.left + self.width * self.resolution,
            self.top,
        )


def check_complete(path: str | os.PathLike[str]) -> Path:
    """The store of a finished local cube; refuses a missing, remote or unfinished one."""
    from geoalign.cube_store import check_cube

    if "://" in os.fspath(path):
        raise InvalidInputError(
            f"cube {os.fspath(path)} is not a local folder: geoalign.datasets reads chunk files "
            "directly for speed; copy the store to a local disk first"
        )
    return check_cube(path, purpose="sampling")


def cube_groups(path: str | os.PathLike[str]) -> dict[str, GroupKind]:
    """Every modality, label and point group of a finished cube, with its kind."""
    import zarr

    store = check_complete(path)
    root = zarr.open_group(str(store), mode="r")
    found: dict[str, GroupKind] = {}
    for name, node in root.members(max_depth=None):
        kind = node.attrs.get("geoalign_kind") if isinstance(node, zarr.Group) else None
        if kind in ("modality", "labels", "points"):
            found[name] = kind
    return found


def _root_crs(store: Path) -> CRS:
    import zarr

    attrs = zarr.open_group(str(store), mode="r").attrs
    try:
        grid = json.loads(str(attrs["grid"]))
        return CRS.from_user_input(grid["crs"])
    except (KeyError, ValueError) as error:
        raise CRSError(
            f"cube {store} records no usable grid CRS (root attribute 'grid'): rebuild it with "
            "this version of geoalign"
        ) from error


def read_group_meta(path: str | os.PathLike[str], group: str) -> GroupMeta:
    """Read the metadata of ``group`` (coordinates, attributes, encodings) of a finished cube.

    Raises:
        DataFileNotFoundError, IncompleteCubeError: The cube is missing or unfinished.
        InvalidInputError: ``group`` is not a modality, label or point group of the cube.
    """
    store = check_complete(path)
    groups = cube_groups(store)
    if group not in groups:
        raise InvalidInputError(
            f"cube {store} has no modality or label group {group!r}; it has {sorted(groups)}"
        )
    kind = groups[group]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        ds = xr.open_zarr(
            str(store), group=group, consolidated=False, mask_and_scale=False, chunks=None
        )
    crs = _root_crs(store)
    attrs = dict(ds.attrs)
    if kind == "points":
        resolution = float(attrs.get("resolution", 0.0))
        return GroupMeta(store, group, kind, crs, resolution, 0.0, 0.0, 0, 0, attrs=attrs)
    x = ds["x"].values.astype(np.float64)
    y = ds["y"].values.astype(np.float64)
    if x.size < 2 or y.size < 2 or not (x[1] > x[0] and y[1] < y[0]):
        raise CorruptDataError(
            f"group {group!r} of {store} is not a north-up grid of at least 2 x 2 pixels "
            "(x increasing, y decreasing): rebuild the cube"
        )
    resolution = float(x[1] - x[0])
    base = dict(
        store=store,
        group=group,
        kind=kind,
        crs=crs,
        resolution=resolution,
        left=float(x[0]) - resolution / 2,
        top=float(y[0]) + resolution / 2,
        height=int(y.size),
        width=int(x.size),
        attrs=attrs,
    )
    if kind == "labels":
        classes = ds["classes"]
        return GroupMeta(
            **base,  # type: ignore[arg-type]
            nodata=float(attrs.get("ignore_value", -1)),
            dtype=np.dtype(classes.dtype),
        )
    data = ds["data"]
    fill = data.attrs.get("_FillValue", data.encoding.get("_FillValue"))
    return GroupMeta(
        **base,  # type: ignore[arg-type]
        bands=tuple(str(b) for b in ds["band"].values),
        times=ds["time"].values.astype("datetime64[ns]"),
        scale=float(data.attrs.get("scale_factor", 1.0)),
        offset=float(data.attrs.get("add_offset", 0.0)),
        nodata=None if fill is None else float(fill),
        dtype=np.dtype(data.dtype),
    )
