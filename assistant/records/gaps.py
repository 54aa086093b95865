"""Gaps: what users asked that the guides did not answer, grouped by meaning.

The input is the question log's declined and 👎-rated questions (`Database.gap_questions`)
with their vectors from the encoder the pipeline uses for questions. Groups come from
average-linkage clustering: two groups merge while the mean similarity between their
questions is at least `THRESHOLD`, the similarity being 0.75 x the sentence vectors' cosine
+ 0.25 x tf-idf word cosine. Weight and threshold were fitted on public data nobody here
wrote, where the questions about one condition (MedQuAD) or the claims citing one abstract
(SciFact) form a topic: `python experiments/tune_gaps.py`, figures in docs/admin.md.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from assistant.records.database import LoggedQuestion, iso_utc

THRESHOLD = 0.55  # mean similarity at which two groups of questions are one topic (experiments/tune_gaps.py)
DENSE_WEIGHT = 0.75  # share of the sentence vectors' cosine in it; the rest is tf-idf word overlap
MAX_QUESTIONS = 1500  # the newest ones; average linkage costs n^2 memory and n^3 time
EXAMPLES = 3
_WORD = re.compile(r"[a-z0-9]+")
_STOP = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "be",
        "can",
        "could",
        "do",
        "does",
        "for",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "my",
        "of",
        "on",
        "or",
        "should",
        "the",
        "to",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
    ]
)


@dataclass(frozen=True)
class Section:
    """The guide section nearest a gap: where an admin would add the missing answer."""

    source: str
    title: str
    section: str
    similarity: float


@dataclass(frozen=True)
class Gap:
    """One topic users asked about that the guides did not answer."""

    count: int
    examples: tuple[str, ...]
    first: datetime
    last: datetime
    declined: int
    disliked: int
    vector: np.ndarray = field(compare=False, repr=False)  # the group's mean direction
    nearest: Section | None = None

    def to_json(self) -> dict[str, Any]:
        """The report's JSON object for this gap."""
        near = self.nearest
        return {
            "count": self.count,
            "examples": list(self.examples),
            "first": iso_utc(self.first),
            "last": iso_utc(self.last),
            "declined": self.declined,
            "disliked": self.disliked,
            "nearest": None
            if near is None
            else {
                "source": near.source,
                "title": near.title,
                "section": near.section,
                "similarity": round(near.similarity, 3),
            },
        }


def group_by_meaning(vectors: np.ndarray, threshold: float = THRESHOLD) -> list[list[int]]:
    """Average-linkage clusters of unit row vectors: lists of row numbers, each list sorted.

    Keeps each row's best partner, so a merge costs one row update instead of a full search.
    """
    n = len(vectors)
    if n == 0:
        return []
    rows = np.asarray(vectors, dtype=np.float64)
    sums = rows @ rows.T  # sum of similarities between the members of cluster i and of cluster j
    sizes = np.ones(n)
    alive = np.ones(n, dtype=bool)
    mean = sums.copy()
    np.fill_diagonal(mean, -np.inf)
    partner = mean.argmax(axis=1)
    best = mean[np.arange(n), partner]
    members: list[list[int]] = [[i] for i in range(n)]
    while True:
        i = int(np.argmax(best))
        if best[i] < threshold:
            break
        j = int(partner[i])
        sums[i, :] += sums[j, :]
        sums[:, i] = sums[i, :]
        sizes[i] += sizes[j]
        alive[j] = False
        members[i] += members[j]
        members[j] = []
        mean[j, :] = mean[:, j] = best[j] = -np.inf
        mean[i, :] = np.where(alive, sums[i, :] / (sizes[i] * sizes), -np.inf)
        mean[i, i] = -np.inf
        mean[:, i] = mean[i, :]
        stale = np.flatnonzero(alive & ((partner == i) | (partner == j)))
        for r in {i, *stale.tolist()}:
            partner[r] = int(np.argmax(mean[r]))
            best[r] = mean[r, partner[r]]
        better = alive & (mean[:, i] > best)
        partner[better] = i
        best[better] = mean[better, i]
    return [sorted(m) for m in members if m]


def mixed_vectors(dense: np.ndarray, texts: Sequence[str], weight: float = DENSE_WEIGHT) -> np.ndarray:
    """Rows whose dot product is `weight` x the sentence vectors' cosine + the rest x tf-idf word cosine.

    Sentence vectors group paraphrases ("salary" / "how much is the pay"); words group questions
    that name the same rare thing in different templates ("What causes X?" / "How to treat X?").
    Word weights are idf over the questions themselves.
    """
    words = [[w for w in _WORD.findall(t.casefold()) if w not in _STOP] for t in texts]
    vocabulary = {w: k for k, w in enumerate(sorted({w for ws in words for w in ws}))}
    counts = np.zeros((len(words), max(len(vocabulary), 1)), dtype=np.float32)
    for row, ws in enumerate(words):
        for w in ws:
            counts[row, vocabulary[w]] += 1
    idf = np.log((1 + len(words)) / (1 + (counts > 0).sum(axis=0))) + 1.0
    sparse = _unit(counts * idf)
    return np.hstack([np.sqrt(weight) * _unit(np.asarray(dense, np.float32)), np.sqrt(1 - weight) * sparse])


def build_gaps(
    items: Sequence[LoggedQuestion], vectors: np.ndarray, threshold: float = THRESHOLD, examples: int = EXAMPLES
) -> list[Gap]:
    """The gaps report's groups, largest first (then the most recent)."""
    items = list(items)[-MAX_QUESTIONS:]
    vectors = _unit(np.asarray(vectors, dtype=np.float32)[-MAX_QUESTIONS:])
    mixed = mixed_vectors(vectors, [q.question for q in items])
    gaps = []
    for group in group_by_meaning(mixed, threshold):
        centre = _unit(vectors[group].mean(axis=0, keepdims=True))[0]
        closest = sorted(group, key=lambda k: -float(vectors[k] @ centre))
        shown: list[str] = []
        for k in closest:
            text = items[k].question
            if text.casefold() not in {s.casefold() for s in shown}:
                shown.append(text)
            if len(shown) == examples:
                break
        times = [items[k].created for k in group]
        gaps.append(
            Gap(
                count=len(group),
                examples=tuple(shown),
                first=min(times),
                last=max(times),
                declined=sum(1 for k in group if items[k].refused),
                disliked=sum(1 for k in group if items[k].rating == "dislike"),
                vector=centre,
            )
        )
    return sorted(gaps, key=lambda g: (-g.count, -g.last.timestamp()))


def _unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)
