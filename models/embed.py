"""Embedding rasters: run a checkpoint's encoders over a cube, window by window, into COGs.

    result = embed_cube("last.ckpt", "cube.zarr", "out/emb", EmbedOptions(dtype="int8"))
    result.rasters["dense"]        # out/emb/embeddings.tif: one band per dimension, 10 m
    result.rasters["windows"]      # out/emb/windows.tif: one pixel per window
    result.tables["windows"]       # out/emb/windows.parquet: one row per window + footprint
    result.item                    # out/emb/item.json: STAC item with provenance

Two products (``EmbedOptions.product``):

- ``dense``: per-pixel embeddings at ``resolution``: the encoders' feature maps with the
  projection head at every cell (:mod:`geoalign.models.dense`), resampled to the output grid.
  Overlapping windows are centre-cropped: each window reads a margin around the core it writes,
  at least the receptive-field context of the backbone (measured), so the raster equals what
  one window covering everything would give (no seams).
- ``windows``: one embedding per window of ``window`` pixels (the pretraining window), as the
  encoder computes it in training, written as a raster with one pixel per window and as
  GeoParquet rows with the window footprints.

Writing is resumable (finished windows are recorded beside each raster and never redone) and
memory stays flat as the area grows (:mod:`geoalign.embed_cog`). An export directory holding a
finished ``item.json`` is refused unless ``overwrite``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from odc.geo.geobox import GeoBox

from geoalign._version import __version__
from geoalign.aoi import to_aoi
from geoalign.datasets.cube_meta import check_complete, read_group_meta
from geoalign.embed_cog import (
    EXPORT_ITEM,
    Compression,
    EmbeddingDtype,
    EmbeddingRasterWriter,
    RasterLayout,
    check_export_dir,
    embedding_info,
)
from geoalign.embed_products import embedding_item, pca_quicklook, windows_table
from geoalign.embed_tiles import OutputTile, lcm_step, output_geobox, plan_tiles
from geoalign.errors import InvalidInputError
from geoalign.models.checkpoint import LoadedEncoders, load_encoders
from geoalign.models.config import CubeDataConfig
from geoalign.models.dense import map_geometry
from geoalign.models.embed_compute import (
    FUSIONS,
    Fusion,
    dense_batch,
    read_batch,
    window_batch,
)
from geoalign.models.embed_inputs import ModalityInput, open_inputs
from geoalign.models.encoders import ModalityEncoder

Product = Literal["dense", "windows", "both"]
#: Windows per tile edge of the per-window product (a tile of k x k windows is one read).
WINDOWS_PER_TILE = 8
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class EmbedOptions:
    """What to export, and how."""

    # Encoders to run (default: every encoder whose modality the cube has).
    modalities: tuple[str, ...] | None = None
    # "concat" or "mean" of the modalities' unit embeddings, or "none" (one output per modality).
    fusion: Fusion = "concat"
    # "dense" (per pixel), "windows" (one vector per window) or "both".
    product: Product = "both"
    # Dense output pixel size in CRS units (default: the finest modality's).
    resolution: float | None = None
    # Per-window product: window edge in pixels of the sampling grid (default: pretraining's).
    window: int | None = None
    # Dense product: core written by each sliding window, in output pixels.
    tile: int = 512
    # Dense product: context read around each core, in output pixels (default: the measured
    # receptive-field context of the backbones, which gives seamless rasters).
    margin: int | None = None
    # Stored encoding: "float32", "float16" or "int8" (scale/offset recorded in the file).
    dtype: EmbeddingDtype = "float32"
    # COG compression: "zstd", "deflate", "lzw" or "none".
    compress: Compression = "zstd"
    # Restrict the export to this area (bbox, shapely/GeoJSON geometry, vector file...).
    aoi: Any = None
    # CRS of `aoi` when it carries none (default: EPSG:4326 lon/lat).
    aoi_crs: Any = None
    # Modality -> bands to feed, when the cube has more bands than the encoder takes.
    bands: Mapping[str, Sequence[str]] | None = None
    # Modality -> date ("YYYY-MM-DD") for single-date encoders on a multi-date modality.
    dates: Mapping[str, str] | None = None
    # Standardise bands with the cube's statistics (default: as in pretraining).
    normalize: bool | None = None
    # Windows per forward pass (1 on a CPU: large windows gain nothing from batching there, and
    # memory grows with it; raise it on a GPU).
    batch_size: int = 1
    # Per-window product: windows with a smaller valid fraction (any modality) get no data.
    min_valid: float = 0.5
    # Torch device ("cpu", "cuda"...).
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise InvalidInputError(f"fusion={self.fusion!r}: use one of {FUSIONS}")
        if self.product not in ("dense", "windows", "both"):
            raise InvalidInputError(f"product={self.product!r}: use dense, windows or both")
        if self.tile < 8 or self.batch_size < 1 or (self.window is not None and self.window < 1):
            raise InvalidInputError("tile >= 8, batch_size >= 1 and window >= 1 are required")
        if not 0.0 <= self.min_valid <= 1.0:
            raise InvalidInputError(f"min_valid={self.min_valid}: give a fraction in [0, 1]")


@dataclass(frozen=True)
class EmbedResult:
    """What an export wrote.

    Attributes:
        out_dir: The export folder.
        rasters: Product key (``dense``, ``windows``, ``dense_s1``...) -> COG path.
        tables: Product key (``windows``...) -> GeoParquet path.
        quicklooks: Product key -> PCA-RGB PNG path.
        item: The STAC item describing every file.
        computed: Windows computed by this call (resumed exports skip finished ones).
        skipped: Windows already finished by an interrupted earlier call.
    """

    out_dir: Path
    rasters: dict[str, Path]
    tables: dict[str, Path] = field(default_factory=dict)
    quicklooks: dict[str, Path] = field(default_factory=dict)
    item: Path | None = None
    computed: int = 0
    skipped: int = 0


@dataclass
class _Job:
    """One product's rasters (one per stream) and the windows that feed them."""

    product: str
    geobox: GeoBox
    tiles: list[OutputTile]
    writers: dict[str, EmbeddingRasterWriter]
    keys: dict[str, str]  # stream -> product key (dense, dense_s1...)
    finished: dict[str, Path]  # stream -> raster finished by an interrupted earlier call
    size: int  # window edge in output pixels (dense) or windows per tile edge (windows)
    margin: int = 0  # context around the core of dense windows (output pixels)


def _resolve_modalities(loaded: LoadedEncoders, cube: Path, options: EmbedOptions) -> list[str]:
    if options.modalities is not None:
        return list(options.modalities)
    from geoalign.datasets.cube_meta import cube_groups

    in_cube = {g for g, kind in cube_groups(cube).items() if kind == "modality"}
    chosen = [m for m in loaded.config.modalities if m in in_cube]
    if not chosen:
        raise InvalidInputError(
            f"none of the checkpoint's modalities {list(loaded.config.modalities)} is in the cube "
            f"{cube} (it has {sorted(in_cube)}): embed a cube built for this checkpoint"
        )
    return chosen


def _fingerprint(loaded: LoadedEncoders, cube: Path, options: EmbedOptions, product: str) -> str:
    record = {
        "checkpoint": loaded.sha256,
        "cube": str(cube.resolve()),
        "product": product,
        "options": {k: repr(v) for k, v in asdict(options).items() if k not in ("device",)},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _streams(modalities: Sequence[str], fusion: Fusion, base: str) -> dict[str, str]:
    if fusion == "none":
        return {m: f"{base}_{m}" for m in modalities}
    return {"": base}


def _open_writers(
    folder: Path,
    geobox: GeoBox,
    streams: Mapping[str, str],
    bands: int,
    options: EmbedOptions,
    tags: Mapping[str, str],
    fingerprint: str,
    overwrite: bool,
) -> tuple[dict[str, EmbeddingRasterWriter], dict[str, Path]]:
    """Writers of the streams' rasters, and the rasters an interrupted run already finished."""
    writers = {}
    finished = {}
    for stream, key in streams.items():
        path = folder / f"{'embeddings' + key[5:] if key.startswith('dense') else key}.tif"
        same = path.exists() and not overwrite
        if same and embedding_info(path).tags.get("geoalign_fingerprint") == fingerprint:
            finished[stream] = path  # done before an interruption: kept
            continue
        layout = RasterLayout(
            geobox,
            bands,
            dtype=options.dtype,
            compress=options.compress,
            tags={**tags, "geoalign_product": key, "geoalign_fingerprint": fingerprint},
        )
        writers[stream] = EmbeddingRasterWriter(
            path, layout, fingerprint=fingerprint, overwrite=overwrite
        )
    return writers, finished


def _batches(tiles: Sequence[OutputTile], todo: set[str], size: int) -> Iterator[list[OutputTile]]:
    pending = [t for t in tiles if t.key in todo]
    for start in range(0, len(pending), size):
        yield pending[start : start + size]


def _write(
    writers: Mapping[str, EmbeddingRasterWriter],
    tiles: Sequence[OutputTile],
    values: Mapping[str, torch.Tensor],
    valid: Mapping[str, torch.Tensor],
) -> None:
    """Write the cores ``[N, B, c, c]`` of ``tiles`` (cut to the raster at its edges)."""
    for stream, writer in writers.items():
        data = values[stream].numpy()
        mask = valid[stream].numpy()
        for index, tile in enumerate(tiles):
            if tile.key in writer.done:
                continue
            h, w = tile.shape
            core = data[index, :, :h, :w]
            core[:, ~mask[index, :h, :w]] = np.nan
            writer.write(tile.key, tile.rows[0], tile.cols[0], core)
        writer.commit()


def _dense_plan(
    encoders: Mapping[str, ModalityEncoder],
    inputs: Mapping[str, ModalityInput],
    options: EmbedOptions,
) -> tuple[float, int, int, float]:
    """Output resolution, core and margin (output pixels), and the alignment (CRS units)."""
    resolutions = [source.resolution for source in inputs.values()]
    resolution = options.resolution or min(resolutions)
    geometry = {name: map_geometry(encoders[name]) for name in inputs}
    cells = [geometry[n].stride * inputs[n].resolution for n in inputs]
    align = lcm_step([resolution, *cells, *resolutions])
    step = round(align / resolution)
    if options.margin is None:
        # context of the backbone plus one feature cell (bilinear upsampling reads a neighbour)
        context = max(
            (geometry[n].context + geometry[n].stride) * inputs[n].resolution for n in inputs
        )
        margin = math.ceil(context / align - 1e-9) * step
    else:
        margin = math.ceil(options.margin / step) * step
    return resolution, margin, step, align


def cube_from(source: str | os.PathLike[str]) -> Path:
    """A finished cube: ``source`` itself, or the cube a recipe (``.yaml``) builds.

    A recipe's cube is built (or an interrupted build resumed) when it is not finished yet, and
    reused when it is.
    """
    path = Path(source)
    if path.suffix.lower() not in (".yaml", ".yml"):
        return path
    from geoalign.cube_store import is_complete
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe, recipe_output

    recipe, base = load_recipe(path)
    output = recipe_output(recipe, base)
    if is_complete(output):
        return output
    return plan_recipe(recipe, base).write()


def embed_cube(
    checkpoint: str | os.PathLike[str],
    cube: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    options: EmbedOptions | None = None,
    *,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> EmbedResult:
    """Export embedding rasters of ``cube`` made by the encoders of ``checkpoint``.

    Args:
        checkpoint: A geoalign pretraining checkpoint (loaded with ``weights_only=True``).
        cube: A finished cube with the checkpoint's modalities, or a recipe (``.yaml``) whose
            cube is built first when it does not exist yet (see :func:`cube_from`).
        out_dir: Export folder (created); see the module docstring for its files.
        options: What to export (:class:`EmbedOptions`).
        overwrite: Replace a finished export in ``out_dir``.
        progress: Called as ``progress(done, total)`` after each batch of windows.

    Raises:
        OutputExistsError: ``out_dir`` holds a finished export and ``overwrite`` is False.
        InvalidInputError: Not a geoalign checkpoint; modalities, bands or dates that do not
            fit the cube; an area of interest outside the cube.
    """
    options = options or EmbedOptions()
    folder = check_export_dir(out_dir, overwrite=overwrite)
    item_path = folder / EXPORT_ITEM
    store = check_complete(cube_from(cube))
    loaded = load_encoders(checkpoint, options.modalities)
    modalities = _resolve_modalities(loaded, store, options)
    encoders = {name: loaded.encoders[name] for name in modalities}
    inputs = open_inputs(
        store,
        loaded,
        modalities,
        bands=options.bands,
        dates=options.dates,
        normalize=options.normalize,
    )
    device = torch.device(options.device)
    for encoder in encoders.values():
        encoder.to(device)
    meta = read_group_meta(store, modalities[0])
    crs = meta.crs
    aoi = None if options.aoi is None else to_aoi(options.aoi, crs=options.aoi_crs)
    embed_dim = loaded.config.embed_dim
    bands = embed_dim * (len(modalities) if options.fusion == "concat" else 1)
    tags = {
        "geoalign_version": __version__,
        "geoalign_checkpoint": str(Path(checkpoint).resolve()),
        "geoalign_checkpoint_sha256": loaded.sha256,
        "geoalign_cube": str(store.resolve()),
        "geoalign_modalities": ",".join(modalities),
        "geoalign_fusion": options.fusion,
        "geoalign_embed_dim": str(embed_dim),
        "geoalign_normalised": "L2 per pixel" if options.fusion != "concat" else "L2 (concat)",
    }
    if overwrite:
        item_path.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    jobs: list[_Job] = []
    if options.product in ("dense", "both"):
        resolution, margin, step, align = _dense_plan(encoders, inputs, options)
        geobox = output_geobox(meta.bounds, crs, resolution=resolution, align=align, aoi=aoi)
        longest = max(geobox.shape.yx)
        core = min(math.ceil(options.tile / step), math.ceil(longest / step)) * step
        streams = _streams(modalities, options.fusion, "dense")
        fingerprint = _fingerprint(loaded, store, options, "dense")
        writers, finished = _open_writers(
            folder, geobox, streams, bands, options, tags, fingerprint, overwrite
        )
        tiles = plan_tiles(geobox, core=core, margin=margin)
        jobs.append(
            _Job(
                "dense",
                geobox,
                tiles,
                writers,
                dict(streams),
                finished,
                core + 2 * margin,
                margin,
            )
        )
    if options.product in ("windows", "both"):
        window = options.window or (
            loaded.config.data.window if isinstance(loaded.config.data, CubeDataConfig) else 32
        )
        grid_step = lcm_step([source.resolution for source in inputs.values()])
        size = window * grid_step
        geobox = output_geobox(meta.bounds, crs, resolution=size, align=size, aoi=aoi)
        k = min(WINDOWS_PER_TILE, max(geobox.shape.yx))
        streams = _streams(modalities, options.fusion, "windows")
        fingerprint = _fingerprint(loaded, store, options, "windows")
        writers, finished = _open_writers(
            folder, geobox, streams, bands, options, tags, fingerprint, overwrite
        )
        tiles = plan_tiles(geobox, core=k, margin=0)
        jobs.append(_Job("windows", geobox, tiles, writers, dict(streams), finished, k))
    total = sum(len(job.tiles) for job in jobs)
    done_before = sum(
        sum(all(t.key in w.done for w in job.writers.values()) for t in job.tiles) for job in jobs
    )
    computed = 0
    try:
        for job in jobs:
            todo = {
                t.key for t in job.tiles if any(t.key not in w.done for w in job.writers.values())
            }
            batch = options.batch_size if job.product == "dense" else 1
            for tiles in _batches(job.tiles, todo, batch):
                batches = {
                    name: read_batch(source, [t.bounds for t in tiles])
                    for name, source in inputs.items()
                }
                if job.product == "dense":
                    values, valid = dense_batch(
                        encoders, batches, job.size, options.fusion, device, job.margin
                    )
                else:
                    values, fraction = window_batch(
                        encoders, batches, job.size, options.fusion, device
                    )
                    valid = {s: fraction >= options.min_valid - 1e-9 for s in values}
                _write(job.writers, tiles, values, valid)
                computed += len(tiles)
                if progress is not None:
                    progress(done_before + computed, total)
        rasters: dict[str, Path] = {}
        for job in jobs:
            rasters.update({job.keys[stream]: path for stream, path in job.finished.items()})
            for stream, writer in job.writers.items():
                rasters[job.keys[stream]] = writer.finish()
    finally:
        for job in jobs:
            for writer in job.writers.values():
                writer.close()
    tables = {
        key: windows_table(path, path.with_suffix(".parquet"), overwrite=True)
        for key, path in rasters.items()
        if key.startswith("windows")
    }
    quicklooks = {
        key: pca_quicklook(path, path.with_suffix(".png"), overwrite=True)
        for key, path in rasters.items()
    }
    dates = [str(t) for source in inputs.values() for t in source.dataset.meta.times]
    item = embedding_item(
        folder.name or "embeddings",
        {key: embedding_info(path) for key, path in rasters.items()},
        tables=tables,
        quicklooks=quicklooks,
        dates=dates,
        provenance=tags,
    )
    tmp = item_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(item.to_dict(), indent=2))
    os.replace(tmp, item_path)
    return EmbedResult(folder, rasters, tables, quicklooks, item_path, computed, done_before)
