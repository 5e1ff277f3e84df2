"""Plan a cube from metadata only: the grid, the items of each modality and time step.

Planning reads no pixels (point-cloud modalities excepted: they are rasterized onto their grid
here, once, see :mod:`geoalign.lidar.cube_plan`). It resolves every STAC item through its sensor
into band sources, drops items outside the area, probes every asset once (missing, corrupt or
CRS-less files fail or are skipped and recorded, as the user chooses), and groups items by solar
day. :mod:`geoalign.cube` writes the plan.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pystac
import xarray as xr
from odc.geo.geom import Geometry
from rasterio.enums import Resampling

from geoalign._version import __version__
from geoalign.aoi import AOILike, to_aoi
from geoalign.errors import (
    CorruptDataError,
    DataFileNotFoundError,
    InvalidInputError,
    NoDataFoundError,
)
from geoalign.grid import CubeGrid, make_grid
from geoalign.labels import LabelLayer, label_datasets
from geoalign.modality import (
    ItemSources,
    ModalityPlan,
    TimeMode,
    default_chunk,
    group_by_solar_day,
    lazy_modality,
)
from geoalign.raster_pool import POOL

if TYPE_CHECKING:
    from geoalign.sensors import BandSource, SarUnit, Sensor

OnError = Literal["fail", "skip"]


@dataclass(frozen=True)
class ModalityRequest:
    """One modality of a cube: a sensor, its STAC items, bands and resolution.

    Attributes:
        name: Group name in the cube (``"s2"``, ``"s1"``, ``"ortho"``...).
        sensor: Sensor name or description (see :func:`geoalign.sensors.get_sensor`).
        items: STAC items found for this modality (e.g. by :func:`geoalign.search.search_items`).
        resolution: Pixel size in units of the cube CRS (metres for UTM).
        bands: Canonical band names to keep; None keeps every band of the sensor.
        time: ``"series"`` keeps each solar day; ``"median"`` or ``"least_cloudy"`` composite.
        period: For composites, one per pandas period (``"M"``, ``"Q"``, ``"Y"``, ``"W"``...);
            None makes one composite of all dates.
        resampling: GDAL resampling for sources on another grid ("nearest", "bilinear",
            "cubic", "average"...). Nearest keeps values, bilinear smooths continuous fields.
        mask_clouds: Set cloudy and shadowed pixels (sensor mask band, e.g. SCL) to no-data.
        sar_unit: For radar: ``"linear"`` or ``"db"`` backscatter; None keeps the native unit.
    """

    name: str
    sensor: str | Sensor
    items: Sequence[pystac.Item]
    resolution: float
    bands: Sequence[str] | None = None
    time: TimeMode = "series"
    period: str | None = None
    resampling: str = "nearest"
    mask_clouds: bool = True
    sar_unit: SarUnit | None = None


@dataclass
class CubePlan:
    """A cube planned from metadata only: its grid, modalities and the items each will read."""

    grid: CubeGrid
    modalities: dict[str, ModalityPlan]
    labels: list[LabelLayer] = field(default_factory=list)
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    #: What a build does when an asset cannot be read: ``"fail"``, or ``"skip"`` its item.
    on_error: OnError = "fail"

    def without_asset(self, href: str, reason: str) -> tuple[CubePlan, list[str]]:
        """This plan with every item that reads ``href`` left out and recorded as skipped.

        Returns:
            The new plan and the names of the modalities that changed.

        Raises:
            NoDataFoundError: A modality would be left with no item.
        """
        modalities = dict(self.modalities)
        skipped = {name: list(entries) for name, entries in self.skipped.items()}
        changed = []
        for name, plan in self.modalities.items():
            groups = []
            for group in plan.groups:
                kept = []
                for item in group:
                    if href in _hrefs(item):
                        entry = {"item": item.item_id, "href": href, "reason": reason}
                        skipped.setdefault(name, []).append(entry)
                    else:
                        kept.append(item)
                if kept:
                    groups.append(tuple(kept))
            if len(skipped.get(name, [])) == len(self.skipped.get(name, [])):
                continue
            if not groups:
                raise NoDataFoundError(
                    f"every item of modality {name!r} was skipped because its assets could not "
                    f"be read: {skipped[name][:3]}"
                )
            used = [item for group in groups for item in group]
            attrs = {**plan.attrs, "items": _items_provenance(used)}
            modalities[name] = replace(plan, groups=tuple(groups), attrs=attrs)
            changed.append(name)
        return replace(self, modalities=modalities, skipped=skipped), changed

    def to_datatree(self) -> xr.DataTree:
        """The whole cube as a lazy DataTree; computing a window reads only what it needs."""
        groups: dict[str, xr.Dataset] = {"/": xr.Dataset(attrs=self.root_attrs())}
        for name, plan in self.modalities.items():
            ds = lazy_modality(plan)
            ds.attrs["skipped_items"] = json.dumps(self.skipped.get(name, []))
            groups[name] = ds
        for path, ds in label_datasets(self.labels, self.grid).items():
            groups[path] = ds
        return xr.DataTree.from_dict(groups)

    def nbytes(self) -> int:
        """Estimated size of the cube's arrays in bytes (before compression)."""
        total = 0
        for plan in self.modalities.values():
            steps = len(plan.steps())
            pixels = plan.geobox.shape.y * plan.geobox.shape.x
            total += (
                steps * pixels * (len(plan.band_names) * np.dtype(plan.encoding.dtype).itemsize + 1)
            )
        return total

    def root_attrs(self) -> dict[str, Any]:
        """Provenance of the cube as a whole."""
        return {
            "geoalign_version": __version__,
            "grid": json.dumps(self.grid.to_dict()),
            "modalities": json.dumps(list(self.modalities)),
            "crs": self.grid.crs.to_wkt(),
        }

    def fingerprint(self) -> str:
        """A hash of everything that determines the cube's content (for safe resumes)."""
        content = {
            "grid": self.grid.to_dict(),
            "modalities": {
                name: {
                    "bands": plan.band_names,
                    "time": [plan.time_mode, plan.period],
                    "encoding": [plan.encoding.dtype, plan.encoding.scale, plan.encoding.offset],
                    "items": [[i.item_id for i in g] for g in plan.groups],
                    "resampling": plan.resampling.name,
                }
                for name, plan in self.modalities.items()
            },
            "labels": [layer.fingerprint() for layer in self.labels],
        }
        return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def _resampling(name: str) -> Resampling:
    try:
        return Resampling[name]
    except KeyError:
        choices = ", ".join(r.name for r in Resampling if r.value < 14)
        raise InvalidInputError(
            f"resampling={name!r} is unknown; choose one of {choices}"
        ) from None


def _items_provenance(items: Sequence[ItemSources]) -> str:
    """The items a modality reads, as the JSON its group's ``items`` attribute holds."""
    return json.dumps(
        [
            {
                "id": i.item_id,
                "datetime": i.datetime.isoformat(),
                "hrefs": sorted({s.href for s in i.bands}),
            }
            for i in items
        ]
    )


def _hrefs(item: ItemSources) -> set[str]:
    """Every file an item reads: its bands and its mask."""
    return {s.href for s in (*item.bands, *([item.mask] if item.mask else []))}


def _check_assets(
    item_sources: Sequence[ItemSources], on_error: OnError
) -> tuple[list[ItemSources], list[dict[str, str]]]:
    """Open every distinct asset once (in threads); drop or refuse items whose assets fail."""
    import rasterio

    hrefs = sorted(
        {
            s.href
            for item in item_sources
            for s in (*item.bands, *([item.mask] if item.mask else []))
        }
    )

    def probe(href: str) -> str | None:
        if "://" not in href and not href.startswith("/vsi") and not os.path.exists(href):
            return "file does not exist"
        try:
            src = rasterio.open(href)
        except Exception as error:  # any GDAL failure means the asset is unusable
            return f"GDAL cannot open it: {error}"
        if src.crs is None:
            src.close()
            return "it has no CRS: fix the file (gdal_edit.py -a_srs) or its georeferencing"
        POOL.keep(href, src)  # the build reads through this handle: no second open
        return None

    # Threads hide network latency; local files open in 1-2 ms, faster one after another than
    # through a pool of threads competing for the GIL (0.12 s against 0.3 s CPU for the
    # benchmark's 84 files).
    remote = any("://" in href or href.startswith("/vsi") for href in hrefs)
    if remote:
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(probe, hrefs))
    else:
        found = [probe(href) for href in hrefs]
    problems = {h: p for h, p in zip(hrefs, found, strict=True) if p}
    if not problems:
        return list(item_sources), []
    bad = []
    kept = []
    for item in item_sources:
        failing = [
            s.href for s in (*item.bands, *([item.mask] if item.mask else [])) if s.href in problems
        ]
        if failing:
            bad.append({"item": item.item_id, "href": failing[0], "reason": problems[failing[0]]})
        else:
            kept.append(item)
    if on_error == "fail":
        listing = "; ".join(f"{b['item']}: {b['href']} ({b['reason']})" for b in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        error_type = (
            DataFileNotFoundError if all("exist" in b["reason"] for b in bad) else CorruptDataError
        )
        raise error_type(
            f"{len(bad)} item(s) have missing or unreadable assets: {listing}{more}. Fix the "
            "hrefs, or pass on_error='skip' to build without them (they are recorded in the "
            "cube's provenance)"
        )
    return kept, bad


def _mask_sources(sensor: Sensor, item: pystac.Item, request: ModalityRequest) -> list[BandSource]:
    """The item's mask band (e.g. SCL), with a hint to switch masking off when it is missing."""
    from geoalign.errors import SensorError

    if sensor.mask is None:
        return []
    try:
        return sensor.mask_sources(item)
    except SensorError as error:
        raise SensorError(
            f"{error} -- modality {request.name!r} masks clouds with this band: pass "
            "mask_clouds=False (recipe: mask_clouds: false) to build without cloud masking"
        ) from None


def _plan_modality(
    request: ModalityRequest,
    grid: CubeGrid,
    aoi: Geometry,
    on_error: OnError,
) -> tuple[ModalityPlan, list[dict[str, str]]]:
    from geoalign.sensors import get_sensor, item_datetime

    sensor = get_sensor(request.sensor) if isinstance(request.sensor, str) else request.sensor
    if not request.items:
        raise NoDataFoundError(
            f"modality {request.name!r} ({sensor.name}) has no STAC items: widen the time range "
            "or the area, or relax the filters of its search"
        )
    aoi_wgs84 = aoi.to_crs("EPSG:4326")
    overlapping = [
        item
        for item in request.items
        if item.geometry is None or Geometry(item.geometry, "EPSG:4326").intersects(aoi_wgs84)
    ]
    if not overlapping:
        raise NoDataFoundError(
            f"none of the {len(request.items)} items of modality {request.name!r} overlaps the "
            f"area of interest (bbox {aoi_wgs84.boundingbox}): check the AOI's CRS and the search"
        )
    # --- LiDAR point clouds (sensor kind "lidar_points": LAS/LAZ/COPC assets) ------------------
    # Rasterized once onto this modality's grid (bands = products such as dsm, ndsm, density),
    # then read like rasters; see geoalign.lidar.cube_plan. Raster sensors continue below.
    if sensor.kind == "lidar_points":
        from geoalign.lidar.cube_plan import plan_point_modality

        return plan_point_modality(request, sensor, overlapping, grid, aoi, on_error)
    # --- raster sensors -------------------------------------------------------------------------
    resolved: list[ItemSources] = []
    band_names: tuple[str, ...] | None = None
    first_sources: list[BandSource] = []
    for item in overlapping:
        sources = sensor.band_sources(item, request.bands, sar_unit=request.sar_unit)
        first_sources = first_sources or sources
        masks = _mask_sources(sensor, item, request) if request.mask_clouds else []
        mask = masks[0] if masks else None
        names = tuple(s.band for s in sources)
        if band_names is None:
            band_names = names
        elif names != band_names:
            raise InvalidInputError(
                f"item {item.id!r} of modality {request.name!r} has bands {names}, other items "
                f"have {band_names}: pass bands=[...] to choose the bands they share"
            )
        when = item_datetime(item)
        if when is None:
            raise InvalidInputError(
                f"item {item.id!r} has no datetime, start_datetime or end_datetime: add one"
            )
        resolved.append(
            ItemSources(
                item_id=item.id,
                datetime=when if when.tzinfo else when.replace(tzinfo=dt.UTC),
                cloud_cover=float(item.properties.get("eo:cloud_cover", 0.0) or 0.0),
                bands=tuple(sources),
                mask=mask,
            )
        )
    kept, skipped = _check_assets(resolved, on_error)
    if not kept or band_names is None:
        raise NoDataFoundError(
            f"every item of modality {request.name!r} was skipped because its assets could not "
            f"be read: {skipped[:3]}"
        )
    longitude = aoi_wgs84.centroid.coords[0][0]
    storage = sensor.encoding
    units = first_sources[0].units or storage.units or ""
    plan = ModalityPlan(
        name=request.name,
        sensor=sensor.name,
        band_names=band_names,
        geobox=grid.geobox(request.name),
        groups=group_by_solar_day(kept, longitude),
        encoding=storage,
        time_mode=request.time,
        period=request.period,
        resampling=_resampling(request.resampling),
        mask=sensor.mask if request.mask_clouds else None,
        chunk=default_chunk(request.resolution),
        band_attrs={
            "wavelength_nm": [float(s.center_wavelength_nm or "nan") for s in first_sources],
            "units": [s.units or "" for s in first_sources],
        },
        attrs={
            "geoalign_kind": "modality",
            "sensor": sensor.name,
            "sensor_kind": sensor.kind,
            "sensor_notes": " ".join(sensor.notes),
            "units": units,
            "resolution": request.resolution,
            "time_mode": request.time,
            "items": _items_provenance(kept),
        },
    )
    return plan, skipped


def plan_cube(
    modalities: Sequence[ModalityRequest],
    *,
    aoi: AOILike,
    aoi_crs: Any = None,
    crs: Any = None,
    base_resolution: float | None = None,
    origin: tuple[float, float] | None = None,
    labels: Sequence[LabelLayer] = (),
    on_error: OnError = "fail",
) -> CubePlan:
    """Plan a cube from metadata: the grid, the items per modality and time step. Reads no pixels.

    Args:
        modalities: What to load (see :class:`ModalityRequest`); names must be unique.
        aoi: Area of interest (bbox in lon/lat, geometry, GeoJSON, any geopandas-readable file).
        aoi_crs: CRS of ``aoi`` when it carries none (default lon/lat EPSG:4326 for bboxes).
        crs: Cube CRS; default the UTM zone of the AOI centre.
        base_resolution: Reference pixel size in CRS units; default the finest modality's.
        origin: A point ``(x, y)`` in cube CRS units on the pixel edges of every modality
            (default ``(0, 0)``); see :func:`geoalign.grid.make_grid`.
        labels: Label layers to rasterize onto the grid (see :mod:`geoalign.labels`).
        on_error: ``"fail"`` on a missing or corrupt asset, or ``"skip"`` the item and record it.

    Raises:
        InvalidInputError, NoDataFoundError, CRSError: with the problem and its fix.
    """
    if on_error not in ("fail", "skip"):
        raise InvalidInputError(f"on_error={on_error!r}: use 'fail' or 'skip'")
    if not modalities:
        raise InvalidInputError("no modalities given: a cube needs at least one sensor")
    names = [m.name for m in modalities]
    if len(set(names)) != len(names) or any(not n.isidentifier() for n in names):
        raise InvalidInputError(
            f"modality names {names} must be unique identifiers (letters, digits, underscores)"
        )
    for request in modalities:
        if request.time not in ("series", "median", "least_cloudy"):
            raise InvalidInputError(
                f"time={request.time!r} for modality {request.name!r}: use 'series', 'median' or "
                "'least_cloudy'"
            )
    geometry = to_aoi(aoi, crs=aoi_crs)
    grid = make_grid(
        geometry,
        resolutions={m.name: m.resolution for m in modalities},
        base_resolution=base_resolution,
        crs=crs,
        origin=origin,
    )
    plans: dict[str, ModalityPlan] = {}
    skipped: dict[str, list[dict[str, str]]] = {}
    for request in modalities:
        plans[request.name], skipped[request.name] = _plan_modality(
            request, grid, geometry, on_error
        )
    return CubePlan(
        grid=grid, modalities=plans, labels=list(labels), skipped=skipped, on_error=on_error
    )
