"""What a recipe's build will cost, before any pixel is read (``geoalign cube --dry-run``).

    requests = search_recipe(recipe, base)          # STAC searches (or local files)
    estimate = estimate_build(recipe, base, requests)
    estimate.nbytes, estimate.seconds                # uncompressed size, rough build time

Raster modalities are planned as the build plans them (:func:`geoalign.cube.plan_cube`: item
metadata and file headers only). Point-cloud modalities are rasterized when a cube is planned
for building; here they are only counted (items, dates, points from ``pc:count`` or the file
headers of local files) and sized from the grid, so a dry run reads no points either.

The time is a rough guide, from throughputs measured on the demo cube on this project's 2-core
machine (:data:`LOCAL_BYTES_PER_S`, :data:`POINTS_PER_S`); remote assets are assumed to stream
at :data:`REMOTE_BYTES_PER_S` (a guess: networks vary by orders of magnitude).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoalign.aoi import to_aoi
from geoalign.cube import ModalityRequest, plan_cube
from geoalign.grid import make_grid
from geoalign.recipe import Recipe

#: Cube bytes written per second from local files (demo cube, 2 cores, threads).
LOCAL_BYTES_PER_S = 12e6
#: Cube bytes per second from remote (HTTP/S3) assets: an assumption, not a measurement.
REMOTE_BYTES_PER_S = 4e6
#: Points read (LAZ) and rasterized per second (demo point cloud, 2 cores).
POINTS_PER_S = 0.7e6


@dataclass(frozen=True)
class ModalityEstimate:
    """One modality of a planned build.

    Attributes:
        name: Group name.
        sensor: Sensor name.
        items: STAC items found for it.
        steps: Time steps it will hold (dates, or composites).
        time_mode: ``series``, ``median`` or ``least_cloudy``.
        shape: ``(rows, cols)`` of its grid.
        resolution: Pixel size (cube CRS units).
        bands: Bands (products for point clouds).
        nbytes: Uncompressed bytes of its arrays (data + valid mask).
        remote: Whether its assets are read over the network.
        points: Points to rasterize (point clouds; None when unknown or not a point cloud).
    """

    name: str
    sensor: str
    items: int
    steps: int
    time_mode: str
    shape: tuple[int, int]
    resolution: float
    bands: int
    nbytes: int
    remote: bool
    points: int | None = None

    def seconds(self) -> float:
        """Rough time to build this modality (s)."""
        rate = REMOTE_BYTES_PER_S if self.remote else LOCAL_BYTES_PER_S
        return self.nbytes / rate + (self.points or 0) / POINTS_PER_S


@dataclass(frozen=True)
class BuildEstimate:
    """A build planned from metadata: per modality its items, grid and size; the total time.

    Attributes:
        epsg: EPSG code of the cube CRS (None for a custom CRS).
        modalities: One estimate per modality, in recipe order.
        output: The cube the build writes.
    """

    epsg: int | None
    modalities: tuple[ModalityEstimate, ...]
    output: Path

    @property
    def nbytes(self) -> int:
        """Uncompressed size of the cube (bytes)."""
        return sum(m.nbytes for m in self.modalities)

    @property
    def seconds(self) -> float:
        """Rough build time (s) on 2 cores; see the module docstring."""
        return sum(m.seconds() for m in self.modalities)

    def rows(self) -> list[dict[str, object]]:
        """One table row per modality (for printing)."""
        return [
            {
                "modality": m.name,
                "sensor": m.sensor,
                "items": m.items,
                "dates": m.steps if m.time_mode == "series" else f"{m.steps} ({m.time_mode})",
                "grid y x": f"{m.shape[0]}x{m.shape[1]}",
                "res": m.resolution,
                "bands": m.bands,
                "MB": round(m.nbytes / 1e6, 1),
                "time": format_seconds(m.seconds()),
            }
            for m in self.modalities
        ]


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3.5 min"`` or ``"2.1 h"``."""
    if seconds < 90:
        return f"{max(seconds, 0.1):.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _remote(request: ModalityRequest) -> bool:
    return any(
        "://" in asset.href and not asset.href.startswith("file://")
        for item in request.items
        for asset in item.assets.values()
    )


def _point_count(request: ModalityRequest) -> int | None:
    """Points of a point-cloud modality: ``pc:count``, else the headers of local files."""
    total = 0
    for item in request.items:
        count = item.properties.get("pc:count")
        if count is None:
            hrefs = [a.href for a in item.assets.values() if "://" not in a.href]
            if not hrefs:
                return None
            import laspy

            try:
                with laspy.open(hrefs[0]) as reader:
                    count = reader.header.point_count
            except (OSError, laspy.errors.LaspyException):
                return None
        total += int(count)
    return total


def _dates(request: ModalityRequest) -> int:
    days = set()
    for item in request.items:
        when = item.datetime or item.common_metadata.start_datetime
        days.add(when.date() if isinstance(when, dt.datetime) else None)
    return max(len(days), 1)


def estimate_build(
    recipe: Recipe, base: Path, requests: Sequence[ModalityRequest], output: Path
) -> BuildEstimate:
    """Size and rough time of the build of ``requests`` (from :func:`search_recipe`).

    Reads metadata only: raster file headers, point-cloud item properties or LAS headers.

    Raises:
        InvalidInputError, NoDataFoundError, CRSError: As :func:`geoalign.cube.plan_cube`.
    """
    from geoalign.recipe_build import recipe_aoi
    from geoalign.sensors import get_sensor

    aoi = recipe_aoi(recipe, base)
    geometry = to_aoi(aoi, crs=recipe.aoi_crs)
    grid = make_grid(
        geometry,
        resolutions={r.name: r.resolution for r in requests},
        base_resolution=recipe.base_resolution,
        crs=recipe.crs,
        origin=recipe.origin,
    )
    kinds = {
        r.name: (get_sensor(r.sensor) if isinstance(r.sensor, str) else r.sensor).kind
        for r in requests
    }
    rasters = [r for r in requests if kinds[r.name] != "lidar_points"]
    plan = (
        plan_cube(
            rasters,
            aoi=aoi,
            aoi_crs=recipe.aoi_crs,
            crs=grid.crs,
            base_resolution=grid.base_resolution,
            origin=recipe.origin,
            on_error=recipe.on_error,
        )
        if rasters
        else None
    )
    estimates = []
    for request in requests:
        geobox = grid.geobox(request.name)
        shape = (int(geobox.shape.y), int(geobox.shape.x))
        if plan is not None and request.name in plan.modalities:
            modality = plan.modalities[request.name]
            bands, steps = len(modality.band_names), len(modality.steps())
            itemsize = np.dtype(modality.encoding.dtype).itemsize
            sensor, points = modality.sensor, None
        else:
            from geoalign.lidar.products import DEFAULT_PRODUCTS

            bands = len(request.bands or DEFAULT_PRODUCTS)
            steps = 1 if request.time != "series" else _dates(request)
            itemsize, points = 4, _point_count(request)
            sensor = request.sensor if isinstance(request.sensor, str) else request.sensor.name
        estimates.append(
            ModalityEstimate(
                name=request.name,
                sensor=sensor,
                items=len(request.items),
                steps=steps,
                time_mode=request.time,
                shape=shape,
                resolution=float(request.resolution),
                bands=bands,
                nbytes=steps * math.prod(shape) * (bands * itemsize + 1),
                remote=_remote(request),
                points=points,
            )
        )
    return BuildEstimate(epsg=grid.crs.epsg, modalities=tuple(estimates), output=output)
