"""Sensors as data, resolved against REAL STAC items from ../shared/data/stac.

Items are read in place. No real Copernicus Data Space item is in the shared data, so the
CDSE-style item below is built from the STAC 1.1 conventions CDSE uses (``bands`` with
``eo:``-prefixed fields, ``raster:scale``/``raster:offset``, ``proj:code``, ``*_10m`` keys).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import pytest
import rasterio
from affine import Affine
from odc.geo.crs import CRS

from geoalign.errors import DataFileNotFoundError, InvalidInputError, SensorError
from geoalign.sensors import (
    AmbiguousRadiometryWarning,
    bands_from_raster,
    detect_sensor,
    get_sensor,
    item_datetime,
    list_sensors,
    load_sensor_file,
    register_sensor,
    reset_sensors,
    sensor_from_raster,
)
from geoalign.sensors.model import SENSOR_KINDS

ES_L2A = "stac/extracted/earth-search__sentinel-2-l2a.json"
ES_C1 = "stac/extracted/earth-search__sentinel-2-c1-l2a.json"
PC_S2_2019 = "stac/extracted/planetarycomputer__sentinel-2-l2a.json"
PC_S2_2024 = "stac/stac-geoparquet/sentinel-2-l2a-pc.json"
ODC_S2_V0 = "stac/odc-stac/S2A_28QCH_20200714_0_L2A.json"


def raw_items(shared_data: Path, rel: str) -> list[dict[str, Any]]:
    """Item dicts (with assets) of a JSON file: an item, a FeatureCollection or a list."""
    data = json.loads((shared_data / rel).read_text())
    feats = data.get("features", [data]) if isinstance(data, dict) else data
    return [f for f in feats if f.get("type") == "Feature" and "assets" in f]


def items(shared_data: Path, rel: str, *, migrate: bool = False) -> list[pystac.Item]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pystac's own migration notes
        return [pystac.Item.from_dict(d, migrate=migrate) for d in raw_items(shared_data, rel)]


def item_by_id(shared_data: Path, rel: str, item_id: str) -> pystac.Item:
    return next(i for i in items(shared_data, rel) if i.id == item_id)


@pytest.fixture(autouse=True)
def _clean_registry() -> Iterator[None]:
    reset_sensors()
    yield
    reset_sensors()


# --- CDSE-style item (constructed: no real one in the shared data) -------------------------
CDSE_BANDS = [  # key, ESA name, common name, centre wavelength (um), resolution (m)
    ("B01_60m", "B01", "coastal", 0.443, 60), ("B02_10m", "B02", "blue", 0.490, 10),
    ("B03_10m", "B03", "green", 0.560, 10), ("B04_10m", "B04", "red", 0.665, 10),
    ("B05_20m", "B05", "rededge", 0.704, 20), ("B06_20m", "B06", "rededge", 0.740, 20),
    ("B07_20m", "B07", "rededge", 0.783, 20), ("B08_10m", "B08", "nir", 0.842, 10),
    ("B8A_20m", "B8A", "nir08", 0.865, 20), ("B09_60m", "B09", "nir09", 0.945, 60),
    ("B11_20m", "B11", "swir16", 1.610, 20), ("B12_20m", "B12", "swir22", 2.190, 20),
]  # fmt: skip


def cdse_item() -> pystac.Item:
    def asset(name: str, common: str | None, um: float | None, res: int, dtype: str) -> dict:
        band: dict[str, Any] = {"name": name}
        if common:
            band |= {"eo:common_name": common, "eo:center_wavelength": um}
        out = {
            "href": f"https://example.invalid/T33UXP/{name}_{res}m.jp2",
            "type": "image/jp2",
            "roles": ["data"],
            "bands": [band],
            "data_type": dtype,
            "nodata": 0,
            "proj:shape": [109800 // res, 109800 // res],
            "proj:transform": [res, 0, 499980, 0, -res, 5700000],
        }
        if common:
            out |= {"raster:scale": 0.0001, "raster:offset": -0.1}
        return out

    assets = {k: asset(n, c, um, r, "uint16") for k, n, c, um, r in CDSE_BANDS}
    assets["SCL_20m"] = asset("SCL", None, None, 20, "uint8")
    return pystac.Item.from_dict(
        {
            "type": "Feature",
            "stac_version": "1.1.0",
            "stac_extensions": ["https://stac-extensions.github.io/projection/v2.0.0/schema.json"],
            "id": "S2B_MSIL2A_20250302T095029_N0511_R079_T33UXP_20250302T104753",
            "collection": "sentinel-2-l2a",
            "geometry": None,
            "properties": {
                "datetime": "2025-03-02T09:50:29Z",
                "platform": "sentinel-2b",
                "proj:code": "EPSG:32633",
                "processing:version": "05.11",
            },
            "links": [],
            "assets": assets,
        },
        migrate=False,
    )


# --- registry and schema --------------------------------------------------------------------
def test_builtins_cover_the_issue() -> None:
    names = list_sensors()
    for name in [
        "sentinel-2-l2a", "sentinel-1-rtc", "sentinel-1-grd", "naip", "orthophoto", "enmap-l2a",
        "hyperspectral", "cop-dem", "dem", "3dep-lidar-dsm", "3dep-lidar-dtm", "3dep-lidar-hag",
        "3dep-lidar-intensity", "3dep-lidar-copc", "landsat-c2-l2",
    ]:  # fmt: skip
        assert name in names
        assert get_sensor(name).kind in SENSOR_KINDS
    s2 = get_sensor("sentinel-2-l2a")
    assert s2.time_series and s2.mask is not None
    assert s2.mask.invalid_values == (0, 1, 3, 8, 9, 10) and s2.mask.optional_invalid_values == (
        11,
    )
    assert s2.band("B04").name == "red" and s2.band("red").center_wavelength_nm == 665
    assert "terrain" in " ".join(get_sensor("sentinel-1-grd").notes).lower()


def test_unknown_sensor_lists_known_names() -> None:
    with pytest.raises(SensorError, match="sentinel-2-l2a") as err:
        get_sensor("sentinel-3")
    assert isinstance(err.value, KeyError) and "Unknown sensor 'sentinel-3'" in str(err.value)


def test_user_yaml_adds_and_overrides(tmp_path: Path, shared_data: Path) -> None:
    path = tmp_path / "sensors.yaml"
    path.write_text(
        """
version: 1
sensors:
  naip:                       # override the built-in: 30 cm, one more asset key
    kind: orthophoto
    encoding: {dtype: uint8, nodata: 0}
    detect: {collections: [naip]}
    band_defaults: {dtype: uint8, units: DN, resolution_m: 0.3, asset_keys: [image, rgbir]}
    bands:
      - {name: red, aliases: [Red], index: 1}
      - {name: nir, aliases: [NIR], index: 4}
  my-drone:
    kind: orthophoto
    encoding: {dtype: uint8}
    detect: {collections: [my-drone-flights]}
    bands: [{name: red, asset_keys: [ortho], index: 1}]
"""
    )
    loaded = load_sensor_file(path)
    assert [s.name for s in loaded] == ["naip", "my-drone"]
    naip = get_sensor("naip")
    assert naip.band_names == ("red", "nir") and naip.bands[0].resolution_m == 0.3
    assert naip.bands[1].asset_keys == ("image", "rgbir")
    item = items(shared_data, "stac/extracted/planetarycomputer__naip.json")[0]
    assert detect_sensor(item) is naip
    assert [(s.band, s.index) for s in naip.band_sources(item)] == [("red", 1), ("nir", 4)]
    assert "my-drone" in list_sensors()
    reset_sensors()
    assert get_sensor("naip").band_names == ("red", "green", "blue", "nir")


def test_register_sensor_refuses_silent_replacement(shared_data: Path) -> None:
    naip = get_sensor("naip")
    with pytest.raises(SensorError, match="replace=True"):
        register_sensor(naip)
    mine = dataclasses.replace(naip, name="naip-copy")
    register_sensor(mine)
    item = items(shared_data, "stac/stac-geoparquet/naip-pc.json")[0]
    assert detect_sensor(item).name == "naip-copy"  # same collection: the later one wins
    register_sensor(dataclasses.replace(naip, name="naip-copy", description="mine"), replace=True)
    assert get_sensor("naip-copy").description == "mine"
    register_sensor(dataclasses.replace(naip, description="user naip"), replace=True)
    assert detect_sensor(item).description == "user naip"


def test_invalid_yaml_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "sensors:\n  bad:\n    kind: optical\n    encoding: {dtype: int16}\n"
        "    bands: [{name: red, resolution_m: -10}]\n"
    )
    with pytest.raises(InvalidInputError, match=r"sensors\.bad\.bands\[0\]\.resolution_m"):
        load_sensor_file(bad)
    bad.write_text(
        "sensors:\n  x:\n    kind: lidar\n    encoding: {dtype: float32}\n    bands: []\n"
    )
    with pytest.raises(InvalidInputError, match=r"sensors\.x\.kind"):
        load_sensor_file(bad)
    bad.write_text(
        "sensors:\n  x:\n    kind: dem\n    encoding: {dtype: float99}\n    bands: [{name: h}]\n"
    )
    with pytest.raises(InvalidInputError, match=r"sensors\.x\.encoding\.dtype"):
        load_sensor_file(bad)
    with pytest.raises(DataFileNotFoundError):
        load_sensor_file(tmp_path / "missing.yaml")
    assert "x" not in list_sensors()


# --- Sentinel-2: three providers, one reflectance -------------------------------------------
def test_s2_providers_decode_the_same_reflectance(shared_data: Path) -> None:
    """Reflectance 0.25 stored per each provider's convention decodes to 0.25 everywhere."""
    s2 = get_sensor("sentinel-2-l2a")
    cases = [
        # item, raw DN that holds reflectance 0.25 in that item, why
        (items(shared_data, ES_L2A)[0], 2500, "Earth Search harmonised (flag true), PB 05.11"),
        (items(shared_data, ES_C1)[0], 3500, "Earth Search C1 keeps ESA DNs, PB 05.11"),
        (items(shared_data, PC_S2_2019)[0], 2500, "Planetary Computer, PB 02.12"),
        (items(shared_data, PC_S2_2024)[0], 3500, "Planetary Computer, PB 05.10"),
        (items(shared_data, ODC_S2_V0)[0], 2500, "Earth Search v0, product id says N0214"),
        (cdse_item(), 3500, "CDSE-style STAC 1.1, PB 05.11"),
    ]  # fmt: skip
    for item, raw, why in cases:
        assert detect_sensor(item) is s2, why
        sources = s2.band_sources(item)
        assert [s.band for s in sources] == list(s2.band_names), why
        red = sources[3]
        assert red.band == "red" and red.index == 1 and red.nodata == 0, why
        decoded = red.decode(np.array([raw, 0], dtype=np.uint16))
        assert decoded[0] == pytest.approx(0.25, abs=1e-6), why
        assert math.isnan(decoded[1]), why
        assert [s.resolution_m for s in sources] == [b.resolution_m for b in s2.bands]


def test_es_legacy_and_c1_pair_of_the_same_scene(shared_data: Path) -> None:
    """The same acquisition in both Earth Search collections: legacy DN = C1 DN - 1000."""
    s2 = get_sensor("sentinel-2-l2a")
    legacy = item_by_id(shared_data, ES_L2A, "S2B_20EPT_20250731_0_L2A")
    c1 = item_by_id(shared_data, ES_C1, "S2B_T20EPT_20250731T131905_L2A")
    # both declare scale 1e-4 / offset -0.1; the legacy one also says the offset was applied
    assert legacy.assets["red"].extra_fields["raster:bands"][0]["offset"] == -0.1
    assert legacy.properties["earthsearch:boa_offset_applied"] is True
    assert "earthsearch:boa_offset_applied" not in c1.properties
    for band in ("red", "nir", "swir22"):
        (a,) = s2.band_sources(legacy, [band])
        (b,) = s2.band_sources(c1, [band])
        assert (a.scale, a.offset) == (0.0001, 0.0) and (b.scale, b.offset) == (0.0001, -0.1)
        raw_c1 = np.array([1001, 3500, 12000], dtype=np.uint16)
        np.testing.assert_allclose(a.decode(raw_c1 - 1000), b.decode(raw_c1), atol=1e-6)
        assert a.crs == b.crs == CRS("EPSG:32720") and a.transform == b.transform


def test_es_flag_false_follows_baseline_and_warns(shared_data: Path) -> None:
    s2 = get_sensor("sentinel-2-l2a")
    d = copy.deepcopy(raw_items(shared_data, ES_L2A)[0])
    d["properties"]["earthsearch:boa_offset_applied"] = False
    with pytest.warns(AmbiguousRadiometryWarning, match="earth-search#66"):
        (red,) = s2.band_sources(pystac.Item.from_dict(d, migrate=False), ["red"])
    assert red.offset == -0.1
    d["properties"]["s2:processing_baseline"] = "03.01"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (red,) = s2.band_sources(pystac.Item.from_dict(d, migrate=False), ["red"])
    assert red.offset == 0.0


def test_s2_without_baseline(shared_data: Path) -> None:
    s2 = get_sensor("sentinel-2-l2a")
    d = copy.deepcopy(raw_items(shared_data, PC_S2_2024)[0])
    assert "_N0510_" in d["properties"]["s2:product_uri"]  # also read when the property is gone
    del d["properties"]["s2:processing_baseline"]
    (red,) = s2.band_sources(pystac.Item.from_dict(d, migrate=False), ["red"])
    assert red.offset == -0.1
    del d["properties"]["s2:product_uri"]
    with pytest.raises(SensorError, match="processing baseline"):
        s2.band_sources(pystac.Item.from_dict(d, migrate=False), ["red"])
    d["properties"]["datetime"] = "2021-06-01T00:00:00Z"  # before PB 04.00 existed
    (red,) = s2.band_sources(pystac.Item.from_dict(d, migrate=False), ["red"])
    assert red.offset == 0.0


def test_s2_scl_mask(shared_data: Path) -> None:
    s2 = get_sensor("sentinel-2-l2a")
    assert s2.mask is not None
    for item, key in [
        (items(shared_data, ES_L2A)[0], "scl"),
        (items(shared_data, PC_S2_2019)[0], "SCL"),
        (cdse_item(), "SCL_20m"),
    ]:
        (scl,) = s2.mask_sources(item)
        assert (scl.asset_key, scl.band, scl.scale, scl.offset, scl.nodata) == (key, "scl", 1, 0, 0)
    classes = np.arange(12)
    assert classes[s2.mask.is_invalid(classes)].tolist() == [0, 1, 3, 8, 9, 10]
    assert s2.mask.is_invalid(classes, include_optional=True)[11]
    assert (
        get_sensor("naip").mask_sources(items(shared_data, "stac/stac-geoparquet/naip-pc.json")[0])
        == []
    )


def test_landsat_qa_bits_and_odc_items(shared_data: Path) -> None:
    ls = get_sensor("landsat-c2-l2")
    assert ls.mask is not None
    qa = np.array([21824, 1, 1 << 3, 1 << 4, 1 << 5])  # clear, fill, cloud, shadow, snow
    assert ls.mask.is_invalid(qa).tolist() == [False, True, True, True, False]
    item = items(shared_data, "stac/odc-stac/LC08_L2SR_081119_20200101_20200823_02_T2.json")[0]
    red = ls.band_sources(item, ["red"])[0]  # asset SR_B4.TIF, eo:bands given as an index
    assert red.asset_key == "SR_B4.TIF" and red.crs == CRS("EPSG:3031")
    assert red.decode([10000])[0] == pytest.approx(10000 * 2.75e-5 - 0.2)
    etm = items(shared_data, "stac/odc-stac/LE07_L2SP_044033_20210329_20210424_02_T1_SR.json")[0]
    assert "coastal" not in [s.band for s in ls.band_sources(etm)]  # optional, absent on ETM+


# --- projection conventions -------------------------------------------------------------------
def test_proj_epsg_and_proj_code_agree(shared_data: Path) -> None:
    s2 = get_sensor("sentinel-2-l2a")
    for rel in (ES_L2A, PC_S2_2024, "stac/extracted/planetarycomputer__naip.json"):
        old = items(shared_data, rel)[0]
        new = items(shared_data, rel, migrate=True)[0]  # pystac rewrites proj:epsg -> proj:code
        assert "proj:epsg" in old.properties and "proj:code" in new.properties
        sensor = detect_sensor(old)
        for a, b in zip(sensor.band_sources(old), sensor.band_sources(new), strict=True):
            assert a.crs == b.crs and a.crs is not None and a.crs.epsg is not None
            assert a.transform == b.transform and a.shape == b.shape
    assert s2.band_sources(cdse_item(), ["red"])[0].crs == CRS("EPSG:32633")


def test_crs_from_wkt2_and_projjson(shared_data: Path) -> None:
    path = (
        shared_data / "stac/stac-spec/examples/extensions-collection/proj-example/proj-example.json"
    )
    base = json.loads(path.read_text())
    base["assets"] = {"data": {"href": "x.tif"}}
    dem = get_sensor("dem")
    crss = []
    for keep in ("proj:code", "proj:wkt2", "proj:projjson"):
        d = copy.deepcopy(base)
        for field in {"proj:code", "proj:wkt2", "proj:projjson"} - {keep}:
            del d["properties"][field]
        crss.append(dem.band_sources(pystac.Item.from_dict(d, migrate=False))[0].crs)
    assert crss[0] == crss[1] == crss[2] == CRS("EPSG:32614")


def test_nine_and_six_number_transforms(shared_data: Path) -> None:
    rtc = items(shared_data, "stac/stac-geoparquet/sentinel-1-rtc-pc.json")[0]
    assert len(rtc.properties["proj:transform"]) == 9  # item level, 9 numbers
    vv = get_sensor("sentinel-1-rtc").band_sources(rtc, ["vv"])[0]
    assert vv.transform == Affine(10, 0, 373180, 0, -10, 3424680) and vv.shape == (12949, 27526)
    odc = items(shared_data, ODC_S2_V0)[0]
    assert len(odc.assets["B04"].extra_fields["proj:transform"]) == 9  # asset level, 9 numbers
    red = get_sensor("sentinel-2-l2a").band_sources(odc, ["red"])[0]
    assert red.transform == Affine(10, 0, 300000, 0, -10, 2300040)
    assert red.geobox is not None and red.geobox.resolution.x == 10
    d = copy.deepcopy(raw_items(shared_data, "stac/stac-geoparquet/sentinel-1-rtc-pc.json")[0])
    d["properties"]["proj:transform"][-1] = 2.0
    with pytest.raises(InvalidInputError, match="last row"):
        get_sensor("sentinel-1-rtc").band_sources(pystac.Item.from_dict(d, migrate=False))


def test_feet_state_plane_orthophoto(shared_data: Path) -> None:
    """Autzen orthophoto: NAD83(HARN) Oregon Lambert in feet, 1 ft pixels, RGB only."""
    path = shared_data / "autzen/autzen.jpg"
    with rasterio.open(path) as ds:
        wkt, transform, shape = ds.crs.to_wkt(), ds.transform, ds.shape
    for proj in ({"proj:wkt2": wkt}, {"proj:epsg": 2992}):  # file WKT; EPSG Oregon Lambert ft
        item = pystac.Item.from_dict(
            {
                "type": "Feature",
                "stac_version": "1.0.0",
                "id": "autzen",
                "geometry": None,
                "properties": {
                    "datetime": "2010-01-01T00:00:00Z",
                    **proj,
                    "proj:transform": list(transform)[:6],
                    "proj:shape": list(shape),
                },
                "links": [],
                "assets": {
                    "image": {
                        "href": str(path),
                        "roles": ["data"],
                        "eo:bands": [
                            {"name": "Red", "common_name": "red"},
                            {"name": "Green", "common_name": "green"},
                            {"name": "Blue", "common_name": "blue"},
                        ],
                    }
                },
            },  # fmt: skip
            migrate=False,
        )
        sources = get_sensor("orthophoto").band_sources(item)
        assert [(s.band, s.index) for s in sources] == [("red", 1), ("green", 2), ("blue", 3)]
        assert sources[0].crs is not None and sources[0].crs.units[0] in ("foot", "US survey foot")
        assert sources[0].transform == transform and sources[0].transform.a == 1.0
        assert sources[0].geobox is not None


# --- orthophotos, SAR, DEM, LiDAR -----------------------------------------------------------------
def test_naip_multiband_asset(shared_data: Path) -> None:
    naip = get_sensor("naip")
    all_items = items(shared_data, "stac/extracted/planetarycomputer__naip.json")
    for item in all_items + items(shared_data, "stac/stac-geoparquet/naip-pc.json"):
        sources = naip.band_sources(item)
        assert [(s.band, s.index) for s in sources] == [
            ("red", 1),
            ("green", 2),
            ("blue", 3),
            ("nir", 4),
        ]
        assert len({s.href for s in sources}) == 1 and sources[0].crs is not None


def test_stac11_bands_multiband_asset(shared_data: Path) -> None:
    """STAC 1.1 `bands` on an asset ordered B, G, R, N; the RGB `visual` preview is skipped."""
    item = items(shared_data, "stac/stac-spec/examples/extended-item.json")[0]
    sources = get_sensor("orthophoto").band_sources(item)
    assert [(s.band, s.asset_key, s.index) for s in sources] == [
        ("red", "analytic", 3),
        ("green", "analytic", 2),
        ("blue", "analytic", 1),
        ("nir", "analytic", 4),
    ]
    assert sources[0].crs == CRS("EPSG:32659")


def test_sentinel1_rtc_linear_and_db(shared_data: Path) -> None:
    rtc = get_sensor("sentinel-1-rtc")
    item = items(shared_data, "stac/stac-geoparquet/sentinel-1-rtc-pc.json")[0]
    assert detect_sensor(item) is rtc
    linear = rtc.band_sources(item)
    assert [s.band for s in linear] == ["vv", "vh"]
    assert (linear[0].nodata, linear[0].dtype, linear[0].units) == (-32768, "float32", "linear")
    (db,) = rtc.band_sources(item, ["VV"], sar_unit="db")
    assert db.units == "dB" and db.conversion == "to_db"
    out = db.decode(np.array([0.1, 1.0, -32768.0, 0.0], dtype=np.float32))
    assert out[:2] == pytest.approx([-10.0, 0.0]) and np.isnan(out[2:]).all()
    assert linear[0].decode([0.1])[0] == pytest.approx(0.1)
    with pytest.raises(InvalidInputError, match="sar_unit"):
        get_sensor("naip").band_sources(
            items(shared_data, "stac/stac-geoparquet/naip-pc.json")[0], sar_unit="db"
        )


def test_sentinel1_grd_is_refused_with_rtc_named(shared_data: Path) -> None:
    item = items(shared_data, "stac/extracted/earth-search__sentinel-1-grd.json")[0]
    grd = detect_sensor(item)
    assert grd.name == "sentinel-1-grd" and grd.unsupported
    with pytest.raises(SensorError, match="sentinel-1-rtc") as err:
        grd.band_sources(item)
    assert "not terrain corrected" in str(err.value)


def test_dem_and_3dep(shared_data: Path) -> None:
    cop = items(shared_data, "stac/stac-geoparquet/cop-dem-glo-30-pc.json")[0]
    (h,) = detect_sensor(cop).band_sources(cop)
    assert (h.band, h.units, h.crs) == ("elevation", "m", CRS("EPSG:4326"))
    dsm_item = items(shared_data, "stac/stac-geoparquet/3dep-lidar-dsm-pc.json")[0]
    assert dsm_item.datetime is None and dsm_item.properties["proj:epsg"] is None
    (dsm,) = detect_sensor(dsm_item).band_sources(dsm_item)
    assert dsm.sensor == "3dep-lidar-dsm" and get_sensor(dsm.sensor).kind == "lidar_raster"
    assert dsm.crs == CRS("EPSG:26911") and dsm.vertical_crs == CRS("EPSG:5703")  # NAVD88
    assert dsm.nodata is not None and math.isnan(dsm.nodata) and dsm.dtype == "float32"
    assert dsm.transform == Affine(2, 0, 758397, 0, -2, 4227063) and dsm.shape == (2450, 3073)
    assert dsm.datetime is not None and dsm.datetime.isoformat() == "2020-07-01T12:00:00+00:00"
    copc_item = items(shared_data, "stac/stac-geoparquet/3dep-lidar-copc-pc.json")[0]
    (points,) = detect_sensor(copc_item).band_sources(copc_item)
    assert get_sensor(points.sensor).kind == "lidar_points" and points.sensor == "3dep-lidar-copc"
    assert points.crs == CRS("EPSG:26912") and points.href.endswith(".copc.laz")
    d = copy.deepcopy(raw_items(shared_data, "stac/stac-geoparquet/3dep-lidar-copc-pc.json")[0])
    d["collection"] = "someone-elses-lidar"
    assert detect_sensor(pystac.Item.from_dict(d, migrate=False)).name == "lidar-points"


def test_item_datetime_rules(shared_data: Path) -> None:
    s1 = items(shared_data, "stac/stac-geoparquet/sentinel-1-rtc-pc.json")[0]
    assert item_datetime(s1) == s1.datetime
    # datetime null: the middle of start (13:22:30) and end (13:27:30)
    (item,) = items(shared_data, "stac/stac-spec/examples/collectionless-item.json")
    assert item.datetime is None
    got = item_datetime(item)
    assert got is not None and got.isoformat() == "2016-05-03T13:25:00+00:00"
    del item.properties["end_datetime"]  # pystac refuses to build such an item, so edit it
    only_start = item_datetime(item)
    assert only_start is not None and only_start.isoformat() == "2016-05-03T13:22:30+00:00"


# --- hyperspectral: bands discovered from real files -----------------------------------------
def local_item(path: Path, asset_key: str = "data", **asset: Any) -> pystac.Item:
    return pystac.Item.from_dict(
        {
            "type": "Feature",
            "stac_version": "1.0.0",
            "id": path.name,
            "geometry": None,
            "properties": {"datetime": "2022-07-24T10:45:26Z"},
            "links": [],
            "assets": {asset_key: {"href": str(path), **asset}},
        },  # fmt: skip
        migrate=False,
    )


def test_envi_wavelengths_discovered(shared_data: Path) -> None:
    path = shared_data / "aviris_ng/topoflux/ang20160910t185702_2rdn_img"
    bands = bands_from_raster(path)
    assert len(bands) == 425 and bands[0].name == "b001" and bands[0].index == 1
    assert bands[0].center_wavelength_nm == pytest.approx(376.44)
    assert bands[-1].center_wavelength_nm == pytest.approx(2500.12)
    assert bands[0].nodata == -9999 and bands[0].dtype == "float32"
    sources = get_sensor("hyperspectral").band_sources(local_item(path), ["b001", "b425"])
    assert [(s.band, s.index) for s in sources] == [("b001", 1), ("b425", 425)]
    assert sources[1].center_wavelength_nm == pytest.approx(2500.12) and sources[1].nodata == -9999


def test_enmap_geotiff_and_item_wavelengths(shared_data: Path) -> None:
    path = shared_data / "enmap_potsdam/images/enmap_potsdam_tile_128_0.tif"
    enmap = get_sensor("enmap-l2a")
    sources = enmap.band_sources(local_item(path, "image"))
    assert len(sources) == 224 and len({s.href for s in sources}) == 1
    first = sources[0]
    assert first.center_wavelength_nm == pytest.approx(418.24)
    assert first.full_width_nm == pytest.approx(6.99561)
    assert (first.scale, first.nodata, first.units) == (0.0001, -32768, "reflectance")
    assert first.decode([2500.0])[0] == pytest.approx(0.25)
    eo = [{"name": f"B{i}", "center_wavelength": 0.4 + i / 1000} for i in range(1, 4)]
    from_item = enmap.band_sources(local_item(path, "image", **{"eo:bands": eo}), ["B2"])
    assert from_item[0].index == 2 and from_item[0].center_wavelength_nm == pytest.approx(402)
    fixed = sensor_from_raster(path, base=enmap, name="enmap-potsdam")
    assert len(fixed.bands) == 224 and fixed.band("b224").center_wavelength_nm == pytest.approx(
        2445.53
    )


# --- clear errors and detection ---------------------------------------------------------------
def test_missing_asset_error_names_everything(shared_data: Path) -> None:
    d = copy.deepcopy(raw_items(shared_data, ES_L2A)[0])
    for key in ("red", "red-jp2", "visual", "visual-jp2"):
        d["assets"].pop(key, None)
    item = pystac.Item.from_dict(d, migrate=False)
    with pytest.raises(SensorError) as err:
        get_sensor("sentinel-2-l2a").band_sources(item, ["red"])
    msg = str(err.value)
    for part in (item.id, "'red'", "'B04'", "'B04_10m'", "'nir'", "asset_keys"):
        assert part in msg
    with pytest.raises(SensorError, match="coastal, blue"):
        get_sensor("sentinel-2-l2a").band_sources(item, ["thermal"])


def test_visual_asset_is_never_a_science_band(shared_data: Path) -> None:
    """Without B04, PC's 8-bit TCI `visual` (which lists B04) must not stand in for red."""
    d = copy.deepcopy(raw_items(shared_data, PC_S2_2024)[0])
    del d["assets"]["B04"]
    with pytest.raises(SensorError, match="'visual'"):  # listed among the item's keys
        get_sensor("sentinel-2-l2a").band_sources(pystac.Item.from_dict(d, migrate=False), ["red"])


def test_detection_over_real_items(shared_data: Path) -> None:
    expected = {
        ES_L2A: "sentinel-2-l2a", ES_C1: "sentinel-2-l2a", PC_S2_2019: "sentinel-2-l2a",
        "stac/extracted/planetarycomputer__naip.json": "naip",
        "stac/extracted/earth-search__landsat-c2-l2.json": "landsat-c2-l2",
        "stac/stac-geoparquet/landsat-c2-l2-pc.json": "landsat-c2-l2",
        "stac/stac-geoparquet/3dep-lidar-dsm-pc.json": "3dep-lidar-dsm",
        "stac/odc-stac/LC08_L2SP_028030_20200114_20200824_02_T1_SR.json": "landsat-c2-l2",
    }  # fmt: skip
    for rel, name in expected.items():
        for item in items(shared_data, rel):
            assert detect_sensor(item).name == name, (rel, item.id)
    d = copy.deepcopy(raw_items(shared_data, PC_S2_2024)[0])
    d["collection"] = "my-mirror"  # falls back to platform + s2:product_type
    d["properties"]["s2:product_type"] = "S2MSI2A"
    assert detect_sensor(pystac.Item.from_dict(d, migrate=False)).name == "sentinel-2-l2a"
    l1c = items(shared_data, "stac/extracted/earth-search__sentinel-2-l1c.json")[0]
    with pytest.raises(SensorError, match="get_sensor"):
        detect_sensor(l1c)
