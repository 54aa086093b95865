"""Documents: finding guide files and loading Markdown, text, HTML, PDF and DOCX into text.

Every loader returns Markdown-ish text (headings as `#` lines) so one chunker serves all.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import yaml

from assistant.errors import DocumentError, InputError

logger = logging.getLogger(__name__)

SUFFIXES = {".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx"}
FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)
# A guide tagged `not-covered` lists questions the guides do not answer, one per section; when
# one of its sections is the answer, it is quoted alone (answer.focus_not_covered).
NOT_COVERED_TAG = "not-covered"
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Document:
    """One loaded guide: its text as Markdown and where it came from."""

    source: str  # path relative to the folder given to ingest, with forward slashes
    title: str
    text: str
    content_hash: str  # sha256 of the raw file bytes
    root: str  # absolute folder the source is relative to
    not_covered: bool = False  # its sections name topics the guides do not answer (tag `not-covered`)


def find_documents(path: Path) -> tuple[Path, list[Path]]:
    """Return (root, files): a folder's supported files recursively, or one file and its folder."""
    if not usable_source(path):
        raise InputError(_not_a_source(path))
    if path.is_file():
        return path.parent.resolve(), [path.resolve()]
    root = path.resolve()
    files = []
    for candidate in sorted(path.rglob("*")):
        if not candidate.is_file() or candidate.suffix.lower() not in SUFFIXES:
            continue
        if _hidden(candidate.relative_to(path)):
            continue
        if not candidate.resolve().is_relative_to(root):
            logger.warning("skipped %s: a link to a file outside %s", candidate, root)
            continue
        files.append(candidate.resolve())
    return root, sorted(set(files))


def usable_source(path: Path) -> bool:
    """True for a regular file or a folder: what ingest can read (not a device, pipe or socket)."""
    try:
        return path.is_file() or path.is_dir()
    except (OSError, ValueError):  # a NUL byte in the name, a name too long for the system
        return False


def _not_a_source(path: Path) -> str:
    shown = str(path) if str(path).isprintable() else repr(str(path))
    try:
        exists = path.exists()
    except (OSError, ValueError):
        return f"not a usable path: {shown}"
    if exists:
        return f"not a regular file or folder (a device, pipe or socket?): {shown}"
    return f"no such file or folder: {shown}"


def refuse_unusable(paths: list[Path]) -> None:
    """Raise InputError naming every path that is not a regular file or folder."""
    bad = [_not_a_source(p) for p in paths if not usable_source(p)]
    if bad:
        raise InputError("; ".join(bad))


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def relative_source(path: Path, root: Path) -> str:
    """The citation path of a file: relative to the ingested folder, forward slashes."""
    return path.resolve().relative_to(root.resolve()).as_posix()


def load_document(path: Path, root: Path, max_bytes: int | None = None) -> Document:
    """Load one file into a Document; raises DocumentError with a reason a person can act on."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DocumentError(f"unsupported file type {suffix or '(none)'}; use one of {sorted(SUFFIXES)}")
    try:
        size = path.stat().st_size
        if max_bytes is not None and size > max_bytes:
            raise DocumentError(
                f"file is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit (ASSISTANT_MAX_FILE_MB)"
            )
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"cannot read file: {exc.strerror or exc}") from exc
    return parse_document(data, path.name, relative_source(path, root), str(root.resolve()))


def parse_document(data: bytes, filename: str, source: str, root: str) -> Document:
    """Turn raw bytes of a named file into a Document (shared by ingest and uploads)."""
    if not data.strip():
        raise DocumentError("file is empty")
    suffix = Path(filename).suffix.lower()
    meta: dict[str, object] = {}
    if suffix == ".pdf":
        text = _pdf_text(data)
    elif suffix == ".docx":
        text = _docx_text(data)
    else:
        raw = _decode(data)
        if suffix in {".html", ".htm"}:
            text = _html_text(raw)
        elif suffix == ".txt":
            meta, raw = _split_front_matter(raw, plain_text=True)
            text = _text_headings(raw)
        else:
            meta, text = _split_front_matter(raw)
    body = _normalise(text)
    if len(re.sub(r"\W", "", body)) < 20:
        raise DocumentError("no readable text found")
    title = str(meta.get("title") or "").strip() or _first_heading(body) or _title_from_name(filename)
    return Document(
        source=source,
        title=title,
        text=body,
        content_hash=hashlib.sha256(data).hexdigest(),
        root=root,
        not_covered=NOT_COVERED_TAG in _tags(meta),
    )


def _tags(meta: dict[str, object]) -> set[str]:
    """Front matter `tags`, as a YAML list or a comma-separated string, lower-cased."""
    raw = meta.get("tags")
    items = raw if isinstance(raw, list) else str(raw or "").split(",")
    return {str(item).strip().lower() for item in items if str(item).strip()}


def _text_headings(raw: str) -> str:
    """Mark heading-like lines of plain text (short, alone, no closing punctuation) as Markdown."""
    blocks = re.split(r"\n\s*\n", raw.replace("\r\n", "\n").strip())
    out = []
    for index, block in enumerate(blocks):
        line = block.strip()
        words = line.split()
        if (
            "\n" not in line
            and 0 < len(words) <= (20 if index == 0 else 14)
            and line[-1] not in ".,;:!"
            and not line.startswith(("-", "•", "*"))
        ):
            line = ("# " if index == 0 else "## ") + line
        out.append(line)
    return "\n\n".join(out)


def _decode(data: bytes) -> str:
    if b"\x00" in data[:8192]:
        raise DocumentError("binary content, not a text document")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not valid UTF-8 text (bad byte at position {exc.start})") from exc


def _split_front_matter(text: str, plain_text: bool = False) -> tuple[dict[str, object], str]:
    """YAML front matter (title, tags) and the text after it.

    In plain text only a block of YAML keys counts, since a .txt file may open with a `---` rule;
    in Markdown a malformed block is dropped with a warning.
    """
    match = FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1))
    except yaml.YAMLError:
        if plain_text:
            return {}, text
        logger.warning("ignoring malformed YAML front matter")
        return {}, text[match.end() :]
    if isinstance(meta, dict):
        return meta, text[match.end() :]
    return {}, (text if plain_text else text[match.end() :])


def _normalise(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _first_heading(text: str) -> str:
    match = HEADING.search(text)
    return match.group(2).strip() if match else ""


def _title_from_name(filename: str) -> str:
    return re.sub(r"[-_]+", " ", Path(filename).stem).strip().capitalize() or filename


def _pdf_text(data: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise DocumentError(f"corrupt or unreadable PDF ({exc.__class__.__name__}: {exc})") from exc
    return "\n\n".join(pages)


def _docx_text(data: bytes) -> str:
    import zipfile

    from docx import Document as DocxDocument

    try:
        doc = DocxDocument(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise DocumentError(f"corrupt or unreadable DOCX ({exc.__class__.__name__})") from exc
    lines = []
    for para in doc.paragraphs:
        style = (para.style.name if para.style is not None else "") or ""
        text = para.text.strip()
        if not text:
            continue
        level = re.match(r"Heading (\d)", style)
        if style == "Title":
            lines.append(f"# {text}")
        elif level:
            lines.append(f"{'#' * min(int(level.group(1)) + 1, 6)} {text}")
        else:
            lines.append(text)
    return "\n\n".join(lines)


class _HTMLToText(HTMLParser):
    """Keeps visible text and turns h1-h6 into Markdown headings; drops script and style."""

    SKIP = {"script", "style", "noscript", "template", "head", "svg", "iframe", "object"}
    BLOCK = {"p", "div", "li", "br", "tr", "section", "article", "blockquote", "pre", "ul", "ol", "table"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIP:
            self.skipping += 1
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")
        elif tag in self.BLOCK:
            self.parts.append("\n\n- " if tag == "li" else "\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self.skipping = max(0, self.skipping - 1)
        elif re.fullmatch(r"h[1-6]", tag) or tag in self.BLOCK:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.parts.append(re.sub(r"\s+", " ", data))


def _html_text(raw: str) -> str:
    parser = _HTMLToText()
    parser.feed(raw)
    parser.close()
    text = "".join(parser.parts)
    return "\n\n".join(line.strip() for line in re.split(r"\n\s*\n", text) if line.strip())
