"""Smoke test of the Houston benchmark: ``bench_houston.py --quick`` runs and prints its JSON.

Deselected by default (``-m 'not benchmark'`` in pyproject); run with ``pytest -m benchmark``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_houston.py")


@pytest.mark.benchmark
def test_quick_benchmark_prints_the_json_result(shared_data: Path, tmp_path: Path) -> None:
    del shared_data  # the tutorial config reads ../shared/data/houston2013
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == json.loads(out.read_text())
    for key in ("multimodal_oa", "single_modal_oa", "random_init_oa", "random_forest_oa"):
        # 15 classes: chance is 6.7%; every row, even two pretraining epochs, is far above it
        assert 20.0 < result[key] <= 100.0, key
    assert result["seeds"] == [0]
