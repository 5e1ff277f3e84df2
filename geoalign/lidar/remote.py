"""Read remote point clouds with HTTP range requests, as a seekable binary file.

:class:`RangeFile` fetches only the byte ranges a reader asks for (``Range: bytes=a-b``), so a
COPC bounds query over HTTP downloads the header, the hierarchy pages and the octree nodes that
intersect the query, never the whole file. It refuses servers that ignore ``Range`` (a ``200``
with the whole body for a partial request), which would otherwise silently download everything.
"""

from __future__ import annotations

import io
from typing import Any

import requests

from geoalign.errors import CorruptDataError, DataFileNotFoundError

#: Read-ahead of the file returned by :func:`open_remote`: header and VLR reads are small; larger
#: reads (COPC nodes, LAZ chunks) go straight to one range request each.
BUFFER_BYTES = 1 << 14


def is_remote(href: str) -> bool:
    """True for ``http://`` and ``https://`` hrefs."""
    return href.startswith(("http://", "https://"))


class RangeFile(io.RawIOBase):
    """A read-only, seekable file over HTTP range requests.

    Attributes:
        url: The remote file.
        size: Its length in bytes (from ``Content-Range`` or ``Content-Length``).
        requests_made: Range requests sent so far (for tests and logs).
        bytes_fetched: Body bytes received so far.
    """

    def __init__(self, url: str, *, timeout: float = 30.0, session: Any = None) -> None:
        super().__init__()
        self.url = url
        self._timeout = timeout
        self._session = session or requests.Session()
        self._position = 0
        self.requests_made = 0
        self.bytes_fetched = 0
        self.size = self._probe_size()

    def _get(self, start: int, end: int) -> requests.Response:
        self.requests_made += 1
        try:
            response = self._session.get(
                self.url, headers={"Range": f"bytes={start}-{end}"}, timeout=self._timeout
            )
        except requests.RequestException as error:
            raise CorruptDataError(
                f"cannot read {self.url} over HTTP ({error}): check the URL and the network"
            ) from error
        if response.status_code == 404:
            raise DataFileNotFoundError(f"{self.url} does not exist (HTTP 404): check the href")
        if response.status_code == 416:
            return response
        if response.status_code != 206:
            raise CorruptDataError(
                f"{self.url} answered HTTP {response.status_code} to a range request (206 "
                "expected): the server must support byte ranges; download the file and read "
                "it locally instead"
            )
        return response

    def _probe_size(self) -> int:
        response = self._get(0, 0)
        content_range = response.headers.get("Content-Range", "")
        total = content_range.rpartition("/")[2]
        if total.isdigit():
            return int(total)
        raise CorruptDataError(
            f"{self.url} did not say its size (Content-Range {content_range!r}): the server "
            "must support byte ranges"
        )

    def readable(self) -> bool:
        """Always True."""
        return True

    def seekable(self) -> bool:
        """Always True."""
        return True

    def tell(self) -> int:
        """Current position in bytes."""
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move to ``offset`` (from the start, the current position or the end)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position with one range request."""
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), self.size - self._position)
        if wanted <= 0:
            return 0
        response = self._get(self._position, self._position + wanted - 1)
        body = response.content
        got = min(len(body), wanted)
        view[:got] = body[:got]
        self._position += got
        self.bytes_fetched += got
        return got

    def close(self) -> None:
        """Close the HTTP session."""
        if not self.closed:
            self._session.close()
        super().close()


def open_remote(url: str, *, timeout: float = 30.0) -> io.BufferedReader:
    """A buffered, seekable binary file over HTTP range requests (see :class:`RangeFile`).

    Raises:
        DataFileNotFoundError: HTTP 404.
        CorruptDataError: The server is unreachable or does not support byte ranges.
    """
    return io.BufferedReader(RangeFile(url, timeout=timeout), buffer_size=BUFFER_BYTES)
