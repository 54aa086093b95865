"""The application database on SQLite: question log, ratings, admin history, privacy, retention, carry-over."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from assistant.config import load_settings
from assistant.errors import ConfigError, DatabaseError, InputError, NotFoundError
from assistant.records import database as records
from assistant.records.database import Database

ROOT = Path(__file__).resolve().parent.parent

ANSWER = {
    "question": "How long is residency?",
    "answer": "At least three years. [1]",
    "refused": False,
    "reason": None,
    "mode": "extractive",
    "citations": [{"id": 1, "source": "faq.md", "title": "FAQ", "section": "", "snippet": "three years", "score": 0.7}],
    "standalone_question": "How long is residency?",
}
DECLINED = {**ANSWER, "question": "How much does a medical director earn?", "refused": True, "reason": "not_covered"}
CLINICAL = {
    **ANSWER,
    "question": "My patient Jane Roe has chest pain, what dose of aspirin?",
    "answer": "I can't give advice about a patient's care.",
    "refused": True,
    "reason": "clinical",
    "citations": [],
}


@pytest.fixture
def database(tmp_path: Path) -> Database:
    return Database(f"sqlite:///{tmp_path / 'app.sqlite3'}")


def test_the_default_database_is_a_sqlite_file_in_the_data_folder(tmp_path: Path) -> None:
    settings = load_settings({"ASSISTANT_DATA_DIR": str(tmp_path / "data")})
    database = Database.from_settings(settings)
    assert database.url == f"sqlite:///{(tmp_path / 'data' / 'assistant.sqlite3').resolve()}"
    database.purge()  # first use creates the folder, the tables and the version row
    with sqlite3.connect(tmp_path / "data" / "assistant.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        version = db.execute("SELECT value FROM schema_info WHERE key='version'").fetchone()
    assert {"questions", "feedback", "admin_events", "schema_info"} <= tables
    assert version == (str(records.SCHEMA_VERSION),)


def test_a_bad_url_is_a_config_error_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_DATABASE_URL"):
        Database.from_settings(load_settings({"ASSISTANT_DATABASE_URL": "not a url at all"}))


def test_a_question_is_logged_with_what_the_gaps_report_needs(database: Database) -> None:
    question_id = database.log_question(ANSWER, 12.34, "api", evidence=0.81)
    assert question_id and len(question_id) == 32
    engine = sa.create_engine(database.url)
    with engine.connect() as db:
        row = db.execute(sa.select(records.questions)).mappings().one()
    assert row["question"] == "How long is residency?" and row["mode"] == "extractive"
    assert row["refused"] is False and row["reason"] is None and row["evidence"] == pytest.approx(0.81)
    assert json.loads(row["sources"]) == ["faq.md"] and row["latency_ms"] == pytest.approx(12.3)
    assert row["origin"] == "api" and row["rating"] is None


def test_declined_and_disliked_questions_are_gaps_and_liked_answers_are_not(database: Database) -> None:
    answered = database.log_question(ANSWER, 5, "api")
    liked = database.log_question({**ANSWER, "question": "What is the CMD?"}, 5, "api")
    database.log_question(DECLINED, 5, "api")
    database.log_question({**DECLINED, "question": "ignore", "reason": "out_of_scope"}, 5, "api")
    assert answered and liked
    database.rate(answered, "dislike")
    database.rate(liked, "like")
    gaps = database.gap_questions()
    assert sorted(q.question for q in gaps) == ["How long is residency?", "How much does a medical director earn?"]
    rows = database.feedback_rows()
    assert [(r["rating"], r["question"]) for r in rows] == [
        ("dislike", "How long is residency?"),
        ("like", "What is the CMD?"),
    ]
    assert rows[0]["answer"] == ANSWER["answer"] and rows[0]["created"].endswith("+00:00")


def test_a_clinical_question_is_stored_nowhere_not_even_in_its_rating(database: Database, tmp_path: Path) -> None:
    question_id = database.log_question(CLINICAL, 5, "chat")
    assert question_id
    database.rate(question_id, "dislike")
    database.record_feedback("dislike", CLINICAL)  # a rating kept with the answer object itself
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("app.sqlite3*"))
    assert b"Jane Roe" not in raw and b"aspirin" not in raw and b"chest pain" not in raw
    assert database.question_count() == 1  # the question is counted, by its reason
    assert database.gap_questions() == []  # nothing to show without its text


def test_rating_an_unknown_question_or_with_an_unknown_rating_is_refused(database: Database) -> None:
    with pytest.raises(NotFoundError):
        database.rate("0" * 32, "dislike")
    question_id = database.log_question(ANSWER, 5, "api")
    assert question_id
    with pytest.raises(InputError, match="rating"):
        database.rate(question_id, "meh")


def test_old_questions_are_deleted_and_a_zero_day_log_keeps_none(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    database = Database(url, question_log_days=30)
    old, new = database.log_question(DECLINED, 5, "api"), database.log_question(ANSWER, 5, "api")
    engine = sa.create_engine(url)
    with engine.begin() as db:
        db.execute(
            records.questions.update()
            .where(records.questions.c.id == old)
            .values(created=records.now() - timedelta(days=31))
        )
    assert database.purge() == 1 and database.question_count() == 1
    off = Database(url, question_log_days=0)
    assert off.log_question(DECLINED, 5, "api") is None  # the log is off: nothing written
    assert off.purge() == 1 and off.question_count() == 0
    assert new


def test_admin_history_keeps_each_action_newest_first(database: Database) -> None:
    database.record_event("ingest", {"added": 3})
    database.record_event("delete", {"removed": "faq.md"})
    events = database.events()
    assert [(e.action, e.detail) for e in events] == [("delete", {"removed": "faq.md"}), ("ingest", {"added": 3})]


def test_an_unreachable_database_raises_database_error_with_the_password_hidden() -> None:
    database = Database("postgresql+psycopg://user:s3cret@127.0.0.1:9/none")
    with pytest.raises(DatabaseError) as raised:
        database.log_question(ANSWER, 5, "api")
    assert "s3cret" not in str(raised.value) and "127.0.0.1" in str(raised.value)


def test_processes_starting_together_create_the_schema_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'app.sqlite3'}"
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            Database(url).log_question(ANSWER, 5, "api")
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and Database(url).question_count() == 4


def test_the_old_feedback_file_is_carried_over_once(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    with sqlite3.connect(data / "feedback.sqlite3") as old:
        old.execute(
            "CREATE TABLE feedback (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, rating TEXT NOT NULL,"
            " question TEXT NOT NULL, standalone_question TEXT NOT NULL DEFAULT '', answer TEXT NOT NULL,"
            " citations TEXT NOT NULL, origin TEXT NOT NULL DEFAULT 'chat')"
        )
        old.execute(
            "INSERT INTO feedback (created, rating, question, answer, citations) VALUES (?, ?, ?, ?, ?)",
            ("2026-11-30T10:00:00+00:00", "dislike", "Where do I park?", "The guides do not say.", "[]"),
        )
    settings = load_settings({"ASSISTANT_DATA_DIR": str(data)})
    rows = Database.from_settings(settings).feedback_rows()
    assert [(r["rating"], r["question"], r["created"]) for r in rows] == [
        ("dislike", "Where do I park?", "2026-11-30T10:00:00+00:00")
    ]
    assert not (data / "feedback.sqlite3").exists() and (data / "feedback.sqlite3.imported").exists()
    assert len(Database.from_settings(settings).feedback_rows()) == 1, "carried over once"
    assert [q.question for q in Database.from_settings(settings).gap_questions(days=3650)] == ["Where do I park?"]


def _cli(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "assistant", *args],
        cwd=ROOT,
        env={"ASSISTANT_DATA_DIR": str(data), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_exports_ratings_as_csv_with_formulas_defused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    database = Database.from_settings(load_settings({"ASSISTANT_DATA_DIR": str(data)}))
    database.record_feedback("like", {**ANSWER, "question": '=HYPERLINK("http://x", "a, b")'})
    result = _cli(data, "feedback", "export", "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == list(records.FEEDBACK_COLUMNS)
    assert rows[0]["question"] == '\'=HYPERLINK("http://x", "a, b")'


def test_the_cli_explains_a_corrupt_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "assistant.sqlite3").write_bytes(b"this is not a database file" * 100)
    result = _cli(data, "feedback", "export", "--csv")
    assert result.returncode == 3, result.stderr
    assert "error: the application database" in result.stderr and "Traceback" not in result.stderr
