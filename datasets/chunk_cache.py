"""A process's budget for the chunks that cube readers hold (memory maps or decoded arrays).

Each :class:`~geoalign.datasets.chunks.ChunkedArray` keeps its chunks in its own dictionary, so
a cache hit on the sampling path is a single dictionary lookup (measured: the ordered,
locked least-recently-used store used first cost 3-4 us per chunk read, a third of a small
window's whole read). This cache only records the order in which chunks were added and their
bytes, across every array of the process, and drops the oldest ones beyond the budget (first in,
first out: for random windows over an area larger than the budget it behaves like LRU, and when
the area fits, nothing is ever dropped). Mapped chunks cost address space, not memory: their
pages belong to the kernel's page cache; decoded chunks of compressed stores cost memory.

There is one cache per process (:func:`default_cache`). A forked DataLoader worker inherits its
parent's maps (read-only, valid in the child) and adds its own from then on; a spawned worker
starts empty (readers drop their chunks when pickled).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from collections.abc import Hashable
from typing import Any

import numpy as np

#: Default budget of a process's chunk cache in bytes (``GEOALIGN_CHUNK_CACHE_MB`` overrides).
DEFAULT_CACHE_BYTES = 2 * 1024**3
#: At most this many chunks (each map takes one of the kernel's ~65,000 per process).
DEFAULT_MAX_CHUNKS = 32_768


#: Marks a chunk not read yet (None marks a chunk absent from the store: all fill value).
MISSING = object()


class ChunkStore(dict[Hashable, Any]):
    """The chunks of one array: chunk coordinates -> array (or None: never written)."""

    __slots__ = ("__weakref__",)


class ChunkCache:
    """Bytes and order of the chunks held by every reader of the process; drops the oldest.

    Args:
        max_bytes: Budget in bytes.
        max_chunks: Budget in number of chunks.
    """

    def __init__(
        self, max_bytes: int = DEFAULT_CACHE_BYTES, max_chunks: int = DEFAULT_MAX_CHUNKS
    ) -> None:
        self.max_bytes = max_bytes
        self.max_chunks = max_chunks
        self._order: deque[tuple[weakref.ref[ChunkStore], Hashable, int]] = deque()
        self._stores: weakref.WeakValueDictionary[int, ChunkStore] = weakref.WeakValueDictionary()
        self._bytes = 0
        self._lock = threading.Lock()

    def add(self, store: ChunkStore, key: Hashable, chunk: np.ndarray | None) -> None:
        """Put ``chunk`` in ``store`` and drop the oldest chunks beyond the budget."""
        size = 0 if chunk is None else int(chunk.nbytes)
        with self._lock:
            if key in store:
                return
            store[key] = chunk
            self._stores[id(store)] = store
            self._order.append((weakref.ref(store), key, size))
            self._bytes += size
            while len(self._order) > 1 and (
                self._bytes > self.max_bytes or len(self._order) > self.max_chunks
            ):
                ref, old_key, old_size = self._order.popleft()
                self._bytes -= old_size
                holder = ref()
                if holder is not None:
                    holder.pop(old_key, None)

    def clear(self) -> None:
        """Drop every chunk of every reader (maps close once no array refers to them)."""
        with self._lock:
            for store in list(self._stores.values()):
                store.clear()
            self._order.clear()
            self._bytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes of the chunks held (including those of readers already gone)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._order)


_CACHE: list[ChunkCache] = []


def default_cache() -> ChunkCache:
    """The chunk cache of this process (inherited by forked DataLoader workers)."""
    if not _CACHE:
        budget = os.environ.get("GEOALIGN_CHUNK_CACHE_MB")
        _CACHE.append(ChunkCache(int(budget) * 1024**2 if budget else DEFAULT_CACHE_BYTES))
    return _CACHE[0]
