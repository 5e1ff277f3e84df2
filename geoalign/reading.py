"""Read raster assets onto a target grid, one window at a time (the inner loop of a cube build).

Each call reads the bands of one file that a window needs, in one GDAL request per file (all band
indexes at once, so a pixel-interleaved multi-band COG decodes each tile once, not once per band),
and either slices them directly, when the file's grid is the target grid up to a whole-pixel shift
(bit-identical, no resampling), or warps them with GDAL's warper onto the window's GeoBox.

Values are re-encoded from each file's own scale/offset into the cube's storage encoding
(``physical = stored * scale + offset``), so items with different encodings (Sentinel-2 processing
baselines, providers) land in one array with one meaning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import rasterio
import rasterio.warp
from affine import Affine
from odc.geo.geobox import GeoBox
from rasterio.enums import Resampling
from rasterio.windows import Window

from geoalign.errors import AssetReadError
from geoalign.raster_pool import POOL, footprint
from geoalign.sensors.model import Encoding


class BandSourceLike(Protocol):
    """What the reader needs to know about one band of one item (see ``geoalign.sensors``)."""

    @property
    def href(self) -> str:
        """Path or URL of the file (GDAL syntax: ``/vsicurl/`` etc. are allowed)."""

    @property
    def index(self) -> int:
        """1-based band index in the file."""

    @property
    def nodata(self) -> float | None:
        """Raw no-data value of the band, or None."""

    @property
    def scale(self) -> float:
        """Raw to physical scale: physical = raw * scale + offset."""

    @property
    def offset(self) -> float:
        """Raw to physical offset."""

    @property
    def conversion(self) -> str:
        """Unit conversion after scaling: ``"none"``, ``"to_db"`` or ``"to_linear"``."""


def storage_nodata(encoding: Encoding) -> float:
    """The value that marks missing pixels in storage: the encoding's, else NaN or 0."""
    if encoding.nodata is not None:
        return float(encoding.nodata)
    return math.nan if np.dtype(encoding.dtype).kind == "f" else 0.0


def _integer_shift(src: Any, geobox: GeoBox, *, same_crs: bool) -> tuple[int, int] | None:
    """Return (row, col) of the window's top-left pixel in ``src`` when no resampling is needed.

    That is when both grids share CRS, pixel size and orientation, and differ by whole pixels.
    """
    if not same_crs:
        return None
    dst: Affine = geobox.affine
    s: Affine = src.transform
    if not (math.isclose(s.a, dst.a) and math.isclose(s.e, dst.e) and s.b == 0 and s.d == 0):
        return None
    if dst.b != 0 or dst.d != 0:
        return None
    col = (dst.c - s.c) / s.a
    row = (dst.f - s.f) / s.e
    if abs(col - round(col)) > 1e-6 or abs(row - round(row)) > 1e-6:
        return None
    return round(row), round(col)


def overlaps(href: str, geobox: GeoBox) -> bool:
    """Whether ``href`` may contribute a pixel to ``geobox`` (its bounds only; cheap).

    The file's bounds are transformed to the window's CRS once per file (see
    :func:`geoalign.raster_pool.footprint`); each call then compares two boxes.
    """
    bounds = footprint(href, geobox.crs).bounds
    if bounds is None:
        return True
    left, bottom, right, top = bounds
    box = geobox.boundingbox
    return not (box.left >= right or box.right <= left or box.bottom >= top or box.top <= bottom)


def same_type(value: float, dtype: np.dtype[Any]) -> Any:
    """``value`` as a scalar of ``dtype`` when it is exactly representable, else as it is.

    Comparing an integer array with a Python float casts every element to float64 first (NumPy
    2 promotion); with a scalar of the array's own type the comparison runs on the raw values.
    """
    if dtype.kind in "iub" and float(value).is_integer():
        info = np.iinfo(dtype) if dtype.kind != "b" else None
        if info is None or info.min <= value <= info.max:
            return dtype.type(value)
    return value


def _work_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """float32 where exact for every raw value (<= 16-bit integers, float32), else float64."""
    if (dtype.kind == "f" and dtype.itemsize <= 4) or (dtype.kind in "iub" and dtype.itemsize <= 2):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


@dataclass(frozen=True)
class WindowRead:
    """The part of a target window that one file covers, read by :func:`read_file_window`.

    Attributes:
        rows: Rows of the target window covered by ``values``.
        cols: Columns of the target window covered by ``values``.
        values: Raw values, ``(band, len(rows), len(cols))``: the file's dtype when the grids
            align (a plain windowed read), float32/float64 (NaN where nothing lands) when warped.
        valid: None when every pixel of ``values`` has data, else a boolean array of the same
            shape, False where the file has no data (no-data value, NaN).
    """

    rows: slice
    cols: slice
    values: np.ndarray
    valid: np.ndarray | None


def read_file_window(
    href: str,
    indexes: Sequence[int],
    geobox: GeoBox,
    *,
    src_nodata: float | None,
    resampling: Resampling,
) -> WindowRead | None:
    """Read bands ``indexes`` of ``href`` onto the part of ``geobox`` that the file covers.

    Same arguments as :func:`read_file_bands`. Returns None when the file covers no pixel of an
    aligned window. Pixels outside ``rows``/``cols`` have no data from this file.
    """
    same_crs = footprint(href, geobox.crs).same_crs
    with POOL.use(href) as src:
        return _read_window(
            src, href, list(indexes), geobox, same_crs, src_nodata=src_nodata, resampling=resampling
        )


def _read_window(
    src: Any,
    href: str,
    idx: list[int],
    geobox: GeoBox,
    same_crs: bool,
    *,
    src_nodata: float | None,
    resampling: Resampling,
) -> WindowRead | None:
    """:func:`read_file_window` on an open dataset."""
    nodata = src_nodata if src_nodata is not None else src.nodata
    shape = (geobox.shape.y, geobox.shape.x)
    shift = _integer_shift(src, geobox, same_crs=same_crs)
    if shift is not None:
        # Same grid up to whole pixels: a plain windowed read of the covered part only,
        # bit-identical to the source. Masks are built over that part only, and not at all for
        # integer files without no-data (orthophotos). With full-window masks per band, the
        # benchmark's block tasks took 2.1-2.7 s CPU, GDAL's decode about 1.0 s of it; now
        # 1.4-1.9 s.
        row, col = shift
        r0, c0 = max(row, 0), max(col, 0)
        r1, c1 = min(row + shape[0], src.height), min(col + shape[1], src.width)
        if r1 <= r0 or c1 <= c0:
            return None
        dtype = np.dtype(src.dtypes[idx[0] - 1])
        values = np.empty((len(idx), r1 - r0, c1 - c0), dtype=dtype)
        window = Window(c0, r0, c1 - c0, r1 - r0)
        gdal_read(href, "read", lambda: src.read(idx, window=window, out=values))
        valid: np.ndarray | None = None
        if dtype.kind == "f":
            valid = ~np.isnan(values)
        if nodata is not None and not math.isnan(nodata):
            if valid is None:
                valid = values != same_type(nodata, dtype)
            else:
                valid &= values != same_type(nodata, dtype)
        return WindowRead(slice(r0 - row, r1 - row), slice(c0 - col, c1 - col), values, valid)
    values = np.full(
        (len(idx), *shape), np.nan, dtype=_work_dtype(np.dtype(src.dtypes[idx[0] - 1]))
    )
    gdal_read(
        href,
        "read or warped",
        lambda: rasterio.warp.reproject(
            source=rasterio.band(src, idx),
            destination=values,
            src_nodata=nodata,
            dst_transform=geobox.affine,
            dst_crs=str(geobox.crs),
            dst_nodata=np.nan,
            resampling=resampling,
            init_dest_nodata=True,
            num_threads=1,
        ),
    )
    # The warper skips source no-data pixels and leaves NaN where nothing valid lands.
    return WindowRead(slice(0, shape[0]), slice(0, shape[1]), values, ~np.isnan(values))


def gdal_read(href: str, what: str, read: Callable[[], object]) -> None:
    """Run a GDAL read of ``href``; a failure raises :class:`AssetReadError`.

    GDAL's message is in the error, which is raised with no exception chained: rasterio's
    ``CPLE_*`` errors cannot be rebuilt after pickling, and a dask.distributed worker sends the
    whole chain back (the client would get a bare ``Exception``).
    """
    try:
        read()
        return
    except rasterio.errors.RasterioError as error:
        failure = AssetReadError(
            f"asset {href} opened but could not be {what} ({error}): the file is probably "
            "truncated or damaged. Fetch it again, or build with on_error='skip' (recipe: "
            "on_error: skip) to leave its item out and record it in the cube's provenance",
            href,
            f"pixels could not be {what} while building: {error}",
        )
    raise failure  # outside the except clause: no __context__ either


def read_file_bands(
    href: str,
    indexes: Sequence[int],
    geobox: GeoBox,
    *,
    src_nodata: float | None,
    resampling: Resampling,
) -> tuple[np.ndarray, np.ndarray]:
    """Read bands ``indexes`` of ``href`` onto ``geobox``.

    Args:
        href: File path or GDAL-readable URL.
        indexes: 1-based band indexes to read, in the order wanted.
        geobox: Target window (CRS, transform, shape).
        src_nodata: Raw no-data value (overrides the file's), or None for the file's own.
        resampling: GDAL resampling used when the grids differ.

    Returns:
        ``(values, valid)``: raw values of shape ``(len(indexes), H, W)``, in the file's dtype
        when the grids align (a plain windowed read) or float32/float64 (NaN where nothing
        lands) when warped, and a boolean array of the same shape (possibly a read-only
        broadcast view), False where the file has no data (outside it, or no-data).
    """
    shape = (len(indexes), geobox.shape.y, geobox.shape.x)
    read = read_file_window(href, indexes, geobox, src_nodata=src_nodata, resampling=resampling)
    if read is None:
        with POOL.use(href) as src:
            dtype = np.dtype(src.dtypes[indexes[0] - 1])
        return np.zeros(shape, dtype=dtype), np.broadcast_to(np.asarray(False), shape)
    if read.values.shape == shape:
        valid = np.broadcast_to(np.asarray(True), shape) if read.valid is None else read.valid
        return read.values, valid
    values = np.zeros(shape, dtype=read.values.dtype)
    values[:, read.rows, read.cols] = read.values
    mask = np.zeros(shape, dtype=bool)
    mask[:, read.rows, read.cols] = True if read.valid is None else read.valid
    return values, mask


def encode(
    values: np.ndarray,
    valid: np.ndarray | None,
    source: BandSourceLike,
    encoding: Encoding,
    *,
    copy: bool = True,
) -> np.ndarray:
    """Convert raw values of ``source`` (its own scale, offset, unit) into the storage ``encoding``.

    When the source's encoding is the storage encoding the values are copied unchanged
    (bit-identical). Values that do not fit the storage dtype are clipped to its range (for
    instance a reflectance below the offset in an unsigned store), so nothing wraps around.

    Args:
        values: Raw values, any shape, float64 (NaN where invalid).
        valid: Boolean array of the same shape; False becomes the storage no-data value. None
            leaves every pixel encoded as it is (the caller masks them).
        source: Scale, offset and unit conversion of the raw values.
        encoding: Storage encoding of the cube.
        copy: False lets the result be ``values`` itself, filled in place, when the encodings
            are equal (no copy); ``values`` must then be an array the caller owns.
    """
    nodata = storage_nodata(encoding)
    dtype = np.dtype(encoding.dtype)
    if source.conversion == "none":
        gain = source.scale / encoding.scale
        shift = (source.offset - encoding.offset) / encoding.scale
        if math.isclose(gain, 1.0) and abs(shift) < 1e-9 and values.dtype == dtype:
            # The source's encoding is the storage encoding: bit-identical.
            out = values.copy() if copy else values
        elif (
            dtype.kind in "iu"
            and values.dtype.kind in "iu"
            and abs(gain - round(gain)) < 1e-9
            and abs(shift - round(shift)) < 1e-6
        ):
            # Integer to integer with an integer gain and shift (Sentinel-2 DN - 1000): exact,
            # in integers, clipped so that nothing wraps around.
            wide = values.astype(np.int64 if values.dtype.itemsize >= 4 else np.int32)
            if round(gain) != 1:
                np.multiply(wide, round(gain), out=wide)
            if round(shift) != 0:
                np.add(wide, round(shift), out=wide)
            out = np.clip(wide, *_storage_range(dtype, nodata)).astype(dtype)
        else:
            work = values.astype(_work_dtype(values.dtype), copy=False)
            out = _to_storage(work * gain + shift, dtype, nodata)
    else:
        physical = values.astype(np.float64) * source.scale + source.offset
        if source.conversion == "to_db":
            with np.errstate(divide="ignore", invalid="ignore"):
                physical = np.where(physical > 0, 10.0 * np.log10(physical), np.nan)
            finite = ~np.isnan(physical)
            valid = finite if valid is None else valid & finite
        elif source.conversion == "to_linear":
            physical = np.power(10.0, physical / 10.0)
        out = _to_storage((physical - encoding.offset) / encoding.scale, dtype, nodata)
    if valid is not None and not valid.all():
        np.copyto(out, np.asarray(nodata, dtype), where=~valid)
    return out


def _storage_range(dtype: np.dtype[Any], nodata: float) -> tuple[int, int]:
    """The storable range of an integer dtype, less the no-data value at either end."""
    info = np.iinfo(dtype)
    return (
        info.min + (1 if nodata == info.min else 0),
        info.max - (1 if nodata == info.max else 0),
    )


def _to_storage(values: np.ndarray, dtype: np.dtype[Any], nodata: float) -> np.ndarray:
    """Round and clip float values into an integer storage dtype (NaN stays for float dtypes)."""
    if dtype.kind not in "iu":
        return values.astype(dtype)
    low, high = _storage_range(dtype, nodata)
    out: np.ndarray = np.clip(np.rint(np.nan_to_num(values, nan=nodata)), low, high).astype(dtype)
    return out
