"""Queries and windows: torchgeo's ``GeoSlice`` to grid-aligned pixel windows and dates.

A torchgeo query is ``(slice(xmin, xmax), slice(ymin, ymax), slice(tmin, tmax))`` in the cube
CRS. geoalign snaps it to a grid (a group's pixels, or the sampling grid of an intersection,
whose step is the least common multiple of the groups' resolutions), so the window is a whole
number of pixels of every group, then reads it as :class:`ReadPlan` per group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd

#: How augmentations treat a sample entry: resampled image, mask-like (nearest), or untouched.
Role = Literal["image", "valid", "label", "vector"]
#: Sample key -> (shape, dtype) of its array.
Spec = dict[str, tuple[tuple[int, ...], np.dtype[Any]]]
NS_PER_S = 1_000_000_000


class ReadPlan(NamedTuple):
    """What to read for one sample: a pixel window and the time steps, at native resolution.

    Attributes:
        rows: First and last-plus-one row of the window on the group's grid.
        cols: First and last-plus-one column.
        times: Indexes of the dates to read, in time order.
        dates: Their dates in seconds since 1970-01-01 UTC (int64), same length.
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    times: list[int]
    dates: np.ndarray


def sample_rng(
    seed: int, epoch: int, bounds: Sequence[float], salt: int = 0
) -> np.random.Generator:
    """A generator that depends only on the seed, epoch and window: the same in every worker."""
    key = hash(tuple(round(v * 1000) for v in bounds)) & 0xFFFFFFFFFFFF
    return np.random.default_rng([seed, epoch, key, salt])


def parse_query(query: Any, fallback: tuple[float, float, float, float]) -> tuple[Any, ...]:
    """Turn torchgeo's ``GeoSlice`` into ``(xmin, ymin, xmax, ymax, tmin, tmax)``.

    Missing parts come from ``fallback`` (the dataset's bounds) or are None (times).
    """
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


def to_ns(value: Any, default: int) -> int:
    """An instant (datetime, ``pd.Timestamp``, ``np.datetime64``, string) in ns since 1970.

    None gives ``default`` (an unbounded time range).
    """
    return default if value is None else int(pd.Timestamp(value).value)


def snap_bounds(
    bounds: Sequence[float], left: float, top: float, step: float
) -> tuple[float, float, float, float]:
    """Move a window's edges to the nearest lines of a grid (origin ``left, top``, ``step``)."""
    x0 = left + round((bounds[0] - left) / step) * step
    y1 = top - round((top - bounds[3]) / step) * step
    width = max(1, round((bounds[2] - bounds[0]) / step)) * step
    height = max(1, round((bounds[3] - bounds[1]) / step)) * step
    return (x0, y1 - height, x0 + width, y1)


def grid_step(resolutions: Sequence[float]) -> float:
    """Least common multiple of pixel sizes (exact for decimal sizes such as 0.5, 10, 60)."""
    fractions = [Fraction(r).limit_denominator(10**6) for r in resolutions]
    numerator = math.lcm(*(f.numerator for f in fractions))
    denominator = math.gcd(*(f.denominator for f in fractions))
    return float(Fraction(numerator, denominator))
