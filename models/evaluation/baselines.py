"""The analyst's baseline: a random forest (scikit-learn) on the same raw inputs and labels.

    predicted = random_forest_predict(task.kind, train_inputs, train_target, test_inputs,
                                      modalities=["lidar"], trees=200, seed=0)

Inputs per sample, modalities side by side: per-pixel vectors as they are, time series
flattened (dates x bands), image windows as per-band mean and standard deviation (scene /
patch classification), and for segmentation every labelled pixel's band values (a per-pixel
forest; at most ``max_pixels`` training pixels, drawn with the seed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from geoalign.errors import InvalidInputError
from geoalign.models.evaluation.tasks import IGNORE, TaskKind


def tabular(inputs: Mapping[str, np.ndarray], modalities: Sequence[str]) -> np.ndarray:
    """One row of raw features per sample ``[N, F]`` (see the module docstring)."""
    parts = []
    for name in modalities:
        a = inputs[name]
        if a.ndim in (2, 3):  # vectors, series of vectors
            parts.append(a.reshape(a.shape[0], -1))
        else:  # images [N, (S,) C, H, W]: per-band mean and std
            parts.append(a.mean(axis=(-2, -1)).reshape(a.shape[0], -1))
            parts.append(a.std(axis=(-2, -1)).reshape(a.shape[0], -1))
    return np.concatenate(parts, axis=1)


def pixels(inputs: Mapping[str, np.ndarray], modalities: Sequence[str]) -> np.ndarray:
    """Per-pixel raw features ``[N * H * W, F]`` of image windows (segmentation)."""
    parts = []
    for name in modalities:
        a = inputs[name]
        if a.ndim not in (4, 5):
            raise InvalidInputError(f"segmentation input {name!r} is not image windows")
        a = a.reshape(a.shape[0], -1, a.shape[-2], a.shape[-1])  # [N, S*C, H, W]
        parts.append(np.moveaxis(a, 1, -1).reshape(-1, a.shape[1]))
    sizes = {p.shape[0] for p in parts}
    if len(sizes) > 1:
        raise InvalidInputError(
            "the random forest baseline needs the segmentation modalities on one pixel grid"
        )
    return np.concatenate(parts, axis=1)


def random_forest_predict(
    kind: TaskKind,
    train_inputs: Mapping[str, np.ndarray],
    train_target: np.ndarray,
    test_inputs: Mapping[str, np.ndarray],
    *,
    modalities: Sequence[str],
    trees: int = 200,
    seed: int = 0,
    max_pixels: int = 50_000,
    n_jobs: int = 1,
) -> np.ndarray:
    """Fit a random forest on the training samples and predict the test ones.

    Returns:
        Predictions shaped like the test targets.
    """
    from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

    if kind == "segmentation":
        x = pixels(train_inputs, modalities)
        y = train_target.reshape(-1)
        labelled = np.flatnonzero(y != IGNORE)
        if labelled.size > max_pixels:
            labelled = np.sort(np.random.default_rng(seed).permutation(labelled)[:max_pixels])
        x, y = x[labelled], y[labelled]
        test = pixels(test_inputs, modalities)
    else:
        x, y = tabular(train_inputs, modalities), train_target
        test = tabular(test_inputs, modalities)
    if kind == "regression":
        model = RandomForestRegressor(n_estimators=trees, random_state=seed, n_jobs=n_jobs)
    else:
        model = RandomForestClassifier(n_estimators=trees, random_state=seed, n_jobs=n_jobs)
    model.fit(x, y)
    predicted = np.asarray(model.predict(test))
    if kind == "segmentation":
        first = next(iter(test_inputs.values()))
        return predicted.reshape(first.shape[0], first.shape[-2], first.shape[-1])
    return predicted
