"""Every bad input the data layer names, met as a user meets it: the installed command, real files.

Each case runs ``geoalign`` in a subprocess on recipes over the real Sen1Floods11 Sentinel-2 chip
(or real STAC metadata for ``search``), and checks the exit code (2 bad input, 3 nothing found),
that the message names the problem and the fix, that no traceback is shown, and that nothing
that looks finished was written. Damaged inputs are made in a temporary folder from the real
files (a cut download, a raster of no-data only).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from support.cli import run_geoalign
from support.data import REPO_ROOT, cut_download

EXIT_USER_ERROR = 2
EXIT_NO_DATA = 3
BANDS_13 = "[B01, B02, B03, B04, B05, B06, B07, B08, B8A, B09, B10, B11, B12]"
CHIP_BBOX = "[-0.7837, 38.0847, -0.7377, 38.1307]"


@pytest.fixture(scope="module")
def files(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The real chip, a cut copy (header readable, later strips not) and an all-no-data copy."""
    folder = tmp_path_factory.mktemp("inputs")
    real = shared_data / "sen1floods11" / "Spain_7370579_S2Hand.tif"
    cut_download(real, folder / "cut.tif")
    with rasterio.open(real) as src:
        profile = {**src.profile, "nodata": 0}
        with rasterio.open(folder / "empty.tif", "w", **profile) as dst:
            dst.write(np.zeros((src.count, src.height, src.width), dtype=src.dtypes[0]))
    return {"real": real, "cut": folder / "cut.tif", "empty": folder / "empty.tif"}


def _recipe(
    folder: Path,
    sources: list[Path],
    *,
    aoi: str = CHIP_BBOX,
    extra: str = "",
    second_resolution: float | None = None,
) -> Path:
    """A recipe of the chip's Sentinel-2 bands (optionally a second modality at another size)."""
    listed = ", ".join(str(s) for s in sources)
    modality = (
        "{sensor: sentinel-2-l2a, resolution: %s, bands: [red, nir], files: [%s], "
        'file_band_names: %s, file_datetime: "2019-09-18T11:00:00Z", mask_clouds: false}'
    )
    text = f"aoi: {aoi}\nmodalities:\n  s2: {modality % (10, listed, BANDS_13)}\n"
    if second_resolution is not None:
        text += f"  coarse: {modality % (second_resolution, listed, BANDS_13)}\n"
    path = folder / "recipe.yaml"
    path.write_text(text + f"output: cube.zarr\n{extra}")
    return path


def _fails(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    """The stderr of a failed run, after checking its exit code, message and no traceback."""
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr)
    err = done.stderr
    assert "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


@pytest.mark.parametrize(
    ("aoi", "extra", "fragments"),
    [
        ("[-0.7377, 38.0847, -0.7837, 38.1307]", "", ["is inverted", "(minx, miny, maxx, maxy)"]),
        ("[200, 38.0, 201, 38.1]", "", ["outside lon [-180, 180]", "aoi_crs"]),
        (CHIP_BBOX, "crs: EPSG:999999\n", ["not a CRS that PROJ knows", "EPSG:32633"]),
        (CHIP_BBOX, "crs: EPSG:4326\n", ["geographic", "projected CRS"]),
        # brackets in a message print as they are (rich would read "[minx, ...]" as markup)
        ("[-0.7837, 38.0847, -0.7377]", "", ["3 numbers: a bbox is [minx, miny, maxx, maxy]"]),
    ],
    ids=["inverted-bbox", "bbox-out-of-range", "unknown-crs", "geographic-crs", "three-numbers"],
)
def test_bad_area_or_grid_is_refused_before_anything_is_written(
    aoi: str, extra: str, fragments: list[str], files: dict[str, Path], tmp_path: Path
) -> None:
    recipe = _recipe(tmp_path, [files["real"]], aoi=aoi, extra=extra)
    _fails(run_geoalign("cube", str(recipe), cwd=tmp_path), EXIT_USER_ERROR, *fragments)
    assert not (tmp_path / "cube.zarr").exists()


def test_resolutions_that_share_no_pixel_edges_are_refused(
    files: dict[str, Path], tmp_path: Path
) -> None:
    recipe = _recipe(tmp_path, [files["real"]], second_resolution=15)
    err = _fails(run_geoalign("cube", str(recipe), cwd=tmp_path), EXIT_USER_ERROR)
    assert "not an integer multiple or divisor" in err and "Use for instance" in err


def test_area_far_from_the_data_finds_nothing(files: dict[str, Path], tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, [files["real"]], aoi="[10.0, 45.0, 10.05, 45.05]")
    done = run_geoalign("cube", str(recipe), "--dry-run", cwd=tmp_path)
    _fails(done, EXIT_NO_DATA, "overlaps the area of interest", "check the AOI's CRS")


def test_missing_asset_fails_naming_the_file(files: dict[str, Path], tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, [tmp_path / "gone.tif"])
    _fails(run_geoalign("cube", str(recipe), cwd=tmp_path), EXIT_USER_ERROR, "gone.tif", "exist")


def test_cut_download_fails_or_is_skipped_and_reported(
    files: dict[str, Path], tmp_path: Path
) -> None:
    failing = tmp_path / "fail"
    failing.mkdir()
    recipe = _recipe(failing, [files["cut"]])
    done = run_geoalign("cube", str(recipe), cwd=failing)
    _fails(done, EXIT_USER_ERROR, "cut.tif", "truncated or damaged", "on_error: skip")
    # what was started is not a cube: info refuses it and says how to finish it
    info = run_geoalign("info", str(failing / "cube.zarr"), cwd=failing)
    _fails(info, EXIT_USER_ERROR, "incomplete", "geoalign cube RECIPE")
    # on_error: skip leaves the cut file's item out, says so, and records it
    skipping = tmp_path / "skip"
    skipping.mkdir()
    recipe = _recipe(skipping, [files["real"], files["cut"]], extra="on_error: skip\n")
    done = run_geoalign("cube", str(recipe), cwd=skipping)
    assert done.returncode == 0, done.stderr
    assert "skipped in s2: cut: pixels could not be read" in done.stderr
    info = run_geoalign("info", str(skipping / "cube.zarr"), "--json", cwd=skipping)
    assert info.returncode == 0, info.stderr
    summary = json.loads(info.stdout[: info.stdout.rindex("]") + 1])
    assert [len(s["skipped"]) for s in summary] == [1]


def test_all_no_data_leaves_an_unfinished_store(files: dict[str, Path], tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, [files["empty"]])
    done = run_geoalign("cube", str(recipe), cwd=tmp_path)
    _fails(done, EXIT_NO_DATA, "no valid pixel", "left unfinished", "Check the AOI, the dates")
    _fails(run_geoalign("info", str(tmp_path / "cube.zarr"), cwd=tmp_path), EXIT_USER_ERROR)


def test_a_finished_cube_is_never_overwritten_unasked(
    files: dict[str, Path], tmp_path: Path
) -> None:
    recipe = _recipe(tmp_path, [files["real"]])
    assert run_geoalign("cube", str(recipe), cwd=tmp_path).returncode == 0
    before = (tmp_path / "cube.zarr" / "zarr.json").read_bytes()
    _fails(run_geoalign("cube", str(recipe), cwd=tmp_path), EXIT_USER_ERROR, "--overwrite")
    assert (tmp_path / "cube.zarr" / "zarr.json").read_bytes() == before


def test_search_errors_name_the_catalog_and_what_it_holds(shared_data: Path) -> None:
    catalog = str(shared_data / "stac" / "extracted" / "earth-search__sentinel-2-l2a.json")
    nothing = run_geoalign("search", catalog, "--bbox=10,10,11,11")
    _fails(nothing, EXIT_NO_DATA, "no STAC items found", "for bbox=[10.0, 10.0, 11.0, 11.0]")
    assert "collections ['sentinel-2-l2a']" in nothing.stderr
    assert "Widen the area or the time range" in nothing.stderr
    unknown = run_geoalign("search", catalog, "-c", "sentinel-1-rtc")
    _fails(unknown, EXIT_NO_DATA, "None of the collections is in the catalog")
    _fails(run_geoalign("search", catalog, "--bbox=11,10,10,11"), EXIT_USER_ERROR, "inverted")
    _fails(run_geoalign("search", catalog, "--bbox=10,x,11,11"), EXIT_USER_ERROR, "4 comma")
    both = run_geoalign("search", catalog, "--bbox=10,10,11,11", "--aoi", "area.geojson")
    _fails(both, EXIT_USER_ERROR, "--bbox and --aoi were given: give only one")
    missing = run_geoalign("search", "no-such-catalog.json")
    _fails(missing, EXIT_USER_ERROR, "neither a STAC API URL", "existing local catalog file")


def test_area_options_name_the_option_and_the_numbers_it_takes(tmp_path: Path) -> None:
    """``--point``/``--bbox`` are checked before any file is opened, with the form they take."""
    raster = str(tmp_path / "embeddings.tif")
    point = run_geoalign("similarity", raster, "--point", "1,x", "-o", str(tmp_path / "s.tif"))
    _fails(point, EXIT_USER_ERROR, "--point '1,x': give 2 comma-separated numbers, 'x,y'")
    both = run_geoalign(
        "similarity", raster, "--point", "1,2", "--bbox", "0,0,1,1", "-o", str(tmp_path / "s.tif")
    )
    _fails(both, EXIT_USER_ERROR, "--bbox and --point were given: give only one")
    assert not list(tmp_path.iterdir())


def test_earth_search_grd_is_refused_naming_rtc(shared_data: Path, tmp_path: Path) -> None:
    catalog = shared_data / "stac" / "extracted" / "earth-search__sentinel-1-grd.json"
    recipe = tmp_path / "grd.yaml"
    recipe.write_text(
        f"aoi: [-180, -89, 180, 89]\ncatalog: {catalog}\nmodalities:\n"
        "  s1: {sensor: sentinel-1-grd, resolution: 10, collections: [sentinel-1-grd]}\n"
        "output: grd.zarr\n"
    )
    done = run_geoalign("cube", str(recipe), "--dry-run", cwd=tmp_path)
    _fails(done, EXIT_USER_ERROR, "not terrain corrected", "Use sentinel-1-rtc")


def test_misspelt_config_keys_point_at_the_line_and_the_right_name(tmp_path: Path) -> None:
    config = (REPO_ROOT / "tutorials" / "configs" / "houston2013_pixels.yaml").read_text()
    assert "  batch_size: 128" in config
    lines = config.replace("  batch_size: 128", "  batchsize: 128").splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if "batchsize" in text)
    bad = tmp_path / "pretrain.yaml"
    bad.write_text("\n".join(lines) + "\n")
    done = run_geoalign("pretrain", str(bad), cwd=tmp_path)
    _fails(done, EXIT_USER_ERROR, f"batchsize (line {line})", "did you mean 'batch_size'")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        "aoi: [0, 0, 1, 1]\noutput: x.zarr\nmodalities:\n  s2:\n    sensor: sentinel-2-l2a\n"
        "    resoluton: 10\n"
    )
    done = run_geoalign("cube", str(recipe), cwd=tmp_path)
    _fails(
        done, EXIT_USER_ERROR, "resolution (line 5): Field required", "did you mean 'resolution'"
    )
