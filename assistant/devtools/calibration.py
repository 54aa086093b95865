"""Calibrating the "the guides don't cover this" gate on in-scope and off-topic questions.

In-scope questions are the gold set (tests/gold_questions.jsonl), written from the guides;
off-topic ones are tests/offtopic_questions.jsonl. The clinical gate runs first, so gold
questions that ask for clinical advice are left out. The threshold chosen is the one with the
fewest mistakes, ties broken by the widest margin.

Uncovered questions (tests/uncovered_questions.jsonl) are about the role but not answered by
the guides (salary, visas, ...): for them the report counts how many are declined, either
refused or answered only from a guide tagged `not-covered`, and lists the others.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.answering.questions import is_clinical_request
from assistant.errors import InputError
from assistant.service import Assistant


def _questions(path: Path) -> list[str]:
    """The questions of a JSONL file, one {"question": ...} per line; InputError names a bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {path}: {exc}") from exc
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} line {number}: not JSON ({exc.msg})") from exc
        if not isinstance(record, dict) or not isinstance(record.get("question"), str):
            raise InputError(f'{path} line {number}: expected {{"question": "..."}}')
        questions.append(record["question"])
    return questions


def _scores(assistant: Assistant, path: Path) -> list[float]:
    scores = []
    for question in _questions(path):
        if is_clinical_request(question):
            continue
        scores.append(assistant.weigh(question)[1])
    return scores


def declined(assistant: Assistant, path: Path) -> dict[str, Any]:
    """How many questions of a file are refused or answered only from `not-covered` guides."""
    ids = [i for record in assistant.store.documents().values() for i in record.chunk_ids]
    not_covered = {c.source for c in assistant.store.get_chunks(ids) if c.not_covered}
    questions, answered = _questions(path), []
    for question in questions:
        answer = assistant.ask(question)
        if not answer.refused and not {c.source for c in answer.citations} <= not_covered:
            answered.append(question)
    return {"questions": len(questions), "declined": len(questions) - len(answered), "answered": answered}


def calibrate(assistant: Assistant, in_scope: Path, off_topic: Path, uncovered: Sequence[Path] = ()) -> dict[str, Any]:
    """Evidence scores of both sets and the best threshold between them; uncovered sets' declines."""
    for path in (in_scope, off_topic, *uncovered):
        _questions(path)  # every file readable before minutes of scoring
    good, bad = _scores(assistant, in_scope), _scores(assistant, off_topic)
    best: tuple[int, float, float] | None = None
    for step in range(0, 101):
        threshold = step / 100
        mistakes = sum(s < threshold for s in good) + sum(s >= threshold for s in bad)
        margin = min([s - threshold for s in good if s >= threshold] + [threshold - s for s in bad if s < threshold])
        if best is None or (mistakes, -margin) < (best[0], -best[2]):
            best = (mistakes, threshold, margin)
    assert best is not None
    return {
        "threshold": best[1],
        "mistakes": best[0],
        "in_scope": len(good),
        "in_scope_refused_at_threshold": sum(s < best[1] for s in good),
        "off_topic": len(bad),
        "off_topic_answered_at_threshold": sum(s >= best[1] for s in bad),
        "current_setting": assistant.settings.min_evidence,
        "in_scope_lowest": sorted(round(s, 3) for s in good)[:5],
        "off_topic_highest": sorted(round(s, 3) for s in bad)[-5:],
        "uncovered": {str(path): declined(assistant, path) for path in uncovered},
    }
