"""Serve the chat, the HTTP API and the widget: `python app.py [--host H] [--port P] [--index DIR]`.

The server answers at once; the Assistant loads in the background (GET /healthz is 503
"starting" until then). With no index, the corpus is ingested first, with progress in the
terminal; with one, an incremental sync picks up changed guides (a fraction of a second
when nothing changed). Exit status: 0 after a clean shutdown; 2 usage error; 3 the
Assistant could not be loaded (e.g. the Chroma server does not answer).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from assistant.logsetup import configure_logging, offline_environment

logger = logging.getLogger("app")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="app.py", description="Serve the Medical Director Onboarding Assistant.")
    parser.add_argument("--host", help="interface to listen on (default: ASSISTANT_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: ASSISTANT_PORT or 7860)")
    parser.add_argument("--index", type=Path, help="index folder (default: ASSISTANT_INDEX_DIR or .index/)")
    parser.add_argument("--no-sync", action="store_true", help="serve the index as it is; skip the start-up sync")
    parser.add_argument("--verbose", action="store_true", help="log debug details")
    return parser.parse_args(argv)


def load_assistant(settings: Any, ready: Future[Any], sync: bool) -> None:
    """Open (or first build) the index and resolve `ready` with the Assistant, or with the error."""
    started = time.perf_counter()
    try:
        from assistant.errors import IndexBusyError, IndexMissingError
        from assistant.service import Assistant

        try:
            assistant = Assistant.from_settings(settings)
        except IndexMissingError:
            logger.info("no index at %s yet: ingesting %s first", settings.index_dir, settings.corpus_dir)
            assistant = Assistant.from_settings(settings, create=True)
            report = assistant.ingest([settings.corpus_dir], progress=_progress)
            logger.info("%s", report.summary())
        else:
            if sync and Path(settings.corpus_dir).is_dir():
                try:
                    logger.info("%s", assistant.ingest([settings.corpus_dir], progress=_progress).summary())
                except IndexBusyError as exc:
                    logger.warning("start-up sync skipped: %s", exc)
        ready.set_result(assistant)
        logger.info("ready: %d chunks in the index (%.1f s)", assistant.chunk_count(), time.perf_counter() - started)
    except Exception as exc:
        logger.error("cannot start the assistant: %s", exc)
        ready.set_exception(exc)


def _progress(done: int, total: int) -> None:
    if done == total or done % 5 == 0:
        logger.info("ingest: %d/%d files", done, total)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    offline_environment()  # before gradio, torch or chromadb are imported
    configure_logging(args.verbose)
    from assistant.config import load_settings
    from assistant.errors import AssistantError

    try:
        settings = load_settings(os.environ, index_dir=args.index, host=args.host, port=args.port)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ready: Future[Any] = Future()
    threading.Thread(target=load_assistant, args=(settings, ready, not args.no_sync), daemon=True).start()

    import uvicorn

    from assistant import ui
    from assistant.api import RateLimiter, build_api
    from assistant.feedback import FeedbackStore

    limiter = RateLimiter(settings.rate_limit)
    app = ui.mount(
        build_api(ready, settings, limiter), ui.build_blocks(ready, FeedbackStore(settings.data_dir), limiter.allow)
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
    )

    def stop_on_failure(done: Future[Any]) -> None:
        if done.exception() is not None:
            server.should_exit = True

    ready.add_done_callback(stop_on_failure)
    logger.info(
        "serving on http://%s:%d/ (the chat; /healthz turns 200 once the guides are loaded)",
        settings.host,
        settings.port,
    )
    server.run()
    return 3 if ready.done() and ready.exception() is not None else 0


if __name__ == "__main__":
    sys.exit(main())
