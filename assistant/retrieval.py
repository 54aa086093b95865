"""Retrieval: question -> ranked passages, by dense search and BM25 fused with reciprocal rank.

Only chunks that the document manifest currently points to are returned ("live" chunks), so
a question asked during a re-ingest sees each document wholly old or wholly new.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer

from assistant.models import SentenceEmbeddings
from assistant.store import Store, StoredChunk

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalConfig:
    """Knobs of the hybrid retriever (tuned on SciFact train; see docs/retrieval.md)."""

    dense_candidates: int = 40
    keyword_candidates: int = 40
    rrf_k: int = 20
    dense_weight: float = 1.0
    keyword_weight: float = 0.6
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    duplicate_jaccard: float = 0.8


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its cosine similarity to the question and its fused rank score."""

    chunk: StoredChunk
    similarity: float
    fused: float


_WORD = re.compile(r"(?u)\b\w\w+\b")


class KeywordIndex:
    """BM25 over chunk texts (English stemming, stopwords removed)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], k1: float, b: float) -> None:
        self.ids = list(ids)
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        self._df: Counter[str] = Counter()
        if self.ids:
            tokens = self._tokens(list(texts))
            for doc in tokens:
                self._df.update(set(doc))
            self._bm25.index(tokens, show_progress=False)

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)
        return [list(t) for t in tokens]

    def coverage(self, question: str, texts: Sequence[str]) -> float:
        """IDF-weighted share of the question's terms found in these texts (0..1).

        Terms the corpus has never seen weigh most, so "how do I become a pilot?" scores low
        even though "become" is common in the guides.
        """
        terms = set(self._tokens([question])[0])
        if not terms:
            return 0.0
        n = max(1, len(self.ids))
        found = set().union(*(set(t) for t in self._tokens(list(texts)))) if texts else set()
        weight = {t: math.log((n + 1) / (self._df.get(t, 0) + 0.5)) for t in terms}
        total = sum(weight.values())
        return sum(w for t, w in weight.items() if t in found) / total if total > 0 else 0.0

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) with a positive score."""
        if not self.ids:
            return []
        vocab = self._bm25.vocab_dict
        terms = [t for t in self._tokens([query])[0] if t in vocab]
        if not terms:
            return []
        scores = self._bm25.get_scores(terms)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        ranked = sorted(top, key=lambda i: -scores[i])
        return [(self.ids[i], float(scores[i])) for i in ranked if scores[i] > 0]


class Retriever:
    """Hybrid retriever over a Store; refreshes its keyword index when the store changes.

    Example::

        retriever = Retriever(store, embedder)
        passages = retriever.retrieve("How long is residency?", k=5)
    """

    def __init__(self, store: Store, embedder: SentenceEmbeddings, config: RetrievalConfig | None = None) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self._lock = threading.Lock()
        self._generation = -1
        self._live: frozenset[str] = frozenset()
        self._keyword = KeywordIndex([], [], self.config.bm25_k1, self.config.bm25_b)

    def refresh(self, force: bool = False) -> None:
        """Rebuild the live-chunk set and keyword index if the store's generation moved."""
        generation = self.store.generation()
        if generation == self._generation and not force:
            return
        with self._lock:
            if generation == self._generation and not force:
                return
            live = frozenset(i for record in self.store.documents().values() for i in record.chunk_ids)
            ids, texts = self.store.all_texts()
            kept = [(i, t) for i, t in zip(ids, texts) if i in live]
            keyword = KeywordIndex([i for i, _ in kept], [t for _, t in kept], self.config.bm25_k1, self.config.bm25_b)
            self._live, self._keyword, self._generation = live, keyword, generation
            logger.info("keyword index rebuilt: %d live chunks (generation %d)", len(kept), generation)

    def coverage(self, question: str, passages: Sequence[Passage]) -> float:
        """How much of the question's vocabulary the passages contain (see KeywordIndex.coverage)."""
        return self._keyword.coverage(question, [p.chunk.text for p in passages])

    @property
    def live_chunks(self) -> int:
        """How many chunks the manifest points to."""
        return len(self._live)

    def retrieve(self, question: str, k: int) -> list[Passage]:
        """The k best passages for a question, near-duplicates removed."""
        self.refresh()
        cfg = self.config
        query_vector = np.asarray(self.embedder.embed_query(question), dtype=np.float32)
        live, keyword = self._live, self._keyword
        dense = [(c, s) for c, s in self.store.search(query_vector, cfg.dense_candidates) if c.id in live]
        lexical = [(i, s) for i, s in keyword.search(question, cfg.keyword_candidates) if i in live]
        fused: dict[str, float] = {}
        for rank, (chunk, _) in enumerate(dense):
            fused[chunk.id] = fused.get(chunk.id, 0.0) + cfg.dense_weight / (cfg.rrf_k + rank + 1)
        for rank, (chunk_id, _) in enumerate(lexical):
            fused[chunk_id] = fused.get(chunk_id, 0.0) + cfg.keyword_weight / (cfg.rrf_k + rank + 1)
        chunks = {c.id: c for c, _ in dense}
        similarity = {c.id: s for c, s in dense}
        ranked = sorted(fused, key=lambda i: -fused[i])
        missing = [i for i in ranked[: k * 3] if i not in chunks]
        for chunk in self.store.get_chunks(missing):
            chunks[chunk.id] = chunk
        for chunk_id, vector in self.store.get_vectors(missing).items():
            similarity[chunk_id] = float(vector @ query_vector)
        passages: list[Passage] = []
        for chunk_id in ranked:
            if chunk_id not in chunks:
                continue
            chunk = chunks[chunk_id]
            if any(_near_duplicate(chunk.text, p.chunk.text, cfg.duplicate_jaccard) for p in passages):
                continue
            passages.append(Passage(chunk, similarity.get(chunk_id, 0.0), fused[chunk_id]))
            if len(passages) == k:
                break
        return passages


def _near_duplicate(a: str, b: str, threshold: float) -> bool:
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    if not wa or not wb:
        return False
    return len(wa & wb) / len(wa | wb) >= threshold
