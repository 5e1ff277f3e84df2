"""Recipes: a YAML file that describes an aligned training set, validated with pydantic.

Example (every field is documented on the models below)::

    aoi: [-0.80, 38.10, -0.75, 38.13]       # lon/lat bbox, a vector file, or GeoJSON
    datetime: 2019-01-01/2019-12-31
    catalog: earth-search                   # STAC API URL, preset, or local catalog file
    modalities:
      s2:
        sensor: sentinel-2-l2a
        collections: [sentinel-2-l2a]
        bands: [blue, green, red, nir]
        resolution: 10
        query: {"eo:cloud_cover": {"lt": 30}}
      s1:
        sensor: sentinel-1-rtc
        catalog: planetary-computer
        collections: [sentinel-1-rtc]
        resolution: 10
    labels:
      - name: landcover
        source: labels.gpkg
        column: class
    output: cube.zarr

Relative paths are resolved against the recipe file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from geoalign.config_errors import invalid
from geoalign.errors import DataFileNotFoundError, InvalidInputError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModalityRecipe(_Strict):
    """One sensor of the cube."""

    sensor: str = Field(description="Sensor name, e.g. sentinel-2-l2a (see geoalign sensors).")
    resolution: float = Field(gt=0, description="Pixel size in cube CRS units (metres for UTM).")
    bands: list[str] | None = Field(None, description="Band names to keep; all when omitted.")
    catalog: str | None = Field(None, description="Overrides the recipe's catalog for this sensor.")
    collections: list[str] | None = Field(None, description="STAC collections to search.")
    query: dict[str, Any] | None = Field(None, description="STAC query-extension filter.")
    filter: dict[str, Any] | str | None = Field(None, description="CQL2 filter (JSON or text).")
    max_items: int | None = Field(None, gt=0, description="Cap on items found for this sensor.")
    files: list[str | dict[str, str]] | None = Field(
        None,
        description="Local rasters instead of a search: one item per file, or per mapping "
        "{asset_key: file} (e.g. one file per Sentinel-2 band).",
    )
    file_datetime: str | None = Field(
        None, description="Acquisition time of the local files (ISO 8601), required with files."
    )
    file_band_names: list[str] | None = Field(
        None, description="Band names of the local files, in file order (else their descriptions)."
    )
    time: Literal["series", "median", "least_cloudy"] = Field(
        "series", description="Keep each solar day, or composite all dates."
    )
    period: str | None = Field(
        None,
        description="With a composite: one per pandas period (M, Q, Y, W); all dates if unset.",
    )
    resampling: str = Field("nearest", description="GDAL resampling for sources on other grids.")
    mask_clouds: bool = Field(True, description="Set cloud/shadow pixels to no-data (mask band).")


class LabelRecipe(_Strict):
    """A label layer placed on the grid."""

    name: str = Field(description="Group name under labels/.")
    source: str = Field(description="Vector file (polygons or points) or label raster.")
    column: str | None = Field(None, description="Attribute with the class or value.")
    resolution: float | None = Field(
        None, gt=0, description="Pixel size; base resolution if unset."
    )
    ignore_values: list[int] = Field(
        default_factory=list, description="Raster values meaning none."
    )
    layer: str | None = Field(None, description="Layer of a multi-layer vector file.")


class Recipe(_Strict):
    """An aligned training set: where, when, which sensors, and where to write it."""

    aoi: list[float] | str | dict[str, Any] = Field(
        description="lon/lat bbox [minx, miny, maxx, maxy], a vector file, or a GeoJSON object."
    )
    aoi_crs: str | None = Field(
        None, description="CRS of a bbox given in other units than lon/lat."
    )
    datetime: str | None = Field(None, description="ISO 8601 instant or interval a/b (open: ..).")
    catalog: str | None = Field(
        None, description="STAC API URL, preset (earth-search, planetary-computer) or local file."
    )
    crs: str | None = Field(None, description="Cube CRS; the UTM zone of the AOI when omitted.")
    sensors_file: str | None = Field(
        None, description="A YAML file of extra sensor descriptions (geoalign.sensors schema)."
    )
    base_resolution: float | None = Field(None, gt=0, description="Reference pixel size.")
    origin: tuple[float, float] | None = Field(
        None, description="A point (x, y) in cube CRS units on every modality's pixel edges."
    )
    modalities: dict[str, ModalityRecipe] = Field(description="Sensors, keyed by group name.")
    labels: list[LabelRecipe] = Field(default_factory=list, description="Label layers.")
    output: str = Field(description="Output Zarr store.")
    compression: Literal["none", "lz4", "zstd"] = Field("none", description="Chunk compression.")
    on_error: Literal["fail", "skip"] = Field("fail", description="Missing/corrupt assets policy.")
    max_bytes: int = Field(
        50_000_000_000, gt=0, description="Builds estimated above this many bytes ask first."
    )
    cache_dir: str | None = Field(
        None,
        description="Folder for derived files (point clouds rasterized per item); default "
        "$GEOALIGN_CACHE_DIR or ~/.cache/geoalign.",
    )

    @field_validator("modalities")
    @classmethod
    def _not_empty(cls, value: dict[str, ModalityRecipe]) -> dict[str, ModalityRecipe]:
        if not value:
            raise ValueError("at least one modality is needed")
        return value


def load_recipe(path: str | os.PathLike[str]) -> tuple[Recipe, Path]:
    """Read and validate a recipe; return it with the folder its relative paths refer to.

    Raises:
        DataFileNotFoundError: The file does not exist.
        InvalidInputError: The YAML is malformed or a field is invalid (with its line number).
    """
    file = Path(path)
    if not file.exists():
        raise DataFileNotFoundError(f"recipe {file} does not exist")
    text = file.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise InvalidInputError(f"recipe {file} is not valid YAML: {error}") from error
    if not isinstance(data, dict):
        raise InvalidInputError(f"recipe {file} must be a mapping of fields (aoi, modalities...)")
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as error:
        raise invalid("recipe", error, Recipe, file) from None
    return recipe, file.resolve().parent
