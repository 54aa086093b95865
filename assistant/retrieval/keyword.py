"""Keyword side of retrieval: BM25 over chunk texts (bm25s, English stemming), and keyword support.

`Support` is the gate's keyword evidence (IDF-weighted coverage of the question's terms, and
whether its key terms stand together as a phrase); `piece_weights` gives late interaction its
per-piece idf weights from the same tokenization.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import bm25s
import numpy as np
import Stemmer

PREFIX_LETTERS = 5  # unknown_terms: shortest shared beginning that makes two terms one word
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

    def term_weights(self, text: str) -> dict[str, float]:
        """The text's distinct terms (stemmed; stopwords and question words removed), each with its idf."""
        n = max(1, len(self.ids))
        terms = [t for t in self._tokens([text])[0] if t not in QUESTION_WORDS]
        return {t: math.log((n + 1) / (self._df.get(t, 0) + 0.5)) for t in terms}

    def terms_of(self, texts: Sequence[str]) -> list[set[str]]:
        """Each text's terms, tokenized as the index's chunks were."""
        return [set(t) for t in self._tokens(list(texts))] if texts else []

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
        words: list[str | None] = []
        for start, end in offsets:
            if not any(ch.isalnum() for ch in text[start:end]):
                words.append(None)
                continue
            while start > 0 and text[start - 1].isalnum():
                start -= 1
            while end < len(text) and text[end].isalnum():
                end += 1
            words.append(text[start:end])
        distinct = sorted({w for w in words if w is not None})
        known: dict[str | None, float] = {None: 0.0}
        for word, terms in zip(distinct, self._tokens(distinct) if distinct else [], strict=True):  # one call
            df = self._df.get(terms[0], 0) if terms else 0  # no terms: a stopword
            known[word] = math.log((n - df + 0.5) / (df + 0.5) + 1) if terms else 0.0
        return np.asarray([known[w] for w in words], dtype=np.float32)

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
        return [(self.ids[i], float(scores[i])) for i in top_scores(scores, k)]


def top_scores(scores: np.ndarray, k: int) -> list[int]:
    """Indices of the k highest positive scores, best first."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    top = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in sorted(top, key=lambda i: -scores[i]) if scores[i] > 0]
