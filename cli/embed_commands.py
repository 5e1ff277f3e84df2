"""Embedding commands: ``embed`` (checkpoint + cube -> COGs, GeoParquet, STAC) and ``similarity``.

Thin wrappers: parse arguments, call :func:`geoalign.models.embed.embed_cube` and
:func:`geoalign.similarity.similarity_map`, show a rich progress bar and where the outputs are.
torch is imported inside ``embed`` only; ``similarity`` never needs it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from geoalign.cli.options import parse_area
from geoalign.errors import InvalidInputError


def _pairs(values: list[str] | None, option: str) -> dict[str, str]:
    out = {}
    for value in values or []:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise InvalidInputError(f"{option} {value!r}: write NAME=VALUE (e.g. s2=2019-09-18)")
        out[name] = rest
    return out


def embed(
    checkpoint: Annotated[Path, typer.Argument(help="Pretraining checkpoint (.ckpt).")],
    cube: Annotated[
        Path, typer.Argument(help="A finished cube (Zarr), or a recipe (.yaml) to build it.")
    ],
    out_dir: Annotated[Path, typer.Argument(help="Export folder (COGs, GeoParquet, STAC item).")],
    modality: Annotated[
        list[str] | None, typer.Option("--modality", "-m", help="Encoder to run (repeat).")
    ] = None,
    fusion: Annotated[str, typer.Option(help="concat, mean, or none (one per modality).")] = (
        "concat"
    ),
    product: Annotated[str, typer.Option(help="dense, windows or both.")] = "both",
    resolution: Annotated[
        float | None, typer.Option(help="Dense pixel size (CRS units; default: finest input).")
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="Per-window product: window edge (pixels).")
    ] = None,
    tile: Annotated[int, typer.Option(help="Dense: core of each sliding window (pixels).")] = 512,
    margin: Annotated[
        int | None, typer.Option(help="Dense: context around each core (default: measured).")
    ] = None,
    dtype: Annotated[str, typer.Option(help="float32, float16 or int8.")] = "float32",
    compress: Annotated[str, typer.Option(help="zstd, deflate, lzw or none.")] = "zstd",
    bbox: Annotated[
        str | None, typer.Option(help="Only this lon/lat bbox 'minx,miny,maxx,maxy'.")
    ] = None,
    aoi: Annotated[
        str | None, typer.Option(help="Only this area (vector file or GeoJSON).")
    ] = None,
    date: Annotated[
        list[str] | None, typer.Option(help="NAME=YYYY-MM-DD for multi-date modalities.")
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass (GPU: more).")] = 1,
    device: Annotated[str, typer.Option(help="Torch device (cpu, cuda).")] = "cpu",
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace a finished export in OUT_DIR.")
    ] = False,
) -> None:
    """Write embedding rasters of a cube with the encoders of a checkpoint.

    Products: per-pixel embeddings (embeddings.tif) and one vector per window (windows.tif and
    windows.parquet rows with footprints).

    Cloud-Optimized GeoTIFFs with one band per dimension, a PCA-RGB quicklook and a STAC item
    (item.json) with provenance.

    An interrupted export resumes where it stopped when run again.
    """
    from geoalign.embed_cog import check_export_dir

    check_export_dir(out_dir, overwrite=overwrite)  # before torch loads (seconds)
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskID,
        TimeRemainingColumn,
    )

    from geoalign.cli.console import plain_console
    from geoalign.models.embed import EmbedOptions, embed_cube

    options = EmbedOptions(
        modalities=tuple(modality) if modality else None,
        fusion=fusion,  # type: ignore[arg-type]
        product=product,  # type: ignore[arg-type]
        resolution=resolution,
        window=window,
        tile=tile,
        margin=margin,
        dtype=dtype,  # type: ignore[arg-type]
        compress=compress,  # type: ignore[arg-type]
        aoi=parse_area(bbox, None, aoi),
        dates=_pairs(date, "--date") or None,
        batch_size=batch_size,
        device=device,
    )
    console = plain_console()
    with Progress(
        *Progress.get_default_columns()[:1],  # the description (a plain string would print markup)
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    ) as bar:
        tasks: list[TaskID] = []  # the bar appears with the first window, after the checks

        def advance(done: int, total: int) -> None:
            if not tasks:
                tasks.append(bar.add_task("windows", total=total))
            bar.update(tasks[0], completed=done, total=total)

        result = embed_cube(
            checkpoint, cube, out_dir, options, overwrite=overwrite, progress=advance
        )
    if result.skipped:
        console.print(f"resumed: {result.skipped} windows were already done")
    for kind, paths in (
        ("raster", result.rasters),
        ("table", result.tables),
        ("quicklook", result.quicklooks),
    ):
        for key, path in paths.items():
            console.print(f"{kind} {key}: {path}")
    console.print(f"STAC item: {result.item}")


def similarity(
    raster: Annotated[Path, typer.Argument(help="An embedding raster (embeddings.tif...).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output similarity COG.")],
    point: Annotated[str | None, typer.Option(help="Point 'x,y' (lon,lat by default).")] = None,
    bbox: Annotated[str | None, typer.Option(help="Box 'minx,miny,maxx,maxy'.")] = None,
    aoi: Annotated[str | None, typer.Option(help="Polygon: vector file or GeoJSON.")] = None,
    crs: Annotated[
        str | None, typer.Option(help="CRS of --point/--bbox (default EPSG:4326).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT.")] = False,
) -> None:
    """Map the cosine similarity of every pixel to the mean embedding of a place.

    "Find places like this": give a point or a polygon inside the raster.
    """
    from geoalign.similarity import similarity_map

    area = parse_area(bbox, point, aoi)
    if area is None:
        raise InvalidInputError("give the place to compare with: --point, --bbox or --aoi")
    path = similarity_map(raster, area, out, aoi_crs=crs, overwrite=overwrite)
    typer.echo(f"similarity: {path}")


def register(app: typer.Typer) -> None:
    """Attach the embedding commands to ``app``."""
    app.command()(embed)
    app.command()(similarity)
