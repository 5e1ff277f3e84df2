"""The installed version of geoalign, read from the distribution metadata."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__: str = version("geoalign")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
