"""Feedback: likes and dislikes on answers, kept in SQLite under the data folder.

Each row holds what a reviewer needs to judge the answer later: the question, the answer
text, its citations (JSON) and the time. `python -m assistant feedback export --csv` reads
them back out.
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger(__name__)

FILENAME = "feedback.sqlite3"
RATINGS = ("like", "dislike")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
COLUMNS = ("id", "created", "rating", "question", "standalone_question", "answer", "citations", "origin")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    rating TEXT NOT NULL,
    question TEXT NOT NULL,
    standalone_question TEXT NOT NULL DEFAULT '',
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    origin TEXT NOT NULL DEFAULT 'chat'
)
"""


@dataclass(frozen=True)
class Feedback:
    """One rating of one answer."""

    rating: str  # one of RATINGS
    question: str
    answer: str
    citations: tuple[dict[str, Any], ...] = ()
    standalone_question: str = ""
    origin: str = "chat"
    created: str = ""  # ISO 8601 UTC; filled in when recorded

    @classmethod
    def from_answer(cls, rating: str, answer: dict[str, Any], origin: str = "chat") -> Feedback:
        """Feedback on an answer object (the contract's JSON shape)."""
        return cls(
            rating=rating,
            question=str(answer.get("question", "")),
            answer=str(answer.get("answer", "")),
            citations=tuple(answer.get("citations", ())),
            standalone_question=str(answer.get("standalone_question", "")),
            origin=origin,
        )


class FeedbackStore:
    """The feedback table in `DATA_DIR/feedback.sqlite3`; safe to share between threads."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / FILENAME

    def record(self, feedback: Feedback) -> int:
        """Store one rating and return its row id."""
        if feedback.rating not in RATINGS:
            raise ValueError(f"rating must be one of {RATINGS}, not {feedback.rating!r}")
        created = feedback.created or datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO feedback (created, rating, question, standalone_question, answer, citations, origin)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    created,
                    feedback.rating,
                    feedback.question,
                    feedback.standalone_question,
                    feedback.answer,
                    json.dumps(list(feedback.citations), ensure_ascii=False),
                    feedback.origin,
                ),
            )
            row_id = int(cursor.lastrowid or 0)
        logger.info("feedback %s on: %.80s", feedback.rating, feedback.question)
        return row_id

    def rows(self) -> list[dict[str, Any]]:
        """Every stored rating, oldest first, as dicts keyed by COLUMNS."""
        if not self.path.exists():
            return []
        with self._connect() as db:
            cursor = db.execute(f"SELECT {', '.join(COLUMNS)} FROM feedback ORDER BY id")
            return [dict(zip(COLUMNS, row)) for row in cursor.fetchall()]

    def export_csv(self, out: TextIO) -> int:
        """Write every rating as CSV (header first); return how many rows were written."""
        rows = self.rows()
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({k: _spreadsheet_safe(v) for k, v in row.items()} for row in rows)
        return len(rows)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=2.0)) as db:  # a locked database fails fast
            db.execute(_SCHEMA)
            with db:  # one transaction: committed on success, rolled back on error
                yield db


def _spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
