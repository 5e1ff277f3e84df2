"""LiDAR in the cube: aerial point clouds (LAS/LAZ/COPC) and spaceborne footprints (GEDI).

Aerial point clouds become rasters on the cube's grid::

    from geoalign.lidar import RasterizeOptions, rasterize_points

    grid = plan.grid.geobox("lidar")                 # or any projected odc-geo GeoBox
    lidar = rasterize_points(["tile.copc.laz"], grid, options=RasterizeOptions(
        products=("dsm", "dtm", "ndsm", "density", "height_p95")))

and STAC items with point-cloud assets (sensors ``3dep-lidar-copc``, ``lidar-points``) go
through :func:`geoalign.cube.build_cube` like rasters (:mod:`geoalign.lidar.cube_plan`; use
:class:`LidarRequest` to set the options). Files are read in chunks (COPC: by bounds, locally or
with HTTP range requests), in their own CRS (WKT or GeoTIFF-key VLRs, compound, feet), and
reprojected with pyproj. GEDI shots (:mod:`geoalign.lidar.gedi`) become a point table and a
sparse raster on the grid.
"""

from geoalign.lidar.binning import GroundFallbackWarning
from geoalign.lidar.crs import PointCRS, crs_from_vlrs
from geoalign.lidar.cube_plan import LidarRequest
from geoalign.lidar.gedi import (
    GediQuality,
    gedi_label_layer,
    gedi_layers,
    gedi_points,
    gedi_raster,
    read_gedi,
)
from geoalign.lidar.points import PointChunk
from geoalign.lidar.products import DEFAULT_PRODUCTS, PRODUCT_UNITS, RasterizeOptions
from geoalign.lidar.rasterize import (
    EmptyPointsWarning,
    RasterizeReport,
    rasterize_points,
    rasterize_to_geotiff,
)
from geoalign.lidar.reader import PointCloud, PointCloudInfo, read_points
from geoalign.lidar.transform import PointTransformer

__all__ = [
    "DEFAULT_PRODUCTS",
    "PRODUCT_UNITS",
    "EmptyPointsWarning",
    "GediQuality",
    "GroundFallbackWarning",
    "LidarRequest",
    "PointCRS",
    "PointChunk",
    "PointCloud",
    "PointCloudInfo",
    "PointTransformer",
    "RasterizeOptions",
    "RasterizeReport",
    "crs_from_vlrs",
    "gedi_label_layer",
    "gedi_layers",
    "gedi_points",
    "gedi_raster",
    "rasterize_points",
    "rasterize_to_geotiff",
    "read_gedi",
    "read_points",
]
