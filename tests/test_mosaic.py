"""Mosaics of one time step: adjacent tiles copied without a mask, overlaps resolved per pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from odc.geo.geom import box

from geoalign.cube import ModalityRequest, plan_cube
from geoalign.stac_items import items_from_rasters

LEFT, TOP, RES = 500000.0, 5800000.0, 10.0
NODATA = 0


def _tile(path: Path, col: int, row: int, data: np.ndarray) -> str:
    """A uint16 GeoTIFF whose top-left pixel is (row, col) of the 64 x 64 cube grid."""
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype="uint16",
        crs="EPSG:32633",
        transform=rasterio.transform.from_origin(LEFT + col * RES, TOP - row * RES, RES, RES),
        nodata=NODATA,
    ) as dst:
        dst.write(data[np.newaxis])
    return str(path)


def _mosaic(paths: list[str]) -> np.ndarray:
    """The cube's one time step over the 64 x 64 grid, as stored (raw DN)."""
    items = items_from_rasters(
        paths,
        collection="dem",
        datetime="2020-01-01T00:00:00Z",
        ids=[Path(p).stem for p in paths],
        sensor_band_names=["elevation"],
    )
    plan = plan_cube(
        [ModalityRequest("d", "dem", items, RES)],
        aoi=box(LEFT, TOP - 64 * RES, LEFT + 64 * RES, TOP, "EPSG:32633"),
        crs="EPSG:32633",
    )
    values: np.ndarray = plan.to_datatree()["d"]["data"].values[0, 0]
    return values


def test_adjacent_tiles_and_overlaps_keep_the_first_valid_pixel(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    a = rng.integers(1, 1000, (64, 32), dtype=np.uint16)  # left half
    b = rng.integers(1, 1000, (40, 32), dtype=np.uint16)  # right half, top 40 rows only
    c = rng.integers(1, 1000, (40, 40), dtype=np.uint16)  # across the seam, with holes
    c[::3, ::2] = NODATA
    paths = [
        _tile(tmp_path / "a.tif", 0, 0, a),
        _tile(tmp_path / "b.tif", 32, 0, b),
        _tile(tmp_path / "c.tif", 12, 20, c),
    ]
    nodata = np.nan  # the dem sensor stores float32 with NaN as no-data
    # disjoint tiles only: copied as they are, the rest is no-data
    expected = np.full((64, 64), nodata)
    expected[:, :32] = a
    expected[:40, 32:] = b
    np.testing.assert_array_equal(_mosaic(paths[:2]), expected)
    # the overlapping tile fills only pixels no earlier tile filled, and not with its holes
    free = np.isnan(expected[20:60, 12:52]) & (c != NODATA)
    expected[20:60, 12:52][free] = c[free]
    np.testing.assert_array_equal(_mosaic(paths), expected)
    # a tile with holes first, then adjacent and overlapping full tiles fill around them
    reordered = [
        _tile(tmp_path / "a0.tif", 12, 20, c),
        _tile(tmp_path / "a1.tif", 0, 0, a),
        _tile(tmp_path / "a2.tif", 32, 0, b),
    ]
    first = np.full((64, 64), nodata)
    first[20:60, 12:52] = np.where(c != NODATA, c, nodata)
    gaps = np.isnan(first)
    for rows, cols, tile in ((slice(0, 64), slice(0, 32), a), (slice(0, 40), slice(32, 64), b)):
        window = first[rows, cols]
        window[gaps[rows, cols]] = tile[gaps[rows, cols]]
    np.testing.assert_array_equal(_mosaic(reordered), first)
