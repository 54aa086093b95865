"""Late interaction: token vectors stored as sign bits, and MaxSim over them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from assistant.documents.loading import Document
from assistant.embedding.interaction import maxsim, pack_tokens, unpack_tokens
from assistant.embedding.models import SentenceEmbeddings
from assistant.index.store import Store, build_client, collection_suffix
from assistant.ingest.sync import sync_documents
from assistant.retrieval.fusion import RetrievalConfig
from assistant.retrieval.keyword import KeywordIndex
from assistant.retrieval.retriever import Retriever
from conftest import settings_for


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_sign_bits_keep_each_dimension_sign_at_unit_length() -> None:
    tokens = np.random.default_rng(1).normal(size=(7, 384)).astype(np.float32)
    bits = pack_tokens(tokens)
    assert bits.shape == (7, 48) and bits.dtype == np.uint8
    back = unpack_tokens(bits, 384)
    assert np.array_equal(back > 0, tokens > 0)
    assert np.linalg.norm(back, axis=1) == pytest.approx(np.ones(7))


def test_a_chunk_holding_each_question_piece_outscores_one_holding_some() -> None:
    rng = np.random.default_rng(2)
    question = _unit(rng.normal(size=(3, 384)))
    noise = _unit(rng.normal(size=(20, 384)))
    everything = pack_tokens(np.vstack([noise, question]))
    two_of_three = pack_tokens(np.vstack([noise, question[:2]]))
    scores = maxsim(question, np.ones(3, np.float32), [everything, two_of_three, pack_tokens(noise)])
    assert scores[0] > scores[1] > scores[2]


def test_a_piece_of_weight_zero_does_not_count_and_a_chunk_without_tokens_scores_zero() -> None:
    rng = np.random.default_rng(3)
    question = _unit(rng.normal(size=(2, 384)))
    noise = _unit(rng.normal(size=(20, 384)))
    has_first = pack_tokens(np.vstack([noise, question[:1]]))
    has_second = pack_tokens(np.vstack([noise, question[1:]]))
    weighted = maxsim(question, np.asarray([0.0, 1.0], np.float32), [has_first, has_second])
    assert weighted[1] > weighted[0]
    equal = maxsim(question, np.zeros(2, np.float32), [has_first, has_second])  # all zero: equal weights
    assert equal[0] == pytest.approx(equal[1], abs=0.05)
    assert maxsim(question, np.ones(2, np.float32), [np.zeros((0, 0), np.uint8)])[0] == 0.0


def test_maxsim_is_the_weighted_mean_of_each_piece_best_cosine_with_the_unpacked_vectors() -> None:
    rng = np.random.default_rng(4)
    question = _unit(rng.normal(size=(5, 384)))
    weights = np.asarray([0.0, 2.0, 0.0, 1.0, 0.5], np.float32)  # stopwords and punctuation weigh 0
    chunks = [pack_tokens(rng.normal(size=(n, 384))) for n in (3, 9, 1)]
    expected = [float(weights @ (question @ unpack_tokens(bits, 384).T).max(axis=1) / weights.sum()) for bits in chunks]
    assert maxsim(question, weights, chunks) == pytest.approx(expected, abs=1e-5)


def test_piece_weights_are_the_idf_of_their_word_and_zero_for_stopwords_and_punctuation() -> None:
    index = KeywordIndex(
        ["a", "b", "c"],
        ["The medical director leads.", "A medical director reviews policies.", "Credentialing of medical staff."],
        0.9,
        0.4,
    )
    text = "What is credentialing for a medical director?"
    starts = [text.index(w) for w in ("credentialing", "medical", "director")]
    offsets = [(5, 7)] + [(s, s + 4) for s in starts] + [(len(text) - 1, len(text))]  # "is", ..., "?"
    stopword, credentialing, medical, director, mark = index.piece_weights(text, offsets)
    assert stopword == 0.0 and mark == 0.0
    assert credentialing > director > medical > 0  # a piece of a word counts as the whole word


SPECIALTY = "Board certification in internal medicine follows residency and a written examination."
LICENCE = "A state medical board grants the license to practise; renewal needs continuing education."


def test_late_interaction_reorders_only_the_best_fused_chunks(tmp_path: Path, embedder: SentenceEmbeddings) -> None:
    settings = settings_for(tmp_path / "index")
    store = Store(build_client(settings), collection_suffix(settings))
    texts = {f"g{n}.md": f"# Guide {n}\n\n{SPECIALTY if n % 2 else LICENCE} Section {n}." for n in range(8)}
    docs = [Document(source=s, title=s, text=t, content_hash=f"hash-{s}", root="") for s, t in texts.items()]
    sync_documents(docs, store, embedder, settings)
    question = "Which examination leads to board certification?"
    plain = Retriever(store, embedder, RetrievalConfig(late_weight=0))._rank(question, 0)
    late = Retriever(store, embedder, RetrievalConfig(late_candidates=3))._rank(question, 0)
    assert set(late.ids[:3]) == set(plain.ids[:3])  # only the best 3 are re-scored ...
    assert late.ids[3:] == plain.ids[3:]  # ... the rest keep their fused order below them
    scores = [late.fused[i] for i in late.ids]
    assert scores == sorted(scores, reverse=True)
    assert all(late.fused[i] > plain.fused[i] for i in late.ids)  # token matches add evidence
