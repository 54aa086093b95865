"""Text helpers shared by the composer, the gate and generation: cleaning, words, planted orders.

One stopword list and one word tokenizer for the answering layer. Retrieval's BM25 has its own
(bm25s' English stopwords and a stemmer), and generation's post-check a broader filler list,
because it compares a claim's own words with its passage, where "usually" or "guide" prove nothing.
"""

from __future__ import annotations

import re

# An instruction planted in a guide: quoted or obeyed, it would speak with the guide's authority.
_ORDERS = re.compile(
    r"\b(ignore|disregard|forget|override)\b[^.\n]{0,40}\b(instructions|rules|prompts?)\b"
    r"|\byou are now\b|\bsystem prompt\b|\bnew instructions\b|\bdo not cite\b",
    re.IGNORECASE,
)
_MARKDOWN = [
    (re.compile(r"\[([^\]]+)\]\([^)]*\)"), r"\1"),  # links -> their text
    (re.compile(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}"), r"\1"),  # emphasis and code
    (re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+"), ""),  # list markers
    (re.compile(r"^\s*>+\s*"), ""),  # quotes
]
STOPWORDS = frozenset(
    "a an the of to in on for and or is are be do does did what which who how when where "  # noqa: SIM905
    "why i me my we our you your it its that this with as at by from can should would could will".split()
)
_TERM = re.compile(r"[a-z0-9]+")


def planted_instructions(text: str) -> list[tuple[int, int]]:
    """Spans of a guide's text that give orders: from such a sentence to the end of its paragraph."""
    spans = []
    for match in _ORDERS.finditer(text):
        begin = match.start()
        start = max(text.rfind(". ", 0, begin) + 1, text.rfind("\n", 0, begin) + 1, 0)
        end = text.find("\n\n", begin)
        spans.append((start, end if end != -1 else len(text)))
    return spans


def without_planted_instructions(text: str) -> str:
    """The text with its planted instructions cut out (see planted_instructions)."""
    for start, end in reversed(planted_instructions(text)):
        text = text[:start] + " " + text[end:]
    return text


def clean_sentence(text: str) -> str:
    """A sentence without Markdown decoration, on one line."""
    text = " ".join(text.split())
    for pattern, repl in _MARKDOWN:
        text = pattern.sub(repl, text)
    return text.strip()


def key_terms(text: str) -> set[str]:
    """The distinctive words of a text, cut to 6 letters so plurals and verb forms meet ("audits", "audit")."""
    return {t[:6] for t in _TERM.findall(text.lower()) if t not in STOPWORDS and len(t) > 2}
