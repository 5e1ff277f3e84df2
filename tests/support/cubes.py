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
