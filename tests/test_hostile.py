"""Hostile input, property-based: no question or file makes the core fail in an unplanned way."""

from __future__ import annotations

import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.answering.conversation import Turn, standalone_question
from assistant.answering.questions import is_clinical_request, strip_injection
from assistant.documents.chunking import chunk_document, split_sentences
from assistant.documents.loading import Document, parse_document
from assistant.errors import DocumentError, InputError
from assistant.service import Assistant, normalise_question

SUFFIXES = [".md", ".txt", ".html", ".pdf", ".docx"]


@given(st.text(max_size=5000))
@settings(max_examples=300, deadline=None)
def test_question_path_is_total(question: str) -> None:
    try:
        text = normalise_question(question, 4000)
    except InputError:
        return
    assert text and text == text.strip() and len(text) <= 4000
    assert "\x00" not in text
    is_clinical_request(text)
    strip_injection(text)
    standalone_question(text, [Turn("user", "What is residency?")])


def _check_document(data: bytes, name: str) -> None:
    try:
        doc = parse_document(data, name, name, "/")
    except DocumentError as exc:
        assert str(exc)
        return
    assert isinstance(doc, Document) and doc.text.strip()
    for chunk in chunk_document(doc, 900, 150):
        assert chunk.text and len(chunk.id) == 32
        split_sentences(chunk.body)


@given(st.binary(max_size=4000), st.sampled_from(SUFFIXES))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_loaders_survive_random_bytes(data: bytes, suffix: str) -> None:
    _check_document(data, f"random{suffix}")


@given(st.text(min_size=1, max_size=3000), st.sampled_from([".md", ".txt", ".html"]))
@settings(max_examples=150, deadline=None)
def test_loaders_survive_random_text(text: str, suffix: str) -> None:
    _check_document(text.encode("utf-8", "surrogatepass"), f"random{suffix}")


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("long-line.md", b"word " * 400_000),
        ("deep.html", b"<div>" * 50_000 + b"text inside many divs" + b"</div>" * 50_000),
        ("nested-lists.md", b"".join(b"  " * i + b"- item\n" for i in range(2000))),
        ("utf16.txt", "Residency lasts at least three years for most physicians.".encode("utf-16")),
        ("bom.md", "\ufeff# Title\n\nResidency lasts at least three years for physicians.".encode()),
        ("crlf.md", b"# Title\r\n\r\nResidency lasts at least three years.\r\nAnother line here.\r\n"),
        ("front-matter-bad.md", b"---\ntitle: [unclosed\n---\n# Real title\n\nEnough body text to keep here."),
        ("zip-bomb-ish.docx", b"PK" + b"\x00" * 5000),
    ],
)
def test_odd_files_load_or_fail_clearly(name: str, data: bytes) -> None:
    _check_document(data, name)


def test_docx_that_is_a_zip_without_a_document() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "not a word document")
    with pytest.raises(DocumentError, match="DOCX"):
        parse_document(buffer.getvalue(), "x.docx", "x.docx", "/")


@given(st.text(max_size=300))
@settings(max_examples=25, deadline=None)
def test_ask_never_fails_unexpectedly(corpus_assistant: Assistant, question: str) -> None:
    try:
        answer = corpus_assistant.ask(question)
    except InputError:
        return
    assert answer.answer
    assert answer.refused or answer.citations
