"""Incremental ingest: add, modify, delete, unchanged, rename, and bad files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from assistant.documents.chunking import CHUNKING_VERSION, chunk_document
from assistant.documents.loading import load_document
from assistant.embedding.models import ChunkVectors
from assistant.service import Assistant
from conftest import settings_for


@pytest.fixture
def assistant(tmp_path: Path) -> Assistant:
    return Assistant.from_settings(settings_for(tmp_path / "index"), create=True)


def test_add_then_unchanged(assistant: Assistant, guides: Path) -> None:
    first = assistant.ingest([guides])
    assert (first.added, first.updated, first.removed, first.unchanged) == (3, 0, 0, 0)
    assert first.chunks == assistant.chunk_count() > 0
    again = assistant.ingest([guides])
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, 3)
    assert again.chunks == first.chunks


def test_a_guide_cut_by_an_older_chunking_is_cut_again_though_its_file_is_unchanged(
    assistant: Assistant, guides: Path
) -> None:
    assistant.ingest([guides])
    record, text = assistant.store.document_text("first-90-days.md") or pytest.fail("not ingested")
    assistant.store.put_documents([(replace(record, chunking=1), text)])  # as an older release recorded it
    again = assistant.ingest([guides])
    assert (again.added, again.updated, again.unchanged) == (0, 1, 2)
    assert assistant.store.documents()["first-90-days.md"].chunking == CHUNKING_VERSION
    assert assistant.ingest([guides]).unchanged == 3


def test_an_index_without_token_vectors_still_answers_and_ingest_adds_them(assistant: Assistant, guides: Path) -> None:
    assistant.ingest([guides])
    record, text = assistant.store.document_text("first-90-days.md") or pytest.fail("not ingested")
    chunks = chunk_document(load_document(guides / "first-90-days.md", guides), 900, 150)
    assert [c.id for c in chunks] == list(record.chunk_ids)
    old = assistant.store.get_chunks(list(record.chunk_ids))
    vectors = assistant.store.get_vectors(list(record.chunk_ids))
    stripped = [ChunkVectors(vectors[c.id], list(c.spans), c.sentence_vectors) for c in old]  # no token bits
    assistant.store.add_chunks(chunks, stripped)
    assistant.store.put_documents([(replace(record, chunking=2), text)])  # as release 2 recorded it
    assistant.store.bump_generation()
    assert all(len(c.token_bits) == 0 for c in assistant.store.get_chunks(list(record.chunk_ids)))
    answer = assistant.ask("What should I do in my first 90 days?")  # fused order, no late interaction
    assert not answer.refused and "first-90-days.md" in {c.source for c in answer.citations}
    again = assistant.ingest([guides])
    assert again.updated == 1
    renewed = assistant.store.documents()["first-90-days.md"]
    assert all(len(c.token_bits) > 0 for c in assistant.store.get_chunks(list(renewed.chunk_ids)))


def test_modify_replaces_and_delete_removes(assistant: Assistant, guides: Path) -> None:
    assistant.ingest([guides])
    residency = guides / "residency-and-internship.md"
    residency.write_text(
        residency.read_text() + "\n\n## Zebra rotations\n\nThe zebra rotation is a made-up placement for testing.\n"
    )
    (guides / "first-90-days.md").unlink()
    report = assistant.ingest([guides])
    assert (report.added, report.updated, report.removed, report.unchanged) == (0, 1, 1, 1)
    docs = assistant.store.documents()
    assert sorted(docs) == ["cmd-credential-long-term-care.md", "residency-and-internship.md"]
    live = {i for d in docs.values() for i in d.chunk_ids}
    assert assistant.chunk_count() == len(live), "old chunks of changed and deleted documents are gone"
    answer = assistant.ask("What is the zebra rotation?")
    assert not answer.refused and "zebra" in answer.answer.lower()
    assert {c.source for c in answer.citations} == {"residency-and-internship.md"}


def test_single_file_ingest_never_removes_siblings(assistant: Assistant, guides: Path) -> None:
    assistant.ingest([guides])
    report = assistant.ingest([guides / "first-90-days.md"])
    assert report.removed == 0 and report.unchanged == 1
    assert len(assistant.store.documents()) == 3


def test_rename_reuses_embeddings(assistant: Assistant, guides: Path) -> None:
    assistant.ingest([guides])
    before = assistant.chunk_count()
    (guides / "first-90-days.md").rename(guides / "onboarding plan.md")
    report = assistant.ingest([guides])
    assert (report.added, report.removed) == (1, 1)
    assert assistant.chunk_count() == before
    assert "onboarding plan.md" in assistant.store.documents()


def test_bad_files_are_listed_and_the_rest_ingested(assistant: Assistant, guides: Path) -> None:
    (guides / "corrupt.pdf").write_bytes(b"%PDF-1.4\nthis is not a real pdf")
    (guides / "binary.md").write_bytes(bytes(range(256)) * 8)
    (guides / "empty.txt").write_bytes(b"")
    (guides / "latin1.md").write_bytes("Résumé des études médicales pour les médecins".encode("latin-1"))
    (guides / "ünïcode name with spaces.md").write_text("# Ünïcode\n\nA guide whose file name has spaces and accents.")
    report = assistant.ingest([guides])
    failed = {Path(f.path).name: f.error for f in report.failed}
    assert set(failed) == {"corrupt.pdf", "binary.md", "empty.txt", "latin1.md"}
    assert "PDF" in failed["corrupt.pdf"] and "binary" in failed["binary.md"]
    assert report.added == 4
    assert "ünïcode name with spaces.md" in assistant.store.documents()


def test_a_file_that_turns_bad_keeps_its_last_good_version(assistant: Assistant, guides: Path) -> None:
    assistant.ingest([guides])
    (guides / "first-90-days.md").write_bytes(b"\x00\x01\x02 broken")
    report = assistant.ingest([guides])
    assert report.removed == 0 and len(report.failed) == 1
    assert "first-90-days.md" in assistant.store.documents()


def test_a_file_or_subfolder_inside_an_ingested_folder_keeps_its_key(assistant: Assistant, guides: Path) -> None:
    sub = guides / "sub"
    sub.mkdir()
    (sub / "night-cover.md").write_text("# Night cover\n\nThe zebracorn rota decides who covers nights.\n")
    assistant.ingest([guides])
    assert "sub/night-cover.md" in assistant.store.documents()
    (sub / "night-cover.md").write_text("# Night cover\n\nThe quaggabell rota decides who covers nights.\n")
    report = assistant.ingest([sub / "night-cover.md"])  # one file, given on its own
    assert (report.added, report.updated) == (0, 1)
    (sub / "extra.md").write_text("# Extra\n\nA guide added to the subfolder later.\n")
    report = assistant.ingest([sub])  # the subfolder, given on its own
    assert (report.added, report.updated, report.unchanged, report.removed) == (1, 0, 1, 0)
    (sub / "extra.md").unlink()
    assert assistant.ingest([sub]).removed == 1, "a file gone from the subfolder is removed"
    assert sorted(assistant.store.documents()) == sorted(
        ["sub/night-cover.md", "residency-and-internship.md", "first-90-days.md", "cmd-credential-long-term-care.md"]
    ), "no second copy under a shorter name, and nothing outside the subfolder removed"
    answer = assistant.ask("Which rota decides who covers nights?")
    assert [c.source for c in answer.citations][:1] == ["sub/night-cover.md"] and "quaggabell" in answer.answer


def test_two_folders_with_a_file_of_the_same_name_do_not_overwrite_each_other(
    assistant: Assistant, tmp_path: Path
) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, word in ((first, "zebracorn"), (second, "quaggabell")):
        folder.mkdir()
        (folder / "faq.md").write_text(f"# FAQ\n\nThe {word} rule is in this folder's FAQ.\n")
    report = assistant.ingest([first, second])
    assert report.added == 1 and [Path(f.path).parent.name for f in report.failed] == ["b"]
    assert "already taken" in report.failed[0].error
    again = assistant.ingest([second])  # later, on its own: still refused, the first stays
    assert again.added == again.updated == 0 and len(again.failed) == 1
    assert assistant.store.documents()["faq.md"].root == str(first.resolve())
    # once the first folder's copy is gone (moved away), the second may take the name
    (first / "faq.md").unlink()
    assert assistant.ingest([second]).updated == 1
    assert assistant.store.documents()["faq.md"].root == str(second.resolve())
