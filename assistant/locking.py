"""An advisory file lock so only one process writes an embedded index at a time."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

from assistant.errors import IndexBusyError

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def write_lock(index_dir: Path, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold `index_dir/.write.lock`; wait up to wait_seconds, then raise IndexBusyError."""
    index_dir.mkdir(parents=True, exist_ok=True)
    path = index_dir / ".write.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexBusyError(
                        f"another process is writing the index at {index_dir}/ "
                        "(an ingest, or the app serving it); wait for it or use the app's admin API"
                    ) from None
                if not announced:
                    logger.warning("index %s is busy; waiting up to %.0f s", index_dir, wait_seconds)
                    announced = True
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)
