"""Recognise which sensor made a STAC item: collection id first, then platform/properties/assets."""

from __future__ import annotations

import pystac

from geoalign.errors import SensorError
from geoalign.sensors.model import Detection, Sensor
from geoalign.sensors.registry import registered_sensors


def _norm(text: object) -> str:
    return str(text).strip().lower().replace("_", "-").replace(" ", "-")


def _rules_match(rules: Detection, item: pystac.Item) -> bool:
    """True when the sensor declares platform/property/media-type rules and all hold."""
    if not (rules.platforms or rules.properties or rules.media_types):
        return False
    if rules.platforms:
        platform = item.properties.get("platform")
        if platform is None or _norm(platform) not in {_norm(p) for p in rules.platforms}:
            return False
    for name, accepted in rules.properties:
        if str(item.properties.get(name)) not in accepted:
            return False
    if rules.media_types:
        types = {a.media_type for a in item.assets.values()}
        if not types & set(rules.media_types):
            return False
    return True


def detect_sensor(item: pystac.Item) -> Sensor:
    """The sensor whose description matches ``item``.

    A sensor whose ``detect.collections`` lists the item's collection wins; otherwise one
    whose platform, property and asset media-type rules all hold. Among several matches of
    the same kind, the most recently registered sensor wins (so user files override
    built-ins).

    Raises:
        SensorError: No sensor matches; the message gives what was looked at and the names
            of the known sensors, to pass one explicitly with ``get_sensor``.
    """
    sensors = list(reversed(registered_sensors()))
    collection = item.collection_id
    for sensor in sensors:
        if collection and collection in sensor.detection.collections:
            return sensor
    for sensor in sensors:
        if _rules_match(sensor.detection, item):
            return sensor
    raise SensorError(
        f"Cannot tell which sensor made item {item.id!r} (collection {collection!r}, platform "
        f"{item.properties.get('platform')!r}). Pick one with geoalign.sensors.get_sensor(name); "
        f"known sensors: {', '.join(sorted(s.name for s in sensors))}."
    )
