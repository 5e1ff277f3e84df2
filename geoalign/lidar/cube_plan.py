"""Point-cloud modalities of a cube: LAS/LAZ/COPC items rasterized once, then read as rasters.

For a sensor of kind ``lidar_points`` (``3dep-lidar-copc``, ``lidar-points``), planning a cube
(:func:`geoalign.cube.plan_cube`) groups the items by solar day, as for rasters, and rasterizes
the point clouds of each group together (:func:`geoalign.lidar.rasterize_to_geotiff`: streamed,
COPC bounds queries) into one GeoTIFF on the modality's GeoBox, one band per product. The
modality's bands are the products (``bands=["dsm", "ndsm", "height_p95"]``; all defaults when
None), stored as float32 with NaN. The cube then slices those GeoTIFFs without resampling.

The GeoTIFFs are a cache named by a hash of everything that determines them (hrefs, file sizes
and times, header point counts and bounds, CRS, grid, options), so planning the same cube again,
or resuming its build, reuses them.
The folder is :attr:`LidarRequest.cache_dir`, else ``$GEOALIGN_CACHE_DIR/lidar``, else
``$XDG_CACHE_HOME/geoalign/lidar`` (``~/.cache/geoalign/lidar``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pystac
from odc.geo.geom import Geometry
from rasterio.enums import Resampling

from geoalign.errors import CorruptDataError, GeoAlignError, InvalidInputError, NoDataFoundError
from geoalign.grid import CubeGrid
from geoalign.lidar.crs import point_crs_from_parts
from geoalign.lidar.products import RasterizeOptions, check_products
from geoalign.lidar.rasterize import rasterize_to_geotiff
from geoalign.lidar.reader import PointCloud
from geoalign.modality import ItemSources, ModalityPlan, default_chunk, group_by_solar_day
from geoalign.planning import ModalityRequest, OnError
from geoalign.sensors import BandSource, Encoding, Sensor, item_datetime


@dataclass(frozen=True)
class LidarRequest(ModalityRequest):
    """A :class:`~geoalign.cube.ModalityRequest` for point clouds, with rasterization options.

    ``bands`` names the products (see :mod:`geoalign.lidar.products`); when None,
    ``options.products`` are made.

    Attributes:
        options: Products, ground classes, DTM fallback, memory bound...
        cache_dir: Folder of the rasterized GeoTIFFs (see the module docstring).
    """

    options: RasterizeOptions = field(default_factory=RasterizeOptions)
    cache_dir: str | os.PathLike[str] | None = None


def cache_dir(request: ModalityRequest) -> Path:
    """Where the GeoTIFFs of a point-cloud modality are kept (see the module docstring)."""
    given = getattr(request, "cache_dir", None)
    if given is not None:
        return Path(given)
    if os.environ.get("GEOALIGN_CACHE_DIR"):
        return Path(os.environ["GEOALIGN_CACHE_DIR"]) / "lidar"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "geoalign" / "lidar"


@dataclass(frozen=True)
class _PointItem:
    item: pystac.Item
    cloud: PointCloud
    when: dt.datetime


def _open_items(
    request: ModalityRequest,
    sensor: Sensor,
    items: Sequence[pystac.Item],
    options: RasterizeOptions,
    on_error: OnError,
) -> tuple[list[_PointItem], list[dict[str, str]]]:
    """Open each item's point cloud (header only); skip or refuse the ones that fail."""
    opened: list[_PointItem] = []
    skipped: list[dict[str, str]] = []
    for item in items:
        when = item_datetime(item)
        if when is None:
            raise InvalidInputError(
                f"item {item.id!r} has no datetime, start_datetime or end_datetime: add one"
            )
        sources = sensor.band_sources(item, None)
        source = sources[0]
        declared = (
            point_crs_from_parts(source.crs, source.vertical_crs, source="stac")
            if source.crs is not None
            else None
        )
        try:
            cloud = PointCloud(
                source.href,
                crs=declared,
                exclude_classes=options.exclude_classes,
                chunk_points=options.chunk_points,
            )
        except GeoAlignError as error:
            if on_error == "fail":
                raise type(error)(
                    f"item {item.id!r} of modality {request.name!r}: {error}. Pass "
                    "on_error='skip' to build without it"
                ) from error
            skipped.append({"item": item.id, "href": source.href, "reason": str(error)})
            continue
        utc = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        opened.append(_PointItem(item, cloud, utc))
    return opened, skipped


def _cache_key(clouds: Sequence[PointCloud], grid_box: Any, options: RasterizeOptions) -> str:
    stamps: list[Any] = []
    for cloud in clouds:
        path = Path(cloud.href)
        stat = path.stat() if path.is_file() else None
        stamps.append([cloud.href, stat.st_size if stat else None, stat.st_mtime_ns if stat else 0])
        # remote files have no local time stamp: their header's facts stand in for it
        stamps.append([cloud.info.crs.describe(), cloud.info.point_count, cloud.info.bounds])
    content = {
        "sources": stamps,
        "grid": [grid_box.crs.to_wkt(), list(grid_box.affine)[:6], list(grid_box.shape)],
        "options": {k: getattr(options, k) for k in RasterizeOptions.__dataclass_fields__},
        "format": 1,
    }
    text = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _rasterize_group(
    members: list[_PointItem],
    geobox: Any,
    prefix: Path,
    options: RasterizeOptions,
    on_error: OnError,
    skipped: list[dict[str, str]],
) -> tuple[Path | None, list[_PointItem]]:
    """Rasterize the point clouds of one time step together (or reuse the cached GeoTIFF).

    A file found corrupt while its points are read is refused (``on_error="fail"``) or dropped
    from the group, which is then rasterized again without it.

    Returns:
        The GeoTIFF (None when no point falls on the grid) and the members it holds.
    """
    while members:
        clouds = [m.cloud for m in members]
        path = prefix.with_name(f"{prefix.name}-{_cache_key(clouds, geobox, options)}.tif")
        if path.exists():
            return path, members
        try:
            report = rasterize_to_geotiff(clouds, geobox, path, options=options)
        except CorruptDataError as error:
            if on_error == "fail":
                raise CorruptDataError(f"{error}; or pass on_error='skip'") from error
            bad = [m for m in members if m.cloud.href in str(error)] or members
            skipped.extend(
                {"item": m.item.id, "href": m.cloud.href, "reason": str(error)} for m in bad
            )
            members = [m for m in members if m not in bad]
            continue
        if report.path is None:
            skipped.extend(
                {"item": m.item.id, "href": m.cloud.href, "reason": "no point on the grid"}
                for m in members
            )
            return None, members
        return path, members
    return None, members


def plan_point_modality(
    request: ModalityRequest,
    sensor: Sensor,
    items: Sequence[pystac.Item],
    grid: CubeGrid,
    aoi: Geometry,
    on_error: OnError,
) -> tuple[ModalityPlan, list[dict[str, str]]]:
    """Plan a ``lidar_points`` modality: rasterize its items' point clouds onto its grid.

    Args:
        request: The modality (a :class:`LidarRequest` to set rasterization options).
        sensor: Its sensor (kind ``lidar_points``).
        items: The items that overlap the area of interest.
        grid: The cube's grid family.
        aoi: The area of interest (its centre gives the solar day of the items).
        on_error: ``"skip"`` items whose point cloud is missing, corrupt or has no CRS (they
            are recorded), or ``"fail"``.

    Returns:
        The modality plan (bands = products) and the skipped items.

    Raises:
        NoDataFoundError: No item left, or no point of any item on the grid.
    """
    options: RasterizeOptions = getattr(request, "options", None) or RasterizeOptions()
    products = check_products(request.bands) if request.bands else options.products
    options = dataclasses.replace(options, products=products)
    try:
        resampling = Resampling[request.resampling]
    except KeyError:
        raise InvalidInputError(f"resampling={request.resampling!r} is unknown") from None
    geobox = grid.geobox(request.name)
    opened, skipped = _open_items(request, sensor, items, options, on_error)
    longitude = aoi.to_crs("EPSG:4326").centroid.coords[0][0]
    by_id = {p.item.id: p for p in opened}
    placeholders = [ItemSources(p.item.id, p.when, 0.0, ()) for p in opened]
    folder = cache_dir(request)
    units = options.units()
    groups: list[tuple[ItemSources, ...]] = []
    provenance: list[dict[str, Any]] = []
    for group in group_by_solar_day(placeholders, longitude):
        members = sorted((by_id[g.item_id] for g in group), key=lambda p: p.item.id)
        path, members = _rasterize_group(
            members, geobox, folder / request.name, options, on_error, skipped
        )
        if path is None:
            continue
        group_id = "+".join(m.item.id for m in members)
        when = min(m.when for m in members)
        bands = tuple(
            BandSource(
                item_id=group_id,
                collection=members[0].item.collection_id,
                sensor=sensor.name,
                band=name,
                asset_key="lidar",
                href=str(path),
                index=index,
                nodata=math.nan,
                scale=1.0,
                offset=0.0,
                units=units[index - 1],
                dtype="float32",
                crs=geobox.crs,
                vertical_crs=None,
                transform=None,
                shape=None,
                datetime=when,
            )
            for index, name in enumerate(products, start=1)
        )
        groups.append((ItemSources(group_id, when, 0.0, bands),))
        provenance.extend(
            {
                "id": m.item.id,
                "datetime": m.when.isoformat(),
                "hrefs": [m.cloud.href],
                "crs": m.cloud.info.crs.describe(),
                "raster": str(path),
            }
            for m in members
        )
    if not groups:
        raise NoDataFoundError(
            f"no point of the {len(items)} item(s) of modality {request.name!r} falls on the "
            f"grid (skipped: {skipped[:3]}): check the area of interest and the items' files"
        )
    plan = ModalityPlan(
        name=request.name,
        sensor=sensor.name,
        band_names=products,
        geobox=geobox,
        groups=tuple(groups),
        encoding=Encoding(dtype="float32", nodata=math.nan),
        time_mode=request.time,
        period=request.period,
        resampling=resampling,
        mask=None,
        chunk=default_chunk(request.resolution),
        band_attrs={"wavelength_nm": [math.nan] * len(products), "units": units},
        attrs={
            "geoalign_kind": "modality",
            "sensor": sensor.name,
            "sensor_kind": sensor.kind,
            "sensor_notes": " ".join(sensor.notes),
            "units": "",
            "resolution": request.resolution,
            "time_mode": request.time,
            "items": json.dumps(provenance),
            "lidar_options": json.dumps(
                {k: getattr(options, k) for k in RasterizeOptions.__dataclass_fields__}
            ),
        },
    )
    return plan, skipped
