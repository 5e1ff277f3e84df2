"""Resolve a sensor's bands to :class:`BandSource`s for one STAC item, whatever the provider.

For each band: the first of its candidate asset keys that the item has; else an asset whose
``eo:bands`` / STAC 1.1 ``bands`` name the band (alias, then a common name unique in the item).
Rendered previews (the 8-bit TCI ``visual`` asset, thumbnails) are used only when a candidate key
names them and nothing else holds the band. Inside a multi-band asset the band index comes from
the asset's band list, else from the band's declared ``index``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pystac

from geoalign.errors import InvalidInputError, SensorError
from geoalign.sensors.discover import bands_from_raster
from geoalign.sensors.model import Band, SarUnit, Sensor
from geoalign.sensors.projection import asset_projection
from geoalign.sensors.radiometry import resolve_scale_offset
from geoalign.sensors.source import BandSource, UnitConversion
from geoalign.sensors.stac_meta import AssetBand, asset_bands, is_overview_asset, item_datetime


def _find_in_asset(band: Band, declared: list[AssetBand]) -> int | None:
    """1-based position of ``band`` in an asset's band list, or None."""
    for i, entry in enumerate(declared, start=1):
        if entry.name and band.matches_name(entry.name):
            return i
    if band.common_name:
        hits = [i for i, e in enumerate(declared, start=1) if e.common_name == band.common_name]
        if len(hits) == 1:
            return hits[0]
    return None


def _in_asset(item: pystac.Item, key: str, band: Band) -> tuple[str, int, AssetBand | None] | None:
    """``band`` in asset ``key``: its only band, the one its band list names, or ``band.index``."""
    declared = asset_bands(item, item.assets[key])
    if not declared:  # the asset lists no bands: trust the sensor's position, else band 1
        return key, band.index or 1, None
    if len(declared) == 1 and band.index in (None, 1):
        return key, 1, declared[0]
    index = _find_in_asset(band, declared) or band.index
    if index is not None and index <= len(declared):
        return key, index, declared[index - 1]
    return None


def _by_band_lists(item: pystac.Item, band: Band) -> tuple[str, int, AssetBand | None] | None:
    """The one non-preview asset whose band list names ``band`` (GeoTIFFs before others)."""
    by_name: list[tuple[str, int, AssetBand]] = []
    by_common: list[tuple[str, int, AssetBand]] = []
    for key, asset in item.assets.items():
        if is_overview_asset(key, asset):
            continue
        for i, entry in enumerate(asset_bands(item, asset), start=1):
            if entry.name and band.matches_name(entry.name):
                by_name.append((key, i, entry))
            elif band.common_name and entry.common_name == band.common_name:
                by_common.append((key, i, entry))
    for hits in (by_name, by_common):
        tiffs = [h for h in hits if "tiff" in (item.assets[h[0]].media_type or "tiff")]
        if len(tiffs or hits) == 1:
            return (tiffs or hits)[0]
    return None


def _locate(band: Band, item: pystac.Item) -> tuple[str, int, AssetBand | None] | None:
    """``(asset key, 1-based index, declared metadata)`` of ``band`` in ``item``, or None.

    Candidate keys naming science assets first, then band lists, and only then candidate
    keys that name a rendered preview (an orthophoto item whose only image is ``visual``).
    """
    keys = [k for k in band.asset_keys if k in item.assets]
    previews = [k for k in keys if is_overview_asset(k, item.assets[k])]
    for key in [k for k in keys if k not in previews]:
        if (found := _in_asset(item, key, band)) is not None:
            return found
    if (found := _by_band_lists(item, band)) is not None:
        return found
    for key in previews:
        if (found := _in_asset(item, key, band)) is not None:
            return found
    return None


def _missing(sensor: Sensor, item: pystac.Item, band: Band) -> SensorError:
    names = [n for n in (band.name, *band.aliases, band.common_name) if n]
    return SensorError(
        f"Item {item.id!r} (collection {item.collection_id!r}) has no asset for band "
        f"{band.name!r} of sensor {sensor.name!r}: tried asset keys {list(band.asset_keys)} and "
        f"band names {names} in eo:bands/bands; the item's assets are {sorted(item.assets)}. "
        "If the band is there under another key, add that key to the band's asset_keys in a "
        "sensor YAML file (geoalign.sensors.load_sensor_file), or use another sensor."
    )


def _refuse_if_unsupported(sensor: Sensor) -> None:
    if sensor.unsupported:
        raise SensorError(f"Sensor {sensor.name!r} is not supported: {sensor.unsupported}")


def _conversion(
    sensor: Sensor, band: Band, sar_unit: SarUnit | None
) -> tuple[UnitConversion, str | None]:
    if sar_unit is None:
        return "none", band.units
    if sensor.kind != "sar":
        raise InvalidInputError(
            f"sar_unit={sar_unit!r} only applies to SAR sensors; {sensor.name!r} is "
            f"{sensor.kind}. Leave sar_unit=None."
        )
    native = (band.units or "linear").lower()
    if sar_unit == "db":
        return ("none", "dB") if native == "db" else ("to_db", "dB")
    if sar_unit == "linear":
        return ("to_linear", "linear") if native == "db" else ("none", band.units or "linear")
    raise InvalidInputError(f"sar_unit must be 'linear', 'db' or None, got {sar_unit!r}.")


def _is_local(href: str) -> Path | None:
    path = Path(href[len("file://") :] if href.startswith("file://") else href)
    return path if "://" not in href.removeprefix("file://") and path.exists() else None


def _discovered_bands(sensor: Sensor, item: pystac.Item) -> tuple[Band, ...]:
    """Bands of a sensor without a fixed list: from the asset's metadata, else its file."""
    template = sensor.band_template or Band(name="band")
    key = next((k for k in template.asset_keys if k in item.assets), None)
    if key is None:
        raise _missing(sensor, item, replace(template, name="(spectral cube)"))
    asset = item.assets[key]
    declared = asset_bands(item, asset)
    if any(d.center_wavelength_nm is not None for d in declared):
        width = max(3, len(str(len(declared))))
        return tuple(
            replace(
                template,
                name=d.name or f"b{i:0{width}d}",
                asset_keys=(key,),
                index=i,
                common_name=d.common_name,
                center_wavelength_nm=d.center_wavelength_nm,
                full_width_nm=d.full_width_nm,
            )
            for i, d in enumerate(declared, start=1)
        )
    path = _is_local(asset.get_absolute_href() or asset.href)
    if path is None:
        raise SensorError(
            f"Item {item.id!r}: asset {key!r} of sensor {sensor.name!r} lists no band "
            "wavelengths (eo:bands / bands) and its file is not local, so its bands cannot be "
            "discovered. Add eo:bands with center_wavelength to the asset, or point the href "
            "at a local copy."
        )
    return tuple(replace(b, asset_keys=(key,)) for b in bands_from_raster(path, template=template))


def _select(sensor: Sensor, available: tuple[Band, ...], bands: Sequence[str] | None) -> list[Band]:
    if bands is None:
        return list(available)
    if isinstance(bands, str):
        raise InvalidInputError(f"bands must be a sequence of names, got the string {bands!r}.")
    if not sensor.bands:
        wanted = []
        for name in bands:
            match = next((b for b in available if b.matches_name(name)), None)
            if match is None:
                raise SensorError(
                    f"Band {name!r} is not among the {len(available)} bands discovered for "
                    f"sensor {sensor.name!r} ({available[0].name}..{available[-1].name})."
                )
            wanted.append(match)
        return wanted
    return [sensor.band(name) for name in bands]


def _source(
    sensor: Sensor,
    item: pystac.Item,
    band: Band,
    where: tuple[str, int, AssetBand | None],
    *,
    apply_rule: bool,
    sar_unit: SarUnit | None,
) -> BandSource:
    key, index, declared = where
    asset = item.assets[key]
    projection = asset_projection(item, key)
    rule = sensor.radiometry if apply_rule else None
    scale, offset = resolve_scale_offset(item, band, declared, rule, sensor.name)
    conversion, units = _conversion(sensor, band, sar_unit) if apply_rule else ("none", band.units)
    nodata = declared.nodata if declared and declared.nodata is not None else band.nodata
    return BandSource(
        item_id=item.id,
        collection=item.collection_id,
        sensor=sensor.name,
        band=band.name,
        asset_key=key,
        href=asset.href,
        index=index,
        nodata=nodata,
        scale=scale,
        offset=offset,
        units=units or (declared.unit if declared else None),
        dtype=(declared.dtype if declared else None) or band.dtype,
        crs=projection.crs,
        vertical_crs=projection.vertical_crs,
        transform=projection.transform,
        shape=projection.shape,
        datetime=item_datetime(item),
        resolution_m=band.resolution_m,
        center_wavelength_nm=band.center_wavelength_nm,
        full_width_nm=band.full_width_nm,
        conversion=conversion,
    )


def resolve_band_sources(
    sensor: Sensor,
    item: pystac.Item,
    bands: Sequence[str] | None = None,
    *,
    sar_unit: SarUnit | None = None,
) -> list[BandSource]:
    """See :meth:`geoalign.sensors.Sensor.band_sources`."""
    _refuse_if_unsupported(sensor)
    available = sensor.bands or _discovered_bands(sensor, item)
    out = []
    for band in _select(sensor, available, bands):
        where = _locate(band, item)
        if where is None:
            if band.optional and bands is None:
                continue
            raise _missing(sensor, item, band)
        out.append(_source(sensor, item, band, where, apply_rule=True, sar_unit=sar_unit))
    if not out:
        raise SensorError(f"Item {item.id!r} has none of the bands of sensor {sensor.name!r}.")
    return out


def resolve_mask_sources(sensor: Sensor, item: pystac.Item) -> list[BandSource]:
    """See :meth:`geoalign.sensors.Sensor.mask_sources`."""
    _refuse_if_unsupported(sensor)
    if sensor.mask is None:
        return []
    band = sensor.mask.band
    where = _locate(band, item)
    if where is None:
        raise _missing(sensor, item, band)
    return [_source(sensor, item, band, where, apply_rule=False, sar_unit=None)]
