"""Generated sensors of the demo, written as GeoTIFFs on the ground of the real Sentinel-2 scene.

Each generator takes the :class:`~geoalign.demo.ground.Ground` (real reflectance, land cover,
terrain, buildings, trees) and a seeded random generator, and writes a file whose format is the
one the matching provider publishes:

- Sentinel-1-like RTC backscatter (``vv.tif``, ``vh.tif``): float32 linear gamma0 at 10 m,
  nodata -32768 (as Planetary Computer ``sentinel-1-rtc``); per-class means, brightened by
  building fraction and double bounce, modulated by the real SWIR moisture signal, with
  4-look gamma speckle.
- An orthophoto (``ortho.tif``): uint8 red, green, blue, NIR at 1 m (NAIP-like), the real
  Sentinel-2 colours upsampled, with roofs, crowns and their shading from the surface model.
- A hyperspectral cube (``hsi.tif``): int16 reflectance x 10000 at 30 m, 60 bands 420-2400 nm
  with ``wavelength`` band metadata (EnMAP-like), interpolated between the real Sentinel-2
  band centres, with water absorption around 1400 and 1900 nm and noise.
- The land-cover label (``landcover.tif``): uint8 classes at 10 m, 255 = nodata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import ColorInterp
from scipy import ndimage

from geoalign.demo.ground import (
    BARE,
    BUILDING,
    CLASSES,
    CROPLAND,
    FOREST,
    S2_CENTRES_NM,
    WATER,
    Ground,
    hillshade,
)

#: Mean linear gamma0 (VV, VH) per land-cover class (typical C-band values).
_SAR_MEANS = {
    WATER: (0.005, 0.0008),
    FOREST: (0.15, 0.04),
    CROPLAND: (0.08, 0.015),
    BARE: (0.05, 0.006),
    BUILDING: (0.8, 0.08),
}
#: Hyperspectral band centres (nm): 60 bands from 420 to 2400 nm.
HSI_WAVELENGTHS_NM = np.linspace(420.0, 2400.0, 60)


def _profile(
    ground: Ground, resolution: float, dtype: str, count: int, nodata: Any
) -> dict[str, Any]:
    rows, cols = ground.area.shape(resolution)
    block = 512 if resolution < 5 else 256
    return {
        "driver": "GTiff",
        "width": cols,
        "height": rows,
        "count": count,
        "dtype": dtype,
        "crs": f"EPSG:{ground.area.epsg}",
        "transform": ground.area.transform(resolution),
        "nodata": nodata,
        "tiled": rows > block,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
    }


def _block_mean(array: np.ndarray, factor: int) -> np.ndarray:
    n = array.shape[0] // factor
    return np.asarray(array.reshape(n, factor, n, factor).mean(axis=(1, 3)), np.float32)


def write_sentinel1(ground: Ground, folder: Path, rng: np.random.Generator) -> dict[str, Path]:
    """Sentinel-1-like VV and VH (linear gamma0, 10 m); returns ``{"vv": path, "vh": path}``."""
    classes10 = ground.classes_at(10)
    building = _block_mean((ground.classes == BUILDING).astype(np.float32), 10)
    swir = ground.reflectance["B11"]
    moisture = 1.0 + 0.8 * (np.median(swir) - swir) / max(float(np.ptp(swir)), 1e-6)
    paths = {}
    for index, name in enumerate(("vv", "vh")):
        base: np.ndarray = np.zeros(classes10.shape, np.float32)
        for cls, means in _SAR_MEANS.items():
            base[classes10 == cls] = means[index]
        bright = _SAR_MEANS[BUILDING][index]
        base = (1.0 - building) * base + building * bright
        base *= np.clip(moisture, 0.5, 1.8)
        speckle = rng.gamma(4.0, 1.0 / 4.0, size=base.shape)
        data = (base * speckle).astype(np.float32)
        path = folder / f"{name}.tif"
        with rasterio.open(path, "w", **_profile(ground, 10, "float32", 1, -32768.0)) as dst:
            dst.write(data, 1)
            dst.set_band_description(1, name)
            dst.update_tags(1, units="linear gamma0 (generated)")
        paths[name] = path
    return paths


def write_orthophoto(ground: Ground, folder: Path, rng: np.random.Generator) -> Path:
    """A 1 m RGBN uint8 orthophoto (NAIP-like) with roofs, crowns and shading."""
    reflectance = ground.reflectance
    n = ground.classes.shape[0]
    shade = 0.55 + 0.45 * hillshade(ground.dsm) / 0.71  # flat ground = 1
    shade = np.clip(shade, 0.3, 1.2)
    roof_colour = rng.uniform(0.08, 0.35, size=(int(ground.roof.max()) + 1, 4))
    roof_colour[:, 3] = roof_colour[:, 0] * 0.9  # roofs are not bright in the NIR
    crown = ground.objects * (ground.classes == FOREST)
    crown_texture = 0.85 + 0.3 * (crown / max(float(crown.max()), 1e-6))
    data = np.empty((4, n, n), np.uint8)
    for index, band in enumerate(("B04", "B03", "B02", "B08")):
        base = ndimage.zoom(reflectance[band], n // reflectance[band].shape[0], order=1)
        value = np.where(ground.roof > 0, roof_colour[ground.roof, index], base)
        value = value * np.where(crown > 0, crown_texture, 1.0) * shade
        value = value + rng.normal(0.0, 0.004, size=value.shape)
        data[index] = np.clip(value / 0.4 * 255.0, 1, 255).astype(np.uint8)
    path = folder / "ortho.tif"
    with rasterio.open(path, "w", **_profile(ground, 1, "uint8", 4, 0), photometric="RGB") as dst:
        dst.write(data)
        dst.colorinterp = [
            ColorInterp.red,
            ColorInterp.green,
            ColorInterp.blue,
            ColorInterp.undefined,
        ]
        for index, name in enumerate(("red", "green", "blue", "nir"), start=1):
            dst.set_band_description(index, name)
    return path


def write_hyperspectral(ground: Ground, folder: Path, rng: np.random.Generator) -> Path:
    """A 30 m, 60-band reflectance cube (int16 x 10000) with wavelengths in the band metadata."""
    centres = np.array(list(S2_CENTRES_NM.values()))
    stack = np.stack([_block_mean(ground.reflectance[b], 3) for b in S2_CENTRES_NM])  # [10, n, n]
    flat = stack.reshape(len(centres), -1)
    spectra = np.stack(
        [np.interp(HSI_WAVELENGTHS_NM, centres, flat[:, i]) for i in range(flat.shape[1])], axis=1
    )
    absorption = 1.0 - 0.8 * np.exp(-(((HSI_WAVELENGTHS_NM - 1400) / 60) ** 2))
    absorption -= 0.9 * np.exp(-(((HSI_WAVELENGTHS_NM - 1900) / 70) ** 2))
    spectra = spectra * np.clip(absorption, 0.05, 1.0)[:, None]
    spectra = spectra + rng.normal(0.0, 0.003, size=spectra.shape)
    cube = np.clip(np.round(spectra * 10_000), -32767, 32767).astype(np.int16)
    rows, cols = ground.area.shape(30)
    path = folder / "hsi.tif"
    with rasterio.open(
        path, "w", **_profile(ground, 30, "int16", len(HSI_WAVELENGTHS_NM), -32768)
    ) as dst:
        dst.write(cube.reshape(-1, rows, cols))
        dst.scales = [1e-4] * len(HSI_WAVELENGTHS_NM)
        for index, wavelength in enumerate(HSI_WAVELENGTHS_NM, start=1):
            dst.set_band_description(index, f"b{index:03d}")
            dst.update_tags(
                index, wavelength=f"{wavelength:.1f}", wavelength_units="Nanometers", fwhm="30"
            )
    return path


def write_label(ground: Ground, folder: Path) -> Path:
    """The land-cover label at 10 m (uint8 :data:`~geoalign.demo.ground.CLASSES`, 255 nodata)."""
    classes = ground.classes_at(10)
    path = folder / "landcover.tif"
    with rasterio.open(path, "w", **_profile(ground, 10, "uint8", 1, 255)) as dst:
        dst.write(classes, 1)
        dst.set_band_description(1, "landcover")
        dst.update_tags(1, classes=",".join(f"{i}={c}" for i, c in enumerate(CLASSES)))
    return path
