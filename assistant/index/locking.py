"""An advisory file lock so only one process writes an embedded index at a time.

`write_lock` guards one ingest. The app instead `hold`s the lock for its whole life (its own
ingests then go through), so a separate `python ingest.py` sees the index busy and hands its
job to the app or waits.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import IndexBusyError

logger = logging.getLogger(__name__)

_HELD: dict[str, int] = {}  # index folder -> open descriptor holding its lock, in this process
_HELD_LOCK = threading.Lock()


def _acquire(index_dir: Path, wait_seconds: float) -> int:
    index_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(index_dir / ".write.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait_seconds
    announced = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                raise IndexBusyError(
                    f"another process is writing the index at {index_dir}/ "
                    "(an ingest, or the app serving it); wait for it or use the app's admin API"
                ) from None
            if not announced:
                logger.warning("index %s is busy; waiting up to %.0f s", index_dir, wait_seconds)
                announced = True
            time.sleep(0.2)


def _key(index_dir: Path) -> str:
    return str(index_dir.resolve())


@contextlib.contextmanager
def write_lock(index_dir: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold `index_dir/.write.lock` for a block; a no-op where this process already holds it."""
    with _HELD_LOCK:
        held = _key(index_dir) in _HELD
    if held:
        yield
        return
    fd = _acquire(index_dir, wait_seconds)
    try:
        yield
    finally:
        os.close(fd)


def hold(index_dir: Path, wait_seconds: float = 0.0) -> None:
    """Take the lock until `release` (or the process ends)."""
    with _HELD_LOCK:
        if _key(index_dir) not in _HELD:
            _HELD[_key(index_dir)] = _acquire(index_dir, wait_seconds)


def release(index_dir: Path) -> None:
    """Give back a lock taken with `hold`."""
    with _HELD_LOCK:
        fd = _HELD.pop(_key(index_dir), None)
    if fd is not None:
        os.close(fd)


def holds(index_dir: Path) -> bool:
    """True when this process holds the index's lock through `hold`."""
    with _HELD_LOCK:
        return _key(index_dir) in _HELD
