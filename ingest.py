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
    parser.add_argument("--verbose", action="store_true", help="log debug details")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    offline_environment()
    configure_logging(args.verbose)
    from assistant.config import load_settings
    from assistant.errors import AssistantError
    from assistant.service import Assistant

    try:
        settings = load_settings(os.environ, index_dir=args.index)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = args.paths or [settings.corpus_dir]
    missing = [p for p in paths if not p.exists()]
    if missing:
        print(f"error: no such file or folder: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    try:
        assistant = Assistant.from_settings(settings, create=True)
        report = assistant.ingest(paths, progress=_progress_bar() if sys.stderr.isatty() else None)
    except AssistantError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    if args.json:
        print(json.dumps(report.to_json()))
    else:
        print(report.summary(), file=sys.stderr)
    for failure in report.failed:
        print(f"failed: {failure.path}: {failure.error}", file=sys.stderr)
    return 1 if report.failed else 0


def _progress_bar():  # type: ignore[no-untyped-def]
    from tqdm import tqdm

    bar: dict[str, tqdm] = {}

    def update(done: int, total: int) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, unit="file", desc="reading", leave=False)
        bar["bar"].n = done
        bar["bar"].refresh()
        if done >= total:
            bar["bar"].close()

    return update


if __name__ == "__main__":
    sys.exit(main())
