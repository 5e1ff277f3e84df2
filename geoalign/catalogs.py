"""Local STAC catalogs searched in-process, with no server: the embedded default of geoalign.

A local catalog is a static STAC catalog (``catalog.json``/``collection.json`` and the items it
links), an ItemCollection (``.json``/``.geojson``, or one item per line in ``.ndjson``) or a
stac-geoparquet file (``.parquet``). Each is indexed once into a GeoDataFrame (one row per item:
``id``, ``collection``, ``start``, ``end`` in UTC and the footprint in EPSG:4326), cached per file
path and modification time. :mod:`geoalign.stac_query` searches the index.

Item time ranges follow pgstac: ``start_datetime``/``end_datetime`` when both are set, otherwise the
instant ``datetime``. Items without geometry are placed by their bbox.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlparse
from urllib.request import url2pathname

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely
from stac_geoparquet.arrow import stac_table_to_items

from geoalign.errors import CorruptDataError, DataFileNotFoundError, InvalidInputError

__all__ = ["CatalogFormat", "CatalogIndex", "detect_format", "index_items", "open_catalog"]

CatalogFormat = Literal["static", "json", "ndjson", "geoparquet"]
_CACHE_SIZE = 8  # indexes kept in memory


@dataclass(frozen=True, eq=False)
class CatalogIndex:
    """A local catalog indexed for search.

    Attributes:
        source: Where the items came from (a file path, or ``"<memory>"``).
        format: The catalog format.
        frame: One row per item: ``id``, ``collection``, ``start`` and ``end`` (UTC timestamps, NaT
            when missing) and ``geometry`` (EPSG:4326 lon/lat, None when missing).
        stamps: ``(path, mtime_ns, size)`` of every file read, to tell when the index is stale.
    """

    source: str
    format: CatalogFormat
    frame: gpd.GeoDataFrame
    stamps: tuple[tuple[str, int, int], ...]
    _dicts: list[dict[str, Any]] | None = None
    _table: pa.Table | None = None
    _memo: dict[int, dict[str, Any]] = field(default_factory=dict)

    def items(self, positions: Sequence[int]) -> list[dict[str, Any]]:
        """The STAC item dicts at these row positions (shared: copy before mutating)."""
        if self._dicts is not None:
            return [self._dicts[p] for p in positions]
        todo = [p for p in positions if p not in self._memo]
        if todo and self._table is not None:
            for pos, item in zip(todo, _table_items(self._table.take(todo)), strict=True):
                self._memo[pos] = item
        return [self._memo[p] for p in positions]

    def is_fresh(self) -> bool:
        """Whether no file read into this index changed since it was built."""
        return all(_stamp(Path(p)) == (p, m, s) for p, m, s in self.stamps)

    def summary(self) -> str:
        """One line on what the catalog holds: count, collections, lon/lat bbox and time span."""
        frame = self.frame
        cols = sorted({str(c) for c in frame["collection"].dropna()})
        geoms = frame.geometry.dropna()
        bounds = tuple(round(float(v), 6) for v in geoms.total_bounds) if len(geoms) else None
        span = f"{frame['start'].min()} to {frame['end'].max()}"
        return f"{len(frame)} items; collections {cols}; lon/lat bbox {bounds}; datetimes {span}"


_cache: OrderedDict[str, CatalogIndex] = OrderedDict()
_cache_lock = threading.Lock()


def open_catalog(path: str | Path) -> CatalogIndex:
    """Index a local catalog file, reusing the cached index while its files are unchanged.

    Args:
        path: A static ``catalog.json``/``collection.json`` (or a folder holding one), an
            ItemCollection ``.json``/``.geojson``, an ``.ndjson`` file, or a stac-geoparquet file.

    Returns:
        The catalog's index.

    Raises:
        DataFileNotFoundError: The path does not exist.
        CorruptDataError: The file cannot be read as STAC items.
    """
    path = Path(path).expanduser().resolve()
    if not path.exists():
        raise DataFileNotFoundError(f"local catalog {path} does not exist: check the path")
    key = str(path)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached.is_fresh():
        with _cache_lock:
            _cache.move_to_end(key)
        return cached
    fmt = detect_format(path)
    try:
        index = _read_geoparquet(path) if fmt == "geoparquet" else _read_json(path, fmt)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException) as err:
        if isinstance(err, InvalidInputError):
            raise
        raise CorruptDataError(
            f"local catalog {path} cannot be read as {fmt} STAC ({type(err).__name__}: {err}); "
            "check that it is a STAC catalog, ItemCollection, ndjson or stac-geoparquet file"
        ) from err
    with _cache_lock:
        _cache[key] = index
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return index


def detect_format(path: Path) -> CatalogFormat:
    """A catalog's format from its suffix; a ``.json`` file may still turn out a static catalog."""
    if path.is_dir():
        return "static"
    suffix = path.suffix.lower()
    if suffix in {".parquet", ".geoparquet"}:
        return "geoparquet"
    if suffix in {".ndjson", ".jsonl", ".geojsonl", ".geojsons"}:
        return "ndjson"
    if suffix in {".json", ".geojson"}:
        return "json"
    raise InvalidInputError(
        f"local catalog {path} has suffix {suffix!r}: use a STAC catalog.json, an ItemCollection "
        ".json/.geojson, an .ndjson file or a stac-geoparquet .parquet file"
    )


def index_items(items: Iterable[Mapping[str, Any]], *, source: str = "<memory>") -> CatalogIndex:
    """Index STAC item dicts held in memory (an ItemCollection already loaded, for instance)."""
    return _index_dicts([dict(i) for i in items], source=source, fmt="json", stamps=())


def _stamp(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError:
        return (str(path), -1, -1)
    return (str(path), st.st_mtime_ns, st.st_size)


def _read_json(path: Path, fmt: CatalogFormat) -> CatalogIndex:
    stamps = [_stamp(path)]
    if fmt == "ndjson":
        with path.open(encoding="utf-8") as fh:
            dicts = [json.loads(line) for line in fh if line.strip()]
    else:
        doc: Any = None
        if fmt == "json":
            with path.open(encoding="utf-8") as fh:
                doc = json.load(fh)
        kind = doc.get("type") if isinstance(doc, Mapping) else None
        if fmt == "static" or kind in ("Catalog", "Collection"):
            fmt = "static"
            dicts, stamps = _walk_static(path / "catalog.json" if path.is_dir() else path)
        elif kind == "FeatureCollection":
            dicts = list(doc.get("features") or [])
        else:
            dicts = list(doc) if isinstance(doc, list) else [doc]
    bad = [i for i, d in enumerate(dicts) if not isinstance(d, Mapping) or "id" not in d]
    if bad:
        raise InvalidInputError(f"{path}: entries {bad[:5]} are not STAC items (no 'id')")
    return _index_dicts(dicts, source=str(path), fmt=fmt, stamps=tuple(dict.fromkeys(stamps)))


def _walk_static(root: Path) -> tuple[list[dict[str, Any]], list[tuple[str, int, int]]]:
    """Items of a static catalog, following ``child`` and ``item`` links from the root.

    Items are kept as their files hold them (no pystac migration), with relative asset hrefs made
    absolute against the item file.
    """
    dicts: list[dict[str, Any]] = []
    stamps: list[tuple[str, int, int]] = []
    todo, seen = [root.resolve()], set()
    while todo:
        path = todo.pop(0)
        if path in seen:
            continue
        seen.add(path)
        stamps.append(_stamp(path))
        with path.open(encoding="utf-8") as fh:
            doc = json.load(fh)
        if doc.get("type") == "Feature":
            for asset in (doc.get("assets") or {}).values():
                if "href" in asset and not urlparse(asset["href"]).scheme:
                    asset["href"] = str((path.parent / asset["href"]).resolve())
            dicts.append(doc)
            continue
        if doc.get("type") not in ("Catalog", "Collection"):
            raise InvalidInputError(f"{path} is not a STAC catalog, collection or item")
        for link in doc.get("links") or []:
            if link.get("rel") in ("child", "item"):
                todo.append(_linked_file(str(link["href"]), path))
    return dicts, stamps


def _linked_file(href: str, base: Path) -> Path:
    url = urlparse(href)
    if url.scheme in ("http", "https", "s3", "gs"):
        raise InvalidInputError(
            f"static catalog {base} links to {href}: only catalogs on the local file system are "
            "searched in-process; search the API instead, or copy the catalog locally"
        )
    if url.scheme == "file":
        return Path(url2pathname(url.path)).resolve()
    return (base.parent / href).resolve()


def _index_dicts(
    dicts: list[dict[str, Any]],
    *,
    source: str,
    fmt: CatalogFormat,
    stamps: tuple[tuple[str, int, int], ...],
) -> CatalogIndex:
    props = [d.get("properties") or {} for d in dicts]
    geoms = [_item_geometry(d) for d in dicts]
    start, end = _ranges(
        _utc([p.get("datetime") for p in props]),
        _utc([p.get("start_datetime") for p in props]),
        _utc([p.get("end_datetime") for p in props]),
    )
    frame = _frame(
        [d["id"] for d in dicts], [d.get("collection") for d in dicts], start, end, geoms
    )
    return CatalogIndex(source, fmt, frame, stamps, _dicts=dicts)


def _read_geoparquet(path: Path) -> CatalogIndex:
    table = pq.read_table(path)
    names = table.column_names
    if "bbox" in names and pa.types.is_list(table.schema.field("bbox").type):
        # stac-geoparquet before 0.4 wrote bbox as a list; the reader wants a struct
        bbox = table.column("bbox").combine_chunks()
        size = len(bbox[0]) if len(bbox) else 4  # 4 numbers (2D) or 6 (3D)
        corners = np.asarray(pc.list_flatten(bbox), dtype="float64").reshape(-1, size)
        take = (0, 1, size // 2, size // 2 + 1)
        struct = pa.StructArray.from_arrays(
            [pa.array(corners[:, i]) for i in take], names=["xmin", "ymin", "xmax", "ymax"]
        )
        table = table.set_column(names.index("bbox"), "bbox", struct)
    wkb = table.column("geometry").combine_chunks()
    if isinstance(wkb, pa.ExtensionArray):
        wkb = wkb.storage
    geoms = list(shapely.from_wkb(wkb.to_numpy(zero_copy_only=False)))

    def column(name: str) -> pd.Series:
        if name not in names:
            return _utc([None] * table.num_rows)
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            series = pd.Series(col.to_pandas())
            tz_aware = col.type.tz is not None
            return series.dt.tz_convert("UTC") if tz_aware else series.dt.tz_localize("UTC")
        return _utc(col.to_pylist())

    start, end = _ranges(column("datetime"), column("start_datetime"), column("end_datetime"))
    ids = table.column("id").to_pylist()
    cols = table.column("collection").to_pylist() if "collection" in names else [None] * len(ids)
    frame = _frame(ids, cols, start, end, geoms)
    return CatalogIndex(str(path), "geoparquet", frame, (_stamp(path),), _table=table)


def _table_items(table: pa.Table) -> list[dict[str, Any]]:
    """Item dicts of stac-geoparquet rows, in order.

    stac-geoparquet 0.8 fails on rows whose ``proj:geometry`` is null while other rows have one
    (it reads every such column as geometries): those rows are converted without that column.
    """
    sparse = [
        n for n in ("proj:geometry",) if n in table.column_names and table.column(n).null_count
    ]
    if not sparse:
        return list(stac_table_to_items(table))
    missing = np.asarray(pc.is_null(table.column(sparse[0])), dtype=bool)
    out: list[dict[str, Any]] = [{}] * table.num_rows
    for rows, part in (
        (np.flatnonzero(missing), table.drop_columns(sparse)),
        (np.flatnonzero(~missing), table),
    ):
        for row, item in zip(rows, stac_table_to_items(part.take(rows)), strict=True):
            out[int(row)] = item
    return out


def _utc(values: Sequence[Any]) -> pd.Series:
    series = pd.Series(values, dtype=object)
    return pd.Series(pd.to_datetime(series, utc=True, format="ISO8601")).reset_index(drop=True)


def _ranges(dt: pd.Series, start: pd.Series, end: pd.Series) -> tuple[pd.Series, pd.Series]:
    # as pgstac: start/end_datetime when both are set, otherwise the instant datetime
    both = start.notna() & end.notna()
    return start.where(both, dt), end.where(both, dt)


def _item_geometry(item: Mapping[str, Any]) -> Any:
    if item.get("geometry"):
        return shapely.geometry.shape(item["geometry"])
    bbox = item.get("bbox")
    if bbox and len(bbox) >= 4:
        half = len(bbox) // 2
        return shapely.box(bbox[0], bbox[1], bbox[half], bbox[half + 1])
    return None


def _frame(ids: list[Any], cols: list[Any], start: Any, end: Any, geoms: list[Any]) -> Any:
    ns = "datetime64[ns, UTC]"
    data = {
        "id": ids,
        "collection": cols,
        "start": start.astype(ns).array,
        "end": end.astype(ns).array,
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"))
