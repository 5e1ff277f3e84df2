"""Sensors described as data, and how to find and decode their bands in STAC items.

The built-in sensors live in ``builtin.yaml`` (Sentinel-2 L2A, Landsat C2 L2, Sentinel-1 RTC
and GRD, NAIP and generic orthophotos, EnMAP and generic hyperspectral, Copernicus and generic
DEMs, 3DEP LiDAR rasters and point clouds). Users add or override sensors with
:func:`load_sensor_file` (same schema) or :func:`register_sensor`.

Typical use::

    from geoalign.sensors import detect_sensor

    sensor = detect_sensor(item)                 # or get_sensor("sentinel-2-l2a")
    sources = sensor.band_sources(item, ["red", "nir"])
    reflectance = sources[0].decode(raw_values)  # raw * scale + offset, nodata -> NaN
"""

from geoalign.sensors.detect import detect_sensor
from geoalign.sensors.discover import bands_from_raster, sensor_from_raster
from geoalign.sensors.model import (
    Band,
    Detection,
    Encoding,
    MaskSpec,
    Radiometry,
    SarUnit,
    Sensor,
    SensorKind,
)
from geoalign.sensors.radiometry import AmbiguousRadiometryWarning
from geoalign.sensors.registry import (
    get_sensor,
    list_sensors,
    load_sensor_file,
    register_sensor,
    reset_sensors,
)
from geoalign.sensors.source import BandSource
from geoalign.sensors.stac_meta import item_datetime

__all__ = [
    "AmbiguousRadiometryWarning",
    "Band",
    "BandSource",
    "Detection",
    "Encoding",
    "MaskSpec",
    "Radiometry",
    "SarUnit",
    "Sensor",
    "SensorKind",
    "bands_from_raster",
    "detect_sensor",
    "get_sensor",
    "item_datetime",
    "list_sensors",
    "load_sensor_file",
    "register_sensor",
    "reset_sensors",
    "sensor_from_raster",
]
