"""The raster products made from point clouds, their units, and the options of rasterization.

Every product is one band of float32 with NaN where a cell has no data:

============================  ==========  ===================================================
product                       units       per cell
============================  ==========  ===================================================
``dsm``                       m           highest return (surface heights)
``dtm``                       m           mean height of ground returns; holes filled by
                                          inverse-distance interpolation (GDAL fillnodata)
``ndsm``                      m           ``dsm - dtm`` (height of objects above ground)
``intensity``                 DN          mean intensity of all returns (uncalibrated)
``density``                   points/m2   returns per square metre
``first_return_ratio``        fraction    first returns / all returns (1 on bare ground,
                                          lower where pulses split in vegetation)
``last_return_ratio``         fraction    last returns / all returns
``canopy_cover``              fraction    first returns more than ``canopy_height`` above the
                                          DTM / all first returns
``height_p<NN>``              m           NN-th percentile (0-100, linear interpolation) of the
                                          heights above the DTM of all returns
============================  ==========  ===================================================

Heights are in metres in the vertical datum of the file (NAVD88 for 3DEP).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from geoalign.errors import InvalidInputError
from geoalign.lidar.points import NOISE_CLASSES

#: Products with fixed names and their units.
PRODUCT_UNITS: dict[str, str] = {
    "dsm": "m",
    "dtm": "m",
    "ndsm": "m",
    "intensity": "DN",
    "density": "points/m2",
    "first_return_ratio": "fraction",
    "last_return_ratio": "fraction",
    "canopy_cover": "fraction",
}

#: What a cube of raw points holds when no bands are asked for.
DEFAULT_PRODUCTS: tuple[str, ...] = (
    "dsm",
    "dtm",
    "ndsm",
    "intensity",
    "density",
    "first_return_ratio",
    "last_return_ratio",
    "canopy_cover",
    "height_p50",
    "height_p95",
)

#: Products that need a DTM (heights above ground).
_NEEDS_GROUND = {"dtm", "ndsm", "canopy_cover"}

_PERCENTILE = re.compile(r"^height_p(\d{1,3}(?:\.\d+)?)$")

DtmFallback = Literal["lowest", "error", "none"]


def percentile_of(product: str) -> float | None:
    """The percentile (0-100) of a ``height_p<NN>`` product, or None for other products."""
    match = _PERCENTILE.match(product)
    return float(match.group(1)) if match else None


def product_units(product: str) -> str:
    """Units of ``product`` (see the module table)."""
    return "m" if percentile_of(product) is not None else PRODUCT_UNITS[product]


def needs_ground(products: Sequence[str]) -> bool:
    """True when one of ``products`` needs the DTM."""
    return any(p in _NEEDS_GROUND or percentile_of(p) is not None for p in products)


def check_products(products: Sequence[str]) -> tuple[str, ...]:
    """Validated product names, in order.

    Raises:
        InvalidInputError: An unknown or repeated name, or a percentile outside 0-100.
    """
    names = tuple(products)
    if not names:
        raise InvalidInputError(f"no products asked for: choose some of {DEFAULT_PRODUCTS}")
    for name in names:
        percentile = percentile_of(name)
        if percentile is not None and not 0.0 <= percentile <= 100.0:
            raise InvalidInputError(f"product {name!r}: the percentile must be within 0-100")
        if percentile is None and name not in PRODUCT_UNITS:
            raise InvalidInputError(
                f"unknown LiDAR product {name!r}: choose from {sorted(PRODUCT_UNITS)} or "
                "'height_p<NN>' (a height percentile, e.g. 'height_p95')"
            )
    if len(set(names)) != len(names):
        raise InvalidInputError(f"products {names} repeat a name: list each product once")
    return names


@dataclass(frozen=True)
class RasterizeOptions:
    """How points become rasters (all lengths in metres unless said otherwise).

    Attributes:
        products: Products to make, in band order (see the module table).
        ground_classes: ASPRS classes that are ground (2; add 8 for old model keypoints).
        dtm_fallback: When a tile has points but none of the ground classes: ``"lowest"``
            takes the lowest return of each cell as ground (right in open land, too high
            under buildings and dense canopy), ``"error"`` raises, ``"none"`` leaves the DTM
            and the products that need it empty (NaN). Each use is reported by a warning.
        dtm_fill_pixels: Largest gap in the DTM filled by interpolation, in pixels; tiles are
            read with this margin, so DTMs agree across tile edges.
        canopy_height: Height above ground (m) above which a first return counts as canopy.
        exclude_classes: ASPRS classes dropped while reading (noise by default).
        max_points_in_memory: Memory bound: most points held at once (about 40 bytes each).
            Larger LAS/LAZ files are spilled to disk by tile; COPC files are queried by tile.
        chunk_points: Points per chunk when streaming a file.
        tile_size: Tile edge in pixels (a multiple of 256); None picks it from the point
            density so that a tile holds at most ``max_points_in_memory`` points.
    """

    products: tuple[str, ...] = DEFAULT_PRODUCTS
    ground_classes: tuple[int, ...] = (2,)
    dtm_fallback: DtmFallback = "lowest"
    dtm_fill_pixels: int = 32
    canopy_height: float = 2.0
    exclude_classes: tuple[int, ...] = NOISE_CLASSES
    max_points_in_memory: int = 4_000_000
    chunk_points: int = 250_000
    tile_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "products", check_products(self.products))
        if self.dtm_fallback not in ("lowest", "error", "none"):
            raise InvalidInputError(
                f"dtm_fallback={self.dtm_fallback!r}: use 'lowest', 'error' or 'none'"
            )
        for name in ("dtm_fill_pixels", "max_points_in_memory", "chunk_points"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInputError(f"{name}={value!r} must be a non-negative integer")
        if self.max_points_in_memory < 1 or self.chunk_points < 1:
            raise InvalidInputError("max_points_in_memory and chunk_points must be at least 1")
        if self.tile_size is not None and (self.tile_size < 256 or self.tile_size % 256):
            raise InvalidInputError(
                f"tile_size={self.tile_size} must be a multiple of 256 pixels (or None for auto)"
            )
        if self.canopy_height < 0:
            raise InvalidInputError(f"canopy_height={self.canopy_height} must be >= 0 metres")

    @property
    def halo(self) -> int:
        """Margin in pixels read around each tile (for DTM interpolation across tile edges)."""
        return self.dtm_fill_pixels if needs_ground(self.products) else 0

    def units(self) -> list[str]:
        """Units of each product, in band order."""
        return [product_units(p) for p in self.products]
