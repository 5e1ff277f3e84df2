"""Autzen orthophoto (1 m) + LiDAR products (10 m) in one cube, sampled together with torchgeo.

The real Autzen orthophoto (Oregon Lambert, feet) and the real point cloud of the same place are
put on one metric UTM grid by the cube build; the sampler then returns, for each window, a
320 x 320 px orthophoto and a 32 x 32 px LiDAR block covering the same ground, each a plain slice
of the cube at its own resolution.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import pytest
import torch
import xarray as xr

from geoalign.cube import ModalityRequest, build_cube
from geoalign.datasets import RandomWindowSampler, open_cube_dataset
from geoalign.lidar import LidarRequest, RasterizeOptions
from geoalign.stac_items import items_from_rasters


@pytest.fixture(scope="module")
def autzen_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = shared_data / "autzen"
    ortho = items_from_rasters(
        [str(folder / "autzen.jpg")],
        collection="ortho",
        datetime="2010-06-01T00:00:00Z",
        sensor_band_names=["red", "green", "blue"],
    )
    points = pystac.Item(
        id="autzen-thin",
        geometry=ortho[0].geometry,
        bbox=ortho[0].bbox,
        datetime=pd.Timestamp("2010-06-01T00:00:00Z").to_pydatetime(),
        properties={},
    )
    points.add_asset(
        "data", pystac.Asset(str(folder / "autzen-thin-srs.las"), media_type="application/vnd.las")
    )
    tmp = tmp_path_factory.mktemp("autzen")
    return build_cube(
        tmp / "autzen.zarr",
        [
            ModalityRequest("ortho", "orthophoto", ortho, 1.0, mask_clouds=False),
            LidarRequest(
                "lidar",
                "lidar-points",
                [points],
                10.0,
                bands=["dsm", "density"],
                options=RasterizeOptions(products=("dsm", "density")),
                cache_dir=tmp,
            ),
        ],
        aoi=ortho[0].geometry,
        crs="EPSG:32610",
    )


def test_windows_cover_the_same_ground_at_each_resolution(autzen_cube: Path) -> None:
    dataset = open_cube_dataset(autzen_cube, ["ortho", "lidar"], labels=[], decode=False)
    raw = {
        name: xr.open_zarr(str(autzen_cube), group=name, consolidated=False, mask_and_scale=False)
        for name in ("ortho", "lidar")
    }
    generator = torch.Generator().manual_seed(0)
    windows = list(RandomWindowSampler(dataset, 32, 12, generator=generator))  # type: ignore[arg-type]
    lidar_seen = 0
    for query in windows:
        sample = dataset[query]
        assert tuple(sample["ortho"].shape[-2:]) == (320, 320)
        assert tuple(sample["lidar"].shape[-2:]) == (32, 32)
        left, bottom, right, top = sample["bounds"].tolist()
        assert right - left == pytest.approx(320.0) and top - bottom == pytest.approx(320.0)
        for name, res in (("ortho", 1.0), ("lidar", 10.0)):
            ds = raw[name]
            col = int(round((left - (float(ds.x[0]) - res / 2)) / res))
            row = int(round(((float(ds.y[0]) + res / 2) - top) / res))
            size = int(round(320 / res))
            expected = ds["data"].isel(time=0, y=slice(row, row + size), x=slice(col, col + size))
            got = sample[name].numpy()
            got = got[0] if got.ndim == 4 else got
            np.testing.assert_array_equal(got, expected.values)
        lidar_seen += int(np.isfinite(sample["lidar"].numpy()).sum())
    assert lidar_seen > 0
