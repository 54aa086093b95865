"""The Assistant an app serves: empty while it loads, failed, or replaced after a rebuild.

It has the part of `concurrent.futures.Future`'s interface the edges use (done, exception,
result, add_done_callback), plus `replace` for switching to a rebuilt index while serving.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from assistant.service import Assistant


class AssistantSlot:
    """Holds the served Assistant; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._assistant: Assistant | None = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[AssistantSlot], None]] = []

    def done(self) -> bool:
        """True once an Assistant or an error is set."""
        with self._lock:
            return self._assistant is not None or self._error is not None

    def exception(self) -> BaseException | None:
        """The start-up error, if loading failed."""
        with self._lock:
            return self._error

    def result(self) -> Assistant:
        """The served Assistant; raises the start-up error, or RuntimeError while loading."""
        with self._lock:
            if self._error is not None:
                raise self._error
            if self._assistant is None:
                raise RuntimeError("the assistant is still loading")
            return self._assistant

    def set_result(self, assistant: Assistant) -> None:
        """Serve this Assistant (first time, or instead of the current one)."""
        with self._lock:
            first = self._assistant is None and self._error is None
            self._assistant = assistant
            callbacks = list(self._callbacks) if first else []
        for callback in callbacks:
            callback(self)

    replace = set_result

    def set_exception(self, error: BaseException) -> None:
        """Record that loading failed."""
        with self._lock:
            self._error = error
            callbacks = list(self._callbacks)
        for callback in callbacks:
            callback(self)

    def add_done_callback(self, callback: Callable[[AssistantSlot], None]) -> None:
        """Call back once loading finished or failed (at once if it already has)."""
        with self._lock:
            if self._assistant is None and self._error is None:
                self._callbacks.append(callback)
                return
        callback(self)
