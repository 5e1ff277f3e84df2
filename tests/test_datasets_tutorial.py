"""The sampling tutorial runs on the cube of the Sen1Floods11 recipe."""

from __future__ import annotations

import dataclasses
import os
import runpy
from pathlib import Path

import pytest
from support.data import REPO_ROOT

RECIPE = REPO_ROOT / "tutorials" / "recipes" / "sen1floods11.yaml"
TUTORIAL = REPO_ROOT / "tutorials" / "sampling.py"


def test_sampling_tutorial_runs(
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe
    from geoalign.sensors import reset_sensors

    del shared_data  # the recipe reads the real chip from the shared data folder
    recipe, base = load_recipe(RECIPE)
    try:
        cube = dataclasses.replace(plan_recipe(recipe, base), output=tmp_path / "c.zarr").write()
    finally:
        reset_sensors()
    monkeypatch.setenv("GEOALIGN_TUTORIAL_CUBE", os.fspath(cube))
    runpy.run_path(str(TUTORIAL), run_name="__main__")
    out = capsys.readouterr().out
    assert "label_water" in out and "water fraction in the last batch" in out
