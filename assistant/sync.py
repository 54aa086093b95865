"""Incremental ingest: compare files with the index, then add, replace and remove documents.

Order of writes for each changed document: new chunks are written, then the manifest record
is switched to them, then the old chunks are deleted. A crash at any point leaves either the
old or the new version reachable, and the next run finishes the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.chunking import Chunk, chunk_document, split_sentences
from assistant.config import Settings
from assistant.documents import Document, find_documents, load_document
from assistant.errors import DocumentError
from assistant.models import ChunkVectors, SentenceEmbeddings
from assistant.store import DocumentRecord, Store

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
GROUP_CHUNKS = 256  # chunks embedded and written together: full encoder batches, bounded memory


@dataclass(frozen=True)
class Failure:
    """A file that could not be ingested, and why."""

    path: str
    error: str


@dataclass(frozen=True)
class SyncReport:
    """What an ingest did; `chunks` is the total in the index afterwards."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0
    seconds: float = 0.0
    failed: tuple[Failure, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON object."""
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "failed": [{"path": f.path, "error": f.error} for f in self.failed],
        }

    def summary(self) -> str:
        """One line for a log or a terminal."""
        line = (
            f"added {self.added}, updated {self.updated}, removed {self.removed}, "
            f"unchanged {self.unchanged}; {self.chunks} chunks in the index ({self.seconds:.1f} s)"
        )
        return line + (f"; {len(self.failed)} failed" if self.failed else "")


def sync_paths(
    paths: Sequence[Path],
    store: Store,
    embedder: SentenceEmbeddings,
    settings: Settings,
    progress: Progress | None = None,
) -> SyncReport:
    """Bring the index in line with files and folders; raises FileNotFoundError for a bad path."""
    started = time.perf_counter()
    found = [find_documents(Path(p)) for p in paths]
    manifest = store.documents()
    max_bytes = int(settings.max_file_mb * 1_000_000)
    total = sum(len(files) for _, files in found)
    done = 0
    failed: list[Failure] = []
    pending: list[Document] = []
    seen: set[str] = set()
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    for root, files in found:
        for path in files:
            done += 1
            try:
                doc = load_document(path, root, max_bytes)
            except DocumentError as exc:
                failed.append(Failure(str(path), str(exc)))
                logger.warning("skipped %s: %s", path, exc)
                seen.add(path.relative_to(root).as_posix())
                continue
            seen.add(doc.source)
            old = manifest.get(doc.source)
            if old is not None and old.doc_hash == doc.content_hash:
                counts["unchanged"] += 1
            else:
                counts["updated" if old is not None else "added"] += 1
                pending.append(doc)
            if progress:
                progress(done, total)
    _write(pending, store, embedder, settings, manifest)
    folders = {str(Path(p).resolve()) for p in paths if Path(p).is_dir()}
    removed = _remove_missing(folders, seen, store, manifest)
    if pending or removed:
        store.bump_generation()
    report = SyncReport(
        added=counts["added"],
        updated=counts["updated"],
        removed=removed,
        unchanged=counts["unchanged"],
        chunks=store.count(),
        seconds=time.perf_counter() - started,
        failed=tuple(failed),
    )
    logger.info("ingest: %s", report.summary())
    return report


def sync_documents(docs: Sequence[Document], store: Store, embedder: SentenceEmbeddings, settings: Settings) -> None:
    """Add or replace already-loaded documents (an upload); unchanged ones are skipped."""
    manifest = store.documents()
    changed = [d for d in docs if manifest.get(d.source) is None or manifest[d.source].doc_hash != d.content_hash]
    _write(changed, store, embedder, settings, manifest)
    if changed:
        store.bump_generation()


def _write(
    docs: Sequence[Document],
    store: Store,
    embedder: SentenceEmbeddings,
    settings: Settings,
    manifest: dict[str, DocumentRecord],
) -> None:
    group: list[tuple[Document, list[Chunk]]] = []
    size = 0
    for doc in docs:
        chunks = chunk_document(doc, settings.chunk_size, settings.chunk_overlap)
        group.append((doc, chunks))
        size += len(chunks)
        if size >= GROUP_CHUNKS:
            _write_group(group, store, embedder, manifest)
            group, size = [], 0
    if group:
        _write_group(group, store, embedder, manifest)


def _write_group(
    group: list[tuple[Document, list[Chunk]]],
    store: Store,
    embedder: SentenceEmbeddings,
    manifest: dict[str, DocumentRecord],
) -> None:
    chunks = [c for _, cs in group for c in cs]
    vectors = embed_chunks(chunks, store, embedder)
    store.add_chunks(chunks, vectors)
    for doc, doc_chunks in group:
        record = DocumentRecord(doc.source, doc.title, doc.content_hash, doc.root, tuple(c.id for c in doc_chunks))
        store.put_document(record, doc.text)
        old = manifest.get(doc.source)
        if old is not None:
            stale = sorted(set(old.chunk_ids) - set(record.chunk_ids))
            store.delete_chunks(stale)
        logger.debug("wrote %s (%d chunks)", doc.source, len(doc_chunks))


def embed_chunks(chunks: Sequence[Chunk], store: Store, embedder: SentenceEmbeddings) -> list[ChunkVectors]:
    """Vectors for chunks, reusing stored ones for identical text (a renamed or moved file)."""
    reuse = store.find_by_chunk_hash([c.chunk_hash for c in chunks])
    fresh = [c for c in chunks if c.chunk_hash not in reuse]
    spans = [[(c.body_start + a, c.body_start + b) for a, b in split_sentences(c.body)] for c in fresh]
    computed = dict(zip((c.chunk_hash for c in fresh), embedder.embed_chunks([c.text for c in fresh], spans)))
    out = []
    for chunk in chunks:
        if chunk.chunk_hash in computed:
            out.append(computed[chunk.chunk_hash])
        else:
            stored, vector = reuse[chunk.chunk_hash]
            out.append(ChunkVectors(vector=vector, spans=list(stored.spans), sentence_vectors=stored.sentence_vectors))
    return out


def _remove_missing(folders: set[str], seen: set[str], store: Store, manifest: dict[str, DocumentRecord]) -> int:
    """Remove documents ingested from one of these folders whose file is gone."""
    removed = 0
    for source, record in manifest.items():
        if record.root in folders and source not in seen:
            store.delete_document(source)
            store.delete_chunks(list(record.chunk_ids))
            removed += 1
            logger.info("removed %s (gone from %s)", source, record.root)
    return removed
