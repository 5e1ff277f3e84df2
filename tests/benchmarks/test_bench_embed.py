"""Smoke test of the embedding benchmark: ``bench_embed.py --quick`` runs and prints its JSON.

Deselected by default (``-m 'not benchmark'`` in pyproject); run with ``pytest -m benchmark``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_embed.py")


@pytest.mark.benchmark
def test_quick_benchmark_prints_the_json_result(tmp_path: Path, shared_data: Path) -> None:
    del shared_data  # the benchmark builds the Sen1Floods11 cube from the shared data
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
    assert result["cog_valid"] is True
    for key in ("overhead", "peak_rss_ratio_4x", "km2_per_s", "forward_s", "export_s"):
        assert isinstance(result[key], float), key
    assert result["export_s"] > 0 and result["forward_s"] > 0 and result["km2_per_s"] > 0
    assert result["peak_rss_4x_mib"] >= result["after_imports_rss_mib"] > 0
