"""Where a downstream task's data comes from: the ``task:`` section of an evaluation config.

    task = HoustonSource().load()          # LiDAR-only test set of Houston 2013
    task = TempCnnSource().load()          # crop time series, 260 + 260 rows

One class per real dataset (the loaders live in :mod:`~geoalign.models.evaluation.loaders`)
plus ``cube`` (segmentation windows of an aligned cube with a label layer, train and test parts
spatially separate) and ``arrays`` (a user's own ``.npz``). Default paths are the shared data
folder (``$GEOALIGN_DATA``, else ``../shared/data`` from the working directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from geoalign.models.evaluation.tasks import TaskData


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def resolved(self, base: Path) -> _Source:
        """A copy whose relative paths are absolute against ``base``."""
        updates = {}
        for key, value in self:
            if isinstance(value, Path) and not value.is_absolute():
                updates[key] = (base / value).resolve()
        return self.model_copy(update=updates)


def shared_data(*parts: str) -> Path:
    """``$GEOALIGN_DATA/<parts>``, or ``../shared/data/<parts>`` from the working directory."""
    root = os.environ.get("GEOALIGN_DATA")
    base = Path(root) if root else Path.cwd().parent / "shared" / "data"
    return base.joinpath(*parts)


class HoustonSource(_Source):
    """Houston 2013: train on the 2,832 training pixels, test on the 12,197 LiDAR-only ones.

    Modalities ``hsi`` ``[N, 144]`` and ``lidar`` ``[N, 21]`` in training, ``lidar`` only in
    the test set; classes 0-14 (the files' 1-15).
    """

    # Selects this source.
    kind: Literal["houston2013"] = "houston2013"
    # Folder with HSI_TrSet.mat, LiDAR_TrSet.mat, TrLabel.mat, LiDAR_TeSet.mat, TeLabel.mat.
    path: Path | None = None

    def load(self) -> TaskData:
        """Read and standardise (training statistics) the pixels."""
        from geoalign.models.evaluation.loaders import load_houston_task

        return load_houston_task(self.path or shared_data("houston2013"))


class TempCnnSource(_Source):
    """TempCNN crops: 149-date NIR/R/G pixel series, 13 classes, the authors' train/test files.

    Modality ``optical`` ``[N, 149, 3]``.
    """

    # Selects this source.
    kind: Literal["tempcnn_crops"] = "tempcnn_crops"
    # Folder with train_dataset.csv, test_dataset.csv, class_map.txt.
    path: Path | None = None

    def load(self) -> TaskData:
        """Read and standardise the series."""
        from geoalign.models.evaluation.loaders import load_tempcnn_task

        return load_tempcnn_task(self.path or shared_data("tempcnn_crops"))


class SitsModisSource(_Source):
    """sits MODIS NDVI samples (Mato Grosso): 12-date series, 4 classes, spatial blocks.

    Modality ``ndvi`` ``[N, 12, 1]``. Square blocks of ``block_degrees`` are drawn (seeded)
    into the test set until it holds ``test_fraction`` of the samples: test samples never
    share a block with training ones.
    """

    # Selects this source.
    kind: Literal["sits_modis"] = "sits_modis"
    # Folder with samples_modis_ndvi.rda.
    path: Path | None = None
    # Share of the samples (the easternmost) in the test set.
    test_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    # Edge of the square blocks, in degrees of longitude and latitude.
    block_degrees: float = Field(default=0.5, gt=0.0)
    # Seed of the block draw.
    split_seed: int = 0

    def load(self) -> TaskData:
        """Read the R data file and split it into spatial blocks."""
        from geoalign.models.evaluation.loaders import load_sits_task

        folder = self.path or shared_data("sits_modis")
        return load_sits_task(folder, self.test_fraction, self.block_degrees, self.split_seed)


class EnmapSource(_Source):
    """EnMAP Potsdam: per-pixel spectra of the provided train and test tiles, 6 classes.

    Modality ``enmap`` ``[N, B]`` (the bands that hold data); unlabelled pixels (class 0) are
    left out; classes 0-5 (the files' 1-6).
    """

    # Selects this source.
    kind: Literal["enmap_potsdam"] = "enmap_potsdam"
    # Folder with images/, labels/, train_files.csv, test_files.csv.
    path: Path | None = None
    # Also train on the validation tiles.
    include_validation: bool = False

    def load(self) -> TaskData:
        """Read the tiles and standardise the spectra."""
        from geoalign.models.evaluation.loaders import load_enmap_task

        return load_enmap_task(self.path or shared_data("enmap_potsdam"), self.include_validation)


class EnmapVegetationSource(_Source):
    """EnMAP Potsdam vegetation cover fraction at 200 reference points (regression, 0-1).

    Modality ``enmap`` ``[N, B]``: the spectrum of the pixel holding each point. Square blocks
    of ``block_m`` metres are drawn (seeded) into the test set until it holds
    ``test_fraction`` of the points.
    """

    # Selects this source.
    kind: Literal["enmap_vegetation"] = "enmap_vegetation"
    # Folder with images/ and veg-cover-fraction_potsdam_point.gpkg.
    path: Path | None = None
    # Share of the points in the test set.
    test_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    # Edge of the square blocks in metres (EPSG:32633).
    block_m: float = Field(default=600.0, gt=0.0)
    # Seed of the block draw.
    split_seed: int = 0

    def load(self) -> TaskData:
        """Read the points and the spectra under them."""
        from geoalign.models.evaluation.loaders import load_enmap_vegetation_task

        folder = self.path or shared_data("enmap_potsdam")
        return load_enmap_vegetation_task(folder, self.test_fraction, self.block_m, self.split_seed)


class CubeSource(_Source):
    """Segmentation windows of an aligned cube: a southern strip is the test set.

    Inputs ``[N, C, H, W]`` per modality (standardised with the cube's band statistics),
    targets the label layer ``[N, H, W]`` (-1 unlabelled). Training windows lie north of the
    strip, test windows inside it: no window crosses the cut.
    """

    # Selects this source.
    kind: Literal["cube"] = "cube"
    # A finished cube; relative to the YAML file.
    path: Path
    # Recipe that builds the cube when it does not exist yet (geoalign cube RECIPE).
    recipe: Path | None = None
    # Modalities read (downstream columns choose among them).
    modalities: list[str] = Field(min_length=1)
    # Label layer (a group below labels/).
    label: str
    # Class names of the label codes 0..K-1.
    class_names: list[str] = Field(min_length=2)
    # Window edge in pixels.
    window: int = Field(default=32, gt=0)
    # Share of the footprint (southern strip) holding the test windows.
    test_fraction: float = Field(default=0.3, gt=0.0, lt=1.0)
    # Minimum share of valid pixels in every modality of a window.
    min_valid: float = Field(default=0.5, ge=0.0, le=1.0)

    def load(self) -> TaskData:
        """Build the cube if needed, then read every grid window of both parts."""
        from geoalign.models.evaluation.loaders import load_cube_task

        return load_cube_task(self)


class ArraysSource(_Source):
    """Your own task in one ``.npz`` file.

    Arrays ``train/<modality>``, ``test/<modality>``, ``train_target``, ``test_target`` and
    optionally ``class_names`` (strings); shapes as :class:`TaskData` says.
    """

    # Selects this source.
    kind: Literal["arrays"] = "arrays"
    # The .npz file; relative to the YAML file.
    path: Path
    # classification, multilabel, segmentation or regression.
    task: Literal["classification", "multilabel", "segmentation", "regression"] = "classification"
    # Standardise inputs with the training part's statistics.
    standardize: bool = True

    def load(self) -> TaskData:
        """Read the arrays."""
        from geoalign.models.evaluation.loaders import load_arrays_task

        return load_arrays_task(self.path, self.task, standardize_inputs=self.standardize)


TaskSource = Annotated[
    HoustonSource
    | TempCnnSource
    | SitsModisSource
    | EnmapSource
    | EnmapVegetationSource
    | CubeSource
    | ArraysSource,
    Field(discriminator="kind"),
]
