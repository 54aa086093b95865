"""HTTP routes over the Assistant: /healthz, /api/ask, /api/stream, /sources, /embed, /widget.js.

The chat UI (ui.py) is mounted on the same FastAPI app by the entry point once gradio is
loaded; until then `/` is a page saying the chat is starting. Secure by
default: `/embed` may only be framed by this origin and ASSISTANT_ALLOWED_ORIGINS, the API
answers CORS for exactly those origins and refuses other cross-origin calls, each client
gets ASSISTANT_RATE_LIMIT questions a minute, and request bodies are size-limited.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.staticfiles import StaticFiles

from assistant.answering.citations import Answer
from assistant.answering.conversation import Turn, parse_history
from assistant.config import Settings
from assistant.errors import AssistantError, InputError, StoreUnavailableError
from assistant.service import Assistant
from assistant.slot import AssistantSlot
from assistant.web.admin import delete_document, is_source_id, list_documents, reingest, token_status, upload
from assistant.web.failures import error_response, install_error_handler
from assistant.web.journal import Journal
from assistant.web.middleware import (
    API_MAX_BODY,
    MULTIPART_SLACK,
    Guard,
    RateLimiter,
    allowed_origins,
    client_key,
)
from assistant.web.rendering import source_page
from assistant.web.review import after_change, gaps_report

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
_PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'"
)


def embed_csp(origins: Sequence[str]) -> str:
    """The Content-Security-Policy of /embed: our own resources only; framed by us and the allowed origins."""
    ancestors = " ".join(["'self'", *origins])
    return f"{_PAGE_CSP}; frame-ancestors {ancestors}"


def build_api(ready: AssistantSlot, settings: Settings, limiter: RateLimiter, journal: Journal) -> FastAPI:
    """The FastAPI app with our routes; `ready` resolves to the Assistant once it is loaded.

    `journal` logs each answered question (its id comes back as the answer's `id`, which
    POST /api/feedback rates) and keeps the admin history.
    """
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
        allow_methods=["GET", "POST", "DELETE"],
        allow_headers=["Content-Type"],
        max_age=600,
    )
    app.add_middleware(Guard, upload_limit=int(settings.max_file_mb * 1_000_000) + MULTIPART_SLACK)
    install_error_handler(app)
    app.state.ui_ready = False  # set by ui.serve_mounted, whose mount then answers `/`

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
                {
                    "status": "ok",
                    "chunks": current.chunk_count(),
                    "query_encoder": current.embedder.query_backend,
                    "ui": "ready" if app.state.ui_ready else "starting",
                }
            )
        except AssistantError as exc:  # e.g. the Chroma server went away
            return JSONResponse({"status": "error", "error": str(exc)}, status_code=503)

    # Ratings have a budget of their own: rating the answers one got must not use up one's questions.
    rating_limiter = RateLimiter(limiter.limit, limiter.window)

    def guarded(request: Request, budget: RateLimiter = limiter, what: str = "questions") -> Response | None:
        """A refusal for a cross-origin caller not allowed, or a client over its rate limit; else None."""
        origin = request.headers.get("origin")
        if origin and origin not in origins and urlsplit(origin).netloc != request.headers.get("host"):
            return error_response(403, "this origin may not call the assistant; see ASSISTANT_ALLOWED_ORIGINS")
        client = client_key(request)
        if not budget.allow(client):
            wait = budget.retry_after(client)
            return error_response(
                429,
                f"too many {what}; please wait {wait} s and try again",
                headers={"Retry-After": str(wait)},
            )
        return None

    async def read_question(request: Request) -> tuple[str, list[Turn]] | Response:
        refusal = guarded(request)
        if refusal is not None:
            return refusal
        body = await _read_limited(request, API_MAX_BODY)
        if body is None:
            return error_response(413, f"the request body is over the {API_MAX_BODY // 1024} KB limit")
        return parse_ask(body)

    @app.post("/api/ask")
    async def ask(request: Request) -> Response:
        parsed = await read_question(request)
        if isinstance(parsed, Response):
            return parsed
        current = assistant()
        if current is None:
            return error_response(503, "the assistant is still starting; try again in a few seconds")
        started = time.perf_counter()
        answer = await run_in_threadpool(current.ask, *parsed)
        return JSONResponse(await run_in_threadpool(journal.answered, answer, started, "api"))

    @app.post("/api/stream")
    async def stream(request: Request) -> Response:
        """The answer as NDJSON: {"type":"delta","text"} lines, then {"type":"answer","answer":{...}}."""
        parsed = await read_question(request)
        if isinstance(parsed, Response):
            return parsed
        current = assistant()
        if current is None:
            return error_response(503, "the assistant is still starting; try again in a few seconds")
        started = time.perf_counter()
        events = current.stream(*parsed)
        first = await run_in_threadpool(next, events)
        return StreamingResponse(
            iterate_in_threadpool(_ndjson(first, events, lambda answer: journal.answered(answer, started, "widget"))),
            media_type="application/x-ndjson",
            headers={"Cache-Control": "no-store"},
        )

    @app.post("/api/feedback")
    async def feedback(request: Request) -> Response:
        """Rate a logged answer: {"id": answer's id, "rating": "like" | "dislike"}."""
        refusal = guarded(request, rating_limiter, "ratings")
        if refusal is not None:
            return refusal
        body = await _read_limited(request, API_MAX_BODY)
        if body is None:
            return error_response(413, f"the request body is over the {API_MAX_BODY // 1024} KB limit")
        question_id, rating = parse_feedback(body)
        await run_in_threadpool(journal.rate, question_id, rating, "api")
        return JSONResponse({"ok": True})

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
        return FileResponse(STATIC_DIR / "embed.html", headers={"Content-Security-Policy": embed_csp(origins)})

    @app.get("/widget-demo")
    def widget_demo() -> Response:
        csp = _PAGE_CSP.replace("img-src", "frame-src 'self'; img-src") + "; frame-ancestors 'self'"
        return FileResponse(STATIC_DIR / "widget-demo.html", headers={"Content-Security-Policy": csp})

    @app.get("/widget.js")
    def widget_js() -> Response:
        headers = {"Cache-Control": "public, max-age=300", "Cross-Origin-Resource-Policy": "cross-origin"}
        return FileResponse(STATIC_DIR / "widget.js", media_type="text/javascript; charset=utf-8", headers=headers)

    def admin_target(request: Request) -> Assistant | Response:
        """The assistant an admin request acts on, or the response that refuses the request."""
        status = token_status(settings, request.headers.get("authorization"))
        if status == 404:
            return error_response(404, "admin routes are disabled; set ASSISTANT_ADMIN_TOKEN to enable them")
        if status == 401:
            return error_response(
                401, "a valid admin token is needed: Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"}
            )
        current = assistant()
        if current is None:
            return error_response(503, "the assistant is still starting; try again in a few seconds")
        return current

    @app.post("/api/admin/ingest")
    async def admin_ingest(request: Request) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        body = await _read_limited(request, API_MAX_BODY)
        if body is None:
            return error_response(413, f"the request body is over the {API_MAX_BODY // 1024} KB limit")
        try:
            payload = json.loads(body or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError):
            payload = None
        paths = payload.get("paths", []) if isinstance(payload, dict) else None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InputError('the body must be {} or {"paths": ["/folder/or/file", ...]}')
        report = await run_in_threadpool(reingest, current, [Path(p) for p in paths])
        summary = await run_in_threadpool(after_change, current, journal.database, "ingest", report.to_json())
        return JSONResponse(summary)

    @app.post("/api/admin/documents")
    async def admin_upload(request: Request) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        limit = int(settings.max_file_mb * 1_000_000)
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            try:
                form = await request.form(max_files=1, max_fields=5, max_part_size=limit + MULTIPART_SLACK)
                upload_file = form.get("file")
                if upload_file is None or isinstance(upload_file, str):
                    raise InputError('send the guide as the multipart field "file"')
                name, data = upload_file.filename or "", await upload_file.read()
            except AssistantError:
                raise
            except Exception as exc:  # a malformed multipart body; starlette's errors have no common base
                logger.warning("admin upload refused: %s", type(exc).__name__)
                raise InputError('the upload could not be read; send multipart/form-data with a "file" field') from exc
        else:
            name = request.query_params.get("filename", "")
            raw = await _read_limited(request, limit)
            if raw is None:
                return error_response(413, f"the file is over the {settings.max_file_mb:g} MB limit")
            data = raw
        report = await run_in_threadpool(upload, current, name, data)
        summary = await run_in_threadpool(after_change, current, journal.database, "upload", report.to_json())
        return JSONResponse(summary)

    @app.get("/api/admin/documents")
    async def admin_documents(request: Request) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        return JSONResponse({"documents": await run_in_threadpool(list_documents, current)})

    @app.delete("/api/admin/documents/{source:path}")
    async def admin_delete(request: Request, source: str) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        removed = await run_in_threadpool(delete_document, current, source)
        summary = await run_in_threadpool(after_change, current, journal.database, "delete", removed)
        return JSONResponse(summary)

    @app.get("/api/admin/gaps")
    async def admin_gaps(request: Request) -> Response:
        current = admin_target(request)
        if isinstance(current, Response):
            return current
        return JSONResponse(await run_in_threadpool(gaps_report, current, journal.database))

    @app.get("/", include_in_schema=False)
    def starting() -> Response:
        """The chat is still loading (the API already answers): a page that reloads itself."""
        page = _message_page("Starting", "The chat is starting; this page reloads in a moment.", reload_seconds=2)
        return HTMLResponse(page, 503, {"Retry-After": "2", "Cache-Control": "no-store"})

    app.mount("/web", StaticFiles(directory=STATIC_DIR), name="web")
    return app


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


def parse_feedback(body: bytes) -> tuple[str, str]:
    """The answer id and rating of a /api/feedback body; InputError saying what is wrong."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str) or not isinstance(data.get("rating"), str):
        raise InputError('the body must be {"id": "<the answer\'s id>", "rating": "like" or "dislike"}')
    return data["id"][:64], data["rating"]


def _ndjson(
    first: str | Answer, events: Iterator[str | Answer], finish: Callable[[Answer], dict[str, Any]]
) -> Iterator[str]:
    def line(event: str | Answer) -> str:
        if isinstance(event, Answer):
            return json.dumps({"type": "answer", "answer": finish(event)}, ensure_ascii=False) + "\n"
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


def _message_page(title: str, message: str, reload_seconds: int = 0) -> str:
    # Only constant text reaches this page: nothing from the request is echoed.
    refresh = f'<meta http-equiv="refresh" content="{reload_seconds}">' if reload_seconds else ""
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}<title>{title}</title>'
        '<link rel="stylesheet" href="/web/source.css"></head>'
        f'<body><header class="bar"><a href="/">← Ask the assistant</a></header><main><p>{message}</p></main></body></html>'
    )
