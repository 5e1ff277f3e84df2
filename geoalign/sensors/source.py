"""Where one band of one STAC item lives, and how to turn its raw values into physical ones."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from affine import Affine
from odc.geo.crs import CRS
from odc.geo.geobox import GeoBox

#: Non-linear unit change applied after scale/offset (SAR backscatter).
UnitConversion = Literal["none", "to_db", "to_linear"]


@dataclass(frozen=True)
class BandSource:
    """One band of one STAC item: its file, its place in the file and its decoding.

    Decoding is ``physical = raw * scale + offset`` for every raw value that is not
    :attr:`nodata`, followed by :attr:`conversion` (``10 * log10`` for ``"to_db"``).
    :attr:`scale` and :attr:`offset` are for THIS item: provider conventions (Sentinel-2
    processing-baseline offsets, values a provider already harmonised) are resolved here.

    Attributes:
        item_id: STAC item id.
        collection: STAC collection id, or None.
        sensor: Name of the sensor description that resolved it.
        band: Canonical band name (``"red"``; ``"b001"`` for discovered bands).
        asset_key: Key of the STAC asset holding the band.
        href: Asset href, as the item gives it (may be remote, ``s3://`` or a local path).
        index: 1-based band index inside the file (several sources share one href for
            multi-band assets such as NAIP ``image`` or a hyperspectral cube).
        nodata: Raw no-data value (NaN allowed), or None when the file has none.
        scale: Raw-to-physical multiplier for this item.
        offset: Raw-to-physical addend for this item, in physical units.
        units: Physical units after decoding (``"reflectance"``, ``"dB"``, ``"m"``), or None.
        dtype: Raw storage data type (numpy name), or None when not declared.
        crs: Horizontal CRS of the asset from ``proj:code`` / ``proj:epsg`` / ``proj:wkt2`` /
            ``proj:projjson`` (asset, then item); None when the item declares none.
        vertical_crs: Vertical CRS when the declared CRS is compound (3DEP heights), or None.
        transform: Pixel-to-CRS affine transform (units of :attr:`crs`), or None.
        shape: ``(rows, columns)`` of the asset, or None.
        datetime: Acquisition time, timezone-aware: the item's ``datetime``, or when that is
            null the midpoint of ``start_datetime`` and ``end_datetime`` (or whichever of the
            two is present); None when the item has no time.
        resolution_m: Nominal native resolution in metres, or None.
        center_wavelength_nm: Centre wavelength in nanometres, or None.
        full_width_nm: Full width at half maximum in nanometres, or None.
        conversion: Unit change after scale/offset: ``"none"``, ``"to_db"`` or ``"to_linear"``.
    """

    item_id: str
    collection: str | None
    sensor: str
    band: str
    asset_key: str
    href: str
    index: int
    nodata: float | None
    scale: float
    offset: float
    units: str | None
    dtype: str | None
    crs: CRS | None
    vertical_crs: CRS | None
    transform: Affine | None
    shape: tuple[int, int] | None
    datetime: datetime | None
    resolution_m: float | None = None
    center_wavelength_nm: float | None = None
    full_width_nm: float | None = None
    conversion: UnitConversion = "none"

    @property
    def geobox(self) -> GeoBox | None:
        """The asset's pixel grid, when the item declares CRS, transform and shape."""
        if self.crs is None or self.transform is None or self.shape is None:
            return None
        return GeoBox(self.shape, self.transform, self.crs)

    def nodata_mask(self, raw: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
        """True where ``raw`` holds the no-data value (or NaN when no-data is NaN)."""
        raw = np.asarray(raw)
        if self.nodata is None:
            return np.zeros(raw.shape, dtype=bool)
        if math.isnan(self.nodata):
            return np.isnan(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, dtype=bool)
        return np.asarray(raw == self.nodata)

    def decode(
        self, raw: npt.ArrayLike, dtype: npt.DTypeLike = np.float32
    ) -> npt.NDArray[np.floating[Any]]:
        """Physical values from raw values; no-data (and invalid dB input) becomes NaN.

        Args:
            raw: Raw values as stored in the file.
            dtype: Floating dtype of the result; the arithmetic runs in float64.
        """
        values = np.asarray(raw)
        out = values.astype(np.float64) * self.scale + self.offset
        out[self.nodata_mask(values)] = np.nan
        if self.conversion == "to_db":
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.where(out > 0, 10.0 * np.log10(np.where(out > 0, out, 1.0)), np.nan)
        elif self.conversion == "to_linear":
            out = np.power(10.0, out / 10.0)
        result: npt.NDArray[np.floating[Any]] = out.astype(dtype)
        return result
