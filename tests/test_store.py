"""Contract tests for the Chroma store (as langchain's shared vector-store suite does)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from assistant.documents.chunking import chunk_document
from assistant.documents.loading import load_document
from assistant.embedding.models import SentenceEmbeddings
from assistant.errors import IndexMissingError, StoreUnavailableError
from assistant.index import store as store_module
from assistant.index.store import DocumentRecord, Store, build_client, collection_suffix
from assistant.ingest.sync import embed_chunks
from conftest import CORPUS, settings_for


@pytest.fixture
def store(tmp_path: Path) -> Store:
    settings = settings_for(tmp_path / "index")
    return Store(build_client(settings), collection_suffix(settings))


def _chunks(store: Store, embedder: SentenceEmbeddings):  # type: ignore[no-untyped-def]
    chunks = chunk_document(load_document(CORPUS / "first-90-days.md", CORPUS), 900, 150)
    return chunks, embed_chunks(chunks, store, embedder)


def test_starts_empty(store: Store) -> None:
    assert store.count() == 0
    assert store.documents() == {}
    assert store.search(np.ones(384, np.float32) / np.sqrt(384), 5) == []
    assert store.generation() == 0


def test_upserting_the_same_ids_twice_adds_nothing(store: Store, embedder: SentenceEmbeddings) -> None:
    chunks, vectors = _chunks(store, embedder)
    store.add_chunks(chunks, vectors)
    store.add_chunks(chunks, vectors)
    assert store.count() == len(chunks)


def test_search_returns_what_was_stored(store: Store, embedder: SentenceEmbeddings) -> None:
    chunks, vectors = _chunks(store, embedder)
    store.add_chunks(chunks, vectors)
    hits = store.search(vectors[2].vector, 3)
    assert hits[0][0].id == chunks[2].id
    assert hits[0][1] == pytest.approx(1.0, abs=1e-3)
    stored = hits[0][0]
    assert stored.text == chunks[2].text and stored.section == chunks[2].section
    assert stored.sentence_vectors.shape == (len(stored.spans), 384)
    assert np.allclose(stored.sentence_vectors, vectors[2].sentence_vectors, atol=1e-2)
    assert stored.token_bits.shape[1] == 48 and len(stored.token_bits) > 20
    assert np.array_equal(stored.token_bits, vectors[2].token_bits)
    store.delete_chunks([chunks[2].id])
    assert store.get_chunks([chunks[2].id]) == []


def test_manifest_round_trip_and_generation(store: Store) -> None:
    record = DocumentRecord("a/b c.md", "Title", "h1", "/root", ("x", "y"))
    store.put_documents([(record, "full text")])
    assert store.documents() == {"a/b c.md": record}
    assert store.document_text("a/b c.md") == (record, "full text")
    assert store.document_text("missing.md") is None
    assert store.bump_generation() == 1 and store.generation() == 1
    assert "__generation__" not in store.documents()
    store.delete_document("a/b c.md")
    assert store.documents() == {}


def test_a_change_through_any_store_with_the_change_file_is_seen_at_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "index")
    change_file = tmp_path / "index" / "generation-test"
    reader = Store(build_client(settings), collection_suffix(settings), change_file=change_file)
    writer = Store(build_client(settings), collection_suffix(settings), change_file=change_file)
    assert reader.latest_generation() == 0
    for expected in (1, 2, 3):  # several within one clock tick: the file is replaced, not rewritten
        writer.bump_generation()
        assert reader.latest_generation() == expected
    assert change_file.read_text() == "3\n"


def test_a_writer_without_the_change_file_is_seen_within_the_recheck_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "RECHECK_SECONDS", 0.3)
    settings = settings_for(tmp_path / "index")
    reader = Store(build_client(settings), collection_suffix(settings), change_file=tmp_path / "index" / "changes")
    assert reader.latest_generation() == 0
    Store(build_client(settings), collection_suffix(settings)).bump_generation()  # an older writer
    assert reader.latest_generation() == 0  # the file did not move: not read again yet
    time.sleep(0.35)
    assert reader.latest_generation() == 1
    assert Store(build_client(settings), collection_suffix(settings)).latest_generation() == 1  # no file: exact


def test_collection_names_keep_models_and_chunkings_apart(tmp_path: Path) -> None:
    a = collection_suffix(settings_for(tmp_path))
    b = collection_suffix(settings_for(tmp_path, chunk_size=600))
    assert a != b and "all-minilm-l6-v2" in a


def test_opening_a_missing_index_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(IndexMissingError, match=r"python ingest\.py"):
        build_client(settings_for(tmp_path / "nothing"), create=False)


def test_an_unusable_index_path_gives_a_clear_error_naming_it(tmp_path: Path) -> None:
    a_file = tmp_path / "index-file"
    a_file.write_text("not a folder")
    with pytest.raises(StoreUnavailableError, match="is a file, not a folder"):
        build_client(settings_for(a_file))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "chroma.sqlite3").write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailableError, match=str(corrupt)):
        build_client(settings_for(corrupt), create=False)


def test_forgetting_open_indexes_makes_the_next_client_read_the_index_from_disk(tmp_path: Path) -> None:
    settings = settings_for(tmp_path / "index")
    first = build_client(settings)
    first.get_or_create_collection("written", embedding_function=None).add(ids=["a"], embeddings=[[1.0, 0.0]])
    shared = first._system
    assert build_client(settings)._system is shared  # chromadb shares one system per folder
    store_module.forget_open_indexes()
    second = build_client(settings)
    assert second._system is not shared  # a new one, as in a new process ...
    assert second.get_collection("written").count() == 1  # ... that reads what the first wrote
