"""Embedding rasters in the data layer (no torch): COG writing, encodings, resume, similarity,
quicklook, GeoParquet rows and the STAC item, on seeded synthetic embeddings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from affine import Affine
from odc.geo import CRS
from odc.geo.geobox import GeoBox
from rio_cogeo.cogeo import cog_validate

from geoalign.embed_cog import (
    INT8_SCALE,
    EmbeddingRasterWriter,
    RasterLayout,
    embedding_info,
    read_embeddings,
)
from geoalign.embed_products import embedding_item, pca_quicklook, windows_table
from geoalign.embed_tiles import output_geobox, plan_tiles
from geoalign.errors import InvalidInputError, NoDataFoundError, OutputExistsError
from geoalign.similarity import query_embedding, similarity_map

CRS_UTM = CRS("EPSG:32630")
GEOBOX = GeoBox((300, 520), Affine(10.0, 0.0, 694000.0, 0.0, -10.0, 4220000.0), CRS_UTM)
BLOCK = 128


def unit_field(bands: int = 8, seed: int = 0) -> np.ndarray:
    """Smooth unit embeddings ``[B, 300, 520]`` with a no-data hole (NaN)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:300, 0:520] / 100.0
    freqs = rng.uniform(0.2, 2.0, size=(bands, 2))
    phases = rng.uniform(0, 6.28, size=bands)
    values = np.sin(freqs[:, :1, None] * yy + freqs[:, 1:, None] * xx + phases[:, None, None])
    values = (values / np.linalg.norm(values, axis=0)).astype(np.float32)
    values[:, 40:60, 100:180] = np.nan
    return values


def write_raster(path: Path, values: np.ndarray, dtype: str = "float32", **kw: object) -> Path:
    layout = RasterLayout(GEOBOX, values.shape[0], dtype=dtype, blocksize=BLOCK, tags={"a": "b"})  # type: ignore[arg-type]
    with EmbeddingRasterWriter(path, layout, fingerprint="fp", **kw) as writer:  # type: ignore[arg-type]
        for row in range(0, 300, BLOCK):
            for col in range(0, 520, BLOCK):
                block = values[:, row : row + BLOCK, col : col + BLOCK]
                writer.write(f"{row}:{col}", row, col, block)
            writer.commit()
        return writer.finish()


@pytest.fixture(scope="module")
def field_values() -> np.ndarray:
    return unit_field()


def test_float32_cog_is_valid_georeferenced_and_reads_back_exactly(
    tmp_path: Path, field_values: np.ndarray
):
    path = write_raster(tmp_path / "emb.tif", field_values)
    valid, errors, _ = cog_validate(str(path))
    assert valid and not errors
    with rasterio.open(path) as src:
        assert src.crs.to_epsg() == 32630 and src.transform == GEOBOX.transform
        assert src.descriptions == tuple(f"emb_{i:03d}" for i in range(8))
        assert src.overviews(1) == [2, 4, 8]  # down to one 128 px tile
        assert src.block_shapes[0] == (BLOCK, BLOCK)
        assert src.interleaving.value == "BAND"  # a GIS reads 3 bands, not all of them
        assert math.isnan(src.nodata) and src.tags()["a"] == "b"
    back = read_embeddings(path)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(field_values))
    np.testing.assert_array_equal(back[~np.isnan(back)], field_values[~np.isnan(field_values)])
    assert not list(tmp_path.glob("*.partial.tif")) and not list(tmp_path.glob("*.json"))


@pytest.mark.parametrize(("dtype", "bound"), [("int8", INT8_SCALE / 2), ("float16", 2.0**-11)])
def test_quantized_round_trip_within_bounds(
    tmp_path: Path, field_values: np.ndarray, dtype: str, bound: float
):
    path = write_raster(tmp_path / f"{dtype}.tif", field_values, dtype)
    assert cog_validate(str(path))[0]
    info = embedding_info(path)
    assert info.dtype == dtype
    with rasterio.open(path) as src:
        if dtype == "int8":
            assert src.dtypes[0] == "int8" and src.nodata == -128
            assert src.scales[0] == pytest.approx(1 / 127) and src.offsets[0] == 0
        else:
            assert src.tags(1, ns="IMAGE_STRUCTURE")["NBITS"] == "16"
    back = read_embeddings(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(back), np.isnan(field_values))
    error = np.nanmax(np.abs(back - field_values))
    assert 0 < error <= bound + 1e-7
    # the size shrinks with the encoding (COG with zstd; float32 reference 4 bytes a value)
    assert path.stat().st_size < 8 * 300 * 520 * (1.2 if dtype == "int8" else 2.4)


def test_resume_keeps_finished_windows_and_refuses_other_inputs(
    tmp_path: Path, field_values: np.ndarray
):
    out = tmp_path / "emb.tif"
    layout = RasterLayout(GEOBOX, 8, blocksize=BLOCK)
    writer = EmbeddingRasterWriter(out, layout, fingerprint="fp")
    writer.write("0:0", 0, 0, field_values[:, :BLOCK, :BLOCK])
    writer.commit()
    writer.write("0:128", 0, 128, field_values[:, :BLOCK, 128:256])  # never committed
    writer.close()  # interrupted
    assert not out.exists() and out.with_name("emb.tif.partial.tif").exists()
    with pytest.raises(OutputExistsError, match="other inputs"):
        EmbeddingRasterWriter(out, layout, fingerprint="other")
    resumed = EmbeddingRasterWriter(out, layout, fingerprint="fp")
    assert resumed.done == {"0:0"}  # the uncommitted window will be redone
    path = resumed.finish()
    back = read_embeddings(path)
    np.testing.assert_array_equal(back[:, :BLOCK, :BLOCK], field_values[:, :BLOCK, :BLOCK])
    with pytest.raises(OutputExistsError, match="overwrite"):
        EmbeddingRasterWriter(out, layout, fingerprint="fp")
    EmbeddingRasterWriter(out, layout, fingerprint="fp", overwrite=True).close()
    assert not out.exists()


def test_bad_windows_and_layouts_are_refused(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="dtype"):
        RasterLayout(GEOBOX, 4, dtype="int16")  # type: ignore[arg-type]
    with EmbeddingRasterWriter(tmp_path / "x.tif", RasterLayout(GEOBOX, 4), fingerprint="f") as w:
        with pytest.raises(InvalidInputError, match="expected"):
            w.write("a", 0, 0, np.zeros((3, 10, 10), np.float32))
        with pytest.raises(InvalidInputError, match="leaves"):
            w.write("a", 295, 0, np.zeros((4, 10, 10), np.float32))


def test_similarity_map_for_a_point_and_a_polygon(tmp_path: Path, field_values: np.ndarray):
    path = write_raster(tmp_path / "emb.tif", field_values)
    # a point (UTM) at row 150, col 260: its own pixel is the query
    x, y = 694000.0 + 260.5 * 10, 4220000.0 - 150.5 * 10
    out = similarity_map(path, (x, y), tmp_path / "sim.tif", aoi_crs="EPSG:32630")
    assert cog_validate(str(out))[0]
    sim = read_embeddings(out)[0]
    assert sim[150, 260] == pytest.approx(1.0, abs=1e-5)
    expected = np.einsum("bhw,b->hw", field_values, field_values[:, 150, 260])
    np.testing.assert_allclose(sim, expected, atol=1e-5)
    assert np.isnan(sim[50, 120]) and np.nanmax(sim) <= 1 + 1e-5
    # a lon/lat polygon: the mean of the pixels whose centres it holds
    box_utm = shapely.box(694000.0 + 100, 4220000.0 - 300, 694000.0 + 200, 4220000.0 - 200)
    lonlat = gpd.GeoSeries([box_utm], crs=32630).to_crs(4326)
    query = query_embedding(path, lonlat)
    inside = field_values[:, 20:30, 10:20].reshape(8, -1).mean(axis=1)
    np.testing.assert_allclose(query, inside / np.linalg.norm(inside), atol=5e-3)
    with pytest.raises(InvalidInputError, match=r"outside.*which covers lon/lat \(-?\d"):
        similarity_map(path, (10.0, 50.0), tmp_path / "far.tif")
    with pytest.raises(NoDataFoundError, match="no pixel"):
        query_embedding(path, (694000.0 + 1405, 4220000.0 - 505), aoi_crs=32630)  # the hole
    with pytest.raises(OutputExistsError):
        similarity_map(path, (x, y), tmp_path / "sim.tif", aoi_crs="EPSG:32630")


def test_quicklook_table_and_stac_item(tmp_path: Path, field_values: np.ndarray):
    path = write_raster(tmp_path / "windows.tif", field_values[:, :40, :60].copy())
    png = pca_quicklook(path, tmp_path / "q.png")
    import matplotlib.pyplot as plt

    image = plt.imread(png)
    assert image.shape == (300, 520, 4)
    assert (image[:40, :60, 3] == 1).all() and (image[40:60, 100:180, 3] == 0).all()
    assert image[:40, :60, :3].std() > 0.1
    table_path = windows_table(path, tmp_path / "w.parquet")
    table = gpd.read_parquet(table_path)
    assert len(table) == 40 * 60 and table.crs.to_epsg() == 32630
    first = table.iloc[0]
    assert (first["row"], first["col"]) == (0, 0)
    assert first.geometry.equals(shapely.box(694000.0, 4219990.0, 694010.0, 4220000.0))
    np.testing.assert_allclose(
        table.iloc[61][[f"emb_{i:03d}" for i in range(8)]].to_numpy(float),
        field_values[:, 1, 1],
        rtol=1e-6,
    )
    item = embedding_item(
        "x",
        {"windows": embedding_info(path)},
        tables={"windows": table_path},
        quicklooks={"windows": png},
        dates=["2019-09-18T11:00:00"],
        provenance={"geoalign_checkpoint_sha256": "abc", "geoalign_modalities": "s1,s2"},
    )
    data = item.to_dict()
    assert data["properties"]["geoalign:modalities"] == ["s1", "s2"]
    assert data["properties"]["geoalign:checkpoint_sha256"] == "abc"
    asset = data["assets"]["windows"]
    assert asset["proj:code"] == "EPSG:32630" and asset["proj:shape"] == [300, 520]
    assert len(asset["raster:bands"]) == 8 and asset["raster:bands"][0]["nodata"] == "nan"
    assert data["assets"]["windows_table"]["href"] == "w.parquet"
    json.dumps(data)


def test_output_grid_and_tiles_line_up_with_the_cube():
    bounds = (694000.0, 4217000.0, 699000.0, 4220000.0)
    grid = output_geobox(bounds, CRS_UTM, resolution=10, align=80)
    assert grid.shape.yx == (300, 500)
    area = shapely.box(695005, 4218005, 695500, 4218500)
    from odc.geo.geom import Geometry

    part = output_geobox(bounds, CRS_UTM, resolution=10, align=80, aoi=Geometry(area, CRS_UTM))
    left, top = part.transform.c, part.transform.f
    assert (left - bounds[0]) % 80 == 0 and (bounds[3] - top) % 80 == 0
    assert left <= 695005 and top >= 4218500 and part.extent.boundingbox.right >= 695500
    tiles = plan_tiles(part, core=16, margin=8)
    assert all(
        (t.bounds[0] - bounds[0]) % 80 == 0 and t.bounds[2] - t.bounds[0] == 320 for t in tiles
    )
    covered = np.zeros(part.shape.yx, dtype=int)
    for t in tiles:
        covered[t.rows[0] : t.rows[1], t.cols[0] : t.cols[1]] += 1
    assert (covered == 1).all()
    with pytest.raises(InvalidInputError, match="outside"):
        output_geobox(
            bounds, CRS_UTM, resolution=10, align=80, aoi=Geometry(shapely.box(0, 0, 1, 1), CRS_UTM)
        )
