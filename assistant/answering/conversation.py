"""Conversation: turning a follow-up ("how long does that take?") into a standalone question.

No language model is needed: a follow-up that leans on the previous turn (a pronoun such as
"that" or "it", or very few words of its own) gets the previous question's topic attached.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from assistant.errors import InputError

MAX_HISTORY_TURNS = 20  # older turns cannot change the rewritten question

_REFERRING = re.compile(r"\b(that|this|it|its|they|them|those|these|there|he|she|one|same|then)\b", re.I)
_LEADING = re.compile(
    r"^(what|who|whom|which|when|where|why|how)( (is|are|was|were|does|do|did|can|could|should|would|much|many|long))?"
    r"( (a|an|the))?\s+|^(tell me about|explain|describe)\s+",
    re.I,
)
# Narrower than answering.text.STOPWORDS on purpose: question words count as a question's own
# ("What is the CMD credential?" has four and is no follow-up; "and that?" has none).
_FUNCTION_WORDS = frozenset("a an the of to in on for and or is are be do does i me my you it that this".split())  # noqa: SIM905


@dataclass(frozen=True)
class Turn:
    """One message of a conversation."""

    role: str  # "user" or "assistant"
    content: str


def parse_history(history: Any) -> list[Turn]:
    """The last MAX_HISTORY_TURNS turns of a client's history; InputError saying what is wrong.

    Every entry point that takes a history from outside (HTTP, gradio_client) goes through here.
    """
    if history is None:
        return []
    if not isinstance(history, list):
        raise InputError('"history" must be a list of {"role": "user"|"assistant", "content": "..."}')
    turns = []
    for item in history[-MAX_HISTORY_TURNS:]:
        if not (
            isinstance(item, dict)
            and item.get("role") in ("user", "assistant")
            and isinstance(item.get("content"), str)
        ):
            raise InputError('each "history" item must be {"role": "user"|"assistant", "content": "..."}')
        turns.append(Turn(item["role"], item["content"]))
    return turns


def standalone_question(question: str, history: Sequence[Turn]) -> str:
    """The question with the topic of the previous user turn attached when it is a follow-up."""
    previous = next((t.content for t in reversed(history) if t.role == "user" and t.content.strip()), "")
    if not previous or not _is_followup(question):
        return question
    topic = _topic(previous)
    return f"{question.rstrip(' ?')} ({topic})?" if topic else question


def _is_followup(question: str) -> bool:
    words = re.findall(r"[a-z']+", question.lower())
    own = [w for w in words if w not in _FUNCTION_WORDS and not _REFERRING.fullmatch(w)]
    return bool(_REFERRING.search(question)) or len(own) <= 2


def _topic(question: str) -> str:
    text = _LEADING.sub("", question.strip()).strip(" ?.!")
    return text[:200]
