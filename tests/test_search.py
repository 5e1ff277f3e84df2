"""search_items: one function over STAC APIs and local catalogs, retries, signing, clear errors.

Remote behaviour is tested against real HTTP servers on 127.0.0.1: a small hand-made STAC API in a
thread (to script failures: 503s, 500s, timeouts) and the real pgstac + stac-fastapi API of the
``stac_api`` fixture, which must return the same items as a local catalog for the same arguments.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading
import time
import types
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import geopandas as gpd
import pystac
import pytest
import shapely
from shapely.geometry import shape
from support.stac_api import REAL_ITEM_FILES, LocalStacApi, load_real_items, read_items

from geoalign.errors import (
    DataFileNotFoundError,
    GeoAlignWarning,
    InvalidInputError,
    NoDataFoundError,
    StacApiError,
)
from geoalign.search import PRESETS, RetryPolicy, StacPreset, search_items, write_catalog

FAST = RetryPolicy(total=3, backoff_factor=0.01, timeout=5.0)


# -- a scriptable STAC API on 127.0.0.1 ---------------------------------------------------------


class FakeStacApi:
    """A minimal STAC API (landing page + POST /search) whose first answers can be scripted."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items
        self.script: list[int | float] = []  # per request: an HTTP status, or seconds to stall
        self.requests: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def _answer(self, body: dict[str, Any]) -> None:
                api.requests.append(f"{self.command} {self.path}")
                step = api.script.pop(0) if api.script else 200
                if isinstance(step, float):
                    time.sleep(step)  # longer than the client's timeout
                    step = 200
                payload = json.dumps(body if step == 200 else {"detail": "scripted"}).encode()
                try:
                    self.send_response(step)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def do_GET(self) -> None:
                self._answer(api.landing())

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                wanted = set(body.get("collections") or [])
                features = [i for i in api.items if not wanted or i.get("collection") in wanted]
                self._answer({"type": "FeatureCollection", "features": features, "links": []})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/"

    def landing(self) -> dict[str, Any]:
        return {
            "type": "Catalog",
            "id": "fake",
            "description": "scripted STAC API",
            "stac_version": "1.0.0",
            "conformsTo": [
                "https://api.stacspec.org/v1.0.0/core",
                "https://api.stacspec.org/v1.0.0/item-search",
            ],
            "links": [
                {"rel": "self", "href": self.url, "type": "application/json"},
                {"rel": "root", "href": self.url, "type": "application/json"},
                {
                    "rel": "search",
                    "href": self.url + "search",
                    "method": "POST",
                    "type": "application/geo+json",
                },
            ],
        }


@pytest.fixture
def fake_api(shared_data: Path) -> Iterator[FakeStacApi]:
    items = read_items(shared_data / REAL_ITEM_FILES["pc-sentinel-2-l2a"])[:3]
    api = FakeStacApi(items)
    api.thread.start()
    yield api
    api.server.shutdown()
    api.server.server_close()


def test_retries_503_then_succeeds(fake_api: FakeStacApi) -> None:
    fake_api.script = [503, 503]
    found = search_items(fake_api.url, collections="sentinel-2-l2a", retry=FAST)
    assert [i.id for i in found] == [i["id"] for i in fake_api.items]
    assert fake_api.requests[:3] == ["GET /", "GET /", "GET /"]  # two 503s, then the answer
    assert fake_api.requests[3:] == ["POST /search"]


def test_retries_a_failing_search_post(fake_api: FakeStacApi) -> None:
    fake_api.script = [200, 502, 429]  # landing page fine, then the POST fails twice
    found = search_items(fake_api.url, retry=FAST)
    assert len(found) == 3
    assert fake_api.requests == ["GET /", "POST /search", "POST /search", "POST /search"]


def test_retries_timeouts(fake_api: FakeStacApi) -> None:
    fake_api.script = [1.5]  # the first answer comes after the 0.3 s timeout
    policy = dataclasses.replace(FAST, timeout=0.3)
    assert len(search_items(fake_api.url, retry=policy)) == 3
    assert fake_api.requests.count("GET /") == 2


def test_persistent_500_names_url_and_status(fake_api: FakeStacApi) -> None:
    fake_api.script = [500] * 10
    with pytest.raises(StacApiError) as info:
        search_items(fake_api.url, retry=FAST)
    message = str(info.value)
    assert f"GET {fake_api.url}" in message and "HTTP 500" in message
    assert "retry" in message
    assert len(fake_api.requests) == FAST.total + 1


def test_unreachable_api_names_url() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    server.server_close()  # nothing listens there any more
    with pytest.raises(StacApiError, match=r"GET http://127\.0\.0\.1:\d+/ failed with no HTTP"):
        search_items(url, retry=dataclasses.replace(FAST, total=1))


# -- signing --------------------------------------------------------------------------------------


def _stub_planetary_computer(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    signed: list[str] = []
    module = types.ModuleType("planetary_computer")

    def sign_inplace(item: pystac.Item) -> pystac.Item:
        for asset in item.assets.values():
            asset.href += "?sig=stub"
        signed.append(item.id)
        return item

    module.sign_inplace = sign_inplace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "planetary_computer", module)
    return signed


def test_planetary_computer_preset_signs_with_the_package(
    fake_api: FakeStacApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed = _stub_planetary_computer(monkeypatch)
    preset = dataclasses.replace(PRESETS["planetary-computer"], url=fake_api.url)
    found = search_items(preset, retry=FAST)
    assert signed == [i.id for i in found]
    assert all(a.href.endswith("?sig=stub") for i in found for a in i.assets.values())
    unsigned = search_items(preset, sign=False, retry=FAST)
    assert not any(a.href.endswith("?sig=stub") for i in unsigned for a in i.assets.values())


def test_injected_signer_and_missing_package(
    fake_api: FakeStacApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    found = search_items(fake_api.url, sign=lambda item: seen.append(item.id), retry=FAST)
    assert seen == [i.id for i in found]
    monkeypatch.setitem(sys.modules, "planetary_computer", None)  # import fails
    preset = dataclasses.replace(PRESETS["planetary-computer"], url=fake_api.url)
    with pytest.warns(GeoAlignWarning, match="pip install planetary-computer"):
        assert len(search_items(preset, retry=FAST)) == 3
    with pytest.raises(InvalidInputError, match="callable"):
        search_items(fake_api.url, sign="yes", retry=FAST)  # type: ignore[arg-type]


def test_presets() -> None:
    assert PRESETS["earth-search"].url == "https://earth-search.aws.element84.com/v1"
    assert PRESETS["earth-search"].signer is None
    assert PRESETS["planetary-computer"].url.startswith("https://planetarycomputer.microsoft.com")
    with pytest.raises(dataclasses.FrozenInstanceError):
        PRESETS["earth-search"].url = "x"  # type: ignore[misc]
    assert isinstance(PRESETS["planetary-computer"], StacPreset)


# -- local catalogs through search_items ------------------------------------------------------


@pytest.fixture(scope="module")
def naip_catalog(shared_data: Path) -> Path:
    return shared_data / REAL_ITEM_FILES["naip-geoparquet"]


def test_aoi_in_utm_from_a_written_geopackage(naip_catalog: Path, tmp_path: Path) -> None:
    """An AOI drawn in UTM 13N (metres) finds what its lon/lat footprint intersects."""
    field = shapely.Polygon([(500_000, 4_400_000), (520_000, 4_405_000), (510_000, 4_420_000)])
    path = tmp_path / "field.gpkg"
    gpd.GeoDataFrame({"name": ["field"]}, geometry=[field], crs="EPSG:32613").to_file(path)
    found = search_items(naip_catalog, aoi=path, sortby="id")
    lonlat = gpd.GeoSeries([field], crs=32613).segmentize(10).to_crs(4326).iloc[0]
    everything = search_items(naip_catalog, bbox=lonlat.bounds)
    expected = sorted(i.id for i in everything if shape(i.geometry).intersects(lonlat))
    assert [i.id for i in found] == expected and expected
    assert [
        i.id for i in search_items(naip_catalog, aoi=field, aoi_crs=32613, sortby="id")
    ] == expected
    assert isinstance(found, pystac.ItemCollection)


def test_in_memory_item_collection(naip_catalog: Path) -> None:
    some = search_items(naip_catalog, bbox=(-105.0, 39.5, -104.5, 40.0))
    again = search_items(some, query={"naip:year": "2021"}, sortby="id")
    assert [i.id for i in again] == sorted(
        i.id for i in some if i.properties["naip:year"] == "2021"
    )


def test_nothing_found_lists_what_was_asked(naip_catalog: Path) -> None:
    with pytest.raises(NoDataFoundError) as info:
        search_items(
            naip_catalog,
            bbox=(-105.0, 39.5, -104.5, 40.0),
            datetime="2030-01-01/2030-12-31",
            collections=["naip"],
            query={"gsd": {"lt": 0.1}},
        )
    message = str(info.value)
    for part in (str(naip_catalog), "collections=", "bbox=", "datetime=2030-01-01", "query="):
        assert part in message, part
    assert "No item is dated within the datetime interval" in message
    assert "10000 items" in message


def test_aoi_that_overlaps_no_item(naip_catalog: Path, shared_data: Path) -> None:
    potsdam = shared_data / "enmap_potsdam" / "landcover_potsdam_point.gpkg"  # EPSG:32633
    with pytest.raises(NoDataFoundError, match="(?i)overlaps no item.*CRS"):
        search_items(naip_catalog, aoi=potsdam)
    with pytest.raises(NoDataFoundError, match="(?i)none of the collections is in the catalog"):
        search_items(naip_catalog, collections="sentinel-2-l2a")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aoi": (0, 0, 1, 1), "bbox": (0, 0, 1, 1)}, "either aoi= or bbox="),
        ({"bbox": (10, 0, 5, 1)}, "antimeridian"),
        ({"max_items": 0}, "max_items=0 must be a positive integer"),
        ({"limit": 20_000}, "above 10,000"),
        ({"datetime": "2020-13-45"}, "datetime"),
        ({"datetime": "2020-01-01T25:00:00Z"}, "not ISO-8601"),
        ({"datetime": ("2021-01-01", "2020-01-01")}, "ends before it starts"),
        ({"filter": "eo:cloud_cover <<< 3"}, "not valid CQL2"),
        ({"query": {"eo:cloud_cover": {"below": 3}}}, "query operator 'below'"),
        ({"sortby": [{"field": "id", "direction": "sideways"}]}, "asc or desc"),
    ],
)
def test_bad_arguments(naip_catalog: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        search_items(naip_catalog, **kwargs)


def test_unknown_source() -> None:
    with pytest.raises(DataFileNotFoundError, match="neither a STAC API URL.*earth-search"):
        search_items("earth-serach")


# -- the same answers as a real STAC API (pgstac + stac-fastapi on 127.0.0.1) ----------------------

SAME_AS_API: list[Any] = [
    pytest.param(
        {}, marks=pytest.mark.slow, id="all-10159-items"
    ),  # ~25 s: the API pages 10k items
    {"max_items": 40},
    {"bbox": (-105.0, 39.5, -104.5, 40.0)},
    {"aoi": shapely.Polygon([(-114.2, 37.9), (-113.9, 38.3), (-112.0, 38.0)])},
    {"bbox": (-180, -90, 0, 90), "datetime": "2023-01-01T00:00:00Z/.."},
    {"datetime": "2020"},
    {"datetime": "2020-06-15T12:00:00Z"},
    {"datetime": "../2019-12-31", "max_items": 30, "sortby": "id"},
    {"collections": ["sentinel-2-l2a", "sentinel-1-grd"], "sortby": "-datetime"},
    {"ids": ["S2B_24MUV_20250731_0_L2A", "60N-2023", "co_m_3910458_sw_13_060_20210915"]},
    {"query": {"eo:cloud_cover": {"lt": 25}}},
    {"query": {"naip:state": {"eq": "co"}, "naip:year": {"neq": "2021"}}, "max_items": 55},
    {"filter": "naip:state IN ('co', 'ne') AND naip:year = '2021'", "max_items": 55},
    {"filter": "eo:cloud_cover >= 20 AND platform <> 'landsat-9'"},
    {"filter": {"op": "=", "args": [{"property": "naip:state"}, "pr"]}},
    {"filter": "datetime >= TIMESTAMP('2023-01-01T00:00:00Z')", "sortby": "+datetime"},
    # (with a bbox: pgstac caches the count of a bare collections search across reset())
    {
        "collections": "naip",
        "bbox": (-110.0, 36.0, -101.0, 42.0),
        "sortby": ["naip:state", "-datetime"],
        "max_items": 25,
    },
    {"bbox": (-104.0, 38.0, -102.0, 41.0), "datetime": "2021-07-01/2021-08-31", "sortby": "id"},
]


@pytest.fixture(scope="module")
def loaded_api(
    stac_api: LocalStacApi, shared_data: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """The real items in the real API and, the same ones, in a local ndjson catalog."""
    stac_api.reset()
    by_source = load_real_items(stac_api, shared_data, list(REAL_ITEM_FILES))
    unique = {(i["collection"], i["id"]): i for items in by_source.values() for i in items}
    path = tmp_path_factory.mktemp("same-as-api") / "items.ndjson"
    write_catalog(list(unique.values()), path, format="ndjson")
    return stac_api.url, path


@pytest.mark.parametrize(
    "args",
    SAME_AS_API,
    ids=[None if i == 0 else json.dumps(a, default=str)[:60] for i, a in enumerate(SAME_AS_API)],
)
def test_local_catalog_answers_like_the_api(
    loaded_api: tuple[str, Path], args: dict[str, Any]
) -> None:
    url, local = loaded_api
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "does not conform" warnings from pystac-client
        remote = search_items(url, limit=1000, retry=FAST, **args)
    here = search_items(local, **args)
    assert [i.id for i in here] == [i.id for i in remote]
    assert len(here) > 0


def test_api_paging_with_small_pages(loaded_api: tuple[str, Path]) -> None:
    """pystac-client follows the API's next links (7 items a page) up to max_items."""
    url, local = loaded_api
    args: dict[str, Any] = {"collections": "naip", "bbox": (-104.0, 38.0, -102.0, 41.0)}
    remote = search_items(url, limit=7, max_items=30, retry=FAST, **args)
    assert [i.id for i in remote] == [i.id for i in search_items(local, max_items=30, **args)]
    assert len(remote) == 30
