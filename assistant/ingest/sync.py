"""Incremental ingest: compare files with the index, then add, replace and remove documents.

Order of writes for each changed document: new chunks are written, then the manifest record
is switched to them, then the old chunks are deleted. A crash at any point leaves either the
old or the new version reachable, and the next run finishes the job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assistant.config import Settings
from assistant.documents.chunking import CHUNKING_VERSION, Chunk, chunk_document, split_sentences
from assistant.documents.loading import Document, find_documents, load_document
from assistant.embedding.models import ChunkVectors, SentenceEmbeddings
from assistant.errors import DocumentError
from assistant.index.store import DocumentRecord, Store

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


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
    on_switch: Callable[[], None] | None = None,
    grace_seconds: float = 0.0,
) -> SyncReport:
    """Bring the index in line with files and folders; raises InputError for a bad path.

    `on_switch` runs once the manifest points at the new chunks (readers refresh there); old
    chunks are deleted `grace_seconds` later, so questions already under way still find them.
    """
    started = time.perf_counter()
    recover(store)
    manifest = store.documents()
    scans = _scans(paths, manifest)
    scanned = {path for scan in scans for path in scan.files}
    max_bytes = int(settings.max_file_mb * 1_000_000)
    failed: list[Failure] = []
    pending: list[Document] = []
    seen: set[str] = set()
    counts = {"added": 0, "updated": 0, "unchanged": 0}
    for scan in scans:
        for path in scan.files:
            source = path.relative_to(scan.root).as_posix()
            old = manifest.get(source)
            holder = "another folder of this ingest" if source in seen else _other_holder(old, path, scanned)
            if holder:  # two files, one name: keep the first rather than flip between them
                failed.append(Failure(str(path), f"{source} is already taken by a guide from {holder}; rename one"))
                logger.warning("skipped %s: %s is taken by a guide from %s", path, source, holder)
                continue
            seen.add(source)
            try:
                doc = load_document(path, scan.root, max_bytes)
            except DocumentError as exc:
                failed.append(Failure(str(path), str(exc)))
                logger.warning("skipped %s: %s", path, exc)
                continue
            if old is not None and _current(old, doc) and old.root == doc.root:
                counts["unchanged"] += 1
            else:
                counts["updated" if old is not None else "added"] += 1
                pending.append(doc)
    stale = _write(pending, store, embedder, settings, manifest, progress)
    folders = [scan.folder for scan in scans if scan.folder is not None]
    gone = [r for s, r in manifest.items() if s not in seen and any(_location(r).is_relative_to(f) for f in folders)]
    if gone:
        stale += [i for record in gone for i in record.chunk_ids]
        store.set_pending(sorted(set(store.pending()) | set(stale)))
        for record in gone:
            store.delete_document(record.source)
            logger.info("removed %s (gone from %s)", record.source, record.root)
    if pending or gone:
        _finish(store, stale, on_switch, grace_seconds)
    report = SyncReport(
        added=counts["added"],
        updated=counts["updated"],
        removed=len(gone),
        unchanged=counts["unchanged"],
        chunks=store.count(),
        seconds=time.perf_counter() - started,
        failed=tuple(failed),
    )
    logger.info("ingest: %s", report.summary())
    return report


@dataclass(frozen=True)
class _Scan:
    """The files of one path given to ingest, and what their sources are relative to."""

    root: Path  # sources are paths relative to this folder
    files: list[Path]
    folder: Path | None  # a folder given: documents under it that are not found are removed


def _scans(paths: Sequence[Path], manifest: dict[str, DocumentRecord]) -> list[_Scan]:
    """Each path's files, keyed from the broadest folder already ingested that holds the path.

    So `ingest corpus/sub/x.md` after `ingest corpus` updates `sub/x.md` instead of adding a
    second `x.md`; a path outside every ingested folder keys from itself (a file: its folder).
    """
    known = sorted({Path(r.root) for r in manifest.values() if r.root}, key=lambda p: len(p.parts))
    scans = []
    for given in paths:
        root, files = find_documents(Path(given))
        target = Path(given).resolve()
        holder = next((k for k in known if target != k and target.is_relative_to(k)), None)
        scans.append(_Scan(holder or root, files, target if target.is_dir() else None))
    return scans


def _location(record: DocumentRecord) -> Path:
    return Path(record.root) / record.source


def _other_holder(old: DocumentRecord | None, path: Path, scanned: set[Path]) -> str:
    """The folder of a different, still existing file the index holds under this source, or ""."""
    if old is None:
        return ""
    location = _location(old)
    if location == path or location in scanned or not location.is_file():
        return ""  # the same file, one re-keyed in this ingest, or one that has moved away
    return old.root


def sync_documents(
    docs: Sequence[Document],
    store: Store,
    embedder: SentenceEmbeddings,
    settings: Settings,
    on_switch: Callable[[], None] | None = None,
    grace_seconds: float = 0.0,
) -> int:
    """Add or replace already-loaded documents (an upload); returns how many changed."""
    recover(store)
    manifest = store.documents()
    changed = [d for d in docs if d.source not in manifest or not _current(manifest[d.source], d)]
    stale = _write(changed, store, embedder, settings, manifest)
    if changed:
        _finish(store, stale, on_switch, grace_seconds)
    return len(changed)


def remove_documents(
    sources: Sequence[str],
    store: Store,
    on_switch: Callable[[], None] | None = None,
    grace_seconds: float = 0.0,
) -> list[DocumentRecord]:
    """Take documents out of the index (their files are left alone); the records of those it held."""
    recover(store)
    manifest = store.documents()
    records = [manifest[s] for s in dict.fromkeys(sources) if s in manifest]
    if not records:
        return []
    stale = [i for record in records for i in record.chunk_ids]
    store.set_pending(sorted(set(store.pending()) | set(stale)))
    for record in records:
        store.delete_document(record.source)
        logger.info("removed %s (deleted by an admin)", record.source)
    _finish(store, stale, on_switch, grace_seconds)
    return records


def recover(store: Store) -> None:
    """Finish an interrupted sync: delete journalled chunks that no document points to."""
    pending = store.pending()
    if not pending:
        return
    live = {i for record in store.documents().values() for i in record.chunk_ids}
    orphans = sorted(set(pending) - live)
    logger.warning("finishing an interrupted ingest: removing %d orphaned chunks", len(orphans))
    store.delete_chunks(orphans)
    store.set_pending([])


def _finish(store: Store, stale: list[str], on_switch: Callable[[], None] | None, grace_seconds: float) -> None:
    """Publish the new manifest, let readers move over, then delete what they no longer use."""
    store.bump_generation()
    if on_switch:
        on_switch()
    if stale and grace_seconds > 0:
        time.sleep(grace_seconds)
    live = {i for record in store.documents().values() for i in record.chunk_ids}
    store.delete_chunks(sorted(set(stale) - live))
    store.set_pending([])


def _write(
    docs: Sequence[Document],
    store: Store,
    embedder: SentenceEmbeddings,
    settings: Settings,
    manifest: dict[str, DocumentRecord],
    progress: Progress | None = None,
) -> list[str]:
    """Write documents in groups of about `settings.ingest_group` chunks; returns the chunk ids
    they replaced (deleted later). The encoder sorts a group by length, so large groups pad less
    (1,024 chunks embed about 15% faster than 256 here) while memory stays bounded.

    Embedding is the slow part and Chroma writes are the next, so they overlap: one writer
    thread writes group n (journal, chunks, manifest switch, in that order) while this thread
    embeds group n + 1. At most one group waits for the writer, which bounds memory, and a
    failed write stops the ingest at the next group.
    """
    stale: list[str] = []
    group: list[tuple[Document, list[Chunk]]] = []
    size = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer") as writer:
        in_flight: Future[None] | None = None
        for number, doc in enumerate(docs, 1):
            chunks = chunk_document(doc, settings.chunk_size, settings.chunk_overlap)
            group.append((doc, chunks))
            size += len(chunks)
            if size >= settings.ingest_group or number == len(docs):
                flat = [c for _, cs in group for c in cs]
                vectors = embed_chunks(flat, store, embedder)
                replaced = [i for d, _ in group if d.source in manifest for i in manifest[d.source].chunk_ids]
                journal = sorted(set(stale) | set(replaced) | {c.id for c in flat})
                if in_flight is not None:
                    in_flight.result()
                in_flight = writer.submit(_write_group, group, flat, vectors, journal, store)
                stale += replaced
                group, size = [], 0
                if progress:
                    progress(number, len(docs))
        if in_flight is not None:
            in_flight.result()
    return stale


def _write_group(
    group: list[tuple[Document, list[Chunk]]],
    chunks: list[Chunk],
    vectors: list[ChunkVectors],
    journal: list[str],
    store: Store,
) -> None:
    store.set_pending(journal)
    store.add_chunks(chunks, vectors)
    written = datetime.now(UTC).isoformat(timespec="seconds")
    records = [
        (
            DocumentRecord(
                doc.source, doc.title, doc.content_hash, doc.root, tuple(c.id for c in cs), CHUNKING_VERSION, written
            ),
            doc.text,
        )
        for doc, cs in group
    ]
    store.put_documents(records)
    for doc, cs in group:
        logger.debug("wrote %s (%d chunks)", doc.source, len(cs))


def _current(record: DocumentRecord, doc: Document) -> bool:
    """The indexed chunks are this file's, cut by this release's chunking."""
    return record.doc_hash == doc.content_hash and record.chunking == CHUNKING_VERSION


def embed_chunks(chunks: Sequence[Chunk], store: Store, embedder: SentenceEmbeddings) -> list[ChunkVectors]:
    """Vectors for chunks, reusing stored ones for identical text (a renamed or moved file).

    A stored chunk without token vectors (indexed before they existed) is embedded again.
    """
    found = store.find_by_chunk_hash([c.chunk_hash for c in chunks])
    reuse = {h: (stored, vector) for h, (stored, vector) in found.items() if len(stored.token_bits)}
    fresh = [c for c in chunks if c.chunk_hash not in reuse]
    spans = [[(c.body_start + a, c.body_start + b) for a, b in split_sentences(c.body)] for c in fresh]
    computed = dict(zip((c.chunk_hash for c in fresh), embedder.embed_chunks([c.text for c in fresh], spans)))
    out = []
    for chunk in chunks:
        if chunk.chunk_hash in computed:
            out.append(computed[chunk.chunk_hash])
        else:
            stored, vector = reuse[chunk.chunk_hash]
            out.append(ChunkVectors(vector, list(stored.spans), stored.sentence_vectors, stored.token_bits))
    return out
