"""GEDI footprints: small L2A and L4A granules written in the products' HDF5 layout (a group per
beam, the documented dataset names), the same shots as GeoParquet and CSV, quality filtering,
and placement on a cube grid as a point table and a sparse raster (also inside a built cube)."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import h5py
import numpy as np
import pandas as pd
import pystac
import pytest
from odc.geo.geom import box
from support.lidar_files import make_scene, write_las

from geoalign.cube import ModalityRequest, build_cube
from geoalign.cube_store import open_cube
from geoalign.errors import DataFileNotFoundError, InvalidInputError
from geoalign.grid import make_grid
from geoalign.lidar import (
    GediQuality,
    gedi_label_layer,
    gedi_layers,
    gedi_points,
    gedi_raster,
    read_gedi,
)

#: Shots along a track near Mato Grosso (lon, lat); 12 per beam.
LON0, LAT0 = -55.0, -12.0
N = 12


def _shots(beam_index: int) -> dict[str, np.ndarray]:
    """Seeded shots of one beam: every third is bad in one way (flag, degrade, sensitivity)."""
    rng = np.random.default_rng(beam_index)
    lon = LON0 + 0.0006 * np.arange(N) + 0.0002 * beam_index
    lat = LAT0 + 0.0005 * np.arange(N)
    quality = np.ones(N, np.uint8)
    quality[0::4] = 0
    degrade = np.zeros(N, np.uint8)
    degrade[1::6] = 3
    sensitivity = np.full(N, 0.97, np.float32)
    sensitivity[2::5] = 0.5
    return {
        "lat_lowestmode": lat,
        "lon_lowestmode": lon,
        "shot_number": np.arange(N, dtype=np.uint64) + 10**15 * (beam_index + 1),
        "delta_time": np.linspace(5.0e7, 5.0e7 + 1, N),
        "sensitivity": sensitivity,
        "degrade_flag": degrade,
        "flag": quality,
        "agbd": rng.uniform(50, 300, N).astype(np.float32),
        "rh": np.sort(rng.uniform(0, 40, (N, 101)), axis=1).astype(np.float32),
    }


def _good(shots: dict[str, np.ndarray]) -> np.ndarray:
    good: np.ndarray = (
        (shots["flag"] == 1) & (shots["degrade_flag"] == 0) & (shots["sensitivity"] >= 0.9)
    )
    return good


def write_granule(
    path: Path, product: str, beams: tuple[str, ...] = ("BEAM0000", "BEAM0101")
) -> Path:
    """An L2A or L4A granule with the datasets the products document, per beam group."""
    with h5py.File(path, "w") as handle:
        handle.create_group("METADATA").attrs["short_name"] = f"GEDI_{product}"
        handle.create_group("ANCILLARY")
        for index, beam in enumerate(beams):
            shots = _shots(index)
            group = handle.create_group(beam)
            for name in ("lat_lowestmode", "lon_lowestmode", "shot_number", "delta_time"):
                group[name] = shots[name]
            group["sensitivity"] = shots["sensitivity"]
            group["degrade_flag"] = shots["degrade_flag"]
            if product == "L4A":
                agbd = shots["agbd"].copy()
                agbd[5] = -9999.0  # fill value
                group["agbd"] = agbd
                group["agbd_se"] = np.where(agbd == -9999.0, -9999.0, agbd * 0.1)
                group["l4_quality_flag"] = shots["flag"]
                group["l2_quality_flag"] = shots["flag"]
            else:
                group["rh"] = shots["rh"]
                group["quality_flag"] = shots["flag"]
                group["elev_lowestmode"] = shots["rh"][:, 0] + 300.0
    return path


def test_l4a_and_l2a_granules(tmp_path: Path) -> None:
    l4a = read_gedi(write_granule(tmp_path / "GEDI04_A_test.h5", "L4A"))
    expected = sum(int(_good(_shots(i)).sum()) for i in range(2))
    assert len(l4a) == expected and set(l4a["beam"]) == {"BEAM0000", "BEAM0101"}
    assert (l4a["product"] == "L4A").all() and l4a.crs.to_epsg() == 4326
    assert (l4a["l4_quality_flag"] == 1).all() and (l4a["sensitivity"] >= 0.9).all()
    assert l4a["agbd"].isna().sum() == sum(int(_good(_shots(i))[5]) for i in range(2))
    first = _shots(0)
    keep = _good(first)
    np.testing.assert_allclose(
        l4a[l4a["beam"] == "BEAM0000"].geometry.x, first["lon_lowestmode"][keep]
    )
    l2a = read_gedi(
        write_granule(tmp_path / "GEDI02_A_test.h5", "L2A"), rh=(50, 98), beams=["BEAM0101"]
    )
    assert list(l2a["beam"].unique()) == ["BEAM0101"]
    np.testing.assert_allclose(l2a["rh98"], _shots(1)["rh"][_good(_shots(1)), 98])
    every = read_gedi(tmp_path / "GEDI04_A_test.h5", quality=GediQuality(False, False, None))
    assert len(every) == 2 * N


def test_tables_give_the_same_shots(tmp_path: Path) -> None:
    granule = read_gedi(
        write_granule(tmp_path / "g.h5", "L4A"), quality=GediQuality(False, False, None)
    )
    table = granule.drop(columns="geometry")
    csv = tmp_path / "shots.csv"
    pd.DataFrame(table).to_csv(csv, index=False)
    parquet = tmp_path / "shots.parquet"
    granule.to_parquet(parquet)
    from_csv = read_gedi(csv)
    from_parquet = read_gedi(parquet)
    from_granule = read_gedi(tmp_path / "g.h5")
    assert len(from_csv) == len(from_parquet) == len(from_granule)
    np.testing.assert_allclose(from_csv.geometry.y, from_granule.geometry.y)
    np.testing.assert_allclose(from_parquet["agbd"], from_granule["agbd"])


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataFileNotFoundError):
        read_gedi(tmp_path / "missing.h5")
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as handle:
        handle["data"] = np.zeros(3)
    with pytest.raises(InvalidInputError, match="beam groups"):
        read_gedi(other)
    no_coordinates = tmp_path / "x.csv"
    pd.DataFrame({"agbd": [1.0], "l4_quality_flag": [1]}).to_csv(no_coordinates, index=False)
    with pytest.raises(InvalidInputError, match="latitude"):
        read_gedi(no_coordinates)
    no_flag = tmp_path / "y.csv"
    pd.DataFrame({"agbd": [1.0], "lat": [LAT0], "lon": [LON0]}).to_csv(no_flag, index=False)
    with pytest.raises(InvalidInputError, match="require_quality_flag=False"):
        read_gedi(no_flag)
    assert len(read_gedi(no_flag, quality=GediQuality(require_quality_flag=False))) == 1
    with pytest.raises(InvalidInputError, match="0-100"):
        read_gedi(no_flag, rh=(101,))


def test_point_table_and_sparse_raster(tmp_path: Path) -> None:
    shots = read_gedi(write_granule(tmp_path / "g.h5", "L4A"))
    aoi = box(LON0 - 0.001, LAT0 - 0.001, LON0 + 0.008, LAT0 + 0.007, "EPSG:4326")
    grid = make_grid(aoi, resolutions={"s2": 10.0})
    table = gedi_points(shots, grid, resolution=20.0)
    assert table.sizes["point"] == len(shots) and table.attrs["dropped_outside_grid"] == 0
    geobox = grid.geobox_at(20.0)
    x, y = table["x"].values, table["y"].values
    col = np.floor((x - geobox.affine.c) / 20.0)
    row = np.floor((geobox.affine.f - y) / 20.0)
    np.testing.assert_array_equal(table["col"].values, col)
    np.testing.assert_array_equal(table["row"].values, row)
    by_shot = shots.set_index("shot_number")["agbd"]
    expected = by_shot.loc[table["attr_shot_number"].values].to_numpy()
    np.testing.assert_allclose(table["attr_agbd"].values, expected)
    raster = gedi_raster(shots, geobox, variables=("agbd", "agbd_se"))
    assert raster["data"].shape == (2, geobox.shape.y, geobox.shape.x)
    assert str(raster["units"].values[0]) == "Mg/ha"
    counts = raster["count"].values
    assert counts.sum() == len(shots)
    r, c = int(table["row"].values[0]), int(table["col"].values[0])
    in_cell = (table["row"].values == r) & (table["col"].values == c)
    assert raster["data"].values[0, r, c] == pytest.approx(
        np.nanmean(table["attr_agbd"].values[in_cell])
    )
    assert np.isnan(raster["data"].values[0][counts == 0]).all()
    assert np.isfinite(raster["data"].values[0]).sum() <= shots["agbd"].notna().sum()
    layers = gedi_layers(shots, grid, "biomass", resolution=20.0)
    assert set(layers) == {"labels/biomass", "labels/biomass_raster"}


def test_shots_in_a_built_cube_with_a_point_cloud(tmp_path: Path) -> None:
    """A generic LAS item (sensor ``lidar-points``) and GEDI shots as labels in one cube."""
    origin = (500_000.0, 8_000_000.0)  # UTM 21S
    scene = make_scene(origin, size=100.0, density=1.0, seed=2)
    las = write_las(tmp_path / "tile.laz", scene, crs="EPSG:32721")
    area = box(origin[0], origin[1], origin[0] + 100, origin[1] + 100, "EPSG:32721")
    footprint = area.to_crs("EPSG:4326")
    item = pystac.Item(
        id="tile",
        geometry=json.loads(json.dumps(footprint.json)),
        bbox=list(footprint.boundingbox),
        datetime=pd.Timestamp("2021-05-01T00:00:00Z").to_pydatetime(),
        properties={},
    )
    item.add_asset("data", pystac.Asset(str(las), media_type="application/vnd.laszip"))
    lon, lat = footprint.centroid.coords[0]
    shots = gpd.GeoDataFrame(
        {"agbd": [120.0, 80.0], "l4_quality_flag": [1, 1]},
        geometry=gpd.points_from_xy([lon, lon + 0.0003], [lat, lat]),
        crs="EPSG:4326",
    )
    store = build_cube(
        tmp_path / "cube.zarr",
        [ModalityRequest("lidar", "lidar-points", [item], 5.0, bands=["dsm", "ndsm"])],
        aoi=area,
        labels=[gedi_label_layer(shots, "gedi", column="agbd", resolution=25.0)],
    )
    tree = open_cube(store)
    assert list(tree["lidar"]["band"].values) == ["dsm", "ndsm"]
    table = tree["labels/gedi"].to_dataset()
    assert table.sizes["point"] == 2
    np.testing.assert_allclose(table["attr_agbd"].values, [120.0, 80.0])
    assert set(table.data_vars) >= {"x", "y", "row", "col"}
