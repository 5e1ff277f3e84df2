"""Spaceborne LiDAR footprints (GEDI L2A / L4A) on the cube grid, filtered by quality.

Shots are placed as a point table with grid coordinates (regression targets such as biomass)
and as a sparse raster.

Sources:

- HDF5 granules in the products' layout: one group per beam (``BEAM0000`` ... ``BEAM1011``) with
  ``lat_lowestmode``, ``lon_lowestmode``, ``shot_number``, ``delta_time``, ``sensitivity``,
  ``degrade_flag`` and, for L2A, ``quality_flag``, ``elev_lowestmode`` and ``rh`` (shots x 101
  relative heights, m); for L4A, ``l4_quality_flag``, ``agbd`` and ``agbd_se`` (Mg/ha).
- The same shots as tables: GeoParquet (point geometries), Parquet or CSV with latitude and
  longitude columns (``lat_lowestmode``/``lon_lowestmode``, ``latitude``/``longitude`` or
  ``lat``/``lon``).

Quality filtering (:class:`GediQuality`) follows the products' user guides: the product's
quality flag is 1, the degrade flag is 0, and the beam sensitivity is at least 0.9 (use 0.95-0.98
under dense tropical canopy). Fill values (-9999) become NaN.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords

from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError
from geoalign.grid import CubeGrid
from geoalign.labels import LabelLayer, point_layer

#: Datasets read from each beam of a granule, besides the relative heights.
L2A_VARIABLES = ("elev_lowestmode", "sensitivity", "quality_flag", "degrade_flag")
L4A_VARIABLES = ("agbd", "agbd_se", "sensitivity", "l4_quality_flag", "degrade_flag")
#: Relative-height percentiles kept from L2A ``rh`` (columns ``rh25`` ...).
DEFAULT_RH = (25, 50, 75, 95, 98, 100)
#: Units of the variables (for the sparse raster's band attributes).
UNITS = {"agbd": "Mg/ha", "agbd_se": "Mg/ha", "elev_lowestmode": "m", "sensitivity": "1"}
_FILL = -9999.0
_LATITUDES = ("lat_lowestmode", "latitude", "lat")
_LONGITUDES = ("lon_lowestmode", "longitude", "lon")
_QUALITY_FLAGS = ("l4_quality_flag", "quality_flag")


@dataclass(frozen=True)
class GediQuality:
    """Which shots to keep.

    Attributes:
        require_quality_flag: Keep shots whose product quality flag (``l4_quality_flag`` for
            L4A, ``quality_flag`` for L2A) is 1.
        exclude_degraded: Drop shots with a non-zero ``degrade_flag`` (degraded pointing or
            positioning).
        min_sensitivity: Smallest beam sensitivity kept (0-1), or None for no limit.
    """

    require_quality_flag: bool = True
    exclude_degraded: bool = True
    min_sensitivity: float | None = 0.9


def _read_granule(path: Path, beams: Sequence[str] | None, rh: Sequence[int]) -> pd.DataFrame:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise CorruptDataError(f"{path} is not a readable HDF5 file ({error})") from error
    frames = []
    with handle:
        names = [n for n in handle if n.startswith("BEAM") and (beams is None or n in beams)]
        if not names:
            raise InvalidInputError(
                f"{path} has no beam groups (BEAM0000...){' among ' + str(beams) if beams else ''}"
                ": is it a GEDI L2A or L4A granule?"
            )
        for beam in names:
            group = handle[beam]
            variables: tuple[str, ...]
            if "agbd" in group:
                product, variables = "L4A", L4A_VARIABLES
            elif "rh" in group:
                product, variables = "L2A", L2A_VARIABLES
            else:
                raise InvalidInputError(
                    f"{path} {beam} has neither 'agbd' (L4A) nor 'rh' (L2A): not a GEDI "
                    "L2A/L4A granule"
                )
            columns: dict[str, Any] = {
                "lat_lowestmode": group["lat_lowestmode"][:],
                "lon_lowestmode": group["lon_lowestmode"][:],
            }
            for name in ("shot_number", "delta_time", *variables):
                if name in group:
                    columns[name] = group[name][:]
            if product == "L2A":
                heights = group["rh"][:]
                for q in rh:
                    columns[f"rh{q}"] = heights[:, int(q)]
            frame = pd.DataFrame(columns)
            frame.insert(0, "beam", beam)
            frame.insert(1, "product", product)
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _read_table(path: Path) -> pd.DataFrame:
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".geoparquet"):
        try:
            table: pd.DataFrame = gpd.read_parquet(path)
        except (ValueError, KeyError):  # plain Parquet: no geo metadata
            table = pd.read_parquet(path)
        return table
    if suffix == ".csv":
        return pd.read_csv(path)
    raise InvalidInputError(
        f"{path}: GEDI footprints are read from HDF5 (.h5), GeoParquet/Parquet or CSV files"
    )


def _column(frame: pd.DataFrame, candidates: Sequence[str], what: str, path: Path) -> str:
    for name in candidates:
        if name in frame.columns:
            return name
    raise InvalidInputError(
        f"{path} has no {what} column (tried {list(candidates)}); columns: {list(frame.columns)}"
    )


def _filter(frame: pd.DataFrame, quality: GediQuality | None, path: Path) -> pd.DataFrame:
    if quality is None:
        return frame
    keep = np.ones(len(frame), dtype=bool)
    if quality.require_quality_flag:
        flag = _column(
            frame,
            _QUALITY_FLAGS,
            "quality flag (or pass quality=GediQuality(require_quality_flag=False))",
            path,
        )
        keep &= frame[flag].to_numpy() == 1
    if quality.exclude_degraded and "degrade_flag" in frame.columns:
        keep &= frame["degrade_flag"].to_numpy() == 0
    if quality.min_sensitivity is not None and "sensitivity" in frame.columns:
        keep &= frame["sensitivity"].to_numpy() >= quality.min_sensitivity
    return frame.loc[keep]


def read_gedi(
    sources: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    quality: GediQuality | None = None,
    beams: Sequence[str] | None = None,
    rh: Sequence[int] = DEFAULT_RH,
) -> gpd.GeoDataFrame:
    """Read GEDI shots from granules or tables, keep the good ones, as points in EPSG:4326.

    Args:
        sources: HDF5 granules, GeoParquet/Parquet or CSV files (any mix).
        quality: Shot filter; default :class:`GediQuality` (quality flag 1, not degraded,
            sensitivity >= 0.9). Pass ``GediQuality(False, False, None)`` to keep every shot.
        beams: Beam groups to read from granules (``["BEAM0101", "BEAM0110"]``: full-power
            beams); None reads all.
        rh: Relative-height percentiles (0-100) kept from L2A granules as ``rh<NN>`` (m).

    Returns:
        One row per kept shot: ``beam`` and ``product`` (granules), the product's variables
        (fill values as NaN) and point geometries (lon/lat, EPSG:4326).

    Raises:
        DataFileNotFoundError: A file does not exist.
        CorruptDataError: A granule cannot be opened.
        InvalidInputError: Not a GEDI L2A/L4A layout, or no coordinate / quality columns.
    """
    quality = quality if quality is not None else GediQuality()
    if not all(0 <= int(q) <= 100 for q in rh):
        raise InvalidInputError(f"rh={list(rh)}: relative heights are percentiles 0-100")
    paths = [sources] if isinstance(sources, (str, os.PathLike)) else list(sources)
    frames = []
    for source in paths:
        path = Path(source)
        if not path.is_file():
            raise DataFileNotFoundError(f"GEDI file {path} does not exist")
        if path.suffix.lower() in (".h5", ".hdf5", ".he5"):
            frame = _read_granule(path, beams, rh)
        else:
            frame = _read_table(path)
        frame = _filter(frame, quality, path)
        if isinstance(frame, gpd.GeoDataFrame) and frame.geometry is not None:
            frame = frame.to_crs("EPSG:4326")
        else:
            lat = _column(frame, _LATITUDES, "latitude", path)
            lon = _column(frame, _LONGITUDES, "longitude", path)
            points = gpd.points_from_xy(frame[lon], frame[lat])
            frame = gpd.GeoDataFrame(frame, geometry=points, crs="EPSG:4326")
        frames.append(frame)
    out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs="EPSG:4326")
    for name in out.columns:
        if name != "geometry" and out[name].dtype.kind == "f":
            out[name] = out[name].where(out[name] != _FILL)
    return out


def gedi_label_layer(
    shots: gpd.GeoDataFrame,
    name: str = "gedi",
    *,
    column: str = "agbd",
    resolution: float | None = None,
) -> LabelLayer:
    """The shots as a point label layer, for ``plan_cube(labels=[...])``/``build_cube``.

    In the cube it becomes ``labels/<name>``: a table with dim ``point``, ``x``/``y`` in the cube
    CRS, ``row``/``col`` at ``resolution`` and every attribute as ``attr_<column>``.
    """
    if column not in shots.columns:
        raise InvalidInputError(
            f"the shots have no column {column!r}; columns: {list(shots.columns)}"
        )
    return LabelLayer(name=name, source=shots, column=column, kind="points", resolution=resolution)


def gedi_points(
    shots: gpd.GeoDataFrame,
    grid: CubeGrid,
    *,
    column: str = "agbd",
    resolution: float | None = None,
) -> xr.Dataset:
    """The shots as a point table on ``grid`` (the cube's ``labels/<name>`` convention).

    Returns:
        Dataset with dim ``point``: ``x``, ``y`` (cube CRS), ``row``, ``col`` (at
        ``resolution``, default the base resolution) and ``attr_<column>`` per attribute;
        shots outside the grid are dropped (counted in ``dropped_outside_grid``).
    """
    layer = gedi_label_layer(shots, column=column, resolution=resolution)
    return point_layer(layer, shots, grid)


def gedi_raster(
    shots: gpd.GeoDataFrame, geobox: GeoBox, *, variables: Sequence[str] = ("agbd",)
) -> xr.Dataset:
    """The shots as a sparse raster on ``geobox``: per cell the mean of the shots it holds.

    Returns:
        Dataset with ``data (band, y, x)`` float32 (mean of the shots' finite values; NaN where
        none), ``count (y, x)`` int32 (shots per cell), band names ``variables`` and their
        ``units``.
    """
    missing = [v for v in variables if v not in shots.columns]
    if missing:
        raise InvalidInputError(f"the shots have no columns {missing}: {list(shots.columns)}")
    if geobox.crs is None:
        raise InvalidInputError("the grid has no CRS: give a GeoBox with one")
    moved = shots.to_crs(geobox.crs.to_wkt())
    transform = geobox.affine
    height, width = geobox.shape.y, geobox.shape.x
    col = np.floor((moved.geometry.x.to_numpy() - transform.c) / transform.a)
    row = np.floor((moved.geometry.y.to_numpy() - transform.f) / transform.e)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    cell = (row[inside] * width + col[inside]).astype(np.intp)
    data = np.full((len(variables), height * width), np.nan, dtype=np.float32)
    count = np.bincount(cell, minlength=height * width).astype(np.int32)
    for band, name in enumerate(variables):
        values = moved[name].to_numpy(dtype=np.float64)[inside]
        known = np.isfinite(values)
        total = np.bincount(cell[known], weights=values[known], minlength=height * width)
        n = np.bincount(cell[known], minlength=height * width)
        data[band] = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    return xr.Dataset(
        {
            "data": (("band", "y", "x"), data.reshape(len(variables), height, width)),
            "count": (("y", "x"), count.reshape(height, width)),
        },
        coords={
            "band": np.array(list(variables), dtype=object),
            "units": ("band", np.array([UNITS.get(v, "") for v in variables], dtype=object)),
            **xr_coords(geobox, crs_coord_name="spatial_ref"),
        },
        attrs={"geoalign_kind": "sparse_raster", "source": "gedi", "shots": int(inside.sum())},
    )


def gedi_layers(
    shots: gpd.GeoDataFrame,
    grid: CubeGrid,
    name: str = "gedi",
    *,
    column: str = "agbd",
    resolution: float | None = None,
    variables: Sequence[str] | None = None,
) -> Mapping[str, xr.Dataset]:
    """Both placements of the shots, keyed by cube group path.

    ``labels/<name>`` is the point table (:func:`gedi_points`) and ``labels/<name>_raster`` the
    sparse raster (:func:`gedi_raster`) at ``resolution`` (default the base resolution).
    """
    geobox = grid.geobox_at(resolution or grid.base_resolution)
    return {
        f"labels/{name}": gedi_points(shots, grid, column=column, resolution=resolution),
        f"labels/{name}_raster": gedi_raster(shots, geobox, variables=variables or (column,)),
    }
