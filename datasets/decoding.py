"""Stored integers to float32 physical values (CF scale/offset), optionally standardised."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from geoalign.datasets.cube_meta import GroupMeta
from geoalign.datasets.stats import stats_from_attrs
from geoalign.errors import InvalidInputError


class Decoder:
    """``value = raw * scale_factor + add_offset`` per band, or ``(value - mean) / std``.

    Args:
        meta: The modality (its CF encoding, no-data value and stored band statistics).
        bands: Bands of the samples, in order.
        normalize: Standardise with the statistics of
            :func:`geoalign.datasets.compute_band_stats`.
        fill_value: Output value of no-data pixels.

    Raises:
        InvalidInputError: ``normalize`` without stored statistics.
    """

    def __init__(
        self, meta: GroupMeta, bands: Sequence[str], *, normalize: bool, fill_value: float
    ) -> None:
        self.nodata = meta.nodata
        self.fill_value = np.float32(fill_value)
        # per band, shape (C, 1, 1): output = raw * gain + bias
        self.gain = np.full((len(bands), 1, 1), meta.scale, dtype=np.float32)
        self.bias = np.full((len(bands), 1, 1), meta.offset, dtype=np.float32)
        if normalize:
            stats = stats_from_attrs(meta.attrs)
            if stats is None:
                raise InvalidInputError(
                    f"normalize=True needs band statistics of {meta.group!r}: compute and store "
                    f"them once with geoalign.datasets.compute_band_stats({str(meta.store)!r}, "
                    f"{meta.group!r})"
                )
            for i, band in enumerate(bands):
                std = stats[band].std or 1.0
                self.gain[i] = meta.scale / std
                self.bias[i] = (meta.offset - stats[band].mean) / std
        self.has_bias = bool(np.any(self.bias != 0))
        self.identity = not self.has_bias and bool(np.all(self.gain == 1))

    def __call__(self, raw: np.ndarray, target: np.ndarray) -> None:
        """Decode ``raw`` ``(..., C, H, W)`` into the float32 array ``target`` of its shape.

        Memory-bound (float32 output is 4x a uint8 input): as few passes as possible.
        """
        if self.identity:
            np.copyto(target, raw, casting="unsafe")
        else:
            np.multiply(raw, self.gain, out=target, casting="unsafe")
            if self.has_bias:
                target += self.bias
        if self.nodata is None:
            return
        missing = np.isnan(raw) if np.isnan(self.nodata) else np.equal(raw, self.nodata)
        np.copyto(target, self.fill_value, where=missing)
