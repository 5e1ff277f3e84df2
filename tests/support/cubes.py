"""Cubes built from the real data for tests: the Sen1Floods11 cube of the tutorial recipe."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from support.data import REPO_ROOT

#: The tutorial recipe: S1 (VV, VH in dB) + S2 (6 bands) + the water label on one 10 m UTM grid.
SEN1FLOODS11_RECIPE = REPO_ROOT / "tutorials" / "recipes" / "sen1floods11.yaml"


def build_sen1floods11_cube(out: Path) -> Path:
    """Build the tutorial recipe's cube (416 x 521 px, about 5 s) at ``out``; return its path.

    Reads the real chip from the shared data folder (ask for the ``shared_data`` fixture first).
    """
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe
    from geoalign.sensors import reset_sensors

    recipe, base = load_recipe(SEN1FLOODS11_RECIPE)
    try:
        run = plan_recipe(recipe, base)
        return dataclasses.replace(run, output=out).write()
    finally:
        reset_sensors()


def build_series_cube(shared_data: Path, out: Path) -> Path:
    """A time series: the real Sen1Floods11 S2 chip dated three times (red, nir at 20 m) plus a
    single-date RGB modality at 10 m; about 3 s."""
    import rasterio

    from geoalign.cube import ModalityRequest, build_cube
    from geoalign.stac_items import items_from_rasters
    from support.data import S2_13_BANDS

    chip = shared_data / "sen1floods11" / "Spain_7370579_S2Hand.tif"
    dates = ["2019-09-18T11:00:00Z", "2019-09-28T11:00:00Z", "2019-10-08T11:00:00Z"]
    items = items_from_rasters(
        [str(chip)] * 3,
        collection="s2",
        datetime=dates,
        ids=[f"s2-{i}" for i in range(3)],
        sensor_band_names=S2_13_BANDS,
    )
    with rasterio.open(chip) as src:
        bounds = tuple(src.bounds)
    series = ModalityRequest(
        "s2", "sentinel-2-l2a", items, 20, bands=["red", "nir"], mask_clouds=False
    )
    single = ModalityRequest(
        "s2_rgb", "sentinel-2-l2a", items[:1], 10, bands=["blue", "green", "red"], mask_clouds=False
    )
    return build_cube(out, [series, single], aoi=bounds)
