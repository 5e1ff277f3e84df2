"""STAC API item search evaluated in-process on a local catalog index, with pgstac's semantics.

:func:`search_catalog` takes the JSON body of a STAC API search (as pystac-client builds it), so
that a local catalog and a pgstac API holding the same items return the same ids in the same order:

- bbox/intersects: exact intersection with the item geometry (EPSG:4326), not just its bbox;
- datetime: the item's range overlaps the closed search interval; ``..`` is an open end;
- ``query`` (STAC query extension, turned into CQL2 as pgstac does) and CQL2 ``filter`` are
  evaluated with the ``cql2`` package; a property an item lacks makes a comparison false, as SQL
  NULL does, and ``datetime``/``end_datetime`` are the start/end of the item's range;
- sortby: default ``datetime`` descending, then ``collection`` and ``id`` in the direction of the
  first key; missing values sort last ascending and first descending, as in PostgreSQL.

Known difference: pgstac sorts a property that is not a registered queryable as text, this module
by value (numbers numerically).
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import cql2
import numpy as np
import pandas as pd
import shapely

from geoalign.catalogs import CatalogIndex
from geoalign.errors import InvalidInputError

__all__ = ["QUERY_OPS", "compile_filter", "explain_empty", "search_catalog"]

#: STAC query-extension operators and the CQL2 operators they mean.
QUERY_OPS = {"eq": "=", "neq": "<>", "ne": "<>", "lt": "<", "lte": "<="}
QUERY_OPS |= {"gt": ">", "gte": ">=", "in": "in"}
_LIKE_OPS = {"startsWith": "{}%", "endsWith": "%{}", "contains": "%{}%"}
#: Sort fields read from the index instead of the item dicts.
_COLUMNS = {"id", "collection", "datetime", "start_datetime", "end_datetime"}


def compile_filter(
    query: Mapping[str, Any] | None, filter: Mapping[str, Any] | str | None
) -> cql2.Expr | None:
    """One CQL2 expression for a STAC ``query`` and a CQL2 ``filter`` (ANDed when both are given).

    Raises:
        InvalidInputError: Unknown query operator, or a filter that is not valid CQL2.
    """
    parts: list[cql2.Expr] = []
    if query:
        args = []
        for prop, ops in query.items():
            for op, value in ops.items() if isinstance(ops, Mapping) else [("eq", ops)]:
                if op in _LIKE_OPS:
                    args.append(
                        {"op": "like", "args": [{"property": prop}, _LIKE_OPS[op].format(value)]}
                    )
                elif op in QUERY_OPS:
                    args.append({"op": QUERY_OPS[op], "args": [{"property": prop}, value]})
                else:
                    raise InvalidInputError(
                        f"query operator {op!r} on {prop!r} is unknown: use one of "
                        f"{sorted([*QUERY_OPS, *_LIKE_OPS])}, or a CQL2 filter="
                    )
        parts.append(cql2.Expr(args[0] if len(args) == 1 else {"op": "and", "args": args}))
    if filter:
        try:
            expr = cql2.Expr(dict(filter) if isinstance(filter, Mapping) else filter)
            expr.validate()
        except Exception as err:  # cql2 raises bare Exception for parse errors
            raise InvalidInputError(
                f"filter {filter!r} is not valid CQL2 ({str(err).strip()}); write cql2-text such "
                'as "eo:cloud_cover < 20" or cql2-json such as '
                '{"op": "<", "args": [{"property": "eo:cloud_cover"}, 20]}'
            ) from err
        parts.append(expr)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else parts[0] + parts[1]


def search_catalog(
    index: CatalogIndex, params: Mapping[str, Any], *, max_items: int | None = None
) -> list[dict[str, Any]]:
    """Evaluate a STAC API search body (POST JSON, as pystac-client builds it) on a local index.

    Args:
        index: The catalog index.
        params: Search body: ``ids``, ``collections``, ``bbox`` (EPSG:4326 lon/lat),
            ``intersects`` (GeoJSON in EPSG:4326), ``datetime`` (``"start/end"`` or an instant),
            ``query``, ``filter`` (cql2-json dict or cql2-text string) and ``sortby``. ``limit``
            (the page size of an API) has no effect here.
        max_items: Return at most this many items, after sorting.

    Returns:
        The matching item dicts, sorted; shared with the index, so copy before mutating.
    """
    frame = index.frame
    mask = np.ones(len(frame), dtype=bool)
    if params.get("ids"):
        mask &= frame["id"].isin(list(params["ids"])).to_numpy()
    if params.get("collections"):
        mask &= frame["collection"].isin(list(params["collections"])).to_numpy()
    if params.get("datetime"):
        lo, hi = _interval(str(params["datetime"]))
        mask &= ((frame["start"] <= hi) & (frame["end"] >= lo)).to_numpy()
    area = params.get("intersects")
    if area is None and params.get("bbox") is not None:
        bbox = list(params["bbox"])
        half = len(bbox) // 2
        area = shapely.box(bbox[0], bbox[1], bbox[half], bbox[half + 1])
    if area is not None:
        geom = shapely.geometry.shape(area) if isinstance(area, Mapping) else area
        spatial = np.zeros(len(frame), dtype=bool)
        spatial[frame.sindex.query(geom, predicate="intersects")] = True
        mask &= spatial
    positions = np.flatnonzero(mask)
    expr = compile_filter(params.get("query"), params.get("filter"))
    specs = _sort_specs(params.get("sortby"))
    needs_items = expr is not None or any(f not in _COLUMNS for f, _ in specs)
    dicts = index.items([int(p) for p in positions]) if needs_items else [None] * len(positions)
    nat = np.iinfo(np.int64).min
    rows = [
        _Row(int(pos), item, None if start == nat else int(start), None if end == nat else int(end))
        for pos, item, start, end in zip(
            positions,
            dicts,
            frame["start"].array.asi8[positions],
            frame["end"].array.asi8[positions],
            strict=True,
        )
    ]
    if expr is not None:
        rows = [row for row in rows if _matches(expr, row)]
    columns = {name: frame[name].to_numpy(dtype=object) for name in ("id", "collection")}
    for fld, desc in reversed(specs):  # stable multi-key sort, last key first
        rows.sort(key=functools.partial(_sort_key, fld, columns=columns), reverse=desc)
    rows = rows[:max_items] if max_items is not None else rows
    if needs_items:
        return [row.item for row in rows if row.item is not None]
    return index.items([row.pos for row in rows])


class _Row(NamedTuple):
    pos: int  # row of the index
    item: dict[str, Any] | None  # the item dict, when filters or sort keys need it
    start: int | None  # start of the item's time range, ns since 1970 UTC
    end: int | None  # end of the item's time range, ns since 1970 UTC


def _interval(value: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    parts = value.split("/")
    ends = [None if p in ("", "..") else pd.Timestamp(p) for p in parts]
    lo = ends[0] if ends[0] is not None else pd.Timestamp.min.tz_localize("UTC")
    hi = ends[-1] if ends[-1] is not None else pd.Timestamp.max.tz_localize("UTC")
    return lo, hi


def _matches(expr: cql2.Expr, row: _Row) -> bool:
    # pgstac reads ``datetime`` as the start of the item's range and ``end_datetime`` as its end
    item = row.item or {}
    props = dict(item.get("properties") or {})
    if row.start is not None and row.end is not None:
        props["datetime"] = props["start_datetime"] = _iso(row.start)
        props["end_datetime"] = _iso(row.end)
    try:
        return bool(expr.matches({**item, "properties": props}))
    except Exception:  # "could not reduce": a property is missing, false as SQL NULL is
        return False


def _iso(ns: int) -> str:
    return pd.Timestamp(ns, tz="UTC").isoformat().replace("+00:00", "Z")


def _sort_specs(sortby: Any) -> list[tuple[str, bool]]:
    specs: list[tuple[str, bool]] = []
    for spec in sortby or [{"field": "datetime", "direction": "desc"}]:
        fld = str(spec["field"]).removeprefix("properties.")
        direction = str(spec.get("direction", "asc")).lower()
        if direction not in {"asc", "desc", "ascending", "descending"}:
            raise InvalidInputError(f"sortby direction {direction!r} on {fld!r}: use asc or desc")
        specs.append((fld, direction.startswith("desc")))
    first_desc = specs[0][1]
    specs += [(k, first_desc) for k in ("collection", "id") if k not in {f for f, _ in specs}]
    return specs


def _sort_key(fld: str, row: _Row, *, columns: Mapping[str, Any]) -> tuple[Any, ...]:
    value: Any
    if fld in ("datetime", "start_datetime", "end_datetime"):
        value = row.end if fld == "end_datetime" else row.start
    elif fld in columns:
        value = columns[fld][row.pos]
    else:
        item = row.item or {}
        value = (item.get("properties") or {}).get(fld, item.get(fld))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (1,)  # NULL: last ascending, first descending, as in PostgreSQL
    if isinstance(value, bool):
        return (0, 0, int(value))
    if isinstance(value, (int, float)):
        return (0, 1, float(value) if isinstance(value, float) else value)
    if isinstance(value, str):
        return (0, 2, value)
    return (0, 3, json.dumps(value, sort_keys=True))


def explain_empty(index: CatalogIndex, params: Mapping[str, Any]) -> str:
    """Name the search arguments that alone exclude every item; say what the catalog holds."""
    reasons = {
        "collections": "none of the collections is in the catalog",
        "bbox": "the search area overlaps no item (check the AOI's CRS and the lon/lat axis order)",
        "intersects": "the search area overlaps no item (check the AOI's CRS and the lon/lat "
        "axis order)",
        "datetime": "no item is dated within the datetime interval",
    }
    hints = [
        reason
        for key, reason in reasons.items()
        if params.get(key) is not None
        and not search_catalog(index, {key: params[key]}, max_items=1)
    ]
    found = "; ".join(hints)
    found = found[:1].upper() + found[1:] + ". " if found else ""
    return f"{found}The catalog holds {index.summary()}. "
