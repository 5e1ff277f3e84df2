"""Which dates of a time series a sample gets: all of them, a random subset, or a fixed length.

    TimeSelection()                        # every date in the query's time range: [T, C, H, W]
    TimeSelection("random", length=4)      # 4 dates drawn at random (kept in time order)
    TimeSelection("fixed", length=6)       # exactly 6: evenly spaced if more, padded if fewer

Samples of modes ``"random"`` and ``"fixed"`` always have ``length`` entries along time; entries
without a date (padding) hold the fill value, no valid pixel, date 0, and ``False`` in the
modality's ``<name>_time_valid`` mask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from geoalign.errors import InvalidInputError

TimeMode = Literal["all", "random", "fixed"]


@dataclass(frozen=True)
class TimeSelection:
    """How a time-series modality chooses its dates for one sample.

    Attributes:
        mode: ``"all"`` dates in the query's time range; ``"random"``: ``length`` of them drawn
            without replacement (a new draw per sample and epoch, reproducible with the
            dataset's seed); ``"fixed"``: exactly ``length``, evenly spaced over the available
            dates when there are more, padded at the end when there are fewer.
        length: Number of time entries per sample for ``"random"`` and ``"fixed"``.
    """

    mode: TimeMode = "all"
    length: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("all", "random", "fixed"):
            raise InvalidInputError(
                f"TimeSelection mode={self.mode!r} is unknown: use 'all', 'random' or 'fixed'"
            )
        if self.mode == "all" and self.length is not None:
            raise InvalidInputError(
                "TimeSelection('all') takes every date and no length: use mode='fixed' or "
                "'random' to get a fixed number of dates"
            )
        if self.mode != "all" and (self.length is None or self.length < 1):
            raise InvalidInputError(
                f"TimeSelection({self.mode!r}) needs length >= 1 (got {self.length}): the number "
                "of dates each sample gets"
            )

    @property
    def pads(self) -> bool:
        """True if samples have a fixed number of time entries (and may be padded)."""
        return self.mode != "all"

    def choose(self, available: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        """Indexes (into the cube's time axis) of the dates a sample gets, in time order.

        Args:
            available: Sorted indexes of the dates inside the query's time range.
            rng: Random generator of this sample (needed by ``"random"``).

        Returns:
            At most ``length`` indexes (all of ``available`` for ``"all"``); the caller pads.
        """
        if self.mode == "all" or self.length is None or available.size <= self.length:
            return available
        if self.mode == "random":
            if rng is None:
                raise InvalidInputError("internal: TimeSelection('random') needs a generator")
            picked = rng.choice(available.size, size=self.length, replace=False)
            return available[np.sort(picked)]
        positions = np.round(np.linspace(0, available.size - 1, self.length)).astype(np.int64)
        return available[positions]


def as_time_selection(value: TimeSelection | TimeMode) -> TimeSelection:
    """Turn ``"all"`` (or a :class:`TimeSelection`) into a :class:`TimeSelection`."""
    if isinstance(value, TimeSelection):
        return value
    if value == "all":
        return TimeSelection()
    raise InvalidInputError(
        f"time={value!r}: pass 'all' or TimeSelection(mode, length=...) (modes 'random' and "
        "'fixed' need a length)"
    )
