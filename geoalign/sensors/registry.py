"""The sensor registry: built-ins from ``builtin.yaml`` plus what users register or load."""

from __future__ import annotations

import threading
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from geoalign.errors import DataFileNotFoundError, InvalidInputError, SensorError
from geoalign.sensors.model import Sensor
from geoalign.sensors.schema import SensorFile, to_sensor

_lock = threading.Lock()
_sensors: dict[str, Sensor] = {}


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def parse_sensor_yaml(text: str, source: str) -> list[Sensor]:
    """Validate a sensor YAML document and return its sensors (nothing is registered).

    Args:
        text: The YAML text.
        source: Where it came from (a path), for error messages.

    Raises:
        InvalidInputError: Bad YAML, or a field that fails validation; the message names the
            field (``sensors.naip.bands[2].resolution_m``) and what is wrong with it.
    """
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InvalidInputError(f"{source}: not valid YAML: {err}") from err
    try:
        document = SensorFile.model_validate(data)
    except ValidationError as err:
        problems = "; ".join(
            f"{_location(e['loc'])}: {e['msg']}"
            + (f" (got {e['input']!r})" if not isinstance(e["input"], dict | list) else "")
            for e in err.errors()
        )
        raise InvalidInputError(
            f"{source}: invalid sensor description: {problems}. Fix these fields; the schema "
            "is that of geoalign/sensors/builtin.yaml."
        ) from err
    return [to_sensor(name, model) for name, model in document.sensors.items()]


def _builtin() -> list[Sensor]:
    text = resources.files("geoalign.sensors").joinpath("builtin.yaml").read_text("utf-8")
    return parse_sensor_yaml(text, "geoalign/sensors/builtin.yaml")


def _registry() -> dict[str, Sensor]:
    with _lock:
        if not _sensors:
            _sensors.update((s.name, s) for s in _builtin())
        return _sensors


def list_sensors() -> list[str]:
    """Names of all known sensors (built-in and registered), sorted."""
    return sorted(_registry())


def registered_sensors() -> list[Sensor]:
    """All known sensors, in registration order (built-ins first, later ones after)."""
    return list(_registry().values())


def get_sensor(name: str) -> Sensor:
    """The sensor registered as ``name``.

    Raises:
        SensorError: Unknown name; the message lists the known names.
    """
    registry = _registry()
    if name not in registry:
        raise SensorError(
            f"Unknown sensor {name!r}. Known sensors: {', '.join(sorted(registry))}. "
            "Add your own with geoalign.sensors.register_sensor or load_sensor_file."
        )
    return registry[name]


def register_sensor(sensor: Sensor, *, replace: bool = False) -> None:
    """Register ``sensor`` under its name.

    Args:
        sensor: The sensor description.
        replace: Allow replacing a sensor of the same name (a built-in included).

    Raises:
        SensorError: The name is taken and ``replace`` is False.
    """
    registry = _registry()
    with _lock:
        if sensor.name in registry and not replace:
            raise SensorError(
                f"A sensor named {sensor.name!r} is already registered; pass replace=True to "
                "override it, or choose another name."
            )
        registry.pop(sensor.name, None)  # re-inserted last: later registrations win detection
        registry[sensor.name] = sensor


def load_sensor_file(path: str | PathLike[str]) -> list[Sensor]:
    """Add or override sensors from a YAML file with the schema of ``builtin.yaml``.

    Every sensor of the file is validated before any is registered; a sensor whose name is
    already known replaces it.

    Args:
        path: The YAML file.

    Returns:
        The sensors loaded, in file order.

    Raises:
        DataFileNotFoundError: The file does not exist.
        InvalidInputError: The file is not valid (the message names the field).
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileNotFoundError(f"Sensor file {path} does not exist; check the path.")
    sensors = parse_sensor_yaml(path.read_text("utf-8"), str(path))
    for sensor in sensors:
        register_sensor(sensor, replace=True)
    return sensors


def reset_sensors() -> None:
    """Forget registered and loaded sensors; only the built-ins remain (useful in tests)."""
    with _lock:
        _sensors.clear()
