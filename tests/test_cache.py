"""The retriever's record cache: bounded by bytes, least recently used out first, emptied by index changes."""

from __future__ import annotations

import threading

import numpy as np

from assistant.retrieval.cache import ENTRY_OVERHEAD, LruCache


def _reader(values: dict[str, bytes], calls: list[list[str]]):  # type: ignore[no-untyped-def]
    def read(ids: list[str]) -> dict[str, bytes]:
        calls.append(list(ids))
        return {i: values[i] for i in ids if i in values}

    return read


def test_only_the_ids_not_cached_are_read_and_in_one_call() -> None:
    values = {"a": b"1" * 10, "b": b"2" * 10, "c": b"3" * 10}
    calls: list[list[str]] = []
    cache: LruCache[bytes] = LruCache(10_000, len)
    assert cache.get_many(["a", "b"], _reader(values, calls)) == {"a": values["a"], "b": values["b"]}
    assert cache.get_many(["b", "c", "unknown", "c"], _reader(values, calls)) == {"b": values["b"], "c": values["c"]}
    assert calls == [["a", "b"], ["c", "unknown"]]
    assert (cache.hits, cache.misses) == (1, 4)
    assert len(cache) == 3  # an unknown id is not remembered as anything


def test_the_least_recently_used_go_first_when_the_budget_is_passed() -> None:
    cache: LruCache[bytes] = LruCache(3 * (100 + ENTRY_OVERHEAD), len)
    cache.put([(k, b"x" * 100) for k in "abc"])
    cache.get_many(["a"], lambda ids: {})  # a is now the most recently used
    cache.put([("d", b"x" * 100)])
    calls: list[list[str]] = []
    found = cache.get_many(["a", "b", "c", "d"], _reader({}, calls))
    assert sorted(found) == ["a", "c", "d"] and calls == [["b"]]
    assert cache.bytes <= cache.max_bytes


def test_a_value_larger_than_the_budget_or_a_zero_budget_keeps_nothing() -> None:
    small: LruCache[bytes] = LruCache(50, len)
    small.put([("big", b"x" * 100)])
    off: LruCache[bytes] = LruCache(0, len)
    off.put([("a", b"x")])
    assert len(small) == 0 and len(off) == 0 and small.bytes == 0


def test_a_read_begun_before_a_clear_is_not_kept_after_it() -> None:
    cache: LruCache[np.ndarray] = LruCache(10_000, lambda v: int(v.nbytes))
    reading, cleared = threading.Event(), threading.Event()

    def slow_read(ids: list[str]) -> dict[str, np.ndarray]:
        reading.set()
        cleared.wait(5)
        return {i: np.zeros(4, np.float32) for i in ids}  # what the index held before the change

    worker = threading.Thread(target=lambda: cache.get_many(["old"], slow_read))
    worker.start()
    reading.wait(5)
    cache.clear()  # the index changed while the read was under way
    cleared.set()
    worker.join(5)
    assert len(cache) == 0
