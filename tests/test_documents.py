"""Loading each supported format, and a clear error for each kind of bad file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from docx import Document as DocxDocument
from fpdf import FPDF

from assistant.documents.loading import find_documents, load_document, parse_document
from assistant.errors import DocumentError, InputError
from conftest import CORPUS

BODY = "Residency in the United States lasts at least three years after medical school."


def _pdf_bytes(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def _docx_bytes() -> bytes:
    doc = DocxDocument()
    doc.add_heading("Residency basics", level=1)
    doc.add_paragraph(BODY)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def test_markdown_front_matter_gives_the_title() -> None:
    doc = load_document(CORPUS / "first-90-days.md", CORPUS)
    assert doc.title == "Your First 90 Days as a Medical Director"
    assert doc.source == "first-90-days.md"
    assert not doc.text.startswith("---")
    assert len(doc.content_hash) == 64


def test_title_falls_back_to_first_heading_then_file_name() -> None:
    assert parse_document(f"# A Heading\n\n{BODY}".encode(), "x.md", "x.md", "/").title == "A Heading"
    assert parse_document(BODY.encode(), "my-notes_file.txt", "my-notes_file.txt", "/").title == "My notes file"


def test_plain_text_heading_lines_become_sections() -> None:
    text = f"Getting Started\n\nWhat is residency\n\n{BODY}"
    doc = parse_document(text.encode(), "a.txt", "a.txt", "/")
    assert doc.title == "Getting Started"
    assert "## What is residency" in doc.text


def test_html_keeps_text_and_headings_and_drops_script() -> None:
    html = f"<html><head><title>t</title><script>alert(1)</script></head><body><h2>Residency</h2><p>{BODY}</p></body></html>"
    doc = parse_document(html.encode(), "a.html", "a.html", "/")
    assert "## Residency" in doc.text and BODY in doc.text
    assert "alert" not in doc.text


def test_pdf_and_docx_are_read() -> None:
    assert "three years" in parse_document(_pdf_bytes(BODY), "a.pdf", "a.pdf", "/").text
    docx = parse_document(_docx_bytes(), "a.docx", "a.docx", "/")
    assert "## Residency basics" in docx.text and "three years" in docx.text


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("empty.md", b"", "empty"),
        ("blank.md", b"   \n\n  ", "empty"),
        ("binary.md", bytes(range(256)) * 4, "binary"),
        ("latin1.md", "Résidence médicale et formation des médecins".encode("latin-1"), "UTF-8"),
        ("corrupt.pdf", b"%PDF-1.4\n%garbage that is not a pdf\n", "PDF"),
        ("corrupt.docx", b"PK\x03\x04 not really a zip", "DOCX"),
        ("tiny.md", b"# a\n\nb", "no readable text"),
    ],
)
def test_bad_files_raise_a_clear_reason(name: str, data: bytes, reason: str) -> None:
    with pytest.raises(DocumentError, match=reason):
        parse_document(data, name, name, "/")


def test_size_limit_and_unsupported_type(tmp_path: Path) -> None:
    big = tmp_path / "big.md"
    big.write_text("word " * 300_000)
    with pytest.raises(DocumentError, match="limit"):
        load_document(big, tmp_path, max_bytes=1_000_000)
    odd = tmp_path / "notes.exe"
    odd.write_bytes(b"MZ")
    with pytest.raises(DocumentError, match="unsupported"):
        load_document(odd, tmp_path)


def test_find_documents_recurses_skips_hidden_and_unsupported(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    for rel in ("a.md", "sub/b.txt", "sub/c.png", ".git/d.md", "sub/.e.md"):
        (tmp_path / rel).write_text(BODY)
    root, files = find_documents(tmp_path)
    assert root == tmp_path.resolve()
    assert [f.relative_to(root).as_posix() for f in files] == ["a.md", "sub/b.txt"]
    with pytest.raises(InputError, match="no such file"):
        find_documents(tmp_path / "missing")
    with pytest.raises(InputError, match="not a regular file"):
        find_documents(Path("/dev/null"))


def test_links_to_files_outside_the_folder_are_skipped(tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nThis text lives outside the guides folder and must stay out.")
    folder = tmp_path / "guides"
    folder.mkdir()
    (folder / "real.md").write_text(BODY)
    (folder / "link.md").symlink_to(outside)
    (folder / "inside-link.md").symlink_to(folder / "real.md")
    _, files = find_documents(folder)
    assert [f.name for f in files] == ["real.md"]


@pytest.mark.parametrize(
    ("front", "expected"),
    [
        ("tags: [scope, not-covered]", True),
        ("tags: Scope, NOT-COVERED", True),
        ("tags: [scope, limitations]", False),
        ("tags: not-covered-yet", False),
        ("tags: 42", False),
        ("title: No tags at all", False),
    ],
)
def test_the_not_covered_tag_marks_a_guide_of_topics_the_guides_do_not_answer(front: str, expected: bool) -> None:
    data = f"---\n{front}\n---\n# Not covered\n\n## Salary\n\nThe guides do not give salary figures for anyone.\n"
    assert parse_document(data.encode(), "scope.md", "scope.md", "/tmp").not_covered is expected


def test_plain_text_reads_front_matter_like_markdown() -> None:
    data = f"---\ntitle: Scope notes\ntags: [not-covered]\n---\nSalary\n\n{BODY}\n"
    doc = parse_document(data.encode(), "scope.txt", "scope.txt", "/tmp")
    assert doc.title == "Scope notes" and doc.not_covered
    assert "tags" not in doc.text and "---" not in doc.text
    assert doc.text.startswith("# Salary")  # heading detection still runs on the body


def test_plain_text_opening_with_a_rule_keeps_its_text() -> None:
    data = f"---\nJust a line of text, not YAML keys.\n---\n\n{BODY}\n"
    doc = parse_document(data.encode(), "notes.txt", "notes.txt", "/tmp")
    assert "Just a line of text, not YAML keys." in doc.text and not doc.not_covered


def test_the_shipped_list_of_unanswered_questions_is_tagged() -> None:
    assert load_document(CORPUS / "questions-the-guides-do-not-answer.md", CORPUS).not_covered
    assert not load_document(CORPUS / "about-this-assistant.md", CORPUS).not_covered
