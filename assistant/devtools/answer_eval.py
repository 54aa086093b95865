"""Answer-level evaluation: does the answer lead with the sentence that answers the question?

A dataset folder holds `articles/` (any format ingest reads) and `questions.jsonl`, one
`{"question", "answer", "source"}` per line: the gold `answer` is a span of the article
`source`. The articles are ingested into a temporary index and every question is asked through
`Assistant.ask`, as the chat asks it. Scoring follows SQuAD's normalisation (lower case,
punctuation to spaces, a/an/the dropped): a place *holds* the gold span when at least
`HIT_SHARE` of the span's tokens, counted with multiplicity, appear there.

- `lead@1`: the answer's first sentence (citation markers removed); `top3`: its first three;
  `any`: the whole answer; `cited`: the gold source among the citations; `refused`: the rate.
- Baselines on the same retrieval (`Assistant.weigh`'s passages): the first sentence of the top
  chunk; the best sentence by its stored vector; the best by idf-weighted overlap with the
  question's terms. Ceiling: the span inside the top-1 / top-k chunks.

The shipped corpus's gold questions (`{"question", "source", "phrase"}`) are scored the same
way with their key phrase as the span (`--gold`).
"""

from __future__ import annotations

import json
import logging
import re
import statistics
import string
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.answering.citations import MARKER
from assistant.answering.text import clean_sentence
from assistant.config import Settings
from assistant.devtools.eval import numbered_records
from assistant.errors import InputError
from assistant.retrieval.retriever import Passage, Retriever

logger = logging.getLogger(__name__)

HIT_SHARE = 0.8  # share of the gold span's tokens that must appear (SOURCE.md of covid-qa)
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans({c: " " for c in string.punctuation + "‐‑–—‘’“”"})
# A sentence ends at . ! ? followed by space and a capital, digit, quote or bracket.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")


@dataclass(frozen=True)
class GoldQuestion:
    """A question, the span (or key phrase) that answers it, and the source that holds it."""

    question: str
    answer: str
    source: str


def load_questions(path: Path) -> list[GoldQuestion]:
    """`questions.jsonl` records (`answer`, or a gold set's `phrase`), or InputError saying what is wrong."""
    if not path.is_file():
        raise InputError(f"no such file: {path}")
    try:
        records = list(numbered_records(path))
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text ({exc.reason})") from exc
    out = []
    for number, record in records:
        span, question = record.get("answer", record.get("phrase")), record.get("question")
        if not isinstance(span, str) or not isinstance(question, str) or not span.strip():
            raise InputError(f"{path.name} line {number} needs text fields 'question' and 'answer' (or 'phrase')")
        out.append(GoldQuestion(question, span, str(record.get("source") or "")))
    if not out:
        raise InputError(f"{path} holds no questions")
    return out


def normalise(text: str) -> list[str]:
    """SQuAD's answer normalisation, as tokens."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split()


def holds(span: Sequence[str], text: str) -> bool:
    """True when `text` holds at least HIT_SHARE of the span's (normalised) tokens, with multiplicity."""
    if not span:
        return False
    have = Counter(normalise(text))
    found = sum(min(count, have[token]) for token, count in Counter(span).items())
    return found >= HIT_SHARE * len(span)


def answer_sentences(answer: str) -> list[str]:
    """An answer's sentences in reading order: markers and bullets removed, lines and sentences split."""
    out = []
    for line in MARKER.sub("", answer).splitlines():
        line = clean_sentence(line)
        out += [s.strip() for s in _SENTENCE_END.split(line) if s.strip()]
    return out


def body_sentences(passage: Passage) -> list[tuple[str, np.ndarray]]:
    """The sentences of a passage's body with their stored vectors (the heading line left out)."""
    chunk = passage.chunk
    return [
        (clean_sentence(chunk.text[begin:end]), vector)
        for (begin, end), vector in zip(chunk.spans, chunk.sentence_vectors)
        if begin >= chunk.body_start and clean_sentence(chunk.text[begin:end])
    ]


def overlap_sentence(retriever: Retriever, question: str, sentences: Sequence[str]) -> int:
    """The sentence sharing the most idf weight with the question's terms (first on ties; -1: none)."""
    weights = retriever.term_weights(question)
    if not sentences or not weights:
        return -1
    scores = [sum(weights.get(t, 0.0) for t in terms) for terms in retriever.terms_of(list(sentences))]
    return int(np.argmax(scores))


@dataclass
class _Tally:
    lead: int = 0
    top3: int = 0
    any: int = 0
    cited: int = 0
    refused: int = 0
    first_sentence: int = 0
    vector_sentence: int = 0
    overlap_sentence: int = 0
    top1_chunk: int = 0
    topk_chunks: int = 0


def score_questions(assistant: Any, questions: Sequence[GoldQuestion], details: Path | None = None) -> dict[str, Any]:
    """Ask every question through `assistant.ask` and score answers, baselines and ceiling."""
    tally, words = _Tally(), []
    rows = []
    for gold in questions:
        span = normalise(gold.answer)
        answer = assistant.ask(gold.question)
        sentences = answer_sentences(answer.answer)
        words.append(len(MARKER.sub("", answer.answer).split()))
        hit = {
            "lead": bool(sentences) and holds(span, sentences[0]),
            "top3": holds(span, " ".join(sentences[:3])),
            "any": holds(span, answer.answer),
            "cited": any(Path(c.source).name == Path(gold.source).name for c in answer.citations),
            "refused": answer.refused,
        }
        passages, _ = assistant.weigh(answer.standalone_question or gold.question)
        candidates = [s for p in passages for s in body_sentences(p)]
        query_vector = np.asarray(assistant.embedder.embed_query(gold.question), dtype=np.float32)
        texts = [text for text, _ in candidates]
        by_vector = int(np.argmax([float(v @ query_vector) for _, v in candidates])) if candidates else -1
        by_overlap = overlap_sentence(assistant.retriever, gold.question, texts)
        hit |= {
            "first_sentence": bool(passages)
            and bool(body_sentences(passages[0]))
            and holds(span, body_sentences(passages[0])[0][0]),
            "vector_sentence": by_vector >= 0 and holds(span, texts[by_vector]),
            "overlap_sentence": by_overlap >= 0 and holds(span, texts[by_overlap]),
            "top1_chunk": bool(passages) and holds(span, passages[0].chunk.body),
            "topk_chunks": any(holds(span, p.chunk.body) for p in passages),
        }
        for name, value in hit.items():
            setattr(tally, name, getattr(tally, name) + int(value))
        if details is not None:
            rows.append({"question": gold.question, "gold": gold.answer, "answer": answer.answer, **hit})
    if details is not None:
        details.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    n = max(1, len(questions))
    share = {name: round(value / n, 3) for name, value in vars(tally).items()}
    best_baseline = max(share["first_sentence"], share["vector_sentence"], share["overlap_sentence"])
    return {
        "questions": len(questions),
        "lead@1": share["lead"],
        "top3": share["top3"],
        "any": share["any"],
        "cited": share["cited"],
        "refused": share["refused"],
        "median_words": statistics.median(words) if words else 0,
        "baselines": {
            "first_sentence_top_chunk": share["first_sentence"],
            "best_sentence_vector": share["vector_sentence"],
            "best_sentence_overlap": share["overlap_sentence"],
        },
        "ceiling": {"top1_chunk": share["top1_chunk"], f"top{assistant.settings.top_k}_chunks": share["topk_chunks"]},
        "lead_over_best_baseline": round(share["lead"] - best_baseline, 3),
    }


def evaluate_answers(
    articles: Path, questions_path: Path, settings: Settings, limit: int | None = None, details: Path | None = None
) -> dict[str, Any]:
    """Ingest `articles` into a temporary index, then `score_questions` (plus timings)."""
    from assistant.service import Assistant

    started = time.perf_counter()
    questions = load_questions(questions_path)[:limit]
    if not articles.is_dir():
        raise InputError(f"no articles folder: {articles}")
    with tempfile.TemporaryDirectory(prefix="answers-index-", ignore_cleanup_errors=True) as tmp:
        assistant = Assistant.from_settings(settings.replace(index_dir=Path(tmp), chroma_host=""), create=True)
        report = assistant.ingest([articles])
        indexed = time.perf_counter()
        logger.info("indexed %s (%d chunks) in %.1f s", articles, assistant.chunk_count(), indexed - started)
        if report.failed:
            logger.warning("%d files could not be ingested", len(report.failed))
        figures = score_questions(assistant, questions, details)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    figures["ingest_seconds"] = round(indexed - started, 1)
    return figures


def iter_lines(figures: dict[str, Any]) -> Iterator[str]:
    """The figures as readable lines."""
    for key, value in figures.items():
        if isinstance(value, dict):
            yield f"{key}: " + ", ".join(f"{k} {v}" for k, v in value.items())
        else:
            yield f"{key}: {value}"
