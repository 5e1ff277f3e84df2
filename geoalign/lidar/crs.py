"""The CRS of a point cloud: from its VLRs (WKT or GeoTIFF keys), compound, feet or metres.

Where a LAS file keeps its CRS, in the order tried:

1. an OGC WKT VLR (``LASF_Projection``, record 2112; LAS 1.4 and COPC), in the VLRs or EVLRs;
2. GeoTIFF keys (``LASF_Projection`` 34735) that name EPSG codes: ``ProjectedCSTypeGeoKey``
   (3072) or ``GeographicTypeGeoKey`` (2048), plus ``VerticalCSTypeGeoKey`` (4096) for a compound
   CRS and ``VerticalUnitsGeoKey`` (4099) for the unit of Z;
3. the WKT that libLAS writes in its own VLR (``liblas``, record 2112), found in older files whose
   GeoTIFF keys describe a user-defined CRS (code 32767) that no EPSG code names;
4. the CRS the caller gives (a STAC item's ``proj:projjson``, or ``crs=``).

Heights are converted to metres: by the unit of the vertical CRS when there is one, else by the
unit of ``VerticalUnitsGeoKey``, else by the linear unit of the horizontal CRS (a state-plane file
in feet has heights in feet). Vertical datums are not transformed: heights keep the file's datum.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyproj

from geoalign.errors import CRSError

#: GeoTIFF key ids (OGC GeoTIFF 1.1).
_GEOGRAPHIC_KEY = 2048
_PROJECTED_KEY = 3072
_VERTICAL_KEY = 4096
_VERTICAL_UNITS_KEY = 4099
#: EPSG unit codes of GeoTIFF keys, in metres per unit.
_UNIT_FACTORS = {9001: 1.0, 9002: 0.3048, 9003: 1200.0 / 3937.0}


@dataclass(frozen=True)
class PointCRS:
    """The CRS of a point cloud, split into horizontal and vertical parts.

    Attributes:
        horizontal: CRS of x and y (projected or geographic).
        vertical: Vertical CRS of z (NAVD88 height...), or None when the file names none.
        z_to_metres: Multiplier turning stored heights into metres (0.3048 for feet).
        source: Where the CRS came from (``"wkt"``, ``"geotiff-keys"``, ``"liblas-wkt"``,
            ``"given"``), for messages and provenance.
    """

    horizontal: pyproj.CRS
    vertical: pyproj.CRS | None
    z_to_metres: float
    source: str

    @property
    def xy_to_metres(self) -> float:
        """Metres per horizontal unit (1 for UTM, 0.3048 for international feet)."""
        return _linear_factor(self.horizontal) or 1.0

    def describe(self) -> str:
        """A one-line description: names of both parts and the height unit."""
        vertical = f" + {self.vertical.name}" if self.vertical is not None else ""
        return f"{self.horizontal.name}{vertical} (z x {self.z_to_metres:g} -> m; {self.source})"


def _linear_factor(crs: pyproj.CRS) -> float | None:
    """Metres per unit of the first axis of a projected or vertical CRS, else None."""
    if crs.is_geographic:
        return None
    for axis in crs.axis_info:
        if axis.unit_conversion_factor:
            return float(axis.unit_conversion_factor)
    return None


def split_crs(
    crs: pyproj.CRS, *, vertical_unit: float | None = None, source: str = "given"
) -> PointCRS:
    """A :class:`PointCRS` from a 2D or compound CRS.

    Args:
        crs: Horizontal or compound (horizontal + vertical) CRS.
        vertical_unit: Metres per stored height unit when no vertical CRS says it.
        source: Provenance label.
    """
    horizontal, vertical = crs, None
    if crs.is_compound:
        for part in crs.sub_crs_list:
            if part.is_vertical:
                vertical = part
            else:
                horizontal = part
    if vertical is not None:
        factor = _linear_factor(vertical) or 1.0
    elif vertical_unit is not None:
        factor = vertical_unit
    else:
        factor = _linear_factor(horizontal) or 1.0
    return PointCRS(horizontal=horizontal, vertical=vertical, z_to_metres=factor, source=source)


def point_crs_from_parts(horizontal: Any, vertical: Any = None, *, source: str) -> PointCRS:
    """A :class:`PointCRS` from separate horizontal and vertical CRSs.

    That is how :mod:`geoalign.sensors` hands over a STAC item's compound ``proj:projjson``;
    each part may be anything pyproj accepts.
    """
    parts = [_pyproj(horizontal)] + ([_pyproj(vertical)] if vertical is not None else [])
    if len(parts) == 1:
        return split_crs(parts[0], source=source)
    compound = pyproj.crs.CompoundCRS(name=f"{parts[0].name} + {parts[1].name}", components=parts)
    return split_crs(compound, source=source)


def _pyproj(crs: Any) -> pyproj.CRS:
    native = getattr(crs, "proj", None)  # odc.geo.crs.CRS wraps a pyproj CRS
    if isinstance(native, pyproj.CRS):
        return native
    return pyproj.CRS.from_user_input(crs.to_wkt() if hasattr(crs, "to_wkt") else crs)


def _wkt_from_vlr(vlr: Any) -> str | None:
    raw = getattr(vlr, "string", None)
    if raw is None:
        data = getattr(vlr, "record_data", b"")
        raw = bytes(data).split(b"\0", 1)[0].decode("ascii", errors="replace")
    text = str(raw).strip("\0 \n")
    return text or None


def _geokeys(vlr: Any) -> dict[int, int]:
    """GeoTIFF keys stored inline (location 0) as ``{key id: value}``."""
    return {
        int(key.id): int(key.value_offset)
        for key in getattr(vlr, "geo_keys", [])
        if int(key.tiff_tag_location) == 0
    }


def _crs_from_geokeys(keys: dict[int, int]) -> pyproj.CRS | None:
    """A CRS from EPSG-coded GeoTIFF keys; None for user-defined (32767) or absent codes."""

    def epsg(key: int) -> int | None:
        code = keys.get(key)
        return code if code is not None and 1024 <= code <= 32766 else None

    horizontal_code = epsg(_PROJECTED_KEY) or epsg(_GEOGRAPHIC_KEY)
    if horizontal_code is None:
        return None
    horizontal = pyproj.CRS.from_epsg(horizontal_code)
    vertical_code = epsg(_VERTICAL_KEY)
    if vertical_code is None:
        return horizontal
    vertical = pyproj.CRS.from_epsg(vertical_code)
    return pyproj.crs.CompoundCRS(
        name=f"{horizontal.name} + {vertical.name}", components=[horizontal, vertical]
    )


def crs_from_vlrs(vlrs: Any, evlrs: Any = None) -> PointCRS | None:
    """The CRS a LAS header declares in its VLRs/EVLRs, or None when it declares none it can read.

    Args:
        vlrs: ``header.vlrs`` of a laspy header.
        evlrs: ``header.evlrs`` (LAS 1.4), or None.

    Raises:
        CRSError: A CRS VLR is present but pyproj cannot parse it.
    """
    records = [*list(vlrs or []), *list(evlrs or [])]
    wkt = liblas = None
    keys: dict[int, int] = {}
    for vlr in records:
        user, record = str(vlr.user_id).strip("\0 "), int(vlr.record_id)
        if user == "LASF_Projection" and record == 2112 and wkt is None:
            wkt = _wkt_from_vlr(vlr)
        elif user == "LASF_Projection" and record == 34735:
            keys = _geokeys(vlr)
        elif user == "liblas" and record == 2112 and liblas is None:
            liblas = _wkt_from_vlr(vlr)
    vertical_unit = _UNIT_FACTORS.get(keys.get(_VERTICAL_UNITS_KEY, -1))
    for source in ("wkt", "geotiff-keys", "liblas-wkt"):
        try:
            if source == "geotiff-keys":
                crs = _crs_from_geokeys(keys)
            else:
                text = wkt if source == "wkt" else liblas
                crs = pyproj.CRS.from_wkt(text) if text else None
        except pyproj.exceptions.CRSError as error:
            raise CRSError(
                f"the point cloud's {source} CRS record cannot be parsed ({error}): fix the file "
                "(e.g. `pdal translate --writers.las.a_srs=EPSG:...`) or pass crs= explicitly"
            ) from error
        if crs is not None:
            return split_crs(crs, vertical_unit=vertical_unit, source=source)
    return None


def to_point_crs(crs: Any) -> PointCRS:
    """A :class:`PointCRS` from anything pyproj accepts (EPSG code, WKT, PROJJSON dict...).

    Raises:
        CRSError: pyproj does not understand ``crs``.
    """
    if isinstance(crs, PointCRS):
        return crs
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as error:
        raise CRSError(
            f"crs={str(crs)[:80]!r} is not a CRS pyproj understands: give an EPSG code such as "
            "'EPSG:26910', a WKT string or a PROJJSON dict"
        ) from error
    return split_crs(parsed, source="given")


def resolve_point_crs(declared: PointCRS | None, given: Any, where: str) -> PointCRS:
    """The CRS to use: the file's own, else the one given; a clear error when neither exists.

    Args:
        declared: What the file's VLRs declare (:func:`crs_from_vlrs`).
        given: CRS supplied by the caller or a STAC item, used only where the file has none.
        where: Names the file in error messages.

    Raises:
        CRSError: Neither the file nor the caller gives a CRS.
    """
    if declared is not None:
        return declared
    if given is not None:
        return to_point_crs(given)
    raise CRSError(
        f"point cloud {where} declares no CRS (no WKT or EPSG GeoTIFF-key VLR) and none was "
        "given: pass crs= (e.g. crs='EPSG:26910' or a WKT string), or give the STAC item a "
        "proj:code / proj:projjson"
    )
