"""Raw-to-physical scale and offset of one band of one item, provider quirks included.

Sentinel-2 L2A, as checked against the real items in ``../shared/data/stac``:

- ESA products from processing baseline 04.00 (operational 2022-01-25) store
  ``DN = reflectance * 10000 + 1000`` (``BOA_ADD_OFFSET = -1000``); older baselines store
  ``DN = reflectance * 10000``.
- Planetary Computer serves ESA's DNs unchanged and has no ``raster:bands``: the offset
  (-0.1 reflectance) follows from ``s2:processing_baseline`` alone.
- Earth Search ``sentinel-2-c1-l2a`` keeps ESA's DNs and declares ``raster:bands``
  scale 0.0001 / offset -0.1, which is right; it has no ``earthsearch:boa_offset_applied``.
- Earth Search ``sentinel-2-l2a`` (the older collection, ids like ``S2B_20EPT_20250731_0_L2A``)
  HARMONISED its COGs: with ``earthsearch:boa_offset_applied: true`` the 1000 DN were already
  subtracted from the pixels, yet every such item in the data still declares offset -0.1 in
  ``raster:bands``. Element84 confirmed the flag is the truth and the offset field is stale
  (Element84/earth-search#9). Applying -0.1 there would make reflectance 0.1 too low. So the
  flag wins: true -> offset 0; false -> the baseline rule. Items with the flag false and a
  baseline >= 04.00 are reported as sometimes mislabelled (earth-search#66, #71,
  cirrus-earth-search#33); metadata cannot tell, so a warning is emitted for them.
- Copernicus Data Space items declare STAC 1.1 ``raster:offset`` per band; declared offsets
  are honoured whenever no applied-flag overrides them.
"""

from __future__ import annotations

import re
import warnings
from datetime import date

import pystac

from geoalign.errors import GeoAlignWarning, SensorError
from geoalign.sensors.model import Band, Radiometry
from geoalign.sensors.stac_meta import AssetBand, item_datetime

#: ``_N0511_`` in ESA product names (``s2:product_uri``, ``sentinel:product_id``, item ids).
_BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?:_|$|\.)")
_NAME_PROPERTIES = ("s2:product_uri", "sentinel:product_id", "s2:product_id")


class AmbiguousRadiometryWarning(GeoAlignWarning):
    """Item metadata that providers are known to get wrong; the values may be off."""


def _version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts) if parts else None


def processing_baseline(item: pystac.Item, rule: Radiometry) -> tuple[int, ...] | None:
    """The item's processing baseline as a tuple (``(5, 11)``), or None if it gives none.

    Read from ``rule.baseline_properties``, then from the ``_Nxxyy_`` token of ESA product
    names (``s2:product_uri``, ``sentinel:product_id``, the item id).
    """
    for name in rule.baseline_properties:
        value = item.properties.get(name)
        if value is not None and (version := _version(str(value))):
            return version
    names = [item.properties.get(p) for p in _NAME_PROPERTIES] + [item.id]
    for text in names:
        if isinstance(text, str) and (match := _BASELINE_IN_NAME.search(text)):
            return int(match.group(1)), int(match.group(2))
    return None


def baseline_offset(item: pystac.Item, rule: Radiometry, sensor: str) -> float:
    """The offset the processing baseline implies for raw DNs as ESA produced them.

    Raises:
        SensorError: The baseline is unknown and the acquisition is not clearly older than
            the offset baseline.
    """
    baseline = processing_baseline(item, rule)
    threshold = _version(rule.baseline_from) or ()
    if baseline is not None:
        return rule.baseline_offset if baseline >= threshold else 0.0
    when = item_datetime(item)
    first: date | None = rule.first_baseline_date
    if first is not None and when is not None and when.date() < first:
        return 0.0  # acquired before the offset baseline existed and not reprocessed
    raise SensorError(
        f"Item {item.id!r} ({sensor}) does not say its processing baseline (looked at "
        f"{', '.join(rule.baseline_properties + _NAME_PROPERTIES)} and the item id), so the "
        f"{rule.baseline_offset:+g} offset of baselines >= {rule.baseline_from} can neither be "
        "applied nor ruled out. Add the baseline property to the item, or declare the offset "
        "in raster:bands / STAC 1.1 raster:offset."
    )


def resolve_scale_offset(
    item: pystac.Item,
    band: Band,
    declared: AssetBand | None,
    rule: Radiometry | None,
    sensor: str,
) -> tuple[float, float]:
    """Scale and offset turning this item's raw values of ``band`` into physical units.

    Precedence: what the asset declares (``raster:bands`` or STAC 1.1 ``raster:scale`` /
    ``raster:offset``), else the band's defaults from the sensor description, else 1 and 0.
    With a baseline ``rule`` (Sentinel-2), the provider's applied-flag overrides the declared
    offset, and a missing offset is derived from the processing baseline.

    Args:
        item: The STAC item.
        band: The band (its ``scale``/``offset`` are the sensor's defaults).
        declared: What the asset says about this band, or None.
        rule: The sensor's processing-baseline rule, or None.
        sensor: Sensor name, for messages.

    Raises:
        SensorError: The rule needs a baseline the item does not give.
    """
    declared = declared or AssetBand()
    scale = _pick(declared.scale, band.scale, 1.0)
    offset = _pick(declared.offset, band.offset, 0.0)
    if rule is None:
        return scale, offset
    flag = item.properties.get(rule.applied_flag) if rule.applied_flag else None
    if flag is True:
        return scale, 0.0  # the provider already removed the offset from the pixels
    if flag is False:
        implied = baseline_offset(item, rule, sensor)
        if implied != 0.0:
            warnings.warn(
                f"Item {item.id!r} says {rule.applied_flag}=false with a processing baseline "
                f">= {rule.baseline_from}; geoalign applies the {implied:+g} offset, but some "
                "items labelled like this were already harmonised upstream (Element84/"
                "earth-search#66, #71). Check the reflectance, or use sentinel-2-c1-l2a.",
                AmbiguousRadiometryWarning,
                stacklevel=5,
            )
        return scale, implied
    if declared.offset is not None:
        return scale, declared.offset
    return scale, baseline_offset(item, rule, sensor)


def _pick(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return float(value)
    return 0.0
