"""The application database on a real PostgreSQL, shared by two app processes on one Chroma server.

- records/database.py against PostgreSQL: the question log, ratings, the gaps query, a clinical
  refusal kept without its text, the schema version, and processes creating the schema at once.
- The acceptance scenario: two apps log into one database; a 👎 given on one app and questions
  asked on both come out in the gaps report of the other (and of `python -m assistant gaps`).
- An unreachable database costs no answer; a rating then fails with 503 and a JSON error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from appserver import PYTHON, ROOT, AppServer, free_port, post_json, request, start_app, start_chroma
from postgres import NOT_INSTALLED, PostgresServer, find_bin_dir, start_postgres

from assistant.errors import NotFoundError
from assistant.records.database import SCHEMA_VERSION, Database, metadata

pytestmark = pytest.mark.server
TOKEN = "test-admin-token-" + uuid.uuid4().hex

SALARY = (
    "How much does a medical director earn?",
    "What is the typical salary of a medical director?",
    "Average compensation for a nursing home medical director?",
    "Is the pay for medical directors good?",
    "What do medical directors get paid per year?",
)
MALPRACTICE = (
    "Do medical directors need malpractice insurance?",
    "How much does malpractice insurance cost for a medical director?",
    "Should a medical director buy their own liability insurance policy?",
    "Does the employer cover malpractice insurance for medical directors?",
    "What malpractice coverage does a medical director need?",
)
# Rated 👎 on app A, both asked on app B. The first is answered rather than declined (with the finance
# guide's payment models), so only its rating brings it into the report.
DISLIKED = (
    "What do medical directors get paid per year?",
    "How much does malpractice insurance cost for a medical director?",
)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the module (skipped only when PostgreSQL is not installed)."""
    if find_bin_dir() is None:
        pytest.skip(NOT_INSTALLED)
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("shared-db")
    shutil.copytree(ROOT / "corpus", folder / "guides")
    return folder


@pytest.fixture(scope="module")
def chroma(work: Path) -> Iterator[int]:
    """A real `chroma run` server for the module; its port (the first app to start ingests the guides)."""
    port = free_port()
    process = start_chroma(work / "chroma", port)
    yield port
    process.terminate()
    process.wait(10)


def app_env(work: Path, chroma_port: int, database_url: str) -> dict[str, str]:
    return {
        "ASSISTANT_CHROMA_HOST": "127.0.0.1",
        "ASSISTANT_CHROMA_PORT": str(chroma_port),
        "ASSISTANT_CORPUS_DIR": str(work / "guides"),
        "ASSISTANT_ADMIN_TOKEN": TOKEN,
        "ASSISTANT_RATE_LIMIT": "1000",
        "ASSISTANT_DATABASE_URL": database_url,
    }


def ask(app: AppServer, question: str) -> dict[str, Any]:
    status, _, answer = post_json(app.url + "/api/ask", {"question": question})
    assert status == 200, answer
    return dict(answer)


def table_rows(url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of the application database."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as db:
            return {
                name: [dict(row) for row in db.execute(sa.select(table)).mappings()]
                for name, table in metadata.tables.items()
            }
    finally:
        engine.dispose()


def dispose(database: Database) -> None:
    """Close a Database's connections (it has no public close: app processes keep theirs for life)."""
    if database._engine is not None:
        database._engine.dispose()


# --- records/database.py on PostgreSQL --------------------------------------------------------------


def declined(question: str) -> dict[str, Any]:
    return {
        "question": question,
        "standalone_question": question,
        "answer": "The guides don't cover this.",
        "mode": "extractive",
        "refused": True,
        "reason": "not_covered",
        "citations": [],
    }


def test_the_question_log_and_ratings_on_postgresql(postgres: PostgresServer) -> None:
    url = postgres.create_database("unit")
    database = Database(url)
    try:
        first = database.log_question(declined("What does a medical director earn?"), 12.0, "api", 0.3)
        second = database.log_question(declined("Can a medical director work from home?"), 8.0, "chat")
        answered = {
            "question": "How long is residency?",
            "standalone_question": "How long is residency?",
            "answer": "Three to seven years. [1]",
            "mode": "extractive",
            "refused": False,
            "reason": None,
            "citations": [{"source": "residency-and-internship.md", "title": "Residency"}],
        }
        third = database.log_question(answered, 20.0, "widget", 0.9)
        secret = "my patient Jane Roe-" + uuid.uuid4().hex[:8] + " has chest pain, what dose of aspirin?"
        clinical = database.log_question(
            {
                "question": secret,
                "standalone_question": secret,
                "answer": "I can't give clinical advice about a patient.",
                "mode": "extractive",
                "refused": True,
                "reason": "clinical",
                "citations": [],
            },
            3.0,
            "api",
        )
        assert first and second and third and clinical
        assert len({first, second, third, clinical}) == 4
        assert database.question_count() == 4

        database.rate(third, "dislike", "api")
        database.rate(clinical, "dislike", "api")
        with pytest.raises(NotFoundError, match="no logged question"):
            database.rate("0" * 32, "like")

        gaps = database.gap_questions()
        assert [q.question for q in gaps] == [
            "What does a medical director earn?",
            "Can a medical director work from home?",
            "How long is residency?",
        ], "declined ones and the 👎-rated answer, oldest first; the clinical one has no text to show"
        assert [(q.refused, q.reason, q.rating) for q in gaps] == [
            (True, "not_covered", None),
            (True, "not_covered", None),
            (False, None, "dislike"),
        ]
        assert gaps[2].sources == ("residency-and-internship.md",)

        ratings = database.feedback_rows()
        assert [(r["rating"], r["question"], r["origin"]) for r in ratings] == [
            ("dislike", "How long is residency?", "api"),
            ("dislike", "", "api"),
        ]
        assert ratings[0]["answer"] == "Three to seven years. [1]"
        assert ratings[0]["created"].endswith("+00:00")

        rows = table_rows(url)
        stored = json.dumps(rows, default=str)
        assert "Jane Roe" not in stored and "aspirin" not in stored and "can't give clinical" not in stored
        kept = next(r for r in rows["questions"] if r["id"] == clinical)
        assert (kept["question"], kept["standalone_question"], kept["answer"]) == ("", "", "")
        assert (kept["refused"], kept["reason"], kept["rating"]) == (True, "clinical", "dislike")
        assert rows["schema_info"] == [{"key": "version", "value": str(SCHEMA_VERSION)}]
        assert next(r for r in rows["questions"] if r["id"] == third)["rating"] == "dislike"

        database.record_event("ingest", {"added": 1})
        assert [(e.action, e.detail) for e in database.events()] == [("ingest", {"added": 1})]
    finally:
        dispose(database)


@pytest.mark.parametrize("round_", range(3))
def test_processes_creating_the_schema_at_once(postgres: PostgresServer, round_: int) -> None:
    url = postgres.create_database(f"race{round_}")
    databases = [Database(url) for _ in range(6)]
    start = threading.Barrier(len(databases))
    errors: list[BaseException] = []
    ids: list[str | None] = []

    def first_use(database: Database) -> None:
        try:
            start.wait(10)
            ids.append(database.log_question(declined("Who pays for malpractice cover?"), 1.0, "api"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(d,)) for d in databases]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert len(ids) == len(databases) and all(ids)
        rows = table_rows(url)
        assert rows["schema_info"] == [{"key": "version", "value": str(SCHEMA_VERSION)}]
        assert len(rows["questions"]) == len(databases)
    finally:
        for database in databases:
            dispose(database)


# --- two apps, one Chroma server, one PostgreSQL ----------------------------------------------------


@dataclass
class Scenario:
    first: AppServer
    second: AppServer
    database_url: str
    chroma_port: int
    answers: dict[str, dict[str, Any]]


@pytest.fixture(scope="module")
def scenario(work: Path, chroma: int, postgres: PostgresServer) -> Iterator[Scenario]:
    """Apps A and B share the database and the Chroma server; 10 questions asked on both, 2 rated 👎 on A."""
    url = postgres.create_database("shared")
    env = app_env(work, chroma, url)
    first = start_app(work / "unused-a", work / "a", env=env)
    try:
        second = start_app(work / "unused-b", work / "b", env=env)
    except BaseException:
        first.stop()
        raise
    try:
        answers: dict[str, dict[str, Any]] = {}
        for number in range(5):  # salary: B, A, B, A, B; malpractice: A, B, A, B, A
            answers[SALARY[number]] = ask(first if number % 2 else second, SALARY[number])
            answers[MALPRACTICE[number]] = ask(second if number % 2 else first, MALPRACTICE[number])
        for question in DISLIKED:
            status, _, body = post_json(
                first.url + "/api/feedback", {"id": answers[question]["id"], "rating": "dislike"}
            )
            assert (status, body) == (200, {"ok": True})
        yield Scenario(first, second, url, chroma, answers)
    finally:
        first.stop()
        second.stop()


def group_of(report: dict[str, Any], topic: tuple[str, ...]) -> dict[str, Any]:
    found = [g for g in report["groups"] if set(g["examples"]) & set(topic)]
    assert len(found) == 1, f"one group for {topic[0]!r}: {report['groups']}"
    return dict(found[0])


def test_two_apps_log_into_one_database(scenario: Scenario) -> None:
    answers = scenario.answers
    assert all(isinstance(a["id"], str) and a["id"] for a in answers.values()), "every answer was logged"
    for question in (*SALARY, *MALPRACTICE):
        if question not in DISLIKED:
            answer = answers[question]
            assert answer["refused"] and answer["reason"] in ("not_covered", "weak_evidence"), (question, answer)
    rows = table_rows(scenario.database_url)
    assert sorted(r["id"] for r in rows["questions"]) == sorted(a["id"] for a in answers.values())
    assert sorted(r["question_id"] for r in rows["feedback"]) == sorted(answers[q]["id"] for q in DISLIKED)
    # Neither app ever failed to log.
    assert "not logged" not in scenario.first.log_text() + scenario.second.log_text()


def test_gaps_on_the_other_app_group_both_apps_questions(scenario: Scenario) -> None:
    status, _, body = request(scenario.second.url + "/api/admin/gaps", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, body
    report = json.loads(body)
    assert report["questions"] == 10
    assert len(report["groups"]) == 2, report["groups"]
    for topic in (SALARY, MALPRACTICE):
        group = group_of(report, topic)
        assert group["count"] == 5
        assert set(group["examples"]) <= set(topic), group["examples"]
        assert group["disliked"] == 1
        assert group["declined"] == sum(1 for q in topic if scenario.answers[q]["refused"])
        assert group["nearest"] and group["nearest"]["source"].endswith(".md")
    assert sum(g["disliked"] for g in report["groups"]) == 2


def test_the_gaps_command_reports_the_same_groups(scenario: Scenario, work: Path) -> None:
    status, _, body = request(scenario.first.url + "/api/admin/gaps", headers={"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    from_api = json.loads(body)
    env = {
        **os.environ,
        "ASSISTANT_DATABASE_URL": scenario.database_url,
        "ASSISTANT_CHROMA_HOST": "127.0.0.1",
        "ASSISTANT_CHROMA_PORT": str(scenario.chroma_port),
        "ASSISTANT_DATA_DIR": str(work / "cli-data"),
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        [PYTHON, "-m", "assistant", "gaps", "--json"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    from_cli = json.loads(done.stdout)
    assert from_cli["questions"] == from_api["questions"] == 10

    def shape(report: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted(
            (
                g["count"],
                tuple(g["examples"]),
                g["first"],
                g["last"],
                g["declined"],
                g["disliked"],
                g["nearest"]["source"],
            )
            for g in report["groups"]
        )

    assert shape(from_cli) == shape(from_api)
    similarity = {g["examples"][0]: g["nearest"]["similarity"] for g in from_api["groups"]}
    for group in from_cli["groups"]:
        assert group["nearest"]["similarity"] == pytest.approx(similarity[group["examples"][0]], abs=0.002)


# --- an unreachable database ------------------------------------------------------------------------


def test_an_unreachable_database_costs_no_answer(work: Path, chroma: int) -> None:
    password = "pw-" + uuid.uuid4().hex[:12]
    closed = f"postgresql+psycopg://postgres:{password}@127.0.0.1:{free_port()}/x"
    app = start_app(work / "unused-c", work / "c", env=app_env(work, chroma, closed))
    try:
        answer = ask(app, "How long is residency?")
        assert not answer["refused"] and answer["citations"], "the answer is delivered"
        assert answer["id"] is None, "but not logged"

        started = time.monotonic()
        status, _, body = post_json(app.url + "/api/feedback", {"id": uuid.uuid4().hex, "rating": "dislike"})
        assert status == 503, body
        assert time.monotonic() - started < 5, "fails fast"
        assert set(body) == {"error"} and "database" in body["error"] and password not in body["error"]

        status, _, body = post_json(app.url + "/api/feedback", {"id": uuid.uuid4().hex, "rating": "meh"})
        assert status == 400, "a bad rating is refused before the database is tried"

        status, _, body = request(app.url + "/api/admin/gaps", headers={"Authorization": f"Bearer {TOKEN}"})
        assert status == 503 and "database" in json.loads(body)["error"]

        log = app.log_text()
        assert "question not logged (the answer was still given)" in log
        assert "application database" in log and "Connection refused" in log
        assert password not in log, "the database password is never logged"
    finally:
        app.stop()
