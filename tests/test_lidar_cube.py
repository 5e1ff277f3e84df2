"""Point clouds in the cube: the real 3DEP COPC items (compound CRS in ``proj:projjson``,
``datetime: null``) searched in a local catalog and in a real STAC API, and built into a cube
whose bands are LiDAR products; items that fail; options and the GeoTIFF cache."""

from __future__ import annotations

import copy
import json
import struct
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import pandas as pd
import pystac
import pytest
import rasterio
from odc.geo.geobox import GeoBox
from odc.geo.geom import box
from rasterio.windows import Window
from support.lidar_files import make_scene, write_copc
from support.stac_api import REAL_ITEM_FILES, collection_for_items, read_items

from geoalign.cube import ModalityRequest, build_cube, plan_cube
from geoalign.cube_store import open_cube
from geoalign.errors import CorruptDataError, DataFileNotFoundError
from geoalign.lidar import DEFAULT_PRODUCTS, LidarRequest, RasterizeOptions, rasterize_points
from geoalign.search import search_items

#: Two adjacent 3DEP tiles (UTM 12N); the AOI straddles their seam at northing 4221000.
TILES = (
    "USGS_LPC_UT_StatewideSouth_2020_A20_12SUH7021",
    "USGS_LPC_UT_StatewideSouth_2020_A20_12SUH7020",
)
AOI = box(370000, 4220900, 370080, 4221100, "EPSG:26912")
#: The building of the scene written for the northern tile (offsets from its origin, m).
ROOF = (10.0, 20.0, 50.0, 60.0)


@pytest.fixture(scope="module")
def items(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The real items, their ``data`` asset pointing at small local COPC files of their extent.

    The northern file has no CRS VLR (the item's compound ``proj:projjson`` is used); the
    southern one declares NAD83 / UTM 12N + NAVD88 height in a WKT VLR.
    """
    folder = tmp_path_factory.mktemp("3dep")
    real = {i["id"]: i for i in read_items(shared_data / REAL_ITEM_FILES["pc-3dep-lidar-copc"])}
    local = []
    for index, item_id in enumerate(TILES):
        item = copy.deepcopy(real[item_id])
        assert item["properties"]["datetime"] is None and "proj:projjson" in item["properties"]
        x0, y0, _, x1, y1, _ = item["properties"]["proj:bbox"]
        scene = make_scene(
            (x0, y0), size=(x1 - x0, min(y1 - y0, 300.0)), density=0.5, seed=index, building=ROOF
        )
        if index == 1:  # the southern tile: only its northern 300 m, next to the seam
            scene = make_scene(
                (x0, y1 - 300.0), size=(x1 - x0, 300.0), density=0.5, seed=index, building=ROOF
            )
        crs = None if index == 0 else "EPSG:26912+5703"
        path = write_copc(folder / f"{item_id}.copc.laz", scene, crs=crs)
        item["assets"]["data"]["href"] = str(path)
        local.append(item)
    return local


@pytest.fixture(scope="module")
def catalog(items: list[dict[str, Any]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("catalog") / "items.json"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": items}))
    return path


def _check_cube(store: Path, products: tuple[str, ...] = DEFAULT_PRODUCTS) -> None:
    tree = open_cube(store)
    ds = tree["lidar"].to_dataset()
    assert list(ds["band"].values) == list(products)
    assert ds.attrs["sensor_kind"] == "lidar_points"
    # datetime null: the item time is the middle of its 2020 interval
    assert list(ds["time"].values) == [np.datetime64(pd.Timestamp("2020-07-01T12:00:00"))]
    provenance = json.loads(ds.attrs["items"])
    assert sorted(p["id"] for p in provenance) == sorted(TILES)
    assert all("NAVD88" in p["crs"] for p in provenance)
    data = ds["data"].isel(time=0)
    valid = ds["valid"].isel(time=0).values
    north = ds["y"].values > 4221000
    assert valid[north].mean() > 0.8 and valid[~north].mean() > 0.8  # both tiles
    if "ndsm" in products:
        xs, ys = np.meshgrid(ds["x"].values - 370000.0, ds["y"].values - 4221000.0)
        roof = (xs > ROOF[0] + 2) & (xs < ROOF[2] - 2) & (ys > ROOF[1] + 2) & (ys < ROOF[3] - 2)
        assert np.nanmedian(data.sel(band="ndsm").values[roof]) == pytest.approx(12.0, abs=0.2)
    units = dict(zip(ds["band"].values, ds["units"].values, strict=True))
    assert units["dsm"] == "m" and units.get("density", "points/m2") == "points/m2"


def test_3dep_items_through_local_search_and_cube(
    catalog: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEOALIGN_CACHE_DIR", str(tmp_path / "cache"))
    found = search_items(catalog, aoi=AOI, datetime="2020-06-01/2020-06-30")
    assert sorted(i.id for i in found) == sorted(TILES)
    store = build_cube(
        tmp_path / "cube.zarr",
        [ModalityRequest("lidar", "3dep-lidar-copc", list(found), 2.0)],
        aoi=AOI,
        crs="EPSG:26912",
    )
    _check_cube(store)
    assert len(list((tmp_path / "cache" / "lidar").glob("*.tif"))) == 1  # one per time step


def test_3dep_items_served_by_a_stac_api(
    stac_api: Any, shared_data: Path, items: list[dict[str, Any]], tmp_path: Path
) -> None:
    stac_api.load_collections([collection_for_items("3dep-lidar-copc", items, shared_data)])
    stac_api.load_items(items)
    found = search_items(
        stac_api.url, aoi=AOI, collections=["3dep-lidar-copc"], datetime="2020-06-01/2020-06-30"
    )
    assert sorted(i.id for i in found) == sorted(TILES)
    products = ("dsm", "ndsm", "density", "height_p95")
    request = LidarRequest(
        "lidar", "3dep-lidar-copc", list(found), 2.0, bands=products, cache_dir=tmp_path / "cache"
    )
    store = build_cube(tmp_path / "api.zarr", [request], aoi=AOI, crs="EPSG:26912")
    _check_cube(store, products)


def test_options_cache_and_failing_items(
    catalog: Path, items: list[dict[str, Any]], tmp_path: Path
) -> None:
    found = list(search_items(catalog, aoi=AOI))
    options = RasterizeOptions(products=("dsm", "density"), max_points_in_memory=20_000)
    request = LidarRequest(
        "lidar", "3dep-lidar-copc", found, 4.0, options=options, cache_dir=tmp_path
    )
    plan = plan_cube([request], aoi=AOI, crs="EPSG:26912")
    assert plan.modalities["lidar"].band_names == ("dsm", "density")
    (cached,) = tmp_path.glob("*.tif")
    stamp = cached.stat().st_mtime_ns
    plan_cube([request], aoi=AOI, crs="EPSG:26912")  # planned again: the raster is reused
    assert [p.stat().st_mtime_ns for p in tmp_path.glob("*.tif")] == [stamp]
    # a missing point cloud: refused with the fix, or skipped and recorded
    broken = copy.deepcopy(items[0])
    broken["assets"]["data"]["href"] = str(tmp_path / "gone.copc.laz")
    items_with_broken = [
        pystac.Item.from_dict(broken),
        found[1] if found[0].id == TILES[0] else found[0],
    ]
    failing = LidarRequest(
        "lidar", "3dep-lidar-copc", items_with_broken, 4.0, options=options, cache_dir=tmp_path
    )
    with pytest.raises(DataFileNotFoundError, match="on_error='skip'"):
        plan_cube([failing], aoi=AOI, crs="EPSG:26912")
    skipped = plan_cube([failing], aoi=AOI, crs="EPSG:26912", on_error="skip")
    assert [s["item"] for s in skipped.skipped["lidar"]] == [TILES[0]]
    assert "does not exist" in skipped.skipped["lidar"][0]["reason"]
    # cut off: refused when opened; garbled: found while rasterizing, and the group is
    # rasterized again without the file
    data = Path(items[0]["assets"]["data"]["href"]).read_bytes()
    truncated = tmp_path / "truncated.copc.laz"
    truncated.write_bytes(data[: len(data) // 2])
    # garbled: the octree's root node announces 50 times the points its bytes hold
    root = laspy.CopcReader.open(items[0]["assets"]["data"]["href"]).copc_info
    entry = bytearray(data)
    count = struct.unpack_from("<i", entry, root.hierarchy_root_offset + 28)[0]
    struct.pack_into("<i", entry, root.hierarchy_root_offset + 28, count * 50)
    garbled = tmp_path / "garbled.copc.laz"
    garbled.write_bytes(bytes(entry))
    other = items_with_broken[1]
    for bad, reason in ((truncated, "is truncated"), (garbled, "truncated or corrupt")):
        broken["assets"]["data"]["href"] = str(bad)
        cut = LidarRequest(
            "lidar",
            "3dep-lidar-copc",
            [pystac.Item.from_dict(broken), other],
            4.0,
            options=options,
            cache_dir=tmp_path / "cut",
        )
        with pytest.raises(CorruptDataError, match="on_error='skip'"):
            plan_cube([cut], aoi=AOI, crs="EPSG:26912")
        kept = plan_cube([cut], aoi=AOI, crs="EPSG:26912", on_error="skip")
        assert [s["item"] for s in kept.skipped["lidar"]] == [TILES[0]]
        assert reason in kept.skipped["lidar"][0]["reason"]
        assert kept.modalities["lidar"].groups[0][0].item_id == other.id
    assert not list((tmp_path / "cut").glob("*.partial"))


def test_derived_raster_or_raw_points_for_the_same_layer(shared_data: Path, tmp_path: Path) -> None:
    """The real 3DEP DSM item (a COG sensor) and raw points of the same place give one layer.

    The item's GeoTIFF is written, on the grid it declares, from the points' own DSM; a cube
    with both modalities holds the same values whichever the user picks.
    """
    dsm_item = read_items(shared_data / REAL_ITEM_FILES["pc-3dep-lidar-dsm"])[0]
    props = dsm_item["properties"]
    full = GeoBox(
        tuple(props["proj:shape"]), rasterio.Affine(*props["proj:transform"][:6]), "EPSG:26911"
    )
    window = full[1000:1100, 1000:1100]  # 200 m x 200 m inside the tile
    left, bottom, right, top = window.extent.boundingbox
    scene = make_scene((left, bottom), size=200.0, density=1.0, seed=9, building=ROOF)
    cloud = write_copc(tmp_path / "points.copc.laz", scene, crs="EPSG:26911+5703")
    dsm = rasterize_points(cloud, window, options=RasterizeOptions(products=("dsm",)))
    raster = tmp_path / "dsm.tif"
    with rasterio.open(
        raster,
        "w",
        driver="GTiff",
        width=full.shape.x,
        height=full.shape.y,
        count=1,
        dtype="float32",
        nodata=float("nan"),
        crs="EPSG:26911",
        transform=full.affine,
        tiled=True,
        sparse_ok=True,
    ) as dst:
        dst.write(dsm.values, window=Window(1000, 1000, 100, 100))
    dsm_item["assets"]["data"]["href"] = str(raster)
    points_item = pystac.Item(
        id="points",
        geometry=window.extent.to_crs("EPSG:4326").json,
        bbox=list(window.extent.to_crs("EPSG:4326").boundingbox),
        datetime=pd.Timestamp("2020-07-01T00:00:00Z").to_pydatetime(),
        properties={},
    )
    points_item.add_asset(
        "data", pystac.Asset(str(cloud), media_type="application/vnd.laszip+copc")
    )
    aoi = box(left, bottom, right, top, "EPSG:26911")
    store = build_cube(
        tmp_path / "both.zarr",
        [
            ModalityRequest("derived", "3dep-lidar-dsm", [pystac.Item.from_dict(dsm_item)], 2.0),
            LidarRequest(
                "raw", "lidar-points", [points_item], 2.0, bands=["dsm"], cache_dir=tmp_path
            ),
        ],
        aoi=aoi,
        crs="EPSG:26911",
        origin=(full.affine.c, full.affine.f),
    )
    tree = open_cube(store)
    derived = tree["derived"]["data"].isel(time=0).sel(band="dsm").values
    raw = tree["raw"]["data"].isel(time=0).sel(band="dsm").values
    assert derived.shape == raw.shape == (100, 100)
    np.testing.assert_array_equal(derived, raw)
    assert np.isfinite(raw).mean() > 0.8
