"""Local stand-ins for the remote rasters of real STAC items.

The asset hrefs of the real items in ``../shared/data/stac`` point to storage these machines cannot
reach. :func:`localize_item` returns a copy of an item whose chosen raster assets point at local
GeoTIFFs with exactly the grid the item declares (projection extension: CRS, ``proj:shape``,
``proj:transform``) and the band count, data type and nodata that its ``raster:bands``, ``bands`` or
``eo:bands`` declare. Only the hrefs change; every other field stays the real one.

A full Sentinel-2 tile is 10980 x 10980 pixels, so the files are tiled, deflate-compressed and
sparse (GDAL ``SPARSE_OK=TRUE``): only a window of data is written (512 x 512 pixels in the middle
by default); every other pixel reads as the declared nodata (0 where none is declared). The data are
seeded and vary in space and by band, so that misplaced or resampled reads show. Where the data lie
is stored in the file itself (tag ``GEOALIGN_DATA_WINDOW``) and read back with :func:`data_window`;
:func:`expected_data` recomputes the values without reading the file.
"""

from __future__ import annotations

import copy
import math
import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import from_bounds
from rasterio.windows import Window

#: GeoTIFF metadata tag holding ``"row_off col_off height width"`` of the written data.
WINDOW_TAG = "GEOALIGN_DATA_WINDOW"

#: Media types of the assets that are rasters GDAL writes as GeoTIFF.
_GEOTIFF_TYPES = ("image/tiff", "image/vnd.stac.geotiff")

#: Roles of raster assets that are not data (previews).
_PREVIEW_ROLES = {"thumbnail", "overview", "visual-preview"}


class MissingGeometryError(ValueError):
    """A STAC asset does not declare the grid (CRS, shape, transform) of its raster."""


@dataclass(frozen=True)
class DeclaredRaster:
    """The raster an item declares for one asset.

    Attributes:
        crs: Coordinate reference system, from ``proj:code``, ``proj:epsg``, ``proj:wkt2`` or
            ``proj:projjson``.
        shape: ``(rows, cols)`` from ``proj:shape``.
        transform: Pixel-to-CRS affine transform from ``proj:transform`` (or ``proj:bbox`` + shape).
        count: Number of bands.
        dtype: NumPy data type name.
        nodata: Nodata value, or ``None`` where the item declares none.
    """

    crs: CRS
    shape: tuple[int, int]
    transform: Affine
    count: int
    dtype: str
    nodata: float | None


def _proj_field(item: dict[str, Any], asset: dict[str, Any], name: str) -> Any:
    """A projection field of an asset: the asset's own, else the item's (assets inherit)."""
    if asset.get(name) is not None:
        return asset[name]
    return item.get("properties", {}).get(name)


def _declared_crs(item: dict[str, Any], asset: dict[str, Any], where: str) -> CRS:
    # Asset-level fields win over item-level ones; within a level, the most explicit one wins.
    for level in (asset, item.get("properties", {})):
        if level.get("proj:code") is not None:
            return CRS.from_user_input(level["proj:code"])
        if level.get("proj:epsg") is not None:
            return CRS.from_epsg(int(level["proj:epsg"]))
        if level.get("proj:wkt2") is not None:
            return CRS.from_wkt(level["proj:wkt2"])
        if level.get("proj:projjson") is not None:
            import pyproj

            return CRS.from_wkt(pyproj.CRS.from_json_dict(level["proj:projjson"]).to_wkt())
    raise MissingGeometryError(
        f"{where} declares no CRS: it needs proj:code, proj:epsg, proj:wkt2 or proj:projjson "
        "(on the asset or in the item's properties)"
    )


def _declared_transform(
    item: dict[str, Any], asset: dict[str, Any], shape: tuple[int, int], where: str
) -> Affine:
    values = _proj_field(item, asset, "proj:transform")
    if values is not None:
        if len(values) not in (6, 9) or (len(values) == 9 and list(values[6:]) != [0, 0, 1]):
            raise MissingGeometryError(
                f"{where}: proj:transform must hold 6 numbers, or 9 ending with 0, 0, 1; "
                f"got {values}"
            )
        return Affine(*(float(v) for v in values[:6]))
    bbox = _proj_field(item, asset, "proj:bbox")
    if bbox is not None and len(bbox) == 4:
        return from_bounds(*bbox, width=shape[1], height=shape[0])
    raise MissingGeometryError(
        f"{where} declares no proj:transform (nor a 2D proj:bbox): cannot place its pixels"
    )


def _band_list(value: Any) -> list[dict[str, Any]]:
    # Planetary Computer's 3DEP items carry a single object instead of a list: one band.
    if isinstance(value, dict):
        return [value]
    return list(value or [])


def _nodata(value: Any) -> float | None:
    # The raster extension allows the strings "nan", "inf" and "-inf"; float() reads them all.
    return None if value is None else float(value)


def declared_raster(
    item: dict[str, Any], asset_key: str, *, default_dtype: str = "uint16"
) -> DeclaredRaster:
    """Parse the raster an item declares for one asset.

    Band count, data type and nodata come from the asset's ``raster:bands``, else its ``bands``
    (STAC 1.1, with ``data_type``/``nodata`` on the bands or the asset), else its ``eo:bands``
    (count only), else an item-level ``raster:bands``; one band and ``default_dtype`` otherwise.

    Args:
        item: A STAC item as a dict.
        asset_key: Key of the asset in ``item["assets"]``.
        default_dtype: Data type used where the item declares none.

    Raises:
        KeyError: The item has no such asset.
        MissingGeometryError: The asset's CRS, shape or transform is not declared.
    """
    asset = item["assets"][asset_key]
    where = f"asset {asset_key!r} of item {item.get('id')!r}"
    crs = _declared_crs(item, asset, where)
    shape_value = _proj_field(item, asset, "proj:shape")
    if shape_value is None or len(shape_value) != 2:
        raise MissingGeometryError(f"{where} declares no 2D proj:shape (rows, cols)")
    shape = (int(shape_value[0]), int(shape_value[1]))
    transform = _declared_transform(item, asset, shape, where)

    props = item.get("properties", {})
    bands = (
        _band_list(asset.get("raster:bands"))
        or _band_list(asset.get("bands"))
        or _band_list(asset.get("eo:bands"))
        or _band_list(props.get("raster:bands"))
    )
    count = max(1, len(bands))
    first = bands[0] if bands else {}
    dtype = first.get("data_type") or asset.get("data_type") or default_dtype
    nodata = first.get("nodata", asset.get("nodata"))
    return DeclaredRaster(
        crs=crs,
        shape=shape,
        transform=transform,
        count=count,
        dtype=np.dtype(str(dtype).lower()).name,  # "Float32" in Planetary Computer's 3DEP items
        nodata=_nodata(nodata),
    )


def raster_asset_keys(item: dict[str, Any]) -> list[str]:
    """Keys of the item's GeoTIFF/COG assets that are data, not previews."""
    return [
        key
        for key, asset in item.get("assets", {}).items()
        if str(asset.get("type", "")).startswith(_GEOTIFF_TYPES)
        and not _PREVIEW_ROLES.intersection(asset.get("roles", []))
    ]


def centered_window(shape: tuple[int, int], size: int | tuple[int, int] = 512) -> Window:
    """The window of ``size`` pixels (clipped to the raster) centred in a raster of ``shape``."""
    height, width = (size, size) if isinstance(size, int) else size
    height, width = min(height, shape[0]), min(width, shape[1])
    return Window((shape[1] - width) // 2, (shape[0] - height) // 2, width, height)


def expected_data(
    item_id: str, asset_key: str, raster: DeclaredRaster, window: Window, *, seed: int = 0
) -> np.ndarray:
    """The values :func:`localize_item` writes in the data window, shape ``(count, h, w)``.

    A smooth ramp across the window plus seeded noise, different for each band, inside a range
    that suits the data type and never equal to the nodata value.
    """
    height, width = int(window.height), int(window.width)
    rng = np.random.default_rng(
        [seed, zlib.crc32(item_id.encode()), zlib.crc32(asset_key.encode())]
    )
    dtype = np.dtype(raster.dtype)
    if dtype.kind == "f":
        low, high = 100.0, 3000.0
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        low, high = max(float(info.min), 1.0), min(float(info.max) - 1.0, 10000.0)
    else:
        raise ValueError(f"cannot make test data of type {raster.dtype} (asset {asset_key!r})")
    rows = np.linspace(0.0, 1.0, height, dtype=np.float64)[:, None]
    cols = np.linspace(0.0, 1.0, width, dtype=np.float64)[None, :]
    bands = []
    for band in range(raster.count):
        phase = rng.uniform(0, 2 * math.pi)
        ramp = 0.5 + 0.25 * np.sin(2 * math.pi * (rows + 2 * cols) + phase) + 0.2 * (rows - cols)
        unit = np.clip(ramp + 0.02 * band, 0.0, 1.0)
        # Small integer noise: neighbours differ, yet the files stay small.
        noise = rng.integers(-8, 9, size=(height, width))
        bands.append(np.clip(low + unit * (high - low - 20) + 10 + noise, low, high))
    data = np.stack(bands)
    if dtype.kind in "iu":
        data = np.round(data)
    out = data.astype(dtype)
    if raster.nodata is not None and not math.isnan(raster.nodata):
        # Never write the nodata value inside the data window.
        out[out == raster.nodata] = raster.nodata + 1 if raster.nodata < high else raster.nodata - 1
    return out


def data_window(path: str | Path) -> Window:
    """The window of real data in a GeoTIFF written by :func:`localize_item`."""
    with rasterio.open(path) as src:
        tag = src.tags().get(WINDOW_TAG)
    if tag is None:
        raise ValueError(f"{path} was not written by localize_item (no {WINDOW_TAG} tag)")
    row_off, col_off, height, width = (int(v) for v in tag.split())
    return Window(col_off, row_off, width, height)


def write_raster(path: Path, raster: DeclaredRaster, data: np.ndarray, window: Window) -> None:
    """Write a tiled, deflate-compressed, sparse GeoTIFF with ``data`` in ``window`` only."""
    block = 512 if min(raster.shape) >= 512 else 256
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "height": raster.shape[0],
        "width": raster.shape[1],
        "count": raster.count,
        "dtype": raster.dtype,
        "crs": raster.crs,
        "transform": raster.transform,
        "nodata": raster.nodata,
        "tiled": True,
        "blockxsize": block,
        "blockysize": block,
        "compress": "deflate",
        "predictor": 3 if np.dtype(raster.dtype).kind == "f" else 2,
        "sparse_ok": True,
        "bigtiff": "if_safer",
        # Without it GDAL may write 3-4 band uint8 data as RGB(A) and mask NIR as alpha.
        "photometric": "minisblack",
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.colorinterp = [ColorInterp.gray] + [ColorInterp.undefined] * (raster.count - 1)
        dst.update_tags(
            **{WINDOW_TAG: f"{window.row_off} {window.col_off} {window.height} {window.width}"}
        )
        dst.write(data, window=window)


def localize_item(
    item: dict[str, Any],
    out_dir: Path,
    *,
    assets: list[str] | None = None,
    window: int | tuple[int, int] | Window = 512,
    seed: int = 0,
    default_dtype: str = "uint16",
) -> dict[str, Any]:
    """Copy a real item, pointing its raster assets at small local GeoTIFFs of the declared grid.

    Each written file has the CRS, shape and transform the item declares for the asset, and the
    band count, dtype and nodata it declares (see :func:`declared_raster`). Data fill only a
    window (see :func:`data_window` and :func:`expected_data`); the rest is sparse nodata.

    Args:
        item: A real STAC item (not modified).
        out_dir: Folder for the GeoTIFFs (created if missing).
        assets: Asset keys to localize; all GeoTIFF data assets (:func:`raster_asset_keys`) when
            omitted. The other assets keep their remote hrefs.
        window: Size of the centred data window in pixels (``int`` or ``(rows, cols)``), or an
            explicit window (clipped to the raster).
        seed: Seed of the pixel values.
        default_dtype: Data type for assets whose item declares none.

    Returns:
        A deep copy of ``item`` whose chosen assets' ``href`` is the absolute path of a GeoTIFF.

    Raises:
        KeyError: An asset key is not in the item.
        MissingGeometryError: A chosen asset does not declare its CRS, shape or transform.
    """
    keys = raster_asset_keys(item) if assets is None else list(assets)
    missing = [key for key in keys if key not in item.get("assets", {})]
    if missing:
        raise KeyError(
            f"item {item.get('id')!r} has no assets {missing}; it has {list(item['assets'])}"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    local = copy.deepcopy(item)
    safe_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(item["id"]))
    for key in keys:
        raster = declared_raster(item, key, default_dtype=default_dtype)
        if isinstance(window, Window):
            full = Window(0, 0, raster.shape[1], raster.shape[0])
            win = window.intersection(full)
        else:
            win = centered_window(raster.shape, window)
        win = Window(int(win.col_off), int(win.row_off), int(win.width), int(win.height))
        data = expected_data(str(item["id"]), key, raster, win, seed=seed)
        path = (out_dir / f"{safe_id}__{re.sub(r'[^A-Za-z0-9._-]+', '_', key)}.tif").resolve()
        write_raster(path, raster, data, win)
        local["assets"][key]["href"] = str(path)
    return local
