"""``geoalign cube --dry-run`` and the size limit, driven as a user drives them (subprocess).

The recipe is the real Sen1Floods11 chip's (Sentinel-1 + Sentinel-2 + label, about 6 MB);
``--max-gb 0.001`` makes it "large". A point-cloud recipe (the demo's) checks that a dry run
rasterizes nothing.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support.cli import run_geoalign
from support.data import REPO_ROOT

from geoalign.cli.main import main
from geoalign.demo import DemoArea, make_demo_data

RECIPE = REPO_ROOT / "tutorials" / "recipes" / "sen1floods11.yaml"


def _recipe(folder: Path, shared: Path) -> Path:
    text = RECIPE.read_text().replace("../../../shared/data", str(shared))
    text = text.replace(
        "sensors_file: sen1floods11_sensors.yaml",
        f"sensors_file: {RECIPE.parent / 'sen1floods11_sensors.yaml'}",
    )
    path = folder / "recipe.yaml"
    path.write_text(text.replace("../../out/sen1floods11.zarr", "cube.zarr"))
    return path


def _cube(*args: str, cwd: Path, answer: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_geoalign("cube", *args, cwd=cwd, answer=answer)


def test_dry_run_then_size_limit(shared_data: Path, tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, shared_data)
    done = _cube(str(recipe), "--dry-run", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [ln.split() for ln in done.stdout.splitlines() if ln.split()[:1] in (["s1"], ["s2"])]
    # modality, sensor, items, dates, grid, res, bands, MB, time
    assert len(rows) == 2 and all(r[2] == "1" and r[4] == "521x416" for r in rows), rows
    assert "estimated size:" in done.stdout and "estimated time: about" in done.stdout
    assert "dry run: no pixel was read and nothing was written" in done.stdout
    assert not (tmp_path / "cube.zarr").exists()
    # above the limit: the question, and "no" writes nothing (exit 1)
    no = _cube(str(recipe), "--max-gb", "0.001", cwd=tmp_path, answer="n\n")
    assert no.returncode == 1, no.stderr
    assert "above the limit of 0.00 GB" in no.stdout and "build cancelled" in no.stdout
    assert not (tmp_path / "cube.zarr").exists()
    # nobody to answer (stdin closed): a clear error, not a hang or a traceback (exit 2)
    closed = _cube(str(recipe), "--max-gb", "0.001", cwd=tmp_path)
    assert closed.returncode == 2
    assert "no answer came" in closed.stderr and "--yes" in closed.stderr
    assert "Traceback" not in closed.stderr
    # --yes builds without asking; a bad limit is refused
    yes = _cube(str(recipe), "--max-gb", "0.001", "--yes", cwd=tmp_path)
    assert yes.returncode == 0, yes.stderr
    assert "Go on?" not in yes.stdout and (tmp_path / "cube.zarr" / "zarr.json").is_file()
    bad = _cube(str(recipe), "--max-gb", "-1", "--dry-run", cwd=tmp_path)
    assert bad.returncode == 2 and "--max-gb -1" in bad.stderr


def test_dry_run_rasterizes_no_point_cloud(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_demo_data(tmp_path, area=DemoArea(size=600.0), point_density=0.2)
    assert main(["cube", str(data.recipe), "--dry-run"]) == 0
    out = capsys.readouterr().out
    lidar = next(ln.split() for ln in out.splitlines() if ln.split()[:1] == ["lidar"])
    assert lidar[4] == "300x300" and lidar[6] == "6", lidar  # 2 m grid, six products
    assert not (tmp_path / "cache").exists()  # nothing rasterized
    assert not (tmp_path / "cube.zarr").exists()
