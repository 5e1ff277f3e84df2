"""Discover the bands of a multi-band raster (hyperspectral cubes) from GDAL metadata.

Wavelengths are looked up, per band, in: the band's ``wavelength`` / ``fwhm`` /
``wavelength_units`` tags (ENVI headers as GDAL exposes them, EnMAP GeoTIFFs), the
``IMAGERY`` domain (``CENTRAL_WAVELENGTH_UM`` / ``FWHM_UM``, GDAL >= 3.10), then the
dataset's ``ENVI`` domain lists (``wavelength = {...}``, ``fwhm = {...}``). Values in
micrometres are converted to nanometres; when no unit is given, values below 100 are read as
micrometres (no optical sensor has a centre wavelength below 100 nm).
"""

from __future__ import annotations

import re
from dataclasses import replace
from os import PathLike
from pathlib import Path

import rasterio

from geoalign.errors import CorruptDataError, DataFileNotFoundError
from geoalign.sensors.model import Band, Sensor

_MICRO = ("micrometer", "micrometre", "micron", "um", "µm")
_NANO = ("nanometer", "nanometre", "nm")


def _to_nm(value: float, units: str | None) -> float:
    unit = (units or "").strip().lower()
    if any(unit.startswith(u) for u in _MICRO):
        return value * 1000.0
    if any(unit.startswith(u) for u in _NANO):
        return value
    return value * 1000.0 if value < 100.0 else value


def _float(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _envi_list(text: str | None) -> list[float]:
    if not text:
        return []
    values = [_float(v) for v in re.split(r"[,\s{}]+", text) if v]
    return [v for v in values if v is not None]


def bands_from_raster(
    path: str | PathLike[str], *, template: Band | None = None
) -> tuple[Band, ...]:
    """One :class:`Band` per raster band, with wavelengths from the file's GDAL metadata.

    Args:
        path: A raster GDAL can open (ENVI ``.hdr`` pairs, GeoTIFF, ...).
        template: Defaults for every band (units, nodata, scale, resolution...); the file's
            own nodata, scale and offset win over it.

    Returns:
        Bands named ``b001``, ``b002``... (1-based, zero-padded to at least 3 digits) with
        ``index`` set to the file band and wavelengths in nanometres (None if not found).

    Raises:
        DataFileNotFoundError: ``path`` does not exist.
        CorruptDataError: GDAL cannot open it.
    """
    path = Path(path)
    if not path.exists():
        raise DataFileNotFoundError(f"Raster {path} does not exist; check the path or href.")
    try:
        ds = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise CorruptDataError(f"GDAL cannot open raster {path}: {err}") from err
    base = template or Band(name="band")
    with ds:
        envi = ds.tags(ns="ENVI") if "ENVI" in (ds.tag_namespaces() or []) else {}
        dataset_units = ds.tags().get("wavelength_units") or envi.get("wavelength_units")
        envi_wl = _envi_list(envi.get("wavelength"))
        envi_fwhm = _envi_list(envi.get("fwhm"))
        width = max(3, len(str(ds.count)))
        bands = []
        for i in range(1, ds.count + 1):
            tags = ds.tags(i)
            imagery = ds.tags(i, ns="IMAGERY") if "IMAGERY" in (ds.tag_namespaces(i) or []) else {}
            units = tags.get("wavelength_units") or dataset_units
            center = _float(tags.get("wavelength"))
            fwhm = _float(tags.get("fwhm"))
            if center is None and (um := _float(imagery.get("CENTRAL_WAVELENGTH_UM"))) is not None:
                center, fwhm, units = um, _float(imagery.get("FWHM_UM")), "um"
            if center is None and len(envi_wl) == ds.count:
                center = envi_wl[i - 1]
                fwhm = envi_fwhm[i - 1] if len(envi_fwhm) == ds.count else fwhm
            nodata, scale, offset = ds.nodatavals[i - 1], ds.scales[i - 1], ds.offsets[i - 1]
            bands.append(
                replace(
                    base,
                    name=f"b{i:0{width}d}",
                    index=i,
                    center_wavelength_nm=_to_nm(center, units) if center is not None else None,
                    full_width_nm=_to_nm(fwhm, units) if fwhm is not None else None,
                    dtype=ds.dtypes[i - 1],
                    nodata=nodata if nodata is not None else base.nodata,
                    scale=scale if scale not in (None, 1.0) else base.scale,
                    offset=offset if offset not in (None, 0.0) else base.offset,
                    aliases=(),
                    optional=False,
                )
            )
    return tuple(bands)


def sensor_from_raster(
    path: str | PathLike[str], *, base: Sensor, name: str | None = None
) -> Sensor:
    """A copy of ``base`` (e.g. the ``hyperspectral`` sensor) with the bands of a file.

    Args:
        path: The raster whose bands (and wavelengths) to use.
        base: Sensor giving kind, encoding, notes and the band template.
        name: Name of the new sensor (default: ``base.name``).

    Returns:
        A sensor with a fixed band list; register it with
        :func:`~geoalign.sensors.register_sensor` to use it by name.
    """
    bands = bands_from_raster(path, template=base.band_template)
    return replace(base, name=name or base.name, bands=bands, band_template=None)
