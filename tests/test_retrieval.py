"""Retrieval: questions find their guide, similarity is the cosine, duplicates and dead chunks stay out."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from assistant.config import Settings
from assistant.documents.chunking import chunk_document
from assistant.documents.loading import Document
from assistant.embedding.models import SentenceEmbeddings
from assistant.index.store import Store, build_client, collection_suffix
from assistant.ingest.sync import embed_chunks, sync_documents
from assistant.retrieval import retriever as retriever_module
from assistant.retrieval.fusion import RetrievalConfig, fuse
from assistant.retrieval.keyword import KeywordIndex
from assistant.retrieval.retriever import Retriever
from assistant.service import Assistant
from conftest import ROOT, read_jsonl, settings_for

GOLD = read_jsonl(ROOT / "tests" / "gold_questions.jsonl")


def test_paraphrased_questions_find_their_guide(corpus_assistant: Assistant) -> None:
    retriever = corpus_assistant.retriever
    top1 = top5 = 0
    misses = []
    for record in GOLD:
        question, source = str(record["question"]), str(record["source"])
        sources = [p.chunk.source for p in retriever.retrieve(question, 5)]
        top1 += sources[:1] == [source]
        if source in sources:
            top5 += 1
        else:
            misses.append(f"{question!r}: wanted {source}, got {sources}")
    n = len(GOLD)
    assert top5 >= 0.95 * n, "\n".join(misses)
    assert top1 >= 0.75 * n


@pytest.mark.parametrize(
    ("question", "source"),
    [
        (
            "does my permission to practise from one state carry over when I move",
            "board-certification-and-licensure.md",
        ),
        ("certification for doctors running nursing homes", "cmd-credential-long-term-care.md"),
        ("what should I focus on during my first three months as a new director", "first-90-days.md"),
    ],
)
def test_a_question_worded_unlike_the_guide_finds_it(corpus_assistant: Assistant, question: str, source: str) -> None:
    documents = [s for s, _ in corpus_assistant.retriever.rank_documents(question, 3)]
    assert source in documents


def test_similarity_is_the_cosine_of_question_and_chunk(corpus_assistant: Assistant) -> None:
    question = "How long does residency take?"
    passages = corpus_assistant.retriever.retrieve(question, 5)
    assert len(passages) == 5
    query = np.asarray(corpus_assistant.embedder.embed_query(question), dtype=np.float32)
    vectors = corpus_assistant.store.get_vectors([p.chunk.id for p in passages])
    for passage in passages:
        assert passage.similarity == pytest.approx(float(vectors[passage.chunk.id] @ query), abs=1e-4)
    assert [p.fused for p in passages] == sorted((p.fused for p in passages), reverse=True)


def test_rank_documents_lists_each_document_once_best_first(corpus_assistant: Assistant) -> None:
    ranked = corpus_assistant.retriever.rank_documents("What does a medical director do?", 10)
    sources = [s for s, _ in ranked]
    assert len(sources) == len(set(sources)) == 10
    assert [s for _, s in ranked] == sorted((s for _, s in ranked), reverse=True)
    passages = corpus_assistant.retriever.retrieve("What does a medical director do?", 1)
    assert sources[0] == passages[0].chunk.source


def _store(tmp_path: Path) -> tuple[Store, Settings]:
    settings = settings_for(tmp_path / "index")
    return Store(build_client(settings), collection_suffix(settings)), settings


def _doc(source: str, title: str, text: str) -> Document:
    return Document(source=source, title=title, text=text, content_hash=f"hash-{source}-{len(text)}", root="")


PILOT = (
    "Commercial pilots need a licence from the aviation authority, many hours of logged flight time "
    "and a medical certificate. Training at a flight school takes about two years."
)
BAKERY = (
    "Sourdough bread rises with a starter of wild yeast and lactic bacteria. Bakers feed the starter "
    "with flour and water every day and keep it at room temperature."
)


def test_near_duplicate_passages_are_returned_once(tmp_path: Path, embedder: SentenceEmbeddings) -> None:
    store, settings = _store(tmp_path)
    docs = [_doc("a.md", "Pilots", PILOT), _doc("copy-of-a.md", "Pilots", PILOT), _doc("b.md", "Bread", BAKERY)]
    sync_documents(docs, store, embedder, settings)
    retriever = Retriever(store, embedder)
    passages = retriever.retrieve("how do I become an airline pilot", 3)
    assert [p.chunk.source for p in passages][1:] == ["b.md"]
    assert passages[0].chunk.source in {"a.md", "copy-of-a.md"}
    # the document ranking keeps both copies: they are different documents
    assert {s for s, _ in retriever.rank_documents("how do I become an airline pilot", 2)} == {"a.md", "copy-of-a.md"}


def test_chunks_the_manifest_does_not_point_to_are_never_returned(tmp_path: Path, embedder: SentenceEmbeddings) -> None:
    store, settings = _store(tmp_path)
    sync_documents([_doc("b.md", "Bread", BAKERY)], store, embedder, settings)
    orphan = chunk_document(_doc("gone.md", "Pilots", PILOT), 900, 150)
    store.add_chunks(orphan, embed_chunks(orphan, store, embedder))  # written, but no manifest record
    retriever = Retriever(store, embedder)
    assert [p.chunk.source for p in retriever.retrieve("how do I become an airline pilot", 5)] == ["b.md"]
    assert [s for s, _ in retriever.rank_documents("airline pilot licence", 5)] == ["b.md"]
    assert retriever.live_chunks == 1


def test_retriever_sees_documents_ingested_after_it_was_built(tmp_path: Path, embedder: SentenceEmbeddings) -> None:
    store, settings = _store(tmp_path)
    sync_documents([_doc("b.md", "Bread", BAKERY)], store, embedder, settings)
    retriever = Retriever(store, embedder)
    assert retriever.retrieve("airline pilot licence", 1)[0].chunk.source == "b.md"
    sync_documents([_doc("a.md", "Pilots", PILOT)], store, embedder, settings)
    assert retriever.retrieve("airline pilot licence", 1)[0].chunk.source == "a.md"


def test_keyword_coverage_weighs_rare_terms_most() -> None:
    texts = [
        "The medical director leads the clinical team.",
        "A medical director reviews policies.",
        "Residency takes three to seven years.",
    ]
    index = KeywordIndex(["1", "2", "3"], texts, k1=0.9, b=0.4)
    assert index.support("medical director residency", texts).coverage == pytest.approx(1.0)
    assert index.support("medical director residency", []).coverage == 0.0
    assert index.support("the and of", texts).coverage == 0.0  # nothing left after stopwords
    rare_found = index.support("director residency", [texts[2]]).coverage
    common_found = index.support("director residency", [texts[1]]).coverage
    assert rare_found > 0.5 > common_found > 0.0
    assert index.support("zeppelin director", texts).coverage < 0.5  # an unseen term outweighs a known one


def test_phrase_is_found_only_when_the_key_terms_stand_together_in_order() -> None:
    texts = ["Leaders who build a just culture ask what failed.", "Culture eats strategy; that is just how it is."]
    index = KeywordIndex(["1", "2"], texts, k1=0.9, b=0.4)
    assert index.support("What is just culture?", texts).phrase  # question words and "is" do not count
    assert index.support("How do I build a just culture", texts[:1]).phrase
    assert not index.support("What is just culture?", texts[1:]).phrase  # both words, but apart
    assert not index.support("culture just", texts).phrase  # order matters
    assert not index.support("What is culture?", texts).phrase  # one term is not a phrase
    assert not index.support("what is just culture", []).phrase
    assert not index.support("", texts).phrase


def test_unknown_terms_are_the_words_no_chunk_uses() -> None:
    index = KeywordIndex(
        ["1", "2"], ["The medical director chairs credentialing.", "Residents match in March."], 0.9, 0.4
    )
    assert index.unknown_terms("HIPAA") == ["hipaa"]
    assert index.unknown_terms("the NFL draft") == ["nfl", "draft"]
    assert index.unknown_terms("medical directors") == []  # the stemmer's own variants
    assert index.unknown_terms("directorship") == []  # extends "director"
    assert index.unknown_terms("credentialling") == []  # shares "credenti" with "credentialing"
    assert index.unknown_terms("direct") == []  # a known term extends it
    assert index.unknown_terms("dir") == ["dir"]  # too short to match by its beginning
    assert index.unknown_terms("") == [] and index.unknown_terms("is the of") == []
    assert KeywordIndex([], [], 0.9, 0.4).unknown_terms("director") == ["director"]


def test_keyword_search_returns_only_matching_chunks_best_first() -> None:
    index = KeywordIndex(["1", "2", "3"], ["pilot licence hours", "bread starter", "pilot"], k1=0.9, b=0.4)
    hits = index.search("pilot licence", 10)
    assert [i for i, _ in hits] == ["1", "3"]
    assert hits[0][1] > hits[1][1] > 0
    assert index.search("submarine", 10) == []
    assert KeywordIndex([], [], 0.9, 0.4).search("pilot", 3) == []


def test_fusion_rewards_agreement_and_falls_back_to_cosine() -> None:
    config = RetrievalConfig()
    cosine = np.asarray([0.50, 0.50, 0.40], dtype=np.float32)
    keyword = np.asarray([0.0, 8.0, 8.0], dtype=np.float32)
    fused = fuse(cosine, keyword, np.asarray([8.0, 8.0]), config)
    assert fused[1] > fused[0] and fused[1] > fused[2]
    assert fuse(cosine, np.zeros(3, dtype=np.float32), np.zeros(0), config) == pytest.approx(cosine)


def test_fusion_trusts_bm25_less_when_its_top_is_flat() -> None:
    """Many chunks matching the question's words equally well cannot be told apart by BM25."""
    config = RetrievalConfig()
    cosine = np.asarray([0.60, 0.50], dtype=np.float32)
    keyword = np.asarray([9.0, 10.0], dtype=np.float32)  # BM25 prefers the second chunk
    peaked = fuse(cosine, keyword, np.asarray([10.0, 9.0] + [1.0] * 8), config)
    flat = fuse(cosine, keyword, np.asarray([10.0] + [9.5] * 8 + [9.0]), config)
    assert flat[0] > flat[1]  # the cosine decides
    assert peaked[1] - peaked[0] > flat[1] - flat[0]


def test_a_repeated_question_reads_its_records_from_the_cache_and_gets_the_same_passages(
    tmp_path: Path, embedder: SentenceEmbeddings
) -> None:
    store, settings = _store(tmp_path)
    sync_documents([_doc("a.md", "Pilots", PILOT), _doc("b.md", "Bread", BAKERY)], store, embedder, settings)
    retriever = Retriever(store, embedder)
    first = retriever.retrieve("how do I become an airline pilot", 2)
    misses = retriever.records.misses
    again = retriever.retrieve("how do I become an airline pilot", 2)
    assert retriever.records.misses == misses and retriever.records.hits > 0
    assert [(p.chunk.id, round(p.fused, 5)) for p in again] == [(p.chunk.id, round(p.fused, 5)) for p in first]
    uncached = Retriever(store, embedder, cache_bytes=0).retrieve("how do I become an airline pilot", 2)
    assert [(p.chunk.id, round(p.fused, 5)) for p in uncached] == [(p.chunk.id, round(p.fused, 5)) for p in first]


def test_a_chunk_rewritten_in_the_index_is_never_served_from_the_cache(
    tmp_path: Path, embedder: SentenceEmbeddings
) -> None:
    store, settings = _store(tmp_path)
    sync_documents([_doc("a.md", "Pilots", PILOT)], store, embedder, settings)
    retriever = Retriever(store, embedder)
    cached = retriever.retrieve("airline pilot licence", 1)[0].chunk
    assert len(retriever.records) > 0
    # another process rewrites the record under the same id (as a new chunking version would)
    original = _doc("a.md", "Pilots", PILOT)
    edited = Document(
        source="a.md", title="Pilots", text=PILOT + " Rewritten.", content_hash=original.content_hash, root=""
    )
    rewritten = chunk_document(edited, 900, 150)
    same_id = [c for c in rewritten if c.id == cached.id]
    assert same_id
    store.add_chunks(same_id, embed_chunks(same_id, store, embedder))
    store.bump_generation()
    assert retriever.retrieve("airline pilot licence", 1)[0].chunk.text == same_id[0].text != cached.text


def test_a_warming_retriever_reads_every_live_record_once_and_again_after_a_change(
    tmp_path: Path, embedder: SentenceEmbeddings
) -> None:
    store, settings = _store(tmp_path)
    sync_documents([_doc("a.md", "Pilots", PILOT), _doc("b.md", "Bread", BAKERY)], store, embedder, settings)
    retriever = Retriever(store, embedder, warm=True)
    retriever.refresh()
    assert retriever.warmed.wait(30)
    live = {i for record in store.documents().values() for i in record.chunk_ids}
    assert live and set(retriever.records.ids()) == live
    misses = retriever.records.misses
    retriever.retrieve("how do I become an airline pilot", 2)
    assert retriever.records.misses == misses  # nothing left to read from the index
    sync_documents([_doc("a.md", "Pilots", PILOT + " Airlines also test pilots' English.")], store, embedder, settings)
    retriever.refresh()
    assert retriever.warmed.wait(30)
    texts = {c.text for c in retriever.records.get_many(retriever.records.ids(), lambda ids: {}).values()}
    assert any("English" in t for t in texts) and not any(t.endswith("about two years.") for t in texts if "Pilot" in t)


def test_the_exit_of_the_process_ends_the_warming_first(
    tmp_path: Path, embedder: SentenceEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A daemon thread still inside a Chroma read when the interpreter tore down crashed about one
    # `python -c` script in eight (SIGSEGV); the exit now waits for the warming to end.
    store, settings = _store(tmp_path)
    sync_documents([_doc("a.md", "Pilots", PILOT), _doc("b.md", "Bread", BAKERY)], store, embedder, settings)
    monkeypatch.setattr(retriever_module, "_EXITING", threading.Event())  # this process is not exiting
    warming = Retriever(store, embedder, warm=True)
    warming.refresh()
    retriever_module._stop_all_warming()  # what atexit runs
    assert warming._warmer is not None and not warming._warmer.is_alive()
    late = Retriever(store, embedder, warm=True)
    late.refresh()  # a warming begun after the exit began reads nothing
    assert late.warmed.wait(30) and len(late.records) == 0
    assert late.retrieve("how do I become an airline pilot", 1)[0].chunk.source == "a.md"  # reads on demand


def test_warming_stops_when_the_cache_is_full(tmp_path: Path, embedder: SentenceEmbeddings) -> None:
    store, settings = _store(tmp_path)
    docs = [_doc(f"g{n}.md", f"Guide {n}", f"{BAKERY} Variant {n}.") for n in range(12)]
    sync_documents(docs, store, embedder, settings)
    one = store.get_chunks([next(iter(store.documents().values())).chunk_ids[0]])[0]
    budget = 3 * (len(one.text) + one.sentence_vectors.nbytes + one.token_bits.nbytes + 400)
    retriever = Retriever(store, embedder, cache_bytes=budget, warm=True)
    retriever.refresh()
    assert retriever.warmed.wait(30)
    assert 0 < len(retriever.records) < 12 and retriever.records.bytes <= budget


def test_the_near_duplicate_test_is_the_jaccard_similarity_of_the_word_sets() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        a = frozenset(str(w) for w in rng.integers(0, 30, rng.integers(0, 20)))
        b = frozenset(str(w) for w in rng.integers(0, 30, rng.integers(0, 20)))
        for threshold in (0.3, 0.5, 0.8):
            expected = bool(a and b) and len(a & b) / len(a | b) >= threshold
            assert retriever_module._near_duplicate(a, b, threshold) == expected
    assert retriever_module._near_duplicate(frozenset("ab"), frozenset("abcd"), 0.5)  # 2 of 4: at the threshold
