"""The application database: feedback, the question log and admin history (SQLAlchemy Core).

One database for every app process: a SQLite file in ASSISTANT_DATA_DIR by default (nothing to
set up), or PostgreSQL (`postgresql+psycopg://...`) when several processes or machines serve one
Chroma server. Tables are created on first use and their version kept in `schema_info`; the
`feedback.sqlite3` file that earlier versions kept beside each process is carried over once
(and renamed `feedback.sqlite3.imported`, so nothing is lost and nothing is counted twice).

Privacy: a refused clinical question is logged by its reason alone; its text and answer are
never written. Nothing here is shown on public routes.

Every SQLAlchemy error is translated here into DatabaseError; callers that log questions
catch it and carry on, so an unreachable database never costs a user an answer.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from assistant.config import Settings
from assistant.errors import ConfigError, DatabaseError, InputError, NotFoundError

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
DEFAULT_FILE = "assistant.sqlite3"
LEGACY_FEEDBACK_FILE = "feedback.sqlite3"
RATINGS = ("like", "dislike")
CLINICAL = "clinical"
PURGE_EVERY_SECONDS = 3600.0
RETRY_AFTER_SECONDS = 30.0  # after a failed connection, answers skip the database this long instead of waiting

metadata = sa.MetaData()
schema_info = sa.Table(
    "schema_info",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
questions = sa.Table(
    "questions",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("created", sa.DateTime, nullable=False, index=True),  # naive UTC
    sa.Column("question", sa.Text, nullable=False),  # '' for a clinical refusal
    sa.Column("standalone_question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("refused", sa.Boolean, nullable=False),
    sa.Column("reason", sa.String(32)),
    sa.Column("sources", sa.Text, nullable=False),  # JSON list of cited sources
    sa.Column("evidence", sa.Float),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("rating", sa.String(8)),  # the last rating it got, if any
)
feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created", sa.DateTime, nullable=False),
    sa.Column("rating", sa.String(8), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("standalone_question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
    sa.Column("citations", sa.Text, nullable=False),  # JSON list of citation objects
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("question_id", sa.String(32)),  # the logged question it rates, when logged
)
admin_events = sa.Table(
    "admin_events",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("created", sa.DateTime, nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False),  # ingest, upload, delete
    sa.Column("detail", sa.Text, nullable=False),  # JSON: the report of the action
)
FEEDBACK_COLUMNS = ("id", "created", "rating", "question", "standalone_question", "answer", "citations", "origin")


@dataclass(frozen=True)
class LoggedQuestion:
    """One question as the log keeps it (what the gaps report reads)."""

    id: str
    created: datetime
    question: str
    refused: bool
    reason: str | None
    rating: str | None
    sources: tuple[str, ...]


@dataclass(frozen=True)
class AdminEvent:
    """One admin action and its report."""

    created: datetime
    action: str
    detail: dict[str, Any]


def now() -> datetime:
    """The current time as naive UTC, the form every table stores."""
    return datetime.now(UTC).replace(tzinfo=None)


def database_url(settings: Settings) -> str:
    """The configured SQLAlchemy URL, or the default SQLite file in the data folder."""
    if settings.database_url:
        return settings.database_url
    return f"sqlite:///{(Path(settings.data_dir) / DEFAULT_FILE).resolve()}"


class Database:
    """The application database; safe to share between threads, and between processes."""

    def __init__(self, url: str, question_log_days: int = 30, legacy_dir: Path | None = None) -> None:
        self.url = url
        self.question_log_days = question_log_days
        self.legacy_dir = legacy_dir
        self._engine: Engine | None = None
        self._lock = threading.Lock()
        self._last_purge = 0.0
        self._down_until = 0.0  # monotonic time before which a new connection is not tried
        self._down_reason = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        """The database the settings name (nothing is connected until first use; a bad URL is a ConfigError)."""
        database = cls(database_url(settings), settings.question_log_days, Path(settings.data_dir))
        _parse_url(database.url)
        return database

    @property
    def shown_url(self) -> str:
        """The URL with any password hidden, for logs and messages."""
        try:
            return sa.make_url(self.url).render_as_string(hide_password=True)
        except sa.exc.ArgumentError:
            return "(an unparsable database URL)"

    @property
    def logging_questions(self) -> bool:
        """Whether questions are logged at all (ASSISTANT_QUESTION_LOG_DAYS > 0)."""
        return self.question_log_days > 0

    # --- questions --------------------------------------------------------------------------

    def log_question(
        self, answer: dict[str, Any], latency_ms: float, origin: str, evidence: float | None = None
    ) -> str | None:
        """Log one answered question; its id, or None when the log is off.

        `answer` is the contract's answer object. A clinical refusal keeps its reason only.
        """
        if not self.logging_questions:
            return None
        row = {
            "id": uuid.uuid4().hex,
            "created": now(),
            **_kept_texts(answer),
            "mode": str(answer.get("mode", "extractive"))[:16],
            "refused": bool(answer.get("refused")),
            "reason": answer.get("reason"),
            "sources": json.dumps(sorted({str(c.get("source", "")) for c in answer.get("citations", ())})),
            "evidence": evidence,
            "latency_ms": round(float(latency_ms), 1),
            "origin": origin[:16],
            "rating": None,
        }
        with self._begin() as db:
            db.execute(questions.insert().values(**row))
        self._purge_now_and_then()
        return str(row["id"])

    def rate(self, question_id: str, rating: str, origin: str = "chat") -> int:
        """Record a rating of a logged question; NotFoundError when the id is not in the log."""
        _check_rating(rating)
        with self._begin() as db:
            found = db.execute(sa.select(questions).where(questions.c.id == question_id)).mappings().first()
            if found is None:
                raise NotFoundError("no logged question has this id (it may be older than the question log keeps)")
            db.execute(questions.update().where(questions.c.id == question_id).values(rating=rating))
            sources = [{"source": s} for s in json.loads(found["sources"])]
            result = db.execute(
                feedback.insert().values(
                    created=now(),
                    rating=rating,
                    question=found["question"],
                    standalone_question=found["standalone_question"],
                    answer=found["answer"],
                    citations=json.dumps(sources, ensure_ascii=False),
                    origin=origin[:16],
                    question_id=question_id,
                )
            )
        logger.info("feedback %s on logged question %s", rating, question_id)
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def record_feedback(self, rating: str, answer: dict[str, Any], origin: str = "chat") -> int:
        """Store a rating of an answer object; linked to its logged question when it has an `id`."""
        _check_rating(rating)
        question_id = answer.get("id")
        if isinstance(question_id, str) and question_id:
            try:
                return self.rate(question_id, rating, origin)
            except NotFoundError:
                pass  # purged meanwhile: keep the rating with the answer's own text
        kept = _kept_texts(answer)
        with self._begin() as db:
            result = db.execute(
                feedback.insert().values(
                    created=now(),
                    rating=rating,
                    **kept,
                    citations=json.dumps(list(answer.get("citations", ())), ensure_ascii=False),
                    origin=origin[:16],
                    question_id=None,
                )
            )
        logger.info("feedback %s on: %.80s", rating, kept["question"] or "(clinical)")
        return int(result.inserted_primary_key[0])  # type: ignore[index]

    def feedback_rows(self) -> list[dict[str, Any]]:
        """Every rating, oldest first, keyed by FEEDBACK_COLUMNS (times as ISO 8601 UTC)."""
        with self._begin() as db:
            rows = db.execute(sa.select(*(feedback.c[name] for name in FEEDBACK_COLUMNS)).order_by(feedback.c.id))
            out = [dict(row) for row in rows.mappings()]
        for row in out:
            row["created"] = iso_utc(row["created"])
        return out

    def gap_questions(self, days: int | None = None) -> list[LoggedQuestion]:
        """Questions declined for want of guides or rated 👎 in the last `days` (default: the log's).

        Ratings kept without a logged question (given while the log was off, or carried over
        from the old feedback file) count too, by their question's text.
        """
        since = now() - timedelta(days=days if days is not None else max(self.question_log_days, 1))
        declined = sa.and_(questions.c.refused, questions.c.reason.in_(("weak_evidence", "not_covered")))
        with self._begin() as db:
            logged = db.execute(
                sa.select(questions)
                .where(questions.c.created >= since, sa.or_(declined, questions.c.rating == "dislike"))
                .order_by(questions.c.created)
            ).mappings()
            found = [
                LoggedQuestion(
                    r["id"], r["created"], r["question"], r["refused"], r["reason"], r["rating"], _sources(r["sources"])
                )
                for r in logged
                if r["question"]
            ]
            loose = db.execute(
                sa.select(feedback).where(
                    feedback.c.created >= since, feedback.c.rating == "dislike", feedback.c.question_id.is_(None)
                )
            ).mappings()
            found += [
                LoggedQuestion(f"feedback:{r['id']}", r["created"], r["question"], False, None, "dislike", ())
                for r in loose
                if r["question"]
            ]
        return sorted(found, key=lambda q: q.created)

    def question_count(self) -> int:
        """How many questions the log holds."""
        with self._begin() as db:
            return int(db.execute(sa.select(sa.func.count()).select_from(questions)).scalar_one())

    def purge(self) -> int:
        """Delete logged questions older than the log keeps (all of them when the log is off)."""
        cutoff = now() - timedelta(days=self.question_log_days)
        with self._begin() as db:
            deleted = db.execute(questions.delete().where(questions.c.created < cutoff)).rowcount
        if deleted:
            logger.info("question log: %d questions older than %d days deleted", deleted, self.question_log_days)
        return int(deleted or 0)

    # --- admin history ------------------------------------------------------------------------

    def record_event(self, action: str, detail: dict[str, Any]) -> None:
        """Keep one admin action (ingest, upload, delete) with its report."""
        with self._begin() as db:
            db.execute(admin_events.insert().values(created=now(), action=action, detail=json.dumps(detail)))

    def events(self, limit: int = 10) -> list[AdminEvent]:
        """The latest admin actions, newest first."""
        with self._begin() as db:
            rows = db.execute(sa.select(admin_events).order_by(admin_events.c.id.desc()).limit(limit)).mappings()
            return [AdminEvent(r["created"], r["action"], json.loads(r["detail"])) for r in rows]

    # --- connection and schema ----------------------------------------------------------------

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One transaction on a ready schema; every SQLAlchemy error leaves as DatabaseError."""
        try:
            engine = self._ready()
            with engine.begin() as connection:
                yield connection
        except sa.exc.SQLAlchemyError as exc:
            raise DatabaseError(f"the application database {self.shown_url} failed: {_short(exc)}") from exc

    def _ready(self) -> Engine:
        with self._lock:
            if self._engine is None:
                if time.monotonic() < self._down_until:
                    raise DatabaseError(
                        f"the application database {self.shown_url} is unavailable: {self._down_reason}"
                    )
                engine = self._create_engine()
                try:
                    _create_schema(engine)
                except sa.exc.SQLAlchemyError as exc:
                    engine.dispose()
                    self._down_until = time.monotonic() + RETRY_AFTER_SECONDS
                    self._down_reason = f"{_short(exc)} (next try in {RETRY_AFTER_SECONDS:g} s)"
                    raise
                self._engine = engine
                if self.legacy_dir is not None:
                    _carry_over_feedback(engine, self.legacy_dir / LEGACY_FEEDBACK_FILE)
                logger.info("application database: %s (schema %d)", self.shown_url, SCHEMA_VERSION)
            return self._engine

    def _create_engine(self) -> Engine:
        url = _parse_url(self.url)
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            return sa.create_engine(url, connect_args={"timeout": 5})
        connect_args = {"connect_timeout": 5} if url.get_backend_name() == "postgresql" else {}
        return sa.create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4, connect_args=connect_args)

    def _purge_now_and_then(self) -> None:
        if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
            self._last_purge = time.monotonic()
            self.purge()


def _create_schema(engine: Engine) -> None:
    """Create missing tables and check the recorded version; two processes may race here."""
    for attempt in range(3):
        try:
            metadata.create_all(engine, checkfirst=True)
            with engine.begin() as db:
                found = db.execute(sa.select(schema_info.c.value).where(schema_info.c.key == "version")).scalar()
                if found is None:
                    db.execute(schema_info.insert().values(key="version", value=str(SCHEMA_VERSION)))
                elif int(found) > SCHEMA_VERSION:
                    raise DatabaseError(
                        f"the application database has schema {found}, newer than this version's "
                        f"{SCHEMA_VERSION}; upgrade the app"
                    )
            return
        except sa.exc.DBAPIError as exc:
            # PostgreSQL reports a concurrent CREATE as one of these; SQLite (a local file, quick to
            # try again) only as an OperationalError, like any other of its failures.
            racing = (
                isinstance(exc, (sa.exc.IntegrityError, sa.exc.ProgrammingError)) or engine.dialect.name == "sqlite"
            )
            if attempt == 2 or not racing:
                raise
            time.sleep(0.2)  # another process created the same table or row first: look again


def _carry_over_feedback(engine: Engine, path: Path) -> None:
    """Copy the old per-process feedback file's rows in once, then rename the file."""
    if not path.is_file():
        return
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)) as old:
            rows = old.execute(
                "SELECT created, rating, question, standalone_question, answer, citations, origin FROM feedback"
            ).fetchall()
    except sqlite3.Error as exc:
        logger.error("the old feedback file %s could not be read (%s); it is left as it is", path, exc)
        return
    with engine.begin() as db:
        for created, rating, question, standalone, answer, citations, origin in rows:
            db.execute(
                feedback.insert().values(
                    created=_parse_time(created),
                    rating=rating,
                    question=question,
                    standalone_question=standalone or "",
                    answer=answer,
                    citations=citations or "[]",
                    origin=origin or "chat",
                    question_id=None,
                )
            )
    path.rename(path.with_name(path.name + ".imported"))
    logger.info("carried %d ratings over from %s into the application database", len(rows), path)


def _parse_url(raw: str) -> sa.URL:
    try:
        return sa.make_url(raw)
    except sa.exc.ArgumentError:
        raise ConfigError(
            "ASSISTANT_DATABASE_URL is not a SQLAlchemy URL; e.g. sqlite:////path/app.sqlite3 or "
            "postgresql+psycopg://user:password@host:5432/dbname"
        ) from None


def _kept_texts(answer: dict[str, Any]) -> dict[str, str]:
    """The texts of an answer object the database may keep: none of a clinical refusal's."""
    clinical = answer.get("reason") == CLINICAL
    return {
        name: "" if clinical else str(answer.get(name, "")) for name in ("question", "standalone_question", "answer")
    }


def _check_rating(rating: str) -> None:
    if rating not in RATINGS:
        raise InputError(f"rating must be one of {', '.join(RATINGS)}, not {rating!r}")


def _sources(raw: str) -> tuple[str, ...]:
    try:
        return tuple(str(s) for s in json.loads(raw))
    except (ValueError, TypeError):
        return ()


def iso_utc(value: datetime | str) -> str:
    """A stored (naive UTC) time as ISO 8601 with its offset."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC).isoformat(timespec="seconds")
    return str(value)


def _parse_time(raw: object) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(raw))
    except ValueError:
        return now()
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _short(exc: Exception) -> str:
    """The first line of a driver error, without the SQL SQLAlchemy appends."""
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0][:200] if str(original).strip() else type(exc).__name__


def spreadsheet_safe(value: Any) -> Any:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    return "'" + value if isinstance(value, str) and value.startswith(("=", "+", "-", "@", "\t", "\r")) else value


def exported_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback rows ready for a spreadsheet."""
    return [{k: spreadsheet_safe(v) for k, v in row.items()} for row in rows]
