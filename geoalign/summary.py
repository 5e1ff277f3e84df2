"""Describe a cube: a per-modality summary table and quicklook PNGs.

Quicklooks: true colour for optical sensors (red, green, blue), false colour (nir, red, green)
as a second image where a NIR band exists, VV/VH for radar (R = VV, G = VH, B = VV - VH in dB),
hillshade for elevation and LiDAR rasters, and a grey image of the first band otherwise. Each is
stretched between the 2nd and 98th percentiles of its valid pixels and shows the time step with
the most valid pixels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geoalign.cube_store import iter_groups, open_cube

#: Longest edge of a quicklook in pixels; larger modalities are subsampled.
QUICKLOOK_MAX_PIXELS = 1024


@dataclass(frozen=True)
class ModalitySummary:
    """What one modality of a cube holds.

    Attributes:
        name: Group name.
        sensor: Sensor name.
        epsg: EPSG code of the cube CRS (None if it has none).
        resolution: Pixel size in CRS units.
        shape: ``(time, band, y, x)`` sizes.
        bands: Band names.
        dates: ISO dates of the time steps.
        valid_fraction: Share of valid (clear, not no-data) pixels over all time steps, 0..1.
        skipped: Items left out because an asset could not be read (``on_error="skip"``):
            ``"item id: reason"`` each.
    """

    name: str
    sensor: str
    epsg: int | None
    resolution: float
    shape: tuple[int, ...]
    bands: tuple[str, ...]
    dates: tuple[str, ...]
    valid_fraction: float
    skipped: tuple[str, ...] = ()


def summarize(cube: xr.DataTree | str | os.PathLike[str]) -> list[ModalitySummary]:
    """Summarise every modality of a cube (a path or an opened DataTree)."""
    tree = cube if isinstance(cube, xr.DataTree) else open_cube(cube)
    root = tree.to_dataset().attrs
    fractions = json.loads(root.get("valid_fraction", "{}"))
    grid = json.loads(root.get("grid", "{}"))
    out = []
    for name, ds in iter_groups(tree, "modality"):
        fraction = fractions.get(name)
        if fraction is None:
            fraction = float(ds["valid"].mean().compute())
        out.append(
            ModalitySummary(
                name=name,
                sensor=str(ds.attrs.get("sensor", "")),
                epsg=grid.get("epsg"),
                resolution=float(ds.attrs.get("resolution", np.nan)),
                shape=tuple(int(s) for s in ds["data"].shape),
                bands=tuple(str(b) for b in ds["band"].values),
                dates=tuple(np.datetime_as_string(ds["time"].values, unit="D").tolist()),
                valid_fraction=float(fraction),
                skipped=tuple(
                    f"{entry['item']}: {entry['reason']}"
                    for entry in json.loads(ds.attrs.get("skipped_items", "[]"))
                ),
            )
        )
    return out


def _stretch(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Scale each channel to 0..1 between its 2nd and 98th percentile of valid pixels."""
    out = np.zeros(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        values = image[c][valid & np.isfinite(image[c])]
        if values.size == 0:
            continue
        low, high = np.percentile(values, [2, 98])
        scale = (high - low) or 1.0
        out[c] = np.clip((image[c] - low) / scale, 0, 1)
    out[:, ~valid] = 0
    return out


def hillshade(
    elevation: np.ndarray, resolution: float, azimuth: float = 315.0, altitude: float = 45.0
) -> np.ndarray:
    """Hillshade (0..1) of an elevation grid in metres with pixels of ``resolution`` metres."""
    filled = np.where(np.isfinite(elevation), elevation, np.nanmedian(elevation))
    dy, dx = np.gradient(filled, resolution)
    slope = np.pi / 2 - np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(-dx, dy)
    az, alt = np.radians(azimuth), np.radians(altitude)
    shaded = np.sin(alt) * np.sin(slope) + np.cos(alt) * np.cos(slope) * np.cos(az - aspect)
    result: np.ndarray = np.clip(shaded, 0, 1)
    return result


def _pick(bands: list[str], *names: str) -> list[int] | None:
    lower = [b.lower() for b in bands]
    try:
        return [lower.index(n) for n in names]
    except ValueError:
        return None


def _physical(ds: xr.Dataset, t: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    data = ds["data"].isel(time=t, y=slice(None, None, step), x=slice(None, None, step)).values
    valid = ds["valid"].isel(time=t, y=slice(None, None, step), x=slice(None, None, step)).values
    values = data.astype(np.float64)
    values[:, ~valid.astype(bool)] = np.nan
    return values, valid.astype(bool)


def quicklook_images(ds: xr.Dataset) -> dict[str, np.ndarray]:
    """Quicklook images of one modality as float arrays ``(y, x, 3)`` in 0..1, keyed by kind."""
    step = max(1, int(np.ceil(max(ds.sizes["y"], ds.sizes["x"]) / QUICKLOOK_MAX_PIXELS)))
    counts = ds["valid"].sum(dim=("y", "x")).values
    t = int(np.argmax(counts))
    values, valid = _physical(ds, t, step)
    bands = [str(b) for b in ds["band"].values]
    kind = str(ds.attrs.get("sensor_kind", ""))
    images: dict[str, np.ndarray] = {}
    if kind == "sar" and (pol := _pick(bands, "vv", "vh")) is not None:
        vv, vh = values[pol[0]], values[pol[1]]
        if ds.attrs.get("units", "") != "dB":
            with np.errstate(all="ignore"):
                vv, vh = 10 * np.log10(vv), 10 * np.log10(vh)
        rgb = np.stack([vv, vh, vv - vh])
        images["vv_vh"] = _stretch(rgb, valid).transpose(1, 2, 0)
    elif kind in ("dem", "lidar_raster", "lidar_points"):
        resolution = float(ds.attrs.get("resolution", 1.0)) * step
        shade = hillshade(values[0], resolution)
        shade[~valid] = 0
        images["hillshade"] = np.repeat(shade[..., np.newaxis], 3, axis=2)
    else:
        rgb_idx = _pick(bands, "red", "green", "blue")
        if rgb_idx is not None:
            images["true_colour"] = _stretch(values[rgb_idx], valid).transpose(1, 2, 0)
            nir = _pick(bands, "nir", "red", "green")
            if nir is not None:
                images["false_colour"] = _stretch(values[nir], valid).transpose(1, 2, 0)
        elif len(bands) >= 3 and kind == "hyperspectral":
            wavelengths = np.asarray(ds["wavelength_nm"].values, dtype=float)
            picks = [int(np.nanargmin(np.abs(wavelengths - w))) for w in (650.0, 550.0, 470.0)]
            images["true_colour"] = _stretch(values[picks], valid).transpose(1, 2, 0)
        else:
            grey = _stretch(values[:1], valid)[0]
            images["band_" + bands[0]] = np.repeat(grey[..., np.newaxis], 3, axis=2)
    return images


def write_quicklooks(
    cube: xr.DataTree | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
) -> list[Path]:
    """Write one PNG per modality and quicklook kind into ``out_dir``; return their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tree = cube if isinstance(cube, xr.DataTree) else open_cube(cube)
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, ds in iter_groups(tree, "modality"):
        for kind, image in quicklook_images(ds).items():
            path = folder / f"{name}_{kind}.png"
            plt.imsave(path, image)
            written.append(path)
    return written


def _dates(dates: tuple[str, ...]) -> str:
    if len(dates) <= 1:
        return dates[0] if dates else ""
    return f"{dates[0]}..{dates[-1]} ({len(dates)})"


def summary_table(
    summaries: list[ModalitySummary], *, bands_shown: int = 4
) -> list[dict[str, Any]]:
    """Rows for printing (CLI) or a DataFrame, one per modality.

    Band names are cut after ``bands_shown`` (the count is in ``t,b,y,x``); the ``skipped`` column
    (items whose assets could not be read) appears only when a modality skipped some.
    """
    any_skipped = any(s.skipped for s in summaries)
    rows = []
    for s in summaries:
        bands = ", ".join(s.bands[:bands_shown]) + (", ..." if len(s.bands) > bands_shown else "")
        row: dict[str, Any] = {
            "modality": s.name,
            "sensor": s.sensor,
            "res": s.resolution,
            "t,b,y,x": "x".join(str(v) for v in s.shape),
            "dates": _dates(s.dates),
            "valid": f"{100 * s.valid_fraction:.1f}%",
        }
        if any_skipped:
            row["skipped"] = len(s.skipped)
        rows.append({**row, "bands": bands})
    return rows
