"""Rasterize point clouds onto a grid, tile by tile, with bounded memory.

The result is held in memory (:func:`rasterize_points`) or streamed to a GeoTIFF
(:func:`rasterize_to_geotiff`)::

    grid = GeoBox.from_bbox(bbox, "EPSG:32610", resolution=1)
    lidar = rasterize_points(["a.copc.laz", "b.laz"], grid)     # DataArray (band, y, x)
    lidar.sel(band="ndsm")

Each file is read in its own CRS (from its VLRs, else ``crs=``), reprojected to the grid's CRS
with pyproj and binned with numpy (:mod:`geoalign.lidar.binning`). Several files are binned
together, so cells on the seam between two tiles of a survey get the points of both.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import rasterio
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from rasterio.windows import Window

from geoalign.errors import GeoAlignWarning, InvalidInputError
from geoalign.lidar.binning import Raster, TileStats, bin_tile, warn_fallbacks
from geoalign.lidar.products import RasterizeOptions
from geoalign.lidar.reader import PointCloud
from geoalign.lidar.tiling import (
    BLOCK,
    Source,
    Tile,
    TileFeeder,
    pixel_extent,
    plan_tiles,
    tile_geobox,
    tile_size,
    union_extent,
)
from geoalign.lidar.transform import PointTransformer, as_pyproj

#: A point cloud: a local path, an ``http(s)://`` URL or an opened :class:`PointCloud`.
PointSourceLike: TypeAlias = "str | os.PathLike[str] | PointCloud"


class EmptyPointsWarning(GeoAlignWarning):
    """No point of the given files falls on the grid: the result is empty (all NaN)."""


@dataclass(frozen=True)
class RasterizeReport:
    """What :func:`rasterize_to_geotiff` wrote.

    Attributes:
        path: The GeoTIFF, or None when no point fell on the grid (nothing written).
        geobox: The GeoTIFF's grid: the part of the requested grid that holds data, starting
            on a 256-pixel block boundary of it (so reads stay aligned).
        products: Band names, in band order.
        units: Units of each band.
        points: Points binned (margins of tiles counted once per tile).
        tiles: Tiles processed.
    """

    path: Path | None
    geobox: GeoBox | None
    products: tuple[str, ...]
    units: tuple[str, ...]
    points: int
    tiles: int


def open_sources(
    sources: PointSourceLike | Sequence[PointSourceLike],
    *,
    crs: Any = None,
    options: RasterizeOptions | None = None,
) -> list[PointCloud]:
    """Open each source (header only); ``crs`` applies to files that declare none."""
    options = options or RasterizeOptions()
    many = [sources] if isinstance(sources, (str, os.PathLike, PointCloud)) else list(sources)
    if not many:
        raise InvalidInputError("no point cloud given: pass a path, a URL or a list of them")
    return [
        s
        if isinstance(s, PointCloud)
        else PointCloud(
            s,
            crs=crs,
            exclude_classes=options.exclude_classes,
            chunk_points=options.chunk_points,
        )
        for s in many
    ]


def _cell_area_m2(geobox: GeoBox) -> float:
    crs = as_pyproj(geobox.crs)
    if crs.is_geographic:
        raise InvalidInputError(
            f"the grid CRS {crs.name} is geographic (degrees): rasterize onto a projected grid "
            "(e.g. the UTM zone of the area) so that cells have one size on the ground"
        )
    factor = float(crs.axis_info[0].unit_conversion_factor or 1.0)
    return abs(geobox.affine.a * geobox.affine.e) * factor * factor


def _plan(
    clouds: Sequence[PointCloud], geobox: GeoBox, options: RasterizeOptions
) -> tuple[list[Source], list[Tile], int]:
    sources = []
    for cloud in clouds:
        transformer = PointTransformer(cloud.info.crs, geobox.crs)
        bounds = transformer.to_target(cloud.info.bounds)
        sources.append(Source(cloud, transformer, pixel_extent(geobox, bounds)))
    extent = union_extent(sources)
    if extent is None:
        return sources, [], 0
    size = tile_size(sources, options, extent)
    return sources, plan_tiles(extent, size), size


def iter_tiles(
    clouds: Sequence[PointCloud],
    geobox: GeoBox,
    options: RasterizeOptions,
    stats: TileStats,
) -> Iterator[tuple[Tile, dict[str, Raster]]]:
    """Rasterize tile by tile; yields each tile and its products (cropped to the tile)."""
    cell_area = _cell_area_m2(geobox)
    sources, tiles, size = _plan(clouds, geobox, options)
    if not tiles:
        return
    feeder = TileFeeder(sources, geobox, tiles, size, options)
    halo = options.halo
    try:
        for tile, points in feeder:
            if not len(points):
                continue
            grown = tile_geobox(geobox, tile, halo)
            products = bin_tile(
                points, grown, options, cell_area_m2=cell_area, where=tile.name(), stats=stats
            )
            height, width = tile.row1 - tile.row0, tile.col1 - tile.col0
            yield (
                tile,
                {k: v[halo : halo + height, halo : halo + width] for k, v in products.items()},
            )
    finally:
        feeder.close()


def _warn_empty(clouds: Sequence[PointCloud], geobox: GeoBox) -> None:
    names = ", ".join(c.href for c in clouds[:3]) + ("..." if len(clouds) > 3 else "")
    warnings.warn(
        f"no point of {names} falls on the grid (bounds {tuple(geobox.extent.boundingbox)} in "
        f"{geobox.crs}): the result is empty. Check the area of interest and the files' CRS",
        EmptyPointsWarning,
        stacklevel=3,
    )


def rasterize_points(
    sources: PointSourceLike | Sequence[PointSourceLike],
    geobox: GeoBox,
    *,
    options: RasterizeOptions | None = None,
    crs: Any = None,
) -> xr.DataArray:
    """Rasterize point clouds onto ``geobox``, in memory.

    Args:
        sources: LAS/LAZ/COPC paths or URLs (or opened :class:`PointCloud` objects).
        geobox: Target grid (projected CRS, north-up); e.g. ``grid.geobox("lidar")``.
        options: Products and parameters (:class:`RasterizeOptions`).
        crs: CRS of files that declare none (EPSG code, WKT, PROJJSON).

    Returns:
        float32 ``(band, y, x)`` on ``geobox``, NaN where a cell has no data; coordinate
        ``units`` per band; the attribute ``points`` counts the points binned.

    Raises:
        CRSError: A file has no CRS and none is given.
        CorruptDataError, DataFileNotFoundError: A file cannot be read.
        NoDataFoundError: No ground point and ``dtm_fallback="error"``.
    """
    options = options or RasterizeOptions()
    clouds = open_sources(sources, crs=crs, options=options)
    shape = (len(options.products), geobox.shape.y, geobox.shape.x)
    data = np.full(shape, np.nan, dtype=np.float32)
    stats = TileStats()
    for tile, products in iter_tiles(clouds, geobox, options, stats):
        for band, name in enumerate(options.products):
            data[band, tile.row0 : tile.row1, tile.col0 : tile.col1] = products[name]
    if stats.points == 0:
        _warn_empty(clouds, geobox)
    warn_fallbacks(stats, options, "rasterize_points")
    coords = xr_coords(geobox, crs_coord_name="spatial_ref")
    return xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={
            "band": list(options.products),
            "units": ("band", options.units()),
            **coords,
        },
        name="lidar",
        attrs={"points": stats.points, "sources": json.dumps([c.href for c in clouds])},
    )


def rasterize_to_geotiff(
    sources: PointSourceLike | Sequence[PointSourceLike],
    geobox: GeoBox,
    path: str | os.PathLike[str],
    *,
    options: RasterizeOptions | None = None,
    crs: Any = None,
) -> RasterizeReport:
    """Rasterize point clouds onto ``geobox`` and stream the products to a GeoTIFF.

    Arguments as :func:`rasterize_points`. The file holds one float32 band per product (band
    description = product name, tag ``units``), NaN as nodata, 256-pixel tiles, ZSTD. It
    covers the part of ``geobox`` that holds points, on ``geobox``'s pixel grid, so a reader
    on ``geobox`` slices it without resampling. It is written to a temporary name and renamed
    when complete, so a file at ``path`` is always whole.

    Returns:
        What was written (``path`` is None when no point fell on the grid).
    """
    options = options or RasterizeOptions()
    clouds = open_sources(sources, crs=crs, options=options)
    _, tiles, _ = _plan(clouds, geobox, options)
    units = tuple(options.units())
    if not tiles:
        _warn_empty(clouds, geobox)
        return RasterizeReport(None, None, options.products, units, 0, 0)
    row0, col0 = min(t.row0 for t in tiles), min(t.col0 for t in tiles)
    row1, col1 = max(t.row1 for t in tiles), max(t.col1 for t in tiles)
    file_box = geobox[row0:row1, col0:col1]
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    profile = {
        "driver": "GTiff",
        "width": col1 - col0,
        "height": row1 - row0,
        "count": len(options.products),
        "dtype": "float32",
        "nodata": math.nan,
        "crs": as_pyproj(geobox.crs).to_wkt(),
        "transform": file_box.affine,
        "tiled": True,
        "blockxsize": BLOCK,
        "blockysize": BLOCK,
        "compress": "zstd",  # level 1: as small as deflate here, three times faster to write
        "zstd_level": 1,
        "predictor": 3,
        "sparse_ok": True,
        "bigtiff": "if_safer",
        "interleave": "pixel",
    }
    stats = TileStats()
    try:
        _write(partial, profile, clouds, geobox, options, stats, (row0, col0))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, target)
    if stats.points == 0:
        _warn_empty(clouds, geobox)
    warn_fallbacks(stats, options, f"rasterize_to_geotiff({target.name})")
    return RasterizeReport(target, file_box, options.products, units, stats.points, len(tiles))


def _write(
    partial: Path,
    profile: dict[str, Any],
    clouds: Sequence[PointCloud],
    geobox: GeoBox,
    options: RasterizeOptions,
    stats: TileStats,
    origin: tuple[int, int],
) -> None:
    """Write the tiles of the products into the GeoTIFF ``partial`` (see rasterize_to_geotiff)."""
    row0, col0 = origin
    units = options.units()
    with rasterio.open(partial, "w", **profile) as dst:
        for band, name in enumerate(options.products, start=1):
            dst.set_band_description(band, name)
            dst.update_tags(band, units=units[band - 1], product=name)
        dst.update_tags(
            geoalign_lidar=json.dumps(
                {"sources": [c.href for c in clouds], "options": _options_dict(options)}
            )
        )
        for tile, products in iter_tiles(clouds, geobox, options, stats):
            block = np.stack([products[name] for name in options.products])
            window = Window(
                tile.col0 - col0, tile.row0 - row0, tile.col1 - tile.col0, tile.row1 - tile.row0
            )
            dst.write(block, window=window)


def _options_dict(options: RasterizeOptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in RasterizeOptions.__dataclass_fields__}
