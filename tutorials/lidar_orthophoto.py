# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 2. LiDAR and an orthophoto on one grid
#
# The Autzen Stadium data (Eugene, Oregon; PDAL's test data): a real RGB orthophoto with 1 ft
# pixels in NAD83(HARN) Oregon Lambert *feet*, and a real aerial point cloud of the same place
# in the same feet coordinates. geoalign puts both on one metric UTM grid: the orthophoto
# reprojected to 1 m, the points rasterized straight onto a coarser grid of the same family
# (surface heights, point density), so that a window in metres is a plain slice of both.
#
# With internet access the same build runs on Planetary Computer's NAIP and USGS 3DEP COPC
# point clouds (read by bounds queries over HTTP):
#
# ```bash
# geoalign recipes planetary-computer-multisensor --out my_area.yaml   # edit its aoi (US)
# geoalign cube my_area.yaml --dry-run && geoalign cube my_area.yaml
# ```
#
# Environment: `GEOALIGN_DATA` (the shared data folder, default `../shared/data`) and
# `GEOALIGN_TUTORIAL_OUT` (output folder, default `out/tutorials`).

# %%
import datetime as dt
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pystac
import torch

from geoalign.cube import ModalityRequest, build_cube
from geoalign.cube_store import open_cube
from geoalign.datasets import RandomWindowSampler, open_cube_dataset
from geoalign.lidar import LidarRequest, RasterizeOptions, read_points
from geoalign.stac_items import items_from_rasters

autzen = Path(os.environ.get("GEOALIGN_DATA", "../shared/data")) / "autzen"
out = Path(os.environ.get("GEOALIGN_TUTORIAL_OUT", "out/tutorials")) / "lidar_orthophoto"
out.mkdir(parents=True, exist_ok=True)

# %% [markdown]
# ## The two sources
#
# The orthophoto becomes a STAC item read from the file (CRS from its `.aux.xml`/`.wld`); the
# point cloud gets an item with a LAS asset. Both could come from a STAC API instead.

# %%
ortho = items_from_rasters(
    [autzen / "autzen.jpg"],
    collection="orthophoto",
    datetime="2010-06-01T00:00:00Z",
    sensor_band_names=["red", "green", "blue"],
)[0]
chunk, info = read_points(autzen / "autzen-thin-srs.las")
print("orthophoto:", ortho.properties["proj:shape"], "pixels; CRS", ortho.properties.get("proj:code") or "WKT")
print("points:", info.point_count, "in", info.crs.describe())

points = pystac.Item(
    id="autzen-points",
    geometry=ortho.geometry,
    bbox=ortho.bbox,
    datetime=dt.datetime(2010, 6, 1, tzinfo=dt.UTC),
    properties={},
)
points.add_asset("data", pystac.Asset(str(autzen / "autzen-thin-srs.las"), media_type="application/vnd.las"))

# %% [markdown]
# ## One cube
#
# The grid is UTM zone 10N (EPSG:32610), origin shared. The orthophoto is resampled to 1 m;
# the point cloud (10,653 points over 1.3 km2, a thinned sample) is rasterized at 20 m, a
# whole multiple of 1 m, so every 20 m LiDAR cell holds exactly 20 x 20 orthophoto pixels.

# %%
cube = build_cube(
    out / "autzen.zarr",
    [
        ModalityRequest("ortho", "orthophoto", [ortho], 1.0, mask_clouds=False, resampling="bilinear"),
        LidarRequest(
            "lidar",
            "lidar-points",
            [points],
            20.0,
            bands=["dsm", "density"],
            options=RasterizeOptions(products=("dsm", "density")),
            cache_dir=out / "cache",
        ),
    ],
    aoi=ortho.geometry,
    crs="EPSG:32610",
    overwrite=True,
)
tree = open_cube(cube)
for name in ("ortho", "lidar"):
    data = tree[name]["data"]
    print(name, dict(data.sizes), "x from", float(data.x[0]), "step", float(data.x[1] - data.x[0]))

# %% [markdown]
# ## Side by side
#
# The same ground: the orthophoto, the LiDAR surface model over it, and the point density.

# %%
rgb = tree["ortho"]["data"].isel(time=0).transpose("y", "x", "band").values.astype("float32")
rgb = np.clip(np.nan_to_num(rgb) / 255.0, 0, 1)
dsm = tree["lidar"]["data"].isel(time=0).sel(band="dsm").values
density = tree["lidar"]["data"].isel(time=0).sel(band="density").values
extent = [float(tree["ortho"].x.min()), float(tree["ortho"].x.max()), float(tree["ortho"].y.min()), float(tree["ortho"].y.max())]
fig, axes = plt.subplots(1, 3, figsize=(15, 5))
axes[0].imshow(rgb, extent=extent)
axes[0].set_title("orthophoto, 1 m")
axes[1].imshow(rgb, extent=extent)
shown = axes[1].imshow(dsm, extent=extent, alpha=0.6, cmap="viridis")
fig.colorbar(shown, ax=axes[1], shrink=0.7, label="DSM (m)")
axes[1].set_title("LiDAR DSM, 20 m, over the orthophoto")
shown = axes[2].imshow(density, extent=extent, cmap="magma")
fig.colorbar(shown, ax=axes[2], shrink=0.7, label="points / m2")
axes[2].set_title("LiDAR point density, 20 m")
fig.tight_layout()
fig.savefig(out / "autzen_side_by_side.png", dpi=80)
print("valid DSM cells:", int(np.isfinite(dsm).sum()), "of", dsm.size)

# %% [markdown]
# ## Sampling both
#
# A torchgeo-style sampler draws windows in metres; each sample holds both sensors at their
# own resolution, sliced from the cube without any warping: a 320 m window is 320 x 320
# orthophoto pixels and 16 x 16 LiDAR cells.

# %%
dataset = open_cube_dataset(cube, ["ortho", "lidar"], labels=[])
sampler = RandomWindowSampler(dataset, 16, 4, generator=torch.Generator().manual_seed(0))
for query in sampler:
    sample = dataset[query]
    left, bottom, right, top = sample["bounds"].tolist()
    print(f"window {right - left:.0f} m: ortho {tuple(sample['ortho'].shape)}, lidar {tuple(sample['lidar'].shape)}")
