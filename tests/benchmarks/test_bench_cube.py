"""Smoke test of the cube benchmark: ``bench_cube.py --quick`` runs and prints its JSON result.

Deselected by default (``-m 'not benchmark'`` in pyproject); run with ``pytest -m benchmark``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).with_name("bench_cube.py")


@pytest.mark.benchmark
def test_quick_benchmark_prints_the_json_result(tmp_path: Path) -> None:
    if shutil.which("gdalwarp") is None:
        pytest.fail("gdalwarp is needed by the cube benchmark: apt install gdal-bin")
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--data-dir",
            str(tmp_path / "data"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert result == json.loads(out.read_text())
    for key in ("ratio_vs_odc_stac", "ratio_vs_gdalwarp", "peak_rss_ratio_4x"):
        assert isinstance(result[key], float) and result[key] > 0, key
    for loader in ("geoalign", "odc-stac", "gdalwarp"):
        run = result["runs"][loader]
        assert run["wall_s"] > 0 and run["mpix_per_s"] > 0 and run["peak_rss_mib"] > 0
    assert result["geoalign_4x"]["peak_rss_mib"] > 0
    # Where the source grid is the cube grid, geoalign must match both references exactly.
    for name, check in result["checks"].items():
        if check["aligned"]:
            assert check["equal_fraction_vs_odc_stac"] == 1.0, name
            assert check["equal_fraction_vs_gdalwarp"] == 1.0, name
