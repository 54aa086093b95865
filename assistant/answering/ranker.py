"""Which sentence answers the question: a linear ranker learned from data, not a word list.

Each candidate sentence of the retrieved passages is described by a few features the pipeline
already has (its stored vector against the question, the idf weight of the question's terms it
holds, what it adds beyond them, its passage's rank and similarity, where it stands, the
question's type against what the sentence holds). `experiments/fit_ranker.py` fits the weights
on covid-qa's dev questions and the shipped gold questions, with folds grouped by document, and
writes them to `ranker_weights.json` beside this file; docs/answers.md has the method and figures.

The score is a conditional logit: `softmax(features @ weights)` over one question's candidates
is the chance that each sentence is the one holding the answer.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from assistant.answering.text import STOPWORDS

WEIGHTS_FILE = Path(__file__).with_name("ranker_weights.json")

# The question's type, from its wording; each meets what an answer of that type holds.
_ASKS_NUMBER = re.compile(
    r"\b(how (many|much|long|often|old|far|large|big|high)|what (percent|percentage|proportion|number|rate|"
    r"fraction|size|age|dose|ratio|length|duration|period)|number of|rate of)\b",
    re.IGNORECASE,
)
_ASKS_WHEN = re.compile(r"^\s*(when|in what year|what year|what date|what time)\b|\bwhen (was|were|did|is)\b", re.I)
_ASKS_WHO = re.compile(r"^\s*(who|whom|whose|which (organi[sz]ation|group|agency|country|company|board))\b", re.I)
_ASKS_WHY = re.compile(r"^\s*why\b|\bwhat (causes|caused|is the reason)\b", re.IGNORECASE)
_ASKS_YES_NO = re.compile(r"^\s*(is|are|does|do|can|must|should|will|was|were|has|have|did)\b", re.IGNORECASE)
_DIGIT = re.compile(r"\d")
_REFERENCE = re.compile(r"\[[\d,;\s–-]+\]")  # "[3]", "[10, 12]": citation markers are not figures
_WORD = re.compile(r"[a-z0-9]+")
_YEAR_OR_MONTH = re.compile(
    r"\b(1[89]\d\d|20\d\d|january|february|march|april|may|june|july|august|september|october|november|"
    r"december)\b",
    re.IGNORECASE,
)
_PROPER = re.compile(r"(?<=[a-z,;] )[A-Z][A-Za-z]+|\b[A-Z]{2,}\b")
_BECAUSE = re.compile(r"\b(because|due to|since|caused by|as a result|leads? to|owing to|therefore)\b", re.I)
_NEGATION = re.compile(r"\b(not|no|optional|never|without|voluntary|required|requires|must)\b", re.IGNORECASE)

FEATURES = (
    "cosine",  # the sentence's stored vector against the question's
    "cosine_gap",  # ... minus the best cosine among the candidates
    "overlap",  # share of the question's idf weight the sentence holds
    "overlap_gap",  # ... minus the best share among the candidates
    "overlap_before",  # the share the sentence before it holds (answers often follow the match)
    "overlap_after",  # the share the sentence after it holds
    "overlap_window",  # the share the sentence and its two neighbours hold together
    "rarest_term",  # 1 when the sentence holds the question's rarest term
    "terms_matched",  # log(1 + question terms the sentence holds)
    "overlap_best",  # 1 for the sentences holding the best share among the candidates
    "cosine_best",  # 1 for the sentence closest to the question in meaning
    "pairs",  # share of the question's adjacent word pairs that stand together in the sentence
    "novel_terms",  # log(1 + terms of the sentence the question does not have)
    "words",  # log of its length in words
    "passage_rank",  # 1 / (rank + 1) of its passage
    "passage_similarity",  # the passage's cosine to the question
    "heading_overlap",  # share of the question's idf weight in the guide's title and section
    "first_in_passage",  # the first sentence of its passage's body
    "position",  # where it stands in its passage, 0 (start) to 1 (end)
    "list_item",  # a list item in the guide
    "other_section",  # in a later section the chunk runs into
    "number_match",  # the question asks for a number and the sentence has a digit
    "number_missing",  # the question asks for a number and the sentence has none
    "when_match",  # "when ...?" and the sentence names a year or month
    "who_match",  # "who ...?" and the sentence names someone (capitalised words inside it)
    "why_match",  # "why ...?" and the sentence gives a reason ("because", "due to")
    "yes_no_match",  # a yes/no question and the sentence says yes or no ("not", "optional", "required")
)


@dataclass(frozen=True)
class QuestionTerms:
    """The question's terms with their idf over the index, and the tokenizer that made them."""

    weights: Mapping[str, float]
    tokenize: Callable[[list[str]], list[set[str]]]

    def share(self, terms: set[str]) -> float:
        """The share of the question's idf weight among `terms`."""
        total = sum(self.weights.values())
        return sum(w for t, w in self.weights.items() if t in terms) / total if total else 0.0


@dataclass(frozen=True)
class SentenceView:
    """What the ranker reads of one candidate sentence."""

    text: str
    cosine: float
    passage_rank: int
    passage_similarity: float
    heading: str  # the guide's title and the sentence's section
    index: int  # its place among its passage's body sentences
    count: int  # how many body sentences the passage has
    list_item: bool
    other_section: bool
    text_before: str  # the sentence before it in the passage ("" for the first)
    text_after: str = ""  # the sentence after it in the passage ("" for the last)


def features(question: str, terms: QuestionTerms, sentences: Sequence[SentenceView]) -> np.ndarray:
    """One row of FEATURES per sentence."""
    if not sentences:
        return np.zeros((0, len(FEATURES)), dtype=np.float32)
    texts = [s.text for s in sentences]
    own = terms.tokenize(texts)
    before = terms.tokenize([s.text_before for s in sentences])
    after = terms.tokenize([s.text_after for s in sentences])
    rarest = max(terms.weights, key=lambda t: terms.weights[t], default="")
    headings = terms.tokenize([s.heading for s in sentences])
    question_terms = set(terms.weights)
    overlap = [terms.share(t) for t in own]
    cosines = [s.cosine for s in sentences]
    asks = (
        bool(_ASKS_NUMBER.search(question)),
        bool(_ASKS_WHEN.search(question)),
        bool(_ASKS_WHO.search(question)),
        bool(_ASKS_WHY.search(question)),
        bool(_ASKS_YES_NO.search(question)),
    )
    asked_pairs = _pairs(question)
    rows = []
    for s, mine, prior, following, heading, share in zip(sentences, own, before, after, headings, overlap):
        digit = bool(_DIGIT.search(_REFERENCE.sub(" ", s.text)))
        rows.append(
            [
                s.cosine,
                s.cosine - max(cosines),
                share,
                share - max(overlap),
                terms.share(prior) if s.text_before else 0.0,
                terms.share(following) if s.text_after else 0.0,
                terms.share(mine | prior | following),
                float(rarest in mine),
                math.log1p(len(mine & question_terms)),
                float(share == max(overlap)),
                float(s.cosine == max(cosines)),
                len(asked_pairs & _pairs(s.text)) / len(asked_pairs) if asked_pairs else 0.0,
                math.log1p(len(mine - question_terms)),
                math.log(max(1, len(s.text.split()))),
                1.0 / (s.passage_rank + 1),
                s.passage_similarity,
                terms.share(heading),
                float(s.index == 0),
                s.index / max(1, s.count - 1),
                float(s.list_item),
                float(s.other_section),
                float(asks[0] and digit),
                float(asks[0] and not digit),
                float(asks[1] and bool(_YEAR_OR_MONTH.search(s.text))),
                float(asks[2] and bool(_PROPER.search(s.text))),
                float(asks[3] and bool(_BECAUSE.search(s.text))),
                float(asks[4] and bool(_NEGATION.search(s.text))),
            ]
        )
    return np.asarray(rows, dtype=np.float32)


def _pairs(text: str) -> set[tuple[str, str]]:
    """Adjacent distinctive words, cut to 6 letters ("viral load" in "the viral loads of")."""
    words = [w[:6] for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) > 2]
    return set(itertools.pairwise(words))


@dataclass(frozen=True)
class Ranker:
    """A linear score over FEATURES (standardised by the training data's mean and spread)."""

    weights: np.ndarray
    mean: np.ndarray
    scale: np.ndarray

    def scores(self, rows: np.ndarray) -> np.ndarray:
        """Each row's score; higher answers better. Softmax them for chances."""
        if not len(rows):
            return np.zeros(0, dtype=np.float32)
        return ((rows - self.mean) / self.scale) @ self.weights

    def to_json(self) -> dict[str, object]:
        return {
            name: {"weight": round(float(w), 4), "mean": round(float(m), 4), "scale": round(float(s), 4)}
            for name, w, m, s in zip(FEATURES, self.weights, self.mean, self.scale)
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Mapping[str, float]]) -> Ranker:
        """From `to_json`'s form; a feature the file does not name weighs nothing."""
        rows = [data.get(name, {"weight": 0.0, "mean": 0.0, "scale": 1.0}) for name in FEATURES]
        return cls(
            np.asarray([r["weight"] for r in rows], dtype=np.float32),
            np.asarray([r["mean"] for r in rows], dtype=np.float32),
            np.asarray([r["scale"] or 1.0 for r in rows], dtype=np.float32),
        )


@cache
def shipped_ranker() -> Ranker:
    """The weights fitted by experiments/fit_ranker.py and kept in the repository."""
    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    return Ranker.from_json(data["features"])
