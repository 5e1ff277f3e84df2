"""Sensor descriptions as frozen dataclasses: bands, masks, cube encoding, provider quirks.

These are plain data. The built-in sensors are written in ``builtin.yaml`` and validated by
:mod:`geoalign.sensors.schema`; the code that reads STAC items lives in
:mod:`geoalign.sensors.resolve`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from geoalign.errors import SensorError

if TYPE_CHECKING:
    import pystac

    from geoalign.sensors.source import BandSource

SensorKind = Literal[
    "optical", "sar", "orthophoto", "hyperspectral", "dem", "lidar_raster", "lidar_points"
]
SENSOR_KINDS: tuple[str, ...] = get_args(SensorKind)
SarUnit = Literal["linear", "db"]


@dataclass(frozen=True)
class Band:
    """One band of a sensor, as the cube names it, and where providers keep it.

    Attributes:
        name: Canonical band name in the cube (``"red"``, ``"vv"``, ``"elevation"``).
        asset_keys: Candidate STAC asset keys, all providers together, in the order tried
            (``("red", "B04", "B04_10m")``).
        aliases: Band names used inside ``eo:bands`` / STAC 1.1 ``bands`` (``"B04"``, ``"Red"``),
            matched without regard to case.
        common_name: The eo common name (``"red"``, ``"nir08"``), or None.
        center_wavelength_nm: Centre wavelength in nanometres, or None.
        full_width_nm: Full width at half maximum in nanometres, or None.
        resolution_m: Native ground sampling distance in metres (nominal), or None.
        units: Physical units after decoding (``"reflectance"``, ``"linear"``, ``"m"``).
        dtype: Storage data type of the raw file (numpy name), or None when it varies.
        nodata: Raw no-data value used when the item does not declare one, or None.
        scale: Raw-to-physical scale used when the item does not declare one (None: 1).
        offset: Raw-to-physical offset used when the item does not declare one (None: 0).
        index: 1-based band index in a multi-band asset that lists no bands, or None.
        optional: When True, an item lacking this band is not an error unless the band
            was asked for by name.
    """

    name: str
    asset_keys: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    common_name: str | None = None
    center_wavelength_nm: float | None = None
    full_width_nm: float | None = None
    resolution_m: float | None = None
    units: str | None = None
    dtype: str | None = None
    nodata: float | None = None
    scale: float | None = None
    offset: float | None = None
    index: int | None = None
    optional: bool = False

    def matches_name(self, name: str) -> bool:
        """True when ``name`` is this band's canonical name or one of its aliases (any case)."""
        wanted = name.casefold()
        return wanted == self.name.casefold() or any(a.casefold() == wanted for a in self.aliases)


@dataclass(frozen=True)
class MaskSpec:
    """A quality band and which of its values make a pixel invalid.

    Attributes:
        band: Where the mask band lives (for Sentinel-2: SCL, 20 m, uint8).
        invalid_values: Class values that are always invalid (SCL: 0 no data, 1 saturated,
            3 cloud shadow, 8 cloud medium, 9 cloud high, 10 cirrus).
        optional_invalid_values: Class values invalid only on request (SCL: 11 snow).
        invalid_bits: Bit positions that, when set, make a pixel invalid (Landsat QA_PIXEL).
        optional_invalid_bits: Bit positions invalid only on request (QA_PIXEL snow).
        classes: Class value -> name, for documentation and plots.
    """

    band: Band
    invalid_values: tuple[int, ...] = ()
    optional_invalid_values: tuple[int, ...] = ()
    invalid_bits: tuple[int, ...] = ()
    optional_invalid_bits: tuple[int, ...] = ()
    classes: tuple[tuple[int, str], ...] = ()

    def is_invalid(
        self, raw: npt.NDArray[Any], *, include_optional: bool = False
    ) -> npt.NDArray[np.bool_]:
        """Boolean array, True where the raw mask value marks the pixel invalid.

        Args:
            raw: Raw values of the mask band (integers).
            include_optional: Also treat the optional classes/bits (snow) as invalid.
        """
        values = self.invalid_values + (self.optional_invalid_values if include_optional else ())
        bits = self.invalid_bits + (self.optional_invalid_bits if include_optional else ())
        out = np.isin(raw, values) if values else np.zeros(np.shape(raw), dtype=bool)
        if bits:
            bitmask = sum(1 << b for b in bits)
            out |= (np.asarray(raw).astype(np.int64) & bitmask) != 0
        return out


@dataclass(frozen=True)
class Encoding:
    """How the cube stores a modality: ``physical = stored * scale + offset``.

    Attributes:
        dtype: Numpy dtype name of the stored array.
        scale: Multiplier from stored to physical units.
        offset: Added after scaling.
        nodata: Stored value meaning "no data" (NaN allowed for floats), or None.
        units: Physical units of the decoded values (``"reflectance"``, ``"m"``), or None.
    """

    dtype: str
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    units: str | None = None


@dataclass(frozen=True)
class Radiometry:
    """A processing-baseline offset rule (Sentinel-2 ``BOA_ADD_OFFSET``) and how to read it.

    Attributes:
        baseline_properties: Item properties holding the processing baseline (``"05.11"``).
        baseline_from: First baseline whose raw values carry the offset (``"04.00"``).
        baseline_offset: Physical offset for those baselines (-0.1 = -1000 DN * 1e-4).
        applied_flag: Item property saying a provider already removed the offset from the
            pixels (Earth Search ``earthsearch:boa_offset_applied``), or None.
        first_baseline_date: Date the offset baseline went operational; items acquired
            before it that declare no baseline are taken as older baselines.
    """

    baseline_properties: tuple[str, ...]
    baseline_from: str
    baseline_offset: float
    applied_flag: str | None = None
    first_baseline_date: date | None = None


@dataclass(frozen=True)
class Detection:
    """How :func:`~geoalign.sensors.detect_sensor` recognises a sensor's STAC items.

    Attributes:
        collections: Collection ids (all providers).
        platforms: Platform names, compared lower-case with ``_`` and spaces as ``-``.
        properties: Item property -> accepted values; all must match.
        media_types: Asset media types that identify the sensor (COPC point clouds).
    """

    collections: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    properties: tuple[tuple[str, tuple[str, ...]], ...] = ()
    media_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sensor:
    """A sensor described as data: bands, mask, cube encoding, provider quirks and notes.

    Attributes:
        name: Registry name (``"sentinel-2-l2a"``).
        kind: One of ``optical``, ``sar``, ``orthophoto``, ``hyperspectral``, ``dem``,
            ``lidar_raster``, ``lidar_points``.
        bands: The fixed band list, in cube order (empty when bands are discovered).
        encoding: How the cube stores decoded values.
        description: One line saying what the sensor is.
        mask: The quality/cloud mask band, or None.
        time_series: Whether the cube keeps a time dimension for it by default.
        notes: Plain-language caveats (``"not terrain corrected"``).
        band_template: For sensors whose bands are discovered from the item or file
            (hyperspectral): candidate asset keys and defaults for every discovered band.
        radiometry: Processing-baseline offset rule, or None.
        detection: How to recognise the sensor's items.
        unsupported: When set, the reason items of this sensor are refused (and what to
            use instead); :meth:`band_sources` raises :class:`SensorError` with it.
    """

    name: str
    kind: SensorKind
    bands: tuple[Band, ...]
    encoding: Encoding
    description: str = ""
    mask: MaskSpec | None = None
    time_series: bool = False
    notes: tuple[str, ...] = ()
    band_template: Band | None = None
    radiometry: Radiometry | None = None
    detection: Detection = field(default_factory=Detection)
    unsupported: str | None = None

    @property
    def band_names(self) -> tuple[str, ...]:
        """Canonical names of the fixed bands, in cube order."""
        return tuple(b.name for b in self.bands)

    def band(self, name: str) -> Band:
        """The band called ``name`` (canonical name or alias, any case).

        Raises:
            SensorError: No such band; the message lists the sensor's bands.
        """
        for band in self.bands:
            if band.matches_name(name):
                return band
        raise SensorError(
            f"Sensor {self.name!r} has no band {name!r}. Its bands are: "
            f"{', '.join(self.band_names) or '(discovered from each item)'}."
        )

    def band_sources(
        self,
        item: pystac.Item,
        bands: Sequence[str] | None = None,
        *,
        sar_unit: SarUnit | None = None,
    ) -> list[BandSource]:
        """Where each band of ``item`` lives and how to decode it to physical units.

        Args:
            item: A STAC item of this sensor, from any supported provider.
            bands: Canonical band names (or aliases) to resolve, in this order; None for
                all required bands plus the optional ones the item has.
            sar_unit: For SAR sensors, ``"linear"`` or ``"db"``; None keeps the native unit.

        Returns:
            One :class:`BandSource` per band; bands of a multi-band asset share the href.

        Raises:
            SensorError: The sensor is unsupported, a band is unknown, or the item lacks
                an asset for a band (the message lists the keys tried and the keys present).
        """
        from geoalign.sensors.resolve import resolve_band_sources

        return resolve_band_sources(self, item, bands, sar_unit=sar_unit)

    def mask_sources(self, item: pystac.Item) -> list[BandSource]:
        """The mask band of ``item`` (SCL for Sentinel-2) as a one-element list.

        Returns:
            ``[]`` when the sensor has no mask, else one :class:`BandSource` (scale 1,
            offset 0: mask values are class codes or bit fields, see :attr:`mask`).

        Raises:
            SensorError: The sensor is unsupported or the item lacks the mask asset.
        """
        from geoalign.sensors.resolve import resolve_mask_sources

        return resolve_mask_sources(self, item)
