"""Output grids and sliding windows for embedding rasters (pure geometry, no pixels).

    grid = output_geobox(cube_bounds, crs, resolution=10, align=80, aoi=aoi)
    for tile in plan_tiles(grid, core=512, margin=80):
        tile.bounds            # what to read (CRS units): the core plus a margin on every side
        tile.rows, tile.cols   # where its core goes in the output raster

Every window of a plan has the same size (``core + 2 * margin`` output pixels), so windows
batch together, and every window edge lies on multiples of ``align`` CRS units from the cube's
origin, so the feature grids of all windows line up (a CNN's stride-``s`` feature map of one
window continues the feature map of its neighbour). The core of a window is what it writes;
the margin only feeds the receptive field, which is how windows join without seams. Windows at
the cube's edges read beyond it (no data there).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from affine import Affine
from odc.geo import CRS
from odc.geo.geobox import GeoBox
from odc.geo.geom import Geometry

from geoalign.aoi import CRSLike
from geoalign.errors import InvalidInputError
from geoalign.grid import as_fraction


@dataclass(frozen=True)
class OutputTile:
    """One sliding window.

    Attributes:
        key: Stable identifier (recorded by resumable writers).
        rows: First and last-plus-one output row of the core.
        cols: First and last-plus-one output column of the core.
        bounds: ``(left, bottom, right, top)`` read window in CRS units (core + margins).
        crop: ``(top, left)`` offset of the core inside the window, in output pixels.
    """

    key: str
    rows: tuple[int, int]
    cols: tuple[int, int]
    bounds: tuple[float, float, float, float]
    crop: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int]:
        """``(h, w)`` of the core in output pixels (smaller at the raster's edges)."""
        return self.rows[1] - self.rows[0], self.cols[1] - self.cols[0]


def lcm_step(values: Sequence[float]) -> float:
    """Least common multiple of positive lengths (exact for decimal sizes: 10, 0.5, 80)."""
    fractions = [as_fraction(v) for v in values]
    if not fractions or min(fractions) <= 0:
        raise InvalidInputError(f"lengths {list(values)}: give positive sizes")
    numerator = math.lcm(*(f.numerator for f in fractions))
    denominator = math.gcd(*(f.denominator for f in fractions))
    return float(Fraction(numerator, denominator))


def output_geobox(
    bounds: Sequence[float],
    crs: CRSLike,
    *,
    resolution: float,
    align: float,
    aoi: Geometry | None = None,
) -> GeoBox:
    """The output grid over the cube ``bounds`` (or the part covering ``aoi``).

    Args:
        bounds: ``(left, bottom, right, top)`` of the cube in ``crs`` units.
        crs: The cube CRS.
        resolution: Output pixel size in CRS units.
        align: The grid's edges lie on multiples of this length from the cube's top-left corner
            (a multiple of ``resolution``).
        aoi: Restrict the grid to this area (any CRS); snapped outwards to ``align``.

    Raises:
        InvalidInputError: ``aoi`` does not overlap the cube, or ``align`` is not a multiple of
            ``resolution``.
    """
    ratio = as_fraction(align) / as_fraction(resolution)
    if ratio.denominator != 1:
        raise InvalidInputError(f"align={align} is not a multiple of resolution={resolution}")
    left, bottom, right, top = (float(v) for v in bounds)
    x0, y0, x1, y1 = left, bottom, right, top
    if aoi is not None:
        ax0, ay0, ax1, ay1 = aoi.to_crs(CRS(crs)).boundingbox
        if ax0 >= right or ax1 <= left or ay0 >= top or ay1 <= bottom:
            raise InvalidInputError(
                f"the area of interest {tuple(round(v, 1) for v in (ax0, ay0, ax1, ay1))} "
                f"(in EPSG:{CRS(crs).epsg}) lies outside the cube {tuple(bounds)}: give an area "
                "the cube covers"
            )
        x0 = left + math.floor(max(ax0 - left, 0.0) / align + 1e-9) * align
        y1 = top - math.floor(max(top - ay1, 0.0) / align + 1e-9) * align
        x1 = min(right, left + math.ceil((ax1 - left) / align - 1e-9) * align)
        y0 = max(bottom, top - math.ceil((top - ay0) / align - 1e-9) * align)
        x1, y0 = max(x1, x0 + resolution), min(y0, y1 - resolution)
    width = max(1, math.ceil((x1 - x0) / resolution - 1e-9))
    height = max(1, math.ceil((y1 - y0) / resolution - 1e-9))
    transform = Affine(resolution, 0.0, x0, 0.0, -resolution, y1)
    return GeoBox((height, width), transform, CRS(crs))


def plan_tiles(geobox: GeoBox, *, core: int, margin: int) -> list[OutputTile]:
    """Windows covering ``geobox`` row by row: cores of ``core`` pixels, ``margin`` around.

    Args:
        geobox: The output grid (north-up).
        core: Edge of a window's core in output pixels.
        margin: Context on every side in output pixels (read, not written).
    """
    if core < 1 or margin < 0:
        raise InvalidInputError(f"core={core}, margin={margin}: core >= 1 and margin >= 0")
    height, width = geobox.shape.yx
    transform = geobox.transform
    res = transform.a
    left, top = transform.c, transform.f
    size = (core + 2 * margin) * res
    tiles = []
    for row in range(0, height, core):
        for col in range(0, width, core):
            x0 = left + (col - margin) * res
            y1 = top - (row - margin) * res
            tiles.append(
                OutputTile(
                    key=f"{row}:{col}",
                    rows=(row, min(row + core, height)),
                    cols=(col, min(col + core, width)),
                    bounds=(x0, y1 - size, x0 + size, y1),
                    crop=(margin, margin),
                )
            )
    return tiles
