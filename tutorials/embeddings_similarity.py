# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 4. Embedding rasters and a similarity map
#
# A pretrained encoder turns a cube into an *embedding raster*: a Cloud-Optimized GeoTIFF with
# one band per embedding dimension that any GIS opens, plus a STAC item describing it and a
# PCA-RGB quicklook. Its everyday use: "find places like this one", a cosine-similarity map to
# a point or polygon.
#
# This tutorial uses the cube and checkpoint of tutorial 3 (run it first, with the same
# `GEOALIGN_TUTORIAL_OUT`). From the command line, for any cube and checkpoint:
#
# ```bash
# geoalign embed runs/demo/checkpoints/last.ckpt cube.zarr embeddings --resolution 4 --fusion mean
# geoalign similarity embeddings/embeddings.tif -o similarity.tif --point=441500,4167000 --crs EPSG:32618
# ```
#
# For a cube built from Earth Search or Planetary Computer (tutorial 1) the commands are the same.

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import geopandas as gpd
import matplotlib.pyplot as plt
import numpy as np
import rasterio

from geoalign.demo import CLASSES
from geoalign.embed_cog import embedding_info, read_embeddings
from geoalign.models.embed import EmbedOptions, embed_cube
from geoalign.models.demo_embed import query_point
from geoalign.similarity import similarity_map

folder = Path(os.environ.get("GEOALIGN_TUTORIAL_OUT", "out/tutorials")) / "pretrain_evaluate"
checkpoint = folder / "runs" / "demo" / "checkpoints" / "last.ckpt"
cube = folder / "cube.zarr"
out = folder / "embeddings"
print(checkpoint, cube)

# %% [markdown]
# ## Export
#
# Two products: *dense* per-pixel embeddings (sliding windows with enough context that no seam
# shows at window borders) at 4 m, where every encoder's feature cells are whole numbers of
# pixels, and one embedding per 60 m *window*, as a coarse raster and as GeoParquet rows
# with their footprints. The sensors' unit embeddings are averaged in the shared space.

# %%
result = embed_cube(
    checkpoint,
    cube,
    out,
    EmbedOptions(product="both", resolution=4.0, fusion="mean", window=6),
    overwrite=True,
)
for group in (result.rasters, result.tables, result.quicklooks):
    for kind, path in group.items():
        print(f"{kind:8s} {path.name}")
print("STAC item:", result.item)
info = embedding_info(result.rasters["dense"])
print("dense:", info.band_count, "bands,", info.geobox.shape, "pixels, EPSG", info.geobox.crs.epsg)

# %% [markdown]
# The window table is an ordinary GeoDataFrame: one row and footprint per window.

# %%
windows = gpd.read_parquet(result.tables["windows"])
print(windows.shape, "EPSG", windows.crs.to_epsg())
print(windows.iloc[:3, :5])

# %% [markdown]
# ## Similarity to a place
#
# The query is the forest pixel of the label nearest to the centre; the map is the cosine
# similarity of every pixel's embedding to the query's.

# %%
point = query_point(folder / "data" / "landcover.tif")
similarity = similarity_map(result.rasters["dense"], point, out / "similarity.tif", aoi_crs="EPSG:32618", overwrite=True)
with rasterio.open(similarity) as src:
    sim = src.read(1)
    sim_bounds = src.bounds
with rasterio.open(folder / "data" / "landcover.tif") as src:
    label = src.read(1)
# the label is at 10 m, the similarity at 4 m over the same area: compare at 20 m
factor = 5
coarse = sim[: sim.shape[0] // factor * factor, : sim.shape[1] // factor * factor]
coarse = np.nanmean(coarse.reshape(coarse.shape[0] // factor, factor, -1, factor), axis=(1, 3))
label20 = label[::2, ::2][: coarse.shape[0], : coarse.shape[1]]
for code, name in enumerate(CLASSES):
    cells = coarse[label20 == code]
    if cells.size:
        print(f"{name:15s} mean similarity {np.nanmean(cells):+.3f} ({cells.size} cells)")

values = read_embeddings(result.rasters["dense"])
rgb = np.stack([values[i] for i in range(3)], axis=-1)
rgb = (rgb - np.nanpercentile(rgb, 2)) / (np.nanpercentile(rgb, 98) - np.nanpercentile(rgb, 2))
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
extent = (sim_bounds.left, sim_bounds.right, sim_bounds.bottom, sim_bounds.top)
axes[0].imshow(np.clip(np.nan_to_num(rgb), 0, 1), extent=extent)
axes[0].set_title("embedding bands 1-3")
shown = axes[1].imshow(sim, cmap="magma", extent=extent)
axes[1].plot(*point, marker="*", color="cyan", markersize=14, markeredgecolor="black")
axes[1].set_title("cosine similarity to the starred forest pixel")
fig.colorbar(shown, ax=axes[1], shrink=0.8)
fig.tight_layout()
fig.savefig(out / "similarity_overview.png", dpi=80)
print("wrote", out / "similarity_overview.png")
