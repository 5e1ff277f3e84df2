"""Which chunks a window covers, and the paired read of a modality's data and validity.

A window of a chunked array is a list of *pieces*: for each chunk under it, the part of the
chunk to copy and where it goes in the window. Working them out costs more than copying a small
window (about 3 us against 1 us for an 8 x 8 pixel window), so they are memoised for the last
windows: the data and the validity of a modality, and modalities on the same grid, share one
computation per sample.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from geoalign.datasets.chunk_cache import MISSING

if TYPE_CHECKING:
    from geoalign.datasets.chunks import ChunkedArray

#: ``(chunk row, chunk col, source rows, source cols, target rows, target cols)``.
Piece = tuple[int, int, slice, slice, slice, slice]
_PIECES: dict[tuple[Any, ...], tuple[list[Piece], bool]] = {}


def window_pieces(
    rows: tuple[int, int],
    cols: tuple[int, int],
    chunk: tuple[int, ...],
    shape: tuple[int, ...],
) -> tuple[list[Piece], bool]:
    """Pieces of a window on a chunk grid, and whether they cover all of it.

    Args:
        rows: First and last-plus-one row of the window (may extend beyond the array).
        cols: First and last-plus-one column.
        chunk: Chunk ``(height, width)``.
        shape: Array ``(height, width)``.

    Returns:
        The pieces, and False if parts of the window lie outside the array.
    """
    key = (rows, cols, chunk, shape)
    found = _PIECES.get(key)
    if found is None:
        found = _pieces(rows, cols, chunk[0], chunk[1], shape[0], shape[1])
        if len(_PIECES) >= 256:
            _PIECES.clear()
        _PIECES[key] = found
    return found


def _pieces(
    rows: tuple[int, int], cols: tuple[int, int], ch: int, cw: int, height: int, width: int
) -> tuple[list[Piece], bool]:
    r0, r1 = rows
    c0, c1 = cols
    cy, cx = r0 // ch, c0 // cw
    if (
        r0 >= 0
        and c0 >= 0
        and r1 <= height
        and c1 <= width
        and (r1 - 1) // ch == cy
        and (c1 - 1) // cw == cx
    ):  # inside one chunk: the common case for small windows
        y0, x0 = cy * ch, cx * cw
        return [
            (
                cy,
                cx,
                slice(r0 - y0, r1 - y0),
                slice(c0 - x0, c1 - x0),
                slice(0, r1 - r0),
                slice(0, c1 - c0),
            )
        ], True
    ir0, ir1 = max(r0, 0), min(r1, height)
    ic0, ic1 = max(c0, 0), min(c1, width)
    complete = (ir0, ir1, ic0, ic1) == (r0, r1, c0, c1)
    pieces = []
    if ir0 < ir1 and ic0 < ic1:
        for cy in range(ir0 // ch, (ir1 - 1) // ch + 1):
            ys, ye, y0 = max(ir0, cy * ch), min(ir1, cy * ch + ch), cy * ch
            for cx in range(ic0 // cw, (ic1 - 1) // cw + 1):
                xs, xe, x0 = max(ic0, cx * cw), min(ic1, cx * cw + cw), cx * cw
                pieces.append(
                    (
                        cy,
                        cx,
                        slice(ys - y0, ye - y0),
                        slice(xs - x0, xe - x0),
                        slice(ys - r0, ye - r0),
                        slice(xs - c0, xe - c0),
                    )
                )
    return pieces, complete


def paired(data: ChunkedArray, valid: ChunkedArray) -> bool:
    """True if ``data (time, band, y, x)`` and ``valid (time, y, x)`` share their chunk grid."""
    return (
        not data.split_middle
        and len(data.shape) == 4
        and len(valid.shape) == 3
        and data.chunks[0] == valid.chunks[0]
        and data.chunks[2:] == valid.chunks[1:]
        and data.shape[2:] == valid.shape[1:]
    )


def read_series(
    data: ChunkedArray,
    valid: ChunkedArray,
    image: np.ndarray,
    mask: np.ndarray,
    times: list[int],
    rows: tuple[int, int],
    cols: tuple[int, int],
    outside: Any,
    middle: np.ndarray | None = None,
    *,
    same_grid: bool | None = None,
) -> None:
    """Read a window of a modality's ``data (time, band, y, x)`` and ``valid (time, y, x)``.

    Both arrays share their chunk grid in a geoalign cube, so the window's pieces are worked out
    once and every date costs two lookups and two copies per piece (the sampling hot path).

    Args:
        data: Reader of ``data``.
        valid: Reader of ``valid``.
        image: Destination ``(len(times), bands, H, W)``.
        mask: Destination ``(len(times), H, W)``.
        times: Time indexes.
        rows: First and last-plus-one row (may extend beyond the arrays).
        cols: First and last-plus-one column.
        outside: Data value beyond the arrays' edges (validity is False there).
        middle: Band subset; None keeps all.
        same_grid: :func:`paired` of the two arrays, if the caller knows it already.
    """
    if not (paired(data, valid) if same_grid is None else same_grid):
        data.read_times_into(image, times, rows, cols, outside, middle)
        valid.read_times_into(mask, times, rows, cols, False)
        return
    pieces, complete = window_pieces(rows, cols, data.chunks[-2:], data.shape[-2:])
    if not complete:
        image[...] = outside
        mask[...] = False
    per_time = data.chunks[0]
    data_held, valid_held = data.held, valid.held
    band: Any = slice(None) if middle is None else middle
    for j, t in enumerate(times):
        t_chunk, t_in = divmod(t, per_time)
        for cy, cx, src_y, src_x, dst_y, dst_x in pieces:
            key = (t_chunk, 0, cy, cx)
            chunk = data_held.get(key, MISSING)
            if chunk is MISSING:
                chunk = data.chunk(key)
            if chunk is None:
                image[j, :, dst_y, dst_x] = data.fill_value
            else:
                image[j, :, dst_y, dst_x] = chunk[t_in, band, src_y, src_x]
            valid_key = (t_chunk, cy, cx)
            chunk = valid_held.get(valid_key, MISSING)
            if chunk is MISSING:
                chunk = valid.chunk(valid_key)
            if chunk is None:
                mask[j, dst_y, dst_x] = valid.fill_value
            else:
                mask[j, dst_y, dst_x] = chunk[t_in, src_y, src_x]
