"""Chunks: heading-aware splitting of a Document, and sentence splitting (pure functions).

A chunk's text starts with its heading path on one line, so it stands alone in an index and
in a citation; the body that follows is what the answer composer quotes from.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from langchain_text_splitters import MarkdownHeaderTextSplitter, RecursiveCharacterTextSplitter

from assistant.documents.loading import Document

HEADERS = [("#", "h1"), ("##", "h2"), ("###", "h3")]
MIN_PIECE_CHARS = 200  # smaller pieces are merged with a neighbour
# Bump when the same document would be cut into different chunk texts, or when what is stored
# per chunk changes: ingest then re-chunks (and re-embeds) documents recorded with an older
# version even though their files did not change.
# 2: a section merged into the chunk before it keeps its heading as a Markdown heading.
# 3: chunks also store their token vectors (sign bits) for late interaction.
# 4: a soft-wrapped line continues its sentence (split_sentences).
CHUNKING_VERSION = 4


@dataclass(frozen=True)
class Chunk:
    """A piece of a document small enough for the embedding model, with where it came from."""

    id: str
    source: str
    title: str
    section: str  # heading path inside the document, e.g. "Residency > How long it takes"
    text: str  # heading line, blank line, body
    body_start: int  # offset of the body in text
    position: int
    doc_hash: str
    chunk_hash: str
    not_covered: bool = False  # from a guide of topics the guides do not answer

    @property
    def body(self) -> str:
        """The chunk's text without the heading line."""
        return self.text[self.body_start :]


def chunk_document(
    doc: Document, chunk_size: int, chunk_overlap: int, length: Callable[[str], int] = len
) -> list[Chunk]:
    """Split a document by headings, then by size, merging tiny pieces into a neighbour.

    Sizes are measured by `length` (characters unless told otherwise; the tuning scripts pass
    a word-piece measure to try chunks sized by the encoder's tokens).
    """
    sections = MarkdownHeaderTextSplitter(HEADERS, strip_headers=True).split_text(doc.text)
    pieces: list[tuple[list[str], str]] = []  # (heading parts, body)
    for section in sections:
        parts = [str(section.metadata[key]) for _, key in HEADERS if key in section.metadata]
        if parts and parts[0].strip().lower() == doc.title.strip().lower():
            parts = parts[1:]
        body = section.page_content.replace("  \n", "\n\n").strip()
        if not body:
            continue
        heading = _heading_line(doc.title, parts)
        splitter = RecursiveCharacterTextSplitter(
            chunk_size=max(200, chunk_size - length(heading) - 2),
            chunk_overlap=chunk_overlap,
            separators=["\n\n", "\n", ". ", "; ", ", ", " ", ""],
            keep_separator="end",
            length_function=length,
        )
        pieces.extend((parts, piece.strip()) for piece in splitter.split_text(body) if piece.strip())
    # A not-covered guide's sections are quoted whole, one topic each: never merge two of them.
    merged = _merge_small(pieces, chunk_size, length, across_sections=not doc.not_covered)
    chunks = []
    for position, (parts, body) in enumerate(merged):
        heading = _heading_line(doc.title, parts)
        text = f"{heading}\n\n{body}"
        chunks.append(
            Chunk(
                id=_digest(f"{doc.source}\x00{doc.content_hash}\x00{position}")[:32],
                source=doc.source,
                title=doc.title,
                section=" > ".join(parts),
                text=text,
                body_start=len(heading) + 2,
                position=position,
                doc_hash=doc.content_hash,
                chunk_hash=_digest(text),
                not_covered=doc.not_covered,
            )
        )
    return chunks


def _heading_line(title: str, parts: list[str]) -> str:
    return " > ".join([title, *parts])


def _merge_small(
    pieces: list[tuple[list[str], str]], chunk_size: int, length: Callable[[str], int], across_sections: bool = True
) -> list[tuple[list[str], str]]:
    merged: list[tuple[list[str], str]] = []
    for parts, body in pieces:
        if (
            merged
            and (len(body) < MIN_PIECE_CHARS or len(merged[-1][1]) < MIN_PIECE_CHARS)
            and (across_sections or parts == merged[-1][0])
        ):
            prev_parts, prev_body = merged[-1]
            if length(prev_body) + length(body) <= chunk_size:
                # A merged section keeps its heading as a Markdown heading, so the composer reads it
                # as a heading and not as a sentence to quote ("Steps to write a good policy.").
                heading = f"{'#' * (len(parts) + 1)} {parts[-1]}\n\n" if parts and parts != prev_parts else ""
                joined = body if parts == prev_parts else f"{heading}{body}"
                merged[-1] = (prev_parts, f"{prev_body}\n\n{joined}")
                continue
        merged.append((parts, body))
    return merged


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Sentences end at . ! ? followed by space and a capital, digit or quote; list items and
# paragraphs always end one. Common abbreviations do not end a sentence.
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|etc|vs|Dr|Mr|Ms|Mrs|St|No|U\.S|approx|incl)\.$", re.IGNORECASE)
_BOUNDARY = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(\[])")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Return (start, end) character spans of the sentences of a text, in order.

    A line break ends a sentence unless the line is soft-wrapped: it ends without closing
    punctuation and the next line continues the paragraph (no heading, list item, table row or
    quote starts it). PDF text and hard-wrapped plain text break lines mid-sentence ("... and
    quarantine" / "began to be introduced from 23 January"), and each half alone says nothing.
    """
    spans: list[tuple[int, int]] = []
    for start, end in _paragraph_lines(text):
        line = text[start:end]
        cursor = 0
        for match in _BOUNDARY.finditer(line):
            if _ABBREV.search(line[: match.start()]):
                continue
            _add_span(spans, line, start, cursor, match.start())
            cursor = match.end()
        _add_span(spans, line, start, cursor, len(line))
    return spans


# A line that starts a block of its own: heading, list item, table row, quote.
_BLOCK_START = re.compile(r"^\s*(?:#|[-*+•]\s|\d+[.)]\s|\||>)")
_LINE_CLOSED = re.compile(r"[.!?:;][\"')\]]*\s*$")


def _paragraph_lines(text: str) -> list[tuple[int, int]]:
    """(start, end) of each logical line: soft-wrapped lines joined with the one before."""
    out: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text):
        start, end = line.span()
        previous = text[out[-1][0] : out[-1][1]] if out else ""
        if (
            out
            and text[out[-1][1] : start].count("\n") == 1
            and not _LINE_CLOSED.search(previous)
            and not _BLOCK_START.match(line.group())
            and not _BLOCK_START.match(previous.splitlines()[0])
            and line.group().strip()
        ):
            out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _add_span(spans: list[tuple[int, int]], line: str, offset: int, begin: int, end: int) -> None:
    piece = line[begin:end]
    stripped = piece.strip()
    if not stripped:
        return
    lead = len(piece) - len(piece.lstrip())
    spans.append((offset + begin + lead, offset + begin + lead + len(stripped)))
