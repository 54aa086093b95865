"""The gaps report's grouping: average linkage over mixed sentence and word similarity, with the real model."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pytest

from assistant.embedding.models import SentenceEmbeddings
from assistant.records.database import LoggedQuestion
from assistant.records.gaps import build_gaps, group_by_meaning, mixed_vectors

SALARY = [
    "How much does a medical director earn?",
    "What is the typical salary of a medical director?",
    "Average compensation for a nursing home medical director?",
    "Is the pay for medical directors good?",
    "What do medical directors get paid per year?",
]
MALPRACTICE = [
    "What malpractice insurance does a medical director need?",
    "Does my malpractice policy cover medical director work?",
    "How much is malpractice insurance for a medical director?",
    "Is malpractice coverage required for medical directors?",
    "Who pays for a medical director's malpractice coverage?",
]


def naive_average_linkage(vectors: np.ndarray, threshold: float) -> list[list[int]]:
    """The textbook algorithm, slowly: merge the closest pair of clusters while their mean similarity is high."""
    similarity = vectors @ vectors.T
    clusters = [[i] for i in range(len(vectors))]
    while len(clusters) > 1:
        pairs = [(a, b) for a in range(len(clusters)) for b in range(a + 1, len(clusters))]
        a, b = max(pairs, key=lambda p: similarity[np.ix_(clusters[p[0]], clusters[p[1]])].mean())
        if similarity[np.ix_(clusters[a], clusters[b])].mean() < threshold:
            break
        clusters[a] += clusters.pop(b)
    return sorted(sorted(c) for c in clusters)


@pytest.mark.parametrize("threshold", [0.0, 0.1, 0.2, 0.35])
def test_grouping_is_average_linkage(threshold: float) -> None:
    rng = np.random.default_rng(7)
    vectors = rng.normal(size=(30, 12))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    assert sorted(group_by_meaning(vectors, threshold)) == naive_average_linkage(vectors, threshold)


def test_nothing_to_group_gives_no_groups() -> None:
    assert group_by_meaning(np.zeros((0, 8))) == []
    assert build_gaps([], np.zeros((0, 8))) == []


def test_mixed_similarity_is_the_weighted_mean_of_the_two_cosines() -> None:
    dense = np.array([[1.0, 0.0], [0.6, 0.8]])
    texts = ["salary of a director", "salary of a nurse"]
    mixed = mixed_vectors(dense, texts, weight=0.75)
    words = mixed_vectors(dense, texts, weight=0.0)
    assert mixed[0] @ mixed[1] == pytest.approx(0.75 * 0.6 + 0.25 * float(words[0] @ words[1]), abs=1e-6)
    assert 0 < words[0] @ words[1] < 1  # "salary" shared, "director" and "nurse" not


def test_two_topics_asked_five_ways_each_make_two_groups(embedder: SentenceEmbeddings) -> None:
    start = datetime(2026, 12, 1)
    texts = [q for pair in zip(SALARY, MALPRACTICE, strict=True) for q in pair]  # interleaved, as users ask
    items = [
        LoggedQuestion(
            str(k), start + timedelta(hours=k), text, k % 3 != 0, None, "dislike" if k % 3 == 0 else None, ()
        )
        for k, text in enumerate(texts)
    ]
    vectors = np.asarray([embedder.embed_query(t) for t in texts])
    gaps = build_gaps(items, vectors)
    assert [g.count for g in gaps] == [5, 5]
    assert {
        frozenset(g.examples) <= frozenset(SALARY) or frozenset(g.examples) <= frozenset(MALPRACTICE) for g in gaps
    } == {True}
    assert sum(g.disliked for g in gaps) == 4 and sum(g.declined for g in gaps) == 6
    assert all(len(g.examples) == 3 for g in gaps)
    salary = next(g for g in gaps if g.examples[0] in SALARY)
    assert salary.first == start and salary.last == start + timedelta(hours=8)
    as_json = salary.to_json()
    assert as_json["first"] == "2026-12-01T00:00:00+00:00" and as_json["nearest"] is None
