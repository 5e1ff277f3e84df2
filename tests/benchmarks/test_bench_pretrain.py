"""Smoke test of the pretraining benchmark: ``bench_pretrain.py --quick`` runs and prints its JSON.

Deselected by default (``-m 'not benchmark'`` in pyproject); run with ``pytest -m benchmark``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_pretrain.py")


@pytest.mark.benchmark
def test_quick_benchmark_prints_the_json_result(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == json.loads(out.read_text())
    for key in ("step_ratio_m4_m1", "loss_share", "loader_over_train"):
        assert isinstance(result[key], float) and result[key] > 0, key
    assert [row["m"] for row in result["scaling"]] == [1, 2, 3, 4]
    for row in result["scaling"]:
        assert row["step_s"] > 0 and row["loss_s"] > 0 and row["peak_mib"] > 0
    # peak memory grows with the number of sensors (more activations to keep)
    assert result["scaling"][3]["peak_mib"] > result["scaling"][0]["peak_mib"]
    loading = result["loading"]
    assert loading["loader_w0_samples_per_s"] > 0 and loading["train_samples_per_s"] > 0
