"""CRS, transform and shape of a STAC asset from the projection extension, any version.

Projection v1.0 writes ``proj:epsg`` (an integer, sometimes an explicit null), v1.1/v2 write
``proj:code`` (``"EPSG:32633"``); both allow ``proj:wkt2`` and ``proj:projjson``. Fields on the
asset win over fields on the item. ``proj:transform`` has 6 numbers or 9 (the last row of the
3x3 matrix, which must be ``0, 0, 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pystac
from affine import Affine
from odc.geo.crs import CRS

from geoalign.errors import CRSError, InvalidInputError

#: Tried in this order at each level (asset, then item).
CRS_FIELDS = ("proj:code", "proj:epsg", "proj:wkt2", "proj:projjson")


@dataclass(frozen=True)
class AssetProjection:
    """Georeferencing an asset declares (None where it declares nothing).

    Attributes:
        crs: Horizontal CRS of the pixel grid (for a compound CRS, its horizontal part).
        vertical_crs: Vertical part of a compound CRS (heights of a DSM), or None.
        transform: Pixel-to-CRS affine transform (pixel corner convention, CRS units).
        shape: ``(rows, columns)`` of the asset.
    """

    crs: CRS | None
    vertical_crs: CRS | None
    transform: Affine | None
    shape: tuple[int, int] | None


def _where(item: pystac.Item, key: str | None) -> str:
    return f"item {item.id!r}" + (f" asset {key!r}" if key else "")


def _crs_from_fields(fields: Mapping[str, Any], where: str) -> CRS | None:
    for name in CRS_FIELDS:
        value = fields.get(name)
        if value is None or value == "":
            continue
        try:
            if name == "proj:epsg":
                return CRS(f"EPSG:{int(value)}")
            return CRS(value)
        except Exception as err:  # pyproj raises several types for bad input
            raise CRSError(
                f"{where}: {name}={str(value)[:80]!r} is not a CRS pyproj understands ({err}). "
                "Fix the item's projection fields or drop them so the file's own CRS is used."
            ) from err
    return None


def _split_compound(crs: CRS) -> tuple[CRS, CRS | None]:
    """Horizontal and vertical parts of a compound CRS; ``(crs, None)`` otherwise."""
    parts = crs.proj.sub_crs_list if crs.proj.is_compound else []
    if not parts:
        return crs, None
    horizontal = next((p for p in parts if not p.is_vertical), parts[0])
    vertical = next((p for p in parts if p.is_vertical), None)
    return _tidy(horizontal), _tidy(vertical) if vertical is not None else None


def _tidy(crs: Any) -> CRS:
    """``EPSG:n`` when pyproj recognises the CRS exactly (shorter, comparable), else as is."""
    epsg = crs.to_epsg(min_confidence=100)
    return CRS(f"EPSG:{epsg}") if epsg else CRS(crs)


def parse_transform(values: Any, where: str) -> Affine:
    """An affine transform from a ``proj:transform`` list of 6 or 9 numbers.

    Args:
        values: ``[a, b, c, d, e, f]`` or ``[a, b, c, d, e, f, 0, 0, 1]`` (rasterio order:
            ``x = a * col + b * row + c``, ``y = d * col + e * row + f``).
        where: Names the item/asset in error messages.

    Raises:
        InvalidInputError: Not 6 or 9 numbers, or a 9-number form whose last row is not 0 0 1.
    """
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            f"{where}: proj:transform must be a list of 6 or 9 numbers, got {values!r}."
        ) from err
    if len(numbers) == 9:
        if numbers[6:] != [0.0, 0.0, 1.0]:
            raise InvalidInputError(
                f"{where}: proj:transform has 9 numbers but its last row is {numbers[6:]}, "
                "not [0, 0, 1]; only affine transforms are supported."
            )
        numbers = numbers[:6]
    if len(numbers) != 6:
        raise InvalidInputError(
            f"{where}: proj:transform must have 6 or 9 numbers, got {len(numbers)}."
        )
    return Affine(*numbers)


def _shape(value: Any, where: str) -> tuple[int, int] | None:
    if value is None:
        return None
    try:
        rows, cols = (int(v) for v in value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(
            f"{where}: proj:shape must be [rows, columns], got {value!r}."
        ) from err
    return rows, cols


def asset_projection(item: pystac.Item, key: str | None = None) -> AssetProjection:
    """Georeferencing of asset ``key`` of ``item`` (or of the item alone when ``key`` is None).

    Each of CRS, transform and shape is taken from the asset when it declares it, else
    from the item.

    Raises:
        CRSError: A CRS field holds something that is not a CRS.
        InvalidInputError: A malformed ``proj:transform`` or ``proj:shape``.
    """
    asset_fields: Mapping[str, Any] = item.assets[key].extra_fields if key else {}
    where = _where(item, key)
    crs = _crs_from_fields(asset_fields, where) or _crs_from_fields(item.properties, where)
    vertical = None
    if crs is not None:
        crs, vertical = _split_compound(crs)
    transform_values = asset_fields.get("proj:transform", item.properties.get("proj:transform"))
    transform = parse_transform(transform_values, where) if transform_values is not None else None
    shape = _shape(asset_fields.get("proj:shape", item.properties.get("proj:shape")), where)
    return AssetProjection(crs=crs, vertical_crs=vertical, transform=transform, shape=shape)
