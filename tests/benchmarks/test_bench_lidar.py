"""The LiDAR benchmark in its quick mode (run on demand: ``pytest -m benchmark``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_lidar.py")


@pytest.mark.benchmark
def test_bench_lidar_quick() -> None:
    out = subprocess.run(
        [sys.executable, str(BENCH), "--quick"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"points_per_s_per_core", "peak_rss_ratio_4x"} <= set(result)
    assert result["points_per_s_per_core"] > 0
    assert 0 < result["peak_rss_ratio_4x"] < 2.0  # memory does not grow with the cloud
