"""Real LiDAR (PDAL's Autzen Stadium data, ../shared/data/autzen) on one metric UTM grid: the
Oregon-Lambert-feet and UTM files agree, the layers line up with the orthophoto (in feet) as well
as in their own CRS, and the 2010 and 2023 epochs give comparable DTMs."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pyproj
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from rasterio.warp import Resampling, reproject

from geoalign.lidar import PointCloud, RasterizeOptions, rasterize_points

UTM = "EPSG:32610"
#: The extent of the thin LAS file on the UTM grid (m).
AUTZEN_UTM = (494000.0, 4877440.0, 494990.0, 4878810.0)


@pytest.fixture(scope="module")
def autzen(shared_data: Path) -> Path:
    return shared_data / "autzen"


def test_crs_of_every_file(autzen: Path) -> None:
    thin = PointCloud(autzen / "autzen-thin-srs.las").info.crs
    # user-defined GeoTIFF keys (no EPSG code): the CRS comes from the libLAS WKT record
    assert thin.source == "liblas-wkt" and thin.z_to_metres == pytest.approx(0.3048)
    assert thin.horizontal.axis_info[0].unit_name in ("foot", "international foot")
    utm = PointCloud(autzen / "autzen-utm.las").info.crs
    assert utm.horizontal == pyproj.CRS("EPSG:26910") and utm.z_to_metres == 1.0
    epoch = PointCloud(autzen / "autzen-bmx-2010.las").info.crs
    assert epoch.vertical is not None and "NAVD88" in epoch.vertical.name
    assert epoch.z_to_metres == pytest.approx(1200 / 3937)  # heights in US survey feet


def test_feet_and_utm_files_agree_on_one_metric_grid(autzen: Path) -> None:
    grid = GeoBox.from_bbox(AUTZEN_UTM, UTM, resolution=10)
    options = RasterizeOptions(products=("dsm", "intensity", "density"))
    feet = rasterize_points(autzen / "autzen-thin-srs.las", grid, options=options)
    metres = rasterize_points(autzen / "autzen-utm.las", grid, options=options)
    both = np.isfinite(feet.sel(band="dsm").values) & np.isfinite(metres.sel(band="dsm").values)
    assert both.sum() > 500
    difference = np.abs(feet.sel(band="dsm").values - metres.sel(band="dsm").values)[both]
    # the UTM file holds a tenth of the points of the feet file: where a cell's highest point
    # is in both, the DSMs match to the centimetre (heights converted from feet to metres)
    assert np.median(difference) < 0.05 and np.mean(difference < 0.05) > 0.6
    assert 120 < float(np.nanmedian(feet.sel(band="dsm").values)) < 140  # m above NAVD88


def _ortho_grey(autzen: Path, grid: GeoBox) -> np.ndarray:
    """The orthophoto (Oregon Lambert feet) warped onto ``grid``: mean of R, G, B."""
    with rasterio.open(autzen / "autzen.jpg") as src:
        rgb = np.full((3, grid.shape.y, grid.shape.x), np.nan, dtype=np.float32)
        reproject(
            rasterio.band(src, [1, 2, 3]),
            rgb,
            dst_transform=grid.affine,
            dst_crs=grid.crs.to_wkt(),
            resampling=Resampling.average,
            dst_nodata=np.nan,
        )
    grey: np.ndarray = rgb.mean(axis=0)
    return grey


def _best_shift(layer: np.ndarray, image: np.ndarray, reach: int) -> tuple[float, int, int]:
    """The (|correlation|, rows, cols) shift of ``layer`` against ``image`` that matches best."""
    best = (0.0, 0, 0)
    height, width = layer.shape
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            a = layer[max(dy, 0) : height + min(dy, 0), max(dx, 0) : width + min(dx, 0)]
            b = image[max(-dy, 0) : height + min(-dy, 0), max(-dx, 0) : width + min(-dx, 0)]
            known = np.isfinite(a) & np.isfinite(b)
            r = abs(float(np.corrcoef(a[known], b[known])[0, 1]))
            best = max(best, (r, dy, dx))
    return best


def test_lidar_lines_up_with_the_orthophoto(autzen: Path) -> None:
    """Building and tree edges (nDSM) against image brightness, found by cross-correlation.

    The offset between the two is measured on the cube's metric UTM grid and on a grid in the
    files' own Oregon Lambert feet; the cube introduces no misregistration when both agree. (The
    sample ortho and LiDAR differ by about 13 m east in their own CRS already.)
    """
    options = RasterizeOptions(products=("ndsm",), dtm_fill_pixels=8)
    thin = autzen / "autzen-thin-srs.las"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the thin file is sparse: some tiles lack ground points
        offsets = []
        for grid, metres_per_unit in (
            (GeoBox.from_bbox(AUTZEN_UTM, UTM, resolution=5), 1.0),
            (
                GeoBox.from_bbox(
                    (635616, 848978, 638862, 853362),
                    (autzen / "autzen-srs.wkt").read_text(),
                    resolution=16,
                ),
                0.3048,
            ),
        ):
            ndsm = rasterize_points(thin, grid, options=options).sel(band="ndsm").values
            r, dy, dx = _best_shift(ndsm, _ortho_grey(autzen, grid), reach=5)
            cell = grid.affine.a * metres_per_unit
            offsets.append((r, dy * cell, dx * cell, cell))
    (r_utm, north_utm, east_utm, cell_utm), (r_ft, north_ft, east_ft, cell_ft) = offsets
    assert r_utm > 0.25 and r_ft > 0.25  # a clear match of edges and brightness
    assert abs(east_utm - east_ft) <= max(cell_utm, cell_ft) + 0.5
    assert abs(north_utm - north_ft) <= max(cell_utm, cell_ft) + 0.5
    assert abs(east_utm) < 25 and abs(north_utm) < 25


def test_two_epochs_give_comparable_dtms(autzen: Path) -> None:
    grid = GeoBox.from_bbox((494724, 4877902, 494762, 4877948), UTM, resolution=2)
    options = RasterizeOptions(products=("dtm", "density"), dtm_fill_pixels=0)
    old = rasterize_points(autzen / "autzen-bmx-2010.las", grid, options=options)
    new = rasterize_points(autzen / "autzen-bmx-2023.las", grid, options=options)
    assert np.nansum(old.sel(band="density").values) * 4 == 829  # every ground point binned
    a, b = old.sel(band="dtm").values, new.sel(band="dtm").values
    both = np.isfinite(a) & np.isfinite(b)
    assert both.sum() > 200
    assert np.corrcoef(a[both], b[both])[0, 1] > 0.85
    assert np.median(np.abs(a - b)[both]) < 0.5  # metres, after the US-feet conversion
    assert 125 < np.nanmean(a) < 135
