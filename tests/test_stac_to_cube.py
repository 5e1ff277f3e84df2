"""End to end: real STAC items of every provider, served by a real local STAC API, built into cubes.

Each real item's assets point at small local rasters with the shape, transform and CRS the item
declares (support.fake_assets); the metadata stays the real one. The cube grid is the asset's own
grid, so stored values can be compared with the written ones exactly, after each provider's
scale/offset convention.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import xarray as xr
from odc.geo.geom import box
from shapely.geometry import shape
from support.fake_assets import data_window, localize_item
from support.stac_api import REAL_ITEM_FILES, collections_for_items, read_items

from geoalign.cube import ModalityRequest, build_cube
from geoalign.cube_store import open_cube
from geoalign.search import search_items
from geoalign.sensors import get_sensor

# provider key, sensor, bands to load, asset keys to localize, resolution
CASES: list[tuple[str, str, list[str], list[str], float]] = [
    ("pc-sentinel-2-l2a", "sentinel-2-l2a", ["red", "nir"], ["B04", "B08", "SCL"], 10.0),
    ("es-sentinel-2-l2a", "sentinel-2-l2a", ["red", "nir"], ["red", "nir", "scl"], 10.0),
    ("pc-sentinel-1-rtc", "sentinel-1-rtc", ["vv", "vh"], ["vv", "vh"], 10.0),
    ("pc-naip", "naip", ["red", "green", "blue", "nir"], ["image"], 0.6),
    ("pc-3dep-lidar-dsm", "3dep-lidar-dsm", ["dsm"], ["data"], 2.0),
]


@pytest.fixture(scope="module")
def served(
    shared_data: Path,
    stac_api: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Any]]:
    """One localized real item per provider, loaded into the local STAC API."""
    folder = tmp_path_factory.mktemp("assets")
    chosen: dict[str, dict[str, Any]] = {}
    for key, _sensor, _bands, assets, _res in CASES:
        items = read_items(shared_data / REAL_ITEM_FILES[key])
        for item in items:
            if not all(a in item.get("assets", {}) for a in assets):
                continue
            # NAIP declares no data type; its COGs are uint8
            dtype = "uint8" if key == "pc-naip" else "uint16"
            local = localize_item(
                item, folder / key, assets=assets, window=256, default_dtype=dtype
            )
            # the centred data window must lie inside the item's footprint (tiles on a swath
            # edge are partly empty), as the search intersects with the real geometry
            aoi, _, _ = _window_geometry(local, assets[0])
            if shape(item["geometry"]).contains(aoi.to_crs("EPSG:4326").geom):
                chosen[key] = local
                if "SCL" in assets or "scl" in assets:
                    _write_scene_classes(local["assets"][assets[-1]]["href"])
                break
        assert key in chosen, f"no {key} item whose centre lies inside its footprint"
    stac_api.reset()
    stac_api.load_collections(collections_for_items(list(chosen.values()), shared_data))
    stac_api.load_items(list(chosen.values()))
    return chosen


def _write_scene_classes(path: str) -> None:
    """Overwrite a localized SCL window with blocks of every scene class 0..11 (seeded)."""
    window = data_window(path)
    rng = np.random.default_rng(7)
    blocks = rng.integers(0, 12, size=(window.height // 8 + 1, window.width // 8 + 1))
    classes = np.kron(blocks, np.ones((8, 8), dtype=np.int64))[: window.height, : window.width]
    with rasterio.open(path, "r+") as dst:
        dst.write(classes.astype(dst.dtypes[0])[np.newaxis], window=window)


def _window_geometry(item: dict[str, Any], asset: str) -> tuple[Any, Any, tuple[float, float]]:
    """The data window of a localized asset as a geometry in its CRS, and the grid origin."""
    path = item["assets"][asset]["href"]
    window = data_window(path)
    with rasterio.open(path) as src:
        bounds = rasterio.windows.bounds(window, src.transform)
        crs = src.crs.to_wkt()
        origin = (src.transform.c, src.transform.f)
    return box(*bounds, crs), crs, origin


def _interval(item: dict[str, Any]) -> str:
    props = item["properties"]
    when = props.get("datetime") or props.get("start_datetime")
    start = dt.datetime.fromisoformat(str(when).replace("Z", "+00:00").replace(" ", "T"))
    end = start + dt.timedelta(days=400)
    return f"{(start - dt.timedelta(hours=1)).isoformat()}/{end.isoformat()}"


def _clear_sky(scl_path: str, stored: xr.Dataset, resolution: float, sensor: str) -> np.ndarray:
    """Expected clear-sky mask on the cube grid, from the written 20 m SCL file (read directly)."""
    height, width = stored.sizes["y"], stored.sizes["x"]
    with rasterio.open(scl_path) as src:
        factor = int(round(src.transform.a / resolution))  # 2 for a 10 m cube
        col = int(round((float(stored.x[0]) - resolution / 2 - src.transform.c) / resolution))
        row = int(round((src.transform.f - float(stored.y[0]) - resolution / 2) / resolution))
        r0, c0 = row // factor, col // factor
        r1, c1 = (row + height - 1) // factor + 1, (col + width - 1) // factor + 1
        coarse = src.read(1, window=((r0, r1), (c0, c1)))
    fine = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    fine = fine[row - r0 * factor :, col - c0 * factor :][:height, :width]
    mask = get_sensor(sensor).mask
    assert mask is not None
    result: np.ndarray = ~mask.is_invalid(fine)
    return result


@pytest.mark.parametrize(
    ("key", "sensor", "bands", "assets", "resolution"), CASES, ids=[c[0] for c in CASES]
)
def test_real_items_searched_through_the_api_build_exact_cubes(
    served: dict[str, dict[str, Any]],
    stac_api: Any,
    tmp_path: Path,
    key: str,
    sensor: str,
    bands: list[str],
    assets: list[str],
    resolution: float,
) -> None:
    item = served[key]
    aoi, crs, origin = _window_geometry(item, assets[0])
    found = search_items(
        stac_api.url, aoi=aoi, collections=[item["collection"]], datetime=_interval(item)
    )
    assert item["id"] in [i.id for i in found]
    chosen = [i for i in found if i.id == item["id"]]
    use_mask = key.endswith("sentinel-2-l2a")
    out = build_cube(
        tmp_path / f"{key}.zarr",
        [ModalityRequest("m", sensor, chosen, resolution, bands=bands, mask_clouds=use_mask)],
        aoi=aoi,
        crs=crs,
        origin=origin,
    )
    tree = open_cube(out)
    decoded = tree["m"]["data"].isel(time=0)
    stored = xr.open_zarr(str(out), group="m", mask_and_scale=False, consolidated=False)
    sources = get_sensor(sensor).band_sources(chosen[0], bands)
    clear: np.ndarray | None = None
    if use_mask:
        clear = _clear_sky(chosen[0].assets[assets[-1]].href, stored, resolution, sensor)
    for source in sources:
        with rasterio.open(source.href) as src:
            window = data_window(source.href)
            truth = src.read(source.index, window=window)
        physical = source.decode(truth, dtype=np.float64)
        cube = decoded.sel(band=source.band).values.astype(np.float64)
        assert cube.shape == truth.shape
        if clear is not None:
            assert 0.05 < clear.mean() < 0.95  # the written SCL has clear and cloudy classes
            physical = np.where(clear, physical, np.nan)
        np.testing.assert_allclose(cube, physical, rtol=1e-6, atol=1e-6, equal_nan=True)
    # provenance names the real item and its (local) hrefs
    assert item["id"] in tree["m"].attrs["items"]
