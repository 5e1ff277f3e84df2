"""Turn a validated recipe into a cube: search each sensor, plan, and build.

This is the function behind ``geoalign cube RECIPE``; it holds no logic of its own beyond
resolving the recipe's paths and calling :mod:`geoalign.search` and :mod:`geoalign.cube`.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pystac

from geoalign.cube import CubePlan, ModalityRequest, plan_cube, write_cube
from geoalign.errors import InvalidInputError
from geoalign.labels import LabelLayer
from geoalign.recipe import ModalityRecipe, Recipe


def _resolve(base: Path, value: str) -> str:
    """Resolve a relative local path against the recipe folder; leave URLs and names alone."""
    if "://" in value or value in ("earth-search", "planetary-computer"):
        return value
    path = Path(value)
    return os.path.normpath(path if path.is_absolute() else (base / path))


def recipe_aoi(recipe: Recipe, base: Path) -> Any:
    """The recipe's area of interest: a bbox tuple, a resolved file path or GeoJSON."""
    return _aoi(recipe, base)


def recipe_output(recipe: Recipe, base: Path) -> Path:
    """The cube the recipe writes (resolved against the recipe folder)."""
    return Path(_resolve(base, recipe.output))


def _aoi(recipe: Recipe, base: Path) -> Any:
    if isinstance(recipe.aoi, str):
        return _resolve(base, recipe.aoi)
    if isinstance(recipe.aoi, list):
        if len(recipe.aoi) != 4:
            raise InvalidInputError(
                f"aoi has {len(recipe.aoi)} numbers: a bbox is [minx, miny, maxx, maxy]"
            )
        return tuple(recipe.aoi)
    return recipe.aoi


def find_items(
    name: str, modality: ModalityRecipe, recipe: Recipe, base: Path
) -> list[pystac.Item]:
    """The STAC items of one modality: local files turned into items, or a catalog search."""
    if modality.files:
        from geoalign.stac_items import items_from_rasters

        if not modality.file_datetime:
            raise InvalidInputError(
                f"modalities.{name}.files needs modalities.{name}.file_datetime (ISO 8601), the "
                "acquisition time of the files"
            )
        when = dt.datetime.fromisoformat(modality.file_datetime.replace("Z", "+00:00"))
        files = [
            _resolve(base, f)
            if isinstance(f, str)
            else {k: _resolve(base, v) for k, v in f.items()}
            for f in modality.files
        ]
        return list(
            items_from_rasters(
                files,
                collection=name,
                datetime=when,
                sensor_band_names=modality.file_band_names,
            )
        )
    source = modality.catalog or recipe.catalog
    if source is None:
        raise InvalidInputError(
            f"modality {name!r} has neither files nor a catalog: set catalog (a STAC API URL, "
            "'earth-search', 'planetary-computer' or a local catalog file) in the recipe"
        )
    from geoalign.search import search_items

    found = search_items(
        _resolve(base, source),
        aoi=_aoi(recipe, base),
        aoi_crs=recipe.aoi_crs,
        datetime=recipe.datetime,
        collections=modality.collections,
        query=modality.query,
        filter=modality.filter,
        max_items=modality.max_items,
    )
    return list(found)


def _request(name: str, modality: ModalityRecipe, recipe: Recipe, base: Path) -> ModalityRequest:
    """The build request of one modality (a LidarRequest for point clouds with a cache_dir)."""
    fields: dict[str, Any] = {
        "name": name,
        "sensor": modality.sensor,
        "items": find_items(name, modality, recipe, base),
        "resolution": modality.resolution,
        "bands": modality.bands,
        "time": modality.time,
        "period": modality.period,
        "resampling": modality.resampling,
        "mask_clouds": modality.mask_clouds,
    }
    if recipe.cache_dir is not None:
        from geoalign.sensors import get_sensor

        if get_sensor(modality.sensor).kind == "lidar_points":
            from geoalign.lidar import LidarRequest

            cache = Path(_resolve(base, recipe.cache_dir)) / "lidar"
            return LidarRequest(**fields, cache_dir=cache)
    return ModalityRequest(**fields)


@dataclass
class RecipeRun:
    """A recipe resolved into requests, and the plan made from them."""

    recipe: Recipe
    requests: list[ModalityRequest]
    labels: list[LabelLayer]
    plan: CubePlan
    output: Path

    def write(
        self, *, overwrite: bool = False, on_tile: Callable[[int, int], None] | None = None
    ) -> Path:
        """Write the planned cube (see :func:`geoalign.cube.write_cube`); return its path."""
        return write_cube(
            self.output,
            self.plan,
            overwrite=overwrite,
            compression=self.recipe.compression,
            recipe=self.recipe.model_dump(mode="json"),
            on_tile=on_tile,
        )


def search_recipe(recipe: Recipe, base: Path) -> list[ModalityRequest]:
    """Load the recipe's sensors file and find every modality's items (searches or files)."""
    if recipe.sensors_file:
        from geoalign.sensors import load_sensor_file

        load_sensor_file(_resolve(base, recipe.sensors_file))
    return [_request(name, modality, recipe, base) for name, modality in recipe.modalities.items()]


def plan_recipe(
    recipe: Recipe, base: Path, requests: list[ModalityRequest] | None = None
) -> RecipeRun:
    """Search every sensor and plan the cube.

    ``requests`` from :func:`search_recipe` skip the searches. Raster pixels are not read;
    point clouds are rasterized (into the cache).
    """
    if requests is None:
        requests = search_recipe(recipe, base)
    labels = [
        LabelLayer(
            name=label.name,
            source=_resolve(base, label.source),
            column=label.column,
            resolution=label.resolution,
            ignore_values=tuple(label.ignore_values),
            layer=label.layer,
        )
        for label in recipe.labels
    ]
    plan = plan_cube(
        requests,
        aoi=_aoi(recipe, base),
        aoi_crs=recipe.aoi_crs,
        crs=recipe.crs,
        base_resolution=recipe.base_resolution,
        origin=recipe.origin,
        labels=labels,
        on_error=recipe.on_error,
    )
    return RecipeRun(recipe, requests, labels, plan, recipe_output(recipe, base))


def run_recipe(
    recipe: Recipe,
    base: Path,
    *,
    overwrite: bool = False,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Plan and build the cube a recipe describes; return the cube's path."""
    return plan_recipe(recipe, base).write(overwrite=overwrite, on_tile=on_tile)
