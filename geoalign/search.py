"""STAC item search with one function, over any STAC API or a local catalog searched in-process.

:func:`search_items` takes the arguments of a STAC API item search. The source is a STAC API URL,
a preset (``"earth-search"``, ``"planetary-computer"``), a local catalog file (static catalog,
ItemCollection JSON/ndjson, stac-geoparquet; see :mod:`geoalign.catalogs`) or an ItemCollection in
memory. The arguments are normalised once by pystac-client (dates such as ``"2020-06"`` become
closed UTC intervals, sortby strings become dicts...), so that an API and a local catalog holding
the same items return the same item ids, in the same order.

Remote searches retry on HTTP 429/500/502/503/504, connection errors and timeouts with exponential
backoff (:class:`RetryPolicy`), then raise :class:`~geoalign.errors.StacApiError` naming the
endpoint and the status. Planetary Computer assets are signed with
``planetary_computer.sign_inplace`` when that package is installed; pass ``sign=`` to inject
another signer (tests use a stub).
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeAlias
from urllib.parse import urlparse

import pandas as pd
import pystac
from pystac_client import Client, ItemSearch
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from urllib3 import Retry

from geoalign.aoi import AOILike, CRSLike, aoi_wgs84, to_aoi
from geoalign.catalogs import index_items, open_catalog
from geoalign.errors import (
    DataFileNotFoundError,
    GeoAlignWarning,
    InvalidInputError,
    NoDataFoundError,
    StacApiError,
)
from geoalign.stac_items import items_from_rasters, write_catalog
from geoalign.stac_query import compile_filter, explain_empty, search_catalog

__all__ = [
    "PRESETS",
    "RetryPolicy",
    "Signer",
    "SourceLike",
    "StacPreset",
    "items_from_rasters",
    "search_items",
    "write_catalog",
]

#: Signs the asset hrefs of one item in place (e.g. ``planetary_computer.sign_inplace``).
Signer: TypeAlias = Callable[[pystac.Item], object]
#: Where to search: an API URL, a preset name or object, a local catalog path or an ItemCollection.
SourceLike: TypeAlias = "str | os.PathLike[str] | StacPreset | pystac.ItemCollection"
#: A datetime, an ISO-8601 string or interval (``"2020-06"``, ``"2020-01-01/.."``), or a pair.
DatetimeLike: TypeAlias = Any


def planetary_computer_signer() -> Signer | None:
    """``planetary_computer.sign_inplace`` if the package is installed, else None and a warning."""
    try:
        import planetary_computer
    except ImportError:
        warnings.warn(
            "the planetary-computer package is not installed, so Planetary Computer asset hrefs "
            "stay unsigned and reading them will fail (HTTP 403/409): `pip install "
            "planetary-computer`, or pass sign=False to search without signing",
            GeoAlignWarning,
            stacklevel=4,
        )
        return None
    signer: Signer = planetary_computer.sign_inplace
    return signer


@dataclass(frozen=True)
class StacPreset:
    """A known STAC API.

    Attributes:
        name: Short name accepted as ``source`` by :func:`search_items`.
        url: Root URL of the API.
        signer: Factory of the signer its assets need (None: public assets, no signing).
    """

    name: str
    url: str
    signer: Callable[[], Signer | None] | None = None


#: The STAC APIs geoalign knows by name.
PRESETS: dict[str, StacPreset] = {
    "earth-search": StacPreset("earth-search", "https://earth-search.aws.element84.com/v1"),
    "planetary-computer": StacPreset(
        "planetary-computer",
        "https://planetarycomputer.microsoft.com/api/stac/v1",
        signer=planetary_computer_signer,
    ),
}


@dataclass(frozen=True)
class RetryPolicy:
    """How remote searches retry (urllib3 ``Retry`` with exponential backoff).

    Attributes:
        total: Retries per request before giving up (connection errors, timeouts, statuses below).
        backoff_factor: Seconds; the n-th consecutive retry waits ``backoff_factor * 2**(n-1)``
            (capped at ``backoff_max``), or what a ``Retry-After`` header says.
        backoff_max: Longest wait between two tries, in seconds.
        status_forcelist: HTTP statuses that are retried.
        timeout: Seconds to wait for a connection and for each response; a timeout is retried.
    """

    total: int = 5
    backoff_factor: float = 0.5
    backoff_max: float = 30.0
    status_forcelist: tuple[int, ...] = (429, 500, 502, 503, 504)
    timeout: float = 30.0

    def urllib3_retry(self) -> Retry:
        """The equivalent ``urllib3.Retry`` (every HTTP method retried, search is a POST)."""
        return Retry(
            total=self.total,
            backoff_factor=self.backoff_factor,
            backoff_max=self.backoff_max,
            status_forcelist=self.status_forcelist,
            allowed_methods=None,
            raise_on_status=False,  # hand the last response back, so its status can be reported
        )


class _EndpointError(APIError):
    """pystac-client's APIError, with the request that failed (pystac-client still catches it)."""

    def __init__(self, err: APIError, method: str, href: str) -> None:
        super().__init__(str(err))
        self.status_code = getattr(err, "status_code", None)
        self.method, self.href = method, href


class _RetryingStacApiIO(StacApiIO):
    """StacApiIO with a retry policy that records which endpoint failed."""

    def __init__(self, policy: RetryPolicy) -> None:
        super().__init__(max_retries=policy.urllib3_retry(), timeout=policy.timeout)

    def request(
        self,
        href: str,
        method: str | None = None,
        headers: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> str:
        try:
            return super().request(href, method=method, headers=headers, parameters=parameters)
        except APIError as err:
            raise _EndpointError(err, (method or "GET").upper(), href) from err


def search_items(
    source: SourceLike,
    *,
    aoi: AOILike | None = None,
    aoi_crs: CRSLike | None = None,
    bbox: Sequence[float] | None = None,
    datetime: DatetimeLike | None = None,
    collections: str | Sequence[str] | None = None,
    ids: str | Sequence[str] | None = None,
    query: Mapping[str, Any] | None = None,
    filter: Mapping[str, Any] | str | None = None,
    filter_lang: Literal["cql2-json", "cql2-text"] | None = None,
    sortby: str | Sequence[str] | Sequence[Mapping[str, str]] | None = None,
    max_items: int | None = None,
    limit: int | None = None,
    sign: Signer | Literal[False] | None = None,
    retry: RetryPolicy | None = None,
) -> pystac.ItemCollection:
    """Search STAC items in an API or a local catalog, with the same arguments and results.

    Args:
        source: A STAC API root URL (``http(s)://``); a preset name from :data:`PRESETS` or a
            :class:`StacPreset`; a local catalog path (static ``catalog.json``, ItemCollection
            ``.json``/``.geojson``, ``.ndjson``, stac-geoparquet ``.parquet``), searched in-process;
            or a ``pystac.ItemCollection``.
        aoi: Area of interest, any form :func:`geoalign.aoi.to_aoi` accepts, in any CRS; items
            whose geometry intersects it are returned. Exclusive with ``bbox``.
        aoi_crs: CRS of ``aoi`` when it carries none (default EPSG:4326 lon/lat).
        bbox: ``(west, south, east, north)`` in EPSG:4326 degrees. Exclusive with ``aoi``.
        datetime: An instant or interval: a ``datetime``, an ISO-8601 string (``"2020"``,
            ``"2020-06"``, ``"2020-01-01/2020-03-31"``, ``"2020-01-01T00:00:00Z/.."``) or a
            ``(start, end)`` pair with None for an open end. Naive datetimes are UTC. Items match
            when their ``datetime`` (or ``start_datetime``..``end_datetime``) overlaps it.
        collections: Collection id(s).
        ids: Item id(s).
        query: STAC query extension, e.g. ``{"eo:cloud_cover": {"lt": 20}}``; operators eq, neq,
            lt, lte, gt, gte, in, startsWith, endsWith, contains.
        filter: CQL2 filter, cql2-text (``"eo:cloud_cover < 20"``) or cql2-json (dict). With
            ``query`` too, local catalogs AND the two (pgstac APIs refuse the combination).
        filter_lang: Force the filter language; by default it follows the filter's type.
        sortby: ``"-datetime"``, ``["+eo:cloud_cover", "-datetime"]`` or
            ``[{"field": ..., "direction": "asc"}]``; default datetime descending.
        max_items: Return at most this many items (after sorting).
        limit: Page size asked of an API (1..10,000); no effect on local catalogs.
        sign: Signs each returned item in place. None: the preset's default signer (Planetary
            Computer: ``planetary_computer.sign_inplace`` when installed); False: never sign.
        retry: Retry policy of remote requests (default :class:`RetryPolicy`).

    Returns:
        The matching items.

    Raises:
        InvalidInputError: An argument is malformed (bbox, datetime, filter, max_items...).
        DataFileNotFoundError: ``source`` is neither a URL, a preset nor an existing file.
        StacApiError: The API kept failing after retries (message names URL and HTTP status).
        NoDataFoundError: Nothing matched; the message lists the source and every filter used.
    """
    if aoi is not None and bbox is not None:
        raise InvalidInputError("pass either aoi= or bbox=, not both: bbox is a lon/lat aoi")
    for name, value in (("max_items", max_items), ("limit", limit)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 1
        ):
            raise InvalidInputError(f"{name}={value!r} must be a positive integer or None")
    if limit is not None and limit > 10_000:
        raise InvalidInputError(f"limit={limit} is above 10,000, the largest page STAC APIs serve")
    area = aoi_wgs84(aoi, crs=aoi_crs) if aoi is not None else None
    if bbox is not None:
        to_aoi(bbox)  # validates order and lon/lat ranges
    compile_filter(query, filter)  # validates the filter before any I/O
    kwargs: dict[str, Any] = {
        "bbox": None if bbox is None else [float(v) for v in bbox],
        "intersects": None if area is None else area.json,
        "datetime": datetime,
        "collections": collections,
        "ids": ids,
        "query": dict(query) if query else None,
        "filter": (dict(filter) if isinstance(filter, Mapping) else filter) or None,
        "filter_lang": filter_lang,
        "sortby": list(sortby) if isinstance(sortby, (list, tuple)) else sortby,
        "max_items": max_items,
        "limit": limit,
    }
    params = _normalise(kwargs)
    preset = _preset(source)
    hint = ""
    if preset is not None:
        where = preset.url
        items = _search_api(preset.url, kwargs, retry or RetryPolicy())
    else:
        if isinstance(source, pystac.ItemCollection):
            # transform_hrefs=False: never resolve links (a "root" link may name a remote API)
            index = index_items(item.to_dict(transform_hrefs=False) for item in source)
        else:
            index = open_catalog(_local_path(source))
        where = index.source
        items = _from_dicts(search_catalog(index, params, max_items=max_items))
        hint = "" if items else explain_empty(index, params)
    if not items:
        raise NoDataFoundError(_nothing_found(where, params, hint))
    signer = _signer(sign, preset)
    if signer is not None:
        for item in items:
            signer(item)
    return pystac.ItemCollection(items, clone_items=False)


def _normalise(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The STAC API search body pystac-client would POST for these arguments (no I/O)."""
    try:
        body = ItemSearch("http://localhost/search", method="POST", **kwargs).get_parameters()
    except Exception as err:  # pystac-client raises bare Exception for bad datetimes or sortby
        raise InvalidInputError(f"search arguments rejected: {err}; check datetime/sortby") from err
    if when := body.get("datetime"):
        try:
            ends = [None if e in ("", "..") else pd.Timestamp(e) for e in str(when).split("/")]
        except ValueError as err:
            raise InvalidInputError(
                f"datetime={kwargs['datetime']!r} is not ISO-8601 ({err}): write e.g. "
                "'2020-06-01', '2020-06-01T10:00:00Z' or '2020-01-01/2020-03-31'"
            ) from err
        if len(ends) == 2 and ends[0] is not None and ends[1] is not None and ends[0] > ends[1]:
            raise InvalidInputError(
                f"datetime={kwargs['datetime']!r} ends before it starts ({when}): "
                "give the interval as (start, end)"
            )
    return dict(body)


def _preset(source: SourceLike) -> StacPreset | None:
    if isinstance(source, StacPreset):
        return source
    if not isinstance(source, str):
        return None
    if source in PRESETS:
        return PRESETS[source]
    if urlparse(source).scheme in ("http", "https"):
        same = [p for p in PRESETS.values() if p.url.rstrip("/") == source.rstrip("/")]
        return same[0] if same else StacPreset(name=source, url=source)
    return None


def _local_path(source: SourceLike) -> Path:
    path = Path(os.fspath(source)).expanduser()  # type: ignore[arg-type]
    if not path.exists():
        raise DataFileNotFoundError(
            f"source {str(source)!r} is neither a STAC API URL (http:// or https://), a preset "
            f"({', '.join(PRESETS)}) nor an existing local catalog file: check the path or URL"
        )
    return path


def _from_dicts(
    dicts: Sequence[Mapping[str, Any]], *, root: pystac.Catalog | None = None
) -> list[pystac.Item]:
    """Items made from dicts as stored (not migrated by pystac): every source gives the same."""
    items = []
    for d in dicts:
        if root is None:  # the "root" link names an API that pystac would fetch on to_dict()
            d = {**d, "links": [link for link in d.get("links") or [] if link.get("rel") != "root"]}
        items.append(pystac.Item.from_dict(dict(d), root=root, migrate=False))
    return items


def _search_api(url: str, kwargs: Mapping[str, Any], policy: RetryPolicy) -> list[pystac.Item]:
    stac_io = _RetryingStacApiIO(policy)
    try:
        client = Client.open(url, stac_io=stac_io, timeout=policy.timeout)
        # pystac-client 0.9 knows the v1.0 conformance URIs only; newer APIs (stac-fastapi 7
        # advertises .../v1.1.0/item-search#sort) would draw "does not conform" warnings.
        declared = " ".join(client.get_conforms_to())
        for name, marker in (("SORT", "#sort"), ("QUERY", "#query"), ("FILTER", "#filter")):
            if marker in declared:
                client.add_conforms_to(name)
        # as dicts, then the same conversion as local results (no pystac migration)
        return _from_dicts(list(client.search(**kwargs).items_as_dicts()), root=client)
    except _EndpointError as err:
        detail = str(err).strip()[:500]
        if err.status_code is not None and err.status_code not in policy.status_forcelist:
            raise StacApiError(
                f"STAC API request {err.method} {err.href} was rejected with HTTP "
                f"{err.status_code}: {detail}. Check the search arguments against what this API "
                "supports (its conformance classes and queryables)"
            ) from err
        status = f"HTTP {err.status_code}" if err.status_code else "no HTTP response"
        raise StacApiError(
            f"STAC API request {err.method} {err.href} failed with {status} after "
            f"{policy.total} retries: {detail}. Check the URL and the service status, or retry "
            "later (more retries: retry=RetryPolicy(total=...))"
        ) from err
    except NotImplementedError as err:
        raise StacApiError(f"{url} does not offer STAC API item search ({err})") from err


def _signer(sign: Signer | Literal[False] | None, preset: StacPreset | None) -> Signer | None:
    if sign is False:
        return None
    if sign is not None:
        if not callable(sign):
            raise InvalidInputError(f"sign={sign!r} must be a callable, False or None")
        return sign
    return preset.signer() if preset is not None and preset.signer is not None else None


def _nothing_found(where: str, params: Mapping[str, Any], hint: str) -> str:
    keys = ("collections", "ids", "bbox", "intersects", "datetime", "query", "filter")
    used = {k: params[k] for k in keys if params.get(k) is not None}
    if "intersects" in used:
        used["intersects"] = _describe_geometry(used["intersects"])
    text = ", ".join(f"{k}={_short(v)}" for k, v in used.items()) or "no filters"
    return (
        f"no STAC items found in {where} for {text} (bbox/intersects in EPSG:4326 lon/lat). "
        f"{hint}Widen the area or the time range, or relax the collections and filters."
    )


def _describe_geometry(geojson: Any) -> str:
    """A GeoJSON geometry as its type and lon/lat bounds (its vertices would fill the screen)."""
    import shapely.geometry

    try:
        geometry = shapely.geometry.shape(
            geojson if isinstance(geojson, dict) else json.loads(geojson)
        )
    except (TypeError, ValueError, AttributeError):
        return _short(geojson)
    bounds = ", ".join(f"{v:.6f}" for v in geometry.bounds)
    return f"<{geometry.geom_type} within lon/lat bounds ({bounds})>"


def _short(value: Any, size: int = 200) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= size else text[: size - 3] + "..."
