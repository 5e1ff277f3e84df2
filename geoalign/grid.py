"""The grid family of a cube: one CRS, one origin, resolutions that are integer ratios of a base.

Every modality of a cube lives on a :class:`~odc.geo.geobox.GeoBox` that shares the cube's CRS and
bounds; its resolution is the base resolution times or divided by an integer (Sentinel-2 10 m, an
orthophoto 1 m, hyperspectral 30 m). The bounds are snapped outward to a multiple of every
resolution (measured from the CRS origin), so any window in CRS units that starts and ends on the
coarsest pixel edges is a whole number of pixels in every modality, and all grids are globally
aligned: two cubes in the same CRS and resolution share pixel edges.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from odc.geo.crs import CRS
from odc.geo.geobox import GeoBox
from odc.geo.geom import BoundingBox, Geometry

from geoalign.errors import CRSError, InvalidInputError

#: Largest denominator accepted when turning a float resolution into a fraction (0.3 m -> 3/10).
_MAX_DENOMINATOR = 1000


def as_fraction(value: float) -> Fraction:
    """Return ``value`` (a resolution in CRS units) as an exact fraction, e.g. 0.3 -> 3/10."""
    return Fraction(str(value)).limit_denominator(_MAX_DENOMINATOR)


def resolution_ratio(resolution: float, base: float) -> Fraction:
    """Return ``resolution / base``, checked to be an integer or the inverse of an integer.

    Args:
        resolution: Pixel size of a modality, in CRS units (metres for UTM).
        base: Base resolution of the cube, in CRS units.

    Raises:
        InvalidInputError: The ratio is neither ``k`` nor ``1/k`` for an integer ``k``.
    """
    if resolution <= 0 or base <= 0:
        raise InvalidInputError(
            f"resolutions must be positive, got resolution={resolution} and base={base}"
        )
    ratio = as_fraction(resolution) / as_fraction(base)
    if ratio.numerator != 1 and ratio.denominator != 1:
        coarser = base * math.ceil(float(ratio))
        finer = base * max(1, math.floor(float(ratio)))
        raise InvalidInputError(
            f"resolution {resolution} is not an integer multiple or divisor of the base "
            f"resolution {base} (ratio {ratio}): every modality of a cube must share pixel edges. "
            f"Use for instance {finer:g} or {coarser:g}, or change the base resolution."
        )
    return ratio


def common_step(resolutions: Iterable[float]) -> Fraction:
    """The smallest length that is a whole number of pixels at every resolution (their LCM)."""
    step: Fraction | None = None
    for res in resolutions:
        frac = as_fraction(res)
        if step is None:
            step = frac
            continue
        numerator = math.lcm(step.numerator * frac.denominator, frac.numerator * step.denominator)
        step = Fraction(numerator, step.denominator * frac.denominator)
    if step is None:
        raise InvalidInputError("at least one resolution is needed to define a grid")
    return step


def _snap_out(
    bounds: BoundingBox, step: Fraction, origin: tuple[float, float] = (0.0, 0.0)
) -> BoundingBox:
    """Grow ``bounds`` outward to ``origin`` plus multiples of ``step`` (CRS units)."""
    s = float(step)
    x0, y0 = origin
    # A tolerance of a millionth of a step keeps bounds that are already on the grid unchanged.
    eps = 1e-6
    left = x0 + math.floor((bounds.left - x0) / s + eps) * s
    bottom = y0 + math.floor((bounds.bottom - y0) / s + eps) * s
    right = x0 + math.ceil((bounds.right - x0) / s - eps) * s
    top = y0 + math.ceil((bounds.top - y0) / s - eps) * s
    return BoundingBox(left, bottom, right, top, crs=bounds.crs)


def default_crs(aoi: Geometry) -> CRS:
    """Return the UTM zone (WGS 84) that contains the centre of ``aoi``."""
    centre = aoi.to_crs("EPSG:4326").centroid
    return CRS.utm(centre)


@dataclass(frozen=True)
class CubeGrid:
    """The grid family of one cube.

    Attributes:
        crs: The one CRS of the cube.
        base_resolution: The reference pixel size in CRS units (e.g. 10 m for Sentinel-2).
        bounds: Extent in ``crs`` units, snapped to a multiple of every modality resolution.
        resolutions: Pixel size per modality name, in CRS units.
    """

    crs: CRS
    base_resolution: float
    bounds: BoundingBox
    resolutions: Mapping[str, float]

    def geobox(self, modality: str) -> GeoBox:
        """Return the north-up GeoBox of ``modality`` (its own resolution, the cube's bounds)."""
        if modality not in self.resolutions:
            raise InvalidInputError(
                f"modality {modality!r} is not part of this grid; known: {sorted(self.resolutions)}"
            )
        return self.geobox_at(self.resolutions[modality])

    def geobox_at(self, resolution: float) -> GeoBox:
        """The GeoBox of the cube's bounds at ``resolution`` (an integer ratio of the base)."""
        resolution_ratio(resolution, self.base_resolution)
        return GeoBox.from_bbox(self.bounds, self.crs, resolution=resolution, tight=True)

    def to_dict(self) -> dict[str, Any]:
        """Serialise to JSON-compatible values (stored in the cube's provenance)."""
        return {
            "crs": self.crs.to_wkt(),
            "epsg": self.crs.epsg,
            "base_resolution": self.base_resolution,
            "bounds": list(self.bounds),
            "resolutions": dict(self.resolutions),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CubeGrid:
        """Inverse of :meth:`to_dict`."""
        crs = CRS(data["crs"])
        return cls(
            crs=crs,
            base_resolution=float(data["base_resolution"]),
            bounds=BoundingBox(*_four(data["bounds"]), crs=crs),
            resolutions={k: float(v) for k, v in data["resolutions"].items()},
        )


def _four(values: Any) -> tuple[float, float, float, float]:
    left, bottom, right, top = (float(v) for v in values)
    return left, bottom, right, top


def make_grid(
    aoi: Geometry,
    *,
    resolutions: Mapping[str, float],
    base_resolution: float | None = None,
    crs: Any = None,
    origin: tuple[float, float] | None = None,
) -> CubeGrid:
    """Plan the grid family of a cube covering ``aoi``.

    Args:
        aoi: Area of interest with its CRS (see :func:`geoalign.aoi.to_aoi`).
        resolutions: Pixel size per modality, in units of ``crs`` (metres for UTM).
        base_resolution: Reference pixel size; default: the finest modality resolution of which
            every other one is an integer multiple or divisor.
        crs: Cube CRS (anything odc-geo accepts: ``"EPSG:32633"``, a WKT string, a pyproj CRS);
            default: the UTM zone of the AOI centre. Geographic CRSs are refused, because a
            resolution in degrees makes pixels of different ground sizes.

    Returns:
        The grid; its bounds cover ``aoi`` and are snapped to a multiple of every resolution.

    Raises:
        InvalidInputError: Empty resolutions, or ratios that are not integers.
        CRSError: ``crs`` is unknown or geographic.
    """
    if not resolutions:
        raise InvalidInputError(
            "resolutions is empty: give at least one modality and its pixel size"
        )
    try:
        grid_crs = default_crs(aoi) if crs is None else CRS(crs)
    except Exception as error:  # pyproj raises several types for unknown CRSs
        raise CRSError(
            f"crs={crs!r} is not a CRS that PROJ knows ({error}). Give an EPSG code such as "
            "'EPSG:32633', a WKT or PROJ string, or leave crs unset for the UTM zone of the AOI"
        ) from error
    if grid_crs.geographic:
        raise CRSError(
            f"crs={grid_crs} is geographic (degrees): a cube needs a projected CRS so that pixels "
            "have one size on the ground. Leave crs unset for the UTM zone of the AOI, or give "
            "e.g. 'EPSG:32633'."
        )
    base = base_resolution if base_resolution is not None else _pick_base(resolutions.values())
    for res in resolutions.values():
        resolution_ratio(res, base)
    step = common_step([base, *resolutions.values()])
    footprint = aoi.to_crs(grid_crs)
    if footprint.is_empty:
        raise InvalidInputError("the area of interest is empty: give a geometry with an extent")
    bounds = _snap_out(footprint.boundingbox, step, origin or (0.0, 0.0))
    if bounds.right <= bounds.left or bounds.top <= bounds.bottom:
        # A point (or a line on a grid line) still gets one coarsest pixel.
        s = float(step)
        bounds = BoundingBox(
            bounds.left, bounds.bottom, bounds.left + s, bounds.bottom + s, grid_crs
        )
    return CubeGrid(
        crs=grid_crs,
        base_resolution=float(base),
        bounds=BoundingBox(bounds.left, bounds.bottom, bounds.right, bounds.top, grid_crs),
        resolutions=dict(resolutions),
    )


def _pick_base(resolutions: Iterable[float]) -> float:
    """Choose a base: the finest resolution that all others are integer ratios of."""
    values = sorted(set(resolutions))
    for candidate in values:
        try:
            for res in values:
                resolution_ratio(res, candidate)
        except InvalidInputError:
            continue
        return candidate
    return values[0]
