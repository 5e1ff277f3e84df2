"""DDP on 2 CPU processes (gloo): the same loss and gradients as one process with both halves.

The first test drives torch.distributed directly (DistributedDataParallel encoders, the gather
with gradients, the loss rows of each process) and compares gradients exactly; the second runs
the real Lightning task with ``strategy="ddp_spawn"`` on Houston 2013 pixel pairs.
"""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from geoalign.models import (
    EncoderConfig,
    ModalitySpec,
    PretrainConfig,
    build_encoder,
    gather_batch,
    multi_positive_info_nce,
    pretrain,
)

N_GLOBAL = 12
SPECS = {"a": ModalitySpec(5, spatial=False), "b": ModalitySpec(3, spatial=False)}


def _free_port() -> int:
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return int(handle.getsockname()[1])


class Encoders(torch.nn.Module):
    """One encoder per modality; forward gives the embeddings of a batch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.encoders = torch.nn.ModuleDict(
            {
                name: build_encoder(spec, EncoderConfig(kind="mlp", hidden=[16]), embed_dim=8)
                for name, spec in SPECS.items()
            }
        ).double()  # float64: the two computations differ only by rounding

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: self.encoders[name](batch[name]).embedding for name in SPECS}


def _batch() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    base = torch.randn(N_GLOBAL, 3, generator=generator, dtype=torch.float64)
    noise = {
        n: 0.1 * torch.randn(N_GLOBAL, c, generator=generator, dtype=torch.float64)
        for n, c in (("a", 5), ("b", 3))
    }
    return {
        "a": torch.cat([base, base[:, :2]], dim=1) + noise["a"],
        "b": base + noise["b"],
        "negatives_only": torch.arange(N_GLOBAL) % 5 == 4,
    }


def _loss(models: torch.nn.Module, batch: dict[str, torch.Tensor], gathered: bool) -> torch.Tensor:
    embeddings = models(batch)
    negatives = batch["negatives_only"]
    anchors = None
    if gathered:
        n = embeddings["a"].shape[0]
        embeddings = {name: gather_batch(e) for name, e in embeddings.items()}
        negatives = gather_batch(negatives)
        anchors = slice(dist.get_rank() * n, (dist.get_rank() + 1) * n)
    return multi_positive_info_nce(embeddings, 10.0, negatives_only=negatives, anchors=anchors).loss


def _worker(rank: int, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        models = torch.nn.parallel.DistributedDataParallel(Encoders())
        half = N_GLOBAL // 2
        batch = {k: v[rank * half : (rank + 1) * half] for k, v in _batch().items()}
        loss = _loss(models, batch, gathered=True)
        loss.backward()  # DDP averages the parameter gradients of the two processes
        mean_loss = loss.detach().clone()
        dist.all_reduce(mean_loss)
        mean_loss /= 2
        if rank == 0:
            grads = {n: p.grad.clone() for n, p in models.module.named_parameters()}
            torch.save({"loss": mean_loss, "grads": grads}, out)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_gather_with_gradients_matches_one_process_with_the_whole_batch(tmp_path: Path):
    out = tmp_path / "rank0.pt"
    mp.spawn(_worker, args=(_free_port(), str(out)), nprocs=2, join=True)
    result = torch.load(out)
    models = Encoders()
    loss = _loss(models, _batch(), gathered=False)
    loss.backward()
    torch.testing.assert_close(result["loss"], loss.detach(), rtol=1e-12, atol=1e-12)
    for name, parameter in models.named_parameters():
        torch.testing.assert_close(result["grads"][name], parameter.grad, rtol=1e-9, atol=1e-12)


def _houston_config(
    tmp_path: Path, name: str, batch: int, devices: int, data: Path
) -> PretrainConfig:
    return PretrainConfig.from_dict(
        {
            "name": name,
            "data": {"kind": "houston2013", "path": str(data), "batch_size": batch},
            "modalities": {
                "hsi": {"encoder": {"kind": "mlp", "hidden": [32]}},
                "lidar": {"encoder": {"kind": "mlp", "hidden": [16]}},
            },
            "embed_dim": 16,
            "projection_hidden": 32,
            "trainer": {
                "max_steps": 3,
                "max_epochs": 1,
                "accelerator": "cpu",
                "devices": devices,
                "strategy": "ddp_spawn" if devices > 1 else "auto",
                "progress_bar": "none",
                "log_every_n_steps": 1,
                "output_dir": str(tmp_path),
            },
        }
    )


def _logged_losses(run: Path) -> list[float]:
    rows = list(csv.DictReader((run / "csv" / "version_0" / "metrics.csv").open()))
    return [float(r["train/loss"]) for r in rows if r.get("train/loss")]


@pytest.mark.slow
def test_lightning_ddp_spawn_gives_the_loss_of_one_process_with_the_doubled_batch(
    tmp_path: Path, shared_data: Path
):
    data = shared_data / "houston2013"
    single = pretrain(_houston_config(tmp_path, "single", 256, 1, data))
    double = pretrain(_houston_config(tmp_path, "ddp", 128, 2, data))
    expected, got = _logged_losses(single.run_dir), _logged_losses(double.run_dir)
    assert len(expected) == len(got) == 3
    for a, b in zip(expected, got, strict=True):
        assert b == pytest.approx(a, rel=1e-4)
    assert single.last_checkpoint is not None and double.last_checkpoint is not None
    weights = torch.load(single.last_checkpoint)["state_dict"]
    weights_ddp = torch.load(double.last_checkpoint)["state_dict"]
    for key, value in weights.items():
        torch.testing.assert_close(weights_ddp[key], value, rtol=1e-4, atol=1e-5)
