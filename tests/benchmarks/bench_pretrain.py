"""Benchmark: pretraining step cost against the number of sensors, the loss's share, data loading.

    python tests/benchmarks/bench_pretrain.py            # full run (about 4-7 minutes on 2 cores)
    python tests/benchmarks/bench_pretrain.py --quick    # smoke test (about 1-2 minutes)

Part 1, scaling in the number of sensors: M = 1, 2, 3, 4 equal encoders (the AlexNet-style CNN
of ``geoalign.models``, 4 bands, ``WINDOW`` px windows), two augmented views per modality, a
fixed batch of ``BATCH`` locations, the real training step of
:class:`~geoalign.models.ContrastivePretraining` (views, encoders, multi-positive loss over one
similarity matrix, backward, AdamW). Each M runs in a fresh process: step time (the fastest of
``STEPS``, as timeit does: other processes share the cores) and peak
memory (CUDA ``max_memory_allocated`` on a GPU, else the growth of the peak RSS over the
process's baseline). ``loss_share``: forward + backward of the loss alone (same embedding
shapes) over the whole step, at M = 4. Goals: ``step_ratio_m4_m1`` <= 4.4 (linear in M),
``loss_share`` < 0.05.

Part 2, data loading next to training, on CPU: a synthetic cube (``_synthetic.py``, seeded:
Sentinel-2-like 4 bands x dates, Sentinel-1-like VV/VH x dates, 1 m orthophoto), read by the
pretraining's own :class:`~geoalign.models.cube_data.CubeDataModule` (multi-place batches,
decoded and normalised, each sensor at its own resolution), against the training throughput of
the task on the same batches (time-series encoders with date pooling for S2/S1, a CNN for the
orthophoto). ``loader_over_train``: loader samples/s (main process, no workers) over training
samples/s; goal >= 3.

The last line printed is a JSON object with ``step_ratio_m4_m1``, ``loss_share`` and
``loader_over_train``; ``--out FILE`` writes it too.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

if __package__:
    from ._synthetic import UTM, Layout, make_scene
else:  # run as a script: this folder is sys.path[0]
    from _synthetic import UTM, Layout, make_scene  # type: ignore[no-redef]

BATCH = {"quick": 16, "full": 32}
WINDOW = {"quick": 32, "full": 64}
STEPS = {"quick": 4, "full": 8}
LAYOUTS = {
    "quick": Layout(side_m=800, s2_tile_px=160, s2_dates=2, s1_dates=1),
    "full": Layout(side_m=1600, s2_tile_px=256, s2_dates=3, s1_dates=2),
}
CUBE_WINDOW = {"quick": 8, "full": 16}  # 10 m pixels (x 10 orthophoto pixels)
CUBE_BATCH = 16
CUBE_BATCHES = {"quick": 4, "full": 10}
MODALITIES = [
    ("s2", "sentinel-2-l2a", 10.0, ["blue", "green", "red", "nir"]),
    ("s1", "sentinel-1-rtc", 10.0, ["vv", "vh"]),
    ("ortho", "naip", 1.0, ["red", "green", "blue", "nir"]),
]


def _config(modalities: dict[str, Any], data: dict[str, Any], views: int = 2) -> Any:
    from geoalign.models import PretrainConfig

    return PretrainConfig.from_dict(
        {
            "data": data,
            "modalities": modalities,
            "embed_dim": 128,
            "views": {"count": views},
            "trainer": {"progress_bar": "none"},
        }
    )


def _train_step(task: Any, optimizer: Any, batch: dict[str, Any], index: int) -> float:
    """One optimizer step of the task (views, encoders, loss, backward, AdamW); seconds."""
    device = task.device
    start = time.perf_counter()
    optimizer.zero_grad(set_to_none=True)
    embeddings, reconstruction = task._encode_views(batch, index)
    out = task._contrastive(embeddings, None, gather=False)
    (out.loss + 0.0 * reconstruction).backward()
    optimizer.step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def _loss_seconds(task: Any, m: int, batch: int, views: int, repeats: int) -> float:
    """Forward + backward of the loss alone on embeddings shaped as in the step."""
    device = task.device
    shape = (batch, views, task.config.embed_dim)
    embeddings = {f"m{i}": torch.randn(shape, device=device, requires_grad=True) for i in range(m)}
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        task.criterion(embeddings).loss.backward()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times[1:])


def measure_m(m: int, mode: str) -> dict[str, float]:
    """Step time and peak memory with ``m`` equal encoders (run in a fresh process)."""
    from geoalign.models import ContrastivePretraining, ModalitySpec

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    modalities = {f"m{i}": {"encoder": {"kind": "alexnet"}} for i in range(m)}
    config = _config(modalities, {"kind": "cube", "path": "unused.zarr"})
    torch.manual_seed(0)
    task = ContrastivePretraining(config, {f"m{i}": ModalitySpec(4) for i in range(m)}).to(device)
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)
    size, window = BATCH[mode], WINDOW[mode]
    batch = {f"m{i}": torch.randn(size, 4, window, window, device=device) for i in range(m)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _train_step(task, optimizer, batch, 0)  # warm-up
    times = [_train_step(task, optimizer, batch, i + 1) for i in range(STEPS[mode])]
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_kib) / 1024
    step = min(times)  # the least disturbed step: other processes share these cores
    loss = _loss_seconds(task, m, size, config.views.count, STEPS[mode])
    return {"m": m, "step_s": step, "loss_s": loss, "peak_mib": peak_mib}


def build_cube_inputs(root: Path, layout: Layout) -> Path:
    """Write the synthetic scene and build the cube the loader reads."""
    import pystac

    from geoalign.cube import ModalityRequest, build_cube

    items = make_scene(root / "scene", layout, log=lambda _: None)
    requests = [
        ModalityRequest(
            name,
            sensor,
            [pystac.Item.from_dict(d) for d in items[name]],
            res,
            bands=bands,
            mask_clouds=False,
        )
        for name, sensor, res, bands in MODALITIES
    ]
    cube = root / "cube.zarr"
    build_cube(cube, requests, aoi=layout.aoi(), aoi_crs=UTM, crs=UTM)
    return cube


def _samples_per_s(loader: Any, batches: int) -> float:
    iterator = iter(loader)
    next(iterator)  # worker start-up and first reads excluded
    start = time.perf_counter()
    count = 0
    for _ in range(batches):
        count += int(next(iterator)["bounds"].shape[0])
    return count / (time.perf_counter() - start)


def loader_and_training(cube: Path, layout: Layout, mode: str) -> dict[str, float]:
    """Samples/s of the pretraining loader (0 and 2 workers) and of training on its batches."""
    from geoalign.models import ContrastivePretraining
    from geoalign.models.cube_data import CubeDataModule

    batches = CUBE_BATCHES[mode]
    data = {
        "kind": "cube",
        "path": str(cube),
        "window": CUBE_WINDOW[mode],
        "place_size": CUBE_WINDOW[mode],
        "batch_size": CUBE_BATCH,
        "batches_per_epoch": batches + 1,
        "val_fraction": 0.0,
        "min_valid": 0.0,
        "dates": {"s2": layout.s2_dates, "s1": layout.s1_dates},
        "num_workers": 0,
    }
    temporal = {"d_model": 128, "heads": 4}
    modalities = {
        "s2": {"encoder": {"kind": "alexnet", "small_input": True}, "temporal": temporal},
        "s1": {"encoder": {"kind": "alexnet", "small_input": True}, "temporal": temporal},
        "ortho": {"encoder": {"kind": "resnet18"}},
    }
    config = _config(modalities, data)
    module = CubeDataModule(config.data, list(modalities), seed=0)
    specs = module.specs()  # computes the band statistics once
    figures = {"loader_w0_samples_per_s": _samples_per_s(module.train_dataloader(), batches)}
    workers = CubeDataModule(
        config.data.model_copy(update={"num_workers": 2}), list(modalities), seed=0
    )
    figures["loader_w2_samples_per_s"] = _samples_per_s(workers.train_dataloader(), batches)
    held = [b for _, b in zip(range(STEPS[mode] + 1), module.train_dataloader(), strict=False)]
    torch.manual_seed(0)
    task = ContrastivePretraining(config, specs)
    optimizer = torch.optim.AdamW(task.parameters(), lr=1e-3)
    _train_step(task, optimizer, held[0], 0)
    seconds = [_train_step(task, optimizer, b, i + 1) for i, b in enumerate(held[1:])]
    figures["train_samples_per_s"] = CUBE_BATCH / min(seconds)
    figures["batch_mb"] = (
        sum(v.nbytes for v in held[0].values() if isinstance(v, torch.Tensor)) / 1e6
    )
    return figures


def run(mode: str, root: Path) -> dict[str, Any]:
    """Both parts; the JSON result."""
    context = multiprocessing.get_context("spawn")
    scaling = []
    for m in (1, 2, 3, 4):
        with context.Pool(1) as pool:
            scaling.append(pool.apply(measure_m, (m, mode)))
    by_m = {int(r["m"]): r for r in scaling}
    layout = LAYOUTS[mode]
    started = time.perf_counter()
    cube = build_cube_inputs(root, layout)
    build_s = time.perf_counter() - started
    loading = loader_and_training(cube, layout, mode)
    return {
        "step_ratio_m4_m1": round(by_m[4]["step_s"] / by_m[1]["step_s"], 3),
        "loss_share": round(by_m[4]["loss_s"] / by_m[4]["step_s"], 4),
        "loader_over_train": round(
            loading["loader_w0_samples_per_s"] / loading["train_samples_per_s"], 2
        ),
        "goals": {
            "step_ratio_m4_m1": "<= 4.4",
            "loss_share": "< 0.05",
            "loader_over_train": ">= 3",
        },
        "mode": mode,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
        "batch": BATCH[mode],
        "window_px": WINDOW[mode],
        "scaling": [{k: round(float(v), 4) for k, v in r.items()} for r in scaling],
        "cube_window_px_10m": CUBE_WINDOW[mode],
        "cube_batch": CUBE_BATCH,
        "cube_build_s": round(build_s, 1),
        "loading": {k: round(v, 2) for k, v in loading.items()},
    }


def print_table(result: dict[str, Any]) -> None:
    """A readable summary before the JSON line."""
    print(f"\n{'M':>3}{'step s':>10}{'loss s':>10}{'peak MiB':>10}")
    for row in result["scaling"]:
        print(
            f"{int(row['m']):>3}{row['step_s']:>10.3f}{row['loss_s']:>10.4f}{row['peak_mib']:>10.0f}"
        )
    loading = result["loading"]
    print(
        f"\nstep M=4 / M=1: {result['step_ratio_m4_m1']} (goal <= 4.4); loss share at M=4: "
        f"{result['loss_share']:.1%} (goal < 5%)\nloader {loading['loader_w0_samples_per_s']:.1f} "
        f"samples/s (2 workers: {loading['loader_w2_samples_per_s']:.1f}) vs training "
        f"{loading['train_samples_per_s']:.1f} samples/s: {result['loader_over_train']}x "
        "(goal >= 3x)\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; the last line printed is the JSON result."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke test")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="geoalign-bench-pretrain-"))
    try:
        result = run(mode, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    result["total_s"] = round(time.perf_counter() - started, 1)
    print_table(result)
    line = json.dumps(result)
    if args.out is not None:
        args.out.write_text(line + "\n")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
