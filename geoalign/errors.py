"""Typed errors and warnings of geoalign.

Every error geoalign raises on purpose derives from :class:`GeoAlignError`; each subclass also
derives from the builtin a caller would expect (``ValueError``, ``FileNotFoundError``...), so
``except ValueError`` keeps working. Messages name the offending argument and say how to fix it.
"""

from __future__ import annotations


class GeoAlignError(Exception):
    """Base class of every error raised by geoalign."""


class InvalidInputError(GeoAlignError, ValueError):
    """An argument has a value geoalign cannot use (bad bbox, non-integer resolution ratio...)."""


class CRSError(GeoAlignError, ValueError):
    """A coordinate reference system is missing, unknown or unusable."""


class NoDataFoundError(GeoAlignError, LookupError):
    """A search or a read found nothing (no STAC items, no valid pixels, no points)."""


class DataFileNotFoundError(GeoAlignError, FileNotFoundError):
    """A file or asset that geoalign was asked to read does not exist."""


class CorruptDataError(GeoAlignError, OSError):
    """A file or asset exists but cannot be decoded."""


class AssetReadError(CorruptDataError):
    """An asset opened, but some of its pixels could not be read or warped (a truncated file).

    Attributes:
        href: The asset that failed, so that a build with ``on_error="skip"`` can leave its item
            out (the exception pickles with it, also from dask.distributed workers).
        detail: What GDAL said, for the cube's provenance.
    """

    def __init__(self, message: str, href: str, detail: str) -> None:
        super().__init__(message)
        self.message, self.href, self.detail = message, href, detail

    def __reduce__(self) -> tuple[type[AssetReadError], tuple[str, str, str]]:
        return type(self), (self.message, self.href, self.detail)


class AssetMissingError(AssetReadError, DataFileNotFoundError):
    """An asset could not be opened when its pixels were needed (gone since it was planned)."""


class OutputExistsError(GeoAlignError, FileExistsError):
    """An output already exists and overwriting it was not asked for."""


class IncompleteCubeError(GeoAlignError, RuntimeError):
    """A cube store exists but its build did not finish."""


class StacApiError(GeoAlignError, ConnectionError):
    """A STAC API kept failing after retries."""


class SensorError(GeoAlignError, KeyError):
    """A sensor is unknown, or a STAC item lacks what its sensor description needs."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class GeoAlignWarning(UserWarning):
    """Base class of every warning emitted by geoalign."""
