"""The gold question set: the right guide is found and the answer says the key phrase."""

from __future__ import annotations

from assistant.service import Assistant
from conftest import ROOT, read_jsonl

GOLD = read_jsonl(ROOT / "tests" / "gold_questions.jsonl")


def test_gold_set_covers_every_guide() -> None:
    guides = {p.name for p in (ROOT / "corpus").glob("*.md")}
    assert len(GOLD) >= 40
    assert {str(r["source"]) for r in GOLD} == guides


def test_gold_retrieval_and_answers(corpus_assistant: Assistant) -> None:
    in_top3 = 0
    has_phrase = 0
    misses = []
    for record in GOLD:
        question, source, phrase = str(record["question"]), str(record["source"]), str(record["phrase"])
        passages = corpus_assistant.retriever.retrieve(question, 5)
        if source in [p.chunk.source for p in passages[:3]]:
            in_top3 += 1
        answer = corpus_assistant.ask(question)
        if phrase.lower() in answer.answer.lower():
            has_phrase += 1
        else:
            misses.append(f"{question} -> expected {phrase!r}")
    n = len(GOLD)
    print(
        f"\ngold set: expected guide in top 3 for {in_top3}/{n} ({in_top3 / n:.0%}); "
        f"answer contains the phrase for {has_phrase}/{n} ({has_phrase / n:.0%})"
    )
    print("\n".join(misses))
    assert in_top3 >= 0.9 * n
    assert has_phrase >= 0.8 * n
