"""Small, seeded LiDAR test files: a synthetic scene written as LAS, LAZ or COPC, and a local
HTTP server with byte ranges to read them remotely.

laspy reads COPC but cannot write it, so :func:`write_copc` builds one here: points are spread
over an octree (the first point of each voxel stays at a level, the others go deeper), each node
is one variable-size LAZ chunk, the ``copc`` info VLR comes first and the hierarchy is an EVLR,
as the COPC 1.0 specification lays out. laspy's ``CopcReader`` reads the files back.
"""

from __future__ import annotations

import io
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import laspy
import lazrs
import numpy as np
import pyproj
from laspy.vlrs.known import LasZipVlr, WktCoordinateSystemVlr
from laspy.vlrs.vlrlist import VLRList

GROUND, VEGETATION, BUILDING, NOISE = 2, 5, 6, 7


@dataclass(frozen=True)
class Scene:
    """Points of a synthetic scene (metres): sloping ground, one building, trees, a few noise."""

    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    intensity: np.ndarray
    return_number: np.ndarray
    number_of_returns: np.ndarray
    classification: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def ground_height(self, x: np.ndarray, y: np.ndarray, origin: tuple[float, float]) -> Any:
        """The true ground surface at ``(x, y)``."""
        return 100.0 + 0.01 * (x - origin[0]) + 0.02 * (y - origin[1])


def make_scene(
    origin: tuple[float, float] = (500_000.0, 4_000_000.0),
    size: float | tuple[float, float] = 200.0,
    density: float = 4.0,
    seed: int = 0,
    building: tuple[float, float, float, float] = (40.0, 40.0, 90.0, 80.0),
    building_height: float = 12.0,
) -> Scene:
    """A seeded scene of ``density`` pulses per m2 over ``size`` m (a square, or width and
    height) from ``origin`` (its lower-left corner).

    Ground (class 2) everywhere outside the building; a flat-roofed building (class 6) of
    ``building_height`` m in the box ``building`` (offsets from the origin); trees (class 5,
    two returns per pulse: canopy then ground) in the east half; noise (class 7) 50 m up.
    """
    rng = np.random.default_rng(seed)
    width, height = (size, size) if isinstance(size, (int, float)) else size
    n = int(width * height * density)
    x = origin[0] + rng.uniform(0, width, n)
    y = origin[1] + rng.uniform(0, height, n)
    ground = 100.0 + 0.01 * (x - origin[0]) + 0.02 * (y - origin[1])
    bx0, by0, bx1, by1 = building
    dx, dy = x - origin[0], y - origin[1]
    on_roof = (dx >= bx0) & (dx < bx1) & (dy >= by0) & (dy < by1)
    tree = ~on_roof & (dx > width * 0.6) & (np.sin(dx / 7.0) * np.sin(dy / 7.0) > 0.3)
    z = np.where(on_roof, ground + building_height, ground)
    cls = np.where(on_roof, BUILDING, GROUND).astype(np.uint8)
    rn = np.ones(n, np.uint8)
    nr = np.ones(n, np.uint8)
    # trees: the first return is on the canopy (8-15 m), a second return of the pulse on the ground
    canopy = ground + rng.uniform(8.0, 15.0, n)
    z = np.where(tree, canopy, z)
    cls = np.where(tree, VEGETATION, cls).astype(np.uint8)
    nr[tree] = 2
    second_x, second_y, second_z = x[tree], y[tree], ground[tree]
    k = len(second_x)
    intensity = rng.integers(100, 200, n + k).astype(np.uint16)
    noise = rng.random(n) < 0.001
    z = np.where(noise, z + 50.0, z)
    cls = np.where(noise, NOISE, cls).astype(np.uint8)
    return Scene(
        x=np.concatenate([x, second_x]),
        y=np.concatenate([y, second_y]),
        z=np.concatenate([z, second_z]),
        intensity=intensity,
        return_number=np.concatenate([rn, np.full(k, 2, np.uint8)]),
        number_of_returns=np.concatenate([nr, np.full(k, 2, np.uint8)]),
        classification=np.concatenate([cls, np.full(k, GROUND, np.uint8)]),
    )


def _las_data(scene: Scene, point_format: int, version: str, z_scale: float = 1.0) -> Any:
    header = laspy.LasHeader(point_format=point_format, version=version)
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array(
        [np.floor(scene.x.min()), np.floor(scene.y.min()), np.floor(scene.z.min() / z_scale)]
    )
    las = laspy.LasData(header)
    las.x, las.y, las.z = scene.x, scene.y, scene.z / z_scale
    las.intensity = scene.intensity
    las.return_number = scene.return_number
    las.number_of_returns = scene.number_of_returns
    las.classification = scene.classification
    return las


def write_las(
    path: Path,
    scene: Scene,
    *,
    crs: Any = "EPSG:32612",
    point_format: int = 6,
    version: str = "1.4",
    z_scale: float = 1.0,
) -> Path:
    """Write ``scene`` as LAS (``.las``) or LAZ (``.laz``); ``crs=None`` writes no CRS VLR.

    ``z_scale`` is the height unit in metres (0.3048: heights stored in feet).
    """
    las = _las_data(scene, point_format, version, z_scale)
    if crs is not None:
        las.header.add_crs(pyproj.CRS.from_user_input(crs))
    las.write(str(path))
    return path


def _octree(xyz: np.ndarray, center: np.ndarray, halfsize: float, levels: int, cells: int) -> Any:
    """Node key ``(level, i, j, k)`` of each point: its voxel's first point stays, others sink."""
    keys = np.zeros((len(xyz), 4), dtype=np.int32)
    todo = np.arange(len(xyz))
    low = center - halfsize
    for level in range(levels):
        node_size = 2 * halfsize / 2**level
        node = np.clip(np.floor((xyz[todo] - low) / node_size), 0, 2**level - 1).astype(np.int64)
        if level == levels - 1:
            keep = np.ones(len(todo), bool)
        else:
            voxel = np.clip(
                np.floor((xyz[todo] - low) / (node_size / cells)), 0, 2**level * cells - 1
            ).astype(np.int64)
            side = 2**level * cells
            flat = (voxel[:, 0] * side + voxel[:, 1]) * side + voxel[:, 2]
            _, first = np.unique(flat, return_index=True)
            keep = np.zeros(len(todo), bool)
            keep[first] = True
        keys[todo[keep]] = np.column_stack([np.full(keep.sum(), level), node[keep]])
        todo = todo[~keep]
    return keys


def write_copc(
    path: Path, scene: Scene, *, crs: Any = "EPSG:32612", levels: int = 4, cells: int = 16
) -> Path:
    """Write ``scene`` as a COPC 1.0 file (LAS 1.4, point format 6, an octree of ``levels``)."""
    las = _las_data(scene, 6, "1.4")
    xyz = np.column_stack([scene.x, scene.y, scene.z])
    mins, maxs = xyz.min(axis=0), xyz.max(axis=0)
    center = (mins + maxs) / 2
    halfsize = float((maxs - mins).max() / 2 + 1.0)
    keys = _octree(xyz, center, halfsize, levels, cells)
    order = np.lexsort((keys[:, 3], keys[:, 2], keys[:, 1], keys[:, 0]))
    keys, points = keys[order], las.points.array[order]
    unique, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)

    header = las.header
    laz_vlr = lazrs.LazVlr.new_for_compression(6, 0, use_variable_size_chunks=True)
    info = laspy.VLR("copc", 1, "copc info", bytes(160))
    header.vlrs = VLRList([info, LasZipVlr(laz_vlr.record_data())])
    if crs is not None:
        header.vlrs.append(WktCoordinateSystemVlr(pyproj.CRS.from_user_input(crs).to_wkt()))
    header.point_count = len(points)
    header.mins, header.maxs = mins, maxs
    header.are_points_compressed = True
    buffer = io.BytesIO()
    header.write_to(buffer)
    start = buffer.tell()
    compressor = lazrs.LasZipCompressor(buffer, laz_vlr)
    for node, (begin, count) in enumerate(zip(first, counts, strict=True)):
        if node:
            compressor.finish_current_chunk()
        compressor.compress_many(np.frombuffer(points[begin : begin + count].tobytes(), np.uint8))
    compressor.done()
    buffer.seek(start)
    table = lazrs.read_chunk_table(buffer, laz_vlr)
    offsets = start + 8 + np.concatenate([[0], np.cumsum([size for _, size in table])[:-1]])
    buffer.seek(0, io.SEEK_END)
    evlr_start = buffer.tell()
    entries = b"".join(
        struct.pack("<4iQii", *key.tolist(), int(offset), int(size), int(count))
        for key, offset, (count, size) in zip(unique, offsets, table, strict=True)
    )
    evlr_header = struct.pack("<H16sHQ32s", 0, b"copc", 1000, len(entries), b"EPT hierarchy")
    buffer.write(evlr_header + entries)
    # Patch the copc info VLR and the EVLR fields of the header now that offsets are known.
    info.record_data = struct.pack(
        "<5d2Q2d",
        *center,
        halfsize,
        2 * halfsize / cells,
        evlr_start + len(evlr_header),
        len(entries),
        0.0,
        0.0,
    ) + bytes(88)
    header.start_of_first_evlr = evlr_start
    header.number_of_evlrs = 1
    patched = io.BytesIO()
    header.write_to(patched, ensure_same_size=True)
    data = bytearray(buffer.getvalue())
    data[: patched.tell()] = patched.getvalue()
    path.write_bytes(bytes(data))
    return path


class _RangeHandler(SimpleHTTPRequestHandler):
    """Serves files with ``Range: bytes=a-b`` support (206) and counts the bytes sent."""

    served: list[int]

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        del format, args

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        wanted = self.headers.get("Range")
        if wanted is None:
            self.send_response(200)
            body = data
        else:
            first, _, last = wanted.removeprefix("bytes=").partition("-")
            start, end = int(first), min(int(last) if last else len(data) - 1, len(data) - 1)
            body = data[start : end + 1]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.served.append(len(body))


@contextmanager
def serve_folder(folder: Path) -> Iterator[tuple[str, list[int]]]:
    """Serve ``folder`` on 127.0.0.1 (a free port); yields the base URL and the bytes sent."""
    served: list[int] = []
    handler = partial(type("Handler", (_RangeHandler,), {"served": served}), directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
