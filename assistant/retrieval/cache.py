"""A bounded in-memory cache of chunk records and vectors read from the index.

Retrieval reads the full records (token and sentence vectors) of the ~30 chunks it re-scores
and the vectors of keyword-only candidates. From Chroma that is two or three reads and a
base64 decode per question, about half of retrieval's time at 1,000 guides (docs/benchmarks.md).
Popular chunks come back question after question, so the decoded values are kept here, least
recently used dropped first once `max_bytes` is reached.

Entries never go stale by themselves, but the retriever empties the cache whenever the index's
generation moves (a re-ingest may rewrite a chunk id), so a value read here is always the
index's current one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from typing import Generic, TypeVar

Value = TypeVar("Value")
ENTRY_OVERHEAD = 200  # bytes of bookkeeping per entry (key, node, object headers), roughly


class LruCache(Generic[Value]):
    """Values by id, least recently used dropped first when their sizes pass `max_bytes`.

    Example::

        cache = LruCache(64 * 2**20, size=lambda v: v.nbytes)
        found = cache.get_many(ids, read=store.get_vectors)
    """

    def __init__(self, max_bytes: int, size: Callable[[Value], int]) -> None:
        self.max_bytes = max_bytes
        self._size = size
        self._entries: OrderedDict[str, tuple[Value, int]] = OrderedDict()
        self._bytes = 0
        self._epoch = 0  # moved by clear(), so a read begun before it is not kept after it
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> list[str]:
        """The ids held, least recently used first."""
        with self._lock:
            return list(self._entries)

    @property
    def bytes(self) -> int:
        """Approximate bytes held."""
        return self._bytes

    def get_many(self, ids: Sequence[str], read: Callable[[list[str]], dict[str, Value]]) -> dict[str, Value]:
        """The values of `ids` (unknown ids left out): cached ones, then the rest from `read` in one call."""
        found: dict[str, Value] = {}
        with self._lock:
            epoch = self._epoch
            for key in ids:
                entry = self._entries.get(key)
                if entry is not None:
                    self._entries.move_to_end(key)
                    found[key] = entry[0]
            self.hits += len(found)
        missing = [key for key in dict.fromkeys(ids) if key not in found]
        if missing:
            fetched = read(missing)
            self.put(fetched.items(), epoch)
            found.update(fetched)
            with self._lock:
                self.misses += len(missing)
        return found

    def put(self, items: Iterable[tuple[str, Value]], epoch: int | None = None) -> None:
        """Keep these values, dropping the least recently used beyond the budget; none if the
        cache was cleared since `epoch` (values read before a change of the index)."""
        if self.max_bytes <= 0:
            return
        with self._lock:
            if epoch is not None and epoch != self._epoch:
                return
            for key, value in items:
                size = self._size(value) + ENTRY_OVERHEAD
                if size > self.max_bytes:
                    continue
                old = self._entries.pop(key, None)
                if old is not None:
                    self._bytes -= old[1]
                self._entries[key] = (value, size)
                self._bytes += size
            while self._bytes > self.max_bytes and self._entries:
                _, (_, size) = self._entries.popitem(last=False)
                self._bytes -= size

    def clear(self) -> None:
        """Drop every entry (the index changed)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0
            self._epoch += 1
