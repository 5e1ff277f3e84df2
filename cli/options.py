"""Command-line options that several commands share, parsed into what the library accepts."""

from __future__ import annotations

from typing import Any

from geoalign.errors import InvalidInputError


def parse_area(bbox: str | None, point: str | None, aoi: str | None) -> Any:
    """The one place a command was given: ``--bbox``, ``--point`` or ``--aoi``.

    Args:
        bbox: ``"minx,miny,maxx,maxy"``, in the command's CRS (lon/lat degrees unless it says).
        point: ``"x,y"``, in the same CRS.
        aoi: A vector file or GeoJSON text, passed on as given.

    Returns:
        A ``(minx, miny, maxx, maxy)`` tuple, a GeoJSON Point dict, the ``aoi`` string, or None
        when none was given.

    Raises:
        InvalidInputError: More than one was given, or a bbox/point is not made of numbers.
    """
    given = [name for name, v in (("--bbox", bbox), ("--point", point), ("--aoi", aoi)) if v]
    if len(given) > 1:
        raise InvalidInputError(f"{' and '.join(given)} were given: give only one of them")
    if bbox is not None:
        return _numbers(bbox, "--bbox", "minx,miny,maxx,maxy")
    if point is not None:
        x, y = _numbers(point, "--point", "x,y")
        return {"type": "Point", "coordinates": [x, y]}
    return aoi


def _numbers(text: str, option: str, form: str) -> tuple[float, ...]:
    count = form.count(",") + 1
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise InvalidInputError(
            f"{option} {text!r}: give {count} comma-separated numbers, '{form}' (e.g. "
            f"{option}={','.join(['10.5', '45.2', '10.6', '45.3'][:count])})"
        )
    return values
