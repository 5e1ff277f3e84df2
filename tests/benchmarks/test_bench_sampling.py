"""The sampling benchmark's quick mode runs end to end (run on demand: ``pytest -m benchmark``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("bench_sampling.py")


@pytest.mark.benchmark
@pytest.mark.slow
def test_quick_sampling_benchmark_prints_its_json_result(tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert result == json.loads(out.read_text())
    assert result["mode"] == "quick"
    for part in (result, result["small_window"]):
        assert part["ratio_vs_torchgeo"] > 1 and part["ratio_vs_ceiling"] > 0
        for key in ("torchgeo", "cube_cold", "cube_first", "cube_steady", "ceiling"):
            for workers in (0, 2):
                figures = part["figures"][f"{key}_w{workers}"]
                assert figures["samples_per_s"] > 0 and figures["mb_per_s"] > 0
