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
from typing import Any

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from torchgeo.datasets import GeoDataset, IntersectionDataset

from geoalign.datasets.chunks import ChunkedArray
from geoalign.datasets.cube_meta import GroupMeta, read_group_meta
from geoalign.datasets.decoding import Decoder
from geoalign.datasets.native_grid import NativeGrid
from geoalign.datasets.pieces import paired, read_series
from geoalign.datasets.query import (
    NS_PER_S,
    ReadPlan,
    Role,
    Spec,
    parse_query,
    sample_rng,
    snap_bounds,
    to_ns,
)
from geoalign.datasets.time_series import TimeMode, TimeSelection, as_time_selection
from geoalign.errors import InvalidInputError


class CubeDataset(NativeGrid, GeoDataset):
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
        self._same_grid = self._valid is not None and paired(self._data, self._valid)
        self._band_index = self._select_bands(bands)
        n_bands = len(meta.bands) if self._band_index is None else len(self._band_index)
        self.bands = tuple(meta.bands) if self._band_index is None else tuple(bands or ())
        self._n_bands = n_bands
        self._outside = meta.nodata if meta.nodata is not None else self._data.fill_value
        self._decoder = Decoder(
            meta, self.bands, normalize=normalize and not self.is_label, fill_value=fill_value
        )
        self._dates_s = meta.times.astype("datetime64[ns]").astype(np.int64) // NS_PER_S
        self._times_ns = meta.times.astype("datetime64[ns]").astype(np.int64)
        self.squeeze_time = (not self.is_label) and self.time.mode == "all" and meta.times.size == 1
        self._time_cache: dict[tuple[Any, Any], np.ndarray] = {}
        self._plan_cache: dict[int, tuple[np.ndarray, list[int], np.ndarray]] = {}
        self._no_dates = np.zeros(0, dtype=np.int64)
        self._keys = (
            self.name,
            f"{self.name}_valid",
            f"{self.name}_dates",
            f"{self.name}_time_valid",
        )
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

    @property
    def valid_array(self) -> ChunkedArray:
        """Reader of the modality's ``valid`` array ``(time, y, x)``."""
        if self._valid is None:
            raise InvalidInputError(
                f"{self.meta.group!r} is a label raster: it has classes, no valid array"
            )
        return self._valid

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
            lo = np.searchsorted(self._times_ns, to_ns(start, np.iinfo(np.int64).min), "left")
            hi = np.searchsorted(self._times_ns, to_ns(stop, np.iinfo(np.int64).max), "right")
            found = np.arange(lo, hi, dtype=np.int64)
            if len(self._time_cache) > 64:
                self._time_cache.clear()
            self._time_cache[key] = found
        return found

    def _dates_of(self, times: np.ndarray) -> tuple[list[int], np.ndarray]:
        return times.tolist(), self._dates_s[times]

    def all_dates(self, start: Any, stop: Any) -> tuple[list[int], np.ndarray]:
        """Time indexes and dates (seconds) of every date in ``[start, stop]`` (cached)."""
        if self.is_label:
            return [], self._no_dates
        times = self.time_indexes(start, stop)
        cached = self._plan_cache.get(id(times))
        if cached is None or cached[0] is not times:
            cached = (times, *self._dates_of(times))
            self._plan_cache = {id(times): cached}
        return cached[1], cached[2]

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
        if self.is_label or self.time.mode == "all":
            return ReadPlan(rows, cols, *self.all_dates(start, stop))
        times = self.time_indexes(start, stop)
        if self.time.mode == "random" and times.size > (self.time.length or 0):
            rng = rng if rng is not None else sample_rng(self.seed, self.epoch, bounds, 1)
        return ReadPlan(rows, cols, *self._dates_of(self.time.choose(times, rng)))

    def spec(self, plan: ReadPlan) -> Spec:
        """Shape and dtype of each sample entry for ``plan``."""
        h, w = plan.rows[1] - plan.rows[0], plan.cols[1] - plan.cols[0]
        if self.is_label:
            return {self.name: ((h, w), np.dtype(np.int64))}
        dtype = np.dtype(np.float32) if self.decode else self._data.dtype.newbyteorder("=")
        n_time = self.time.length if self.time.pads and self.time.length else len(plan.times)
        lead: tuple[int, ...] = () if self.squeeze_time else (n_time,)
        spec: Spec = {
            self.name: ((*lead, self._n_bands, h, w), dtype),
            f"{self.name}_valid": ((*lead, h, w), np.dtype(bool)),
            f"{self.name}_dates": (lead, np.dtype(np.int64)),
        }
        if not self.squeeze_time:
            spec[f"{self.name}_time_valid"] = (lead, np.dtype(bool))
        return spec

    def fill(
        self,
        plan: ReadPlan,
        out: dict[str, np.ndarray],
        index: int | None = None,
        *,
        with_dates: bool = True,
    ) -> None:
        """Read the sample of ``plan`` into the arrays ``out`` (shaped as :meth:`spec` says).

        Args:
            plan: What to read (:meth:`plan`).
            out: Key -> destination array; with ``index``, batch arrays ``[B, ...]``.
            index: Position of this sample in the batch arrays (None: ``out`` holds one sample).
            with_dates: Also write the dates and time mask (False when the caller writes them
                once for a whole batch of samples sharing their dates: :meth:`fill_dates`).
        """
        rows, cols = plan.rows, plan.cols
        keys = self._keys
        if self.is_label:
            target = out[keys[0]] if index is None else out[keys[0]][index]
            raw = np.empty(target.shape, dtype=self._data.dtype)
            self._data.read_into(raw, (), rows, cols, self._outside)
            target[...] = raw
            return
        times = plan.times
        count = len(times)
        # views with a leading time axis (a dropped one is a slice of length 1)
        if index is None:
            image, valid, dates = out[keys[0]], out[keys[1]], out[keys[2]]
            if self.squeeze_time:
                image, valid, dates = image[np.newaxis], valid[np.newaxis], dates[np.newaxis]
        elif self.squeeze_time:
            image, valid = out[keys[0]][index : index + 1], out[keys[1]][index : index + 1]
            dates = out[keys[2]][index : index + 1]
        else:
            image, valid, dates = out[keys[0]][index], out[keys[1]][index], out[keys[2]][index]
        if with_dates and not self.squeeze_time:
            time_valid = out[keys[3]] if index is None else out[keys[3]][index]
            time_valid[:count] = True
            time_valid[count:] = False
        padded = count < image.shape[0]
        mask = valid[:count] if padded else valid
        target = image[:count] if padded else image
        raw = (
            np.empty((count, self._n_bands, *image.shape[-2:]), self._data.dtype)
            if self.decode
            else target
        )
        read_series(
            self._data,
            self.valid_array,
            raw,
            mask,
            times,
            rows,
            cols,
            self._outside,
            self._band_index,
            same_grid=self._same_grid,
        )
        if self.decode:
            self._decoder(raw, target)
        if with_dates:
            dates[:count] = plan.dates
        if padded:  # a fixed-length series with fewer dates
            image[count:] = self.fill_value if self.decode else self._outside
            valid[count:] = False
            if with_dates:
                dates[count:] = 0

    def fill_dates(self, plan: ReadPlan, batch: dict[str, np.ndarray]) -> None:
        """Write the dates (and time mask) of ``plan`` into every sample of batch arrays."""
        if self.is_label:
            return
        keys = self._keys
        count = len(plan.times)
        dates = batch[keys[2]]
        if self.squeeze_time:
            dates[...] = plan.dates[0]
            return
        dates[:, :count] = plan.dates
        dates[:, count:] = 0
        batch[keys[3]][:, :count] = True
        batch[keys[3]][:, count:] = False

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

    def __and__(self, other: GeoDataset) -> IntersectionDataset:
        """Intersect with another cube dataset, keeping each at its own resolution."""
        from geoalign.datasets.intersection import CubeIntersectionDataset

        return CubeIntersectionDataset(self, other)

    def __str__(self) -> str:
        return (
            f"CubeDataset {self.meta.group!r} of {self.meta.store}\n"
            f"    bands: {list(self.bands)}\n    dates: {self.meta.times.size}\n"
            f"    res: {self._res[0]:g}\n    bounds: {self.meta.bounds}"
        )
