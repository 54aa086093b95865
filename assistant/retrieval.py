"""Retrieval: question -> ranked passages, by dense search and BM25 fused on their scores.

Each side proposes candidates (the nearest chunks by cosine, the best chunks by BM25); every
candidate then gets both scores exactly (the cosine from its stored vector, the BM25 score
from the keyword index) and a fused score:

    fused = cosine + keyword_weight x confidence x BM25 / best BM25

`confidence` = (best - 10th best BM25 score) / best: how much BM25's top stands out. When
many chunks match the question's words about equally (a disease named in every passage about
it), BM25 cannot tell them apart and the cosine decides; when a few chunks share the
question's rare words, BM25 weighs in fully.

The best `late_candidates` by fused score are then re-scored by late interaction
(interaction.py): each question word piece is matched with its closest word piece of the chunk,

    score = fused + late_weight x (mean over the question's pieces, each weighted by its
                                   word's idf, of the best cosine with a piece of the chunk)

No score depends on how deep the candidate lists go, so asking for more candidates (as the
evaluation does) adds passages below the chat's top k without reordering it. Tuned on SciFact
train; docs/retrieval.md has the ablation.

Only chunks that the document manifest currently points to are returned ("live" chunks), so
a question asked during a re-ingest sees each document wholly old or wholly new.
"""

from __future__ import annotations

import bisect
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

from assistant.interaction import maxsim
from assistant.models import QuestionVectors, SentenceEmbeddings
from assistant.store import Store, StoredChunk

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalConfig:
    """Knobs of the hybrid retriever (tuned on SciFact train; see docs/retrieval.md)."""

    dense_candidates: int = 40  # nearest chunks by cosine (rank_documents goes deeper)
    keyword_candidates: int = 40  # best chunks by BM25 (rank_documents goes deeper)
    keyword_weight: float = 0.8  # weight of BM25 / best BM25 at full confidence
    confidence_rank: int = 10  # BM25 confidence compares the best score with this rank's
    bm25_k1: float = 0.9
    bm25_b: float = 0.4
    duplicate_jaccard: float = 0.8
    late_candidates: int = 30  # the best fused chunks, re-scored by late interaction
    late_weight: float = 1.0  # weight of the late-interaction score added to theirs


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk with its cosine similarity to the question and its fused score."""

    chunk: StoredChunk
    similarity: float
    fused: float

    @property
    def place(self) -> tuple[str, str]:
        """Guide and section: what a citation names, so two chunks of one section share a number."""
        return self.chunk.source, self.chunk.section


PREFIX_LETTERS = 5  # unknown_terms: shortest shared beginning that makes two terms one word
_WORD = re.compile(r"(?u)\b\w\w+\b")
# Stemmed tokens that frame a question rather than name its subject (bm25s' English stopwords
# already drop "is", "the", "of"...).
QUESTION_WORDS = frozenset(
    "what how who whom whose where when whi which do doe did can could should would will "  # noqa: SIM905
    "i me my mine we our you your tell explain pleas mean defin get".split()
)


@dataclass(frozen=True)
class Support:
    """How far retrieved texts support a question, beyond the cosine.

    coverage: IDF-weighted share of the question's terms found in the texts (0..1); terms the
        corpus has never seen weigh most, so "how do I become a pilot?" scores low even though
        "become" is common in the guides.
    phrase: the question's key terms (its stemmed tokens without question words such as
        "what", "how", "my"), two or more, appear together and in order in one text. "What is
        just culture?" -> "just cultur", found in "a just culture approach": strong evidence for
        a term of art the encoder does not know, where scattered words are not.
    """

    coverage: float
    phrase: bool


def _phrase_in(question_tokens: list[str], passages: list[list[str]]) -> bool:
    terms = [t for t in question_tokens if t not in QUESTION_WORDS]
    if len(terms) < 2:
        return False
    for tokens in passages:
        kept = [t for t in tokens if t not in QUESTION_WORDS]
        if any(kept[i : i + len(terms)] == terms for i in range(len(kept) - len(terms) + 1)):
            return True
    return False


class KeywordIndex:
    """BM25 over chunk texts (English stemming, stopwords removed)."""

    def __init__(self, ids: Sequence[str], texts: Sequence[str], k1: float, b: float) -> None:
        self.ids = list(ids)
        self.position = {chunk_id: n for n, chunk_id in enumerate(self.ids)}
        self._stemmer = Stemmer.Stemmer("english")
        self._bm25 = bm25s.BM25(k1=k1, b=b)
        self._df: Counter[str] = Counter()
        if self.ids:
            tokens = self._tokens(list(texts))
            for doc in tokens:
                self._df.update(set(doc))
            self._bm25.index(tokens, show_progress=False)
        self._vocabulary = sorted(self._df)  # for unknown_terms' prefix lookups

    def _tokens(self, texts: list[str]) -> list[list[str]]:
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=self._stemmer, return_ids=False, show_progress=False)
        return [list(t) for t in tokens]

    def support(self, question: str, texts: Sequence[str]) -> Support:
        """How far these texts support the question, from one tokenization of each."""
        terms = self._tokens([question])[0]
        passages = self._tokens(list(texts)) if texts else []
        return Support(self._coverage(set(terms), passages), _phrase_in(terms, passages))

    def unknown_terms(self, text: str) -> list[str]:
        """The text's terms (stemmed, stopwords removed) that no indexed chunk contains.

        A term of 5+ letters counts as known when it extends a known term or a known term
        extends it ("directorship" after "director"), which the stemmer does not catch.
        """
        return [t for t in self._tokens([text])[0] if not self._known(t)]

    def _known(self, term: str) -> bool:
        if term in self._df:
            return True
        if len(term) < PREFIX_LETTERS:
            return False
        if any(term[:n] in self._df for n in range(PREFIX_LETTERS, len(term))):
            return True
        at = bisect.bisect_left(self._vocabulary, term)
        return at < len(self._vocabulary) and self._vocabulary[at].startswith(term)

    def _coverage(self, terms: set[str], passages: list[list[str]]) -> float:
        if not terms:
            return 0.0
        n = max(1, len(self.ids))
        found = set().union(*(set(t) for t in passages))
        weight = {t: math.log((n + 1) / (self._df.get(t, 0) + 0.5)) for t in terms}
        total = sum(weight.values())
        return sum(w for t, w in weight.items() if t in found) / total if total > 0 else 0.0

    def piece_weights(self, text: str, offsets: Sequence[tuple[int, int]]) -> np.ndarray:
        """A weight per word piece of `text` (at `offsets`) for late interaction.

        The weight is the BM25 idf of the word the piece is part of: 0 for a stopword or a
        piece of punctuation, highest for a word few chunks contain.
        """
        n = len(self.ids)
        known: dict[str, float] = {}
        weights = []
        for start, end in offsets:
            if not any(ch.isalnum() for ch in text[start:end]):
                weights.append(0.0)
                continue
            while start > 0 and text[start - 1].isalnum():
                start -= 1
            while end < len(text) and text[end].isalnum():
                end += 1
            word = text[start:end]
            if word not in known:
                terms = self._tokens([word])[0]  # none for a stopword
                df = self._df.get(terms[0], 0) if terms else 0
                known[word] = math.log((n - df + 0.5) / (df + 0.5) + 1) if terms else 0.0
            weights.append(known[word])
        return np.asarray(weights, dtype=np.float32)

    def scores(self, query: str) -> np.ndarray:
        """The BM25 score of every indexed chunk (in `ids` order) for a query; zeros if no term is known."""
        if not self.ids:
            return np.zeros(0, dtype=np.float32)
        vocab = self._bm25.vocab_dict
        terms = [t for t in self._tokens([query])[0] if t in vocab]
        if not terms:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._bm25.get_scores(terms), dtype=np.float32)

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """Top-k (chunk id, BM25 score) with a positive score."""
        scores = self.scores(query)
        return [(self.ids[i], float(scores[i])) for i in _top(scores, k)]


def _top(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k highest positive scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in sorted(top, key=lambda i: -scores[i]) if scores[i] > 0]


def fuse(cosine: np.ndarray, keyword: np.ndarray, keyword_top: np.ndarray, config: RetrievalConfig) -> np.ndarray:
    """Fused scores of candidates from their cosines and BM25 scores.

    `keyword_top` holds the question's best BM25 scores over the whole index, best first
    (at least `config.confidence_rank` of them when the index is that large).
    """
    best = float(keyword_top[0]) if len(keyword_top) else 0.0
    if best <= 0:
        return cosine.astype(np.float32)
    rank = config.confidence_rank - 1
    floor = float(keyword_top[rank]) if len(keyword_top) > rank else 0.0
    confidence = (best - max(floor, 0.0)) / best
    return (cosine + config.keyword_weight * confidence * keyword / best).astype(np.float32)


@dataclass(frozen=True)
class _Ranking:
    """Candidates of one question, best first, with what is known of them so far."""

    ids: list[str]
    fused: dict[str, float]
    similarity: dict[str, float]
    chunks: dict[str, StoredChunk]


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
        self._source: dict[str, str] = {}  # live chunk id -> its document's source
        self._keyword = KeywordIndex([], [], self.config.bm25_k1, self.config.bm25_b)

    def refresh(self, force: bool = False) -> None:
        """Rebuild the live-chunk set and keyword index if the store's generation moved."""
        generation = self.store.generation()
        if generation == self._generation and not force:
            return
        with self._lock:
            if generation == self._generation and not force:
                return
            source = {i: s for s, record in self.store.documents().items() for i in record.chunk_ids}
            ids, texts = self.store.all_texts()
            kept = [(i, t) for i, t in zip(ids, texts) if i in source]
            keyword = KeywordIndex([i for i, _ in kept], [t for _, t in kept], self.config.bm25_k1, self.config.bm25_b)
            self._source, self._keyword, self._generation = source, keyword, generation
            logger.info("keyword index rebuilt: %d live chunks (generation %d)", len(kept), generation)

    def support(self, question: str, passages: Sequence[Passage]) -> Support:
        """Keyword coverage and exact-phrase evidence of the passages (see Support)."""
        return self._keyword.support(question, [p.chunk.text for p in passages])

    def unknown_terms(self, text: str) -> list[str]:
        """Terms of the text that no live chunk contains (see KeywordIndex.unknown_terms)."""
        self.refresh()
        return self._keyword.unknown_terms(text)

    @property
    def live_chunks(self) -> int:
        """How many chunks the manifest points to."""
        return len(self._source)

    def retrieve(self, question: str, k: int) -> list[Passage]:
        """The k best passages for a question, near-duplicates removed."""
        ranking = self._rank(question, 0)
        missing = [i for i in ranking.ids[: k * 3] if i not in ranking.chunks]
        chunks = {**ranking.chunks, **{c.id: c for c in self.store.get_chunks(missing)}}
        passages: list[Passage] = []
        kept_words: list[set[str]] = []
        for chunk_id in ranking.ids:
            if chunk_id not in chunks:
                continue
            chunk = chunks[chunk_id]
            words = _words(chunk.text)
            if any(_near_duplicate(words, other, self.config.duplicate_jaccard) for other in kept_words):
                continue
            passages.append(Passage(chunk, ranking.similarity[chunk_id], ranking.fused[chunk_id]))
            kept_words.append(words)
            if len(passages) == k:
                break
        return passages

    def rank_documents(self, question: str, n: int) -> list[tuple[str, float]]:
        """The n best documents as (source, score of its best chunk), for evaluation.

        Same ranking as `retrieve`, with candidate lists deep enough for n documents and no
        near-duplicate filter (distinct documents that say the same are both listed).
        """
        ranking = self._rank(question, n)
        ranked: dict[str, float] = {}
        for chunk_id in ranking.ids:
            source = self._source[chunk_id]
            if source not in ranked:
                ranked[source] = ranking.fused[chunk_id]
                if len(ranked) == n:
                    break
        return list(ranked.items())

    def _rank(self, question: str, documents: int) -> _Ranking:
        """Fuse both sides' candidates; deeper lists when `documents` more are wanted."""
        self.refresh()
        cfg = self.config
        depth = 3 * documents  # a document has a few chunks
        encoded = self.embedder.encode_question(question)
        query_vector = np.asarray(encoded.vector, dtype=np.float32)
        source, keyword = self._source, self._keyword
        dense = [(c, s) for c, s in self.store.search(query_vector, max(cfg.dense_candidates, depth)) if c.id in source]
        scores = keyword.scores(question)
        top = _top(scores, max(cfg.keyword_candidates, depth, cfg.confidence_rank))
        lexical = [keyword.ids[i] for i in top[: max(cfg.keyword_candidates, depth)]]
        chunks = {c.id: c for c, _ in dense}
        similarity = {c.id: s for c, s in dense}
        missing = [i for i in lexical if i not in similarity]
        for chunk_id, vector in self.store.get_vectors(missing).items():
            similarity[chunk_id] = float(vector @ query_vector)
        ids = list(similarity)
        position = keyword.position
        bm25 = np.asarray([scores[position[i]] if i in position else 0.0 for i in ids], dtype=np.float32)
        cosine = np.asarray([similarity[i] for i in ids], dtype=np.float32)
        fused_scores = fuse(cosine, bm25, scores[top[: cfg.confidence_rank]], cfg)
        fused = {i: float(f) for i, f in zip(ids, fused_scores)}
        ids.sort(key=lambda i: -fused[i])
        fused = self._interact(question, encoded, ids, fused, chunks, keyword)
        ids.sort(key=lambda i: -fused[i])
        return _Ranking(ids=ids, fused=fused, similarity=similarity, chunks=chunks)

    def _interact(
        self,
        question: str,
        encoded: QuestionVectors,
        ids: list[str],
        fused: dict[str, float],
        chunks: dict[str, StoredChunk],
        keyword: KeywordIndex,
    ) -> dict[str, float]:
        """Re-score the best fused chunks with late interaction (interaction.py).

        Each of the `late_candidates` best gets `late_weight` x its late-interaction score; a
        chunk further down gets the same as the lowest of them, so it stays below them all and
        keeps its order. Chunks fetched here (BM25-only candidates) are added to `chunks`.
        An index built before chunks stored their token vectors keeps the fused order.
        """
        cfg = self.config
        top = ids[: cfg.late_candidates]
        if not top or cfg.late_weight == 0:
            return fused
        chunks.update({c.id: c for c in self.store.get_chunks([i for i in top if i not in chunks])})
        bits = [chunks[i].token_bits if i in chunks else np.zeros((0, 0), np.uint8) for i in top]
        if any(len(b) == 0 for b in bits):
            logger.debug("no token vectors stored (index built before them): fused order kept")
            return fused
        weights = keyword.piece_weights(question, encoded.offsets)
        late = maxsim(encoded.tokens, weights, bits)
        floor = float(late.min())
        rescored = {i: f + cfg.late_weight * floor for i, f in fused.items()}
        for chunk_id, score in zip(top, late):
            rescored[chunk_id] = fused[chunk_id] + cfg.late_weight * float(score)
        return rescored


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower()))


def _near_duplicate(wa: set[str], wb: set[str], threshold: float) -> bool:
    if not wa or not wb:
        return False
    return len(wa & wb) / len(wa | wb) >= threshold
