"""The benchmark's building blocks: deterministic corpora and the scaled index."""

from __future__ import annotations

import subprocess
from pathlib import Path

from assistant.devtools.bench import (
    QUESTIONS,
    bench_langchain_baseline,
    bench_queries,
    bench_questions,
    build_scaled_index,
    generate_corpus,
)
from assistant.service import Assistant
from conftest import CORPUS, PYTHON, ROOT, settings_for


def test_generated_corpus_is_deterministic(tmp_path: Path) -> None:
    generate_corpus(CORPUS, tmp_path / "a", 5)
    generate_corpus(CORPUS, tmp_path / "b", 5)
    a = sorted(p.read_text() for p in (tmp_path / "a").glob("*.md"))
    assert a == sorted(p.read_text() for p in (tmp_path / "b").glob("*.md"))
    assert all(450 <= len(text.split()) <= 800 for text in a)


def test_scaled_index_copies_real_chunks_and_answers(tmp_path: Path) -> None:
    generate_corpus(CORPUS, tmp_path / "corpus", 4)
    settings = settings_for(tmp_path / "source")
    Assistant.from_settings(settings, create=True).ingest([tmp_path / "corpus"])
    build_scaled_index(settings, tmp_path / "source", tmp_path / "scaled", 150)
    scaled = Assistant.from_settings(settings.replace(index_dir=tmp_path / "scaled"))
    assert scaled.chunk_count() >= 150
    passages = scaled.retriever.retrieve("How long is residency?", 5)
    assert len(passages) == 5 and all(p.chunk.source.startswith("copy-") for p in passages)


def test_bad_corpus_sizes_are_a_usage_error() -> None:
    for bad, message in [("abc", "expected sizes like"), ("0,100", "positive"), (",", "positive")]:
        result = subprocess.run(
            [PYTHON, "-m", "assistant", "bench", "--sizes", bad], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 2, bad
        assert message in result.stderr, result.stderr


def test_both_pipelines_are_timed_on_the_same_questions_and_the_baseline_scales_like_ours(tmp_path: Path) -> None:
    generate_corpus(CORPUS, tmp_path / "corpus", 3)
    settings = settings_for(tmp_path / "ours")
    questions = bench_questions(settings)
    assert questions[: len(QUESTIONS)] == QUESTIONS and len(questions) > len(QUESTIONS)  # + the check questions
    Assistant.from_settings(settings, create=True).ingest([tmp_path / "corpus"])
    base = bench_langchain_baseline(settings, tmp_path / "corpus", tmp_path / "work", scaled_chunks=100)
    assert base.figures["chunks"] > 0 and base.figures["ingest_chunks_per_s"] > 0
    assert 100 <= base.figures["scaled"]["chunks"] < 100 + base.figures["chunks"]
    assert len(base.search("baseline-scaled")("How long is residency?")) == settings.top_k
    search = base.search()
    asked: list[str] = []

    def baseline(question: str) -> list[object]:
        asked.append(question)
        return search(question)

    ours = bench_queries(settings, tmp_path / "ours", rounds=4, baseline=baseline)
    assert set(ours) == {"chunks", "retrieval", "retrieval_uncached", "ask", "baseline_retrieval"}
    assert all(ours[k]["p95_ms"] > 0 for k in ("retrieval", "retrieval_uncached", "ask", "baseline_retrieval"))
    # the same warm-up, then each timed question to both pipelines
    assert asked == questions + questions[:4]
    assert "baseline_retrieval" not in bench_queries(settings, tmp_path / "ours", rounds=2)
