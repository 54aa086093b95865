"""What admins review: the check questions re-asked after each re-ingest, and the gaps report.

Framework-free like admin.py: the API, the Admin tab and `python -m assistant gaps` call these.

- Checks: a JSONL file (ASSISTANT_CHECK_QUESTIONS) of `{"question": ..., "source": ...}`, the
  guide each question's answer should cite. After a re-ingest or upload each is asked again;
  the report lists those now declined or citing other guides, so an edit that breaks an
  answer is seen before a user sees it.
- Gaps: declined and 👎-rated questions from the question log, grouped by meaning
  (records/gaps.py), each group with the guide section nearest to it.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import AssistantError, DatabaseError
from assistant.records.database import Database, spreadsheet_safe
from assistant.records.gaps import Gap, Section, build_gaps
from assistant.service import Assistant

logger = logging.getLogger(__name__)

MAX_CHECKS = 200


@dataclass(frozen=True)
class CheckQuestion:
    """A question and the guide its answer should cite."""

    question: str
    source: str


def load_checks(path: Path) -> tuple[list[CheckQuestion], list[str]]:
    """The check questions of a JSONL file, and a problem line for each line that is not one."""
    checks, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            checks.append(CheckQuestion(str(data["question"]), str(data["source"])))
        except (ValueError, KeyError, TypeError):
            problems.append(f'{path.name} line {number}: not a {{"question", "source"}} object')
    return checks[:MAX_CHECKS], problems


def run_checks(assistant: Assistant) -> dict[str, Any] | None:
    """Ask every check question again: counts and the ones that fail (None: no check file)."""
    path = assistant.settings.check_questions_file
    if not path.is_file():
        return None
    checks, problems = load_checks(path)
    failures: list[dict[str, Any]] = []
    for check in checks:
        try:
            answer = assistant.ask(check.question)
        except AssistantError as exc:
            failures.append({"question": check.question, "expected": check.source, "error": str(exc)})
            continue
        cited = sorted({c.source for c in answer.citations})
        if answer.refused or check.source not in cited:
            failures.append(
                {
                    "question": check.question,
                    "expected": check.source,
                    "cited": [] if answer.refused else cited,
                    "refused": answer.refused,
                    "reason": answer.reason,
                }
            )
    logger.info("check questions: %d of %d still cite their guide", len(checks) - len(failures), len(checks))
    return {
        "file": str(path),
        "asked": len(checks),
        "passed": len(checks) - len(failures),
        "failures": failures,
        "problems": problems,
    }


def after_change(assistant: Assistant, database: Database, action: str, summary: dict[str, Any]) -> dict[str, Any]:
    """An admin change's summary with the check questions' results, kept in the admin history."""
    summary = {**summary, "action": action, "checks": run_checks(assistant)}
    try:
        database.record_event(action, summary)
    except DatabaseError as exc:
        logger.error("admin history not saved: %s", exc)
    return summary


def report_text(summary: dict[str, Any]) -> str:
    """An ingest, upload or delete summary as readable Markdown (failed files and checks with reasons)."""
    lines = []
    if "removed" in summary and isinstance(summary["removed"], str):
        kept = f"; the file is in `{summary['trashed']}`" if summary.get("trashed") else ""
        lines.append(f"**Deleted** {md_escape(summary['removed'])}{kept}. The index holds {summary['chunks']} chunks.")
    else:
        lines.append(
            f"**{summary.get('action', 'ingest').capitalize()}:** {summary['added']} added, {summary['updated']} "
            f"updated, {summary['removed']} removed, {summary['unchanged']} unchanged; {summary['chunks']} chunks "
            f"in the index ({summary['seconds']:.1f} s)."
        )
        for failure in summary.get("failed", []):
            lines.append(f"- Not ingested: {md_escape(Path(failure['path']).name)}: {md_escape(failure['error'])}")
    checks = summary.get("checks")
    if checks:
        lines.append(f"\n**Check questions:** {checks['passed']} of {checks['asked']} still cite their guide.")
        for failure in checks["failures"]:
            if failure.get("refused"):
                got = f"now declined ({failure.get('reason')})"
            elif "error" in failure:
                got = f"failed: {md_escape(failure['error'])}"
            else:
                got = "now cites " + (", ".join(md_escape(c) for c in failure["cited"]) or "nothing")
            lines.append(f"- {md_escape(failure['question'])}: expected {md_escape(failure['expected'])}, {got}")
        lines += [f"- {md_escape(problem)}" for problem in checks.get("problems", [])]
    return "\n".join(lines)


def md_escape(text: str) -> str:
    """Text safe inside Markdown: HTML and Markdown punctuation escaped."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return "".join("\\" + c if c in "\\`*_{}[]()#+!|~" else c for c in escaped)


def gaps_report(assistant: Assistant, database: Database, days: int | None = None) -> dict[str, Any]:
    """Declined and 👎-rated questions grouped by meaning, largest group first, with the nearest section."""
    items = database.gap_questions(days)
    vectors = np.asarray([assistant.embedder.embed_query(q.question) for q in items], dtype=np.float32)
    gaps = [_with_nearest(assistant, gap) for gap in build_gaps(items, vectors.reshape(len(items), -1))]
    return {
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "days": days if days is not None else database.question_log_days,
        "questions": len(items),
        "groups": [gap.to_json() for gap in gaps],
    }


def _with_nearest(assistant: Assistant, gap: Gap) -> Gap:
    found = assistant.store.search(gap.vector, 1)
    if not found:
        return gap
    chunk, similarity = found[0]
    return dataclasses.replace(gap, nearest=Section(chunk.source, chunk.title, chunk.section, float(similarity)))


def gaps_csv(report: dict[str, Any]) -> str:
    """The gaps report as CSV, one group a row (cells a spreadsheet would run as formulas defused)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["count", "declined", "disliked", "first", "last", "examples", "nearest_source", "nearest_section"])
    for group in report["groups"]:
        near = group["nearest"] or {}
        writer.writerow(
            [
                group["count"],
                group["declined"],
                group["disliked"],
                group["first"],
                group["last"],
                spreadsheet_safe(" | ".join(group["examples"])),
                spreadsheet_safe(near.get("source", "")),
                spreadsheet_safe(near.get("section", "")),
            ]
        )
    return out.getvalue()


def gaps_text(report: dict[str, Any]) -> str:
    """The gaps report as plain text for a terminal."""
    if not report["groups"]:
        return f"No gaps: no question was declined or rated 👎 in the last {report['days']} days."
    lines = [f"{report['questions']} questions declined or rated 👎 in the last {report['days']} days:"]
    for number, group in enumerate(report["groups"], 1):
        near = group["nearest"]
        where = f"{near['source']} › {near['section']}" if near else "no guide section near it"
        lines.append(
            f"{number}. {group['count']} questions ({group['declined']} declined, {group['disliked']} rated 👎), "
            f"{group['first'][:10]} to {group['last'][:10]}; nearest: {where}"
        )
        lines += [f"   - {example}" for example in group["examples"]]
    return "\n".join(lines)
