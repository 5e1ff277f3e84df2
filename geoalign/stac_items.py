"""Make STAC items from local rasters, and write items as a local catalog geoalign can search.

:func:`items_from_rasters` turns GeoTIFF/ENVI/JPEG 2000 files (anything rasterio opens) into real
STAC items: projection extension (``proj:code``, ``proj:shape``, ``proj:transform``), a footprint in
EPSG:4326, one asset per file, ``eo:bands`` (names, centre wavelengths in micrometres) and
``raster:bands`` (data type, nodata, scale/offset) read from the files. :func:`write_catalog`
writes items as an ItemCollection (JSON or ndjson), stac-geoparquet or a static catalog, the
formats :func:`geoalign.search.search_items` searches in-process. Local rasters thereby flow through
the same path as items found in a STAC API.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeAlias

import pyarrow as pa
import pystac
import rasterio
from odc.geo.geobox import GeoBox
from pystac.extensions.eo import Band, EOExtension
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, RasterBand, RasterExtension
from pystac.utils import str_to_datetime
from stac_geoparquet.arrow import parse_stac_items_to_arrow, to_parquet

from geoalign.errors import (
    CorruptDataError,
    CRSError,
    DataFileNotFoundError,
    InvalidInputError,
    OutputExistsError,
)

__all__ = ["CatalogWriteFormat", "items_from_rasters", "write_catalog"]

CatalogWriteFormat = Literal["json", "ndjson", "geoparquet", "static"]
#: One raster file, or several files (asset key -> path) that make one item.
RasterSource: TypeAlias = "str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]]"
#: A datetime (naive = UTC) or an ISO-8601 string; ``"start/end"`` gives a range.
When: TypeAlias = "dt.datetime | str"

_MEDIA = {"GTiff": pystac.MediaType.GEOTIFF, "JP2OpenJPEG": pystac.MediaType.JPEG2000}
_TO_MICROMETRES = {"nanometers": 1e-3, "nm": 1e-3, "micrometers": 1.0, "um": 1.0, "µm": 1.0}


def write_catalog(
    items: Iterable[pystac.Item | Mapping[str, Any]],
    path: str | os.PathLike[str],
    *,
    format: CatalogWriteFormat = "json",
    overwrite: bool = False,
) -> Path:
    """Write STAC items as a local catalog that :func:`geoalign.search.search_items` can search.

    Args:
        items: pystac Items or item dicts (an ItemCollection works).
        path: The file to write: ``.json`` (ItemCollection), ``.ndjson``, ``.parquet``
            (stac-geoparquet), or for ``format="static"`` the ``catalog.json`` to write (a folder
            gets a ``catalog.json`` inside it, with one sub-folder per collection and per item).
        format: ``"json"``, ``"ndjson"``, ``"geoparquet"`` or ``"static"``.
        overwrite: Replace an existing file.

    Returns:
        The path written (the ``catalog.json`` for a static catalog).

    Raises:
        InvalidInputError: No items, or an unknown format.
        OutputExistsError: The file exists and ``overwrite`` is False.
    """
    dicts = [
        i.to_dict(include_self_link=False, transform_hrefs=False)
        if isinstance(i, pystac.Item)
        else dict(i)
        for i in items
    ]
    if not dicts:
        raise InvalidInputError("write_catalog got no items: there is nothing to write")
    out = Path(path)
    if format == "static" and (out.is_dir() or out.suffix.lower() != ".json"):
        out = out / "catalog.json"
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} exists: pass overwrite=True to replace it")
    out.parent.mkdir(parents=True, exist_ok=True)
    if format == "static":
        _write_static(dicts, out)
    elif format in ("json", "ndjson", "geoparquet"):
        with tempfile.NamedTemporaryFile(dir=out.parent, suffix=".part", delete=False) as tmp:
            part = Path(tmp.name)
        try:
            if format == "geoparquet":
                _write_geoparquet(dicts, part)
            else:
                with part.open("w", encoding="utf-8") as fh:
                    if format == "json":
                        json.dump({"type": "FeatureCollection", "features": dicts}, fh)
                    else:
                        fh.writelines(json.dumps(d, separators=(",", ":")) + "\n" for d in dicts)
            part.replace(out)
        finally:
            part.unlink(missing_ok=True)
    else:
        raise InvalidInputError(
            f"format={format!r} is unknown: use 'json', 'ndjson', 'geoparquet' or 'static'"
        )
    return out


def _write_geoparquet(dicts: list[dict[str, Any]], part: Path) -> None:
    try:
        table = parse_stac_items_to_arrow(dicts)
        to_parquet(table, part)
    except (ValueError, TypeError, pa.ArrowException) as err:  # ArrowInvalid is a ValueError
        raise InvalidInputError(
            f"these items cannot share one stac-geoparquet table ({err}): a property holds "
            "different types across items, or bboxes mix 2D and 3D; write them as json or ndjson, "
            "or one geoparquet file per collection"
        ) from err


def _write_static(dicts: list[dict[str, Any]], out: Path) -> None:
    catalog = pystac.Catalog(
        id=out.parent.name or "catalog", description="Local STAC catalog written by geoalign"
    )
    groups: dict[str | None, list[pystac.Item]] = {}
    for d in dicts:
        item = pystac.Item.from_dict(d, migrate=False)
        item.clear_links()
        groups.setdefault(item.collection_id, []).append(item)
    for cid, members in groups.items():
        if cid is None:
            for item in members:
                catalog.add_item(item)
            continue
        collection = pystac.Collection(
            id=cid,
            description=f"{len(members)} items of {cid}",
            extent=pystac.Extent.from_items(members),
            license="other",
        )
        collection.add_items(members)
        catalog.add_child(collection)
    catalog.normalize_hrefs(str(out.parent))
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)


def items_from_rasters(
    paths: Sequence[RasterSource],
    *,
    collection: str,
    datetime: When | Sequence[When],
    sensor_band_names: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    ids: Sequence[str] | None = None,
) -> list[pystac.Item]:
    """Make one STAC item per raster file (or per group of files) read with rasterio.

    Args:
        paths: Raster files (GeoTIFF, ENVI, JPEG 2000...). Each path gives one item with one asset
            ``"data"``; a mapping ``{asset_key: path}`` gives one item with one asset per file
            (e.g. Sentinel-2 bands at 10, 20 and 60 m).
        collection: Collection id of the items.
        datetime: Acquisition time of all items, or one per entry of ``paths``: a datetime (naive
            means UTC) or ISO-8601 string; ``"start/end"`` makes an item with a time range.
        sensor_band_names: Band names (``eo:bands`` ``name``) for every asset, or per asset key;
            default: the band descriptions in the files, else ``b1``, ``b2``...
        ids: Item ids; default: the file name without suffix (for a mapping, the shared prefix of
            its file names).

    Returns:
        The items, with absolute asset hrefs, ``proj:*`` at item level when all assets share a grid
        (per asset otherwise), geometry and bbox in EPSG:4326 lon/lat.

    Raises:
        DataFileNotFoundError: A file does not exist.
        CorruptDataError: A file cannot be opened as a raster.
        CRSError: A file has no CRS or no georeferencing.
        InvalidInputError: Mismatched lengths of ``datetime``/``ids``/band names, duplicate ids.
    """
    groups = [{"data": p} if isinstance(p, (str, os.PathLike)) else dict(p) for p in paths]
    if not groups or not all(groups):
        raise InvalidInputError("items_from_rasters needs at least one raster path per item")
    whens = _per_item(datetime, len(groups), "datetime")
    names = list(ids) if ids is not None else [_default_id(g) for g in groups]
    if len(names) != len(groups):
        raise InvalidInputError(f"ids has {len(names)} entries for {len(groups)} paths")
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise InvalidInputError(f"item ids {dupes} are duplicated: pass distinct ids=")
    return [
        _make_item(name, group, when, collection, sensor_band_names)
        for name, group, when in zip(names, groups, whens, strict=True)
    ]


def _per_item(value: When | Sequence[When], count: int, what: str) -> list[When]:
    if isinstance(value, (str, dt.datetime)):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise InvalidInputError(
            f"{what} has {len(values)} entries for {count} paths: give 1 or {count}"
        )
    return values


def _default_id(group: Mapping[str, str | os.PathLike[str]]) -> str:
    stems = [Path(p).stem for p in group.values()]
    if len(stems) == 1:
        return stems[0]
    prefix = os.path.commonprefix(stems)
    if any(len(s) > len(prefix) and s[len(prefix)] not in "_-. " for s in stems):
        prefix = prefix[: max(prefix.rfind(c) for c in "_-. ") + 1]  # whole tokens only
    return prefix.rstrip("_-. ") or stems[0]


def _utc(value: dt.datetime | str) -> dt.datetime:
    try:
        when = value if isinstance(value, dt.datetime) else str_to_datetime(value)
    except ValueError as err:
        raise InvalidInputError(
            f"datetime {value!r} is not ISO-8601 (2020-06-01T10:00:00Z)"
        ) from err
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def _make_item(
    name: str,
    group: Mapping[str, str | os.PathLike[str]],
    when: When,
    collection: str,
    band_names: Sequence[str] | Mapping[str, Sequence[str]] | None,
) -> pystac.Item:
    reads = {key: _read(Path(path)) for key, path in group.items()}
    parts = [info["geobox"].footprint("EPSG:4326", npoints=25) for info in reads.values()]
    footprint = parts[0]
    for part in parts[1:]:
        footprint = footprint | part
    start = end = None
    if isinstance(when, str) and "/" in when:
        start, end = (_utc(w) for w in when.split("/", 1))
        if start > end:
            raise InvalidInputError(f"datetime {when!r} ends before it starts: give start/end")
        instant = None
    else:
        instant = _utc(when)
    item = pystac.Item(
        id=name,
        geometry=footprint.json,
        bbox=[float(v) for v in footprint.boundingbox],
        datetime=instant,
        start_datetime=start,
        end_datetime=end,
        properties={},
        collection=collection,
    )
    grids = {(str(i["crs"]), i["shape"], tuple(i["transform"])) for i in reads.values()}
    if len(grids) == 1:
        _apply_projection(
            ProjectionExtension.ext(item, add_if_missing=True), next(iter(reads.values()))
        )
    for key, info in reads.items():
        asset = pystac.Asset(
            href=str(info["path"]),
            media_type=_MEDIA.get(info["driver"]),
            title=f"{info['path'].name} ({info['driver']})",
            roles=["data"],
        )
        item.add_asset(key, asset)
        if len(grids) > 1:
            _apply_projection(ProjectionExtension.ext(asset, add_if_missing=True), info)
        names = band_names.get(key) if isinstance(band_names, Mapping) else band_names
        _apply_bands(asset, info, names)
    return item


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise DataFileNotFoundError(f"raster {path} does not exist: check the path")
    try:
        with warnings.catch_warnings():  # a missing geotransform is raised as CRSError below
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
            src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as err:
        raise CorruptDataError(f"raster {path} cannot be opened by GDAL/rasterio ({err})") from err
    with src:
        if src.crs is None:
            raise CRSError(
                f"raster {path} has no CRS: set one first (gdal_edit.py -a_srs EPSG:xxxx, or "
                "rioxarray's write_crs) so its footprint can be placed"
            )
        if src.transform.is_identity:
            raise CRSError(f"raster {path} has no geotransform: georeference it first")
        tags = [src.tags(b) for b in src.indexes]
        return {
            "path": path.resolve(),
            "driver": src.driver,
            "crs": src.crs,
            "shape": (src.height, src.width),
            "transform": list(src.transform)[:6],
            "geobox": GeoBox((src.height, src.width), src.transform, src.crs.to_wkt()),
            "dtypes": list(src.dtypes),
            "nodata": src.nodata,
            "descriptions": list(src.descriptions),
            "scales": list(src.scales),
            "offsets": list(src.offsets),
            "units": list(src.units),
            "tags": tags,
            "resolution": abs(src.transform.a),
        }


def _apply_projection(proj: Any, info: Mapping[str, Any]) -> None:
    epsg = info["crs"].to_epsg()
    proj.apply(
        code=f"EPSG:{epsg}" if epsg else None,
        wkt2=None if epsg else info["crs"].to_wkt(),
        shape=list(info["shape"]),
        transform=[float(v) for v in info["transform"]],
        bbox=[float(v) for v in info["geobox"].extent.boundingbox],
    )


def _apply_bands(asset: pystac.Asset, info: Mapping[str, Any], names: Sequence[str] | None) -> None:
    count = len(info["dtypes"])
    if names is not None and len(names) != count:
        raise InvalidInputError(
            f"sensor_band_names has {len(names)} names but {info['path']} has {count} bands"
        )
    descriptions = [d or "" for d in info["descriptions"]]
    if names is None:
        unique = all(descriptions) and len(set(descriptions)) == count
        names = descriptions if unique else [f"b{i + 1}" for i in range(count)]
    eo_bands = []
    raster_bands = []
    for i in range(count):
        tags = info["tags"][i]
        eo_bands.append(
            Band.create(
                name=names[i],
                description=descriptions[i] or None,
                center_wavelength=_micrometres(tags.get("wavelength"), tags),
                full_width_half_max=_micrometres(tags.get("fwhm"), tags),
            )
        )
        scale, offset = info["scales"][i], info["offsets"][i]
        raster_bands.append(
            RasterBand.create(
                nodata=_nodata(info["nodata"]),
                data_type=_data_type(info["dtypes"][i]),
                spatial_resolution=info["resolution"],
                unit=info["units"][i] or None,
                scale=None if scale == 1 else scale,
                offset=None if offset == 0 else offset,
            )
        )
    EOExtension.ext(asset, add_if_missing=True).apply(bands=eo_bands)
    RasterExtension.ext(asset, add_if_missing=True).apply(bands=raster_bands)


def _nodata(value: float | None) -> float | Any:
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _data_type(dtype: str) -> DataType:
    complex_names = {"complex64": "cfloat32", "complex128": "cfloat64", "complex_int16": "cint16"}
    try:
        return DataType(complex_names.get(dtype, dtype))
    except ValueError:
        return DataType.OTHER


def _micrometres(value: str | None, tags: Mapping[str, str]) -> float | None:
    """A wavelength from GDAL band metadata (ENVI/EnMAP ``wavelength``), in micrometres."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    unit = tags.get("wavelength_units", "").strip().lower()
    factor = _TO_MICROMETRES.get(unit, 1e-3 if number > 100 else 1.0)
    return round(number * factor, 6)
