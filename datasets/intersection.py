"""Several groups of one cube sampled together, each at its own resolution (``s2 & ortho``).

torchgeo 0.8.1's ``IntersectionDataset`` cannot do this, for three reasons this class removes:

1. It sets the second dataset's CRS and resolution to the first one's, so every modality is
   warped to one grid. Here every group keeps its native resolution; the datasets must share
   the cube CRS (a :class:`CubeDataset` refuses to be reprojected or resampled).
2. With ``spatial_only=True`` its index loses the time intervals (the columns ``datetime_1``
   and ``datetime_2`` stay behind a plain ``RangeIndex``) and every torchgeo sampler then fails.
   Here the index always keeps an ``IntervalIndex``: the hull of the groups' time ranges when
   ``spatial_only`` (the default of ``&``: sensors rarely share acquisition dates), their
   overlap otherwise.
3. Its samples are concatenated per key (``image`` of S2 and S1 stacked on one channel axis).
   Here each group has its own keys (``s2``, ``s2_valid``, ``ortho``, ``label_water``...).

Windows are snapped to the *sampling grid*: the cube origin with a step equal to the least
common multiple of the groups' resolutions (10 m for 10 m + 1 m), so a window is a whole number
of pixels in every group and all groups cover exactly the same ground. ``res`` is that step:
sampler sizes ``units=PIXELS`` count its pixels (64 px = 640 m = 64 S2 and 640 ortho pixels).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import shapely
import torch
from geopandas import GeoDataFrame
from pyproj import CRS
from torchgeo.datasets import GeoDataset, IntersectionDataset

from geoalign.datasets.augment import Augmentation
from geoalign.datasets.collate import SampleBatch, collate_samples
from geoalign.datasets.cube_dataset import CubeDataset
from geoalign.datasets.points import PointTable
from geoalign.datasets.query import ReadPlan, Role, grid_step, parse_query, sample_rng
from geoalign.errors import CRSError, InvalidInputError, NoDataFoundError


class CubeIntersectionDataset(IntersectionDataset):
    """Groups of one cube (modalities, label rasters) sampled over the same windows.

    Made by ``a & b`` on :class:`CubeDataset` objects, or directly with more options.

    Args:
        datasets: Cube datasets (or intersections of them) on one grid family.
        spatial_only: Index time range = hull of the groups' ranges (True; each group keeps the
            dates of its own that fall in a query's range) or their overlap (False).
        augment: Geometric augmentations applied to every sample (see :class:`Augmentation`).
        points: A point group (``"labels/plots"``) whose nearest point to each window centre
            is attached to the sample (see :class:`~geoalign.datasets.points.PointTable`).
        seed: Seed of the per-sample randomness of ``augment``.
        transforms: A callable applied to each merged sample (after ``augment``).

    Attributes:
        datasets: The cube datasets, flattened (``(a & b) & c`` has three), as torchgeo names
            them; ``members`` is the same list.

    Raises:
        InvalidInputError: A non-cube dataset, duplicate groups, or grids that do not align.
        CRSError: Datasets in different CRSs.
        NoDataFoundError: The groups do not overlap in space (or time, if not ``spatial_only``).
    """

    members: list[CubeDataset]
    augment: Augmentation | None
    points: PointTable | None

    def __init__(
        self,
        *datasets: GeoDataset,
        spatial_only: bool = True,
        augment: Augmentation | None = None,
        points: str | PointTable | None = None,
        seed: int = 0,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        flat: list[CubeDataset] = []
        for dataset in datasets:
            if isinstance(dataset, CubeIntersectionDataset):
                flat.extend(dataset.members)
                augment = augment or dataset.augment
                points = points or dataset.points
            elif isinstance(dataset, CubeDataset):
                flat.append(dataset)
            else:
                raise InvalidInputError(
                    f"{type(dataset).__name__} is not a cube dataset: geoalign intersects "
                    "CubeDataset groups of aligned cubes; use torchgeo's IntersectionDataset "
                    "(which warps to one grid) for other GeoDatasets"
                )
        if not flat:
            raise InvalidInputError("an intersection needs at least one CubeDataset")
        self.members = flat
        # torchgeo types `datasets` as list[GeoDataset]; it only reads it, and here it only ever
        # holds cube datasets, typed as such for callers (list is invariant, hence the ignore).
        self.datasets: list[CubeDataset] = flat  # type: ignore[assignment]
        self.spatial_only = spatial_only
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.transforms = transforms
        self.collate_fn = collate_samples  # torchgeo's attribute; samples are merged per key
        self._check(flat)
        store = flat[0].meta.store
        self.points = PointTable(store, points) if isinstance(points, str) else points
        self._crs = flat[0].crs
        self._step = grid_step([d.res[0] for d in flat])
        self._origin = (flat[0].meta.left, flat[0].meta.top)
        self.index = self._make_index()
        xmin, ymin, xmax, ymax = (float(v) for v in self.index.total_bounds)
        self._bounds = (xmin, ymin, xmax, ymax)
        self._roles: dict[str, Role] = {}
        for dataset in flat:
            self._roles.update(dataset.roles())
        self._groups = self._augment_groups()
        # each group's pixels per grid cell and grid offset, for integer window arithmetic
        self._grids = [
            (
                round(self._step / d.res[0]),
                round((d.meta.top - self._origin[1]) / d.res[0]),
                round((self._origin[0] - d.meta.left) / d.res[0]),
            )
            for d in flat
        ]
        self._all_dates = all(d.is_label or d.time.mode == "all" for d in flat)
        self._dates_memo: tuple[Any, Any, list[tuple[list[int], np.ndarray]]] | None = None

    # --------------------------------------------------------------------------- set-up

    @staticmethod
    def _check(flat: list[CubeDataset]) -> None:
        names = [d.name for d in flat]
        if len(set(names)) != len(names):
            raise InvalidInputError(f"groups {names} appear more than once in the intersection")
        for dataset in flat:
            if dataset.transforms is not None:
                raise InvalidInputError(
                    f"{dataset.meta.group!r} has its own transforms: pass transforms= to the "
                    "intersection instead (it sees every modality of the sample at once)"
                )
            if dataset.crs != flat[0].crs:
                raise CRSError(
                    f"{dataset.meta.group!r} is in {dataset.crs.to_string()}, "
                    f"{flat[0].meta.group!r} in {flat[0].crs.to_string()}: intersect groups of "
                    "one cube (one CRS); build both modalities into one cube to combine them"
                )
            left, top = flat[0].meta.left, flat[0].meta.top
            res = dataset.res[0]
            offsets = ((dataset.meta.left - left) / res, (top - dataset.meta.top) / res)
            if any(abs(o - round(o)) > 1e-6 for o in offsets):
                raise InvalidInputError(
                    f"the grid of {dataset.meta.group!r} does not share pixel edges with that of "
                    f"{flat[0].meta.group!r}: intersect groups of one cube (or cubes built with "
                    "the same origin)"
                )

    def _make_index(self) -> GeoDataFrame:
        footprint = self.members[0].index.geometry.iloc[0]
        for dataset in self.members[1:]:
            footprint = footprint.intersection(dataset.index.geometry.iloc[0])
        if footprint.is_empty or footprint.area == 0:
            raise NoDataFoundError(
                f"groups {[d.meta.group for d in self.members]} do not overlap: check the cubes"
            )
        starts = [d.index.index[0].left for d in self.members]
        stops = [d.index.index[0].right for d in self.members]
        start, stop = (min(starts), max(stops)) if self.spatial_only else (max(starts), min(stops))
        if start > stop:
            raise NoDataFoundError(
                f"groups {[d.meta.group for d in self.members]} share no date ({start} > {stop}):"
                " use spatial_only=True (the default of `&`) to sample them together anyway"
            )
        interval = pd.IntervalIndex.from_tuples([(start, stop)], closed="both", name="datetime")
        return GeoDataFrame(
            {"groups": [",".join(d.meta.group for d in self.members)]},
            index=interval,
            geometry=[shapely.box(*footprint.bounds)],
            crs=self._crs,
        )

    def _augment_groups(self) -> list[list[str]]:
        if self.augment is None or self.augment.mode == "shared":
            return [list(self._roles)]
        groups = [list(d.roles()) for d in self.members if not d.is_label]
        labels = [k for d in self.members if d.is_label for k in d.roles()]
        if groups:
            groups[0].extend(labels)  # label layers follow the first modality
        else:
            groups = [labels]
        return groups

    # ------------------------------------------------------------- torchgeo's attributes

    @property
    def crs(self) -> CRS:
        """The cube CRS shared by every group."""
        return self._crs

    @crs.setter
    def crs(self, new_crs: CRS) -> None:
        for dataset in self.members:
            dataset.crs = new_crs  # refuses any change, with the reason

    @property
    def res(self) -> tuple[float, float]:
        """Step of the sampling grid (LCM of the groups' resolutions) in CRS units."""
        return (self._step, self._step)

    @res.setter
    def res(self, new_res: float | tuple[float, float]) -> None:
        pair = (new_res, new_res) if isinstance(new_res, int | float) else tuple(new_res)
        if float(pair[0]) != self._step:
            raise InvalidInputError(
                f"an intersection of cube groups samples on a {self._step:g} grid and reads each "
                "group at its native resolution; it cannot be resampled"
            )

    def roles(self) -> dict[str, Role]:
        """Sample keys of every group and how augmentations treat them."""
        return dict(self._roles)

    def set_epoch(self, epoch: int) -> None:
        """Change the per-sample randomness (augmentations, random dates) for a new epoch."""
        self.epoch = epoch
        for dataset in self.members:
            dataset.set_epoch(epoch)

    def __and__(self, other: GeoDataset) -> IntersectionDataset:
        """Add groups to the intersection (``(a & b) & c`` is one three-way intersection)."""
        return CubeIntersectionDataset(
            self,
            other,
            spatial_only=self.spatial_only,
            augment=self.augment,
            points=self.points,
            seed=self.seed,
            transforms=self.transforms,
        )

    # -------------------------------------------------------------------------- reading

    def _plan(self, query: Any) -> tuple[tuple[float, float, float, float], list[ReadPlan]]:
        """Snap a query to the sampling grid; the pixel window and dates of every group.

        Per-sample hot path: integer arithmetic on grid cells, and dates memoised by the
        identity of the query's time bounds (torchgeo samplers reuse the same objects).
        """
        xmin, ymin, xmax, ymax, start, stop = parse_query(query, self._bounds)
        step = self._step
        left, top = self._origin
        col, row = round((xmin - left) / step), round((top - ymax) / step)
        width = max(1, round((xmax - xmin) / step))
        height = max(1, round((ymax - ymin) / step))
        bounds = (
            left + col * step,
            top - (row + height) * step,
            left + (col + width) * step,
            top - row * step,
        )
        if not self._all_dates:
            return bounds, [d.plan(bounds, start, stop) for d in self.members]
        memo = self._dates_memo
        if memo is None or memo[0] is not start or memo[1] is not stop:
            memo = (start, stop, [d.all_dates(start, stop) for d in self.members])
            self._dates_memo = memo
        plans = []
        for (ratio, row0, col0), (times, dates) in zip(self._grids, memo[2], strict=True):
            plans.append(
                ReadPlan(
                    (row0 + row * ratio, row0 + (row + height) * ratio),
                    (col0 + col * ratio, col0 + (col + width) * ratio),
                    times,
                    dates,
                )
            )
        return bounds, plans

    def _finish(
        self, sample: dict[str, Any], bounds: tuple[float, float, float, float]
    ) -> dict[str, Any]:
        if self.augment is not None:
            rngs = [
                sample_rng(self.seed, self.epoch, bounds, 100 + i) for i in range(len(self._groups))
            ]
            self.augment.apply(sample, self._groups, self._roles, rngs)
        return sample

    def __getitem__(self, query: Any) -> dict[str, Any]:
        """Merged sample of every group for one torchgeo query (see :class:`CubeDataset`)."""
        bounds, plans = self._plan(query)
        sample: dict[str, Any] = {}
        for dataset, plan in zip(self.members, plans, strict=True):
            arrays = {k: np.empty(shape, dt) for k, (shape, dt) in dataset.spec(plan).items()}
            dataset.fill(plan, arrays)
            sample.update({k: torch.from_numpy(v) for k, v in arrays.items()})
        if self.points is not None:
            for key, value in self.points.entries(bounds).items():
                sample[key] = torch.from_numpy(value) if isinstance(value, np.ndarray) else value
        sample["bounds"] = torch.tensor(bounds, dtype=torch.float64)
        sample["crs"] = self._crs
        sample = self._finish(sample, bounds)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def __getitems__(self, queries: Sequence[Any]) -> Sequence[dict[str, Any]]:
        """A whole batch read straight into batch tensors (PyTorch's batched-fetch protocol).

        Returns a :class:`SampleBatch`: :func:`~geoalign.datasets.collate_samples` takes it as
        is; other collate functions see the list of its samples. Falls back to one sample at a
        time when ``transforms`` is set or window shapes differ within the batch.
        """
        if self.transforms is not None or not queries:
            return [self[q] for q in queries]
        planned = [self._plan(q) for q in queries]
        specs = [d.spec(p) for d, p in zip(self.members, planned[0][1], strict=True)]
        shape_of = [
            (p.rows[1] - p.rows[0], p.cols[1] - p.cols[0], len(p.times)) for p in planned[0][1]
        ]
        for _, plans in planned[1:]:
            shapes = [(p.rows[1] - p.rows[0], p.cols[1] - p.cols[0], len(p.times)) for p in plans]
            if shapes != shape_of:
                return [self[q] for q in queries]
        size = len(queries)
        batch: dict[str, Any] = {}
        for spec in specs:
            for key, (shape, dtype) in spec.items():
                batch[key] = _empty((size, *shape), dtype)
        views = {key: tensor.numpy() for key, tensor in batch.items()}
        # dates shared by the whole batch (every date of the cube: the usual case) are written
        # once, not once per sample
        shared = [
            all(plans[k].times is planned[0][1][k].times for _, plans in planned)
            for k in range(len(self.members))
        ]
        for k, dataset in enumerate(self.members):
            if shared[k]:
                dataset.fill_dates(planned[0][1][k], views)
        for i, (_, plans) in enumerate(planned):
            for dataset, plan, once in zip(self.members, plans, shared, strict=True):
                dataset.fill(plan, views, i, with_dates=not once)
        if self.points is not None:
            self._batch_points(batch, [b for b, _ in planned])
        batch["bounds"] = torch.tensor([b for b, _ in planned], dtype=torch.float64)
        batch["crs"] = [self._crs] * size
        if self.augment is not None:
            for i, (bounds, _) in enumerate(planned):
                sample = {key: batch[key][i] for key in self._roles}
                for key, value in self._finish(sample, bounds).items():
                    batch[key][i] = value
        return SampleBatch(batch, size)

    def _batch_points(
        self, batch: dict[str, Any], windows: list[tuple[float, float, float, float]]
    ) -> None:
        if self.points is None:
            return
        rows = [self.points.entries(bounds) for bounds in windows]
        for key in rows[0]:
            values = [row[key] for row in rows]
            if isinstance(values[0], np.ndarray):
                batch[key] = torch.from_numpy(np.stack(values))
            else:
                batch[key] = values

    def __str__(self) -> str:
        groups = ", ".join(f"{d.meta.group} ({d.res[0]:g})" for d in self.members)
        return f"CubeIntersectionDataset of {groups}\n    step: {self._step:g}\n    bounds: " + str(
            tuple(self.index.total_bounds)
        )


def _empty(shape: tuple[int, ...], dtype: np.dtype[Any]) -> torch.Tensor:
    """An uninitialised batch tensor, in shared memory inside a DataLoader worker.

    PyTorch's default collate does the same: the batch then reaches the main process without
    another copy.
    """
    tensor = torch.from_numpy(np.empty(shape, dtype=dtype))
    if torch.utils.data.get_worker_info() is not None:
        tensor.share_memory_()  # type: ignore[no-untyped-call]
    return tensor
