"""Areas of interest: loose input turned into one strict geometry with its CRS, once, at the edge.

Everything that names a place (a bbox, a shapely geometry, GeoJSON, a vector file, a GeoDataFrame or
an odc-geo geometry) goes through :func:`to_aoi`, which returns an :class:`odc.geo.geom.Geometry`
carrying its CRS. Downstream code never sees the loose forms.

CRS rules: a bbox, a shapely geometry and GeoJSON without ``crs=`` are EPSG:4326 lon/lat (RFC 7946);
files, GeoDataFrames and odc-geo geometries keep their own CRS. A multi-feature input is unioned.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import geopandas as gpd
import numpy as np
import pyogrio  # type: ignore[import-untyped]
import shapely
from odc.geo import CRS
from odc.geo.geom import Geometry
from shapely.errors import GEOSException
from shapely.geometry.base import BaseGeometry

from geoalign.errors import CRSError, DataFileNotFoundError, InvalidInputError

__all__ = ["WGS84", "AOILike", "BBox", "CRSLike", "aoi_bbox_wgs84", "aoi_wgs84", "to_aoi"]

#: A bounding box ``(minx, miny, maxx, maxy)`` in the units of its CRS.
BBox: TypeAlias = tuple[float, float, float, float]

#: Anything pyproj/odc-geo accept as a CRS: ``"EPSG:32633"``, ``32633``, WKT, a ``CRS`` object.
CRSLike: TypeAlias = CRS | str | int | Any

#: Every form of area of interest that :func:`to_aoi` accepts.
AOILike: TypeAlias = (
    Geometry
    | BaseGeometry
    | Sequence[float]
    | Mapping[str, Any]
    | str
    | os.PathLike[str]
    | gpd.GeoDataFrame
    | gpd.GeoSeries
)

WGS84 = CRS("EPSG:4326")


def to_aoi(aoi: AOILike, *, crs: CRSLike | None = None, layer: str | None = None) -> Geometry:
    """Turn any area-of-interest input into one valid geometry with its CRS.

    Args:
        aoi: A bbox ``(minx, miny, maxx, maxy)``; a shapely geometry; a GeoJSON geometry, Feature or
            FeatureCollection dict; a path to any file geopandas can read (GeoPackage, GeoJSON,
            Shapefile, FlatGeobuf...); a GeoDataFrame/GeoSeries; or an ``odc.geo`` Geometry.
        crs: CRS of ``aoi`` when the input does not carry one (bbox, shapely, GeoJSON, a file or
            frame without CRS). Defaults to EPSG:4326 lon/lat for bbox, shapely and GeoJSON.
            Inputs that carry a CRS must not be given a different one.
        layer: Layer to read from a multi-layer file (GeoPackage). By default the only layer
            with geometries is read; a file with several must be given one.

    Returns:
        A non-empty, valid :class:`odc.geo.geom.Geometry` in the input's CRS; features are unioned.

    Raises:
        InvalidInputError: Inverted or degenerate bbox, lon/lat out of range, empty or invalid
            geometry, or an unsupported input type.
        CRSError: The input has no CRS and none was given, or its CRS conflicts with ``crs``.
        DataFileNotFoundError: ``aoi`` is a path that does not exist.
    """
    given = _norm_crs(crs)
    if isinstance(aoi, Geometry):
        geom, own = aoi.geom, (aoi.crs if aoi.crs is not None else None)
        result = _with_crs(geom, own, given, what="the odc.geo Geometry")
    elif isinstance(aoi, (gpd.GeoDataFrame, gpd.GeoSeries)):
        result = _from_frame(aoi, given, what="the GeoDataFrame/GeoSeries")
    elif isinstance(aoi, (str, os.PathLike)):
        result = _from_file(Path(aoi), given, layer)
    elif isinstance(aoi, BaseGeometry):
        result = Geometry(aoi, given or WGS84)
    elif isinstance(aoi, Mapping):
        result = _from_geojson(aoi, given)
    elif isinstance(aoi, (Sequence, np.ndarray)):
        values = list(aoi.tolist() if isinstance(aoi, np.ndarray) else aoi)
        result = Geometry(_bbox_polygon(values, given or WGS84), given or WGS84)
    else:
        raise InvalidInputError(
            f"aoi of type {type(aoi).__name__} is not supported: pass a bbox (minx, miny, maxx, "
            "maxy), a shapely geometry, a GeoJSON dict, a vector file path, a GeoDataFrame or an "
            "odc.geo Geometry"
        )
    _validate(result)
    return result


def aoi_wgs84(aoi: AOILike, *, crs: CRSLike | None = None) -> Geometry:
    """The area of interest as a geometry in EPSG:4326 lon/lat (degrees), densified when projected.

    Args:
        aoi: Any input :func:`to_aoi` accepts.
        crs: CRS of ``aoi`` when the input does not carry one (see :func:`to_aoi`).

    Returns:
        The geometry in EPSG:4326, edges densified before reprojection so curved edges stay curved.

    Raises:
        CRSError: The geometry cannot be projected to lon/lat (outside its CRS's domain).
    """
    geom = to_aoi(aoi, crs=crs)
    if geom.crs == WGS84:
        return geom
    out = geom.to_crs(WGS84, resolution="auto")
    if out.is_empty or not all(math.isfinite(v) for v in out.boundingbox):
        raise CRSError(
            f"aoi cannot be projected from {geom.crs} to EPSG:4326: its coordinates "
            f"{tuple(geom.boundingbox)} lie outside that CRS's area of use; check the AOI's CRS"
        )
    return out


def aoi_bbox_wgs84(aoi: AOILike, *, crs: CRSLike | None = None) -> BBox:
    """The lon/lat bounding box ``(west, south, east, north)`` in degrees (EPSG:4326) of an AOI.

    Args:
        aoi: Any input :func:`to_aoi` accepts.
        crs: CRS of ``aoi`` when the input does not carry one (see :func:`to_aoi`).

    Returns:
        ``(minx, miny, maxx, maxy)`` in EPSG:4326 degrees of the densified, reprojected AOI.
    """
    left, bottom, right, top = aoi_wgs84(aoi, crs=crs).boundingbox
    return (float(left), float(bottom), float(right), float(top))


def _norm_crs(crs: CRSLike | None) -> CRS | None:
    if crs is None:
        return None
    try:
        return CRS(crs)
    except Exception as err:  # pyproj raises several types for unknown CRS strings
        raise CRSError(
            f"crs={crs!r} is not a CRS pyproj understands ({err}); pass an EPSG code such as "
            "'EPSG:32633', a WKT string or a pyproj/odc-geo CRS"
        ) from err


def _with_crs(geom: BaseGeometry, own: Any, given: CRS | None, *, what: str) -> Geometry:
    """Attach the input's own CRS, or the one given; refuse a missing or conflicting CRS."""
    own_crs = _norm_crs(own) if own is not None else None
    if own_crs is None and given is None:
        raise CRSError(
            f"{what} has no CRS: pass crs= (e.g. crs='EPSG:32633') or set its CRS first "
            "(GeoDataFrame.set_crs)"
        )
    if own_crs is not None and given is not None and own_crs != given:
        raise CRSError(
            f"{what} is in {own_crs} but crs={given} was given: drop crs= (the input's own CRS is "
            "used) or reproject the input first (GeoDataFrame.to_crs / Geometry.to_crs)"
        )
    crs = own_crs if own_crs is not None else given
    return Geometry(geom, crs)


def _from_frame(frame: Any, given: CRS | None, *, what: str) -> Geometry:
    if len(frame) == 0:
        raise InvalidInputError(f"{what} has no features: the AOI must contain a geometry")
    series = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    geom = series.union_all() if len(series) > 1 else series.iloc[0]
    if geom is None:
        raise InvalidInputError(f"{what} has only null geometries: the AOI must contain one")
    return _with_crs(geom, frame.crs, given, what=what)


def _from_file(path: Path, given: CRS | None, layer: str | None) -> Geometry:
    if not path.exists():
        raise DataFileNotFoundError(
            f"aoi file {path} does not exist: pass the path of a vector file (GeoPackage, GeoJSON, "
            "Shapefile...) or a bbox/geometry instead"
        )
    try:
        if layer is None:
            spatial = [str(n) for n, kind in pyogrio.list_layers(path) if kind is not None]
            if len(spatial) > 1:
                raise InvalidInputError(
                    f"aoi file {path} has several layers with geometries {spatial}: pick one with "
                    "layer="
                )
            layer = spatial[0] if spatial else None
        frame = gpd.read_file(path, layer=layer)
    except InvalidInputError:
        raise
    except Exception as err:  # pyogrio/fiona raise driver-specific errors
        raise InvalidInputError(
            f"aoi file {path} cannot be read as vector data ({err}): pass a file GDAL/OGR can open "
            "(GeoPackage, GeoJSON, Shapefile, FlatGeobuf...)"
        ) from err
    return _from_frame(frame, given, what=f"aoi file {path}")


def _from_geojson(obj: Mapping[str, Any], given: CRS | None) -> Geometry:
    kind = obj.get("type")
    legacy = obj.get("crs")  # pre-RFC-7946 GeoJSON may name its CRS
    own = None
    if isinstance(legacy, Mapping) and isinstance(legacy.get("properties"), Mapping):
        own = legacy["properties"].get("name")
    try:
        if kind == "FeatureCollection":
            features = list(obj.get("features") or [])
            frame = gpd.GeoDataFrame.from_features(features) if features else gpd.GeoDataFrame()
            return _from_frame(frame.set_crs(own or given or WGS84), None, what="aoi GeoJSON")
        geometry = obj.get("geometry") if kind == "Feature" else obj
        if not isinstance(geometry, Mapping):
            raise InvalidInputError("aoi GeoJSON Feature has no geometry: give it a geometry")
        geom = shapely.geometry.shape(geometry)
    except (KeyError, TypeError, ValueError, AttributeError, GEOSException) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise InvalidInputError(
            f"aoi GeoJSON of type {kind!r} cannot be parsed ({err}): pass a GeoJSON geometry, "
            "Feature or FeatureCollection"
        ) from err
    return _with_crs(geom, own, None if own else (given or WGS84), what="aoi GeoJSON")


def _bbox_polygon(values: Sequence[Any], crs: CRS) -> BaseGeometry:
    if len(values) != 4:
        raise InvalidInputError(
            f"bbox {tuple(values)!r} has {len(values)} numbers: pass exactly 4 as "
            "(minx, miny, maxx, maxy)"
        )
    try:
        minx, miny, maxx, maxy = (float(v) for v in values)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            f"bbox {tuple(values)!r} must hold 4 numbers (minx, miny, maxx, maxy)"
        ) from err
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise InvalidInputError(f"bbox {(minx, miny, maxx, maxy)} holds NaN or infinite numbers")
    if minx > maxx:
        hint = (
            " Boxes crossing the antimeridian (minx > maxx) are not supported: split the area "
            "into two boxes, one on each side of 180 degrees."
            if crs.geographic
            else ""
        )
        raise InvalidInputError(
            f"bbox {(minx, miny, maxx, maxy)} is inverted: minx {minx} > maxx {maxx}; the order is "
            f"(minx, miny, maxx, maxy).{hint}"
        )
    if miny > maxy:
        raise InvalidInputError(
            f"bbox {(minx, miny, maxx, maxy)} is inverted: miny {miny} > maxy {maxy}; the order is "
            "(minx, miny, maxx, maxy), i.e. (west, south, east, north) in lon/lat"
        )
    if minx == maxx or miny == maxy:
        raise InvalidInputError(
            f"bbox {(minx, miny, maxx, maxy)} has zero width or height: widen it, or pass a "
            "shapely Point/LineString for a point or line AOI"
        )
    return shapely.box(minx, miny, maxx, maxy)


def _validate(geom: Geometry) -> None:
    shape = geom.geom
    if shape is None or shape.is_empty:
        raise InvalidInputError("aoi geometry is empty: pass a geometry with coordinates")
    if not shape.is_valid:
        raise InvalidInputError(
            f"aoi geometry is invalid ({shapely.is_valid_reason(shape)}): repair it "
            "first, e.g. with shapely.make_valid(geometry)"
        )
    minx, miny, maxx, maxy = shape.bounds
    geographic = geom.crs is not None and geom.crs.geographic
    if geographic and (minx < -180 or maxx > 180 or miny < -90 or maxy > 90):
        swapped = max(abs(minx), abs(maxx)) <= 90 and max(abs(miny), abs(maxy)) <= 180
        hint = (
            " The numbers look like (lat, lon): swap them to (lon, lat)."
            if swapped
            else " If the coordinates are projected (metres), give their CRS with aoi_crs="
            " (recipe: aoi_crs: EPSG:...)."
        )
        raise InvalidInputError(
            f"aoi bounds {(minx, miny, maxx, maxy)} are outside lon [-180, 180] / lat "
            f"[-90, 90] of {geom.crs}.{hint}"
        )
