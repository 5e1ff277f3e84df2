"""Similarity maps: "find places like this" on an embedding raster.

    path = similarity_map("out/emb/embeddings.tif", (-0.775, 38.095), "similar.tif")
    path = similarity_map("embeddings.tif", "field.gpkg", "similar.tif")        # a polygon

The query is the mean embedding of the raster's pixels inside the area of interest (the pixel
holding a point; the pixels whose centre lies in a polygon, or every pixel it touches when it is
smaller than a pixel), normalised to unit length. The output is a one-band COG on the raster's
grid holding the cosine similarity of every pixel to the query (-1..1, NaN where the raster has
no data), written block by block in constant memory and resumable like the embedding rasters.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.features import geometry_mask
from rasterio.windows import Window, from_bounds

from geoalign.aoi import AOILike, CRSLike, to_aoi
from geoalign.embed_cog import (
    EmbeddingRasterWriter,
    RasterLayout,
    embedding_info,
    file_sha256,
    read_embeddings,
)
from geoalign.errors import InvalidInputError, NoDataFoundError

#: Output rows and columns per block.
BLOCK = 512


def query_embedding(
    raster: str | os.PathLike[str], aoi: AOILike, *, aoi_crs: CRSLike | None = None
) -> np.ndarray:
    """Mean unit embedding ``[B]`` of the raster's pixels inside ``aoi`` (see module doc).

    ``aoi``: a point ``(x, y)`` or anything :func:`geoalign.aoi.to_aoi` accepts.

    Raises:
        InvalidInputError: ``aoi`` lies outside the raster.
        NoDataFoundError: No pixel inside ``aoi`` has data.
    """
    info = embedding_info(raster)
    geobox = info.geobox
    if geobox.crs is None:
        raise InvalidInputError(f"{info.path} has no CRS: not an embedding raster from geoalign")
    point = _as_point(aoi)
    area = to_aoi(aoi if point is None else point, crs=aoi_crs).to_crs(geobox.crs)
    x0, y0, x1, y1 = area.boundingbox
    left, bottom, right, top = geobox.extent.boundingbox
    if x0 > right or x1 < left or y0 > top or y1 < bottom:
        raise InvalidInputError(
            f"the area of interest {tuple(round(v, 1) for v in (x0, y0, x1, y1))} (in "
            f"EPSG:{geobox.crs.epsg}) lies outside the embedding raster {info.path} "
            f"{tuple(round(v, 1) for v in (left, bottom, right, top))}, which covers lon/lat "
            f"{_lonlat_bounds(geobox)}: give a place it covers"
        )
    height, width = geobox.shape.yx
    window = from_bounds(
        max(x0, left), max(y0, bottom), min(x1, right), min(y1, top), geobox.transform
    )
    row0, col0 = max(0, int(np.floor(window.row_off))), max(0, int(np.floor(window.col_off)))
    row1 = min(height, max(row0 + 1, int(np.ceil(window.row_off + window.height))))
    col1 = min(width, max(col0 + 1, int(np.ceil(window.col_off + window.width))))
    read = Window(col0, row0, col1 - col0, row1 - row0)
    values = read_embeddings(raster, read)  # [B, h, w]
    transform = geobox.transform @ Affine.translation(col0, row0)
    shape = (row1 - row0, col1 - col0)
    inside = np.ones(shape, dtype=bool)
    if area.geom_type in ("Polygon", "MultiPolygon"):
        inside = ~geometry_mask([area.geom], shape, transform)
        if not inside.any():
            inside = ~geometry_mask([area.geom], shape, transform, all_touched=True)
    elif area.geom_type not in ("Point", "MultiPoint"):
        inside = ~geometry_mask([area.geom], shape, transform, all_touched=True)
    pixels = values[:, inside & ~np.isnan(values).any(axis=0)]
    if pixels.shape[1] == 0:
        raise NoDataFoundError(
            f"no pixel of {info.path} inside the area of interest has data: choose a place "
            "where the inputs were valid"
        )
    mean = pixels.astype(np.float64).mean(axis=1)
    norm = float(np.linalg.norm(mean))
    if norm == 0:
        raise NoDataFoundError("the mean embedding of the area of interest is zero")
    result: np.ndarray = (mean / norm).astype(np.float32)
    return result


def _lonlat_bounds(geobox: GeoBox) -> tuple[float, ...]:
    """``(min lon, min lat, max lon, max lat)`` of a geobox, in degrees rounded to 1e-4."""
    return tuple(round(v, 4) for v in geobox.extent.to_crs("EPSG:4326").boundingbox)


def similarity_map(
    raster: str | os.PathLike[str],
    aoi: AOILike,
    out: str | os.PathLike[str],
    *,
    aoi_crs: CRSLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Cosine similarity of every pixel of ``raster`` to the mean embedding of ``aoi`` (a COG).

    Args:
        raster: An embedding raster written by geoalign (dense or per-window, any encoding).
        aoi: A point or polygon: ``(lon, lat)`` or a bbox, shapely/GeoJSON geometry, a vector
            file... (see :func:`geoalign.aoi.to_aoi`).
        out: The output ``.tif``.
        aoi_crs: CRS of ``aoi`` when it carries none (default EPSG:4326).
        overwrite: Replace an existing output.

    Raises:
        InvalidInputError: ``aoi`` lies outside the raster.
        NoDataFoundError: No pixel inside ``aoi`` has data.
        OutputExistsError: ``out`` exists and ``overwrite`` is False.
    """
    query = query_embedding(raster, aoi, aoi_crs=aoi_crs)
    info = embedding_info(raster)
    digest = hashlib.sha256(query.tobytes() + file_sha256(info.path).encode()).hexdigest()
    layout = RasterLayout(
        info.geobox,
        1,
        dtype="float32",
        descriptions=("cosine_similarity",),
        tags={**info.tags, "geoalign_product": "similarity", "geoalign_source": str(info.path)},
    )
    height, width = info.geobox.shape.yx
    with EmbeddingRasterWriter(out, layout, fingerprint=digest, overwrite=overwrite) as writer:
        for row in range(0, height, BLOCK):
            for col in range(0, width, BLOCK):
                key = f"{row}:{col}"
                if key in writer.done:
                    continue
                window = Window(col, row, min(BLOCK, width - col), min(BLOCK, height - row))
                values = read_embeddings(raster, window)
                norms = np.linalg.norm(values, axis=0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    cosine = np.tensordot(query, values, axes=1) / norms
                writer.write(key, row, col, cosine[np.newaxis].astype(np.float32))
            writer.commit()
        return writer.finish()


def _as_point(aoi: AOILike) -> AOILike | None:
    """``(x, y)`` pairs as a GeoJSON point (to_aoi reads 4 numbers as a bbox)."""
    if isinstance(aoi, tuple | list) and len(aoi) == 2:
        x, y = (float(v) for v in aoi)
        return {"type": "Point", "coordinates": [x, y]}
    return None
