"""The question log as the edges use it: log each answer and its rating, never at the cost of the answer.

The API, the chat and the widget log every answered question (see records/database.py for what is
kept and what is not). A database that cannot be reached is logged here and the user still gets
the answer; a rating that cannot be saved is reported to the rater.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from assistant.answering.citations import Answer
from assistant.errors import DatabaseError
from assistant.records.database import Database

logger = logging.getLogger(__name__)


class Journal:
    """Logs answers to the application database; failures are logged, not raised."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def answered(self, answer: Answer, started: float, origin: str) -> dict[str, Any]:
        """The answer object for the client, with `id` (the logged question's, for rating it; None if not logged)."""
        body = answer.to_json()
        latency_ms = (time.perf_counter() - started) * 1000
        try:
            body["id"] = self.database.log_question(body, latency_ms, origin, answer.evidence)
        except DatabaseError as exc:
            logger.error("question not logged (the answer was still given): %s", exc)
            body["id"] = None
        return body

    def rate(self, question_id: str, rating: str, origin: str) -> None:
        """Record a rating of a logged question (NotFoundError, InputError, DatabaseError as they come)."""
        self.database.rate(question_id, rating, origin)

    def rate_answer(self, rating: str, answer: dict[str, Any], origin: str = "chat") -> None:
        """Record a rating of an answer object the chat kept (linked by its `id` when it has one)."""
        self.database.record_feedback(rating, answer, origin)
