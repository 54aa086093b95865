"""Admin jobs behind the token: list, re-ingest, upload and delete guides, and hand ingest over to the app.

Framework-free: api.py maps these to HTTP routes and errors to status codes. While the app
serves an embedded index it holds the index's write lock and announces its address in
`INDEX_DIR/.app.json`; `python ingest.py` then hands its job to the app over HTTP.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.documents.loading import SUFFIXES, parse_document, refuse_unusable
from assistant.errors import DocumentError, InputError, NotFoundError, TooLargeError
from assistant.ingest.sync import SyncReport
from assistant.service import Assistant

logger = logging.getLogger(__name__)

APP_FILE = ".app.json"
TRASH = ".trash"  # hidden, so ingest skips it: a deleted guide stays deleted, and nothing is lost
_SAFE_NAME = re.compile(r"^[^/\\\x00-\x1f]{1,200}$")


def token_status(settings: Settings, authorization: str | None) -> int:
    """200 when the bearer token matches; 404 when admin is disabled; 401 otherwise."""
    if not settings.admin_token:
        return 404
    scheme, _, token = (authorization or "").partition(" ")
    ok = scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), settings.admin_token.encode())
    return 200 if ok else 401


def reingest(assistant: Assistant, paths: Sequence[Path] = ()) -> SyncReport:
    """Sync the corpus folder (or the given paths) into the served index."""
    targets = [Path(p) for p in paths] or [Path(assistant.settings.corpus_dir)]
    refuse_unusable(targets)
    return assistant.ingest(targets)


def upload(assistant: Assistant, filename: str, data: bytes) -> SyncReport:
    """Save one uploaded guide into the corpus folder and ingest it; bad files are refused whole."""
    name = Path(filename or "").name
    if not name or name != filename or not _SAFE_NAME.match(name) or name.startswith("."):
        raise InputError("give a plain file name, such as new-guide.md (no folders)")
    if Path(name).suffix.lower() not in SUFFIXES:
        raise InputError(f"unsupported file type; use one of {', '.join(sorted(SUFFIXES))}")
    limit = int(assistant.settings.max_file_mb * 1_000_000)
    if len(data) > limit:
        raise TooLargeError(f"the file is over the {assistant.settings.max_file_mb:g} MB limit")
    corpus = Path(assistant.settings.corpus_dir)
    try:
        parse_document(data, name, name, str(corpus.resolve()))
    except DocumentError as exc:
        raise InputError(f"{name}: {exc}") from exc
    corpus.mkdir(parents=True, exist_ok=True)
    target = corpus / name
    partial = corpus / f".{name}.uploading"
    partial.write_bytes(data)
    os.replace(partial, target)  # atomic: a concurrent re-ingest sees the old file or the new one
    logger.info("admin upload saved %s (%d bytes)", target, len(data))
    return assistant.ingest([target])


def list_documents(assistant: Assistant) -> list[dict[str, Any]]:
    """The ingested guides: source, title, chunks, updated (ISO 8601 UTC, when known) and content hash."""
    out = []
    for record in assistant.documents():
        updated = record.ingested or _modified(Path(record.root) / record.source)
        out.append(
            {
                "source": record.source,
                "title": record.title,
                "chunks": len(record.chunk_ids),
                "updated": updated,
                "hash": record.doc_hash,
            }
        )
    return out


def delete_document(assistant: Assistant, source: str) -> dict[str, Any]:
    """Remove a guide from the index at once; a file in the corpus folder moves to its `.trash/`.

    NotFoundError when no guide has this source (path tricks included: they name no guide).
    """
    record = assistant.remove(source) if is_source_id(source) else None
    if record is None:
        raise NotFoundError(f"no ingested guide is called {source[:200]!r}")
    corpus = Path(assistant.settings.corpus_dir).resolve()
    location = (Path(record.root) / record.source).resolve()
    trashed = None
    if location.is_file() and location.is_relative_to(corpus) and not _in_trash(location, corpus):
        target = corpus / TRASH / location.relative_to(corpus)
        if target.exists():
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            target = target.with_name(f"{target.stem}.{stamp}{target.suffix}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(location), target)
        trashed = target.relative_to(corpus).as_posix()
        logger.info("admin deleted %s; its file moved to %s", source, target)
    else:
        logger.info("admin deleted %s from the index (its file is not in the corpus folder)", source)
    return {"removed": record.source, "title": record.title, "trashed": trashed, "chunks": assistant.chunk_count()}


def is_source_id(source: str) -> bool:
    """Whether a path could be an ingested source id: relative, no `..`, no odd characters."""
    if not source or source.startswith(("/", "\\")) or "\\" in source or "\x00" in source:
        return False
    parts = source.split("/")
    return not any(part in ("", ".", "..") for part in parts) and ":" not in parts[0]


def _in_trash(path: Path, corpus: Path) -> bool:
    return path.relative_to(corpus).parts[:1] == (TRASH,)


def _modified(path: Path) -> str | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds")
    except OSError:
        return None


def announce_app(index_dir: Path, url: str) -> None:
    """Record where the app serving this index listens, for ingest hand-over."""
    index_dir.mkdir(parents=True, exist_ok=True)
    (index_dir / APP_FILE).write_text(json.dumps({"url": url, "pid": os.getpid()}), encoding="utf-8")


def withdraw_app(index_dir: Path) -> None:
    """Remove the announcement at shutdown."""
    (index_dir / APP_FILE).unlink(missing_ok=True)


def running_app(index_dir: Path) -> str | None:
    """The URL of a live app serving this index, if any."""
    try:
        info = json.loads((index_dir / APP_FILE).read_text(encoding="utf-8"))
        os.kill(int(info["pid"]), 0)
        return str(info["url"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def hand_off_ingest(url: str, token: str, paths: Sequence[Path], timeout: float = 3600.0) -> dict[str, Any]:
    """Ask the running app to ingest these paths; returns its summary object."""
    body = json.dumps({"paths": [str(Path(p).resolve()) for p in paths]}).encode()
    request = urllib.request.Request(
        f"{url.rstrip('/')}/api/admin/ingest",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return dict(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise InputError(f"the app refused the ingest ({exc.code}): {detail}") from exc
    except (urllib.error.URLError, TimeoutError) as exc:
        raise InputError(f"cannot reach the app at {url}: {exc}") from exc
