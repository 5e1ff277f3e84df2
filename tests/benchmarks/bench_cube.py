"""Benchmark: one aligned cube built three ways from the same local COGs; geoalign's memory growth.

    python tests/benchmarks/bench_cube.py            # full run (2-4 minutes on 2 cores)
    python tests/benchmarks/bench_cube.py --quick    # smoke test (about 20 s)
    python tests/benchmarks/bench_cube.py --only s1 --skip-4x --data-dir /tmp/bench  # one modality

Inputs (``_synthetic.py``, seeded, regenerated in a temporary folder unless ``--data-dir`` holds
the same scene): Sentinel-2-like uint16 single-band COGs (4 bands, 10 m, 1024 px blocks, deflate,
2 x 2 overlapping tiles per date with no-data corners, 4 dates, one UTM zone), Sentinel-1-like
float32 VV/VH COGs in EPSG:4326 (2 frames per date, 4 dates) and a 1 m RGBN uint8 orthophoto
(2 x 2 tiles, pixel interleaved, 512 px blocks). The output is one cube in EPSG:32633 over a
6 km square: S2 (10 m), S1 (10 m, warped from degrees) and the orthophoto (1 m; 94% of the
output pixels), built by

- ``geoalign``: ``geoalign.cube.build_cube`` with its defaults (threaded dask, uncompressed Zarr);
- ``odc-stac``: ``odc.stac.load(items, bands=..., geobox=<the same GeoBox>, chunks=2048 px,
  groupby="solar_day", resampling="nearest").to_zarr(...)`` per modality, threaded dask,
  uncompressed like geoalign's store (zarr's default zstd would slow odc-stac down);
- ``gdalwarp``: one ``gdalwarp -t_srs -te -tr -r near -multi -wo NUM_THREADS=2`` per modality and
  date onto the same grid, to a tiled uncompressed GeoTIFF (S2/S1 band files stacked first with
  ``gdalbuildvrt -separate``, timed too).

Each run is a fresh subprocess, so its peak RSS is its own: VmHWM of the worker (ru_maxrss is
not used: after fork + exec Linux starts it from the parent's size), for gdalwarp the largest
child's VmHWM, sampled every 5 ms. Wall time covers the build (planning included), not
interpreter start-up and imports; CPU time is user + system over the same span. Loaders run
round robin ``--repeat`` times (default 3) and the best wall time counts, because the machine
may be shared; medians are reported too. Throughput is output pixels x bands x dates per second.

geoalign's output is checked against odc-stac's and gdalwarp's: bit-identical where the source
grid is the output grid (S2, ortho), and as the fraction of equal pixels where it is warped (S1:
GDAL's approximate transformer makes nearest-neighbour picks depend on how the output is cut into
warp blocks). Then geoalign builds an area 4x larger (2x each side): ``peak_rss_ratio_4x`` is its
peak RSS over the smallest base peak (``peak_rss_delta_ratio_4x``: the same above the RSS after
imports).

The last line printed is a JSON object: ``ratio_vs_odc_stac``, ``ratio_vs_gdalwarp``,
``peak_rss_ratio_4x`` and the raw figures. ``--out FILE`` also writes it to a file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

if __package__:
    from ._synthetic import S1_NODATA, UTM, Layout, disk_usage, make_scene, remove_tree
else:  # run as a script: this folder is sys.path[0]
    from _synthetic import S1_NODATA, UTM, Layout, disk_usage, make_scene, remove_tree  # type: ignore[no-redef,import-not-found]

#: Scene sizes. ``side_m`` is the base output area's edge; the 4x run doubles it.
LAYOUTS = {
    "quick": Layout(side_m=1000, s2_tile_px=256, s2_dates=2, s1_dates=1),
    "full": Layout(side_m=6000, s2_tile_px=800, s2_dates=4, s1_dates=4),
}

#: The modalities of the cube: geoalign sensor and bands, odc-stac band names, decoding of the
#: raw values odc-stac and gdalwarp return (physical = raw * scale + offset; nodata = missing).
MODALITIES: list[dict[str, Any]] = [
    {
        "name": "s2",
        "sensor": "sentinel-2-l2a",
        "resolution": 10.0,
        "bands": ["blue", "green", "red", "nir"],
        "odc_bands": ["blue", "green", "red", "nir"],
        "raw_scale": 0.0001,
        "raw_offset": -0.1,
        "raw_nodata": 0,
        "aligned": True,
    },
    {
        "name": "s1",
        "sensor": "sentinel-1-rtc",
        "resolution": 10.0,
        "bands": ["vv", "vh"],
        "odc_bands": ["vv", "vh"],
        "raw_scale": 1.0,
        "raw_offset": 0.0,
        "raw_nodata": S1_NODATA,
        "aligned": False,
    },
    {
        "name": "ortho",
        "sensor": "naip",
        "resolution": 1.0,
        "bands": ["red", "green", "blue", "nir"],
        "odc_bands": ["Red", "Green", "Blue", "NIR"],
        "raw_scale": 1.0,
        "raw_offset": 0.0,
        "raw_nodata": 0,
        "aligned": True,
    },
]

ODC_CHUNK = 2048
MIB = 1024 * 1024


# ------------------------------------------------------------------------------------- helpers


def _hwm_bytes(pid: int | str = "self") -> int | None:
    """Peak resident set (VmHWM) of a live process, from /proc (Linux), or None."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _peak_rss_self() -> int:
    """This process's peak RSS. VmHWM, not ru_maxrss: after fork + exec, Linux's ru_maxrss
    starts from the PARENT's resident size, so a small worker started by a big parent would
    report the parent's memory."""
    hwm = _hwm_bytes()
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _cpu_s(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _run_measured(command: list[str]) -> int:
    """Run ``command``; return its peak RSS, sampling /proc/PID/status every 5 ms (VmHWM only
    grows, so the last sample before exit is the peak up to the last few milliseconds)."""
    proc = subprocess.Popen(command)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _hwm_bytes(proc.pid) or 0)
        time.sleep(0.005)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, command)
    return peak


def _selected(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The modalities of this run (``--only``), in cube order."""
    wanted = config.get("modalities") or [mod["name"] for mod in MODALITIES]
    return [mod for mod in MODALITIES if mod["name"] in wanted]


def _load_items(config: dict[str, Any], name: str) -> list[Any]:
    import pystac

    data = json.loads(Path(config["items"][name]).read_text())
    return [pystac.Item.from_dict(d) for d in data]


def _geobox(bounds: list[float], resolution: float) -> Any:
    from odc.geo.geobox import GeoBox

    left, bottom, right, top = bounds
    return GeoBox.from_bbox((left, bottom, right, top), UTM, resolution=resolution, tight=True)


def _output_pixels(config: dict[str, Any], bounds: list[float]) -> dict[str, int]:
    """Output pixels x bands x dates per modality for an area."""
    out = {}
    for mod in _selected(config):
        gbox = _geobox(bounds, mod["resolution"])
        dates = len(config["dates"][mod["name"]])
        out[mod["name"]] = gbox.shape.y * gbox.shape.x * len(mod["bands"]) * dates
    return out


def _requests(config: dict[str, Any]) -> list[Any]:
    from geoalign.cube import ModalityRequest

    return [
        ModalityRequest(
            mod["name"],
            mod["sensor"],
            _load_items(config, mod["name"]),
            mod["resolution"],
            bands=mod["bands"],
            mask_clouds=False,
            resampling="nearest",
        )
        for mod in _selected(config)
    ]


# ------------------------------------------------------------------------------------- workers


def worker_geoalign(config: dict[str, Any], bounds: list[float], store: Path) -> dict[str, Any]:
    """Time ``build_cube`` over ``bounds`` (planning included); the store is left for checks."""
    from geoalign.cube import build_cube, plan_cube

    kwargs: dict[str, Any] = {"aoi": tuple(bounds), "aoi_crs": UTM, "crs": UTM}
    plan_cube(_requests(config), **kwargs)  # untimed: first imports, sensor registry, YAML
    requests = _requests(config)
    baseline = _peak_rss_self()
    cpu = _cpu_s()
    start = time.perf_counter()
    build_cube(store, requests, overwrite=True, **kwargs)
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "cpu_s": _cpu_s() - cpu,
        "peak_rss": _peak_rss_self(),
        "baseline_rss": baseline,
    }


def worker_odc(config: dict[str, Any], bounds: list[float], store: Path) -> dict[str, Any]:
    """Time plain ``odc.stac.load(...).to_zarr(...)`` per modality onto the same GeoBoxes."""
    import odc.stac
    import xarray as xr

    items = {mod["name"]: _load_items(config, mod["name"]) for mod in _selected(config)}
    xr.Dataset().to_zarr(store, mode="w", consolidated=False, zarr_format=3)
    baseline = _peak_rss_self()
    cpu = _cpu_s()
    start = time.perf_counter()
    for mod in _selected(config):
        ds = odc.stac.load(
            items[mod["name"]],
            bands=mod["odc_bands"],
            geobox=_geobox(bounds, mod["resolution"]),
            chunks={"x": ODC_CHUNK, "y": ODC_CHUNK},
            groupby="solar_day",
            resampling="nearest",
        )
        encoding = {str(v): {"compressors": None} for v in ds.data_vars}
        ds.to_zarr(
            store, group=mod["name"], mode="w", consolidated=False, zarr_format=3, encoding=encoding
        )
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "cpu_s": _cpu_s() - cpu,
        "peak_rss": _peak_rss_self(),
        "baseline_rss": baseline,
    }


def _gdal_jobs(config: dict[str, Any], bounds: list[float], folder: Path) -> list[list[list[str]]]:
    """Command lines per output file: [gdalbuildvrt ..., ..., gdalwarp ...]."""
    jobs = []
    for mod in _selected(config):
        res = mod["resolution"]
        by_day: dict[str, list[Any]] = defaultdict(list)
        for item in _load_items(config, mod["name"]):
            by_day[item.datetime.strftime("%Y%m%d")].append(item)
        for day, day_items in sorted(by_day.items()):
            commands: list[list[str]] = []
            sources = []
            for item in day_items:
                if mod["name"] == "ortho":
                    sources.append(item.assets["image"].href)
                    continue
                vrt = folder / f"{item.id}.vrt"
                hrefs = [item.assets[b].href for b in mod["odc_bands"]]
                commands.append(["gdalbuildvrt", "-q", "-separate", str(vrt), *hrefs])
                sources.append(str(vrt))
            nodata = [] if mod["raw_nodata"] is None else ["-dstnodata", f"{mod['raw_nodata']:g}"]
            out = folder / f"{mod['name']}_{day}.tif"
            commands.append(
                [
                    "gdalwarp",
                    "-q",
                    "-overwrite",
                    "-t_srs",
                    UTM,
                    "-te",
                    *(f"{v:.6f}" for v in bounds),
                    "-tr",
                    f"{res:g}",
                    f"{res:g}",
                    "-r",
                    "near",
                    "-multi",
                    "-wo",
                    "NUM_THREADS=2",
                    *nodata,
                    "-co",
                    "TILED=YES",
                    "-co",
                    "BLOCKXSIZE=512",
                    "-co",
                    "BLOCKYSIZE=512",
                    "-co",
                    "BIGTIFF=IF_SAFER",
                    *sources,
                    str(out),
                ]
            )
            jobs.append(commands)
    return jobs


def worker_gdalwarp(config: dict[str, Any], bounds: list[float], folder: Path) -> dict[str, Any]:
    """Time the gdalbuildvrt + gdalwarp command lines, one after another."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = _gdal_jobs(config, bounds, folder)
    cpu = _cpu_s(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    peak = 0
    for commands in jobs:
        for command in commands:
            peak = max(peak, _run_measured(command))
    wall = time.perf_counter() - start
    return {
        "wall_s": wall,
        "cpu_s": _cpu_s(resource.RUSAGE_CHILDREN) - cpu,
        "peak_rss": peak,
        "baseline_rss": 0,
        "commands": [" ".join(c) for job in jobs for c in job][:3],
    }


WORKERS = {"geoalign": worker_geoalign, "odc-stac": worker_odc, "gdalwarp": worker_gdalwarp}


def run_worker(
    name: str, config_path: Path, area: str, output: Path, timeout: float
) -> dict[str, Any]:
    """Run one worker in a fresh interpreter and return its result."""
    result_path = output.with_suffix(".result.json")
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--config",
        str(config_path),
        "--area",
        area,
        "--output",
        str(output),
        "--result",
        str(result_path),
    ]
    started = time.perf_counter()
    proc = subprocess.run(command, timeout=timeout, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker {name} ({area}) failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
        )
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["process_s"] = time.perf_counter() - started
    return result


# ------------------------------------------------------------------------------------- checks


def _physical(raw: Any, mod: dict[str, Any]) -> Any:
    import numpy as np

    values = raw.astype(np.float64) * mod["raw_scale"] + mod["raw_offset"]
    nodata = mod["raw_nodata"]
    if nodata is not None:
        values[np.isnan(raw) if math.isnan(nodata) else raw == nodata] = np.nan
    if raw.dtype.kind == "f":
        values[np.isnan(raw)] = np.nan
    return values


def _match(a: Any, b: Any) -> tuple[int, int]:
    """(pixels that agree, pixels) for two physical arrays; NaN agrees with NaN."""
    import numpy as np

    both_nan = np.isnan(a) & np.isnan(b)
    close = np.isclose(a, b, rtol=1e-6, atol=1e-7)
    return int((both_nan | close).sum()), int(a.size)


def compare_outputs(
    config: dict[str, Any], geo_store: Path, odc_store: Path, gdal_dir: Path
) -> dict[str, Any]:
    """Fraction of equal pixels, geoalign vs odc-stac and vs gdalwarp, per modality."""
    import numpy as np
    import rasterio
    import xarray as xr

    from geoalign.sensors import get_sensor

    report: dict[str, Any] = {}
    for mod in _selected(config):
        name = mod["name"]
        geo = xr.open_zarr(geo_store, group=name, consolidated=False, mask_and_scale=False)
        enc = get_sensor(mod["sensor"]).encoding
        geo_decoding = {"raw_scale": enc.scale, "raw_offset": enc.offset, "raw_nodata": enc.nodata}
        odc = xr.open_zarr(odc_store, group=name, consolidated=False, mask_and_scale=False)
        days = sorted(config["dates"][name])
        if geo.sizes["time"] != len(days) or odc.sizes["time"] != len(days):
            raise RuntimeError(
                f"{name}: {geo.sizes['time']} geoalign dates, {odc.sizes['time']} "
                f"odc-stac dates, {len(days)} expected"
            )
        if not (np.allclose(geo.x, odc.x) and np.allclose(geo.y, odc.y)):
            raise RuntimeError(f"{name}: geoalign and odc-stac grids differ")
        agree = {"odc-stac": [0, 0], "gdalwarp": [0, 0], "reference": [0, 0]}
        valid = [0, 0]
        for t, day in enumerate(days):
            with rasterio.open(gdal_dir / f"{name}_{day}.tif") as tif:
                gdal_raw = tif.read()
            for b, (band, odc_band) in enumerate(zip(mod["bands"], mod["odc_bands"], strict=True)):
                g = _physical(geo["data"].isel(time=t).sel(band=band).values, geo_decoding)
                o = _physical(odc[odc_band].isel(time=t).values, mod)
                w = _physical(gdal_raw[b], mod)
                for key, other in (("odc-stac", o), ("gdalwarp", w)):
                    same, total = _match(g, other)
                    agree[key][0] += same
                    agree[key][1] += total
                same, total = _match(o, w)
                agree["reference"][0] += same
                agree["reference"][1] += total
                valid[0] += int(np.isfinite(g).sum())
                valid[1] += g.size
        report[name] = {
            "aligned": mod["aligned"],
            "equal_fraction_vs_odc_stac": agree["odc-stac"][0] / agree["odc-stac"][1],
            "equal_fraction_vs_gdalwarp": agree["gdalwarp"][0] / agree["gdalwarp"][1],
            "equal_fraction_odc_stac_vs_gdalwarp": agree["reference"][0] / agree["reference"][1],
            "valid_fraction": valid[0] / valid[1],
        }
    return report


# ------------------------------------------------------------------------------------- main


def _fmt_mib(value: float) -> str:
    return f"{value / MIB:,.0f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small scene for a smoke test")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep inputs and outputs here (reused "
        "if its scene matches) instead of a temporary folder",
    )
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")
    parser.add_argument("--skip-4x", action="store_true", help="leave out the 4x-area run")
    parser.add_argument(
        "--only", help="comma-separated modalities to build (s2,s1,ortho); default all"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        help="runs per loader, round robin; the best wall time counts (default 3, --quick 1)",
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    # Internal: one measured run in a fresh process.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--config", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--area", choices=["base", "4x"], default="base", help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        config = json.loads(args.config.read_text())
        result = WORKERS[args.worker](config, config["bounds"][args.area], args.output)
        args.result.write_text(json.dumps(result))
        return 0

    mode = "quick" if args.quick else "full"
    layout = LAYOUTS[mode]
    total_start = time.perf_counter()
    temporary = args.data_dir is None
    root = Path(tempfile.mkdtemp(prefix="geoalign-bench-")) if temporary else args.data_dir
    try:
        result = _run(args, mode, layout, root)
    finally:
        if temporary:
            remove_tree(root)
    result["total_s"] = round(time.perf_counter() - total_start, 1)
    line = json.dumps(result, sort_keys=True)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)
    return 0


def _run(args: argparse.Namespace, mode: str, layout: Layout, root: Path) -> dict[str, Any]:
    import rasterio

    scene = root / "scene"
    config_path = root / "config.json"
    stamp = {"layout": layout.__dict__, "version": 1}
    reuse = config_path.exists() and json.loads(config_path.read_text()).get("stamp") == stamp
    print(
        f"geoalign cube benchmark ({mode}): {os.cpu_count()} CPUs, GDAL (gdalwarp) "
        f"{_gdal_version()}, rasterio GDAL {rasterio.__gdal_version__}; data in {root}"
    )
    start = time.perf_counter()
    if not reuse:
        remove_tree(scene)
        print("generating synthetic COGs ...")
        items = make_scene(scene, layout, log=print)
        files = {}
        for name, dicts in items.items():
            files[name] = str(root / f"items-{name}.json")
            Path(files[name]).write_text(json.dumps(dicts))
        dates = {
            name: sorted({d["properties"]["datetime"][:10].replace("-", "") for d in dicts})
            for name, dicts in items.items()
        }
        config = {
            "stamp": stamp,
            "items": files,
            "dates": dates,
            "bounds": {"base": list(layout.aoi(1)), "4x": list(layout.aoi(2))},
        }
        config_path.write_text(json.dumps(config))
    config = json.loads(config_path.read_text())
    names = [mod["name"] for mod in MODALITIES]
    only = args.only.split(",") if args.only else names
    if not only or any(name not in names for name in only):
        raise SystemExit(f"--only takes a comma-separated subset of {names}, got {args.only!r}")
    config["modalities"] = only
    config_path.write_text(json.dumps(config))
    generate_s = time.perf_counter() - start
    print(
        f"inputs: {disk_usage(scene) / 1e6:,.0f} MB of COGs ({generate_s:.1f} s"
        f"{', reused' if reuse else ''})"
    )

    outputs = root / "outputs"
    remove_tree(outputs)
    outputs.mkdir(parents=True)
    pixels = _output_pixels(config, config["bounds"]["base"])
    mpix = sum(pixels.values()) / 1e6
    paths = {
        "geoalign": outputs / "geoalign.zarr",
        "odc-stac": outputs / "odc.zarr",
        "gdalwarp": outputs / "gdalwarp",
    }
    repeats = args.repeat if args.repeat is not None else (1 if mode == "quick" else 3)
    trials: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
    for round_ in range(repeats):
        # Round robin, so that a slow spell of a shared machine hits every loader alike.
        for name in paths:
            print(f"round {round_ + 1}/{repeats}: {name} ...", flush=True)
            remove_tree(paths[name])
            trials[name].append(run_worker(name, config_path, "base", paths[name], args.timeout))
    runs = {name: _summarise(t, mpix) for name, t in trials.items()}
    print("checking outputs ...", flush=True)
    checks = compare_outputs(config, paths["geoalign"], paths["odc-stac"], paths["gdalwarp"])
    remove_tree(outputs)
    outputs.mkdir()

    big: dict[str, Any] | None = None
    if not args.skip_4x:
        print("geoalign on the 4x area ...", flush=True)
        big_mpix = sum(_output_pixels(config, config["bounds"]["4x"]).values()) / 1e6
        big = _summarise(
            [run_worker("geoalign", config_path, "4x", outputs / "geoalign-4x.zarr", args.timeout)],
            big_mpix,
        )
        big["output_mpix"] = round(big_mpix, 2)
        remove_tree(outputs)

    geo = runs["geoalign"]
    result: dict[str, Any] = {
        "benchmark": "cube_build",
        "mode": mode,
        "cpus": os.cpu_count(),
        "repeats": repeats,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": _versions(),
        "modalities": config["modalities"],
        "output_mpix": round(mpix, 2),
        "output_mpix_by_modality": {k: round(v / 1e6, 2) for k, v in pixels.items()},
        # Throughput ratios from the best wall time of each loader (least disturbed run).
        "ratio_vs_odc_stac": round(geo["mpix_per_s"] / runs["odc-stac"]["mpix_per_s"], 3),
        "ratio_vs_gdalwarp": round(geo["mpix_per_s"] / runs["gdalwarp"]["mpix_per_s"], 3),
        "ratio_vs_odc_stac_median": round(
            runs["odc-stac"]["wall_s_median"] / geo["wall_s_median"], 3
        ),
        "ratio_vs_gdalwarp_median": round(
            runs["gdalwarp"]["wall_s_median"] / geo["wall_s_median"], 3
        ),
        # Memory: the 4x-area peak over the smallest base peak (conservative).
        "peak_rss_ratio_4x": round(big["peak_rss_mib"] / geo["peak_rss_mib_min"], 3)
        if big
        else None,
        "peak_rss_delta_ratio_4x": (
            round(
                (big["peak_rss_mib"] - big["baseline_rss_mib"])
                / (geo["peak_rss_mib_min"] - geo["baseline_rss_mib"]),
                3,
            )
            if big
            else None
        ),
        "runs": runs,
        "geoalign_4x": big,
        "checks": checks,
        "inputs_mb": round(disk_usage(scene) / 1e6, 1),
        "generate_s": round(generate_s, 1),
    }
    _print_table(result)
    return result


def _summarise(trials: list[dict[str, Any]], mpix: float) -> dict[str, Any]:
    """Best-of-N wall time (and its CPU time), median wall time, peak RSS over the trials."""
    best = min(trials, key=lambda t: t["wall_s"])
    walls = sorted(t["wall_s"] for t in trials)
    peaks = [t["peak_rss"] / MIB for t in trials]
    return {
        "wall_s": round(best["wall_s"], 3),
        "wall_s_median": round(walls[len(walls) // 2], 3),
        "wall_s_all": [round(t["wall_s"], 3) for t in trials],
        "cpu_s": round(best["cpu_s"], 3),
        "mpix_per_s": round(mpix / best["wall_s"], 2),
        "peak_rss_mib": round(max(peaks), 1),
        "peak_rss_mib_min": round(min(peaks), 1),
        "baseline_rss_mib": round(max(t["baseline_rss"] for t in trials) / MIB, 1),
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"gdalwarp": _gdal_version()}
    for package in ("geoalign", "odc-stac", "rasterio", "dask", "zarr", "xarray", "numpy"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    import rasterio

    out["rasterio_gdal"] = rasterio.__gdal_version__
    return out


def _gdal_version() -> str:
    try:
        out = subprocess.run(["gdalwarp", "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as error:
        raise SystemExit(
            f"gdalwarp is needed for this benchmark (apt install gdal-bin): {error}"
        ) from error
    return out.stdout.split(",")[0].replace("GDAL ", "")


def _print_table(result: dict[str, Any]) -> None:
    print()
    print(
        f"output: {result['output_mpix']:.1f} Mpix (pixels x bands x dates: "
        + ", ".join(f"{k} {v:.1f}" for k, v in result["output_mpix_by_modality"].items())
        + f"); best of {result['repeats']} run(s)"
    )
    print(
        f"{'loader':<13}{'wall s':>8}{'median s':>10}{'CPU s':>8}{'Mpix/s':>8}"
        f"{'peak RSS MiB':>14}{'after imports':>15}"
    )
    rows = list(result["runs"].items())
    if result["geoalign_4x"]:
        rows.append(("geoalign 4x", result["geoalign_4x"]))
    for name, r in rows:
        print(
            f"{name:<13}{r['wall_s']:>8.2f}{r['wall_s_median']:>10.2f}{r['cpu_s']:>8.2f}"
            f"{r['mpix_per_s']:>8.1f}{r['peak_rss_mib']:>14,.0f}{r['baseline_rss_mib']:>15,.0f}"
        )
    print(
        f"geoalign vs odc-stac {result['ratio_vs_odc_stac']:.2f}x (median "
        f"{result['ratio_vs_odc_stac_median']:.2f}x), "
        f"vs gdalwarp {result['ratio_vs_gdalwarp']:.2f}x "
        f"(median {result['ratio_vs_gdalwarp_median']:.2f}x); peak RSS 4x area / base "
        f"{result['peak_rss_ratio_4x']} (above the import baseline: "
        f"{result['peak_rss_delta_ratio_4x']})"
    )
    for name, c in result["checks"].items():
        kind = "aligned" if c["aligned"] else "warped"
        print(
            f"  {name:<6} ({kind}): equal pixels, geoalign vs odc-stac "
            f"{c['equal_fraction_vs_odc_stac']:.6f}, vs gdalwarp "
            f"{c['equal_fraction_vs_gdalwarp']:.6f}, odc-stac vs gdalwarp "
            f"{c['equal_fraction_odc_stac_vs_gdalwarp']:.6f}; valid {c['valid_fraction']:.3f}"
        )
    print()


if __name__ == "__main__":
    raise SystemExit(main())
