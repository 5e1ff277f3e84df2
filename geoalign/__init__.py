"""geoalign: aligned multi-sensor EO cubes, multi-modal pretraining, embedding rasters.

The top-level package is the data layer (STAC search, sensors, grids, cubes). It never imports
torch; the learning parts live in :mod:`geoalign.datasets` and :mod:`geoalign.models`.

The main entry points are importable from here and load their modules on first use, so that
``import geoalign`` (and ``geoalign --help``) stays fast::

    import geoalign

    items = geoalign.search_items("earth-search", aoi=(10.0, 50.0, 10.1, 50.1), ...)
    geoalign.build_cube("cube.zarr", [geoalign.ModalityRequest("s2", "sentinel-2-l2a", items, 10)],
                        aoi=(10.0, 50.0, 10.1, 50.1))
    cube = geoalign.open_cube("cube.zarr")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from geoalign._version import __version__
from geoalign.errors import GeoAlignError

if TYPE_CHECKING:
    from geoalign.cube import ModalityRequest, build_cube, plan_cube, write_cube
    from geoalign.cube_store import open_cube
    from geoalign.labels import LabelLayer
    from geoalign.search import search_items
    from geoalign.sensors import get_sensor
    from geoalign.summary import summarize, write_quicklooks

#: Public name -> module that defines it (imported on first access).
_LAZY = {
    "ModalityRequest": "geoalign.cube",
    "build_cube": "geoalign.cube",
    "plan_cube": "geoalign.cube",
    "write_cube": "geoalign.cube",
    "open_cube": "geoalign.cube_store",
    "LabelLayer": "geoalign.labels",
    "search_items": "geoalign.search",
    "get_sensor": "geoalign.sensors",
    "summarize": "geoalign.summary",
    "write_quicklooks": "geoalign.summary",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'geoalign' has no attribute {name!r}")


__all__ = [
    "GeoAlignError",
    "LabelLayer",
    "ModalityRequest",
    "__version__",
    "build_cube",
    "get_sensor",
    "open_cube",
    "plan_cube",
    "search_items",
    "summarize",
    "write_cube",
    "write_quicklooks",
]
