"""Feedback: likes and dislikes in SQLite, exported as CSV by `python -m assistant feedback export --csv`."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.web.feedback import COLUMNS, Feedback, FeedbackStore

ROOT = Path(__file__).resolve().parent.parent

ANSWER = {
    "question": "How long is residency?",
    "answer": "At least three years. [1]",
    "refused": False,
    "citations": [{"id": 1, "source": "faq.md", "title": "FAQ", "section": "", "snippet": "three years", "score": 0.7}],
    "standalone_question": "How long is residency?",
}


def test_a_rating_is_stored_with_question_answer_citations_and_time(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path / "data")
    assert store.rows() == []
    store.record(Feedback.from_answer("like", ANSWER))
    store.record(Feedback.from_answer("dislike", {**ANSWER, "question": "Second?"}))
    rows = store.rows()
    assert [r["rating"] for r in rows] == ["like", "dislike"]
    first = rows[0]
    assert first["question"] == "How long is residency?" and first["answer"] == ANSWER["answer"]
    assert json.loads(first["citations"])[0]["source"] == "faq.md"
    assert first["created"].endswith("+00:00")
    assert (tmp_path / "data" / "feedback.sqlite3").is_file()


def test_an_unknown_rating_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rating"):
        FeedbackStore(tmp_path).record(Feedback.from_answer("meh", ANSWER))


def test_export_csv_quotes_and_defuses_formulas(tmp_path: Path) -> None:
    store = FeedbackStore(tmp_path)
    store.record(Feedback.from_answer("like", {**ANSWER, "question": '=HYPERLINK("http://x", "a, b")'}))
    out = io.StringIO()
    assert store.export_csv(out) == 1
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(COLUMNS)
    assert rows[0]["question"] == '\'=HYPERLINK("http://x", "a, b")'


def test_the_cli_exports_csv(tmp_path: Path) -> None:
    FeedbackStore(tmp_path / "data").record(Feedback.from_answer("dislike", ANSWER))
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "feedback", "export", "--csv"],
        cwd=ROOT,
        env={"ASSISTANT_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["rating"], r["question"]) for r in rows] == [("dislike", "How long is residency?")]


def test_the_cli_explains_a_corrupt_feedback_database(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "feedback.sqlite3").write_bytes(b"this is not a database file" * 100)
    result = subprocess.run(
        [sys.executable, "-m", "assistant", "feedback", "export", "--csv"],
        cwd=ROOT,
        env={"ASSISTANT_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, result.stderr
    assert "error: cannot read the feedback database" in result.stderr and "Traceback" not in result.stderr
