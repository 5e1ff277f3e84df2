"""Band metadata of a STAC asset, whatever the STAC and extension versions, and item times.

Providers write the same facts in different places: ``eo:bands`` (eo v1) or STAC 1.1 ``bands``
with ``eo:``-prefixed fields; ``raster:bands`` (raster v1) or STAC 1.1 ``raster:scale`` /
``raster:offset`` / ``nodata`` / ``data_type`` on each band or on the asset; old items list
``eo:bands`` indices into the item's own list; the 3DEP items put a ``raster:bands`` object at
item level. The raw dictionaries are read directly (pystac's extension classes only accept the
schema versions they know), and turned into one :class:`AssetBand` per band.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pystac

#: Wavelengths in eo:bands / STAC 1.1 bands are micrometres.
_UM_TO_NM = 1000.0


@dataclass(frozen=True)
class AssetBand:
    """What an asset says about one of its bands (all fields None when it says nothing).

    Attributes:
        name: Band name (``"B04"``, ``"Red"``).
        common_name: eo common name.
        center_wavelength_nm: Centre wavelength in nanometres.
        full_width_nm: Full width at half maximum in nanometres.
        scale: Raw-to-physical scale.
        offset: Raw-to-physical offset.
        nodata: Raw no-data value (NaN allowed).
        dtype: Raw data type (numpy name, lower case).
        unit: Physical unit.
    """

    name: str | None = None
    common_name: str | None = None
    center_wavelength_nm: float | None = None
    full_width_nm: float | None = None
    scale: float | None = None
    offset: float | None = None
    nodata: float | None = None
    dtype: str | None = None
    unit: str | None = None


def _number(value: Any) -> float | None:
    """A float from a JSON number or a numeric string (``"nan"`` in 3DEP items), else None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any) -> str | None:
    return str(value) if value is not None else None


def _wavelength(value: Any) -> float | None:
    number = _number(value)
    return None if number is None or math.isnan(number) else number * _UM_TO_NM


def _eo_entries(item: pystac.Item, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The asset's spectral band list: STAC 1.1 ``bands`` or eo v1 ``eo:bands`` (or indices)."""
    entries = fields.get("bands")
    if not isinstance(entries, list) or not entries:
        entries = fields.get("eo:bands")
    if not isinstance(entries, list):
        return []
    item_level = item.properties.get("eo:bands") or item.properties.get("bands") or []
    out: list[dict[str, Any]] = []
    for entry in entries:
        if isinstance(entry, int) and not isinstance(entry, bool) and 0 <= entry < len(item_level):
            entry = item_level[entry]
        out.append(entry if isinstance(entry, dict) else {})
    return out


def _raster_entries(item: pystac.Item, fields: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The asset's ``raster:bands`` (v1), else the item-level one (list or a lone object)."""
    entries = fields.get("raster:bands")
    if entries is None:
        entries = item.properties.get("raster:bands")
    if isinstance(entries, dict):
        entries = [entries]
    if not isinstance(entries, list):
        return []
    return [e if isinstance(e, dict) else {} for e in entries]


def _first(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def asset_bands(item: pystac.Item, asset: pystac.Asset) -> list[AssetBand]:
    """Per-band metadata of ``asset``, merged from every convention; ``[]`` if none is given.

    Args:
        item: The item owning the asset (for item-level band lists).
        asset: The asset.

    Returns:
        One entry per band, in file order (band 1 first).
    """
    fields: dict[str, Any] = dict(asset.extra_fields)
    eo = _eo_entries(item, fields)
    raster = _raster_entries(item, fields)
    count = max(len(eo), len(raster))
    if count == 0 and any(k in fields for k in ("raster:scale", "raster:offset", "nodata")):
        count = 1  # STAC 1.1 asset-level raster fields without a band list
    out: list[AssetBand] = []
    for i in range(count):
        e = eo[i] if i < len(eo) else {}
        r = raster[i] if i < len(raster) else {}
        dtype = _first(r.get("data_type"), e.get("data_type"), fields.get("data_type"))
        out.append(
            AssetBand(
                name=_text(e.get("name")),
                common_name=_text(_first(e.get("eo:common_name"), e.get("common_name"))),
                center_wavelength_nm=_wavelength(
                    _first(e.get("eo:center_wavelength"), e.get("center_wavelength"))
                ),
                full_width_nm=_wavelength(
                    _first(e.get("eo:full_width_half_max"), e.get("full_width_half_max"))
                ),
                scale=_number(
                    _first(r.get("scale"), e.get("raster:scale"), fields.get("raster:scale"))
                ),
                offset=_number(
                    _first(r.get("offset"), e.get("raster:offset"), fields.get("raster:offset"))
                ),
                nodata=_number(_first(r.get("nodata"), e.get("nodata"), fields.get("nodata"))),
                dtype=str(dtype).lower() if dtype is not None else None,
                unit=_text(_first(r.get("unit"), e.get("unit"), fields.get("unit"))),
            )
        )
    return out


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    parsed = value if isinstance(value, datetime) else pystac.utils.str_to_datetime(str(value))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def item_datetime(item: pystac.Item) -> datetime | None:
    """The item's acquisition time (timezone-aware, UTC when the item gives no zone).

    ``datetime`` when set. When it is null (3DEP, mosaics), the midpoint of
    ``start_datetime`` and ``end_datetime``; the one of them present when only one is; None
    when the item gives no time at all.
    """
    if item.datetime is not None:
        return _parse_time(item.datetime)
    start = _parse_time(item.properties.get("start_datetime"))
    end = _parse_time(item.properties.get("end_datetime"))
    if start is not None and end is not None:
        return start + (end - start) / 2
    return start if start is not None else end


def is_overview_asset(key: str, asset: pystac.Asset) -> bool:
    """True for rendered previews (TCI ``visual``, thumbnails, overviews), never science data."""
    roles: Sequence[str] = asset.roles or ()
    if any(r in ("thumbnail", "overview", "visual") for r in roles):
        return True
    return key.lower() in {"visual", "tci", "preview", "overview", "thumbnail", "rendered_preview"}
