"""Heading-aware chunks with stable ids, and sentence spans."""

from __future__ import annotations

from assistant.documents.chunking import chunk_document, split_sentences
from assistant.documents.loading import load_document, parse_document
from conftest import CORPUS


def test_chunks_carry_heading_path_and_stand_alone() -> None:
    doc = load_document(CORPUS / "residency-and-internship.md", CORPUS)
    chunks = chunk_document(doc, 900, 150)
    assert len(chunks) > 3
    for chunk in chunks:
        assert chunk.source == "residency-and-internship.md"
        assert chunk.text.startswith(doc.title)
        assert chunk.text[: chunk.body_start].strip() == " > ".join([doc.title, *filter(None, [chunk.section])])
        assert len(chunk.text) <= 900 * 1.3
    assert any("Residency" in c.section for c in chunks)
    assert [c.position for c in chunks] == list(range(len(chunks)))


def test_chunk_ids_are_stable_and_change_with_content() -> None:
    doc = load_document(CORPUS / "first-90-days.md", CORPUS)
    first = [c.id for c in chunk_document(doc, 900, 150)]
    assert first == [c.id for c in chunk_document(doc, 900, 150)]
    assert len(set(first)) == len(first)
    edited = doc.__class__(doc.source, doc.title, doc.text + "\n\nOne more line.", "other-hash", doc.root)
    assert not set(first) & {c.id for c in chunk_document(edited, 900, 150)}


def test_tiny_sections_are_merged_into_a_neighbour() -> None:
    text = "# T\n\n## A\n\n" + "Long paragraph sentence here. " * 12 + "\n\n## B\n\nShort bit."
    doc = parse_document(text.encode(), "t.md", "t.md", "/")
    chunks = chunk_document(doc, 900, 150)
    assert len(chunks) == 1
    assert "\n\n## B\n\nShort bit." in chunks[0].body  # the merged section keeps its heading as a heading


def test_split_sentences_handles_lists_and_abbreviations() -> None:
    text = "Dr. Smith leads the team, e.g. in audits. Residency lasts 3 years.\n- First item here\n- Second item"
    sentences = [text[a:b] for a, b in split_sentences(text)]
    assert sentences == [
        "Dr. Smith leads the team, e.g. in audits.",
        "Residency lasts 3 years.",
        "- First item here",
        "- Second item",
    ]


def test_a_length_measure_other_than_characters_bounds_every_chunk() -> None:
    doc = load_document(CORPUS / "residency-and-internship.md", CORPUS)

    def words_as_characters(text: str) -> int:  # ten "characters" a word: 90 words a chunk at most
        return max(len(text), 10 * len(text.split()))

    by_characters = chunk_document(doc, 900, 150)
    by_words = chunk_document(doc, 900, 150, length=words_as_characters)
    assert len(by_words) > len(by_characters)
    assert all(words_as_characters(c.body) <= 900 for c in by_words)
    assert max(words_as_characters(c.body) for c in by_characters) > 900, "the measure must bind"


def test_short_sections_of_a_not_covered_guide_stay_apart_and_others_still_merge() -> None:
    text = "# Scope\n\n## Parking\n\nThe guides do not cover parking.\n\n## Malpractice\n\nThe guides do not cover malpractice.\n"
    for tags, expected in (("[not-covered]", ["Parking", "Malpractice"]), ("[scope]", ["Parking"])):
        doc = parse_document(f"---\ntags: {tags}\n---\n{text}".encode(), "scope.md", "scope.md", "/tmp")
        chunks = chunk_document(doc, 900, 150)
        assert [c.section for c in chunks] == expected
        assert all(c.not_covered is doc.not_covered for c in chunks)
