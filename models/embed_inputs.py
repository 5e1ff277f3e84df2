"""The cube windows an embedding export feeds to each encoder, checked against the checkpoint.

    inputs = open_inputs("cube.zarr", loaded, ["s1", "s2"])
    x, valid, time_valid, dates = inputs["s2"].read(bounds)     # one window, CRS bounds

Each modality is read as in pretraining: a :class:`~geoalign.datasets.CubeDataset` at its
native resolution, normalised with the band statistics stored in the cube when the checkpoint
was trained with ``normalize: true``, no-data pixels filled with 0 (the band mean after
normalisation). A modality with several dates feeds a time-series encoder (``data.dates`` of
the checkpoint's config dates per sample) or, for a single-date encoder, the date the caller
picks.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from geoalign.datasets import CubeDataset, TimeSelection, compute_band_stats, read_band_stats
from geoalign.datasets.cube_meta import cube_groups, read_group_meta
from geoalign.errors import InvalidInputError
from geoalign.models.checkpoint import LoadedEncoders
from geoalign.models.config import CubeDataConfig
from geoalign.models.encoders import ModalitySpec


@dataclass(frozen=True)
class ModalityInput:
    """One modality of the cube, read window by window for its encoder.

    Attributes:
        name: Modality (cube group and encoder name).
        dataset: The cube dataset reading it.
        spec: What the encoder takes.
        resolution: Pixel size in CRS units.
        start: First instant of the dates read (None: all).
        stop: Last instant of the dates read (None: all).
    """

    name: str
    dataset: CubeDataset
    spec: ModalitySpec
    resolution: float
    start: pd.Timestamp | None = None
    stop: pd.Timestamp | None = None

    def read(
        self, bounds: Sequence[float]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """One window (CRS bounds on this modality's pixel edges).

        Returns:
            ``x`` (``[C, H, W]``, or ``[S, C, H, W]`` for a series) float32; ``valid``
            ``[H, W]`` bool (any valid date); ``time_valid`` ``[S]`` and ``dates`` ``[S]``
            (series only, else None).
        """
        name = self.name
        sample = self.dataset.read(bounds, self.start, self.stop)
        x, valid = sample[name], sample[f"{name}_valid"]
        if self.spec.series:
            time_valid = sample[f"{name}_time_valid"]
            any_valid = (valid & time_valid[:, None, None]).any(axis=0)
            return x, any_valid, time_valid, sample[f"{name}_dates"]
        if x.ndim == 4:  # one date picked among several: drop the time axis
            x, valid = x[0], valid[0]
        return x, valid, None, None


def _date_range(value: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    try:
        day = pd.Timestamp(value)
    except ValueError:
        raise InvalidInputError(f"date {value!r}: give an ISO date such as 2019-09-18") from None
    if day.tzinfo is not None:
        day = day.tz_convert("UTC").tz_localize(None)
    if day == day.normalize():  # a whole day
        return day, day + pd.Timedelta(days=1) - pd.Timedelta(1, "ns")
    return day, day


def open_inputs(
    cube: str | os.PathLike[str],
    loaded: LoadedEncoders,
    modalities: Sequence[str],
    *,
    bands: Mapping[str, Sequence[str]] | None = None,
    dates: Mapping[str, str] | None = None,
    normalize: bool | None = None,
) -> dict[str, ModalityInput]:
    """Open each modality of ``cube`` for its encoder, after checking that they fit.

    Args:
        cube: A finished cube.
        loaded: The checkpoint's encoders.
        modalities: Modalities to read (encoder names = cube groups).
        bands: Modality -> bands to feed, when the cube has more than the encoder takes.
        dates: Modality -> date (``"2019-09-18"``) for single-date encoders on a modality with
            several dates.
        normalize: Standardise bands with the cube's statistics (default: as in pretraining).

    Raises:
        InvalidInputError: A modality missing from the cube, a band count that differs from
            the encoder's, or several dates for a single-date encoder without ``dates``.
    """
    groups = [g for g, kind in cube_groups(cube).items() if kind == "modality"]
    missing = [m for m in modalities if m not in groups]
    if missing:
        raise InvalidInputError(
            f"the checkpoint's encoders {missing} have no modality in the cube {cube} (it has "
            f"{groups}): embed a cube with these modalities, or choose modalities={groups!r} "
            "that both have"
        )
    data = loaded.config.data
    trained_on_cube = isinstance(data, CubeDataConfig)
    if normalize is None:
        normalize = trained_on_cube and bool(getattr(data, "normalize", False))
    fixed_dates = dict(data.dates) if isinstance(data, CubeDataConfig) else {}
    inputs = {}
    for name in modalities:
        spec = loaded.specs[name]
        meta = read_group_meta(cube, name)
        chosen = list((bands or {}).get(name, meta.bands))
        if len(chosen) != spec.channels:
            raise InvalidInputError(
                f"the checkpoint's {name!r} encoder takes {spec.channels} bands but the cube's "
                f"{name!r} modality gives {len(chosen)} ({', '.join(chosen)}): embed a cube "
                f"built with the pretraining bands, or choose {spec.channels} of them with "
                f"bands={{{name!r}: [...]}}"
            )
        start = stop = None
        time: Any = "all"
        if spec.series:
            time = TimeSelection("fixed", length=fixed_dates.get(name, max(1, meta.times.size)))
        elif meta.times.size > 1:
            day = (dates or {}).get(name)
            listed = ", ".join(str(t)[:10] for t in meta.times[:8])
            if day is None:
                raise InvalidInputError(
                    f"modality {name!r} of the cube has {meta.times.size} dates ({listed}...) but "
                    f"the checkpoint's encoder takes one: pick one with dates={{{name!r}: "
                    "'YYYY-MM-DD'}} (CLI: --date NAME=YYYY-MM-DD)"
                )
            start, stop = _date_range(day)
            inside = (meta.times >= start.to_datetime64()) & (meta.times <= stop.to_datetime64())
            if int(inside.sum()) != 1:
                raise InvalidInputError(
                    f"date {day!r} matches {int(inside.sum())} of the {meta.times.size} dates of "
                    f"{name!r} ({listed}...): give one that matches exactly one"
                )
        if normalize and read_band_stats(cube, name) is None:
            # pretraining computes and stores the statistics the same way (compute_stats: true)
            compute_band_stats(cube, name)
        dataset = CubeDataset(
            cube,
            name,
            bands=chosen if name in (bands or {}) else None,
            time=time,
            normalize=normalize,
            fill_value=0.0,
        )
        inputs[name] = ModalityInput(name, dataset, spec, meta.resolution, start, stop)
    return inputs
