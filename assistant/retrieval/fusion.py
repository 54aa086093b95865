"""Fusion of the dense and keyword sides, and the retriever's settings.

    fused = cosine + keyword_weight x confidence x BM25 / best BM25

`confidence` = (best - 10th best BM25 score) / best: how much BM25's top stands out. When many
chunks match the question's words about equally, BM25 cannot tell them apart and the cosine
decides; when a few chunks share the question's rare words, BM25 weighs in fully.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
