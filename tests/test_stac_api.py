"""The local STAC API fixture and the fake assets, proven with real STAC items of several providers.

Expected results are computed here, from the loaded items, independently of the server: a bbox
search against shapely intersections, a datetime search against the items' time spans, and so on.
"""

from __future__ import annotations

import json
import math
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from pystac_client import Client
from rasterio.crs import CRS
from rasterio.windows import Window
from shapely.geometry import box, shape
from support.fake_assets import (
    MissingGeometryError,
    data_window,
    declared_raster,
    expected_data,
    localize_item,
)
from support.stac_api import (
    LocalStacApi,
    PostgresInstall,
    StacApiError,
    item_interval,
    load_real_items,
    read_items,
)

#: Planetary Computer (PC) and Earth Search (ES) items: S2, S1, NAIP and 3DEP, loaded together.
SOURCES = (
    "pc-sentinel-2-l2a",
    "pc-sentinel-2-l2a-geoparquet",
    "es-sentinel-2-l2a",
    "es-sentinel-2-c1-l2a",
    "pc-sentinel-1-rtc",
    "es-sentinel-1-grd",
    "pc-naip",
    "pc-naip-geoparquet",
    "naip-geoparquet",
    "pc-3dep-lidar-dsm",
    "pc-3dep-lidar-copc",
)
#: Real NAIP items read from the 10,000 of the stac-geoparquet file (enough for many pages).
NAIP_PARQUET_ITEMS = 150


@dataclass(frozen=True)
class Loaded:
    """What the module loaded into the API."""

    by_source: dict[str, list[dict[str, Any]]]

    @property
    def items(self) -> list[dict[str, Any]]:
        return [item for items in self.by_source.values() for item in items]

    def ids(self, predicate: Callable[[dict[str, Any]], bool] | None = None) -> set[str]:
        return {item["id"] for item in self.items if predicate is None or predicate(item)}


@pytest.fixture(scope="module")
def loaded(stac_api: LocalStacApi, shared_data: Path) -> Loaded:
    stac_api.reset()
    by_source = load_real_items(
        stac_api, shared_data, SOURCES, limits={"naip-geoparquet": NAIP_PARQUET_ITEMS}
    )
    result = Loaded(by_source)
    assert len(result.ids()) == len(result.items), "item ids must be unique across sources"
    return result


@pytest.fixture(scope="module")
def client(stac_api: LocalStacApi, loaded: Loaded) -> Client:
    del loaded
    client = Client.open(stac_api.url)
    # stac-fastapi 7 advertises ".../v1.1.0/item-search#sort"; pystac-client 0.9 only recognises
    # v1.0.*, warns DoesNotConformTo("SORT") and sends sortby anyway. Declare what the server does.
    client.add_conforms_to("SORT")
    return client


def _ids(search: Any) -> list[str]:
    return [item["id"] for item in search.items_as_dicts()]


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


# --------------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------------


def _listening_addresses(port: int) -> set[str]:
    """Addresses (as hex, from /proc/net/tcp*) on which something listens on ``port``."""
    found = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_server_is_private_and_quick(stac_api: LocalStacApi) -> None:
    assert stac_api.url.startswith("http://127.0.0.1:")
    assert stac_api.startup_seconds < 30
    if Path("/proc/net/tcp").exists():  # Linux: both listen on 127.0.0.1 (0100007F) only
        assert _listening_addresses(stac_api.api_port) == {"0100007F"}
        assert _listening_addresses(stac_api.pg_port) == {"0100007F"}
    landing = _get_json(stac_api.url + "/")
    conforms = " ".join(landing["conformsTo"])
    for extension in ("item-search", "filter", "sort", "query", "cql2-text", "cql2-json"):
        assert extension in conforms


def test_start_failure_cleans_up(tmp_path: Path) -> None:
    """A failed start raises a clear error and leaves no directory or process behind."""
    base = tmp_path / "base"
    base.mkdir()
    broken = PostgresInstall(bindir=tmp_path / "no-such-bin", sharedir=tmp_path)
    api = LocalStacApi(install=broken, base_dir=base)
    with pytest.raises(StacApiError):
        api.start()
    assert list(base.iterdir()) == []
    with pytest.raises(StacApiError, match="not running"):
        _ = api.url


def _as_pgstac_stores(value: Any) -> Any:
    """What pypgstac keeps of a value: it drops null values and empty lists from objects."""
    if isinstance(value, dict):
        return {k: _as_pgstac_stores(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_as_pgstac_stores(v) for v in value]
    return value


def test_all_loaded_and_real_items_round_trip(stac_api: LocalStacApi, loaded: Loaded) -> None:
    """Served items are the loaded ones, except for the nulls and empty lists pypgstac drops.

    That includes ``"datetime": null`` of items with a start/end range (3DEP): a client of this
    API sees no ``datetime`` key at all for them.
    """
    collections = _get_json(stac_api.url + "/collections")["collections"]
    assert {c["id"] for c in collections} == {item["collection"] for item in loaded.items}
    for source, items in loaded.by_source.items():
        item = items[-1]
        url = f"{stac_api.url}/collections/{item['collection']}/items/{item['id']}"
        served = _get_json(url)
        for key in ("properties", "assets", "bbox", "stac_extensions"):
            assert served.get(key) == _as_pgstac_stores(item).get(key), (source, key)
        assert shape(served["geometry"]).equals_exact(shape(item["geometry"]), 1e-7), source
    dsm = loaded.by_source["pc-3dep-lidar-dsm"][0]
    served = _get_json(f"{stac_api.url}/collections/3dep-lidar-dsm/items/{dsm['id']}")
    assert dsm["properties"]["datetime"] is None and "datetime" not in served["properties"]


def test_reloading_upserts(stac_api: LocalStacApi, client: Client, loaded: Loaded) -> None:
    items = loaded.by_source["pc-sentinel-1-rtc"]
    stac_api.load_items(items)
    assert sorted(_ids(client.search(collections=["sentinel-1-rtc"]))) == sorted(
        item["id"] for item in items
    )


def test_load_items_needs_their_collection(stac_api: LocalStacApi, shared_data: Path) -> None:
    items = read_items(shared_data / "stac/stac-geoparquet/cop-dem-glo-30-pc.json")
    with pytest.raises(StacApiError, match="cop-dem-glo-30"):
        stac_api.load_items(items)


# --------------------------------------------------------------------------------------------------
# Searching with pystac-client
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bbox",
    [
        (-114.06, 38.10, -113.97, 38.16),  # a 3DEP tile in Utah
        (-104.0, 40.0, -102.0, 41.0),  # NAIP in Colorado
        (170.0, 55.0, 180.0, 60.0),  # Sentinel-2 in Kamchatka
    ],
)
def test_bbox(client: Client, loaded: Loaded, bbox: tuple[float, float, float, float]) -> None:
    area = box(*bbox)
    expected = loaded.ids(lambda item: shape(item["geometry"]).intersects(area))
    assert 0 < len(expected) < len(loaded.items)
    found = _ids(client.search(bbox=list(bbox), limit=100))
    assert sorted(found) == sorted(expected)


@pytest.mark.parametrize(
    "interval",
    [
        "2022-06-01T00:00:00Z/2022-07-15T00:00:00Z",
        "../2016-12-31T23:59:59Z",
        "2020-06-01T00:00:00Z/2020-06-30T00:00:00Z",  # inside the span of 3DEP items
    ],
)
def test_datetime(client: Client, loaded: Loaded, interval: str) -> None:
    start_text, end_text = interval.split("/")
    low = datetime.min.replace(tzinfo=UTC) if start_text == ".." else _utc(start_text)
    high = _utc(end_text)

    def overlaps(item: dict[str, Any]) -> bool:
        start, end = item_interval(item)
        return start <= high and end >= low

    expected = loaded.ids(overlaps)
    assert 0 < len(expected) < len(loaded.items)
    assert sorted(_ids(client.search(datetime=interval, limit=100))) == sorted(expected)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_collections(client: Client, loaded: Loaded) -> None:
    wanted = {"sentinel-1-rtc", "sentinel-1-grd"}
    expected = loaded.ids(lambda item: item["collection"] in wanted)
    assert len(expected) == 7
    assert sorted(_ids(client.search(collections=sorted(wanted)))) == sorted(expected)


def test_query_extension(client: Client, loaded: Loaded) -> None:
    expected = loaded.ids(
        lambda item: (
            item["collection"] in {"sentinel-2-l2a", "sentinel-2-c1-l2a"}
            and item["properties"]["eo:cloud_cover"] < 40
        )
    )
    assert 0 < len(expected) < 30
    search = client.search(
        collections=["sentinel-2-l2a", "sentinel-2-c1-l2a"],
        query={"eo:cloud_cover": {"lt": 40}},
        limit=100,
    )
    assert sorted(_ids(search)) == sorted(expected)


def _s2_clear(item: dict[str, Any]) -> bool:
    return item["collection"] == "sentinel-2-l2a" and item["properties"]["eo:cloud_cover"] < 40


# pystac-client sends a filter as given when the method suits its language (cql2-json by POST,
# cql2-text by GET) and converts it otherwise; these cases make the server parse both languages.
@pytest.mark.parametrize(
    ("cql2", "method"),
    [
        (
            {
                "op": "and",
                "args": [
                    {"op": "=", "args": [{"property": "collection"}, "sentinel-2-l2a"]},
                    {"op": "<", "args": [{"property": "eo:cloud_cover"}, 40]},
                ],
            },
            "POST",
        ),
        ("collection = 'sentinel-2-l2a' AND eo:cloud_cover < 40", "GET"),
    ],
    ids=["cql2-json", "cql2-text"],
)
def test_filter_extension(
    client: Client, loaded: Loaded, cql2: dict[str, Any] | str, method: str
) -> None:
    expected = loaded.ids(_s2_clear)
    assert 0 < len(expected) < 30
    search = client.search(filter=cql2, method=method, limit=100)
    assert search.get_parameters()["filter"] == cql2  # sent as written, not converted
    assert sorted(_ids(search)) == sorted(expected)


def test_filter_spatial_and_string(client: Client, loaded: Loaded) -> None:
    """cql2-text with a spatial predicate and a provider-specific property."""
    area = box(-107.0, 40.5, -104.0, 41.5)
    expected = loaded.ids(
        lambda item: (
            item["properties"].get("naip:state") == "wy"
            and shape(item["geometry"]).intersects(area)
        )
    )
    assert 0 < len(expected) < 100
    text = f"\"naip:state\" = 'wy' AND S_INTERSECTS(geometry, {area.wkt})"
    search = client.search(filter=text, method="GET", limit=100)
    assert sorted(_ids(search)) == sorted(expected)


@pytest.mark.parametrize("descending", [False, True])
def test_sortby(client: Client, loaded: Loaded, descending: bool) -> None:
    collections = ["sentinel-2-l2a", "sentinel-2-c1-l2a"]
    sign = "-" if descending else "+"
    # A small page size, so that the order must also hold across pages.
    search = client.search(collections=collections, sortby=f"{sign}eo:cloud_cover", limit=15)
    found = list(search.items_as_dicts())
    covers = [item["properties"]["eo:cloud_cover"] for item in found]
    assert covers == sorted(covers, reverse=descending)
    assert covers[0] != covers[-1]
    assert {item["id"] for item in found} == loaded.ids(lambda i: i["collection"] in collections)


@pytest.mark.parametrize("descending", [False, True])
def test_sortby_datetime(client: Client, descending: bool) -> None:
    sign = "-" if descending else "+"
    search = client.search(collections=["naip"], sortby=f"{sign}properties.datetime", limit=50)
    times = [_utc(item["properties"]["datetime"]) for item in search.items_as_dicts()]
    assert times == sorted(times, reverse=descending)
    assert times[0] != times[-1]


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_paging(client: Client, loaded: Loaded, method: str) -> None:
    expected = loaded.ids(lambda item: item["collection"] == "naip")
    assert len(expected) > NAIP_PARQUET_ITEMS
    limit = 40
    search = client.search(collections=["naip"], limit=limit, method=method)
    pages = list(search.pages_as_dicts())
    assert len(pages) == math.ceil(len(expected) / limit)
    assert all(len(page["features"]) <= limit for page in pages)
    found = [item["id"] for page in pages for item in page["features"]]
    assert len(found) == len(set(found)), "an item came twice"
    assert set(found) == expected
    assert search.matched() == len(expected)


# --------------------------------------------------------------------------------------------------
# Local rasters for real items
# --------------------------------------------------------------------------------------------------


def _first_item(shared_data: Path, relative: str) -> dict[str, Any]:
    return read_items(shared_data / "stac" / relative)[0]


def _check_local_raster(
    item: dict[str, Any],
    local: dict[str, Any],
    key: str,
    *,
    crs: CRS,
    transform: Affine,
    shape: tuple[int, int],
    count: int,
    dtype: str,
    nodata: float | None,
) -> None:
    """The local file has the declared grid, and data exactly in its data window."""
    path = Path(local["assets"][key]["href"])
    assert path.is_absolute() and path.is_file()
    assert path.stat().st_size < 3_000_000
    with rasterio.open(path) as src:
        assert pyproj.CRS.from_wkt(src.crs.to_wkt()) == pyproj.CRS.from_wkt(crs.to_wkt())
        assert src.transform.almost_equals(transform, precision=1e-9)
        assert (src.height, src.width) == shape
        assert src.count == count
        assert src.dtypes[0] == dtype
        assert src.nodata == nodata or (
            nodata is not None and math.isnan(nodata) and math.isnan(src.nodata)
        )
        window = data_window(path)
        values = src.read(window=window)
        corner = src.read(1, window=Window(0, 0, 1, 1))[0, 0]
    assert (window.height, window.width) == (min(512, shape[0]), min(512, shape[1]))
    assert (window.row_off, window.col_off) == (
        (shape[0] - window.height) // 2,
        (shape[1] - window.width) // 2,
    )
    raster = declared_raster(item, key)
    np.testing.assert_array_equal(values, expected_data(item["id"], key, raster, window))
    assert len(np.unique(values[0])) > 100, "data must vary in space"
    if nodata is not None and not math.isnan(nodata):
        assert not (values == nodata).any()
    fill = 0 if nodata is None else nodata
    assert corner == fill or (math.isnan(fill) and math.isnan(corner))


def _without_hrefs(item: dict[str, Any]) -> dict[str, Any]:
    copy = json.loads(json.dumps(item))
    for asset in copy["assets"].values():
        asset.pop("href")
    return copy


def test_localize_planetary_computer_sentinel2(shared_data: Path, tmp_path: Path) -> None:
    """proj:epsg at item level, proj:shape and 6-number proj:transform per asset, no dtype."""
    item = _first_item(shared_data, "extracted/planetarycomputer__sentinel-2-l2a.json")
    local = localize_item(item, tmp_path, assets=["B04", "B01", "SCL"])
    assert _without_hrefs(local) == _without_hrefs(item)
    assert local["assets"]["B02"]["href"] == item["assets"]["B02"]["href"]
    for key in ("B04", "B01", "SCL"):
        asset = item["assets"][key]
        assert len(asset["proj:transform"]) == 6
        _check_local_raster(
            item,
            local,
            key,
            crs=CRS.from_epsg(item["properties"]["proj:epsg"]),
            transform=Affine(*asset["proj:transform"]),
            shape=tuple(asset["proj:shape"]),
            count=1,
            dtype="uint16",  # not declared by Planetary Computer: the default
            nodata=None,
        )


def test_localize_earth_search_c1(shared_data: Path, tmp_path: Path) -> None:
    """Earth Search collection 1: raster:bands with uint16 and nodata 0.

    Its recorded items declare ``proj:epsg`` (projection v1.1); ``proj:code`` is exercised with
    the STAC 1.1 examples below.
    """
    item = _first_item(shared_data, "extracted/earth-search__sentinel-2-c1-l2a.json")
    local = localize_item(item, tmp_path, assets=["red", "scl"])
    for key in ("red", "scl"):
        asset = item["assets"][key]
        _check_local_raster(
            item,
            local,
            key,
            crs=CRS.from_epsg(item["properties"]["proj:epsg"]),
            transform=Affine(*asset["proj:transform"]),
            shape=tuple(asset["proj:shape"]),
            count=1,
            dtype=asset["raster:bands"][0]["data_type"],
            nodata=asset["raster:bands"][0]["nodata"],
        )


def test_localize_3dep_dsm(shared_data: Path, tmp_path: Path) -> None:
    """Compound CRS in proj:projjson (proj:epsg null), 9-number transform, float32 nodata "nan"."""
    item = _first_item(shared_data, "stac-geoparquet/3dep-lidar-dsm-pc.json")
    props = item["properties"]
    assert props["proj:epsg"] is None and len(props["proj:transform"]) == 9
    local = localize_item(item, tmp_path)
    assert list(local["assets"]) == list(item["assets"])
    assert local["assets"]["thumbnail"] == item["assets"]["thumbnail"]
    _check_local_raster(
        item,
        local,
        "data",
        crs=CRS.from_wkt(pyproj.CRS.from_json_dict(props["proj:projjson"]).to_wkt()),
        transform=Affine(*props["proj:transform"][:6]),
        shape=tuple(props["proj:shape"]),
        count=1,
        dtype="float32",
        nodata=float("nan"),
    )


def test_localize_proj_code_and_stac_1_1_bands(shared_data: Path, tmp_path: Path) -> None:
    """STAC 1.1 example: proj:code, item-level 9-number transform, 4 ``bands`` on one asset."""
    item = _first_item(shared_data, "stac-spec/examples/extended-item.json")
    props = item["properties"]
    local = localize_item(item, tmp_path, assets=["analytic"], window=(300, 200))
    path = local["assets"]["analytic"]["href"]
    with rasterio.open(path) as src:
        assert src.crs == CRS.from_user_input(props["proj:code"])
        assert src.transform == Affine(*props["proj:transform"][:6])
        assert (src.height, src.width) == tuple(props["proj:shape"])
        assert src.count == len(item["assets"]["analytic"]["bands"]) == 4
        bands = src.read(window=data_window(path))
    assert bands.shape == (4, 300, 200)
    assert all(not np.array_equal(bands[0], bands[b]) for b in (1, 2, 3))


def test_localize_asset_overrides_item(shared_data: Path, tmp_path: Path) -> None:
    """Asset-level proj:shape/proj:transform (a 15 m band) win over the item's 30 m grid."""
    item = _first_item(
        shared_data, "stac-spec/examples/extensions-collection/proj-example/proj-example.json"
    )
    local = localize_item(item, tmp_path, assets=["B1", "B8"])
    with rasterio.open(local["assets"]["B8"]["href"]) as b8:
        assert b8.res == (15.0, 15.0)
        assert (b8.height, b8.width) == tuple(item["assets"]["B8"]["proj:shape"])
        assert b8.crs == CRS.from_epsg(32614)
    with rasterio.open(local["assets"]["B1"]["href"]) as b1:
        assert b1.res == (30.0, 30.0)
        assert (b1.height, b1.width) == tuple(item["properties"]["proj:shape"])


def test_localize_missing_geometry_raises(shared_data: Path, tmp_path: Path) -> None:
    item = _first_item(shared_data, "stac-geoparquet/3dep-lidar-copc-pc.json")  # a point cloud
    with pytest.raises(MissingGeometryError, match="proj:shape"):
        localize_item(item, tmp_path, assets=["data"])
    with pytest.raises(KeyError, match="nope"):
        localize_item(item, tmp_path, assets=["nope"])


def test_localized_item_served_and_read(
    stac_api: LocalStacApi, client: Client, loaded: Loaded, tmp_path: Path
) -> None:
    """A localized item goes through the API and its pixels are read back from the served href."""
    item = loaded.by_source["pc-sentinel-1-rtc"][0]
    local = localize_item(item, tmp_path, assets=["vv"])
    stac_api.load_items([local])
    try:
        served = next(client.search(ids=[item["id"]]).items_as_dicts())
        href = served["assets"]["vv"]["href"]
        assert href == local["assets"]["vv"]["href"]
        with rasterio.open(href) as src:
            window = data_window(href)
            values = src.read(1, window=window)
        raster = declared_raster(item, "vv")
        assert raster.nodata == -32768.0 and raster.dtype == "float32"
        np.testing.assert_array_equal(values, expected_data(item["id"], "vv", raster, window)[0])
    finally:
        stac_api.load_items([item])  # the real item back, for the other tests of this module
