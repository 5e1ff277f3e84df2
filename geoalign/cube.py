"""Build aligned multi-sensor cubes: plan from STAC items (cheap), then read, align and write.

    plan = plan_cube(modalities, aoi=aoi)           # grid, items per time step, sizes; no pixels
    plan.to_datatree()                              # the cube as a lazy DataTree (dask)
    build_cube("cube.zarr", modalities, aoi=aoi)    # written tile by tile, resumable

Planning lives in :mod:`geoalign.planning` (re-exported here). The cube has one CRS and origin;
each modality keeps its own resolution (an integer ratio of the base resolution) and dims
``(time, band, y, x)``. See :mod:`geoalign.cube_store` for the store
layout and the resume/complete rules.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from geoalign.aoi import AOILike
from geoalign.cube_store import (
    Compression,
    Tile,
    check_compression,
    finalize_store,
    prepare_store,
    read_progress,
    set_decoding_attrs,
    tiles_of,
    without_decoding_attrs,
    write_group_metadata,
    write_progress,
)
from geoalign.errors import AssetReadError, GeoAlignError, NoDataFoundError
from geoalign.labels import LabelLayer, label_datasets
from geoalign.planning import CubePlan, ModalityRequest, OnError, plan_cube
from geoalign.tile_writer import write_tiles


def build_cube(
    path: str | os.PathLike[str],
    modalities: Sequence[ModalityRequest],
    *,
    aoi: AOILike,
    aoi_crs: Any = None,
    crs: Any = None,
    base_resolution: float | None = None,
    origin: tuple[float, float] | None = None,
    labels: Sequence[LabelLayer] = (),
    on_error: OnError = "fail",
    overwrite: bool = False,
    resume: bool = True,
    compression: str = "none",
    recipe: Mapping[str, Any] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Plan a cube (:func:`plan_cube`) and write it (:func:`write_cube`) to a Zarr store.

    The arguments from ``modalities`` to ``on_error`` are those of :func:`plan_cube`.

    Args:
        path: Output Zarr store (a directory).
        overwrite: Replace an existing cube at ``path``.
        resume: Continue an interrupted build of the same recipe at ``path`` (finished tiles are
            not redone).
        compression: ``"none"`` (fastest window reads, the default), ``"lz4"`` or ``"zstd"``.
        recipe: The recipe this cube comes from, stored verbatim in its provenance.
        on_tile: Called with ``(tiles_done, tiles_total)`` after each written tile (progress bars).

    Returns:
        The path of the finished cube. The store is marked complete only after every tile and the
        metadata are written, and only if every modality has valid pixels.

    Parallelism: tiles are computed by the active dask scheduler; inside a
    ``dask.distributed.Client`` context (a LocalCluster or any scheduler address) the build runs
    on that cluster unchanged.
    """
    plan = plan_cube(
        modalities,
        aoi=aoi,
        aoi_crs=aoi_crs,
        crs=crs,
        base_resolution=base_resolution,
        origin=origin,
        labels=labels,
        on_error=on_error,
    )
    return write_cube(
        path,
        plan,
        overwrite=overwrite,
        resume=resume,
        compression=compression,
        recipe=recipe,
        on_tile=on_tile,
    )


def write_cube(
    path: str | os.PathLike[str],
    plan: CubePlan,
    *,
    overwrite: bool = False,
    resume: bool = True,
    compression: str = "none",
    recipe: Mapping[str, Any] | None = None,
    on_tile: Callable[[int, int], None] | None = None,
) -> Path:
    """Write a planned cube to ``path``; see :func:`build_cube` for the arguments and guarantees."""
    store = Path(path)
    checked_compression: Compression = check_compression(compression)
    fingerprint = plan.fingerprint()  # the recipe's, kept when items are skipped while building
    done = prepare_store(store, fingerprint=fingerprint, overwrite=overwrite, resume=resume)
    resumed = bool(done)
    # Assets found unreadable by an interrupted build of this store stay left out.
    unreadable: list[dict[str, str]] = list(read_progress(store).get("unreadable", []))
    for asset in unreadable:
        plan, _ = plan.without_asset(asset["href"], asset["reason"])
    if not done:
        xr.Dataset(attrs=plan.root_attrs()).to_zarr(
            str(store), mode="a", consolidated=False, zarr_format=3
        )
        for group_path, ds in label_datasets(plan.labels, plan.grid).items():
            ds.to_zarr(str(store), group=group_path, mode="w", consolidated=False, zarr_format=3)
    counter = {"n": 0, "total": 0}

    def tick(_: Any) -> None:
        counter["n"] += 1
        if on_tile is not None:
            on_tile(counter["n"], counter["total"])

    while True:
        datasets, decoding, tiles = _modality_datasets(plan)
        # A group is (re)created unless a tile of it is written (writes wait for their group's
        # arrays): at the start, on a resume after an interruption, and after a skipped asset.
        started = {tile.group for tile in tiles if tile.key in done}
        creators = {
            name: functools.partial(
                write_group_metadata,
                store,
                name,
                datasets[name],
                chunk=plan.modalities[name].chunk,
                compression=checked_compression,
            )
            for name in plan.modalities
            if name not in started
        }
        counter.update(n=len(done), total=len(tiles))
        try:
            with _bounded_gdal_cache():
                counts = write_tiles(
                    store,
                    datasets,
                    tiles,
                    done,
                    fingerprint=fingerprint,
                    on_tile=tick,
                    extra_progress={"unreadable": unreadable},
                    create=creators,
                )
            break
        except AssetReadError as error:
            if plan.on_error != "skip":
                raise
            # Leave the item out everywhere (as if planning had found it unreadable): its
            # modality is recreated and all its tiles are redone, also those it already filled.
            unreadable.append({"href": error.href, "reason": error.detail})
            plan, recreated = plan.without_asset(error.href, error.detail)
            if not recreated:  # not an asset of the plan: nothing to leave out
                raise
            done -= {tile.key for tile in tiles if tile.group in recreated}
            write_progress(
                store, {"done": sorted(done), "fingerprint": fingerprint, "unreadable": unreadable}
            )
            resumed = True  # the counts of the tiles kept are not in memory
    if resumed:  # tiles written by an earlier run are not in memory: read them back
        fractions = _valid_fractions(store, list(plan.modalities))
    else:
        # Counted from the blocks just computed: reading ``valid`` back from the store cost
        # 0.3-0.6 s of serial time after the last tile on the benchmark.
        fractions = {name: counts[name] / datasets[name]["valid"].size for name in plan.modalities}
    empty = [name for name, fraction in fractions.items() if fraction == 0.0]
    if empty:
        raise NoDataFoundError(
            f"modalities {empty} have no valid pixel in the area (all no-data or cloud): the store "
            f"{store} is left unfinished. Check the AOI, the dates, or set mask_clouds=False"
        )
    for name, held in decoding.items():
        set_decoding_attrs(store, name, held)
    attrs = plan.root_attrs()
    attrs["valid_fraction"] = json.dumps(fractions)
    attrs["recipe"] = json.dumps(recipe or {}, default=str)
    attrs["created"] = dt.datetime.now(dt.UTC).isoformat()
    finalize_store(store, attrs)
    return store


#: GDAL block cache during a build, unless GDAL_CACHEMAX is set. GDAL's default is 5% of RAM
#: (1.2 GB here, 6 GB on a 128 GB node): it fills with decoded COG tiles and makes peak memory
#: grow with the area. Reads are block-sized, so a small cache loses nothing (16-64 MB measured
#: as fast as the default; 256 MB slower).
BUILD_GDAL_CACHE_BYTES = 64 * 2**20


@contextlib.contextmanager
def _bounded_gdal_cache() -> Iterator[None]:
    from rasterio.env import get_gdal_config, set_gdal_config

    if "GDAL_CACHEMAX" in os.environ:
        yield
        return
    previous = get_gdal_config("GDAL_CACHEMAX")
    set_gdal_config("GDAL_CACHEMAX", BUILD_GDAL_CACHE_BYTES)
    try:
        yield
    finally:
        set_gdal_config("GDAL_CACHEMAX", previous)


def _modality_datasets(
    plan: CubePlan,
) -> tuple[dict[str, xr.Dataset], dict[str, dict[str, dict[str, Any]]], list[Tile]]:
    """Each modality's lazy dataset, its held-back CF decoding attributes, and all the tiles."""
    tree = plan.to_datatree()
    datasets: dict[str, xr.Dataset] = {}
    decoding: dict[str, dict[str, dict[str, Any]]] = {}
    tiles: list[Tile] = []
    for name, modality in plan.modalities.items():
        datasets[name], decoding[name] = without_decoding_attrs(tree[name].to_dataset())
        tiles.extend(tiles_of(name, datasets[name], modality.chunk))
    return datasets, decoding, tiles


def _valid_fractions(store: Path, names: Sequence[str]) -> dict[str, float]:
    """Fraction of valid pixels per modality, read back from the written ``valid`` arrays."""
    fractions = {}
    for name in names:
        valid = xr.open_zarr(str(store), group=name, consolidated=False)["valid"]
        fractions[name] = float(valid.mean().compute())
    return fractions


__all__ = [
    "CubePlan",
    "GeoAlignError",
    "ModalityRequest",
    "OnError",
    "build_cube",
    "plan_cube",
    "write_cube",
]
