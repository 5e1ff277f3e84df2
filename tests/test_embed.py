"""Embedding rasters end to end on the real Sen1Floods11 cube of the tutorial recipe (S1 + S2):
dense maps without seams, per-window vectors equal to the pretraining task's, encodings,
resume, fusion, every refused input, and the CLI as a user runs it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import geopandas as gpd
import lightning as L
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from rio_cogeo.cogeo import cog_validate
from support.cli import run_geoalign
from support.cubes import build_sen1floods11_cube, build_series_cube

from geoalign.datasets import TimeSelection, open_cube_dataset
from geoalign.datasets.cube_meta import read_group_meta
from geoalign.embed_cog import embedding_info, read_embeddings
from geoalign.errors import DataFileNotFoundError, InvalidInputError, OutputExistsError
from geoalign.models import ModalitySpec, PretrainConfig, build_encoder
from geoalign.models.checkpoint import load_encoders
from geoalign.models.config import EncoderConfig
from geoalign.models.dense import backbone_map, map_geometry
from geoalign.models.embed import EmbedOptions, embed_cube
from geoalign.models.embed_compute import dense_batch, read_batch
from geoalign.models.embed_inputs import open_inputs
from geoalign.models.pretrain import ContrastivePretraining

UTM = "EPSG:32630"


@pytest.fixture(scope="module")
def cube(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    del shared_data  # the recipe reads the real chip from the shared data folder
    return build_sen1floods11_cube(tmp_path_factory.mktemp("floods") / "cube.zarr")


def save_checkpoint(
    path: Path, cube: Path, channels: dict[str, int], *, embed_dim: int = 8, seed: int = 0
) -> Path:
    """A checkpoint as Lightning writes it (state_dict + hyper_parameters) of untrained encoders."""
    torch.manual_seed(seed)
    config = PretrainConfig.from_dict(
        {
            "name": "t",
            "data": {"kind": "cube", "path": str(cube), "window": 8},
            "modalities": {
                name: {"encoder": {"kind": "alexnet", "small_input": True}} for name in channels
            },
            "embed_dim": embed_dim,
            "projection_hidden": 16,
        }
    )
    task = ContrastivePretraining(config, {n: ModalitySpec(c) for n, c in channels.items()})
    torch.save(
        {
            "state_dict": task.state_dict(),
            "hyper_parameters": dict(task.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        path,
    )
    return path


@pytest.fixture(scope="module")
def checkpoint(cube: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("ckpt")
    return save_checkpoint(folder / "last.ckpt", cube, {"s1": 2, "s2": 6})


@pytest.fixture(scope="module")
def area(cube: Path) -> tuple[float, float, float, float]:
    """A 48 x 40 px (10 m) UTM box inside the cube, away from its edges."""
    left, _, _, top = read_group_meta(cube, "s1").bounds
    x0, y1 = left + 1000, top - 1200
    return (x0, y1 - 400, x0 + 480, y1)


def options(area: Any, **kw: Any) -> EmbedOptions:
    return EmbedOptions(aoi=area, aoi_crs=UTM, **kw)


@pytest.fixture(scope="module")
def export(
    checkpoint: Path, cube: Path, area: Any, tmp_path_factory: pytest.TempPathFactory
) -> Any:
    out = tmp_path_factory.mktemp("export") / "emb"
    return embed_cube(checkpoint, cube, out, options(area, tile=16))


def test_backbone_maps_average_to_the_window_features():
    x = torch.randn(2, 5, 16, 16)
    for kind in ("alexnet", "resnet18"):
        encoder = build_encoder(
            ModalitySpec(5), EncoderConfig(kind=kind, small_input=True), embed_dim=4
        ).eval()
        with torch.no_grad():
            pooled = backbone_map(encoder, x).mean(dim=(-2, -1))
            torch.testing.assert_close(pooled, encoder.features(x), atol=1e-5, rtol=1e-4)
    mlp = build_encoder(ModalitySpec(5, spatial=False), EncoderConfig(hidden=[7]), embed_dim=4)
    with torch.no_grad():
        per_pixel = backbone_map(mlp.eval(), x)
        assert per_pixel.shape == (2, 7, 16, 16)
        torch.testing.assert_close(per_pixel[1, :, 3, 4], mlp.features(x[1:2, :, 3, 4])[0])
    geometry = map_geometry(
        build_encoder(ModalitySpec(2), EncoderConfig(kind="alexnet", small_input=True), embed_dim=4)
    )
    assert isinstance(geometry.stride, int) and geometry.stride == 2
    assert 8 <= geometry.context <= 10  # receptive field 18 px: 5x5, pool 2, three 3x3 after it


def test_dense_raster_has_no_seams_and_equals_one_big_window(
    export: Any, checkpoint: Path, cube: Path, area: Any, tmp_path: Path
):
    dense = export.rasters["dense"]
    assert cog_validate(str(dense))[0]
    info = embedding_info(dense)
    height, width = info.geobox.shape.yx
    assert info.band_count == 16 and (height, width) == (40, 48)  # concat of 2 x 8 dimensions
    values = read_embeddings(dense)
    # the encoders run on one window holding the whole area plus a wide margin
    loaded = load_encoders(checkpoint)
    inputs = open_inputs(cube, loaded, ["s1", "s2"])
    left, bottom, right, top = info.geobox.extent.boundingbox
    pad = 400.0
    big = (left - pad, bottom - pad - 80, right + pad, top + pad)  # square, on the grid
    size = round((big[2] - big[0]) / 10)
    assert size == round((big[3] - big[1]) / 10)
    batches = {name: read_batch(source, [big]) for name, source in inputs.items()}
    maps, valid = dense_batch(loaded.encoders, batches, size, "concat", torch.device("cpu"))
    reference = maps[""][0, :, 40 : 40 + height, 40 : 40 + width].numpy()
    assert valid[""][0, 40 : 40 + height, 40 : 40 + width].all()
    assert not np.isnan(values).any()
    np.testing.assert_allclose(values, reference, atol=2e-5)
    norms = np.linalg.norm(values, axis=0)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)
    # at 20 m (the AlexNet cells as they are) and 40 m (cells averaged) too
    for resolution in (20.0, 40.0):
        coarse = embed_cube(
            checkpoint,
            cube,
            tmp_path / f"r{resolution:g}",
            options(area, tile=8, product="dense", resolution=resolution),
        )
        got = read_embeddings(coarse.rasters["dense"])
        factor = round(resolution / 10)
        maps, _ = dense_batch(
            loaded.encoders, batches, size // factor, "concat", torch.device("cpu")
        )
        skip = 40 // factor
        expected = maps[""][0, :, skip : skip + height // factor, skip : skip + width // factor]
        np.testing.assert_allclose(got, expected.numpy(), atol=2e-5)
    # without the margin the windows' borders show (the test above can fail)
    seams = embed_cube(
        checkpoint, cube, tmp_path / "seams", options(area, tile=16, margin=0, product="dense")
    )
    cut = read_embeddings(seams.rasters["dense"])
    assert np.abs(cut - reference).max() > 1e-3


def test_window_vectors_equal_the_pretraining_task_and_parquet_rows(
    export: Any, checkpoint: Path, cube: Path
):
    raster = export.rasters["windows"]
    assert cog_validate(str(raster))[0]
    info = embedding_info(raster)
    assert info.geobox.resolution.x == 80  # windows of 8 px at 10 m
    values = read_embeddings(raster)
    task = ContrastivePretraining.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    dataset = open_cube_dataset(cube, ["s1", "s2"], labels=[], normalize=True)
    height, width = info.geobox.shape.yx
    transform = info.geobox.transform
    for row, col in [(0, 0), (height - 1, width - 1), (2, 3)]:
        x0, y1 = transform @ (col, row)
        sample = dataset[x0 : x0 + 80, y1 - 80 : y1]
        batch = {k: v[None] for k, v in sample.items() if k in ("s1", "s2")}
        with torch.no_grad():
            z = task.embed(batch)
        expected = torch.cat([z["s1"], z["s2"]], dim=1)[0] / np.sqrt(2)
        np.testing.assert_allclose(values[:, row, col], expected.numpy(), atol=2e-5)
    table = gpd.read_parquet(export.tables["windows"])
    assert len(table) == height * width and str(table.crs.to_epsg()) == "32630"
    row = table[(table["row"] == 2) & (table["col"] == 3)].iloc[0]
    np.testing.assert_allclose(
        row[[f"emb_{i:03d}" for i in range(16)]].to_numpy(float), values[:, 2, 3], rtol=1e-6
    )
    x0, y1 = transform @ (3, 2)
    assert row.geometry.bounds == pytest.approx((x0, y1 - 80, x0 + 80, y1))


def test_no_data_where_the_inputs_were_invalid(checkpoint: Path, cube: Path, tmp_path: Path):
    import zarr

    meta = read_group_meta(cube, "s1")
    left, top = meta.left, meta.top
    corner = (left, top - 640, left + 640, top)  # 64 x 64 px at the cube's top-left corner
    result = embed_cube(checkpoint, cube, tmp_path / "corner", options(corner, tile=32))
    root = zarr.open_group(str(cube), mode="r")
    valid = np.asarray(root["s1"]["valid"][0, :64, :64], bool) & np.asarray(
        root["s2"]["valid"][0, :64, :64], bool
    )
    assert 0 < valid.mean() < 1  # the reprojected chip leaves this corner partly empty
    dense = read_embeddings(result.rasters["dense"])
    np.testing.assert_array_equal(~np.isnan(dense).any(axis=0), valid)
    assert np.isnan(dense).all(axis=0).sum() == (~valid).sum()
    np.testing.assert_allclose(np.linalg.norm(dense[:, valid], axis=0), 1.0, atol=1e-5)
    windows = read_embeddings(result.rasters["windows"])  # 8 x 8 windows of 8 px
    fraction = valid.reshape(8, 8, 8, 8).mean(axis=(1, 3))
    np.testing.assert_array_equal(~np.isnan(windows[0]), fraction >= 0.5)
    table = gpd.read_parquet(result.tables["windows"])
    assert len(table) == int((fraction >= 0.5).sum())


def test_time_series_encoder_pools_dates_per_pixel_and_per_window(
    shared_data: Path, tmp_path: Path
):
    cube = build_series_cube(shared_data, tmp_path / "series.zarr")
    torch.manual_seed(1)
    config = PretrainConfig.from_dict(
        {
            "data": {"kind": "cube", "path": str(cube), "window": 4, "dates": {"s2": 2}},
            "modalities": {
                "s2": {
                    "encoder": {"kind": "alexnet", "small_input": True},
                    "temporal": {"d_model": 16, "heads": 2},
                },
                "s2_rgb": {"encoder": {"kind": "alexnet", "small_input": True}},
            },
            "embed_dim": 8,
            "projection_hidden": 16,
        }
    )
    specs = {"s2": ModalitySpec(2, series=True), "s2_rgb": ModalitySpec(3)}
    task = ContrastivePretraining(config, specs).eval()
    checkpoint = tmp_path / "series.ckpt"
    torch.save(
        {"state_dict": task.state_dict(), "hyper_parameters": dict(task.hparams)}, checkpoint
    )
    left, _, _, top = read_group_meta(cube, "s2").bounds
    area = (left + 800, top - 1440, left + 1440, top - 800)  # 64 x 64 px at 10 m
    result = embed_cube(checkpoint, cube, tmp_path / "out", options(area, tile=32))
    dense = read_embeddings(result.rasters["dense"])
    assert dense.shape == (16, 64, 64) and not np.isnan(dense).any()
    np.testing.assert_allclose(np.linalg.norm(dense, axis=0), 1.0, atol=1e-5)
    windows = read_embeddings(result.rasters["windows"])  # windows of 4 x 20 m = 80 m
    info = embedding_info(result.rasters["windows"])
    dataset = open_cube_dataset(
        cube,
        ["s2", "s2_rgb"],
        labels=[],
        normalize=True,
        time={"s2": TimeSelection("fixed", 2), "s2_rgb": "all"},
    )
    x0, y1 = info.geobox.transform @ (2, 3)
    sample = dataset[x0 : x0 + 80, y1 - 80 : y1]
    batch = {k: v[None] for k, v in sample.items() if k.startswith("s2")}
    assert batch["s2"].shape == (1, 2, 2, 4, 4)
    with torch.no_grad():
        z = task.embed(batch)
    expected = torch.cat([z["s2"], z["s2_rgb"]], dim=1)[0] / np.sqrt(2)
    np.testing.assert_allclose(windows[:, 3, 2], expected.numpy(), atol=2e-5)


def test_stac_item_and_quicklooks(export: Any, checkpoint: Path):
    import json

    item = json.loads(export.item.read_text())
    props = item["properties"]
    assert props["geoalign:modalities"] == ["s1", "s2"] and props["geoalign:fusion"] == "concat"
    from geoalign.embed_cog import file_sha256

    assert props["geoalign:checkpoint_sha256"] == file_sha256(checkpoint)
    assert props["processing:software"]["geoalign"]
    assert props["start_datetime"].startswith("2019-09-17")
    assert set(item["assets"]) >= {"dense", "windows", "windows_table", "dense_quicklook"}
    assert len(item["assets"]["dense"]["raster:bands"]) == 16
    assert item["assets"]["dense"]["proj:code"] == "EPSG:32630"
    assert all((export.out_dir / a["href"]).is_file() for a in item["assets"].values())


def test_quantized_round_trips_with_each_fusion(
    export: Any, checkpoint: Path, cube: Path, area: Any, tmp_path: Path
):
    reference = read_embeddings(export.rasters["dense"])  # float32, concat
    unit = {"s1": reference[:8] * np.sqrt(2), "s2": reference[8:] * np.sqrt(2)}
    per_modality = embed_cube(
        checkpoint,
        cube,
        tmp_path / "none",
        options(area, tile=16, fusion="none", product="dense", dtype="int8"),
    )
    assert set(per_modality.rasters) == {"dense_s1", "dense_s2"}
    for name in ("s1", "s2"):
        path = per_modality.rasters[f"dense_{name}"]
        assert cog_validate(str(path))[0] and embedding_info(path).dtype == "int8"
        error = np.abs(read_embeddings(path) - unit[name]).max()
        assert 0 < error <= 0.5 / 127 + 2e-5
    mean = embed_cube(
        checkpoint,
        cube,
        tmp_path / "mean",
        options(area, tile=16, fusion="mean", product="dense", dtype="float16"),
    )
    path = mean.rasters["dense"]
    assert cog_validate(str(path))[0] and embedding_info(path).dtype == "float16"
    expected = F.normalize(torch.from_numpy(unit["s1"] + unit["s2"]), dim=0).numpy()
    assert np.abs(read_embeddings(path) - expected).max() <= 2.0**-11 + 3e-5


def test_interrupted_export_resumes_without_redoing_windows(
    export: Any, checkpoint: Path, cube: Path, area: Any, tmp_path: Path
):
    out = tmp_path / "resume"
    calls: list[int] = []

    def interrupt(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    opts = options(area, tile=16, batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        embed_cube(checkpoint, cube, out, opts, progress=interrupt)
    assert not (out / "item.json").exists() and not (out / "embeddings.tif").exists()
    assert (out / "embeddings.tif.partial.tif").exists()
    with pytest.raises(DataFileNotFoundError, match="resume"):
        read_embeddings(out / "embeddings.tif")
    result = embed_cube(checkpoint, cube, out, opts)
    assert result.skipped == 2 and result.computed + result.skipped == 9 + 1  # 3 x 3 + 1
    np.testing.assert_allclose(
        read_embeddings(result.rasters["dense"]),
        read_embeddings(export.rasters["dense"]),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        read_embeddings(result.rasters["windows"]),
        read_embeddings(export.rasters["windows"]),
        atol=1e-6,
    )
    assert not list(out.glob("*.partial.tif")) and not list(out.glob("*.progress.json"))
    # interrupted after its rasters were finished (no item yet): they are kept, not redone
    (out / "item.json").unlink()
    before = result.rasters["dense"].stat().st_mtime_ns
    again = embed_cube(checkpoint, cube, out, opts)
    assert again.computed == 0 and again.skipped == 10 and (out / "item.json").is_file()
    assert again.rasters["dense"].stat().st_mtime_ns == before


def test_bad_inputs_are_refused_with_what_to_do(
    export: Any, checkpoint: Path, cube: Path, area: Any, tmp_path: Path
):
    with pytest.raises(OutputExistsError, match="overwrite"):
        embed_cube(checkpoint, cube, export.out_dir, options(area))
    with pytest.raises(InvalidInputError, match="outside the cube"):
        embed_cube(checkpoint, cube, tmp_path / "a", EmbedOptions(aoi=(10.0, 50.0, 10.1, 50.1)))
    thirteen = save_checkpoint(tmp_path / "13.ckpt", cube, {"s1": 2, "s2": 13})
    with pytest.raises(InvalidInputError, match=r"'s2' encoder takes 13 bands .* gives 6"):
        embed_cube(thirteen, cube, tmp_path / "b", options(area))
    ortho = save_checkpoint(tmp_path / "ortho.ckpt", cube, {"s1": 2, "ortho": 3})
    with pytest.raises(InvalidInputError, match=r"encoders \['ortho'\] have no modality"):
        embed_cube(ortho, cube, tmp_path / "c", options(area, modalities=("s1", "ortho")))
    with pytest.raises(InvalidInputError, match="has encoders for"):
        embed_cube(checkpoint, cube, tmp_path / "d", options(area, modalities=("s3",)))
    plain = tmp_path / "plain.pth"
    torch.save({"weight": torch.zeros(3)}, plain)
    with pytest.raises(InvalidInputError, match="not a geoalign pretraining checkpoint"):
        embed_cube(plain, cube, tmp_path / "e", options(area))
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _Payload(marker)}, evil)
    with pytest.raises(InvalidInputError, match="weights_only"):
        embed_cube(evil, cube, tmp_path / "f", options(area))
    assert not marker.exists()
    assert not (tmp_path / "e").exists() or not any((tmp_path / "e").iterdir())


def test_a_recipe_in_place_of_the_cube_is_built_first(
    checkpoint: Path, area: Any, shared_data: Path, tmp_path: Path
):
    import yaml
    from support.cubes import SEN1FLOODS11_RECIPE

    raw = yaml.safe_load(SEN1FLOODS11_RECIPE.read_text())
    folder = SEN1FLOODS11_RECIPE.parent
    raw["sensors_file"] = str(folder / raw["sensors_file"])
    for modality in raw["modalities"].values():
        modality["files"] = [str((folder / f).resolve()) for f in modality["files"]]
    for label in raw["labels"]:
        label["source"] = str((folder / label["source"]).resolve())
    raw["output"] = str(tmp_path / "built.zarr")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(raw))
    result = embed_cube(checkpoint, recipe, tmp_path / "out", options(area, product="windows"))
    assert (tmp_path / "built.zarr").is_dir() and result.rasters["windows"].is_file()
    again = embed_cube(
        checkpoint, recipe, tmp_path / "out2", options(area, product="windows")
    )  # the finished cube is reused
    np.testing.assert_array_equal(
        read_embeddings(again.rasters["windows"]), read_embeddings(result.rasters["windows"])
    )


class _Payload:
    """An object whose unpickling would run code (creates ``marker``)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.slow  # a fresh process imports torch and Lightning
def test_cli_embed_and_similarity_like_a_user(checkpoint: Path, cube: Path, tmp_path: Path):
    out = tmp_path / "cli"
    bbox = "-0.7700,38.1000,-0.7650,38.1040"  # lon/lat, inside the chip
    command = ["embed", str(checkpoint), str(cube), str(out), f"--bbox={bbox}", "--dtype", "int8"]
    proc = run_geoalign(*command, "--tile", "32")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"raster dense: {out / 'embeddings.tif'}" in proc.stdout.replace("\n", "")
    assert "STAC item" in proc.stdout and "windows" in proc.stdout  # the progress bar
    assert "[" not in proc.stdout  # printed as text, no markup tags
    assert cog_validate(str(out / "embeddings.tif"))[0]
    again = run_geoalign(*command)
    assert again.returncode == 2 and "--overwrite" in again.stderr
    sim = tmp_path / "sim.tif"
    proc = run_geoalign(
        "similarity", str(out / "embeddings.tif"), "--point", "-0.7675,38.102", "-o", str(sim)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    values = read_embeddings(sim)[0]
    assert np.nanmax(values) == pytest.approx(1.0, abs=0.02) and cog_validate(str(sim))[0]
    dense = str(out / "embeddings.tif")
    far = run_geoalign("similarity", dense, "--point", "10,50", "-o", str(sim))
    assert far.returncode == 2 and "outside" in far.stderr


def test_cli_embed_refuses_what_does_not_fit(checkpoint: Path, cube: Path, tmp_path: Path):
    thirteen = save_checkpoint(tmp_path / "13.ckpt", cube, {"s1": 2, "s2": 13})
    plain = tmp_path / "plain.pth"
    torch.save({"weight": torch.zeros(3)}, plain)
    cases = [
        (thirteen, "-0.7700,38.1000,-0.7650,38.1040", "'s2' encoder takes 13 bands"),
        (plain, "-0.7700,38.1000,-0.7650,38.1040", "not a geoalign pretraining checkpoint"),
        (checkpoint, "10.0,50.0,10.1,50.1", "outside the cube"),
    ]
    for number, (ckpt, bbox, message) in enumerate(cases):
        out = tmp_path / f"out{number}"
        done = run_geoalign("embed", str(ckpt), str(cube), str(out), f"--bbox={bbox}")
        assert done.returncode == 2, (done.stdout, done.stderr)
        assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not (out / "embeddings.tif").exists()
