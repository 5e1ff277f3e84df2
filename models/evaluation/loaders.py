"""Readers of the real downstream datasets into :class:`TaskData` (see ``sources.py``).

Every loader standardises each input channel with the training part's statistics only.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError
from geoalign.models.array_data import channel_stats
from geoalign.models.evaluation.tasks import IGNORE, TaskData, TaskKind

if TYPE_CHECKING:
    from geoalign.models.evaluation.sources import CubeSource


def standardize(
    train: dict[str, np.ndarray], test: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Both parts standardised per channel with the training part's mean and std."""
    stats = {m: channel_stats(a) for m, a in train.items()}

    def apply(part: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {m: ((a - stats[m][0]) / stats[m][1]).astype(np.float32) for m, a in part.items()}

    return apply(train), apply(test)


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        raise DataFileNotFoundError(f"{path} not found: {what}")
    return path


def load_houston_task(folder: Path) -> TaskData:
    """Houston 2013: HSI + LiDAR training pixels, LiDAR-only test pixels (see HoustonSource)."""
    from geoalign.models.houston import CLASSES, _read_mat, load_houston2013

    pixels = load_houston2013(folder)
    hint = "point task.path at the houston2013 folder (LiDAR_TeSet.mat, TeLabel.mat)"
    lidar_test = _read_mat(_require(folder / "LiDAR_TeSet.mat", hint), "LiDAR_TeSet")
    labels_test = _read_mat(_require(folder / "TeLabel.mat", hint), "TeLabel").reshape(-1)
    if lidar_test.shape[0] != labels_test.size:
        raise CorruptDataError(
            f"{folder}: {lidar_test.shape[0]} LiDAR test rows but {labels_test.size} labels"
        )
    train, test = standardize(
        {"hsi": pixels.hsi, "lidar": pixels.lidar}, {"lidar": lidar_test.astype(np.float32)}
    )
    return TaskData(
        kind="classification",
        train=train,
        train_target=pixels.labels - 1,
        test=test,
        test_target=labels_test.astype(np.int64) - 1,
        class_names=CLASSES,
        metadata={"source": str(folder), "split": "standard DFC 2013 train / LiDAR test"},
    )


def _tempcnn_rows(path: Path) -> tuple[np.ndarray, np.ndarray]:
    hint = "point task.path at the tempcnn_crops folder"
    try:
        table = np.loadtxt(_require(path, hint), delimiter=",", dtype=np.float64)
    except ValueError as error:
        raise CorruptDataError(f"cannot read {path}: {error}") from None
    if table.ndim != 2 or (table.shape[1] - 2) % 3:
        raise CorruptDataError(
            f"{path}: expected rows [class, polygon, date1.NIR, date1.R, date1.G, ...], got "
            f"{table.shape[1]} columns"
        )
    series = table[:, 2:].reshape(table.shape[0], -1, 3).astype(np.float32)  # [N, S, 3]
    return series, table[:, 0].astype(np.int64)


def load_tempcnn_task(folder: Path) -> TaskData:
    """TempCNN example: NIR/R/G series ``[N, 149, 3]``, classes 0-12 (see TempCnnSource)."""
    x_train, y_train = _tempcnn_rows(folder / "train_dataset.csv")
    x_test, y_test = _tempcnn_rows(folder / "test_dataset.csv")
    names: list[str] = []
    class_map = folder / "class_map.txt"
    if class_map.is_file():
        with class_map.open() as handle:
            names = [row["class"] for row in csv.DictReader(handle)]
    k = int(max(y_train.max(), y_test.max())) + 1
    names = names if len(names) == k else [f"class {i}" for i in range(k)]
    train, test = standardize({"optical": x_train}, {"optical": x_test})
    return TaskData(
        "classification",
        train,
        y_train,
        test,
        y_test,
        tuple(names),
        {"source": str(folder), "split": "authors' train_dataset.csv / test_dataset.csv"},
    )


def spatial_blocks(
    longitude: np.ndarray, latitude: np.ndarray, *, block: float, test_fraction: float, seed: int
) -> np.ndarray:
    """Test mask of a spatially blocked split.

    Square blocks of ``block`` degrees are drawn (seeded) into the test set until it holds
    ``test_fraction`` of the samples.
    """
    col = np.floor(longitude / block).astype(np.int64)
    row = np.floor(latitude / block).astype(np.int64)
    _, inverse, counts = np.unique(col * 100_003 + row, return_inverse=True, return_counts=True)
    chosen = np.zeros(counts.size, dtype=bool)
    total = 0
    for index in np.random.default_rng(seed).permutation(counts.size):
        if total >= test_fraction * longitude.size:
            break
        chosen[index] = True
        total += counts[index]
    return chosen[inverse]


def load_sits_task(folder: Path, test_fraction: float, block: float, seed: int) -> TaskData:
    """The sits ``samples_modis_ndvi`` NDVI series ``[N, 12, 1]``, spatially blocked split."""
    path = _require(folder / "samples_modis_ndvi.rda", "point task.path at the sits_modis folder")
    try:
        import rdata
    except ImportError:  # pragma: no cover - a declared dependency
        raise InvalidInputError(
            "reading .rda files needs the rdata package: pip install rdata"
        ) from None
    try:
        with warnings.catch_warnings():  # rdata: "Missing constructor for R class tbl"
            warnings.simplefilter("ignore", UserWarning)
            frame = rdata.read_rda(str(path))["samples_modis_ndvi"]
    except Exception as error:  # rdata raises plain exceptions on malformed files
        raise CorruptDataError(f"cannot read {path}: {error}") from None
    names = sorted(str(v) for v in set(frame["label"]))
    codes = {name: i for i, name in enumerate(names)}
    series = np.stack([np.asarray(ts["NDVI"], dtype=np.float32) for ts in frame["time_series"]])[
        ..., None
    ]  # [N, S, 1]
    labels = np.array([codes[str(v)] for v in frame["label"]], dtype=np.int64)
    longitude = np.asarray(frame["longitude"], dtype=np.float64)
    latitude = np.asarray(frame["latitude"], dtype=np.float64)
    test_rows = spatial_blocks(
        longitude, latitude, block=block, test_fraction=test_fraction, seed=seed
    )
    train, test = standardize({"ndvi": series[~test_rows]}, {"ndvi": series[test_rows]})
    return TaskData(
        "classification",
        train,
        labels[~test_rows],
        test,
        labels[test_rows],
        tuple(names),
        {
            "source": str(path),
            "split": f"{block:g} degree blocks, seed {seed}, test share {test_fraction:g}",
        },
    )


def _enmap_tiles(folder: Path, listing: str) -> tuple[np.ndarray, np.ndarray]:
    import rasterio

    table = _require(folder / listing, "point task.path at the enmap_potsdam folder")
    spectra, labels = [], []
    with table.open() as handle:
        for row in csv.DictReader(handle):
            with rasterio.open(folder / row["image"]) as src:
                image = src.read().astype(np.float32)  # [B, H, W]
                nodata = src.nodata
            with rasterio.open(folder / row["mask"]) as src:
                label = src.read(1).astype(np.int64)
            pixels = image.reshape(image.shape[0], -1).T  # [H*W, B]
            codes = label.reshape(-1)
            keep = codes > 0
            if nodata is not None:
                keep &= ~(pixels == nodata).all(axis=1)
            spectra.append(pixels[keep])
            labels.append(codes[keep] - 1)
    return np.concatenate(spectra), np.concatenate(labels)


def load_enmap_task(folder: Path, include_validation: bool) -> TaskData:
    """EnMAP Potsdam tiles: labelled pixel spectra of the train (+val) and test tiles."""
    x_train, y_train = _enmap_tiles(folder, "train_files.csv")
    if include_validation:
        x_val, y_val = _enmap_tiles(folder, "validation_files.csv")
        x_train, y_train = np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val])
    x_test, y_test = _enmap_tiles(folder, "test_files.csv")
    # bad bands hold the no-data value in every pixel: keep the bands with data
    good = ~((x_train == -32768).all(axis=0) | (x_test == -32768).all(axis=0))
    if ((x_train[:, good] == -32768).any()) or ((x_test[:, good] == -32768).any()):
        raise CorruptDataError(f"{folder}: labelled pixels with partial no-data spectra")
    train, test = standardize({"enmap": x_train[:, good]}, {"enmap": x_test[:, good]})
    names = tuple(f"class {i}" for i in range(1, 7))  # codes 1-6; names not in the files
    return TaskData(
        "classification",
        train,
        y_train,
        test,
        y_test,
        names,
        {
            "source": str(folder),
            "split": "train_files.csv / test_files.csv",
            "bands": str(int(good.sum())),
        },
    )


def load_enmap_vegetation_task(
    folder: Path, test_fraction: float, block: float, seed: int
) -> TaskData:
    """EnMAP Potsdam vegetation cover fraction (0-1) at 200 reference points: regression.

    The spectrum of the 30 m pixel holding each point (from the tile that contains it); test
    points are whole spatial blocks of ``block`` metres (see :func:`spatial_blocks`).
    """
    import geopandas
    import rasterio

    hint = "point task.path at the enmap_potsdam folder"
    points = geopandas.read_file(_require(folder / "veg-cover-fraction_potsdam_point.gpkg", hint))
    xs, ys = points.geometry.x.to_numpy(), points.geometry.y.to_numpy()
    spectra = np.full((len(points), 0), np.nan, np.float32)
    found = np.zeros(len(points), dtype=bool)
    for tile in sorted((folder / "images").glob("*.tif")):
        with rasterio.open(tile) as src:
            if str(src.crs) != str(points.crs):
                raise CorruptDataError(f"{tile} is in {src.crs}, the points in {points.crs}")
            b = src.bounds
            inside = (xs >= b.left) & (xs < b.right) & (ys > b.bottom) & (ys <= b.top) & ~found
            if not inside.any():
                continue
            image = src.read().astype(np.float32)
            if spectra.shape[1] == 0:
                spectra = np.full((len(points), image.shape[0]), np.nan, np.float32)
            rows, cols = rasterio.transform.rowcol(src.transform, xs[inside], ys[inside])
            spectra[inside] = image[:, np.asarray(rows), np.asarray(cols)].T
            found |= inside
    if not found.all():
        raise CorruptDataError(f"{(~found).sum()} vegetation points lie outside every tile")
    good = ~(spectra == -32768).all(axis=0)
    spectra = spectra[:, good]
    target = points["vegetation_fraction"].to_numpy(np.float32)
    test = spatial_blocks(xs, ys, block=block, test_fraction=test_fraction, seed=seed)
    train, test_inputs = standardize({"enmap": spectra[~test]}, {"enmap": spectra[test]})
    return TaskData(
        "regression",
        train,
        target[~test],
        test_inputs,
        target[test],
        ("vegetation fraction",),
        {"source": str(folder), "split": f"{block:g} m blocks, seed {seed}"},
    )


def load_arrays_task(path: Path, kind: TaskKind, *, standardize_inputs: bool = True) -> TaskData:
    """A user's ``.npz`` task (see ArraysSource)."""
    _require(path, "task.path must name the .npz file")
    with np.load(path, allow_pickle=False) as content:
        files = content.files
        train = {
            k.split("/", 1)[1]: np.asarray(content[k], np.float32)
            for k in files
            if k.startswith("train/")
        }
        test = {
            k.split("/", 1)[1]: np.asarray(content[k], np.float32)
            for k in files
            if k.startswith("test/")
        }
        missing = [k for k in ("train_target", "test_target") if k not in files]
        if missing or not train:
            raise InvalidInputError(
                f"{path} needs train/<modality>, test/<modality>, train_target and test_target "
                f"arrays (it has {sorted(files)})"
            )
        y_train, y_test = content["train_target"], content["test_target"]
        names = tuple(str(v) for v in content["class_names"]) if "class_names" in files else ()
    if kind != "regression":
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
        if not names:
            k = int(max(y_train.max(), y_test.max())) + (1 if kind != "multilabel" else 0)
            k = y_train.shape[1] if kind == "multilabel" else k
            names = tuple(f"class {i}" for i in range(k))
    else:
        y_train, y_test = y_train.astype(np.float32), y_test.astype(np.float32)
    if standardize_inputs:
        train, test = standardize(train, test)
    return TaskData(kind, train, y_train, test, y_test, names, {"source": str(path)})


def load_cube_task(source: CubeSource) -> TaskData:
    """Grid windows of a cube, north (train) and south strip (test), with a label layer."""
    import shapely
    import torch
    from torch.utils.data import DataLoader

    from geoalign.datasets import (
        GridWindowSampler,
        collate_samples,
        compute_band_stats,
        open_cube_dataset,
        read_band_stats,
    )

    path = _build_cube(source)
    for name in source.modalities:
        if read_band_stats(path, name) is None:
            compute_band_stats(path, name)
    dataset = open_cube_dataset(path, source.modalities, labels=[source.label], normalize=True)
    xmin, ymin, xmax, ymax = (float(v) for v in dataset.index.total_bounds)
    cut = ymin + source.test_fraction * (ymax - ymin)
    parts = {}
    for part, roi in (
        ("test", shapely.box(xmin, ymin, xmax, cut)),
        ("train", shapely.box(xmin, cut, xmax, ymax)),
    ):
        queries = list(
            GridWindowSampler(dataset, source.window, min_valid=source.min_valid, roi=roi)
        )
        loader = DataLoader(dataset, sampler=queries, batch_size=64, collate_fn=collate_samples)
        inputs: dict[str, list[np.ndarray]] = {m: [] for m in source.modalities}
        targets = []
        for batch in loader:
            for m in source.modalities:
                x = batch[m]
                valid = batch.get(f"{m}_valid")
                inputs[m].append(x.numpy().astype(np.float32))
                if valid is not None:
                    del valid
            label = batch[f"label_{source.label.removeprefix('labels/')}"]
            targets.append(torch.as_tensor(label).numpy().astype(np.int64))
        parts[part] = ({m: np.concatenate(v) for m, v in inputs.items()}, np.concatenate(targets))
    k = len(source.class_names)
    for part, (_, target) in parts.items():
        bad = (target >= k) | (target < IGNORE)
        if bad.any():
            raise InvalidInputError(
                f"label {source.label!r} has codes {sorted(set(target[bad].tolist()))} in the "
                f"{part} windows but only {k} class_names: list a name per code 0..K-1"
            )
    (train, y_train), (test, y_test) = parts["train"], parts["test"]
    return TaskData(
        "segmentation",
        train,
        y_train,
        test,
        y_test,
        tuple(source.class_names),
        {"source": str(path), "split": f"test: southern {source.test_fraction:g} of the footprint"},
    )


def _build_cube(source: CubeSource) -> Path:
    """The cube of ``source``, built from its recipe when the store does not exist."""
    if source.path.exists():
        return source.path
    if source.recipe is None:
        raise DataFileNotFoundError(
            f"cube {source.path} does not exist: build it (geoalign cube RECIPE) or give "
            "task.recipe to build it on first use"
        )
    import dataclasses

    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe
    from geoalign.sensors import reset_sensors

    recipe, base = load_recipe(source.recipe)
    try:
        run = plan_recipe(recipe, base)
        return dataclasses.replace(run, output=source.path).write()
    finally:
        reset_sensors()
