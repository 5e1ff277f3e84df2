"""The demo's embedding rasters: the pretrained encoders over the whole cube, and a similarity map.

Writes ``embeddings/`` (:func:`geoalign.models.embed.embed_cube`, over the central quarter of
the area to keep the demo short: a dense 4 m COG with one
band per embedding dimension, the mean of the five sensors' unit embeddings in the shared space,
its STAC item and PCA-RGB quicklook) and ``embeddings/similarity.tif`` + ``.png``: cosine
similarity of every pixel to the embedding at a query point, the forest pixel of the label
nearest to the centre of the area ("find places like this").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import rasterio

from geoalign.demo.ground import FOREST

#: Pixel size (m) of the dense embeddings: feature cells of every demo encoder (20 m for S2/S1,
#: 32 m for the orthophoto ResNet, 8 m for LiDAR, 60 m for HSI) are whole multiples of it.
DENSE_RESOLUTION = 4.0


def query_point(label: Path, code: int = FOREST) -> tuple[float, float]:
    """The centre ``(x, y)`` (label CRS) of the ``code`` pixel nearest to the raster's centre.

    Raises:
        ValueError: No pixel has the code.
    """
    with rasterio.open(label) as src:
        data = src.read(1)
        rows, cols = np.nonzero(data == code)
        if rows.size == 0:
            raise ValueError(f"no pixel of class {code} in {label}")
        centre = (data.shape[0] / 2, data.shape[1] / 2)
        nearest = int(np.argmin((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2))
        x, y = src.xy(int(rows[nearest]), int(cols[nearest]))
    return float(x), float(y)


def _central_box(label: Path) -> tuple[float, float, float, float]:
    """The central half (in each direction) of the label raster's extent: what the demo embeds."""
    with rasterio.open(label) as src:
        left, bottom, right, top = src.bounds
    dx, dy = (right - left) / 4, (top - bottom) / 4
    return (left + dx, bottom + dy, right - dx, top - dy)


def _similarity_png(raster: Path, point: tuple[float, float], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with rasterio.open(raster) as src:
        data = src.read(1, masked=True)
        left, bottom, right, top = src.bounds
        epsg = src.crs.to_epsg()
    crs = f"EPSG:{epsg}" if epsg else "the raster's CRS"
    fig, ax = plt.subplots(figsize=(6, 5))
    valid = data.compressed()
    low, high = np.percentile(valid, [2, 98]) if valid.size else (-1.0, 1.0)
    extent = (left, right, bottom, top)
    shown = ax.imshow(data, cmap="magma", vmin=low, vmax=high, extent=extent)
    ax.plot(*point, marker="*", color="cyan", markersize=14, markeredgecolor="black")
    ax.set_title("cosine similarity to the starred place (2-98% stretch)")
    ax.ticklabel_format(useOffset=False, style="plain")  # whole metres, no "1e6" offset
    ax.set_xlabel(f"easting (m, {crs})")
    ax.set_ylabel(f"northing (m, {crs})")
    fig.colorbar(shown, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def embed_demo(
    folder: Path, checkpoint: Path, report: Callable[[str, int, int | None], None]
) -> dict[str, Path]:
    """Export the demo's embeddings and similarity map; return what was written."""
    from geoalign.models.embed import EmbedOptions, embed_cube
    from geoalign.similarity import similarity_map

    report("embed", 0, None)
    out = folder / "embeddings"

    def progress(done: int, total: int) -> None:
        report("embed", done, total + 1)

    point = query_point(folder / "data" / "landcover.tif")
    options = EmbedOptions(
        product="dense",
        resolution=DENSE_RESOLUTION,
        fusion="mean",
        aoi=_central_box(folder / "data" / "landcover.tif"),
        aoi_crs="EPSG:32618",
    )
    result = embed_cube(checkpoint, folder / "cube.zarr", out, options, progress=progress)
    dense = result.rasters["dense"]
    similarity = similarity_map(dense, point, out / "similarity.tif", aoi_crs="EPSG:32618")
    picture = _similarity_png(Path(similarity), point, out / "similarity.png")
    report("embed", 1, 1)
    written = {
        "embedding COG": dense,
        "embedding quicklook": result.quicklooks["dense"],
        "similarity map": Path(similarity),
        "similarity quicklook": picture,
    }
    if result.item is not None:
        written["embedding STAC item"] = result.item
    return written
