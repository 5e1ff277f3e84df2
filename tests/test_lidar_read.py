"""Reading point clouds: LAS, LAZ and COPC (bounds queries, locally and over HTTP), CRS from VLRs,
and the errors for missing, corrupt and CRS-less files."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pyproj
import pytest
from support.lidar_files import NOISE, Scene, make_scene, serve_folder, write_copc, write_las

from geoalign.errors import CorruptDataError, CRSError, DataFileNotFoundError
from geoalign.lidar import PointCloud, crs_from_vlrs, read_points
from geoalign.lidar.crs import to_point_crs

ORIGIN = (500_000.0, 4_000_000.0)


@pytest.fixture(scope="module")
def scene() -> Scene:
    return make_scene(ORIGIN, size=120.0, density=3.0, seed=1)


@pytest.fixture(scope="module")
def files(scene: Scene, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clouds")
    return {
        "las": write_las(folder / "scene.las", scene),
        "laz": write_las(folder / "scene.laz", scene),
        "copc": write_copc(folder / "scene.copc.laz", scene),
    }


def _kept(scene: Scene) -> np.ndarray:
    mask: np.ndarray = scene.classification != NOISE
    return mask


def _sorted_xyz(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    xyz = np.round(np.column_stack([x, y, z]), 2)
    order = np.lexsort(xyz.T[::-1])
    result: np.ndarray = xyz[order]
    return result


@pytest.mark.parametrize("kind", ["las", "laz", "copc"])
def test_read_all_points(kind: str, scene: Scene, files: dict[str, Path]) -> None:
    cloud = PointCloud(files[kind], chunk_points=5_000)
    assert cloud.info.is_copc == (kind == "copc")
    assert cloud.info.point_count == len(scene)
    assert cloud.info.crs.horizontal == pyproj.CRS("EPSG:32612")
    chunks = list(cloud.chunks())
    assert len(chunks) > 1  # streamed, not read at once
    points = cloud.query()
    keep = _kept(scene)
    assert len(points) == keep.sum()  # noise (class 7) dropped by default
    np.testing.assert_allclose(
        _sorted_xyz(points.x, points.y, points.z),
        _sorted_xyz(scene.x[keep], scene.y[keep], scene.z[keep]),
        atol=0.006,
    )
    assert (
        np.bincount(points.classification).tolist()
        == np.bincount(scene.classification[keep]).tolist()
    )


def test_copc_bounds_query_matches_filter(scene: Scene, files: dict[str, Path]) -> None:
    bounds = (ORIGIN[0] + 10.0, ORIGIN[1] + 20.0, ORIGIN[0] + 45.5, ORIGIN[1] + 70.25)
    copc, _ = read_points(files["copc"], bounds=bounds)
    las, _ = read_points(files["las"], bounds=bounds)
    assert len(copc) == len(las) > 100
    np.testing.assert_allclose(
        _sorted_xyz(copc.x, copc.y, copc.z), _sorted_xyz(las.x, las.y, las.z), atol=1e-9
    )
    assert (copc.x >= bounds[0]).all() and (copc.x <= bounds[2]).all()
    outside, _ = read_points(files["copc"], bounds=(0.0, 0.0, 10.0, 10.0))
    assert len(outside) == 0


def test_copc_over_http_reads_only_what_the_query_needs(files: dict[str, Path]) -> None:
    bounds = (ORIGIN[0], ORIGIN[1], ORIGIN[0] + 20.0, ORIGIN[1] + 20.0)
    local, _ = read_points(files["copc"], bounds=bounds)
    with serve_folder(files["copc"].parent) as (url, served):
        cloud = PointCloud(f"{url}/{files['copc'].name}")
        assert cloud.info.is_copc
        assert cloud.info.point_count == PointCloud(files["copc"]).info.point_count
        served.clear()
        remote = cloud.query(bounds)
        corner_bytes = sum(served)
        served.clear()
        everything = cloud.query()
        all_bytes = sum(served)
        # a corner of the octree (1/36 of the area) plus the header and hierarchy
        assert corner_bytes < 0.4 * all_bytes
        assert len(everything) == len(PointCloud(files["copc"]).query())
        np.testing.assert_array_equal(np.sort(remote.x), np.sort(local.x))
        laz = PointCloud(f"{url}/{files['laz'].name}").query()  # plain LAZ streams over HTTP too
        assert len(laz) == len(PointCloud(files["laz"]).query())
        with pytest.raises(DataFileNotFoundError, match="404"):
            PointCloud(f"{url}/missing.copc.laz")


def test_server_without_ranges_is_refused(files: dict[str, Path]) -> None:
    handler = partial(SimpleHTTPRequestHandler, directory=str(files["copc"].parent))
    handler.log_message = lambda *args: None  # type: ignore[method-assign, assignment]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/{files['copc'].name}"
        with pytest.raises(CorruptDataError, match="byte ranges"):
            PointCloud(url)
    finally:
        server.shutdown()
        server.server_close()


def test_crs_from_wkt_geotiff_keys_and_compound_feet(scene: Scene, tmp_path: Path) -> None:
    wkt14 = PointCloud(write_las(tmp_path / "a.las", scene, crs="EPSG:26912")).info.crs
    assert wkt14.source == "wkt" and wkt14.horizontal == pyproj.CRS("EPSG:26912")
    keys12 = PointCloud(
        write_las(tmp_path / "b.las", scene, crs="EPSG:26912", point_format=3, version="1.2")
    ).info.crs
    assert keys12.source == "geotiff-keys" and keys12.horizontal == pyproj.CRS("EPSG:26912")
    compound = pyproj.CRS("EPSG:26912+6360")  # NAVD88 height in US survey feet
    feet = PointCloud(write_las(tmp_path / "c.las", scene, crs=compound, z_scale=1200 / 3937))
    info = feet.info.crs
    assert info.vertical is not None and "NAVD88" in info.vertical.name
    assert info.z_to_metres == pytest.approx(1200 / 3937)
    assert info.horizontal == pyproj.CRS("EPSG:26912")
    # heights are stored in feet: the transformer brings them back to metres
    from geoalign.lidar import PointTransformer

    metres = PointTransformer(info, "EPSG:26912")(feet.query())
    assert metres.z.max() == pytest.approx(scene.z[_kept(scene)].max(), abs=0.01)
    assert crs_from_vlrs([]) is None


def test_missing_crs_needs_one_given(scene: Scene, tmp_path: Path) -> None:
    path = write_las(tmp_path / "nocrs.laz", scene, crs=None)
    with pytest.raises(CRSError, match="pass crs="):
        PointCloud(path)
    given = PointCloud(path, crs="EPSG:32612").info.crs
    assert given.source == "given" and given.horizontal == pyproj.CRS("EPSG:32612")
    # the file's own CRS wins over the one given
    own = PointCloud(write_las(tmp_path / "own.las", scene), crs="EPSG:4326").info.crs
    assert own.horizontal == pyproj.CRS("EPSG:32612")
    with pytest.raises(CRSError, match="not a CRS"):
        to_point_crs("EPSG:not-a-code")


def test_missing_truncated_and_corrupt_files(files: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError, match="does not exist"):
        PointCloud(tmp_path / "nope.laz")
    garbage = tmp_path / "garbage.laz"
    garbage.write_bytes(b"this is not a point cloud" * 20)
    with pytest.raises(CorruptDataError, match="truncated or corrupt"):
        PointCloud(garbage)
    data = files["laz"].read_bytes()
    truncated = tmp_path / "truncated.laz"
    truncated.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(CorruptDataError, match=str(truncated.name)):
        PointCloud(truncated, crs="EPSG:32612").query()
    las = files["las"].read_bytes()
    short = tmp_path / "short.las"
    short.write_bytes(las[: len(las) // 2])
    with pytest.raises(CorruptDataError, match="truncated"):
        PointCloud(short).query()
