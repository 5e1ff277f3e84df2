"""The YAML schema of sensor files (pydantic), and its conversion to :class:`Sensor`.

A sensor file looks like ``builtin.yaml``::

    version: 1
    sensors:
      my-camera:
        kind: orthophoto
        encoding: {dtype: uint8, nodata: 0}
        band_defaults: {dtype: uint8, units: DN, resolution_m: 0.1}
        bands:
          - {name: red, asset_keys: [image], index: 1}

Errors name the file and the field (``sensors.my-camera.bands[0].resolution_m``).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from geoalign.sensors.model import (
    Band,
    Detection,
    Encoding,
    MaskSpec,
    Radiometry,
    Sensor,
    SensorKind,
)

SensorName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]*$")]


def _check_dtype(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return np.dtype(value.lower()).name
    except TypeError as err:
        raise ValueError(f"{value!r} is not a numpy dtype name (uint8, int16, float32...)") from err


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BandFields(_Model):
    """Fields shared by bands and ``band_defaults`` (see :class:`~geoalign.sensors.Band`)."""

    asset_keys: list[str] | dict[str, list[str]] | None = None
    aliases: list[str] | None = None
    common_name: str | None = None
    center_wavelength_nm: Annotated[float, Field(gt=0)] | None = None
    full_width_nm: Annotated[float, Field(gt=0)] | None = None
    resolution_m: Annotated[float, Field(gt=0)] | None = None
    units: str | None = None
    dtype: str | None = None
    nodata: float | None = None
    scale: float | None = None
    offset: float | None = None
    index: Annotated[int, Field(ge=1)] | None = None
    optional: bool | None = None

    _dtype = field_validator("dtype")(_check_dtype)


class BandModel(BandFields):
    """One band; ``asset_keys`` may be a list or ``{provider: [keys]}`` (order kept)."""

    name: Annotated[str, StringConstraints(min_length=1)]


class MaskModel(_Model):
    """A mask band and its invalid values or bits."""

    band: BandModel
    invalid_values: list[int] = []
    optional_invalid_values: list[int] = []
    invalid_bits: list[Annotated[int, Field(ge=0, le=63)]] = []
    optional_invalid_bits: list[Annotated[int, Field(ge=0, le=63)]] = []
    classes: dict[int, str] = {}

    @model_validator(mode="after")
    def _something_invalid(self) -> MaskModel:
        if not (self.invalid_values or self.invalid_bits):
            raise ValueError("a mask needs invalid_values or invalid_bits")
        return self


class EncodingModel(_Model):
    """How the cube stores the modality."""

    dtype: str
    scale: float = 1.0
    offset: float = 0.0
    nodata: float | None = None
    units: str | None = None

    _dtype = field_validator("dtype")(_check_dtype)


class RadiometryModel(_Model):
    """A processing-baseline offset rule."""

    baseline_properties: list[str]
    baseline_from: str
    baseline_offset: float
    applied_flag: str | None = None
    first_baseline_date: date | None = None


class DetectModel(_Model):
    """How to recognise the sensor's items."""

    collections: list[str] = []
    platforms: list[str] = []
    properties: dict[str, list[str]] = {}
    media_types: list[str] = []


class SensorModel(_Model):
    """One sensor."""

    kind: Literal[
        "optical", "sar", "orthophoto", "hyperspectral", "dem", "lidar_raster", "lidar_points"
    ]
    description: str = ""
    encoding: EncodingModel
    bands: list[BandModel] = []
    band_defaults: BandFields | None = None
    band_template: BandFields | None = None
    mask: MaskModel | None = None
    time_series: bool = False
    notes: list[str] = []
    radiometry: RadiometryModel | None = None
    detect: DetectModel = DetectModel()
    unsupported: str | None = None

    @model_validator(mode="after")
    def _bands(self) -> SensorModel:
        names = [b.name for b in self.bands]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"band names must be unique, repeated: {duplicates}")
        if not self.bands and self.band_template is None:
            raise ValueError("give bands, or a band_template for bands discovered per item")
        return self


class SensorFile(_Model):
    """A whole sensor file."""

    version: Literal[1] = 1
    sensors: dict[SensorName, SensorModel]


def _keys(value: list[str] | dict[str, list[str]] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    flat = value if isinstance(value, list) else [k for ks in value.values() for k in ks]
    return tuple(dict.fromkeys(flat))


def _band(model: BandFields, name: str, defaults: BandFields | None) -> Band:
    """A :class:`Band` from ``model``, fields it leaves unset taken from ``defaults``."""
    values: dict[str, Any] = {}
    for field_name in BandFields.model_fields:
        value = getattr(model, field_name)
        if field_name not in model.model_fields_set and defaults is not None:
            value = getattr(defaults, field_name)
        values[field_name] = value
    return Band(
        name=name,
        asset_keys=_keys(values["asset_keys"]),
        aliases=tuple(values["aliases"] or ()),
        common_name=values["common_name"],
        center_wavelength_nm=values["center_wavelength_nm"],
        full_width_nm=values["full_width_nm"],
        resolution_m=values["resolution_m"],
        units=values["units"],
        dtype=values["dtype"],
        nodata=values["nodata"],
        scale=values["scale"],
        offset=values["offset"],
        index=values["index"],
        optional=bool(values["optional"]),
    )


def to_sensor(name: str, model: SensorModel) -> Sensor:
    """Convert a validated :class:`SensorModel` to the frozen :class:`Sensor`."""
    defaults = model.band_defaults
    mask = None
    if model.mask is not None:
        m = model.mask
        mask = MaskSpec(
            band=_band(m.band, m.band.name, None),
            invalid_values=tuple(m.invalid_values),
            optional_invalid_values=tuple(m.optional_invalid_values),
            invalid_bits=tuple(m.invalid_bits),
            optional_invalid_bits=tuple(m.optional_invalid_bits),
            classes=tuple(sorted(m.classes.items())),
        )
    rad = model.radiometry
    kind: SensorKind = model.kind
    return Sensor(
        name=name,
        kind=kind,
        bands=tuple(_band(b, b.name, defaults) for b in model.bands),
        encoding=Encoding(**model.encoding.model_dump()),
        description=model.description,
        mask=mask,
        time_series=model.time_series,
        notes=tuple(model.notes),
        band_template=(
            _band(model.band_template, "band", defaults) if model.band_template else None
        ),
        radiometry=(
            Radiometry(
                baseline_properties=tuple(rad.baseline_properties),
                baseline_from=rad.baseline_from,
                baseline_offset=rad.baseline_offset,
                applied_flag=rad.applied_flag,
                first_baseline_date=rad.first_baseline_date,
            )
            if rad
            else None
        ),
        detection=Detection(
            collections=tuple(model.detect.collections),
            platforms=tuple(model.detect.platforms),
            properties=tuple((k, tuple(v)) for k, v in model.detect.properties.items()),
            media_types=tuple(model.detect.media_types),
        ),
        unsupported=model.unsupported,
    )
