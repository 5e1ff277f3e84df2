"""Vectorised binning of the points of one tile into raster products (no per-point Python loop).

Points are given in the grid's CRS with heights in metres. Each point falls in one cell
(``row * width + col``); sums and counts are ``np.bincount``, maxima and minima
``np.maximum.at`` / ``np.minimum.at``, and height percentiles come from one sort of a combined
``(cell, height)`` key. Cost: a few passes over the points plus one sort when percentiles are
asked for.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from odc.geo.geobox import GeoBox
from rasterio.fill import fillnodata

from geoalign.errors import GeoAlignWarning, NoDataFoundError
from geoalign.lidar.points import PointChunk
from geoalign.lidar.products import RasterizeOptions, needs_ground, percentile_of

#: Heights above ground are clipped to this range (m) before sorting for percentiles.
_LOW, _HIGH = -2000.0, 14000.0
#: Width of one cell's slot in the combined sort key (a power of two above _HIGH - _LOW).
_SPAN = 16384.0

Raster = npt.NDArray[np.float32]


class GroundFallbackWarning(GeoAlignWarning):
    """A tile had points but no ground class: its DTM came from the fallback (or is empty)."""


@dataclass
class TileStats:
    """What happened while binning, summed over tiles (reported once per rasterization).

    Attributes:
        points: Points binned into cells.
        fallback_tiles: Tiles whose DTM used ``dtm_fallback`` (no ground-class point).
    """

    points: int = 0
    fallback_tiles: list[str] = field(default_factory=list)


def cell_index(
    points: PointChunk, geobox: GeoBox
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.bool_]]:
    """Flat cell index of each point on a north-up ``geobox``, and which points are inside it."""
    transform = geobox.affine
    height, width = geobox.shape.y, geobox.shape.x
    # in place: one temporary per axis (these arrays hold millions of points)
    col = np.subtract(points.x, transform.c)
    np.floor(np.divide(col, transform.a, out=col), out=col)
    row = np.subtract(points.y, transform.f)
    np.floor(np.divide(row, transform.e, out=row), out=row)
    inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    index = row.astype(np.intp)
    index *= width
    index += col.astype(np.intp)
    return index, inside


def _mean(total: npt.NDArray[Any], count: npt.NDArray[Any]) -> Raster:
    with np.errstate(invalid="ignore", divide="ignore"):
        out: Raster = np.where(count > 0, total / count, np.nan).astype(np.float32)
    return out


def _ground(
    points: PointChunk,
    cell: npt.NDArray[np.intp],
    cells: int,
    options: RasterizeOptions,
    where: str,
    stats: TileStats,
) -> Raster:
    """Mean height of ground returns per cell (flat), or the fallback when there are none."""
    if len(options.ground_classes) == 1:
        ground = points.classification == options.ground_classes[0]
    else:
        ground = np.isin(points.classification, np.asarray(options.ground_classes, np.uint8))
    if ground.any():  # weights instead of masks: no copies of the ground points
        count = np.bincount(cell, weights=ground, minlength=cells)
        total = np.bincount(cell, weights=np.where(ground, points.z, 0.0), minlength=cells)
        return _mean(total, count)
    empty = np.full(cells, np.nan, dtype=np.float32)
    if not len(points):
        return empty
    stats.fallback_tiles.append(where)
    if options.dtm_fallback == "error":
        raise NoDataFoundError(
            f"{where} has points but none of the ground classes {options.ground_classes}: "
            "the DTM (and dtm/ndsm/canopy_cover/height percentiles) cannot be made. Pass "
            "dtm_fallback='lowest' to take the lowest return of each cell as ground, "
            "dtm_fallback='none' to leave them empty, or the file's ground classes "
            "(ground_classes=...)"
        )
    if options.dtm_fallback == "none":
        return empty
    lowest = np.full(cells, np.inf, dtype=np.float64)
    np.minimum.at(lowest, cell, points.z)
    lowest[np.isinf(lowest)] = np.nan
    return lowest.astype(np.float32)


def _fill(dtm: Raster, max_pixels: int) -> Raster:
    """Fill gaps of a DTM by inverse-distance interpolation (GDAL), up to ``max_pixels``."""
    known = np.isfinite(dtm)
    if max_pixels == 0 or known.all() or not known.any():
        return dtm
    # Cells out of reach keep their input value, NaN; known cells are the only sources.
    filled: Raster = fillnodata(
        dtm.astype(np.float32),
        mask=known.astype(np.uint8),
        max_search_distance=float(max_pixels),
        smoothing_iterations=0,
    )
    return filled


def _percentiles(
    cell: npt.NDArray[np.intp],
    height: npt.NDArray[np.float64],
    cells: int,
    percentiles: list[float],
) -> list[Raster]:
    """Per-cell percentiles (linear interpolation) of ``height``, one flat raster each."""
    key = cell.astype(np.float64) * _SPAN + (np.clip(height, _LOW, _HIGH) - _LOW)
    key.sort()
    sorted_cell = np.floor(key / _SPAN)
    sorted_height = key - sorted_cell * _SPAN + _LOW
    count = np.bincount(sorted_cell.astype(np.intp), minlength=cells)
    start = np.cumsum(count) - count
    has = count > 0
    first, n = start[has], count[has]
    out = []
    for percentile in percentiles:
        position = first + (percentile / 100.0) * (n - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, first + n - 1)
        fraction = position - low
        values = sorted_height[low] + (sorted_height[high] - sorted_height[low]) * fraction
        raster = np.full(cells, np.nan, dtype=np.float32)
        raster[has] = values
        out.append(raster)
    return out


def bin_tile(
    points: PointChunk,
    geobox: GeoBox,
    options: RasterizeOptions,
    *,
    cell_area_m2: float,
    where: str = "tile",
    stats: TileStats | None = None,
) -> dict[str, Raster]:
    """Rasterize the points of one tile (with its margin) into ``options.products``.

    Args:
        points: Points in ``geobox``'s CRS, heights in metres; points outside are ignored.
        geobox: The tile's grid, north-up.
        options: Products and their parameters.
        cell_area_m2: Area of one cell in square metres (for ``density``).
        where: Names the tile in warnings and errors.
        stats: Collects counts and fallbacks across tiles.

    Returns:
        One float32 array of shape ``(rows, cols)`` per product, NaN where a cell has no data.

    Raises:
        NoDataFoundError: No ground point and ``dtm_fallback="error"``.
    """
    stats = stats if stats is not None else TileStats()
    shape = (geobox.shape.y, geobox.shape.x)
    cells = shape[0] * shape[1]
    cell, inside = cell_index(points, geobox)
    if not bool(inside.all()):
        points, cell = points.select(inside), cell[inside]
    stats.points += len(points)
    wanted = set(options.products)
    out: dict[str, Raster] = {}
    count = np.bincount(cell, minlength=cells)
    if "density" in wanted:
        out["density"] = np.where(count > 0, count / cell_area_m2, np.nan).astype(np.float32)
    if wanted & {"dsm", "ndsm"}:
        dsm = np.full(cells, -np.inf, dtype=np.float64)
        np.maximum.at(dsm, cell, points.z)
        dsm[count == 0] = np.nan
        out["dsm"] = dsm.astype(np.float32)
    if "intensity" in wanted:
        out["intensity"] = _mean(
            np.bincount(cell, weights=points.intensity, minlength=cells), count
        )
    first = points.return_number <= 1
    if "first_return_ratio" in wanted:
        out["first_return_ratio"] = _mean(
            np.bincount(cell[first], minlength=cells).astype(np.float64), count
        )
    if "last_return_ratio" in wanted:
        last = points.return_number >= points.number_of_returns
        out["last_return_ratio"] = _mean(
            np.bincount(cell[last], minlength=cells).astype(np.float64), count
        )
    if needs_ground(options.products):
        raw = _ground(points, cell, cells, options, where, stats).reshape(shape)
        dtm = _fill(raw, options.dtm_fill_pixels).ravel()
        out["dtm"] = dtm
        if "ndsm" in wanted:
            out["ndsm"] = (out["dsm"] - dtm).astype(np.float32)
        named = [(p, q) for p in options.products if (q := percentile_of(p)) is not None]
        percentiles = [q for _, q in named]
        if "canopy_cover" in wanted or percentiles:
            height = points.z - dtm[cell]
            known = np.isfinite(height)
        if "canopy_cover" in wanted:
            base = first & known
            above = base & (height > options.canopy_height)
            out["canopy_cover"] = _mean(
                np.bincount(cell[above], minlength=cells).astype(np.float64),
                np.bincount(cell[base], minlength=cells),
            )
        if percentiles:
            rasters = _percentiles(cell[known], height[known], cells, percentiles)
            for (name, _), raster in zip(named, rasters, strict=True):
                out[name] = raster
    return {name: out[name].reshape(shape) for name in options.products}


def warn_fallbacks(stats: TileStats, options: RasterizeOptions, what: str) -> None:
    """One warning naming the tiles whose DTM came from ``dtm_fallback``."""
    if not stats.fallback_tiles or not needs_ground(options.products):
        return
    action = {
        "lowest": "the lowest return of each cell was taken as ground",
        "none": "the DTM and the products that need it were left empty",
        "error": "",
    }[options.dtm_fallback]
    tiles = ", ".join(stats.fallback_tiles[:3]) + ("..." if len(stats.fallback_tiles) > 3 else "")
    warnings.warn(
        f"{what}: {len(stats.fallback_tiles)} tile(s) have no point of the ground classes "
        f"{options.ground_classes} ({tiles}); {action}. Pass dtm_fallback='error' to refuse, "
        "or ground_classes=... if the file marks ground with other classes",
        GroundFallbackWarning,
        stacklevel=3,
    )
