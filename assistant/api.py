"""HTTP routes over the Assistant: /healthz, /api/ask, /api/stream, /sources, /embed, /widget.js.

The chat UI (ui.py) is mounted on the same FastAPI app by the entry point. Secure by
default: `/embed` may only be framed by this origin and ASSISTANT_ALLOWED_ORIGINS, the API
answers CORS for exactly those origins and refuses other cross-origin calls, each client
gets ASSISTANT_RATE_LIMIT questions a minute, and request bodies are size-limited.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from assistant.admin import reingest, token_status, upload
from assistant.citations import Answer
from assistant.config import Settings
from assistant.conversation import Turn, parse_history
from assistant.errors import AssistantError, InputError, StoreUnavailableError, TooLargeError
from assistant.rendering import source_page
from assistant.service import Assistant
from assistant.slot import AssistantSlot

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).parent / "web"
API_MAX_BODY = 128 * 1024  # a question plus a long conversation fits easily
ANY_MAX_BODY = 4 * 1024 * 1024  # everything else, Gradio's routes included
MULTIPART_SLACK = 64 * 1024  # an upload's body may exceed its file's limit by the multipart headers
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.\-]+(:\d{1,5})?$|^https?://\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'"
)


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
            if len(self._events) > 10_000:  # forget idle clients so memory stays bounded
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


def allowed_origins(settings: Settings) -> tuple[str, ...]:
    """The configured origins that are well formed (scheme://host[:port]); others are dropped with a warning."""
    good = []
    for origin in settings.allowed_origins:
        if _ORIGIN.match(origin):
            good.append(origin)
        else:
            logger.warning("ASSISTANT_ALLOWED_ORIGINS: ignoring %r (expected e.g. https://example.org)", origin)
    return tuple(good)


def embed_csp(origins: Sequence[str]) -> str:
    """The Content-Security-Policy of /embed: our own resources only; framed by us and the allowed origins."""
    ancestors = " ".join(["'self'", *origins])
    return f"{_PAGE_CSP}; frame-ancestors {ancestors}"


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
        refusal = _error(413, f"the request body is over the {limit // 1024} KB limit")
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


def build_api(ready: AssistantSlot, settings: Settings, limiter: RateLimiter) -> FastAPI:
    """The FastAPI app with our routes; `ready` resolves to the Assistant once it is loaded."""
    app = FastAPI(title="Medical Director Onboarding Assistant", docs_url=None, redoc_url=None, openapi_url=None)
    origins = allowed_origins(settings)
    if origins:
        logger.info("widget: /embed and /api/ask allowed from this origin and %s", ", ".join(origins))
    else:
        logger.info("widget: ASSISTANT_ALLOWED_ORIGINS is empty, so /embed and /api/ask work from this origin only")
    # Gradio leaves CORS to the parent app when it has a CORSMiddleware: one policy everywhere.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    app.add_middleware(Guard, upload_limit=int(settings.max_file_mb * 1_000_000) + MULTIPART_SLACK)

    def assistant() -> Assistant | None:
        if not ready.done() or ready.exception() is not None:
            return None
        return ready.result()

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        current = assistant()
        if current is None:
            failed = ready.done() and ready.exception() is not None
            status = {"status": "error", "error": str(ready.exception())} if failed else {"status": "starting"}
            return JSONResponse(status, status_code=503)
        try:
            return JSONResponse(
                {"status": "ok", "chunks": current.chunk_count(), "query_encoder": current.embedder.query_backend}
            )
        except AssistantError as exc:  # e.g. the Chroma server went away
            return JSONResponse({"status": "error", "error": str(exc)}, status_code=503)

    def guarded(request: Request) -> Response | None:
        """A refusal for a cross-origin caller not allowed, or a client over its rate limit; else None."""
        origin = request.headers.get("origin")
        if origin and origin not in origins and urlsplit(origin).netloc != request.headers.get("host"):
            return _error(403, "this origin may not call the assistant; see ASSISTANT_ALLOWED_ORIGINS")
        client = client_key(request)
        if not limiter.allow(client):
            wait = limiter.retry_after(client)
            return _error(
                429,
                f"too many questions; please wait {wait} s and ask again",
                headers={"Retry-After": str(wait)},
            )
        return None

    async def read_question(request: Request) -> tuple[str, list[Turn]] | Response:
        refusal = guarded(request)
        if refusal is not None:
            return refusal
        body = await _read_limited(request, API_MAX_BODY)
        if body is None:
            return _error(413, f"the request body is over the {API_MAX_BODY // 1024} KB limit")
        try:
            return parse_ask(body)
        except InputError as exc:
            return _error(400, str(exc))

    @app.post("/api/ask")
    async def ask(request: Request) -> Response:
        parsed = await read_question(request)
        if isinstance(parsed, Response):
            return parsed
        current = assistant()
        if current is None:
            return _error(503, "the assistant is still starting; try again in a few seconds")
        try:
            answer = await run_in_threadpool(current.ask, *parsed)
        except InputError as exc:
            return _error(400, str(exc))
        except StoreUnavailableError as exc:
            return _error(503, str(exc))
        except AssistantError as exc:
            logger.error("answer failed: %s", exc)
            return _error(500, str(exc))
        return JSONResponse(answer.to_json())

    @app.post("/api/stream")
    async def stream(request: Request) -> Response:
        """The answer as NDJSON: {"type":"delta","text"} lines, then {"type":"answer","answer":{...}}."""
        parsed = await read_question(request)
        if isinstance(parsed, Response):
            return parsed
        current = assistant()
        if current is None:
            return _error(503, "the assistant is still starting; try again in a few seconds")
        events = current.stream(*parsed)
        try:
            first = await run_in_threadpool(next, events)
        except InputError as exc:
            return _error(400, str(exc))
        except StoreUnavailableError as exc:
            return _error(503, str(exc))
        except AssistantError as exc:
            logger.error("answer failed: %s", exc)
            return _error(500, str(exc))
        return StreamingResponse(
            iterate_in_threadpool(_ndjson(first, events)),
            media_type="application/x-ndjson",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/sources/{source:path}", response_class=HTMLResponse)
    def sources(source: str, highlight: str = "") -> Response:
        headers = {"Content-Security-Policy": f"{_PAGE_CSP}; frame-ancestors 'self'"}
        current = assistant()
        if current is None:
            return HTMLResponse(_message_page("Starting", "The assistant is starting."), 503, headers)
        try:
            found = current.document(source) if is_source_id(source) else None
        except StoreUnavailableError:
            return HTMLResponse(_message_page("Unavailable", "The guides cannot be read right now."), 503, headers)
        if found is None:
            page = _message_page("Not found", "There is no ingested guide at this address.")
            return HTMLResponse(page, 404, headers)
        record, text = found
        return HTMLResponse(source_page(record.source, record.title, text, highlight), headers=headers)

    @app.get("/embed")
    def embed() -> Response:
        return FileResponse(WEB_DIR / "embed.html", headers={"Content-Security-Policy": embed_csp(origins)})

    @app.get("/widget-demo")
    def widget_demo() -> Response:
        csp = _PAGE_CSP.replace("img-src", "frame-src 'self'; img-src") + "; frame-ancestors 'self'"
        return FileResponse(WEB_DIR / "widget-demo.html", headers={"Content-Security-Policy": csp})

    @app.get("/widget.js")
    def widget_js() -> Response:
        headers = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
        return FileResponse(WEB_DIR / "widget.js", media_type="text/javascript; charset=utf-8", headers=headers)

    def admin_target(request: Request) -> Assistant | Response:
        """The assistant an admin request acts on, or the response that refuses the request."""
        status = token_status(settings, request.headers.get("authorization"))
        if status == 404:
            return _error(404, "admin routes are disabled; set ASSISTANT_ADMIN_TOKEN to enable them")
        if status == 401:
            return _error(
                401, "a valid admin token is needed: Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
            )
        current = assistant()
        if current is None:
            return _error(503, "the assistant is still starting; try again in a few seconds")
        return current

    @app.post("/api/admin/ingest")
    async def admin_ingest(request: Request) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        body = await _read_limited(request, API_MAX_BODY)
        if body is None:
            return _error(413, f"the request body is over the {API_MAX_BODY // 1024} KB limit")
        try:
            payload = json.loads(body or b"{}")
            paths = payload.get("paths", []) if isinstance(payload, dict) else None
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise InputError('the body must be {} or {"paths": ["/folder/or/file", ...]}')
            report = await run_in_threadpool(reingest, current, [Path(p) for p in paths])
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, 'the body must be {} or {"paths": ["/folder/or/file", ...]}')
        except InputError as exc:
            return _error(400, str(exc))
        except AssistantError as exc:
            return _error(503, str(exc))
        return JSONResponse(report.to_json())

    @app.post("/api/admin/documents")
    async def admin_upload(request: Request) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        limit = int(settings.max_file_mb * 1_000_000)
        try:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                form = await request.form(max_files=1, max_fields=5, max_part_size=limit + MULTIPART_SLACK)
                upload_file = form.get("file")
                if upload_file is None or isinstance(upload_file, str):
                    raise InputError('send the guide as the multipart field "file"')
                name, data = upload_file.filename or "", await upload_file.read()
            else:
                name = request.query_params.get("filename", "")
                raw = await _read_limited(request, limit)
                if raw is None:
                    return _error(413, f"the file is over the {settings.max_file_mb:g} MB limit")
                data = raw
            report = await run_in_threadpool(upload, current, name, data)
        except TooLargeError as exc:
            return _error(413, str(exc))
        except InputError as exc:
            return _error(400, str(exc))
        except AssistantError as exc:
            return _error(503, str(exc))
        except Exception as exc:  # a malformed multipart body
            logger.warning("admin upload refused: %s", type(exc).__name__)
            return _error(400, 'the upload could not be read; send multipart/form-data with a "file" field')
        return JSONResponse(report.to_json())

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
    return app


def client_key(request: Request) -> str:
    """Who a request counts against for rate limiting: the peer address (proxies are not trusted)."""
    return request.client.host if request.client else "unknown"


def is_source_id(source: str) -> bool:
    """Whether a /sources/ path could be an ingested source id: relative, no `..`, no odd characters."""
    if not source or source.startswith(("/", "\\")) or "\\" in source or "\x00" in source:
        return False
    parts = source.split("/")
    return not any(part in ("", ".", "..") for part in parts) and ":" not in parts[0]


def parse_ask(body: bytes) -> tuple[str, list[Turn]]:
    """The question and history of an /api/ask body; InputError saying what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError('the body must be JSON: {"question": "...", "history": [...]}') from None
    if not isinstance(data, dict):
        raise InputError('the body must be a JSON object: {"question": "...", "history": [...]}')
    question = data.get("question")
    if not isinstance(question, str):
        raise InputError('"question" must be a string')
    return question, parse_history(data.get("history", []))


def _ndjson(first: str | Answer, events: Iterator[str | Answer]) -> Iterator[str]:
    def line(event: str | Answer) -> str:
        if isinstance(event, Answer):
            return json.dumps({"type": "answer", "answer": event.to_json()}, ensure_ascii=False) + "\n"
        return json.dumps({"type": "delta", "text": event}, ensure_ascii=False) + "\n"

    yield line(first)
    try:
        for event in events:
            yield line(event)
    except AssistantError as exc:
        logger.warning("stream failed: %s", exc)
        yield json.dumps({"type": "error", "error": str(exc)}) + "\n"


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it grows over `limit` bytes (chunked bodies included)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _message_page(title: str, message: str) -> str:
    # Only constant text reaches this page: nothing from the request is echoed.
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        '<link rel="stylesheet" href="/web/source.css"></head>'
        f'<body><header class="bar"><a href="/">← Ask the assistant</a></header><main><p>{message}</p></main></body></html>'
    )
