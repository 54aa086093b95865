"""Admin jobs behind the token: re-ingest, upload one guide, and handing ingest over to the app.

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
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.documents.loading import SUFFIXES, parse_document, refuse_unusable
from assistant.errors import DocumentError, InputError, TooLargeError
from assistant.ingest.sync import SyncReport
from assistant.service import Assistant

logger = logging.getLogger(__name__)

APP_FILE = ".app.json"
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
