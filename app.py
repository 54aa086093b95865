"""Serve the chat, the HTTP API and the widget: `python app.py [--host H] [--port P] [--index DIR]`.

The server answers at once; the Assistant loads in the background (GET /healthz is 503
"starting" until then). With no index, the corpus is ingested first, with progress in the
terminal; with one, an incremental sync picks up changed guides (a fraction of a second
when nothing changed). Exit status: 0 after a clean shutdown; 2 usage error; 3 the
Assistant could not be loaded (e.g. the Chroma server does not answer).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.logsetup import configure_logging, offline_environment

if TYPE_CHECKING:
    from assistant.records.database import Database
    from assistant.slot import AssistantSlot

logger = logging.getLogger("app")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py", description="Serve the Medical Director Onboarding Assistant.")
    parser.add_argument("--host", help="interface to listen on (default: ASSISTANT_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: ASSISTANT_PORT or 7860)")
    parser.add_argument("--index", type=Path, help="index folder (default: ASSISTANT_INDEX_DIR or .index/)")
    parser.add_argument("--no-sync", action="store_true", help="serve the index as it is; skip the start-up sync")
    parser.add_argument("--verbose", action="store_true", help="log debug details")
    return parser.parse_args(argv)


def load_assistant(settings: Any, ready: AssistantSlot, sync: bool) -> None:
    """Open (or first build) the index and put the Assistant in `ready`, or the error.

    With a new embedding model or chunking, the old index serves while the new one is built,
    and the app switches when it is complete (assistant/migration.py).
    """
    started = time.perf_counter()
    try:
        from assistant.index.locking import holds
        from assistant.web.admin import announce_app

        assistant, rebuild = _open(settings, sync)
        assistant.embedder.embed_query("What does a medical director do?")  # ready means fast answers
        ready.set_result(assistant)
        # the keyword index and the record cache, now rather than at the first question (1.7 s and
        # 0.8 s at 1,000 guides); a question asked meanwhile waits for the keyword index only
        assistant.retriever.refresh()
        if not settings.uses_chroma_server and holds(Path(settings.index_dir)):
            announce_app(Path(settings.index_dir), f"http://{settings.host}:{settings.port}")
        logger.info(
            "ready: %d chunks in the index, questions embedded with %s (%.1f s)",
            assistant.chunk_count(),
            assistant.embedder.query_backend,
            time.perf_counter() - started,
        )
        if rebuild is not None:
            logger.info("building the index for the new settings in the background; the old one serves meanwhile")
            new = rebuild()
            new.serving = True
            ready.replace(new)
            logger.info("switched to the rebuilt index: %d chunks", new.chunk_count())
    except Exception as exc:
        logger.error("cannot start the assistant: %s", exc)
        if not ready.done():
            ready.set_exception(exc)


def _open(settings: Any, sync: bool) -> tuple[Any, Any]:
    """The Assistant to serve and the rebuild to run (or None); takes the index's write lock if free."""
    from assistant.errors import IndexBusyError
    from assistant.migration import plan

    opened = plan(settings)
    assistant = opened.serving
    assistant.serving = True
    try:
        assistant.hold_index()
    except IndexBusyError:
        if assistant.store.generation() == 0:  # nothing to serve yet: wait for the other writer
            assistant.hold_index(wait_seconds=600)
        else:
            logger.warning("another process writes %s: serving it as it is (no start-up sync)", settings.index_dir)
            return assistant, None
    if opened.rebuild is not None:
        return assistant, opened.rebuild
    if assistant.store.generation() == 0:
        logger.info("no index at %s yet: ingesting %s first", settings.index_dir, settings.corpus_dir)
        logger.info("%s", assistant.ingest([settings.corpus_dir], progress=_progress).summary())
    elif sync and Path(settings.corpus_dir).is_dir():
        logger.info("%s", assistant.ingest([settings.corpus_dir], progress=_progress).summary())
    return assistant, None


def attach_chat(app: Any, ready: AssistantSlot, journal: Any, limiter: Any, loop: asyncio.AbstractEventLoop) -> None:
    """Import gradio, build the chat and mount it on the running app (from the server's loop)."""
    try:
        from assistant.web import ui

        blocks = ui.build_blocks(ready, journal, limiter.allow)
        asyncio.run_coroutine_threadsafe(ui.serve_mounted(app, blocks), loop)
    except Exception:  # the API keeps serving; the page at / says the chat is starting
        logger.exception("cannot build the chat UI")
    settle_heap()


def settle_heap() -> None:
    """Keep what start-up loaded (gradio, chromadb, the models) out of the garbage collector's
    scans from now on.

    Each question allocates enough to start collections, and a collection that walks the
    start-up's hundreds of thousands of objects lands on some question: with them frozen,
    retrieval p95 in a process that had loaded torch went from about 12.6 to 9-10 ms (docs/benchmarks.md).
    """
    gc.collect()
    gc.freeze()


def prepare_database(database: Database) -> None:
    """Create or check the database's tables and drop questions past the log's age; a failure is logged only."""
    from assistant.errors import DatabaseError

    try:
        database.purge()
    except DatabaseError as exc:
        logger.error("%s; answers are still given, questions and ratings are not kept until it is back", exc)


def _progress(done: int, total: int) -> None:
    if done == total or done % 5 == 0:
        logger.info("ingest: %d/%d files", done, total)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    offline_environment()  # before gradio, torch or chromadb are imported
    configure_logging(args.verbose)
    from assistant.config import load_settings
    from assistant.errors import AssistantError
    from assistant.records.database import Database
    from assistant.slot import AssistantSlot

    try:
        settings = load_settings(os.environ, index_dir=args.index, host=args.host, port=args.port)
        database = Database.from_settings(settings)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ready = AssistantSlot()
    threading.Thread(target=load_assistant, args=(settings, ready, not args.no_sync), daemon=True).start()
    threading.Thread(target=prepare_database, args=(database,), daemon=True).start()

    import uvicorn

    from assistant.web.api import build_api
    from assistant.web.journal import Journal
    from assistant.web.middleware import RateLimiter

    limiter = RateLimiter(settings.rate_limit)
    journal = Journal(database)
    app = build_api(ready, settings, limiter, journal)
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    )

    def stop_on_failure(done: AssistantSlot) -> None:
        if done.exception() is not None:
            server.should_exit = True

    ready.add_done_callback(stop_on_failure)
    logger.info(
        "serving on http://%s:%d/ (the chat; /healthz turns 200 once the guides are loaded)",
        settings.host,
        settings.port,
    )

    async def serve() -> None:
        # The API answers at once; the chat (gradio, ~4 s to import) is mounted when it has loaded.
        # It waits for the guides: importing it meanwhile would slow the load that /healthz waits for.
        loop = asyncio.get_running_loop()
        chat = threading.Thread(target=attach_chat, args=(app, ready, journal, limiter, loop), daemon=True)
        ready.add_done_callback(lambda _: chat.start())
        await server.serve()

    try:
        asyncio.run(serve())
    finally:
        if ready.done() and ready.exception() is None:
            from assistant.web.admin import withdraw_app

            ready.result().release_index()
            withdraw_app(Path(settings.index_dir))
    return 3 if ready.done() and ready.exception() is not None else 0


if __name__ == "__main__":
    sys.exit(main())
