"""Build aligned multi-sensor cubes: plan from STAC items (cheap), then read, align and write.

    plan = plan_cube(modalities, aoi=aoi)           # grid, items per time step, sizes; no pixels
    plan.to_datatree()                              # the cube as a lazy DataTree (dask)
    build_cube("cube.zarr", modalities, aoi=aoi)    # written tile by tile, resumable

The cube has one CRS and origin; each modality keeps its own resolution (an integer ratio of the
base resolution) and dims ``(time, band, y, x)``. See :mod:`geoalign.cube_store` for the store
layout and the resume/complete rules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pystac
import xarray as xr
from odc.geo.geom import Geometry
from rasterio.enums import Resampling

from geoalign._version import __version__
from geoalign.aoi import AOILike, to_aoi
from geoalign.cube_store import (
    Compression,
    check_compression,
    finalize_store,
    prepare_store,
    set_decoding_attrs,
    tiles_of,
    without_decoding_attrs,
    write_group_metadata,
    write_tiles,
)
from geoalign.errors import (
    CorruptDataError,
    DataFileNotFoundError,
    GeoAlignError,
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
            with rasterio.open(href) as src:
                if src.crs is None:
                    return "it has no CRS: fix the file (gdal_edit.py -a_srs) or its georeferencing"
                return None
        except Exception as error:  # any GDAL failure means the asset is unusable
            return f"GDAL cannot open it: {error}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        problems = {h: p for h, p in zip(hrefs, pool.map(probe, hrefs), strict=True) if p}
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
            "items": json.dumps(
                [
                    {
                        "id": i.item_id,
                        "datetime": i.datetime.isoformat(),
                        "hrefs": sorted({s.href for s in i.bands}),
                    }
                    for i in kept
                ]
            ),
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
    return CubePlan(grid=grid, modalities=plans, labels=list(labels), skipped=skipped)


def build_cube(
    path: str | os.PathLike[str],
    modalities: Sequence[ModalityRequest],
    *,
    aoi: AOILike,
    aoi_crs: Any = None,
    crs: Any = None,
    base_resolution: float | None = None,
    origin: tuple[float, float] | None = None,
    labels: Sequence[LabelLayer] = (),
    on_error: OnError = "fail",
    overwrite: bool = False,
    resume: bool = True,
    compression: str = "none",
    recipe: Mapping[str, Any] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Plan a cube (:func:`plan_cube`) and write it (:func:`write_cube`) to a Zarr store.

    The arguments from ``modalities`` to ``on_error`` are those of :func:`plan_cube`.

    Args:
        path: Output Zarr store (a directory).
        overwrite: Replace an existing cube at ``path``.
        resume: Continue an interrupted build of the same recipe at ``path`` (finished tiles are
            not redone).
        compression: ``"none"`` (fastest window reads, the default), ``"lz4"`` or ``"zstd"``.
        recipe: The recipe this cube comes from, stored verbatim in its provenance.
        on_tile: Called with ``(tiles_done, tiles_total)`` after each written tile (progress bars).

    Returns:
        The path of the finished cube. The store is marked complete only after every tile and the
        metadata are written, and only if every modality has valid pixels.

    Parallelism: tiles are computed by the active dask scheduler; inside a
    ``dask.distributed.Client`` context (a LocalCluster or any scheduler address) the build runs
    on that cluster unchanged.
    """
    plan = plan_cube(
        modalities,
        aoi=aoi,
        aoi_crs=aoi_crs,
        crs=crs,
        base_resolution=base_resolution,
        origin=origin,
        labels=labels,
        on_error=on_error,
    )
    return write_cube(
        path,
        plan,
        overwrite=overwrite,
        resume=resume,
        compression=compression,
        recipe=recipe,
        on_tile=on_tile,
    )


def write_cube(
    path: str | os.PathLike[str],
    plan: CubePlan,
    *,
    overwrite: bool = False,
    resume: bool = True,
    compression: str = "none",
    recipe: Mapping[str, Any] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a planned cube to ``path``; see :func:`build_cube` for the arguments and guarantees."""
    store = Path(path)
    checked_compression: Compression = check_compression(compression)
    fingerprint = plan.fingerprint()
    done = prepare_store(store, fingerprint=fingerprint, overwrite=overwrite, resume=resume)
    tree = plan.to_datatree()
    datasets: dict[str, xr.Dataset] = {}
    tiles = []
    if not done:
        xr.Dataset(attrs=plan.root_attrs()).to_zarr(
            str(store), mode="a", consolidated=False, zarr_format=3
        )
    decoding: dict[str, dict[str, dict[str, Any]]] = {}
    for name, modality in plan.modalities.items():
        ds, decoding[name] = without_decoding_attrs(tree[name].to_dataset())
        datasets[name] = ds
        if not done:
            write_group_metadata(
                store, name, ds, chunk=modality.chunk, compression=checked_compression
            )
        tiles.extend(tiles_of(name, ds, modality.chunk))
    for group_path, ds in label_datasets(plan.labels, plan.grid).items():
        if not done:
            ds.to_zarr(str(store), group=group_path, mode="w", consolidated=False, zarr_format=3)
    total = len(tiles)
    counter = {"n": len(done)}

    def tick(_: Any) -> None:
        counter["n"] += 1
        if on_tile is not None:
            on_tile(counter["n"], total)

    resumed = bool(done)
    with _bounded_gdal_cache():
        counts = write_tiles(store, datasets, tiles, done, fingerprint=fingerprint, on_tile=tick)
    if resumed:  # tiles written by an earlier run are not in memory: read them back
        fractions = _valid_fractions(store, list(plan.modalities))
    else:
        # Counted from the blocks just computed: reading ``valid`` back from the store cost
        # 0.3-0.6 s of serial time after the last tile on the benchmark.
        fractions = {name: counts[name] / datasets[name]["valid"].size for name in plan.modalities}
    empty = [name for name, fraction in fractions.items() if fraction == 0.0]
    if empty:
        raise NoDataFoundError(
            f"modalities {empty} have no valid pixel in the area (all no-data or cloud): the store "
            f"{store} is left unfinished. Check the AOI, the dates, or set mask_clouds=False"
        )
    for name, held in decoding.items():
        set_decoding_attrs(store, name, held)
    attrs = plan.root_attrs()
    attrs["valid_fraction"] = json.dumps(fractions)
    attrs["recipe"] = json.dumps(recipe or {}, default=str)
    attrs["created"] = dt.datetime.now(dt.UTC).isoformat()
    finalize_store(store, attrs)
    return store


#: GDAL block cache during a build, unless GDAL_CACHEMAX is set. GDAL's default is 5% of RAM
#: (1.2 GB here, 6 GB on a 128 GB node): it fills with decoded COG tiles and makes peak memory
#: grow with the area. Reads are block-sized, so a small cache loses nothing (16-64 MB measured
#: as fast as the default; 256 MB slower).
BUILD_GDAL_CACHE_BYTES = 64 * 2**20


@contextlib.contextmanager
def _bounded_gdal_cache() -> Iterator[None]:
    from rasterio.env import get_gdal_config, set_gdal_config

    if "GDAL_CACHEMAX" in os.environ:
        yield
        return
    previous = get_gdal_config("GDAL_CACHEMAX")
    set_gdal_config("GDAL_CACHEMAX", BUILD_GDAL_CACHE_BYTES)
    try:
        yield
    finally:
        set_gdal_config("GDAL_CACHEMAX", previous)


def _valid_fractions(store: Path, names: Sequence[str]) -> dict[str, float]:
    """Fraction of valid pixels per modality, read back from the written ``valid`` arrays."""
    fractions = {}
    for name in names:
        valid = xr.open_zarr(str(store), group=name, consolidated=False)["valid"]
        fractions[name] = float(valid.mean().compute())
    return fractions


__all__ = [
    "CubePlan",
    "GeoAlignError",
    "ModalityRequest",
    "build_cube",
    "plan_cube",
    "write_cube",
]
