"""The example recipes shipped with geoalign: listed, copied out, valid, and planned against a real
STAC API holding real recorded items of Earth Search and Planetary Computer.

The API is the local pgstac server of the test suite; the items are real recordings from
``../shared/data/stac`` whose raster assets point at local files of the declared grids
(support.fake_assets). The Earth Search example is planned unchanged except its ``catalog``:
its AOI and dates hit the recorded Sentinel-2 and Landsat scenes of 8 October 2023 over
Colorado. The recorded Planetary Computer items lie in different places, so each modality of
that example is planned on its own with the AOI and dates moved onto its recorded item, exactly
what a user changes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from shapely.geometry import shape
from support.fake_assets import localize_item
from support.stac_api import REAL_ITEM_FILES, collections_for_items, read_items

from geoalign.cli.main import EXIT_NO_DATA, EXIT_USER_ERROR, main
from geoalign.recipe import load_recipe
from geoalign.recipes import copy_example, example_text, list_examples

ES = "earth-search-sentinel2-landsat"
PC = "planetary-computer-multisensor"
S2_ES_ASSETS = ["blue", "green", "red", "nir", "rededge1", "rededge2", "rededge3", "nir08"]
S2_PC_ASSETS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12", "SCL"]
#: Recorded item (source, id or None for the first with the assets) and assets to localize.
PC_ITEMS: dict[str, tuple[str, list[str]]] = {
    "s2": ("pc-sentinel-2-l2a", S2_PC_ASSETS),
    "s1": ("pc-sentinel-1-rtc", ["vv", "vh"]),
    "naip": ("pc-naip", ["image"]),
    "lidar": ("pc-3dep-lidar-copc", []),  # a dry run reads no point: nothing to localize
}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("geoalign")), *args]
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_examples_are_listed_copied_and_valid(tmp_path: Path) -> None:
    assert set(list_examples()) == {ES, PC}
    listed = _run("recipes", cwd=tmp_path)
    assert listed.returncode == 0 and ES in listed.stdout and PC in listed.stdout
    copied = _run("recipes", ES, cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    assert (tmp_path / f"{ES}.yaml").read_text() == example_text(ES)
    again = _run("recipes", ES, cwd=tmp_path)
    assert again.returncode == EXIT_USER_ERROR and "--overwrite" in again.stderr
    assert _run("recipes", ES, "--overwrite", cwd=tmp_path).returncode == 0
    unknown = _run("recipes", "sentinel-3", cwd=tmp_path)
    assert unknown.returncode == EXIT_USER_ERROR and ES in unknown.stderr
    for name in (ES, PC):
        recipe, _ = load_recipe(copy_example(name, tmp_path / "copies", overwrite=True))
        assert recipe.catalog in ("earth-search", "planetary-computer")
        assert recipe.output == "cube.zarr" and isinstance(recipe.aoi, list)


def _localized(source: str, assets: list[str], folder: Path, shared: Path) -> dict[str, Any]:
    for item in read_items(shared / REAL_ITEM_FILES[source]):
        if all(a in item.get("assets", {}) for a in assets):
            dtype = "uint8" if "naip" in source else "uint16"
            return localize_item(item, folder, assets=assets, window=64, default_dtype=dtype)
    raise AssertionError(f"no recorded {source} item has the assets {assets}")


@pytest.fixture(scope="module")
def served(
    shared_data: Path, stac_api: Any, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The recorded items the examples need, localized and loaded into the local STAC API."""
    folder = tmp_path_factory.mktemp("assets")
    items = {
        "es-s2": next(
            localize_item(i, folder / "s2", assets=[*S2_ES_ASSETS, "swir16", "swir22", "scl"])
            for i in read_items(shared_data / REAL_ITEM_FILES["es-sentinel-2-l2a"])
            if i["id"] == "S2A_13TDE_20231008_0_L2A"
        ),
        "es-landsat": localize_item(
            read_items(shared_data / REAL_ITEM_FILES["es-landsat-c2-l2"])[0],
            folder / "landsat",
            assets=["blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel"],
        ),
    }
    for name, (source, assets) in PC_ITEMS.items():
        items[name] = _localized(source, assets, folder / name, shared_data)
    stac_api.reset()
    stac_api.load_collections(collections_for_items(list(items.values()), shared_data))
    stac_api.load_items(list(items.values()))
    return items


def test_earth_search_example_plans_unchanged_but_its_catalog(
    served: dict[str, Any], stac_api: Any, tmp_path: Path
) -> None:
    del served
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(example_text(ES).replace("catalog: earth-search", f"catalog: {stac_api.url}"))
    done = _run("cube", str(recipe), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = {ln.split()[0]: ln for ln in done.stdout.splitlines() if len(ln.split()) >= 9}
    assert {"s2", "s2_20m", "landsat"} <= set(rows)
    assert "sentinel-2-l2a" in rows["s2"] and "landsat-c2-l2" in rows["landsat"]
    assert "CRS EPSG:32613" in done.stdout  # UTM 13N, Boulder
    assert "estimated size" in done.stdout and "estimated time" in done.stdout
    assert "dry run: no pixel was read" in done.stdout
    assert not (tmp_path / "cube.zarr").exists()


def _inside(item: dict[str, Any]) -> list[float]:
    """A lon/lat box of about 100 m around a point inside the item's footprint."""
    point = shape(item["geometry"]).representative_point()
    return [point.x - 0.0005, point.y - 0.0005, point.x + 0.0005, point.y + 0.0005]


@pytest.mark.parametrize("modality", list(PC_ITEMS))
def test_planetary_computer_example_plans_each_sensor(
    served: dict[str, Any],
    stac_api: Any,
    tmp_path: Path,
    modality: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    example = yaml.safe_load(example_text(PC))
    item = served[modality]
    props = item["properties"]
    when = props.get("datetime") or props["start_datetime"]
    example.update(
        aoi=_inside(item),
        datetime=f"{str(when)[:10]}/{str(props.get('end_datetime') or when)[:10]}T23:59:59Z",
        catalog=stac_api.url,
        modalities={modality: example["modalities"][modality]},
    )
    recipe = tmp_path / "recipe.yaml"
    if modality == "s2":
        # the recorded scenes (Kamchatka, January) are all cloudier than the example's filter:
        # the search says so, and finds the scene once the filter is relaxed
        recipe.write_text(yaml.safe_dump(example))
        assert main(["cube", str(recipe), "--dry-run"]) == EXIT_NO_DATA
        assert "relax the collections and filters" in capsys.readouterr().err
        example["modalities"]["s2"]["query"] = {"eo:cloud_cover": {"lt": 100}}
    recipe.write_text(yaml.safe_dump(example))
    assert main(["cube", str(recipe), "--dry-run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    row = next(ln.split() for ln in out.splitlines() if ln.split()[:1] == [modality])
    assert row[2] == "1", row  # one item found
    assert "dry run: no pixel was read" in out
