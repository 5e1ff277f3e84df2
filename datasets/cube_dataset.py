"""A torchgeo ``GeoDataset`` over one modality (or label raster) of an aligned cube.

    s2 = CubeDataset("cube.zarr", "s2")                      # 10 m, every date
    ortho = CubeDataset("cube.zarr", "ortho")                # 1 m
    water = CubeDataset("cube.zarr", "labels/water")         # a label raster
    dataset = s2 & ortho & water                             # each at its own resolution

A query (torchgeo's ``[xmin:xmax, ymin:ymax, tmin:tmax]``) is a window in the cube CRS; the
window is snapped to the modality's pixel edges and read as a plain slice of the stored grid
(:mod:`geoalign.datasets.chunks`), never reprojected or resampled. Sample entries of a modality
``m`` (``T`` dates in the query's time range, ``C`` bands, ``H x W`` pixels at its resolution):

- ``m``: ``[T, C, H, W]`` float32 physical values (``decode=True``; no-data pixels hold
  ``fill_value``; with ``normalize=True``, ``(value - mean) / std`` per band) or the stored
  integers (``decode=False``). A modality with a single date in the cube and
  ``time="all"`` drops the time axis: ``[C, H, W]``.
- ``m_valid``: ``[T, H, W]`` bool, True where the pixel has data (clear sky for optical).
- ``m_dates``: ``[T]`` int64 seconds since 1970-01-01 UTC (0 for padding).
- ``m_time_valid``: ``[T]`` bool, False for padded entries (absent when the time axis is dropped).

A label raster ``labels/n`` gives ``label_n``: ``[H, W]`` int64 class codes, -1 where unlabelled.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from pyproj import CRS
from torchgeo.datasets import GeoDataset

from geoalign.datasets.chunks import ChunkedArray
from geoalign.datasets.cube_meta import GroupMeta, read_group_meta
from geoalign.datasets.stats import stats_from_attrs
from geoalign.datasets.time_series import TimeMode, TimeSelection, as_time_selection
from geoalign.errors import CRSError, InvalidInputError

Role = Literal["image", "valid", "label", "vector"]
Spec = dict[str, tuple[tuple[int, ...], np.dtype[Any]]]
_NS_PER_S = 1_000_000_000


class ReadPlan(NamedTuple):
    """What to read for one sample: a pixel window and the time steps, at native resolution."""

    rows: tuple[int, int]
    cols: tuple[int, int]
    times: np.ndarray


def sample_rng(seed: int, epoch: int, bounds: Sequence[float], salt: int = 0) -> np.random.Generator:
    """A generator that depends only on the seed, epoch and window: the same in every worker."""
    key = hash(tuple(round(v * 1000) for v in bounds)) & 0xFFFFFFFFFFFF
    return np.random.default_rng([seed, epoch, key, salt])


def parse_query(query: Any, fallback: tuple[float, float, float, float]) -> tuple[Any, ...]:
    """torchgeo's ``GeoSlice`` -> ``(xmin, ymin, xmax, ymax, tmin, tmax)``; gaps from ``fallback``."""
    parts = (query,) if isinstance(query, slice) else tuple(query)
    xs = parts[0] if len(parts) > 0 else slice(None)
    ys = parts[1] if len(parts) > 1 else slice(None)
    ts = parts[2] if len(parts) > 2 else slice(None)
    return (
        fallback[0] if xs.start is None else float(xs.start),
        fallback[1] if ys.start is None else float(ys.start),
        fallback[2] if xs.stop is None else float(xs.stop),
        fallback[3] if ys.stop is None else float(ys.stop),
        ts.start,
        ts.stop,
    )


def _ns(value: Any, default: int) -> int:
    return default if value is None else int(pd.Timestamp(value).value)


class CubeDataset(GeoDataset):  # type: ignore[misc]
    """One group of a finished cube as a torchgeo ``GeoDataset``, read at its native resolution.

    Args:
        path: A finished cube (local Zarr directory store).
        group: A modality (``"s2"``) or label raster (``"labels/water"``).
        bands: Bands to keep, in this order; None keeps all.
        time: ``"all"`` dates in the query's time range, or a :class:`TimeSelection`
            (``"random"`` subset or ``"fixed"`` length with padding).
        decode: True: float32 physical values (``raw * scale_factor + add_offset``); False:
            the stored integers (fastest; decode later, e.g. on the GPU).
        normalize: Standardise each band with the statistics stored by
            :func:`geoalign.datasets.compute_band_stats` (implies ``decode``).
        fill_value: Value of no-data pixels and padded dates in decoded samples.
        seed: Seed of the per-sample randomness (random dates); with :meth:`set_epoch`, the
            same query gets the same dates in every worker and run.
        transforms: A callable applied to each sample dict (torchgeo convention).

    Raises:
        InvalidInputError: Unknown group or band, a point table, or missing statistics.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        group: str,
        *,
        bands: Sequence[str] | None = None,
        time: TimeSelection | TimeMode = "all",
        decode: bool = True,
        normalize: bool = False,
        fill_value: float = 0.0,
        seed: int = 0,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        meta = read_group_meta(path, group)
        if meta.kind == "points":
            raise InvalidInputError(
                f"{group!r} is a point table, not a raster: draw windows centred on its points "
                f"with PointWindowSampler(dataset, {group!r}, size) and pass points={group!r} "
                "to the intersection (open_cube_dataset(..., points=...)) to attach their labels"
            )
        self.meta: GroupMeta = meta
        self.paths = str(meta.store)
        self.transforms = transforms
        self.seed = seed
        self.epoch = 0
        self.decode = decode or normalize
        self.normalize = normalize
        self.fill_value = fill_value
        self.time = as_time_selection(time)
        self._res = (meta.resolution, meta.resolution)
        self._crs = meta.crs
        self.is_label = meta.kind == "labels"
        self.name = f"label_{meta.name}" if self.is_label else meta.name
        array = "classes" if self.is_label else "data"
        self._data = ChunkedArray(meta.store, f"{meta.group}/{array}")
        self._valid = None if self.is_label else ChunkedArray(meta.store, f"{meta.group}/valid")
        self._band_index = self._select_bands(bands)
        n_bands = len(meta.bands) if self._band_index is None else len(self._band_index)
        self.bands = tuple(meta.bands) if self._band_index is None else tuple(bands or ())
        self._n_bands = n_bands
        self._outside = meta.nodata if meta.nodata is not None else self._data.fill_value
        self._gain, self._bias = self._decoding()
        self._dates_s = meta.times.astype("datetime64[ns]").astype(np.int64) // _NS_PER_S
        self._times_ns = meta.times.astype("datetime64[ns]").astype(np.int64)
        self.squeeze_time = (not self.is_label) and self.time.mode == "all" and meta.times.size == 1
        self._time_cache: dict[tuple[Any, Any], np.ndarray] = {}
        self.index = self._make_index()

    # ---------------------------------------------------------------------------- set-up

    def _select_bands(self, bands: Sequence[str] | None) -> np.ndarray | None:
        if bands is None or self.is_label:
            return None
        unknown = [b for b in bands if b not in self.meta.bands]
        if unknown or not bands:
            raise InvalidInputError(
                f"bands {list(bands)} of {self.meta.group!r}: {unknown or 'none given'}; the "
                f"modality has {list(self.meta.bands)}"
            )
        index = np.array([self.meta.bands.index(b) for b in bands], dtype=np.int64)
        return None if index.tolist() == list(range(len(self.meta.bands))) else index

    def _decoding(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-band gain and bias, shape ``(C, 1, 1)``: output = raw * gain + bias."""
        gain = np.full((self._n_bands, 1, 1), self.meta.scale, dtype=np.float32)
        bias = np.full((self._n_bands, 1, 1), self.meta.offset, dtype=np.float32)
        if not self.normalize:
            return gain, bias
        stats = stats_from_attrs(self.meta.attrs)
        if stats is None:
            raise InvalidInputError(
                f"normalize=True needs band statistics of {self.meta.group!r}: compute and store "
                f"them once with geoalign.datasets.compute_band_stats({str(self.meta.store)!r}, "
                f"{self.meta.group!r})"
            )
        for i, band in enumerate(self.bands):
            std = stats[band].std or 1.0
            gain[i] = self.meta.scale / std
            bias[i] = (self.meta.offset - stats[band].mean) / std
        return gain, bias

    def _make_index(self) -> GeoDataFrame:
        if self.is_label or self.meta.times.size == 0:
            start, stop = pd.Timestamp.min, pd.Timestamp.max
        else:
            start, stop = pd.Timestamp(self.meta.times.min()), pd.Timestamp(self.meta.times.max())
        interval = pd.IntervalIndex.from_tuples([(start, stop)], closed="both", name="datetime")
        return GeoDataFrame(
            {"group": [self.meta.group]},
            index=interval,
            geometry=[shapely.box(*self.meta.bounds)],
            crs=self.meta.crs,
        )

    # ------------------------------------------------------------ torchgeo's CRS/resolution

    @property
    def crs(self) -> CRS:
        """The cube CRS; a cube is never reprojected at sampling time."""
        return self._crs

    @crs.setter
    def crs(self, new_crs: CRS) -> None:
        if CRS.from_user_input(new_crs) != self._crs:
            raise CRSError(
                f"{self.meta.group!r} is stored in {self._crs.to_string()} and geoalign does not "
                f"reproject at sampling time (asked for {CRS.from_user_input(new_crs).to_string()})"
                ": build the cube in the CRS you need, and combine cube datasets with `&`"
            )

    @property
    def res(self) -> tuple[float, float]:
        """Native pixel size ``(x, y)`` in CRS units; samples are never resampled."""
        return self._res

    @res.setter
    def res(self, new_res: float | tuple[float, float]) -> None:
        pair = (new_res, new_res) if isinstance(new_res, int | float) else tuple(new_res)
        if tuple(float(v) for v in pair) != self._res:
            raise InvalidInputError(
                f"{self.meta.group!r} is read at its native {self._res[0]:g} {self._crs_units()}"
                f" pixels, not {pair[0]:g}: combine cube datasets with `&` (each keeps its own "
                "resolution) instead of torchgeo's IntersectionDataset, which forces one"
            )

    @property
    def valid_array(self) -> ChunkedArray:
        """Reader of the modality's ``valid`` array ``(time, y, x)``."""
        if self._valid is None:
            raise InvalidInputError(
                f"{self.meta.group!r} is a label raster: it has classes, no valid array"
            )
        return self._valid

    def _crs_units(self) -> str:
        axis = self._crs.axis_info
        return axis[0].unit_name if axis else "CRS-unit"

    # -------------------------------------------------------------------------- reading

    def roles(self) -> dict[str, Role]:
        """Sample keys of this dataset and how augmentations treat them."""
        if self.is_label:
            return {self.name: "label"}
        roles: dict[str, Role] = {
            self.name: "image",
            f"{self.name}_valid": "valid",
            f"{self.name}_dates": "vector",
        }
        if not self.squeeze_time:
            roles[f"{self.name}_time_valid"] = "vector"
        return roles

    def time_indexes(self, start: Any, stop: Any) -> np.ndarray:
        """Indexes of the cube's dates inside ``[start, stop]`` (None: unbounded)."""
        key = (start, stop)
        found = self._time_cache.get(key)
        if found is None:
            lo = np.searchsorted(self._times_ns, _ns(start, np.iinfo(np.int64).min), "left")
            hi = np.searchsorted(self._times_ns, _ns(stop, np.iinfo(np.int64).max), "right")
            found = np.arange(lo, hi, dtype=np.int64)
            if len(self._time_cache) > 64:
                self._time_cache.clear()
            self._time_cache[key] = found
        return found

    def plan(
        self, bounds: Sequence[float], start: Any = None, stop: Any = None, rng: Any = None
    ) -> ReadPlan:
        """The pixel window and dates of a query whose ``bounds`` lie on this grid's edges.

        Args:
            bounds: ``(xmin, ymin, xmax, ymax)`` in CRS units, on pixel edges.
            start: First instant of the time range (None: unbounded).
            stop: Last instant of the time range (None: unbounded).
            rng: Generator for random dates; None derives one from the window and seed.
        """
        res, left, top = self._res[0], self.meta.left, self.meta.top
        rows = (round((top - bounds[3]) / res), round((top - bounds[1]) / res))
        cols = (round((bounds[0] - left) / res), round((bounds[2] - left) / res))
        if rows[1] <= rows[0] or cols[1] <= cols[0]:
            raise InvalidInputError(
                f"window {tuple(bounds)} is smaller than one {res:g} pixel of {self.meta.group!r}"
            )
        if self.is_label:
            return ReadPlan(rows, cols, np.zeros(0, dtype=np.int64))
        times = self.time_indexes(start, stop)
        if self.time.mode == "random" and times.size > (self.time.length or 0):
            rng = rng if rng is not None else sample_rng(self.seed, self.epoch, bounds, 1)
        return ReadPlan(rows, cols, self.time.choose(times, rng))

    def spec(self, plan: ReadPlan) -> Spec:
        """Shape and dtype of each sample entry for ``plan``."""
        h, w = plan.rows[1] - plan.rows[0], plan.cols[1] - plan.cols[0]
        if self.is_label:
            return {self.name: ((h, w), np.dtype(np.int64))}
        dtype = np.dtype(np.float32) if self.decode else self._data.dtype.newbyteorder("=")
        n_time = self.time.length if self.time.pads and self.time.length else plan.times.size
        lead: tuple[int, ...] = () if self.squeeze_time else (n_time,)
        spec: Spec = {
            self.name: ((*lead, self._n_bands, h, w), dtype),
            f"{self.name}_valid": ((*lead, h, w), np.dtype(bool)),
            f"{self.name}_dates": (lead, np.dtype(np.int64)),
        }
        if not self.squeeze_time:
            spec[f"{self.name}_time_valid"] = (lead, np.dtype(bool))
        return spec

    def fill(self, plan: ReadPlan, out: dict[str, np.ndarray]) -> None:
        """Read the sample of ``plan`` into the arrays ``out`` (shaped as :meth:`spec` says)."""
        rows, cols = plan.rows, plan.cols
        if self.is_label:
            target = out[self.name]
            raw = np.empty(target.shape, dtype=self._data.dtype)
            self._data.read_into(raw, (), rows, cols, self._outside)
            target[...] = raw
            return
        image = out[self.name]
        valid = out[f"{self.name}_valid"]
        dates = out[f"{self.name}_dates"]
        if self.squeeze_time:
            image, valid, dates = image[np.newaxis], valid[np.newaxis], dates[np.newaxis]
        else:
            out[f"{self.name}_time_valid"][...] = np.arange(image.shape[0]) < plan.times.size
        valid_array = self.valid_array
        raw = (
            np.empty((self._n_bands, rows[1] - rows[0], cols[1] - cols[0]), self._data.dtype)
            if self.decode
            else None
        )
        for j, t in enumerate(plan.times.tolist()):
            target = raw if raw is not None else image[j]
            self._data.read_into(target, (t,), rows, cols, self._outside, self._band_index)
            if raw is not None:
                self._decode(raw, image[j])
            valid_array.read_into(valid[j], (t,), rows, cols, False)
        count = plan.times.size
        dates[:count] = self._dates_s[plan.times]
        if count < image.shape[0]:  # padding of a fixed-length series
            image[count:] = self.fill_value if self.decode else self._outside
            valid[count:] = False
            dates[count:] = 0

    def _decode(self, raw: np.ndarray, target: np.ndarray) -> None:
        np.multiply(raw, self._gain, out=target, casting="unsafe")
        target += self._bias
        nodata = self.meta.nodata
        if nodata is None:
            return
        missing = np.isnan(raw) if np.isnan(nodata) else raw == nodata
        target[missing] = self.fill_value

    def read(self, bounds: Sequence[float], start: Any = None, stop: Any = None) -> dict[str, Any]:
        """One sample's entries as numpy arrays for a window on this grid's pixel edges."""
        plan = self.plan(bounds, start, stop)
        out = {key: np.empty(shape, dtype) for key, (shape, dtype) in self.spec(plan).items()}
        self.fill(plan, out)
        return out

    def snap(self, bounds: Sequence[float]) -> tuple[float, float, float, float]:
        """``bounds`` moved to the nearest pixel edges of this grid (at least one pixel)."""
        return snap_bounds(bounds, self.meta.left, self.meta.top, self._res[0])

    def set_epoch(self, epoch: int) -> None:
        """Change the per-sample randomness (random dates) for a new epoch."""
        self.epoch = epoch

    def __getitem__(self, query: Any) -> dict[str, Any]:
        """Sample of a torchgeo query ``[xmin:xmax, ymin:ymax, tmin:tmax]`` (see module doc)."""
        xmin, ymin, xmax, ymax, start, stop = parse_query(query, self.meta.bounds)
        bounds = self.snap((xmin, ymin, xmax, ymax))
        sample: dict[str, Any] = {
            key: torch.from_numpy(value) for key, value in self.read(bounds, start, stop).items()
        }
        sample["bounds"] = torch.tensor(bounds, dtype=torch.float64)
        sample["crs"] = self._crs
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def __and__(self, other: GeoDataset) -> GeoDataset:
        """Intersect with another cube dataset, keeping each at its own resolution."""
        from geoalign.datasets.intersection import CubeIntersectionDataset

        return CubeIntersectionDataset(self, other)

    def __str__(self) -> str:
        return (
            f"CubeDataset {self.meta.group!r} of {self.meta.store}\n"
            f"    bands: {list(self.bands)}\n    dates: {self.meta.times.size}\n"
            f"    res: {self._res[0]:g}\n    bounds: {self.meta.bounds}"
        )


def snap_bounds(
    bounds: Sequence[float], left: float, top: float, step: float
) -> tuple[float, float, float, float]:
    """Move a window's edges to the nearest lines of a grid (origin ``left, top``, ``step``)."""
    x0 = left + round((bounds[0] - left) / step) * step
    y1 = top - round((top - bounds[3]) / step) * step
    width = max(1, round((bounds[2] - bounds[0]) / step)) * step
    height = max(1, round((bounds[3] - bounds[1]) / step)) * step
    return (x0, y1 - height, x0 + width, y1)
