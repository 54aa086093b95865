"""Ingest guides into the index: `python ingest.py [PATH ...] [--index DIR] [--json]`.

Exit status: 0 all good; 1 some files failed (the rest are ingested); 2 usage error;
3 the index is busy or the store is unavailable.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from assistant.logsetup import configure_logging, offline_environment

logger = logging.getLogger("ingest")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="ingest.py", description="Ingest guides into the assistant's index.")
    parser.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the corpus folder)")
    parser.add_argument("--index", type=Path, help="index folder (default: ASSISTANT_INDEX_DIR or .index/)")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    parser.add_argument(
        "--wait", type=float, default=30.0, help="seconds to wait while another process writes the index (default 30)"
    )
    parser.add_argument("--verbose", action="store_true", help="log debug details")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    offline_environment()
    configure_logging(args.verbose)
    from assistant.config import load_settings
    from assistant.documents.loading import refuse_unusable
    from assistant.errors import AssistantError
    from assistant.service import Assistant
    from assistant.web.admin import hand_off_ingest, running_app

    try:
        settings = load_settings(os.environ, index_dir=args.index)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = args.paths or [settings.corpus_dir]
    try:
        refuse_unusable(paths)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app_url = None if settings.uses_chroma_server else running_app(Path(settings.index_dir))
    try:
        if app_url and settings.admin_token:
            logger.info("the app at %s serves this index: handing the ingest over to it", app_url)
            summary = hand_off_ingest(app_url, settings.admin_token, paths)
        else:
            if app_url:
                logger.warning(
                    "the app at %s serves this index; set ASSISTANT_ADMIN_TOKEN (the app's) to hand the "
                    "ingest over, or stop the app. Waiting up to %.0f s.",
                    app_url,
                    args.wait,
                )
            assistant = Assistant.from_settings(settings, create=True)
            progress = _progress_bar() if sys.stderr.isatty() else None
            summary = assistant.ingest(paths, progress=progress, wait_seconds=args.wait).to_json()
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(summary))
    else:
        print(_summary_line(summary), file=sys.stderr)
    for failure in summary["failed"]:
        print(f"failed: {failure['path']}: {failure['error']}", file=sys.stderr)
    return 1 if summary["failed"] else 0


def _summary_line(s: dict) -> str:  # type: ignore[type-arg]
    return (
        f"added {s['added']}, updated {s['updated']}, removed {s['removed']}, unchanged {s['unchanged']}; "
        f"{s['chunks']} chunks in the index ({s['seconds']:.1f} s)"
        + (f"; {len(s['failed'])} failed" if s["failed"] else "")
    )


def _progress_bar():  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="file", desc="embedding", leave=False)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar["bar"].close()

    return update


if __name__ == "__main__":
    sys.exit(main())
