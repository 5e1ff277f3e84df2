"""Benchmark: rasterizing point clouds into DSM + density + nDSM, speed on one core and memory.

    python tests/benchmarks/bench_lidar.py            # 5 M and 20 M points (about 2 minutes)
    python tests/benchmarks/bench_lidar.py --quick    # 1 M and 4 M points (seconds)

A seeded synthetic survey (10 returns per m2: ground, vegetation with two returns per pulse,
buildings) is written as uncompressed LAS 1.4 (point format 6) and as LAZ, then rasterized onto
a 1 m UTM grid with :func:`geoalign.lidar.rasterize_to_geotiff` in a fresh process pinned to one
CPU core (``os.sched_setaffinity``), which reports its wall and CPU time (after a warm-up on a
small file: PROJ's database, GDAL's drivers) and its peak resident memory (``ru_maxrss``). The
memory budget (``max_points_in_memory``) is set to the base cloud, which is held in memory; the
cloud 4x larger is streamed and spilled by tile, so its peak memory should stay about the same:
``peak_rss_ratio_4x`` = peak(4N) / peak(N).

The last line printed is a JSON object with ``points_per_s_per_core`` (LAS, the base cloud, from
reading the file to the written GeoTIFF, per CPU second of the pinned process; wall time is
reported beside it and matches it on an idle machine), ``peak_rss_ratio_4x`` and the details.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

PRODUCTS = ("dsm", "density", "ndsm")
DENSITY = 10.0  # returns per m2
ORIGIN = (500_000.0, 4_000_000.0)
CRS = "EPSG:32612"


def write_survey(path: Path, points: int, seed: int = 0, chunk: int = 2_000_000) -> float:
    """Write ``points`` seeded returns as LAS/LAZ (by suffix), in chunks; returns the side (m)."""
    import laspy
    import pyproj

    side = float(np.sqrt(points / DENSITY))
    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([ORIGIN[0], ORIGIN[1], 0.0])
    header.add_crs(pyproj.CRS(CRS))
    rng = np.random.default_rng(seed)
    with laspy.open(str(path), mode="w", header=header) as writer:
        for start in range(0, points, chunk):
            n = min(chunk, points - start)
            record = laspy.ScaleAwarePointRecord.zeros(n, header=header)
            x = ORIGIN[0] + rng.uniform(0, side, n)
            y = ORIGIN[1] + rng.uniform(0, side, n)
            ground = 100.0 + 0.01 * (x - ORIGIN[0]) + 0.02 * (y - ORIGIN[1])
            kind = rng.random(n)
            vegetation = kind < 0.3
            building = (kind >= 0.3) & (np.sin((x - ORIGIN[0]) / 40.0) > 0.8)
            z = ground + np.where(vegetation, rng.uniform(2, 25, n), 0.0) + building * 9.0
            record.x, record.y, record.z = x, y, z
            record.classification = np.where(vegetation, 5, np.where(building, 6, 2))
            record.return_number = np.where(vegetation, 1, 1 + (kind > 0.95))
            record.number_of_returns = np.where(vegetation, 2, 1 + (kind > 0.95))
            record.intensity = rng.integers(0, 4096, n)
            writer.write_points(record)
    return side


def _child(path: str, side: float, budget: int) -> None:
    """Runs in a fresh process: rasterize once on one core, print the timing as JSON."""
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    from odc.geo.geobox import GeoBox

    from geoalign.lidar import RasterizeOptions, rasterize_to_geotiff

    grid = GeoBox.from_bbox(
        (ORIGIN[0], ORIGIN[1], ORIGIN[0] + np.ceil(side), ORIGIN[1] + np.ceil(side)),
        CRS,
        resolution=1.0,
    )
    options = RasterizeOptions(products=PRODUCTS, max_points_in_memory=budget)
    with tempfile.TemporaryDirectory() as folder:
        # warm-up on a small file: PROJ's database, GDAL's drivers, first calls of numpy
        small = Path(folder) / "warm.las"
        write_survey(small, 50_000, seed=1)
        rasterize_to_geotiff(small, grid, Path(folder) / "warm.tif", options=options)
        start, cpu_start = time.perf_counter(), time.process_time()
        report = rasterize_to_geotiff(path, grid, Path(folder) / "out.tif", options=options)
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu_seconds": cpu_seconds,
                "points": report.points,
                "tiles": report.tiles,
                "peak_rss_mb": peak_kib / 1024.0,
            }
        )
    )


def run_child(path: Path, side: float, budget: int) -> dict[str, Any]:
    """Rasterize ``path`` in a fresh Python process; its JSON report."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "GDAL_NUM_THREADS": "1",
    }
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(path), str(side), str(budget)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 M and 4 M points (seconds)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child[0], float(args.child[1]), int(args.child[2]))
        return
    base = 1_000_000 if args.quick else 5_000_000
    budget = base  # the base cloud is held in memory; the 4x cloud must stream
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-lidar-") as folder:
        for name, points, suffix in (
            ("las", base, ".las"),
            ("laz", base, ".laz"),
            ("las_4x", 4 * base, ".las"),
        ):
            path = Path(folder) / f"{name}{suffix}"
            side = write_survey(path, points)
            result = run_child(path, side, budget)
            result.update(
                name=name,
                file_points=points,
                file_mb=path.stat().st_size / 1e6,
                points_per_s=points / result["cpu_seconds"],
                points_per_s_wall=points / result["seconds"],
            )
            rows.append(result)
            path.unlink()
    by_name = {row["name"]: row for row in rows}
    print(
        f"{'cloud':<8} {'points':>11} {'file MB':>8} {'tiles':>5} {'wall s':>7} {'cpu s':>7} "
        f"{'Mpts/s':>7} {'peak MB':>8}"
    )
    for row in rows:
        print(
            f"{row['name']:<8} {row['file_points']:>11,} {row['file_mb']:>8.0f} {row['tiles']:>5} "
            f"{row['seconds']:>7.2f} {row['cpu_seconds']:>7.2f} {row['points_per_s'] / 1e6:>7.2f} "
            f"{row['peak_rss_mb']:>8.0f}"
        )
    summary = {
        "points_per_s_per_core": round(by_name["las"]["points_per_s"]),
        "points_per_s_wall": round(by_name["las"]["points_per_s_wall"]),
        "points_per_s_per_core_laz": round(by_name["laz"]["points_per_s"]),
        "points_per_s_per_core_4x_streamed": round(by_name["las_4x"]["points_per_s"]),
        "peak_rss_ratio_4x": round(
            by_name["las_4x"]["peak_rss_mb"] / by_name["las"]["peak_rss_mb"], 3
        ),
        "peak_rss_mb": {row["name"]: round(row["peak_rss_mb"], 1) for row in rows},
        "points": base,
        "products": list(PRODUCTS),
        "resolution_m": 1.0,
        "density_per_m2": DENSITY,
        "max_points_in_memory": budget,
        "quick": bool(args.quick),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
