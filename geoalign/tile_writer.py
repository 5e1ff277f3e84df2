"""Compute a cube's tiles and write them into its Zarr store, recording progress as they finish.

One dask graph holds every tile of every modality. Per tile and time step one chain of tasks reads
the block (:func:`geoalign.modality.load_block`), derives its ``valid`` block and writes both
(:func:`_store_block`); the scheduler runs the chains back to back, so no core waits for a batch
to end and memory holds a few blocks per worker, whatever the area.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import dask.base
import dask.threaded
import numpy as np
import xarray as xr
import zarr
from dask.delayed import delayed
from dask.highlevelgraph import HighLevelGraph

from geoalign.chunk_files import write_block
from geoalign.cube_store import Tile, write_progress
from geoalign.errors import InvalidInputError


def write_tiles(
    path: Path,
    datasets: Mapping[str, xr.Dataset],
    tiles: list[Tile],
    done: set[str],
    *,
    fingerprint: str,
    on_tile: Callable[[Tile], None] | None = None,
    progress_every_s: float = 1.0,
    extra_progress: Mapping[str, Any] | None = None,
    create: Mapping[str, Callable[[], None]] | None = None,
) -> dict[str, int]:
    """Compute and write the ``tiles`` not yet ``done``, recording progress as tiles finish.

    One dask graph holds every tile: per tile and time step, one chain reads the block, derives
    its ``valid`` block and writes both into the store (see :func:`_store_block`). The scheduler
    runs the chains back to back with no barrier between tiles, so both cores stay busy to the
    last tile, and memory holds a few blocks per worker whatever the area. A tile is recorded in
    the progress file once all its time steps are written (at most every ``progress_every_s``
    seconds, and always when the call ends, also on an error or an interrupt), so a resumed
    build never redoes it; ``extra_progress`` is recorded with it. Stored (raw) values are
    written as they are.

    The arrays of a group must exist, unless ``create`` holds a function that creates them
    (:func:`geoalign.cube_store.write_group_metadata`): it then runs as a task of the graph,
    before the group's first write and alongside the first reads, which release the GIL while
    GDAL decodes (creating the benchmark's three groups took 0.15 s before the first read).

    Scheduler: a ``dask.distributed`` client when one is active (a LocalCluster or any scheduler
    address), else dask's configured local scheduler (threads by default).

    Returns:
        The number of True pixels of each group's ``valid`` variable in the tiles written by
        this call (counted from the computed blocks, so the store is not read back).
    """
    counts: dict[str, int] = {name: 0 for name, ds in datasets.items() if "valid" in ds}
    create = dict(create or {})
    todo = [tile for tile in tiles if tile.key not in done]
    for name in set(create) - {tile.group for tile in todo}:
        create.pop(name)()  # nothing to write into the group: its arrays are made here
    if not todo:
        return counts
    stored: list[da.Array] = []
    tile_of_key: dict[Any, Tile] = {}
    remaining: dict[str, int] = {}
    for name, ds in datasets.items():
        group_tiles = [tile for tile in todo if tile.group == name]
        if not group_tiles:
            continue
        ys = _edges([tile.y for tile in tiles if tile.group == name])
        xs = _edges([tile.x for tile in tiles if tile.group == name])
        blocks = _stored_blocks(path, name, ds, ys, xs, create.get(name))
        stored.append(blocks)
        row = {start: i for i, start in enumerate(ys[:-1])}
        col = {start: i for i, start in enumerate(xs[:-1])}
        for tile in group_tiles:
            steps = blocks.numblocks[0]
            for t in range(steps):
                tile_of_key[(blocks.name, t, 0, row[tile.y.start], col[tile.x.start])] = tile
            remaining[tile.key] = steps
    keys = list(tile_of_key)
    record = {**(extra_progress or {}), "fingerprint": fingerprint}
    graph = da.Array.__dask_optimize__(HighLevelGraph.merge(*(s.dask for s in stored)), keys)
    clock = {"saved": time.monotonic()}

    def finished(key: Any, count: Any) -> None:
        tile = tile_of_key.get(key)
        if tile is None:  # an intermediate task
            return
        if tile.group in counts:
            counts[tile.group] += int(np.sum(count))
        remaining[tile.key] -= 1
        if remaining[tile.key]:
            return
        done.add(tile.key)
        if time.monotonic() - clock["saved"] >= progress_every_s:
            write_progress(path, {**record, "done": sorted(done)})
            clock["saved"] = time.monotonic()
        if on_tile is not None:
            on_tile(tile)

    try:
        client = _distributed_client()
        if client is not None:
            from distributed import as_completed

            futures = client.get(graph, keys, sync=False)
            try:
                for future in as_completed(futures):
                    finished(future.key, future.result())
            finally:
                client.cancel(futures)
                _wait_until_idle(client, {n for blocks in stored for n in _task_names(blocks)})
        else:
            from dask.callbacks import Callback

            with Callback(posttask=lambda key, result, *_: finished(key, result)):
                _run_locally(graph, keys)
    finally:  # what is written is recorded, also when a tile failed or the user interrupted
        write_progress(path, {**record, "done": sorted(done)})
    return counts


def _edges(spans: list[slice]) -> list[int]:
    """Sorted distinct block edges along one axis, from the tiles' slices along it."""
    return sorted({s.start for s in spans} | {s.stop for s in spans})


def _stored_blocks(
    path: Path,
    group: str,
    ds: xr.Dataset,
    ys: list[int],
    xs: list[int],
    create: Callable[[], None] | None,
) -> da.Array:
    """A lazy ``(time, 1, tile row, tile column)`` array of int64 valid-pixel counts.

    Computing one element reads that tile's block of one time step, writes the block of every
    spatial variable of ``ds`` (dims ``(time, y, x)`` or ``(time, band, y, x)``) into the store
    and returns its number of True ``valid`` pixels (0 for groups without ``valid``). The blocks
    are re-chunked to the tile edges ``ys``/``xs`` (a no-op for the cube's own datasets, whose
    read blocks are tiles), so that no two tasks write one storage chunk. With ``create`` the
    group's arrays are created and opened by one task that the writes depend on, else opened now.
    """
    names: list[str] = []
    arrays: list[da.Array] = []
    for var, array in ds.data_vars.items():
        dims = tuple(str(d) for d in array.dims)
        if dims[-2:] != ("y", "x"):
            continue  # non-spatial variables are written with the metadata
        if dims[0] != "time" or len(dims) not in (3, 4):
            raise InvalidInputError(
                f"variable {var!r} of group {group!r} has dims {dims}: cube variables are "
                "(time, y, x) or (time, band, y, x)"
            )
        data = da.asarray(array.data)
        if data.ndim == 3:
            data = data[:, np.newaxis]
        chunks = (1, data.shape[1], tuple(np.diff(ys)), tuple(np.diff(xs)))
        names.append(str(var))
        arrays.append(data.rechunk(chunks))
    token = dask.base.tokenize(str(path), group, *arrays)
    store_name, arrays_name = (f"geoalign-{what}-{group}-{token}" for what in ("store", "arrays"))
    targets: Any
    if create is None:
        targets = _open_targets(path, group, names)
    else:
        targets = delayed(_open_targets, pure=False)(
            path, group, names, create, dask_key_name=arrays_name
        )
    steps, nrows, ncols = arrays[0].numblocks[0], len(ys) - 1, len(xs) - 1
    stored: da.Array = da.map_blocks(
        _store_block,
        *arrays,
        names=names,
        targets=targets,
        dtype=np.int64,
        chunks=((1,) * steps, (1,), (1,) * nrows, (1,) * ncols),
        name=store_name,
    )
    return stored


def _task_names(blocks: da.Array) -> tuple[str, str]:
    """The names of the tasks that write into the store for ``blocks`` (see _stored_blocks)."""
    return blocks.name, blocks.name.replace("geoalign-store-", "geoalign-arrays-", 1)


def _open_targets(
    path: Path, group: str, names: list[str], create: Callable[[], None] | None = None
) -> list[Any]:
    """The Zarr arrays ``names`` of ``group``, configured for block writes (created first)."""
    if create is not None:
        create()
    node = zarr.open_group(str(path), mode="r+", path=group)
    targets = []
    for name in names:
        target = node[name]
        if not isinstance(target, zarr.Array):
            raise InvalidInputError(f"{path}/{group}/{name} is not a Zarr array: rebuild the cube")
        # Every chunk is written, also those equal to the fill value: zarr's default compares
        # each chunk with it first (NaN-aware array_equal: 0.4 s of CPU on the benchmark).
        # Uncompressed local arrays are written as chunk files (geoalign.chunk_files).
        targets.append(target.with_config({"write_empty_chunks": True}))
    return targets


def _store_block(
    *blocks: np.ndarray,
    names: list[str],
    targets: list[Any],
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Write one block per variable into its Zarr array; return the block's valid count."""
    if block_info is None:
        raise InvalidInputError("internal: dask did not pass block_info to a store block")
    (t0, _), _, (y0, _), (x0, _) = block_info[0]["array-location"]
    count = 0
    for name, block, target in zip(names, blocks, targets, strict=True):
        if target.ndim == 3:
            write_block(target, (t0, y0, x0), block[:, 0])
        else:
            write_block(target, (t0, 0, y0, x0), block)
        if name == "valid":
            count = int(np.count_nonzero(block))
    return np.full((1, 1, 1, 1), count, dtype=np.int64)


def _distributed_client() -> Any:
    """The active ``dask.distributed`` client, or None (then dask's local scheduler runs).

    ``distributed`` is not imported unless it already is: no client can exist without it, and
    importing it costs 0.6 s here (dask's own scheduler lookup imports it on every compute).
    """
    configured = dask.config.get("scheduler", None)
    if configured is not None and "Client" in type(configured).__name__:
        return configured
    if "distributed" not in sys.modules or configured not in (
        None,
        "distributed",
        "dask.distributed",
    ):
        return None
    from distributed import Client

    try:
        return Client.current(allow_global=True)
    except ValueError:
        return None


def _run_locally(graph: Any, keys: list[Any]) -> None:
    """Compute ``keys`` with dask's local scheduler; return only once no task runs any more.

    On an error dask's threaded scheduler raises at once while the tasks already started go on
    in its shared pool, writing into the store; a private pool, shut down on the way out, makes
    the caller (which may recreate arrays, or report the error) wait for them. The processes
    scheduler shuts its own pool down the same way.
    """
    scheduler = _local_scheduler()
    if scheduler is not dask.threaded.get:
        scheduler(graph, keys)
        return
    from dask.system import CPU_COUNT

    workers = int(dask.config.get("num_workers", None) or CPU_COUNT)
    with ThreadPoolExecutor(workers, thread_name_prefix="geoalign-build") as pool:
        scheduler(graph, keys, pool=pool)


def _wait_until_idle(client: Any, names: set[str], timeout_s: float = 300.0) -> None:
    """Wait until no worker of the cluster runs a task of the arrays ``names`` (the writes).

    A cancelled future's task keeps running on its worker until it returns; its store write must
    end before the caller goes on (it may recreate the arrays). Only this build's store tasks
    are waited for (a shared cluster may be busy with other work); workers that cannot say what
    they run are not waited for.
    """

    def writing(dask_worker: Any) -> int:
        busy = ("executing", "long-running", "cancelled", "resumed")
        return sum(
            1
            for key, task in dask_worker.state.tasks.items()
            if task.state in busy and (key[0] if isinstance(key, tuple) else key) in names
        )

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not any(client.run(writing).values()):
                return
        except Exception:  # a worker without this state API: nothing to wait on
            return
        time.sleep(0.05)


def _local_scheduler() -> Callable[..., Any]:
    """Dask's configured local scheduler (``dask.config.set(scheduler=...)``), else threads."""
    configured = dask.config.get("scheduler", None)
    if configured is None:
        return dask.threaded.get
    if callable(configured):
        return configured  # type: ignore[no-any-return]
    try:
        return dask.base.named_schedulers[str(configured).lower()]
    except KeyError:
        raise InvalidInputError(
            f"dask scheduler {configured!r} is not known: use 'threads', 'processes', "
            "'synchronous' or a dask.distributed Client"
        ) from None
