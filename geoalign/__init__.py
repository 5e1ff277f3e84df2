"""geoalign: aligned multi-sensor EO cubes, multi-modal pretraining, embedding rasters.

The top-level package is the data layer (STAC search, sensors, grids, cubes). It never imports
torch; the learning parts live in :mod:`geoalign.datasets` and :mod:`geoalign.models`.
"""

from geoalign._version import __version__
from geoalign.errors import GeoAlignError

__all__ = ["GeoAlignError", "__version__"]
