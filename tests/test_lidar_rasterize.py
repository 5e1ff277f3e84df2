"""Rasterizing points: each product against hand-computed values and a synthetic scene, streaming
(in memory, spilled to disk, COPC by tile) giving the same rasters, reprojection, GeoTIFF output
and the bad-input paths (points outside the grid, no ground class, bad options)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from hypothesis import given, settings
from hypothesis import strategies as st
from odc.geo.geobox import GeoBox
from support.lidar_files import BUILDING, GROUND, Scene, make_scene, write_copc, write_las

from geoalign.errors import InvalidInputError, NoDataFoundError
from geoalign.lidar import (
    EmptyPointsWarning,
    GroundFallbackWarning,
    PointChunk,
    RasterizeOptions,
    rasterize_points,
    rasterize_to_geotiff,
)
from geoalign.lidar.binning import bin_tile

ORIGIN = (500_000.0, 4_000_000.0)
ALL = (
    "dsm",
    "dtm",
    "ndsm",
    "intensity",
    "density",
    "first_return_ratio",
    "last_return_ratio",
    "canopy_cover",
    "height_p50",
    "height_p100",
)


def _scene(points: list[tuple[float, float, float, int, int, int, int]]) -> Scene:
    """Points given as (dx, dy, z, intensity, return, returns, class), offsets from ORIGIN."""
    a = np.array(points, dtype=np.float64)
    return Scene(
        x=ORIGIN[0] + a[:, 0],
        y=ORIGIN[1] + a[:, 1],
        z=a[:, 2],
        intensity=a[:, 3].astype(np.uint16),
        return_number=a[:, 4].astype(np.uint8),
        number_of_returns=a[:, 5].astype(np.uint8),
        classification=a[:, 6].astype(np.uint8),
    )


def test_products_by_hand(tmp_path: Path) -> None:
    # a 2 x 2 grid of 10 m cells; the top-left cell holds a tree pulse and two ground returns
    grid = GeoBox.from_bbox(
        (ORIGIN[0], ORIGIN[1], ORIGIN[0] + 20, ORIGIN[1] + 20), "EPSG:32612", resolution=10
    )
    points = _scene(
        [
            (2, 15, 110.0, 100, 1, 2, 5),  # canopy, first of two
            (3, 15, 100.0, 50, 2, 2, 2),  # ground, last of two
            (4, 16, 102.0, 30, 1, 1, 2),  # ground, single
            (15, 5, 104.0, 80, 1, 1, 6),  # bottom-right: a roof point only
            (16, 6, 99.0, 10, 1, 1, 7),  # noise: dropped
        ]
    )
    path = write_las(tmp_path / "hand.las", points)
    out = rasterize_points(path, grid, options=RasterizeOptions(products=ALL, dtm_fill_pixels=0))
    cell = {name: float(out.sel(band=name).values[0, 0]) for name in ALL}
    assert cell["dsm"] == pytest.approx(110.0)
    assert cell["dtm"] == pytest.approx(101.0)  # mean of the ground returns
    assert cell["ndsm"] == pytest.approx(9.0)
    assert cell["intensity"] == pytest.approx(60.0)
    assert cell["density"] == pytest.approx(3 / 100.0)  # points per m2
    assert cell["first_return_ratio"] == pytest.approx(2 / 3)
    assert cell["last_return_ratio"] == pytest.approx(2 / 3)
    assert cell["canopy_cover"] == pytest.approx(1 / 2)  # first returns more than 2 m up
    heights = np.array([110.0, 100.0, 102.0]) - 101.0
    assert cell["height_p50"] == pytest.approx(np.percentile(heights, 50))
    assert cell["height_p100"] == pytest.approx(heights.max())
    roof = out.values[:, 1, 1]
    assert roof[ALL.index("dsm")] == pytest.approx(104.0)
    assert np.isnan(roof[ALL.index("dtm")])  # no ground there and no interpolation asked
    assert np.isnan(out.values[:, 0, 1]).all()  # an empty cell
    assert list(out["units"].values) == ["m", "m", "m", "DN", "points/m2"] + ["fraction"] * 3 + [
        "m",
        "m",
    ]
    assert out.attrs["points"] == 4


@pytest.fixture(scope="module")
def scene() -> Scene:
    return make_scene(ORIGIN, size=160.0, density=3.0, seed=3)


@pytest.fixture(scope="module")
def scene_files(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scene")
    return {
        "laz": write_las(folder / "scene.laz", scene),
        "copc": write_copc(folder / "scene.copc.laz", scene),
    }


def test_scene_products(scene: Scene, scene_files: dict[str, Path]) -> None:
    grid = GeoBox.from_bbox(
        (ORIGIN[0], ORIGIN[1], ORIGIN[0] + 160, ORIGIN[1] + 160), "EPSG:32612", resolution=2
    )
    out = rasterize_points(scene_files["laz"], grid)
    xs, ys = np.meshgrid(out.x.values, out.y.values)
    truth = scene.ground_height(xs, ys, ORIGIN)
    dtm = out.sel(band="dtm").values
    error = np.abs(dtm - truth)
    roof = (
        (xs - ORIGIN[0] > 42)
        & (xs - ORIGIN[0] < 88)
        & (ys - ORIGIN[1] > 42)
        & (ys - ORIGIN[1] < 78)
    )
    assert np.isfinite(dtm).all()  # filled under the building too (inverse-distance weighting)
    assert np.median(error[~roof]) < 0.01 and error[~roof].max() < 0.05
    assert error[roof].max() < 0.3
    ndsm = out.sel(band="ndsm").values
    assert np.nanmedian(ndsm[roof]) == pytest.approx(12.0, abs=0.1)
    open_ground = (xs - ORIGIN[0] < 30) & (ys - ORIGIN[1] < 30)
    assert np.nanmax(np.abs(ndsm[open_ground])) < 0.05
    assert np.nanmean(out.sel(band="density").values) == pytest.approx(
        len(scene) / 160.0**2 * (1 - 0.001), rel=0.05
    )
    cover = out.sel(band="canopy_cover").values
    trees = out.sel(band="first_return_ratio").values < 1
    assert trees.sum() > 100 and np.nanmedian(cover[trees]) == 1.0  # edge cells are mixed
    assert np.nanmean(cover[roof]) > 0.99 and np.nanmax(cover[open_ground]) == 0.0
    p95 = out.sel(band="height_p95").values
    assert np.nanmean(p95[trees]) > 5.0 and np.all(p95[roof & ~np.isnan(p95)] > 11.5)


def test_streaming_paths_agree(scene_files: dict[str, Path], tmp_path: Path) -> None:
    """In memory, spilled to disk by tile, and COPC bounds queries by tile: the same rasters."""
    grid = GeoBox.from_bbox(
        (ORIGIN[0], ORIGIN[1], ORIGIN[0] + 160, ORIGIN[1] + 160), "EPSG:32612", resolution=0.5
    )
    base = RasterizeOptions(products=ALL, tile_size=256)
    memory = rasterize_points(scene_files["laz"], grid, options=base)
    small = RasterizeOptions(
        products=ALL, tile_size=256, max_points_in_memory=10_000, chunk_points=7_000
    )
    spilled = rasterize_points(scene_files["laz"], grid, options=small)
    copc = rasterize_points(scene_files["copc"], grid, options=small)
    np.testing.assert_array_equal(memory.values, spilled.values)
    np.testing.assert_allclose(memory.values, copc.values, rtol=0, atol=1e-4)
    # the streamed GeoTIFF holds the same values, aligned to the grid
    report = rasterize_to_geotiff(scene_files["copc"], grid, tmp_path / "out.tif", options=small)
    assert report.path is not None and report.tiles == 4 and report.points > 0
    with rasterio.open(report.path) as src:
        assert src.descriptions == ALL
        assert src.tags(1)["units"] == "m" and src.tags(5)["units"] == "points/m2"
        assert src.transform == grid.affine and src.crs.to_epsg() == 32612
        np.testing.assert_allclose(src.read(), copc.values, atol=1e-4)


def test_reprojection_and_feet(scene: Scene, tmp_path: Path) -> None:
    """The scene written in Oregon-style state-plane feet lands where its UTM copy does."""
    import pyproj

    feet_crs = pyproj.CRS("EPSG:2270")  # NAD83 / Oregon South (ft)
    to_feet = pyproj.Transformer.from_crs("EPSG:32612", feet_crs, always_xy=True)
    x, y = to_feet.transform(scene.x, scene.y)
    moved = Scene(
        x,
        y,
        scene.z,
        scene.intensity,
        scene.return_number,
        scene.number_of_returns,
        scene.classification,
    )
    feet = write_las(tmp_path / "feet.las", moved, crs=feet_crs, z_scale=0.3048)
    metres = write_las(tmp_path / "m.las", scene)
    grid = GeoBox.from_bbox(
        (ORIGIN[0], ORIGIN[1], ORIGIN[0] + 160, ORIGIN[1] + 160), "EPSG:32612", resolution=4
    )
    options = RasterizeOptions(products=("dsm", "dtm", "density"))
    a = rasterize_points(feet, grid, options=options)
    b = rasterize_points(metres, grid, options=options)
    both = np.isfinite(a.values) & np.isfinite(b.values)
    assert both.mean() > 0.9
    assert np.nanmedian(np.abs(a.values - b.values)[both]) < 0.01


def test_points_outside_the_grid_warn_and_give_empty(
    scene_files: dict[str, Path], tmp_path: Path
) -> None:
    far = GeoBox.from_bbox((600_000, 4_100_000, 600_100, 4_100_100), "EPSG:32612", resolution=10)
    with pytest.warns(EmptyPointsWarning, match="falls on the grid"):
        out = rasterize_points(scene_files["copc"], far)
    assert np.isnan(out.values).all()
    with pytest.warns(EmptyPointsWarning):
        report = rasterize_to_geotiff(scene_files["laz"], far, tmp_path / "none.tif")
    assert report.path is None and not (tmp_path / "none.tif").exists()


def test_no_ground_class(tmp_path: Path) -> None:
    scene = make_scene(ORIGIN, size=40.0, density=2.0, seed=5)
    scene.classification[scene.classification == GROUND] = 1  # unclassified
    path = write_las(tmp_path / "unclassified.las", scene)
    grid = GeoBox.from_bbox(
        (ORIGIN[0], ORIGIN[1], ORIGIN[0] + 40, ORIGIN[1] + 40), "EPSG:32612", resolution=2
    )
    with pytest.warns(GroundFallbackWarning, match="lowest return"):
        lowest = rasterize_points(path, grid)
    assert np.nanmedian(lowest.sel(band="dtm").values) == pytest.approx(100.6, abs=0.5)
    with pytest.raises(NoDataFoundError, match="dtm_fallback='lowest'"):
        rasterize_points(path, grid, options=RasterizeOptions(dtm_fallback="error"))
    with pytest.warns(GroundFallbackWarning, match="left empty"):
        empty = rasterize_points(path, grid, options=RasterizeOptions(dtm_fallback="none"))
    assert np.isnan(empty.sel(band="ndsm").values).all()
    assert np.isfinite(empty.sel(band="dsm").values).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # classes 1 and 6 as ground: no fallback
        rasterize_points(path, grid, options=RasterizeOptions(ground_classes=(1, BUILDING)))


def test_options_are_validated(scene_files: dict[str, Path]) -> None:
    with pytest.raises(InvalidInputError, match="unknown LiDAR product 'chm'"):
        RasterizeOptions(products=("dsm", "chm"))
    with pytest.raises(InvalidInputError, match="0-100"):
        RasterizeOptions(products=("height_p101",))
    with pytest.raises(InvalidInputError, match="repeat"):
        RasterizeOptions(products=("dsm", "dsm"))
    with pytest.raises(InvalidInputError, match="multiple of 256"):
        RasterizeOptions(tile_size=300)
    with pytest.raises(InvalidInputError, match="dtm_fallback"):
        RasterizeOptions(dtm_fallback="guess")  # type: ignore[arg-type]
    geographic = GeoBox.from_bbox((-112.0, 38.0, -111.9, 38.1), "EPSG:4326", resolution=0.01)
    with pytest.raises(InvalidInputError, match="geographic"):
        rasterize_points(scene_files["laz"], geographic)
    with pytest.raises(InvalidInputError, match="no point cloud given"):
        rasterize_points([], geographic)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 400), st.integers(0, 2**32 - 1))
def test_binning_properties(n: int, seed: int) -> None:
    """For any points: counts add up, DSM bounds every point, percentiles are ordered."""
    rng = np.random.default_rng(seed)
    grid = GeoBox.from_bbox((0, 0, 50, 30), "EPSG:32612", resolution=5)
    chunk = PointChunk(
        x=rng.uniform(-10, 60, n),
        y=rng.uniform(-10, 40, n),
        z=rng.normal(100, 5, n),
        intensity=rng.integers(0, 1000, n).astype(np.uint16),
        return_number=np.ones(n, np.uint8),
        number_of_returns=np.ones(n, np.uint8),
        classification=rng.choice(np.array([1, 2], np.uint8), n),
    )
    options = RasterizeOptions(
        products=("dsm", "density", "height_p10", "height_p90"), dtm_fallback="none"
    )
    out = bin_tile(chunk, grid, options, cell_area_m2=25.0)
    inside = (chunk.x >= 0) & (chunk.x < 50) & (chunk.y > 0) & (chunk.y <= 30)
    assert np.nansum(out["density"]) * 25.0 == pytest.approx(inside.sum())
    if inside.any():
        assert np.nanmax(out["dsm"]) == pytest.approx(chunk.z[inside].max())
    low, high = out["height_p10"], out["height_p90"]
    known = np.isfinite(low)
    assert np.all(low[known] <= high[known] + 1e-9)
