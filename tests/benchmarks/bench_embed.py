"""Benchmark: embedding-raster export against the encoders' forward pass alone; memory vs area.

    python tests/benchmarks/bench_embed.py            # full run (a few minutes on 2 cores)
    python tests/benchmarks/bench_embed.py --quick    # smoke test

Inputs: the real Sen1Floods11 cube of the tutorial recipe (S1 + S2 at 10 m, 5 x 5 km; built in a
temporary folder from ../shared/data) and a checkpoint of the tutorial's pretraining config
(``tutorials/configs/sen1floods11_cube.yaml``: AlexNet for S1, ResNet-18 ``small_input`` for S2,
128 dimensions each, concatenated to 256 bands) with untrained weights (the cost of a forward
pass does not depend on the weights).

- ``overhead``: in one process, the encoders' forward passes alone over the same windows the
  export computes (dense windows with their margins, per-window tiles; inputs read beforehand,
  untimed), then the whole export (reading the cube, forward passes, resampling, writing the
  partial GeoTIFF, the COG copy with overviews, GeoParquet rows, PCA quicklook, STAC item;
  loading the checkpoint and probing the backbones' receptive fields included).
  ``overhead = export_s / forward_s - 1`` with the best of ``--repeat`` interleaved runs of
  each (wall time; ``overhead_cpu`` the same with this process's CPU time, less sensitive to
  other processes on a shared machine).
- ``peak_rss_ratio_4x``: peak RSS (VmHWM) of a fresh process exporting an area 4x larger (2x each
  side) over that of the base area, same tile size.
- ``cog_valid``: rio-cogeo's validator on the exported rasters.
- ``km2_per_s``: exported area (10 m pixels) per second of export.

The last printed line is the JSON result (``--out FILE`` writes it to a file too).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "tutorials" / "recipes" / "sen1floods11.yaml"
CONFIG = REPO / "tutorials" / "configs" / "sen1floods11_cube.yaml"
MODES = {
    # base area edge (10 m pixels), dense tile, repeats
    "full": {"edge": 208, "tile": 256, "repeat": 2},  # 2x: 416 px, the chip's width
    "quick": {"edge": 48, "tile": 48, "repeat": 1},
}


def _hwm_bytes() -> int:
    """Peak resident set size of this process (VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_inputs(root: Path) -> tuple[Path, Path]:
    """The Sen1Floods11 cube of the tutorial recipe and an untrained tutorial checkpoint."""
    import lightning as L
    import torch

    from geoalign.models import ModalitySpec, PretrainConfig
    from geoalign.models.pretrain import ContrastivePretraining
    from geoalign.recipe import load_recipe
    from geoalign.recipe_build import plan_recipe

    recipe, base = load_recipe(RECIPE)
    cube = dataclasses.replace(plan_recipe(recipe, base), output=root / "cube.zarr").write()
    raw = PretrainConfig.from_yaml(CONFIG).model_dump(mode="json")
    raw["data"]["path"] = str(cube)
    config = PretrainConfig.from_dict(raw)
    torch.manual_seed(0)
    task = ContrastivePretraining(config, {"s1": ModalitySpec(2), "s2": ModalitySpec(6)})
    checkpoint = root / "tutorial.ckpt"
    torch.save(
        {
            "state_dict": task.state_dict(),
            "hyper_parameters": dict(task.hparams),
            "pytorch-lightning_version": L.__version__,
        },
        checkpoint,
    )
    return cube, checkpoint


def _area(cube: Path, edge: int) -> tuple[float, float, float, float]:
    """A square of ``edge`` 10 m pixels at the cube's top-left corner (UTM)."""
    from geoalign.datasets.cube_meta import read_group_meta

    left, _, _, top = read_group_meta(cube, "s1").bounds
    return (left, top - edge * 10.0, left + edge * 10.0, top)


def _options(area: Any, tile: int) -> Any:
    from geoalign.models.embed import EmbedOptions

    return EmbedOptions(aoi=area, aoi_crs="EPSG:32630", tile=tile, product="both")


def forward_only(checkpoint: Path, cube: Path, options: Any) -> float:
    """Seconds of the encoders' forward passes over the windows the export computes."""
    import torch

    from geoalign.embed_tiles import lcm_step, output_geobox, plan_tiles
    from geoalign.models.checkpoint import load_encoders
    from geoalign.models.dense import dense_embedding
    from geoalign.models.embed import WINDOWS_PER_TILE, _dense_plan
    from geoalign.models.embed_compute import read_batch, split_windows
    from geoalign.models.embed_inputs import open_inputs

    loaded = load_encoders(checkpoint)
    names = list(loaded.encoders)
    inputs = open_inputs(cube, loaded, names)
    meta = inputs["s1"].dataset.meta
    from geoalign.aoi import to_aoi

    aoi = to_aoi(options.aoi, crs=options.aoi_crs)
    resolution, margin, step, align = _dense_plan(loaded.encoders, inputs, options)
    grid = output_geobox(meta.bounds, meta.crs, resolution=resolution, align=align, aoi=aoi)
    core = min(-(-options.tile // step), -(-max(grid.shape.yx) // step)) * step
    dense_tiles = plan_tiles(grid, core=core, margin=margin)
    size = loaded.config.data.window * lcm_step([s.resolution for s in inputs.values()])
    windows_grid = output_geobox(meta.bounds, meta.crs, resolution=size, align=size, aoi=aoi)
    k = min(WINDOWS_PER_TILE, max(windows_grid.shape.yx))
    window_tiles = plan_tiles(windows_grid, core=k, margin=0)
    batches = []
    for start in range(0, len(dense_tiles), options.batch_size):
        group = dense_tiles[start : start + options.batch_size]
        batches.append(
            ("dense", {n: read_batch(s, [t.bounds for t in group]) for n, s in inputs.items()})
        )
    for tile in window_tiles:
        batches.append(("windows", {n: read_batch(s, [tile.bounds]) for n, s in inputs.items()}))
    started = time.perf_counter()
    with torch.no_grad():
        for kind, batch in batches:
            for name, (x, _, _, _) in batch.items():
                encoder = loaded.encoders[name]
                if kind == "dense":
                    dense_embedding(encoder, x)
                else:
                    encoder(torch.cat([split_windows(t, k) for t in x]))
    return time.perf_counter() - started


def worker(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process (``--worker overhead`` or ``--worker rss``)."""
    from rio_cogeo.cogeo import cog_validate

    from geoalign.embed_cog import embedding_info
    from geoalign.models.dense import _GEOMETRIES
    from geoalign.models.embed import embed_cube

    cube, checkpoint = Path(args.cube), Path(args.checkpoint)
    area = _area(cube, args.edge)
    options = _options(area, args.tile)
    out = Path(args.scratch)
    result: dict[str, Any] = {}
    if args.worker == "overhead":
        # warm-up: first-call costs of torch and GDAL
        forward_only(checkpoint, cube, _options(_area(cube, 16), 16))
        forward, export, forward_cpu, export_cpu = [], [], [], []
        for attempt in range(args.repeat):  # interleaved: both see the same machine load
            cpu = time.process_time()
            forward.append(forward_only(checkpoint, cube, options))
            forward_cpu.append(time.process_time() - cpu)
            folder = out / f"run{attempt}"
            _GEOMETRIES.clear()  # the export pays for its receptive-field probe
            started, cpu = time.perf_counter(), time.process_time()
            done = embed_cube(checkpoint, cube, folder, options)
            export.append(time.perf_counter() - started)
            export_cpu.append(time.process_time() - cpu)
        result.update(
            forward_s=min(forward),
            export_s=min(export),
            forward_cpu_s=min(forward_cpu),
            export_cpu_s=min(export_cpu),
        )
    else:
        baseline = _hwm_bytes()
        done = embed_cube(checkpoint, cube, out / "rss", options)
        result.update(peak_rss=_hwm_bytes(), baseline_rss=baseline)
    result["cog_valid"] = all(cog_validate(str(p))[0] for p in done.rasters.values())
    height, width = embedding_info(done.rasters["dense"]).geobox.shape.yx
    result["km2"] = height * width * 100 / 1e6  # 10 m pixels
    return result


def run_worker(kind: str, cube: Path, checkpoint: Path, edge: int, mode: str, root: Path) -> Any:
    scratch = Path(tempfile.mkdtemp(dir=root))
    settings = MODES[mode]
    command = [
        sys.executable, __file__, "--worker", kind, "--cube", str(cube),
        "--checkpoint", str(checkpoint), "--edge", str(edge), "--tile", str(settings["tile"]),
        "--repeat", str(settings["repeat"]), "--scratch", str(scratch),
    ]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=1200, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    shutil.rmtree(scratch, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(mode: str, root: Path) -> dict[str, Any]:
    """Build the inputs, run the workers, summarise."""
    cube, checkpoint = build_inputs(root)
    edge = MODES[mode]["edge"]
    # the overhead on the larger area, where the fixed costs (loading the checkpoint, the
    # receptive-field probe, the quicklook) weigh as they do on real exports
    overhead = run_worker("overhead", cube, checkpoint, 2 * edge, mode, root)
    base = run_worker("rss", cube, checkpoint, edge, mode, root)
    big = run_worker("rss", cube, checkpoint, 2 * edge, mode, root)
    km2 = overhead["km2"]
    mib = 1024 * 1024
    return {
        "mode": mode,
        "area_km2": round(km2, 3),
        "rss_areas_km2": [round(base["km2"], 3), round(big["km2"], 3)],
        "bands": 256,
        "forward_s": round(overhead["forward_s"], 2),
        "export_s": round(overhead["export_s"], 2),
        "overhead": round(overhead["export_s"] / overhead["forward_s"] - 1, 3),
        "forward_cpu_s": round(overhead["forward_cpu_s"], 2),
        "export_cpu_s": round(overhead["export_cpu_s"], 2),
        "overhead_cpu": round(overhead["export_cpu_s"] / overhead["forward_cpu_s"] - 1, 3),
        "km2_per_s": round(km2 / overhead["export_s"], 3),
        "peak_rss_mib": round(base["peak_rss"] / mib),
        "peak_rss_4x_mib": round(big["peak_rss"] / mib),
        "after_imports_rss_mib": round(base["baseline_rss"] / mib),
        "peak_rss_ratio_4x": round(big["peak_rss"] / base["peak_rss"], 3),
        "cog_valid": bool(overhead["cog_valid"] and base["cog_valid"] and big["cog_valid"]),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one worker); the last line printed is the JSON result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    for name in ("worker", "cube", "checkpoint", "scratch"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    for name in ("edge", "tile", "repeat"):
        parser.add_argument(f"--{name}", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="geoalign-bench-embed-"))
    try:
        result = run(mode, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    print(
        f"\nexport {result['export_s']} s vs forward passes alone {result['forward_s']} s: "
        f"overhead {result['overhead']:.1%} (goal <= 25%); {result['km2_per_s']} km2/s at 10 m\n"
        f"peak RSS {result['peak_rss_mib']} MiB, 4x area {result['peak_rss_4x_mib']} MiB: "
        f"{result['peak_rss_ratio_4x']}x (goal <= 1.3x); COGs valid: {result['cog_valid']}\n"
    )
    line = json.dumps(result)
    if args.out is not None:
        args.out.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
