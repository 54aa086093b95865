"""Middleware and request policy of the web edge: body limits, security headers, origins, rate limits."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.config import Settings
from assistant.web.failures import error_response

logger = logging.getLogger(__name__)

API_MAX_BODY = 128 * 1024  # a question plus a long conversation fits easily
ANY_MAX_BODY = 4 * 1024 * 1024  # everything else, Gradio's routes included
MULTIPART_SLACK = 64 * 1024  # an upload's body may exceed its file's limit by the multipart headers
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
MAX_TRACKED_CLIENTS = 10_000  # past this many, idle clients are forgotten so memory stays bounded


class RateLimiter:
    """At most `limit` events per client in any `window`-second span (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Count one event for the client; False when it is over the limit (the event is not counted)."""
        now = self.clock()
        with self._lock:
            if len(self._events) > MAX_TRACKED_CLIENTS:
                self._events = {k: v for k, v in self._events.items() if v and v[-1] > now - self.window}
            events = self._events.setdefault(client, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True

    def retry_after(self, client: str) -> int:
        """Seconds until the client may ask again."""
        with self._lock:
            events = self._events.get(client)
            if not events:
                return 0
            return max(1, int(events[0] + self.window - self.clock()) + 1)


def client_key(request: Request) -> str:
    """Who a request counts against for rate limiting: the peer address (proxies are not trusted)."""
    return request.client.host if request.client else "unknown"


def allowed_origins(settings: Settings) -> tuple[str, ...]:
    """The configured origins that are well formed (scheme://host[:port]); others are dropped with a warning."""
    good = []
    for origin in settings.allowed_origins:
        if _ORIGIN.match(origin):
            good.append(origin)
        else:
            logger.warning("ASSISTANT_ALLOWED_ORIGINS: ignoring %r (expected e.g. https://example.org)", origin)
    return tuple(good)


class Guard:
    """ASGI middleware: refuse oversized bodies (413) and add security headers to every response.

    A body is measured twice: by its Content-Length header before the route runs, and byte by
    byte as it arrives, so a chunked body (no Content-Length) cannot slip past the limit. Admin
    uploads (the API route and the Admin tab's Gradio upload) get the guide-size limit.
    """

    UPLOAD_PATHS = ("/api/admin/documents", "/gradio_api/upload")

    def __init__(self, app: ASGIApp, upload_limit: int = ANY_MAX_BODY) -> None:
        self.app = app
        self.upload_limit = upload_limit

    def limit_for(self, path: str) -> int:
        if path in self.UPLOAD_PATHS:
            return self.upload_limit
        return API_MAX_BODY if path.startswith("/api/") else ANY_MAX_BODY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        refusal = error_response(413, f"the request body is over the {limit // 1024} KB limit")
        length = dict(scope["headers"]).get(b"content-length", b"0")
        if not length.isdigit() or int(length) > limit:
            await refusal(scope, receive, send)
            return
        received = 0
        too_large = started = False

        async def receive_limited() -> Message:
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # the route sees a client that went away; we answer 413
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if too_large and not started:
                return  # the 413 below is the response
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                headers.append((b"referrer-policy", b"same-origin"))
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", b"frame-ancestors 'self'"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive_limited, send_with_headers)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            logger.warning("refused a %s body over %d bytes without a Content-Length", scope["path"], limit)
            started = True
            await refusal(scope, receive, send_with_headers)
