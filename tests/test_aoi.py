"""Areas of interest: each loose input becomes one valid geometry with its CRS, or a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given
from hypothesis import strategies as st
from odc.geo import CRS
from odc.geo.geom import Geometry, box
from pyproj import Transformer

from geoalign.aoi import aoi_bbox_wgs84, aoi_wgs84, to_aoi
from geoalign.errors import CRSError, DataFileNotFoundError, InvalidInputError

POTSDAM_UTM = (360_000.0, 5_800_000.0, 370_000.0, 5_810_000.0)  # EPSG:32633, metres


def test_bbox_defaults_to_lonlat() -> None:
    geom = to_aoi((13.0, 52.3, 13.2, 52.5))
    assert geom.crs == CRS("EPSG:4326")
    assert geom.boundingbox == pytest.approx((13.0, 52.3, 13.2, 52.5))
    assert to_aoi([13.0, 52.3, 13.2, 52.5]).geom.equals(geom.geom)
    assert to_aoi(np.array([13.0, 52.3, 13.2, 52.5])).geom.equals(geom.geom)


def test_bbox_in_utm_reprojects_like_pyproj() -> None:
    geom = to_aoi(POTSDAM_UTM, crs="EPSG:32633")
    assert geom.crs == CRS("EPSG:32633")
    west, south, east, north = aoi_bbox_wgs84(POTSDAM_UTM, crs=32633)
    to_lonlat = Transformer.from_crs(32633, 4326, always_xy=True)
    corners = [to_lonlat.transform(x, y) for x in POTSDAM_UTM[::2] for y in POTSDAM_UTM[1::2]]
    assert west == pytest.approx(min(c[0] for c in corners), abs=1e-9)
    assert north == pytest.approx(max(c[1] for c in corners), abs=1e-9)
    # densified: the lon/lat polygon has more than the 5 corner vertices
    assert len(aoi_wgs84(POTSDAM_UTM, crs=32633).geom.exterior.coords) > 5
    assert 12.9 < west < east < 13.2 and 52.3 < south < north < 52.5


def test_shapely_geojson_and_odc_inputs_agree() -> None:
    poly = shapely.box(*POTSDAM_UTM)
    expected = to_aoi(POTSDAM_UTM, crs="EPSG:32633")
    assert to_aoi(poly, crs="EPSG:32633").geom.equals(expected.geom)
    assert to_aoi(box(*POTSDAM_UTM, "EPSG:32633")).geom.equals(expected.geom)
    geojson = shapely.geometry.mapping(shapely.box(13.0, 52.3, 13.2, 52.5))
    feature = {"type": "Feature", "geometry": geojson, "properties": {}}
    two = {
        "type": "FeatureCollection",
        "features": [
            feature,
            {"type": "Feature", "geometry": shapely.geometry.mapping(shapely.Point(14, 53))},
        ],
    }
    assert to_aoi(geojson).crs == CRS("EPSG:4326")
    assert to_aoi(feature).geom.equals(to_aoi(geojson).geom)
    union = to_aoi(two)
    assert union.geom.geom_type == "GeometryCollection" or union.geom.area == pytest.approx(0.04)
    assert union.boundingbox == pytest.approx((13.0, 52.3, 14.0, 53.0))
    legacy = {**geojson, "crs": {"type": "name", "properties": {"name": "EPSG:32633"}}}
    legacy["coordinates"] = shapely.geometry.mapping(shapely.box(*POTSDAM_UTM))["coordinates"]
    assert to_aoi(legacy).crs == CRS("EPSG:32633")


def test_real_geopackage_keeps_its_projected_crs(shared_data: Path) -> None:
    path = shared_data / "enmap_potsdam" / "landcover_potsdam_point.gpkg"
    frame = gpd.read_file(path, layer="landcover_potsdam_point")
    geom = to_aoi(path)  # two layers, one with geometries: that one is read
    assert geom.crs == CRS("EPSG:32633")
    assert geom.geom.geom_type == "MultiPoint"
    assert len(geom.geom.geoms) == len(set(frame.geometry.apply(lambda g: g.wkb)))
    west, south, east, north = aoi_bbox_wgs84(str(path))
    expected = frame.to_crs(4326).total_bounds
    assert (west, south, east, north) == pytest.approx(tuple(expected), abs=1e-9)
    assert to_aoi(frame).geom.equals(geom.geom)
    assert to_aoi(frame.geometry).geom.equals(geom.geom)


def test_written_files_in_projected_crs_are_unioned(tmp_path: Path) -> None:
    parts = [
        shapely.box(4_550_000, 3_250_000, 4_560_000, 3_260_000),
        shapely.Point(4_570_000, 3_270_000).buffer(500),
    ]
    frame = gpd.GeoDataFrame({"name": ["a", "b"]}, geometry=parts, crs="EPSG:3035")
    gpkg, fgb = tmp_path / "aoi.gpkg", tmp_path / "aoi.fgb"
    frame.to_file(gpkg, layer="fields")
    frame.to_file(fgb)
    for path in (gpkg, fgb):
        geom = to_aoi(path)
        assert geom.crs == CRS("EPSG:3035")
        assert geom.geom.area == pytest.approx(frame.union_all().area, rel=1e-9)
    frame.to_file(gpkg, layer="other")
    with pytest.raises(InvalidInputError, match=r"several layers.*layer="):
        to_aoi(gpkg)
    assert to_aoi(gpkg, layer="fields").crs == CRS("EPSG:3035")


def test_file_without_crs_needs_one(tmp_path: Path) -> None:
    path = tmp_path / "nocrs.gpkg"
    with pytest.warns(UserWarning, match="'crs' was not provided"):
        gpd.GeoDataFrame(geometry=[shapely.box(*POTSDAM_UTM)]).to_file(path)
    with pytest.raises(CRSError, match="has no CRS: pass crs="):
        to_aoi(path)
    assert to_aoi(path, crs="EPSG:32633").crs == CRS("EPSG:32633")


def test_conflicting_crs_is_refused(shared_data: Path) -> None:
    with pytest.raises(CRSError, match=r"EPSG:32633 but crs=EPSG:4326"):
        to_aoi(shared_data / "enmap_potsdam" / "landcover_potsdam_point.gpkg", crs=4326)


@pytest.mark.parametrize(
    ("bbox", "message"),
    [
        ((170.0, -10.0, -170.0, 10.0), "antimeridian"),
        ((13.2, 52.3, 13.0, 52.5), r"minx 13.2 > maxx 13.0"),
        ((13.0, 52.5, 13.2, 52.3), r"miny 52.5 > maxy 52.3"),
        ((13.0, 52.3, 13.0, 52.5), "zero width"),
        ((13.0, 52.3, 13.2), "has 3 numbers"),
        ((13.0, float("nan"), 13.2, 52.5), "NaN"),
        (("a", 1, 2, 3), "4 numbers"),
        ((360_000, 5_800_000, 370_000, 5_810_000), r"outside lon \[-180, 180\].*crs="),
        ((52.3, -120.0, 52.5, -119.0), r"swap them to \(lon, lat\)"),
    ],
)
def test_bad_bbox_errors_say_how_to_fix(bbox: tuple[float, ...], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        to_aoi(bbox)


def test_inverted_projected_bbox_does_not_mention_antimeridian() -> None:
    with pytest.raises(InvalidInputError) as info:
        to_aoi((370_000, 5_800_000, 360_000, 5_810_000), crs="EPSG:32633")
    assert "antimeridian" not in str(info.value)


def test_empty_invalid_missing_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        to_aoi(shapely.Polygon())
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])
    with pytest.raises(InvalidInputError, match=r"invalid \(Self-intersection.*make_valid"):
        to_aoi(bowtie)
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        to_aoi(tmp_path / "missing.gpkg")
    with pytest.raises(InvalidInputError, match="not supported"):
        to_aoi(42)  # type: ignore[arg-type]
    with pytest.raises(CRSError, match="not a CRS"):
        to_aoi((13.0, 52.3, 13.2, 52.5), crs="EPSG:nope")
    with pytest.raises(InvalidInputError, match="has no features"):
        to_aoi(gpd.GeoDataFrame(geometry=[], crs=4326))
    with pytest.raises(CRSError, match="has no CRS"):
        to_aoi(Geometry(shapely.box(0, 0, 1, 1)))
    (tmp_path / "bad.geojson").write_text(json.dumps({"type": "Feature", "geometry": None}))
    with pytest.raises(InvalidInputError):
        to_aoi(tmp_path / "bad.geojson")


def test_projection_outside_domain_is_a_crs_error() -> None:
    far = (1e9, 1e9, 1.1e9, 1.1e9)
    with pytest.raises(CRSError, match="cannot be projected"):
        aoi_wgs84(far, crs="EPSG:32633")


lon = st.floats(-179.0, 179.0, allow_nan=False)
lat = st.floats(-89.0, 89.0, allow_nan=False)
size = st.floats(1e-4, 1.0, allow_nan=False)


@given(lon, lat, size, size)
def test_lonlat_bbox_round_trips(x: float, y: float, w: float, h: float) -> None:
    bbox = (x, y, x + w, y + h)
    assert aoi_bbox_wgs84(bbox) == pytest.approx(bbox)
