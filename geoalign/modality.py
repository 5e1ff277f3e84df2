"""Plan one modality of a cube as a lazy (dask) array on its grid; nothing is read until computed.

A modality is a sensor, the STAC items found for it, the bands wanted and a resolution. Its data
variable has dims ``(time, band, y, x)``: items of one solar day are mosaicked into one time step
(first valid pixel wins, in order of increasing cloud cover), or all dates are reduced to a
composite (per-pixel median, or the least-cloudy valid observation). Each dask block reads what
it needs with :func:`geoalign.reading.read_file_bands` and is independent of all other blocks.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from odc.geo.geobox import GeoBox
from odc.geo.xr import xr_coords
from rasterio.enums import Resampling

from geoalign.errors import InvalidInputError, NoDataFoundError
from geoalign.mosaic import mosaic, mosaic_filled
from geoalign.reading import BandSourceLike, same_type, storage_nodata
from geoalign.sensors.model import Encoding, MaskSpec

TimeMode = Literal["series", "median", "least_cloudy"]

#: Default block edge in pixels per resolution class. Measured for window sampling (DESIGN.md):
#: all bands in one chunk, 256 px at 10 m and coarser, 512 px at finer than 5 m.
COARSE_CHUNK = 256
FINE_CHUNK = 512


#: Storage chunks per edge of one read block (the dask chunk); must divide cube_store.TILE_CHUNKS.
READ_CHUNKS = 4


def default_chunk(resolution: float) -> int:
    """Block edge in pixels for a modality at ``resolution`` metres."""
    return FINE_CHUNK if resolution < 5 else COARSE_CHUNK


@dataclass(frozen=True)
class ItemSources:
    """The band and mask sources of one STAC item, as resolved by its sensor."""

    item_id: str
    datetime: dt.datetime
    cloud_cover: float
    bands: tuple[BandSourceLike, ...]
    mask: BandSourceLike | None = None


@dataclass(frozen=True, eq=False)
class ModalityPlan:
    """Everything needed to read one modality, resolved from STAC items and a sensor.

    Attributes:
        name: Group name of the modality in the cube (e.g. ``"s2"``).
        sensor: Sensor name (see :mod:`geoalign.sensors`).
        band_names: Canonical band names, in storage order.
        geobox: The modality's grid (the cube grid at this modality's resolution).
        groups: One tuple of items per output time step (solar day), in time order.
        encoding: Storage encoding of the data variable.
        time_mode: ``"series"`` keeps every date; ``"median"`` and ``"least_cloudy"`` composite.
        period: For composites, a pandas period (``"M"`` monthly, ``"Q"`` quarterly, ``"Y"``
            yearly, ``"W"`` weekly...) giving one composite per period, labelled by the period
            start; None composites all dates.
        resampling: GDAL resampling used when a source grid differs from the modality grid.
        mask: The sensor's mask band and invalid classes, when clouds are masked.
        chunk: Block edge in pixels.
        band_attrs: Per-band metadata (wavelength in nm, units...), stored as coordinates.
        attrs: Attributes of the modality group (sensor notes, provenance).

    Plans compare and hash by identity: dask hashes task arguments while optimizing a graph,
    and a field-wise hash (every item, the GeoBox, its CRS as WKT) cost 0.2 s per benchmark
    build.
    """

    name: str
    sensor: str
    band_names: tuple[str, ...]
    geobox: GeoBox
    groups: tuple[tuple[ItemSources, ...], ...]
    encoding: Encoding
    time_mode: TimeMode = "series"
    period: str | None = None
    resampling: Resampling = Resampling.nearest
    mask: MaskSpec | None = None
    chunk: int = COARSE_CHUNK
    band_attrs: dict[str, list[Any]] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def times(self) -> list[dt.datetime]:
        """Timestamp of each solar-day group (its earliest item)."""
        return [min(item.datetime for item in group) for group in self.groups]

    def steps(self) -> list[tuple[pd.Timestamp, tuple[int, ...]]]:
        """Output time steps: their timestamp and the indexes of the groups they combine.

        A series has one step per group; a composite one step per ``period`` (labelled by the
        period start) or a single step over all groups (labelled by the first date).
        """
        stamps = [pd.Timestamp(t).tz_convert(None) for t in self.times]
        if self.time_mode == "series":
            return [(stamp, (i,)) for i, stamp in enumerate(stamps)]
        if self.period is None:
            return [(stamps[0], tuple(range(len(stamps))))]
        try:
            labels = pd.DatetimeIndex(stamps).to_period(self.period).start_time
        except ValueError as error:
            raise InvalidInputError(
                f"period={self.period!r} of modality {self.name!r} is not a pandas frequency: "
                "use e.g. 'MS' (monthly), 'QS' (quarterly) or 'YS' (yearly)"
            ) from error
        by_label: dict[pd.Timestamp, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            by_label[label].append(index)
        return [(label, tuple(by_label[label])) for label in sorted(by_label)]


def solar_day(when: dt.datetime, longitude: float) -> dt.date:
    """The local solar date of an acquisition at ``longitude`` (degrees east), from UTC time."""
    utc = when.astimezone(dt.UTC) if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return (utc + dt.timedelta(hours=longitude / 15.0)).date()


def group_by_solar_day(
    items: Sequence[ItemSources], longitude: float
) -> tuple[tuple[ItemSources, ...], ...]:
    """Group items acquired on the same local solar day; least cloudy first inside a group."""
    days: dict[dt.date, list[ItemSources]] = defaultdict(list)
    for item in items:
        days[solar_day(item.datetime, longitude)].append(item)
    return tuple(
        tuple(sorted(days[day], key=lambda item: (item.cloud_cover, item.item_id)))
        for day in sorted(days)
    )


def _block_geobox(plan: ModalityPlan, block_info: dict[Any, Any] | None) -> GeoBox:
    """The GeoBox of the dask block described by ``block_info``."""
    if block_info is None:
        raise InvalidInputError("internal: dask did not pass block_info to a cube block")
    location = block_info[None]["array-location"]
    (y0, y1), (x0, x1) = location[-2], location[-1]
    return plan.geobox[y0:y1, x0:x1]


def _median(
    groups: Sequence[Sequence[ItemSources]],
    geobox: GeoBox,
    plan: ModalityPlan,
) -> np.ndarray:
    """Per-pixel, per-band median over the valid observations of ``groups``, storage dtype."""
    shape = (len(plan.band_names), geobox.shape.y, geobox.shape.x)
    stack = np.full((len(groups), *shape), np.nan, dtype=np.float64)
    for t, group in enumerate(groups):
        values, valid = mosaic_filled(group, geobox, plan)
        stack[t][valid] = values[valid]
    # Pixels with no valid date would make nanmedian warn; give them a dummy value and drop them
    # after (warnings.catch_warnings is not thread-safe, and blocks run in threads).
    found = ~np.isnan(stack).all(axis=0)
    stack[:, ~found] = 0.0
    median = np.nanmedian(stack, axis=0)
    out = np.full(shape, storage_nodata(plan.encoding), plan.encoding.dtype)
    dtype = np.dtype(plan.encoding.dtype)
    rounded = np.rint(median) if dtype.kind in "iu" else median
    out[found] = rounded[found].astype(dtype)
    return out


def load_block(
    plan: ModalityPlan,
    steps: Sequence[tuple[int, ...]],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Dask block of the ``(time, band, y, x)`` data: one output time step per block.

    A series step mosaics one solar day; a composite step takes the per-pixel median of its days,
    or the least-cloudy valid observation (items in order of increasing cloud cover).
    """
    if block_info is None:
        raise InvalidInputError("internal: dask did not pass block_info to a cube block")
    t0, _ = block_info[None]["array-location"][0]
    geobox = _block_geobox(plan, block_info)
    groups = [plan.groups[i] for i in steps[t0]]
    if plan.time_mode == "median" and len(groups) > 1:
        return _median(groups, geobox, plan)[np.newaxis]
    items = [item for group in groups for item in group]
    if plan.time_mode == "least_cloudy":
        items.sort(key=lambda item: (item.cloud_cover, item.item_id))
    data = mosaic(items, geobox, plan)
    return data[np.newaxis]


def lazy_modality(plan: ModalityPlan) -> xr.Dataset:
    """Return the modality as a lazy Dataset with ``data (time, band, y, x)`` and ``valid``.

    ``valid`` is True where any band has data and the mask band (if any) says clear sky; cloudy,
    shadowed and no-data pixels hold the no-data value in ``data``.
    """
    if not plan.groups:
        raise NoDataFoundError(f"modality {plan.name!r} has no items to load")
    ny, nx = plan.geobox.shape.y, plan.geobox.shape.x
    nb = len(plan.band_names)
    # Read (and warp) READ_CHUNKS x READ_CHUNKS storage chunks at a time: fewer GDAL calls, COG
    # tiles decoded once, no per-block warper set-up; Zarr still gets plan.chunk chunks.
    ychunks = _chunks(ny, plan.chunk * READ_CHUNKS)
    xchunks = _chunks(nx, plan.chunk * READ_CHUNKS)
    dtype = np.dtype(plan.encoding.dtype)
    steps = plan.steps()
    # The plan is bound into the block function rather than passed as an argument, so that dask
    # does not walk its items (dataclasses) looking for dask collections whenever it builds or
    # optimizes a graph.
    data = da.map_blocks(
        functools.partial(load_block, plan, [indexes for _, indexes in steps]),
        dtype=dtype,
        chunks=((1,) * len(steps), (nb,), ychunks, xchunks),
        name=f"geoalign-{plan.name}-{plan.time_mode}-{_token(plan)}",
    )
    # Cloudy, shadowed and no-data pixels hold the no-data value, so validity is derived from the
    # data in the same graph: no second read. A pixel is valid where any band has data (bands a
    # sensor flags as bad, such as EnMAP's water-vapour bands, are no-data everywhere).
    if np.dtype(plan.encoding.dtype).kind == "f":
        valid = (~da.isnan(data)).any(axis=1)
    else:
        valid = (data != same_type(storage_nodata(plan.encoding), dtype)).any(axis=1)
    coords = xr_coords(plan.geobox, crs_coord_name="spatial_ref")
    time_index = pd.DatetimeIndex([stamp for stamp, _ in steps])
    # Object (variable-length) strings: Zarr v3 has a stable encoding for them, not for fixed <U.
    band_coords = {"band": np.array(plan.band_names, dtype=object)}
    for key, values in plan.band_attrs.items():
        array = np.array(values, dtype=object if values and isinstance(values[0], str) else None)
        band_coords[key] = ("band", array)  # type: ignore[assignment]
    ds = xr.Dataset(
        {
            "data": (("time", "band", "y", "x"), data),
            "valid": (("time", "y", "x"), valid),
        },
        coords={"time": time_index, **band_coords, **coords},
        attrs=dict(plan.attrs),
    )
    # CF encoding: the store keeps the raw integers; xarray decodes them to physical values on
    # open (open_cube), and samplers can read them raw (mask_and_scale=False) for speed.
    if plan.encoding.scale != 1.0 or plan.encoding.offset != 0.0:
        ds["data"].attrs.update(scale_factor=plan.encoding.scale, add_offset=plan.encoding.offset)
    ds["data"].encoding["_FillValue"] = storage_nodata(plan.encoding)
    return ds


def _chunks(size: int, chunk: int) -> tuple[int, ...]:
    full, rest = divmod(size, chunk)
    return (chunk,) * full + ((rest,) if rest else ())


def _token(plan: ModalityPlan) -> str:
    from dask.base import tokenize

    return tokenize(
        plan.name,
        plan.band_names,
        str(plan.geobox),
        plan.time_mode,
        plan.period,
        [[(i.item_id, [s.href for s in i.bands]) for i in g] for g in plan.groups],
    )
