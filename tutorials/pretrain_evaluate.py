# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # 3. Pretrain encoders on a cube, and evaluate them against random initialisation
#
# One encoder per sensor is trained so that the embeddings of one place seen by different
# sensors are closer to each other than to any other place (a multi-positive InfoNCE loss over
# all sensors; location is the only supervision). Then a downstream task with labels tells
# what the encoders learned: a linear probe on their frozen features, against the same
# architecture with random weights and a random forest on the raw inputs.
#
# Offline, on the demo cube (real Sentinel-2 + generated sensors, `geoalign demo`). For your own
# area, build a cube from Earth Search or Planetary Computer (tutorial 1) and run
#
# ```bash
# geoalign pretrain my_pretrain.yaml        # e.g. tutorials/configs/sen1floods11_cube.yaml
# geoalign evaluate my_evaluate.yaml        # variants x downstream sensors x seeds -> tables
# ```
#
# Environment: `GEOALIGN_TUTORIAL_OUT` (output folder, default `out/tutorials`),
# `GEOALIGN_TUTORIAL_AREA` (metres, default 960) and `GEOALIGN_TUTORIAL_BATCHES` (training
# batches, default 40; the tests use 2).

# %%
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from geoalign.demo import CLASSES, DemoArea, make_demo_data
from geoalign.models.config import PretrainConfig
from geoalign.models.demo import DemoSettings, pretrain_mapping
from geoalign.models.demo_table import window_classes
from geoalign.models.evaluation import (
    LabelRegime,
    ProtocolSettings,
    ResultTable,
    evaluate,
    load_encoders,
    random_encoders,
)
from geoalign.models.evaluation.report import plot_confusion, plot_table
from geoalign.models.evaluation.sources import CubeSource
from geoalign.models.run import pretrain
from geoalign.recipe import load_recipe
from geoalign.recipe_build import plan_recipe

out = Path(os.environ.get("GEOALIGN_TUTORIAL_OUT", "out/tutorials")) / "pretrain_evaluate"
size = float(os.environ.get("GEOALIGN_TUTORIAL_AREA", "960"))
batches = int(os.environ.get("GEOALIGN_TUTORIAL_BATCHES", "40"))
sensors = ["s2", "s1", "lidar"]  # the orthophoto and hyperspectral encoders work the same way

# %% [markdown]
# ## The cube
#
# The demo's data and recipe (see tutorial 1), built once.

# %%
data = make_demo_data(out, area=DemoArea(size=size), point_density=0.3)
recipe, base = load_recipe(data.recipe)
cube = out / "cube.zarr"
if not (cube / "zarr.json").is_file():
    cube = plan_recipe(recipe, base).write()
print(cube)

# %% [markdown]
# ## Pretraining
#
# The config is the demo's (one small CNN per sensor), restricted to three sensors, with 60 m
# windows: 6 x 6 Sentinel-2 pixels, 30 x 30 LiDAR cells. Window sizes count pixels of the
# sampling grid, the least common multiple of the sensors' resolutions (here 10 m). Its southern 30% is held out: training
# never samples it, and cross-modal retrieval is measured there (which sensor-B window belongs
# to this sensor-A window?).

# %%
mapping = pretrain_mapping(DemoSettings(epochs=1, batches_per_epoch=batches, batch_size=16))
mapping["modalities"] = {name: mapping["modalities"][name] for name in sensors}
mapping["trainer"]["log_every_n_steps"] = 1
mapping["data"]["window"] = 6  # pixels of the sampling grid (10 m without the 30 m HSI): 60 m
config = PretrainConfig.from_dict(mapping, base=out)
run = pretrain(config, overwrite=True)  # this tutorial's own run: replace it when re-run
print({k: round(v, 3) for k, v in run.metrics.items() if k.startswith("val/") and "/" not in k[4:]})

metrics = pd.concat(pd.read_csv(p) for p in (run.run_dir / "csv").rglob("metrics.csv"))
loss = metrics.dropna(subset=["train/loss"])
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(loss["step"], loss["train/loss"], marker="o")
ax.set_xlabel("step")
ax.set_ylabel("contrastive loss")
fig.tight_layout()
fig.savefig(out / "training_loss.png", dpi=80)

# %% [markdown]
# ## The downstream task
#
# Land cover of 60 m windows (the majority class of the 10 m label in each), with the same
# southern strip as test set. `CubeSource` reads every window of the cube with its label.

# %%
task = window_classes(
    CubeSource(
        path=cube,
        modalities=sensors,
        label="labels/landcover",
        class_names=list(CLASSES),
        window=6,
        test_fraction=0.3,
    ).load()
)
print("train", task.train_target.shape, "test", task.test_target.shape)

# %% [markdown]
# ## The table
#
# Rows: pretrained and random encoders with a linear probe, and a random forest on the raw
# windows (what an analyst would do without pretraining). Columns: each sensor alone, and all
# of them. `geoalign evaluate` runs the same cells over several seeds and label regimes.

# %%
encoders = {
    "pretrained / linear probe": load_encoders(run.last_checkpoint),
    "random init / linear probe": random_encoders(config, task.specs(), seed=0),
}
columns = [[s] for s in sensors] + [sensors]
rows = [*encoders, "random forest"]
values, last = {}, None
for row in rows:
    for column in columns:
        protocol = "random_forest" if row == "random forest" else "linear_probe"
        scores, _ = evaluate(
            task,
            protocol,
            column,
            regime=LabelRegime(kind="all"),
            seed=0,
            settings=ProtocolSettings(),
            encoders=encoders.get(row),
        )
        values[(row, "+".join(column))] = [scores.values["oa"]]
        last = scores
table = ResultTable("all", "oa", rows, ["+".join(c) for c in columns], values)
print(table.markdown())
plot_table(table, out / "table.png", "demo cube")
plot_confusion(last.confusion, CLASSES, out / "confusion_forest_all.png", "random forest, all sensors")
print("plots:", sorted(p.name for p in out.glob("*.png")))
