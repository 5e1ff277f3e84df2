"""Per-band statistics of a cube modality, computed from its valid pixels and stored with it.

    stats = compute_band_stats("cube.zarr", "s2")     # streams the chunks; writes group attrs
    stats["red"].mean, stats["red"].std               # physical units (reflectance, dB...)
    CubeDataset("cube.zarr", "s2", normalize=True)    # (value - mean) / std per band

Statistics are exact for count, mean, standard deviation, minimum and maximum (float64
accumulators over every valid pixel of every date); the 2nd and 98th percentiles come from a
deterministic subsample of at most ``max_sample`` pixels per band. They are stored as JSON in the
modality group's ``band_stats`` attribute and the store's consolidated metadata is refreshed.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from geoalign.datasets.chunks import ChunkedArray
from geoalign.datasets.cube_meta import GroupMeta, read_group_meta
from geoalign.errors import InvalidInputError, NoDataFoundError

#: Group attribute holding the statistics (JSON: band name -> :class:`BandStats` fields).
STATS_ATTR = "band_stats"


@dataclass(frozen=True)
class BandStats:
    """Statistics of one band over its valid pixels, in physical units.

    Attributes:
        count: Number of valid pixels (all dates).
        mean: Mean value.
        std: Standard deviation (population).
        min: Smallest value.
        max: Largest value.
        p02: 2nd percentile (from a subsample).
        p98: 98th percentile (from a subsample).
    """

    count: int
    mean: float
    std: float
    min: float
    max: float
    p02: float
    p98: float


def compute_band_stats(
    path: str | os.PathLike[str],
    group: str,
    *,
    write: bool = True,
    max_sample: int = 100_000,
) -> dict[str, BandStats]:
    """Compute per-band statistics of a modality from every valid pixel, chunk by chunk.

    Args:
        path: A finished cube.
        group: Modality group (``"s2"``).
        write: Store them in the group's ``band_stats`` attribute (read by
            :func:`read_band_stats` and ``CubeDataset(normalize=True)``).
        max_sample: Pixels per band kept for the percentiles.

    Returns:
        Band name -> :class:`BandStats`.

    Raises:
        InvalidInputError: ``group`` is not a modality.
        NoDataFoundError: A band has no valid pixel.
    """
    meta = read_group_meta(path, group)
    if meta.kind != "modality":
        raise InvalidInputError(f"{group!r} is a {meta.kind} group: statistics are per modality")
    data = ChunkedArray(meta.store, f"{group}/data")
    valid = ChunkedArray(meta.store, f"{group}/valid")
    n_bands = len(meta.bands)
    count = np.zeros(n_bands, dtype=np.int64)
    total = np.zeros(n_bands)
    squares = np.zeros(n_bands)
    low = np.full(n_bands, np.inf)
    high = np.full(n_bands, -np.inf)
    pixels = meta.times.size * meta.height * meta.width
    stride = max(1, pixels // max_sample)
    samples: list[list[np.ndarray]] = [[] for _ in range(n_bands)]
    rows_per_read = data.chunks[-2]
    outside = meta.nodata if meta.nodata is not None else data.fill_value
    for t in range(meta.times.size):
        for r0 in range(0, meta.height, rows_per_read):
            rows = (r0, min(r0 + rows_per_read, meta.height))
            raw = data.read((t,), rows, (0, meta.width), outside)
            ok = valid.read((t,), rows, (0, meta.width), False)
            # subsample positions: a fixed stride over the flattened (time, y, x) pixel index
            first = (t * meta.height + rows[0]) * meta.width
            flat = np.arange(first, first + ok.size).reshape(ok.shape)
            keep = flat % stride == 0
            for b in range(n_bands):
                band = raw[b]
                mask = ok & _has_data(band, meta)
                values = band[mask].astype(np.float64) * meta.scale + meta.offset
                if values.size == 0:
                    continue
                count[b] += values.size
                total[b] += values.sum()
                squares[b] += np.square(values).sum()
                low[b] = min(low[b], values.min())
                high[b] = max(high[b], values.max())
                picked = band[mask & keep].astype(np.float64) * meta.scale + meta.offset
                samples[b].append(picked)
    stats = {}
    for b, name in enumerate(meta.bands):
        if count[b] == 0:
            raise NoDataFoundError(
                f"band {name!r} of {group!r} has no valid pixel: select the bands you need with "
                "bands=[...] before normalising"
            )
        mean = total[b] / count[b]
        std = float(np.sqrt(max(squares[b] / count[b] - mean**2, 0.0)))
        subsample = np.concatenate(samples[b]) if samples[b] else np.array([mean])
        p02, p98 = np.percentile(subsample, [2, 98])
        stats[name] = BandStats(
            int(count[b]), float(mean), std, float(low[b]), float(high[b]), float(p02), float(p98)
        )
    if write:
        _write_stats(meta, stats)
    return stats


def _has_data(band: np.ndarray, meta: GroupMeta) -> np.ndarray:
    if meta.nodata is None:
        return np.ones(band.shape, dtype=bool)
    if np.isnan(meta.nodata):
        return np.asarray(~np.isnan(band), dtype=bool)
    return np.asarray(band != meta.nodata, dtype=bool)


def _write_stats(meta: GroupMeta, stats: dict[str, BandStats]) -> None:
    import zarr

    node = zarr.open_group(str(meta.store), path=meta.group, mode="r+")
    node.attrs[STATS_ATTR] = json.dumps({name: asdict(s) for name, s in stats.items()})
    with warnings.catch_warnings():
        # see geoalign.cube_store.finalize_store: consolidated metadata is a zarr-python extra
        warnings.simplefilter("ignore", category=UserWarning)
        zarr.consolidate_metadata(str(meta.store))


def read_band_stats(path: str | os.PathLike[str], group: str) -> dict[str, BandStats] | None:
    """Statistics stored by :func:`compute_band_stats`, or None if they were never computed."""
    return stats_from_attrs(read_group_meta(Path(path), group).attrs)


def stats_from_attrs(attrs: dict[str, object]) -> dict[str, BandStats] | None:
    """Parse the ``band_stats`` attribute of a modality group (None when absent)."""
    text = attrs.get(STATS_ATTR)
    if text is None:
        return None
    raw = json.loads(str(text))
    return {name: BandStats(**fields) for name, fields in raw.items()}
