"""Label layers: vector polygons or points (any CRS) placed on a cube's grid.

Polygons are rasterized (class codes, with an ignore value where no polygon lies); label rasters
(GeoTIFF and any GDAL raster) are warped onto the grid with nearest neighbour; points become
a table with their grid coordinates (row and column at the layer's resolution) and attributes,
and can also be burnt into a sparse raster. Both live in the cube under ``labels/<name>``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.xr import xr_coords
from rasterio.features import rasterize

from geoalign.errors import CRSError, DataFileNotFoundError, InvalidInputError
from geoalign.grid import CubeGrid

#: Label value of pixels no polygon covers (int16 class rasters).
IGNORE_VALUE = -1

#: File suffixes read as label rasters when ``kind="auto"``.
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".bsq", ".dat")


@dataclass(frozen=True)
class LabelLayer:
    """A vector label source to place on the cube grid.

    Attributes:
        name: Group name under ``labels/``.
        source: A GeoDataFrame, or a path to any geopandas-readable file (GeoPackage, GeoJSON...).
        column: Attribute holding the class (integers, or strings mapped to codes 0..n-1 in
            sorted order) or, for points, the value to keep; None burns 1 for every geometry.
        resolution: Pixel size of the label raster in CRS units; None uses the base resolution.
        kind: ``"auto"`` (a raster file if GDAL opens it as one; else points if every geometry is
            a point, else polygons), ``"raster"``, ``"polygons"`` or ``"points"``.
        ignore_values: For rasters, source values that mean "no label" (besides the file's
            nodata); they become :data:`IGNORE_VALUE`.
        layer: Layer of a multi-layer vector file (GeoPackage); None reads the default one.
        all_touched: Burn every pixel a polygon touches, not only those whose centre it covers.
    """

    name: str
    source: gpd.GeoDataFrame | str | os.PathLike[str]
    column: str | None = None
    resolution: float | None = None
    kind: Literal["auto", "raster", "polygons", "points"] = "auto"
    all_touched: bool = False
    ignore_values: tuple[int, ...] = ()
    layer: str | None = None

    def is_raster(self) -> bool:
        """True if the source is a raster file (by ``kind``, or by what GDAL can open)."""
        if self.kind != "auto" or isinstance(self.source, gpd.GeoDataFrame):
            return self.kind == "raster"
        return Path(self.source).suffix.lower() in RASTER_SUFFIXES

    def read(self) -> gpd.GeoDataFrame:
        """Load the labels as a GeoDataFrame with a CRS."""
        if isinstance(self.source, gpd.GeoDataFrame):
            frame = self.source
        else:
            path = Path(self.source)
            if not path.exists():
                raise DataFileNotFoundError(
                    f"label file {path} (layer {self.name!r}) does not exist"
                )
            frame = gpd.read_file(path, layer=self.layer)
        if frame.crs is None:
            raise CRSError(
                f"label layer {self.name!r} has no CRS: set it on the GeoDataFrame "
                "(frame.set_crs(...)) or in the file"
            )
        if self.column is not None and self.column not in frame.columns:
            raise InvalidInputError(
                f"label layer {self.name!r} has no column {self.column!r}; columns: "
                f"{[c for c in frame.columns if c != 'geometry']}"
            )
        return frame

    def fingerprint(self) -> str:
        """A hash of the layer's content, for safe resumes."""
        if self.is_raster():
            path = Path(str(self.source))
            stat = path.stat()
            return (
                f"{self.name}:{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{self.resolution}"
            )
        frame = self.read()
        digest = hashlib.sha256()
        for geometry in frame.geometry.to_wkb():
            digest.update(geometry)
        digest.update(frame.drop(columns="geometry").to_csv().encode())
        digest.update(str(frame.crs).encode())
        return f"{self.name}:{self.column}:{self.resolution}:{self.kind}:{digest.hexdigest()}"


def _class_codes(values: pd.Series) -> tuple[np.ndarray, dict[int, str]]:
    """Integer class codes and their names (strings are coded in sorted order)."""
    if pd.api.types.is_integer_dtype(values):
        codes = values.to_numpy(dtype=np.int64)
        return codes, {int(v): str(v) for v in sorted(set(codes.tolist()))}
    names = sorted({str(v) for v in values})
    lookup = {name: code for code, name in enumerate(names)}
    return np.array([lookup[str(v)] for v in values]), {code: n for n, code in lookup.items()}


def polygon_layer(layer: LabelLayer, frame: gpd.GeoDataFrame, grid: CubeGrid) -> xr.Dataset:
    """Rasterize polygons onto the grid: ``classes (y, x)`` int16, :data:`IGNORE_VALUE` outside."""
    resolution = layer.resolution or grid.base_resolution
    geobox = grid.geobox_at(resolution)
    frame = frame.to_crs(grid.crs.to_wkt())
    if layer.column is None:
        codes, names = np.ones(len(frame), dtype=np.int64), {1: layer.name}
    else:
        codes, names = _class_codes(frame[layer.column])
    if codes.size and (
        codes.min() < np.iinfo(np.int16).min + 1 or codes.max() > np.iinfo(np.int16).max
    ):
        raise InvalidInputError(f"class codes of layer {layer.name!r} do not fit in int16")
    shapes = [
        (geom, int(code))
        for geom, code in zip(frame.geometry, codes, strict=True)
        if geom is not None and not geom.is_empty
    ]
    raster = (
        rasterize(
            shapes,
            out_shape=(geobox.shape.y, geobox.shape.x),
            transform=geobox.affine,
            fill=IGNORE_VALUE,
            dtype="int16",
            all_touched=layer.all_touched,
        )
        if shapes
        else np.full((geobox.shape.y, geobox.shape.x), IGNORE_VALUE, dtype=np.int16)
    )
    return xr.Dataset(
        {"classes": (("y", "x"), raster)},
        coords=xr_coords(geobox, crs_coord_name="spatial_ref"),
        attrs={
            "geoalign_kind": "labels",
            "ignore_value": IGNORE_VALUE,
            "class_names": [f"{code}:{name}" for code, name in names.items()],
            "resolution": resolution,
        },
    )


def point_layer(layer: LabelLayer, frame: gpd.GeoDataFrame, grid: CubeGrid) -> xr.Dataset:
    """Points as a table on the grid: x/y in the cube CRS, row/col at the layer's resolution.

    Points outside the grid are dropped. Every non-geometry attribute is kept as a variable.
    """
    resolution = layer.resolution or grid.base_resolution
    geobox = grid.geobox_at(resolution)
    frame = frame.to_crs(grid.crs.to_wkt())
    x = frame.geometry.x.to_numpy()
    y = frame.geometry.y.to_numpy()
    transform = geobox.affine  # north-up: no rotation terms on a cube grid
    col_f = (x - transform.c) / transform.a
    row_f = (y - transform.f) / transform.e
    col, row = np.floor(col_f).astype(np.int64), np.floor(row_f).astype(np.int64)
    inside = (row >= 0) & (row < geobox.shape.y) & (col >= 0) & (col < geobox.shape.x)
    variables: dict[str, Any] = {
        "x": ("point", x[inside]),
        "y": ("point", y[inside]),
        "row": ("point", row[inside]),
        "col": ("point", col[inside]),
    }
    for column in frame.columns:
        if column == "geometry":
            continue
        values = frame[column].to_numpy()[inside]
        if values.dtype.kind in "OUS":
            # variable-length strings: the only string type with a stable Zarr v3 encoding
            values = np.array([str(v) for v in values], dtype=object)
        variables[f"attr_{column}"] = ("point", values)
    return xr.Dataset(
        variables,
        attrs={
            "geoalign_kind": "points",
            "resolution": resolution,
            "value_column": layer.column or "",
            "dropped_outside_grid": int((~inside).sum()),
            "crs": grid.crs.to_wkt(),
        },
    )


def raster_layer(layer: LabelLayer, grid: CubeGrid) -> xr.Dataset:
    """Warp a label raster onto the grid with nearest neighbour: ``classes (y, x)`` int16."""
    import rasterio
    import rasterio.warp
    from rasterio.enums import Resampling

    path = Path(str(layer.source))
    if not path.exists():
        raise DataFileNotFoundError(f"label raster {path} (layer {layer.name!r}) does not exist")
    resolution = layer.resolution or grid.base_resolution
    geobox = grid.geobox_at(resolution)
    with rasterio.open(path) as src:
        if src.crs is None:
            raise CRSError(f"label raster {path} has no CRS: add one (gdal_edit.py -a_srs ...)")
        source = src.read(1)
        nodata = src.nodata
        transform, crs = src.transform, src.crs
    values = source.astype(np.int32)
    ignore = np.isin(values, list(layer.ignore_values))
    if nodata is not None and not np.isnan(nodata):
        ignore |= values == int(nodata)
    values[ignore] = IGNORE_VALUE
    out = np.full((geobox.shape.y, geobox.shape.x), IGNORE_VALUE, dtype=np.int32)
    rasterio.warp.reproject(
        values,
        out,
        src_transform=transform,
        src_crs=crs,
        src_nodata=IGNORE_VALUE,
        dst_transform=geobox.affine,
        dst_crs=str(geobox.crs),
        dst_nodata=IGNORE_VALUE,
        resampling=Resampling.nearest,
    )
    codes = sorted(int(v) for v in np.unique(out) if v != IGNORE_VALUE)
    return xr.Dataset(
        {"classes": (("y", "x"), out.astype(np.int16))},
        coords=xr_coords(geobox, crs_coord_name="spatial_ref"),
        attrs={
            "geoalign_kind": "labels",
            "ignore_value": IGNORE_VALUE,
            "class_names": [f"{code}:{code}" for code in codes],
            "resolution": resolution,
            "source": str(path),
        },
    )


def label_datasets(layers: Sequence[LabelLayer], grid: CubeGrid) -> Mapping[str, xr.Dataset]:
    """Place every layer on the grid; keys are the group paths ``labels/<name>``."""
    out: dict[str, xr.Dataset] = {}
    for layer in layers:
        if layer.is_raster():
            out[f"labels/{layer.name}"] = raster_layer(layer, grid)
            continue
        frame = layer.read()
        kind = layer.kind
        if kind == "auto":
            kind = "points" if (frame.geometry.geom_type == "Point").all() else "polygons"
        builder = point_layer if kind == "points" else polygon_layer
        out[f"labels/{layer.name}"] = builder(layer, frame, grid)
    return out
