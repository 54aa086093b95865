"""Late interaction: how well a chunk's words match the question's, token by token.

The encoder pass that embeds a chunk also yields a vector per word piece (its "token
vectors"). Each question word piece is matched with its most similar word piece of the chunk,
and the chunk's score is the mean of those best matches, each question piece weighted by how
rare its word is (ColBERT's MaxSim, here zero-shot with all-MiniLM-L6-v2, which was not trained
for it; docs/retrieval.md has the measurements). It catches what one vector per chunk blurs: a
passage that has a close match for every term of the question.

A chunk's token vectors are stored as their signs only (one bit per dimension, 48 bytes a
token for MiniLM): measured on SciFact train, the signs score as well as the full vectors, and
they cost about as much space as the sentence vectors stored beside them.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

_BLAS: Any = None
_BLAS_LOCK = threading.Lock()


def _one_blas_thread() -> Any:
    """A context that keeps numpy's BLAS on one thread.

    The product in `maxsim` is big enough for OpenBLAS to start its threads, which then spin
    after it and slow the next question's ONNX pass and Chroma reads: on the guides, retrieval
    p50 went from 22 to 35 ms. One thread does the product itself in about 4 ms.
    """
    global _BLAS
    with _BLAS_LOCK:
        if _BLAS is None:
            from threadpoolctl import ThreadpoolController

            _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def pack_tokens(tokens: np.ndarray) -> np.ndarray:
    """A chunk's token vectors (n, dim) as sign bits (n, dim / 8), for storing."""
    return np.packbits(np.asarray(tokens) > 0, axis=1)


def unpack_tokens(bits: np.ndarray, dim: int) -> np.ndarray:
    """Sign bits back to vectors of +-1/sqrt(dim): unit length, comparable by dot product."""
    signs = np.unpackbits(bits, axis=1, count=dim).astype(np.float32)
    return (2.0 * signs - 1.0) / np.sqrt(dim)


def maxsim(question: np.ndarray, weights: np.ndarray, chunks: Sequence[np.ndarray]) -> np.ndarray:
    """The late-interaction score of each chunk (given as sign bits) for a question.

    `question` holds the question's word-piece vectors (unit length, one row per piece),
    `weights` one weight per piece (0 leaves a piece out; all 0 weighs them equally).
    Returns one score per chunk: the weighted mean over question pieces of the best cosine
    with any piece of the chunk. A chunk without token vectors scores 0.
    """
    scores = np.zeros(len(chunks), dtype=np.float32)
    present = [n for n, bits in enumerate(chunks) if len(bits)]
    if len(question) == 0 or not present:
        return scores
    total = float(weights.sum())
    share = weights / total if total > 0 else np.full(len(question), 1.0 / len(question), dtype=np.float32)
    question = np.asarray(question, dtype=np.float32)
    kept = share > 0  # a piece of weight 0 (a stopword, punctuation) adds nothing: not computed
    question, share = question[kept], share[kept]
    # q . (2b - 1) / sqrt(dim) for the bits b of every chunk piece at once (unpack_tokens' vectors,
    # without materialising them), then the best match within each chunk's rows
    dim = question.shape[1]
    bits = np.unpackbits(np.concatenate([chunks[n] for n in present]), axis=1, count=dim).view(np.int8)
    with _one_blas_thread():
        products = question @ bits.T.astype(np.float32)
    cosines = (2 * products - question.sum(axis=1, keepdims=True)) / np.sqrt(dim)
    starts = np.cumsum([0] + [len(chunks[n]) for n in present[:-1]])
    best = np.maximum.reduceat(cosines, starts, axis=1)  # (question pieces, chunks)
    scores[present] = share @ best
    return scores
