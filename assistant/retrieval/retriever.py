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
a question asked during a re-ingest sees each document wholly old or wholly new. Records and
vectors read from the index are kept in a bounded cache (cache.py), emptied whenever the
index's generation moves.
"""

from __future__ import annotations

import atexit
import logging
import re
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from assistant.embedding.interaction import maxsim
from assistant.embedding.models import QuestionVectors, SentenceEmbeddings
from assistant.index.store import Store, StoredChunk
from assistant.retrieval.cache import LruCache
from assistant.retrieval.fusion import RetrievalConfig, fuse
from assistant.retrieval.keyword import KeywordIndex, Support, top_scores

logger = logging.getLogger(__name__)

_WORD = re.compile(r"(?u)\b\w\w+\b")  # words for the near-duplicate test
# Chunk records fetched for retrieve's top k: a few more than k, since near-duplicates are skipped.
FETCH_FACTOR = 3
WARM_BATCH = 500  # records read per Chroma call when warming the cache
KEYWORD_THREADS = 8  # questions whose BM25 side can run at once, beside their encoding
CACHE_BYTES = 256 * 2**20  # default budget of the record cache (Settings.retrieval_cache_mb)


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

    def __init__(
        self,
        store: Store,
        embedder: SentenceEmbeddings,
        config: RetrievalConfig | None = None,
        cache_bytes: int = CACHE_BYTES,
        warm: bool = False,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self.records: LruCache[StoredChunk] = LruCache(cache_bytes, _record_bytes)
        self.vectors: LruCache[np.ndarray] = LruCache(cache_bytes // 8, lambda v: int(v.nbytes))
        self._keyword_pool = ThreadPoolExecutor(KEYWORD_THREADS, thread_name_prefix="keyword")
        self.words: LruCache[frozenset[str]] = LruCache(cache_bytes // 8, lambda w: 60 * len(w))  # near-duplicates
        self._lock = threading.Lock()
        self._generation = -1
        self._source: dict[str, str] = {}  # live chunk id -> its document's source
        self._keyword = KeywordIndex([], [], self.config.bm25_k1, self.config.bm25_b)
        self._warm = warm  # read the live chunks' records into the cache after each rebuild
        self.warmed = threading.Event()  # set once that read is done (or stopped, or not wanted)
        self.warmed.set()
        self._warmer: threading.Thread | None = None
        _RETRIEVERS.add(self)

    def refresh(self, force: bool = False) -> None:
        """Rebuild the live-chunk set and keyword index if the store's generation moved."""
        generation = self.store.latest_generation()
        if generation == self._generation and not force:
            return
        with self._lock:
            if generation == self._generation and not force:
                return
            source = {i: s for s, record in self.store.documents().items() for i in record.chunk_ids}
            ids, texts = self.store.all_texts()
            kept = [(i, t) for i, t in zip(ids, texts) if i in source]
            keyword = KeywordIndex([i for i, _ in kept], [t for _, t in kept], self.config.bm25_k1, self.config.bm25_b)
            self.clear_cache()
            self._source, self._keyword, self._generation = source, keyword, generation
            logger.info("keyword index rebuilt: %d live chunks (generation %d)", len(kept), generation)
            if self._warm:
                self.warmed.clear()
                live = [i for i, _ in kept]
                self._warmer = threading.Thread(target=self._warm_cache, args=(generation, live), daemon=True)
                self._warmer.start()

    def _warm_cache(self, generation: int, ids: list[str]) -> None:
        """Read the live chunks' records into the cache, a batch at a time, until it is nearly full.

        In the background after each rebuild, so the first questions are not kept waiting. With
        every record of 1,000 guides (72 MB) in memory, retrieval p95 went from about 10 to 7.5 ms
        (the tail was questions whose candidates had not been read before; docs/history.md).
        """
        try:
            for start in range(0, len(ids), WARM_BATCH):
                if self._generation != generation or self.records.bytes >= 0.9 * self.records.max_bytes:
                    break  # the index moved on (its own warming follows), or the cache is full
                if _EXITING.is_set():
                    break
                self._chunks(ids[start : start + WARM_BATCH])
            logger.debug("record cache warmed: %d chunks, %d MB", len(self.records), self.records.bytes >> 20)
        except Exception:  # the index went away (a closed client, a deleted folder): reads stay on demand
            logger.debug("warming the record cache stopped", exc_info=True)
        finally:
            if self._generation == generation:  # else the newer rebuild's warming sets it
                self.warmed.set()

    def clear_cache(self) -> None:
        """Forget the records, vectors and word sets read so far (the index changed, or a benchmark
        times questions as if no one had asked before)."""
        for cache in (self.records, self.vectors, self.words):
            cache.clear()

    def support(self, question: str, passages: Sequence[Passage]) -> Support:
        """Keyword coverage and exact-phrase evidence of the passages (see Support)."""
        return self._keyword.support(question, [p.chunk.text for p in passages])

    def term_weights(self, text: str) -> dict[str, float]:
        """The text's terms with their idf over the live chunks (see KeywordIndex.term_weights)."""
        self.refresh()
        return self._keyword.term_weights(text)

    def terms_of(self, texts: Sequence[str]) -> list[set[str]]:
        """Each text's terms, tokenized as the keyword index tokenizes chunks."""
        return self._keyword.terms_of(texts)

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
        missing = [i for i in ranking.ids[: k * FETCH_FACTOR] if i not in ranking.chunks]
        chunks = {**ranking.chunks, **self._chunks(missing)}
        every_words = self.words.get_many(list(chunks), lambda ids: {i: _words(chunks[i].text) for i in ids})
        passages: list[Passage] = []
        kept_words: list[frozenset[str]] = []
        for chunk_id in ranking.ids:
            if chunk_id not in chunks:
                continue
            chunk = chunks[chunk_id]
            words = every_words[chunk_id]
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
        source, keyword = self._source, self._keyword
        # BM25 over every chunk runs in a second thread while the question is encoded and the
        # vectors searched (onnxruntime and Chroma release the GIL): ~0.4 ms off p50, ~1 ms off p95.
        keyword_side = self._keyword_pool.submit(
            _keyword_top, keyword, question, max(cfg.keyword_candidates, depth, cfg.confidence_rank)
        )
        encoded = self.embedder.encode_question(question)
        query_vector = np.asarray(encoded.vector, dtype=np.float32)
        dense = [(i, s) for i, s in self.store.nearest(query_vector, max(cfg.dense_candidates, depth)) if i in source]
        scores, top = keyword_side.result()
        lexical = [keyword.ids[i] for i in top[: max(cfg.keyword_candidates, depth)]]
        chunks: dict[str, StoredChunk] = {}  # records are read for the chunks re-scored below only
        similarity = dict(dense)
        missing = [i for i in lexical if i not in similarity]
        for chunk_id, vector in self.vectors.get_many(missing, self.store.get_vectors).items():
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
        chunks.update(self._chunks([i for i in top if i not in chunks]))
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

    def _chunks(self, ids: list[str]) -> dict[str, StoredChunk]:
        """Chunk records by id, from the cache or else in one read of the index."""
        return self.records.get_many(ids, lambda missing: {c.id: c for c in self.store.get_chunks(missing)})


# Retrievers whose warming a process's exit stops first: a daemon thread still inside a Chroma
# read when the interpreter tears down crashed `python -c` scripts (SIGSEGV) about one time in eight.
_RETRIEVERS: weakref.WeakSet[Retriever] = weakref.WeakSet()
_EXITING = threading.Event()


@atexit.register
def _stop_all_warming() -> None:
    """Each warming ends after the batch it is reading (it checks `_EXITING` between batches)."""
    _EXITING.set()
    for retriever in list(_RETRIEVERS):
        if retriever._warmer is not None:
            retriever._warmer.join(timeout=10)


def _record_bytes(chunk: StoredChunk) -> int:
    return len(chunk.text) + int(chunk.sentence_vectors.nbytes) + int(chunk.token_bits.nbytes) + 16 * len(chunk.spans)


def _keyword_top(keyword: KeywordIndex, question: str, n: int) -> tuple[np.ndarray, list[int]]:
    """Every chunk's BM25 score for the question, and the positions of the n best."""
    scores = keyword.scores(question)
    return scores, top_scores(scores, n)


def _words(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def _near_duplicate(wa: frozenset[str], wb: frozenset[str], threshold: float) -> bool:
    if not wa or not wb:
        return False
    shared = len(wa & wb)  # the union's size without building it: half the time of this test
    return shared / (len(wa) + len(wb) - shared) >= threshold
