"""Data-layer commands: ``search``, ``cube``, ``info``, ``sensors``.

Thin wrappers: parse arguments, call the library, print with rich. Library imports happen inside
the commands so that ``geoalign --help`` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from geoalign.cli.options import parse_area
from geoalign.errors import InvalidInputError


def _table(rows: list[dict[str, Any]], title: str) -> None:
    from rich import box
    from rich.table import Table

    from geoalign.cli.console import plain_console

    table = Table(title=title, box=box.SIMPLE_HEAD, collapse_padding=True, pad_edge=False)
    if not rows:
        plain_console().print(f"{title}: nothing")
        return
    for column in rows[0]:
        # single-token columns (names, sizes, dates) keep one line; text columns wrap at spaces
        single_token = all(" " not in str(row[column]) for row in rows)
        table.add_column(str(column), overflow="fold", no_wrap=single_token)
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    plain_console().print(table)


def search(
    catalog: Annotated[str, typer.Argument(help="STAC API URL, preset or local catalog file.")],
    bbox: Annotated[str | None, typer.Option(help="lon/lat bbox 'minx,miny,maxx,maxy'.")] = None,
    aoi: Annotated[str | None, typer.Option(help="Vector file or GeoJSON with the AOI.")] = None,
    datetime: Annotated[str | None, typer.Option(help="ISO 8601 instant or a/b interval.")] = None,
    collection: Annotated[
        list[str] | None, typer.Option("--collection", "-c", help="Collection (repeatable).")
    ] = None,
    max_cloud: Annotated[float | None, typer.Option(help="Keep eo:cloud_cover below this.")] = None,
    max_items: Annotated[int | None, typer.Option(help="Stop after this many items.")] = 100,
    save: Annotated[
        Path | None, typer.Option(help="Save the items (.json, .ndjson or .parquet).")
    ] = None,
) -> None:
    """Search a STAC API or local catalog and print the items found."""
    from geoalign.search import search_items, write_catalog

    area = parse_area(bbox, None, aoi)
    query = {"eo:cloud_cover": {"lt": max_cloud}} if max_cloud is not None else None
    items = search_items(
        catalog,
        aoi=area if bbox is None else None,
        bbox=area if bbox is not None else None,
        datetime=datetime,
        collections=collection,
        query=query,
        max_items=max_items,
    )
    rows = [
        {
            "id": item.id,
            "collection": item.collection_id or "",
            "datetime": str(item.datetime or item.properties.get("start_datetime", ""))[:19],
            "cloud": item.properties.get("eo:cloud_cover", ""),
            "tile": item.properties.get("s2:mgrs_tile", item.properties.get("grid:code", "")),
        }
        for item in items
    ]
    _table(rows, f"{len(rows)} items from {catalog}")
    if save is not None:
        suffix = save.suffix.lower()
        fmt = {".ndjson": "ndjson", ".parquet": "geoparquet"}.get(suffix, "json")
        write_catalog(list(items), save, format=fmt)  # type: ignore[arg-type]
        typer.echo(f"saved {len(rows)} items to {save}")


def cube(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML describing the cube.")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan only: items, grid, size; read no pixels.")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing cube.")] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask before large builds.")
    ] = False,
    max_gb: Annotated[
        float | None,
        typer.Option(
            help="Ask before builds estimated above this many GB (default: the recipe's "
            "max_bytes, 50 GB)."
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Run on a dask LocalCluster with this many processes.")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option(help="Run on an existing dask scheduler (tcp://host:8786).")
    ] = None,
) -> None:
    """Build (or resume) the aligned cube a recipe describes.

    By default the build uses dask's threaded scheduler, the fastest choice on one machine; use
    --workers or --scheduler to run the same build on a dask.distributed cluster.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
    from rich.text import Text

    from geoalign.cli.console import plain_console
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe, recipe_output, search_recipe
    from geoalign.recipe_estimate import estimate_build, format_seconds

    console = plain_console()
    if max_gb is not None and max_gb <= 0:
        raise InvalidInputError(f"--max-gb {max_gb}: give a positive size in GB")
    parsed, base = load_recipe(recipe)
    with console.status("searching..."):
        requests = search_recipe(parsed, base)
    estimate = estimate_build(parsed, base, requests, recipe_output(parsed, base))
    crs = f"EPSG:{estimate.epsg}" if estimate.epsg else "a custom CRS"
    _table(estimate.rows(), f"cube plan, CRS {crs}")
    size = estimate.nbytes
    console.print(
        f"estimated size: {size / 1e6:,.1f} MB (uncompressed) -> {estimate.output}\n"
        f"estimated time: about {format_seconds(estimate.seconds)} on 2 cores "
        "(rough: measured on local files; remote reads depend on the network)"
    )
    if dry_run:
        console.print("dry run: no pixel was read and nothing was written")
        return
    limit = max_gb * 1e9 if max_gb is not None else parsed.max_bytes
    if size > limit and not yes and not _confirm_size(size, limit):
        console.print("build cancelled: nothing was written (--yes skips this question)")
        raise typer.Exit(1)
    with console.status("planning (point clouds are rasterized now)..."):
        run = plan_recipe(parsed, base, requests)
    with (
        _dask_client(workers, scheduler),
        Progress(
            *Progress.get_default_columns()[:1],
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        task = progress.add_task("writing tiles", total=None)

        def on_tile(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        path = run.write(overwrite=overwrite, on_tile=on_tile)
    console.print(Text.assemble(("cube written:", "green"), f" {path}"))
    from geoalign.summary import summarize

    _print_skipped(summarize(path))


def _confirm_size(size: int, limit: float) -> bool:
    """Ask whether to go on with a build above the size limit (False: the user said no)."""
    try:
        return typer.confirm(
            f"this build writes about {size / 1e9:.2f} GB, above the limit of "
            f"{limit / 1e9:.2f} GB (--max-gb, or max_bytes in the recipe). Go on?"
        )
    except typer.Abort:  # older typer: click's Abort; recent typer: its own
        raise InvalidInputError(
            f"the build (about {size / 1e9:.2f} GB) is above the size limit of "
            f"{limit / 1e9:.2f} GB and no answer came (no terminal input): pass --yes to build "
            "anyway, or raise --max-gb"
        ) from None


@contextmanager
def _dask_client(workers: int | None, scheduler: str | None) -> Iterator[None]:
    """A dask.distributed client for the build when asked for, else nothing (threads)."""
    if workers is not None and scheduler is not None:
        raise InvalidInputError("give --workers (a local cluster) or --scheduler, not both")
    if workers is None and scheduler is None:
        yield
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler):
            yield
        return
    if workers is not None and workers < 1:
        raise InvalidInputError(f"--workers {workers}: give at least 1 worker")
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster),
    ):
        yield


def info(
    cube_path: Annotated[Path, typer.Argument(help="A cube (Zarr store).")],
    quicklooks: Annotated[
        Path | None, typer.Option(help="Write quicklook PNGs into this folder.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Summarise a cube: per modality its grid, bands, dates and valid fraction."""
    from geoalign.cube_store import open_cube
    from geoalign.summary import summarize, summary_table, write_quicklooks

    tree = open_cube(cube_path)
    summaries = summarize(tree)
    if as_json:
        typer.echo(json.dumps([s.__dict__ for s in summaries], default=list, indent=1))
    else:
        epsg = summaries[0].epsg if summaries else None
        crs = f"EPSG:{epsg}" if epsg else "a custom CRS"
        _table(summary_table(summaries), f"{cube_path} ({crs})")
        _print_skipped(summaries)
    if quicklooks is not None:
        for path in write_quicklooks(tree, quicklooks):
            typer.echo(f"quicklook: {path}")


def _print_skipped(summaries: list[Any]) -> None:
    """Warn about items left out because their assets could not be read (on_error: skip)."""
    for summary in summaries:
        for entry in summary.skipped:
            typer.secho(f"skipped in {summary.name}: {entry}", fg="yellow", err=True)


def sensors() -> None:
    """List the known sensors (built-in, and those a recipe's sensors_file adds)."""
    from geoalign.sensors import get_sensor, list_sensors

    rows = []
    for name in list_sensors():
        sensor = get_sensor(name)
        rows.append(
            {
                "name": sensor.name,
                "kind": sensor.kind,
                "bands": len(sensor.bands) or "from files",
                "description": sensor.description,
            }
        )
    _table(rows, "sensors")


def register(app: typer.Typer) -> None:
    """Attach the data-layer commands to ``app``."""
    app.command()(search)
    app.command()(cube)
    app.command()(info)
    app.command()(sensors)
