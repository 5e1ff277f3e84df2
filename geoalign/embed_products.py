"""What accompanies an embedding raster: GeoParquet rows, a PCA-RGB quicklook, a STAC item.

    windows_table("windows.tif", "windows.parquet")      # one row per window + its footprint
    pca_quicklook("embeddings.tif", "embeddings.png")    # first 3 principal components as RGB
    item = embedding_item("emb", {"dense": embedding_info("embeddings.tif")}, ...)

All of them read the finished COGs in bounded memory: the table row strip by row strip, the
quicklook from the overviews (at most :data:`QUICKLOOK_MAX_PIXELS` on a side).
"""

from __future__ import annotations

import datetime as dt
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pystac
import shapely
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension
from rasterio.windows import Window

from geoalign.embed_cog import (
    EmbeddingRasterInfo,
    check_output,
    embedding_info,
    read_embeddings,
)
from geoalign.errors import NoDataFoundError

#: Longest edge of a quicklook in pixels.
QUICKLOOK_MAX_PIXELS = 1024
#: Values (pixels x bands) read for a quicklook: 64 MB of float32 (256 px for 256 bands).
QUICKLOOK_VALUES = 16_000_000
#: Pixels sampled to fit the PCA of a quicklook.
PCA_SAMPLE = 10_000
#: Rows of the per-window raster read at a time when writing the table.
TABLE_STRIP_ROWS = 64
PROCESSING_SCHEMA = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"


def windows_table(
    raster: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
) -> Path:
    """GeoParquet rows of a per-window raster: one per window with data.

    Columns: ``row``, ``col`` (of the window in the raster), ``emb_000``... (float32, scale
    and offset applied) and ``geometry`` (the window's footprint polygon, in the raster CRS).
    """
    import geopandas as gpd

    path = check_output(out, overwrite=overwrite)
    info = embedding_info(raster)
    height, width = info.geobox.shape.yx
    transform = info.geobox.transform
    frames = []
    for top in range(0, height, TABLE_STRIP_ROWS):
        rows = min(TABLE_STRIP_ROWS, height - top)
        values = read_embeddings(raster, Window(0, top, width, rows))  # [B, rows, W]
        keep = ~np.isnan(values).any(axis=0)
        r, c = np.nonzero(keep)
        if r.size == 0:
            continue
        vectors = values[:, r, c].T  # [n, B]
        r = r + top
        x0 = transform.c + c * transform.a
        y0 = transform.f + r * transform.e
        boxes = shapely.box(x0, y0 + transform.e, x0 + transform.a, y0)
        columns = {"row": r.astype(np.int32), "col": c.astype(np.int32)}
        columns.update({name: vectors[:, i] for i, name in enumerate(info.descriptions)})
        frames.append(gpd.GeoDataFrame(columns, geometry=boxes, crs=str(info.geobox.crs)))
    if not frames:
        raise NoDataFoundError(f"{raster} has no window with data: no table to write")
    table = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), crs=frames[0].crs)
    tmp = path.with_name(path.name + ".tmp")
    table.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def _stretch(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each channel of ``[3, h, w]`` scaled to 0..1 between its 2nd and 98th percentiles."""
    out = np.zeros(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        low, high = np.percentile(image[c][valid], [2, 98])
        out[c] = np.clip((image[c] - low) / ((high - low) or 1.0), 0, 1)
    return out


def pca_quicklook(
    raster: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    seed: int = 0,
) -> Path:
    """A PNG of the first three principal components of the embeddings as RGB.

    Pixels without data are transparent. The raster is read decimated (from its overviews) to
    at most :data:`QUICKLOOK_MAX_PIXELS` on a side and :data:`QUICKLOOK_VALUES` values; the PCA
    is fitted on at most :data:`PCA_SAMPLE` of its pixels.
    """
    from matplotlib.image import imsave  # no pyplot: seconds less to import

    path = check_output(out, overwrite=overwrite)
    info = embedding_info(raster)
    height, width = info.geobox.shape.yx
    # at most QUICKLOOK_VALUES values in memory, whatever the number of bands
    longest = min(QUICKLOOK_MAX_PIXELS, int(math.sqrt(QUICKLOOK_VALUES / info.band_count)))
    factor = max(1.0, max(height, width) / longest)
    shape = (max(1, round(height / factor)), max(1, round(width / factor)))
    values = read_embeddings(raster, out_shape=shape)  # [B, h, w]
    valid = ~np.isnan(values).any(axis=0)
    if not valid.any():
        raise NoDataFoundError(f"{raster} has no pixel with data: no quicklook to draw")
    pixels = values[:, valid].T  # [n, B] float32
    rng = np.random.default_rng(seed)
    sample = pixels[rng.choice(len(pixels), min(len(pixels), PCA_SAMPLE), replace=False)]
    mean = sample.astype(np.float64).mean(axis=0)
    centred = sample.astype(np.float64) - mean
    # principal axes from the B x B covariance (an SVD of the n x B sample costs 30x more)
    _, vectors = np.linalg.eigh(centred.T @ centred)
    basis = vectors[:, ::-1][:, :3].T
    if basis.shape[0] < 3:  # one or two bands: repeat the last component
        basis = np.concatenate([basis, np.repeat(basis[-1:], 3 - basis.shape[0], axis=0)])
    projected = np.zeros((3, *valid.shape), dtype=np.float32)
    projected[:, valid] = ((pixels - mean.astype(np.float32)) @ basis.T.astype(np.float32)).T
    rgb = _stretch(projected, valid)
    rgba = np.concatenate([rgb, valid[np.newaxis].astype(np.float32)]).transpose(1, 2, 0)
    tmp = path.with_name(path.stem + ".tmp.png")
    imsave(tmp, rgba, format="png")
    os.replace(tmp, path)
    return path


def _add_raster_asset(item: pystac.Item, key: str, info: EmbeddingRasterInfo) -> None:
    asset = pystac.Asset(
        href=info.path.name,
        media_type=pystac.MediaType.COG,
        title=f"embeddings ({key})",
        roles=["data"],
    )
    item.add_asset(key, asset)
    geobox = info.geobox
    crs = geobox.crs
    epsg = crs.epsg if crs is not None else None
    ProjectionExtension.ext(asset, add_if_missing=True).apply(
        code=f"EPSG:{epsg}" if epsg else None,
        wkt2=None if epsg or crs is None else crs.to_wkt(),
        shape=list(geobox.shape.yx),
        transform=[float(v) for v in list(geobox.transform)[:6]],
        bbox=[float(v) for v in geobox.extent.boundingbox],
    )
    nodata: float | NoDataStrings = -128.0 if info.dtype == "int8" else NoDataStrings.NAN
    data_type = DataType.INT8 if info.dtype == "int8" else DataType.FLOAT32
    if info.dtype == "float16":
        data_type = DataType.FLOAT16
    resolution = abs(float(geobox.transform.a))
    bands = [
        RasterBand.create(
            nodata=nodata,
            data_type=data_type,
            spatial_resolution=resolution,
            scale=None if info.scale == 1 else info.scale,
            offset=None if info.offset == 0 else info.offset,
        )
        for _ in range(info.band_count)
    ]
    RasterExtension.ext(asset, add_if_missing=True).apply(bands=bands)
    asset.extra_fields["description"] = (
        f"{info.band_count} embedding dimensions (bands {info.descriptions[0]}..."
        f"{info.descriptions[-1]}), {info.dtype}"
    )


def embedding_item(
    item_id: str,
    rasters: Mapping[str, EmbeddingRasterInfo],
    *,
    tables: Mapping[str, Path],
    quicklooks: Mapping[str, Path],
    dates: Sequence[str],
    provenance: Mapping[str, str],
) -> pystac.Item:
    """A STAC item describing an export: one asset per raster, table and quicklook.

    Assets carry ``proj:*`` and ``raster:bands``; the item carries the provenance
    (``geoalign:checkpoint_sha256``, ``geoalign:cube``, ``geoalign:modalities``...) and
    ``processing:software``. Hrefs are relative to the item's folder.
    """
    first = next(iter(rasters.values()))
    footprint = first.geobox.footprint("EPSG:4326", npoints=25)
    times = sorted(pd.Timestamp(d) for d in dates)
    now = dt.datetime.now(dt.UTC)
    start = times[0].to_pydatetime().replace(tzinfo=dt.UTC) if times else now
    end = times[-1].to_pydatetime().replace(tzinfo=dt.UTC) if times else now
    item = pystac.Item(
        id=item_id,
        geometry=footprint.json,
        bbox=[float(v) for v in footprint.boundingbox],
        datetime=None,
        start_datetime=start,
        end_datetime=end,
        properties={},
    )
    for key, value in provenance.items():
        if key.startswith("geoalign_") and key != "geoalign_version":
            name = key.removeprefix("geoalign_")
            item.properties[f"geoalign:{name}"] = (
                value.split(",") if name == "modalities" else value
            )
    item.properties["processing:software"] = {"geoalign": provenance.get("geoalign_version", "")}
    item.properties["created"] = pystac.utils.datetime_to_str(now)
    item.stac_extensions.append(PROCESSING_SCHEMA)
    for key, info in rasters.items():
        _add_raster_asset(item, key, info)
    for key, path in tables.items():
        item.add_asset(
            f"{key}_table",
            pystac.Asset(
                href=path.name,
                media_type="application/vnd.apache.parquet",
                title=f"one row per window with its footprint ({key})",
                roles=["data"],
            ),
        )
    for key, path in quicklooks.items():
        item.add_asset(
            f"{key}_quicklook",
            pystac.Asset(
                href=path.name,
                media_type=pystac.MediaType.PNG,
                title=f"first three principal components as RGB ({key})",
                roles=["overview"],
            ),
        )
    return item
