"""The geoalign command: fast help, version, recipes end to end, errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.data import REPO_ROOT

from geoalign import __version__
from geoalign.cli.main import EXIT_NO_DATA, EXIT_USER_ERROR, main

RECIPE = REPO_ROOT / "tutorials" / "recipes" / "sen1floods11.yaml"


def test_help_is_fast_and_imports_no_heavy_library(tmp_path: Path) -> None:
    code = (
        "import sys, time; t = time.perf_counter(); from geoalign.cli.main import main; "
        "rc = main(['--help']); "
        "heavy = [m for m in ('torch', 'torchgeo', 'lightning', 'xarray', 'rasterio') "
        "if m in sys.modules]; print('HEAVY', heavy, time.perf_counter() - t)"
    )
    start = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    wall = time.perf_counter() - start
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("HEAVY")][0]
    assert "HEAVY []" in line, line
    assert "cube" in out.stdout and "search" in out.stdout
    assert wall < 5  # generous for a loaded CI machine; about 0.3 s here


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"geoalign {__version__}"


def test_command_help_joins_docstring_lines_into_paragraphs(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["cube", "--help"]) == 0
    out = capsys.readouterr().out
    assert "the fastest choice on one machine; use --workers or --scheduler to run" in out, out
    assert main(["evaluate", "--help"]) == 0
    assert "one JSON per finished cell below OUTPUT_DIR/NAME/." in capsys.readouterr().out


def test_command_line_mistakes_exit_2_with_clicks_usage_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, message in (
        (["cube"], "Missing argument 'recipe'"),
        (["similarity", "x.tif", "--point", "1,2"], "Missing option '--out'"),
        (["search", "catalog.json", "--nope"], "No such option: --nope"),
        (["search", "catalog.json", "--max-items", "many"], "Invalid value for '--max-items'"),
        (["nocommand"], "No such command 'nocommand'"),
    ):
        assert main(argv) == EXIT_USER_ERROR, argv
        err = capsys.readouterr().err
        assert message in err and "unexpected error" not in err, err


def test_recipe_dry_run_then_build_then_info(
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    del shared_data  # the recipe reads the real Sen1Floods11 chip
    recipe = tmp_path / "recipe.yaml"
    text = RECIPE.read_text().replace(
        "../../../shared/data", str(REPO_ROOT.parent / "shared" / "data")
    )
    text = text.replace(
        "sensors_file: sen1floods11_sensors.yaml",
        f"sensors_file: {RECIPE.parent / 'sen1floods11_sensors.yaml'}",
    )
    recipe.write_text(text.replace("../../out/sen1floods11.zarr", "cube.zarr"))
    assert main(["cube", str(recipe), "--dry-run"]) == 0
    assert "EPSG:32630" in capsys.readouterr().out
    assert not (tmp_path / "cube.zarr").exists()
    assert main(["cube", str(recipe)]) == 0
    assert (tmp_path / "cube.zarr" / "zarr.json").exists()
    capsys.readouterr()
    assert (
        main(["info", str(tmp_path / "cube.zarr"), "--json", "--quicklooks", str(tmp_path / "ql")])
        == 0
    )
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("]") + 1])
    assert {s["name"] for s in summary} == {"s1", "s2"}
    assert (tmp_path / "ql" / "s1_vv_vh.png").exists()
    monkeypatch.setenv("COLUMNS", "80")
    assert main(["info", str(tmp_path / "cube.zarr")]) == 0
    table = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in table) <= 80
    s1_row = next(line.split() for line in table if line.strip().startswith("s1 "))
    # short values on one line, band names whole; no 'skipped' column when nothing was skipped
    expected = "s1 sen1floods11-s1 10.0 1x2x521x416 2019-09-17 89.9% vv, vh"
    assert s1_row == expected.split() and "skipped" not in "".join(table)
    # a second build refuses to overwrite
    assert main(["cube", str(recipe)]) == EXIT_USER_ERROR
    assert "overwrite" in capsys.readouterr().err
    # the same build on a 2-process dask LocalCluster gives the same cube
    import xarray as xr

    first = xr.open_zarr(str(tmp_path / "cube.zarr"), group="s2", consolidated=False)["data"].load()
    assert main(["cube", str(recipe), "--overwrite", "--workers", "2"]) == 0
    again = xr.open_zarr(str(tmp_path / "cube.zarr"), group="s2", consolidated=False)["data"]
    xr.testing.assert_identical(first, again.load())


def test_invalid_recipe_points_at_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(
        "aoi: [0, 0, 1, 1]\noutput: x.zarr\nmodalities:\n  s2:\n    sensor: sentinel-2-l2a\n"
        "    resolution: -10\n"
    )
    assert main(["cube", str(recipe)]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "modalities.s2.resolution" in err and "line 6" in err
    assert "Traceback" not in err


def test_missing_cube_and_unknown_sensor_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(tmp_path / "nope.zarr")]) == EXIT_USER_ERROR
    assert "does not exist" in capsys.readouterr().err
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "aoi: [0, 0, 1, 1]\noutput: x.zarr\nmodalities:\n  a:\n    sensor: no-such-sensor\n"
        "    resolution: 10\n    files: [x.tif]\n    file_datetime: '2020-01-01'\n"
    )
    code = main(["cube", str(recipe)])
    err = capsys.readouterr().err
    assert code in (EXIT_USER_ERROR, EXIT_NO_DATA)
    assert "x.tif" in err or "no-such-sensor" in err


def test_sensors_command_lists_builtins(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sensors"]) == 0
    out = capsys.readouterr().out
    assert "sentinel-2-l2a" in out and "naip" in out
