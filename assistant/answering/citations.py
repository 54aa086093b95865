"""Citations and answers: the values every edge (CLI, API, chat, widget) renders.

An answer's text refers to citations with `[n]` markers; `cite` numbers passages densely in
order of first use, so markers and the citation list always agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

MARKER = re.compile(r"\[(\d{1,3})\]")


@dataclass(frozen=True)
class Citation:
    """One source an answer relies on."""

    id: int
    source: str
    title: str
    section: str
    snippet: str
    score: float

    def to_json(self) -> dict[str, Any]:
        """The contract's citation object."""
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "section": self.section,
            "snippet": self.snippet,
            "score": round(self.score, 4),
        }


@dataclass(frozen=True)
class Answer:
    """What the assistant says to a question, with its citations."""

    question: str
    answer: str
    refused: bool
    citations: tuple[Citation, ...] = field(default_factory=tuple)
    standalone_question: str = ""  # the question as retrieval saw it (follow-ups rewritten)
    notice: str = ""  # e.g. "the language model was unavailable; showing the extractive answer"
    mode: str = "extractive"  # or "llm"
    reason: str | None = None  # why a refusal declines: clinical, out_of_scope, weak_evidence, not_covered
    evidence: float | None = None  # the gate's evidence score (None: the question never reached retrieval)

    def to_json(self) -> dict[str, Any]:
        """The contract's answer object (plus a few extra keys)."""
        return {
            "question": self.question,
            "answer": self.answer,
            "refused": self.refused,
            "reason": self.reason if self.refused else None,
            "citations": [c.to_json() for c in self.citations],
            "standalone_question": self.standalone_question or self.question,
            "notice": self.notice,
            "mode": self.mode,
        }


def markers_in(text: str) -> list[int]:
    """The citation numbers used in a text, in order of appearance (repeats kept)."""
    return [int(m) for m in MARKER.findall(text)]


def renumber(text: str, mapping: dict[int, int]) -> str:
    """Rewrite `[old]` markers to `[new]`; markers not in the mapping are removed."""

    def swap(match: re.Match[str]) -> str:
        new = mapping.get(int(match.group(2)))
        return f"{match.group(1)}[{new}]" if new is not None else ""

    return re.sub(r"(\s*)\[(\d{1,3})\]", swap, text)
