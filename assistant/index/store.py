"""The Chroma index: chunks with our own vectors, plus a manifest of ingested documents.

This is the only module that imports chromadb. Two collections per (model, chunking):
`chunks-*` holds chunk vectors, texts and metadata; `docs-*` holds one record per document
(its hash, its chunk ids and its full text for the source viewer), and a generation counter
that every write bumps so other processes know to refresh. Collections are created with
`embedding_function=None` and we always pass vectors, so Chroma never loads a model.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Settings
from assistant.documents.chunking import Chunk
from assistant.embedding.models import ChunkVectors
from assistant.errors import IndexMissingError, StoreUnavailableError

logger = logging.getLogger(__name__)

HNSW = {"space": "cosine", "ef_construction": 200, "ef_search": 400, "max_neighbors": 32}
GENERATION_ID = "__generation__"
PENDING_ID = "__pending__"  # chunk ids written or replaced by an unfinished sync
RESERVED_IDS = (GENERATION_ID, PENDING_ID)
BATCH = 1000  # records per Chroma call: large enough to be fast, small enough for the server's limit
RECHECK_SECONDS = 1.0  # Store.latest_generation reads Chroma at least this often
DOC_BATCH_CHARS = 4_000_000  # whole-document texts per manifest write, so a server request stays small


@dataclass(frozen=True)
class StoredChunk:
    """A chunk as read back from the index, with its sentence spans and vectors."""

    id: str
    source: str
    title: str
    section: str
    text: str
    body_start: int
    position: int
    doc_hash: str
    spans: tuple[tuple[int, int], ...]
    sentence_vectors: np.ndarray
    not_covered: bool = False  # from a guide of topics the guides do not answer
    token_bits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))  # interaction.py; empty if none

    @property
    def body(self) -> str:
        """The chunk's text without the heading line."""
        return self.text[self.body_start :]


@dataclass(frozen=True)
class DocumentRecord:
    """What the index knows of one ingested document."""

    source: str
    title: str
    doc_hash: str
    root: str
    chunk_ids: tuple[str, ...]
    chunking: int = 1  # the chunking.CHUNKING_VERSION that cut it (1: recorded before versions)
    ingested: str = ""  # when this version was written, ISO 8601 UTC ("" when recorded before times)


def _one_row(vector: Sequence[float] | np.ndarray) -> np.ndarray:
    """A query vector as Chroma takes it: a (1, dim) float32 array (a list of Python floats is
    converted back to an array inside Chroma, ~0.2 ms of a 1.7 ms search at 100k chunks)."""
    return np.asarray(vector, dtype=np.float32).reshape(1, -1)


def forget_open_indexes() -> None:
    """Make the next client of each embedded index read it from disk, as a new process would.

    chromadb keeps one system per index folder per process; clients made before keep theirs.
    """
    from chromadb.api.shared_system_client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def build_client(settings: Settings, create: bool = True) -> Any:
    """A chromadb client: HttpClient for a configured server, else a PersistentClient."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if settings.uses_chroma_server:
        try:
            return chromadb.HttpClient(host=settings.chroma_host, port=settings.chroma_port, settings=chroma_settings)
        except Exception as exc:
            raise StoreUnavailableError(
                f"cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port}: {exc}"
            ) from exc
    index_dir = Path(settings.index_dir)
    if index_dir.exists() and not index_dir.is_dir():
        raise StoreUnavailableError(f"the index path {index_dir} is a file, not a folder; point --index elsewhere")
    if not create and not (index_dir / "chroma.sqlite3").exists():
        raise IndexMissingError(f"no index at {index_dir}/; run `python ingest.py` first")
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        if create and not os.access(index_dir, os.W_OK):
            raise PermissionError(f"{index_dir} is not writable")
        client = chromadb.PersistentClient(path=str(index_dir), settings=chroma_settings)
        client.list_collections()  # opens the database now, so a broken one fails here
    except Exception as exc:
        raise StoreUnavailableError(
            f"cannot open the index at {index_dir}/ ({exc}); check its permissions, "
            "or move it away and run `python ingest.py` to rebuild it"
        ) from exc
    return client


def collection_suffix(settings: Settings) -> str:
    """The part of collection names that keeps models and chunkings apart."""
    model = Path(settings.embedding_model).name.lower()
    slug = re.sub(r"[^a-z0-9]+", "-", model).strip("-")[:40] or "model"
    encoder = "" if settings.encoder == "fp32" else f"-{settings.encoder}"
    return f"{slug}{encoder}-c{settings.chunk_size}o{settings.chunk_overlap}"


def index_settings(settings: Settings) -> dict[str, Any]:
    """The settings an index depends on, stored with it."""
    return {
        "embedding_model": settings.embedding_model,
        "chunk_size": settings.chunk_size,
        "chunk_overlap": settings.chunk_overlap,
        "encoder": settings.encoder,
    }


def list_indexes(client: Any) -> dict[str, dict[str, Any]]:
    """Every index in a Chroma database: suffix -> the settings that built it."""
    with _translated():
        collections = client.list_collections()
    return {c.name[len("docs-") :]: dict(c.metadata or {}) for c in collections if c.name.startswith("docs-")}


def drop_index(client: Any, suffix: str) -> None:
    """Delete an index's two collections (one already gone is fine)."""
    from chromadb.errors import NotFoundError

    for name in (f"chunks-{suffix}", f"docs-{suffix}"):
        with _translated(), contextlib.suppress(NotFoundError):
            client.delete_collection(name)
    logger.info("removed the index %s", suffix)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """Turn a lost connection to the vector store into StoreUnavailableError, by the error's type.

    A Chroma server is reached through httpx, whose transport errors (refused, reset, timed out)
    all derive from `httpx.TransportError`; the embedded store's disk errors are `OSError`s.
    """
    import httpx

    try:
        yield
    except (httpx.TransportError, OSError) as exc:
        raise StoreUnavailableError(f"the vector store is unavailable: {exc}") from exc


class Store:
    """Chunks and the document manifest in Chroma.

    Example::

        store = Store(build_client(settings), collection_suffix(settings))
        store.add_chunks(chunks, vectors)
        hits = store.search(query_vector, k=20)
    """

    def __init__(
        self, client: Any, suffix: str, settings: dict[str, Any] | None = None, change_file: Path | None = None
    ) -> None:
        self.client = client
        self.suffix = suffix
        self.change_file = change_file  # see latest_generation
        self._seen: tuple[tuple[int, int, int], float, int] | None = None  # (file stamp, when, generation)
        with _translated():
            self.chunks = client.get_or_create_collection(
                f"chunks-{suffix}", embedding_function=None, configuration={"hnsw": HNSW}
            )
            # The docs collection remembers the settings that built the index, so an index built
            # with another model or chunking can keep serving while its replacement is built.
            self.docs = client.get_or_create_collection(f"docs-{suffix}", embedding_function=None, metadata=settings)

    # --- chunks -------------------------------------------------------------------------

    def count(self) -> int:
        """Number of chunks in the index."""
        with _translated():
            return int(self.chunks.count())

    def add_chunks(self, chunks: Sequence[Chunk], vectors: Sequence[ChunkVectors]) -> None:
        """Write chunks with their vectors; writing the same ids again replaces them."""
        for start in range(0, len(chunks), BATCH):
            part = list(zip(chunks[start : start + BATCH], vectors[start : start + BATCH], strict=True))
            with _translated():
                self.chunks.upsert(
                    ids=[c.id for c, _ in part],
                    embeddings=[v.vector.tolist() for _, v in part],
                    documents=[c.text for c, _ in part],
                    metadatas=[_chunk_metadata(c, v) for c, v in part],
                )

    def delete_chunks(self, ids: Sequence[str]) -> None:
        """Delete chunks by id (never by a scan)."""
        for start in range(0, len(ids), BATCH):
            with _translated():
                self.chunks.delete(ids=list(ids[start : start + BATCH]))

    def search(self, vector: Sequence[float] | np.ndarray, k: int) -> list[tuple[StoredChunk, float]]:
        """The k nearest chunks with their cosine similarity, best first (fewer if the index is smaller).

        No count() first: Chroma 1.5 returns what it has, and counting costs ~10 ms at 100k chunks.
        """
        with _translated():
            result = self.chunks.query(
                query_embeddings=_one_row(vector),
                n_results=k,
                include=["documents", "metadatas", "distances"],
            )
        rows = zip(result["ids"][0], result["documents"][0], result["metadatas"][0], result["distances"][0])
        return [(_stored(i, d, m), 1.0 - float(dist)) for i, d, m, dist in rows]

    def nearest(self, vector: Sequence[float] | np.ndarray, k: int) -> list[tuple[str, float]]:
        """The k nearest chunk ids with their cosine similarity, best first: no records read.

        Reading and decoding full records (sentence and token vectors) costs more than the
        search itself; retrieval reads them only for the chunks it goes on to re-score.
        """
        with _translated():
            result = self.chunks.query(query_embeddings=_one_row(vector), n_results=k, include=["distances"])
        return [(i, 1.0 - float(dist)) for i, dist in zip(result["ids"][0], result["distances"][0])]

    def get_chunks(self, ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by id, in the order asked; unknown ids are left out."""
        if not ids:
            return []
        with _translated():
            result = self.chunks.get(ids=list(ids), include=["documents", "metadatas"])
        found = {i: _stored(i, d, m) for i, d, m in zip(result["ids"], result["documents"], result["metadatas"])}
        return [found[i] for i in ids if i in found]

    def get_vectors(self, ids: Sequence[str]) -> dict[str, np.ndarray]:
        """Chunk vectors by id."""
        if not ids:
            return {}
        with _translated():
            result = self.chunks.get(ids=list(ids), include=["embeddings"])
        return {i: np.asarray(e, dtype=np.float32) for i, e in zip(result["ids"], result["embeddings"])}

    def find_by_chunk_hash(self, hashes: Sequence[str]) -> dict[str, tuple[StoredChunk, np.ndarray]]:
        """Existing chunks with these text hashes, so a renamed file reuses its embeddings."""
        found: dict[str, tuple[StoredChunk, np.ndarray]] = {}
        for start in range(0, len(hashes), 100):
            with _translated():
                result = self.chunks.get(
                    where={"chunk_hash": {"$in": list(hashes[start : start + 100])}},
                    include=["documents", "metadatas", "embeddings"],
                )
            for i, d, m, e in zip(result["ids"], result["documents"], result["metadatas"], result["embeddings"]):
                found[str(m["chunk_hash"])] = (_stored(i, d, m), np.asarray(e, dtype=np.float32))
        return found

    def all_texts(self) -> tuple[list[str], list[str]]:
        """(ids, texts) of every chunk, for building the keyword index."""
        ids: list[str] = []
        texts: list[str] = []
        total = self.count()
        for offset in range(0, total, 5000):
            with _translated():
                result = self.chunks.get(include=["documents"], limit=5000, offset=offset)
            ids.extend(result["ids"])
            texts.extend(result["documents"])
        return ids, texts

    # --- documents ----------------------------------------------------------------------

    def documents(self) -> dict[str, DocumentRecord]:
        """Every ingested document by source."""
        records: dict[str, DocumentRecord] = {}
        with _translated():
            total = self.docs.count()
            for offset in range(0, total, 5000):
                result = self.docs.get(include=["metadatas"], limit=5000, offset=offset)
                for i, m in zip(result["ids"], result["metadatas"]):
                    if i not in RESERVED_IDS:
                        records[i] = _record(m)
        return records

    def put_documents(self, documents: Sequence[tuple[DocumentRecord, str]]) -> None:
        """Record (or replace) documents in the manifest, one write per batch; this is the switch
        to their new chunks (an ingest switches a whole group at once)."""
        for part in _batches_by_size(documents, DOC_BATCH_CHARS):
            with _translated():
                self.docs.upsert(
                    ids=[record.source for record, _ in part],
                    embeddings=[[0.0]] * len(part),
                    documents=[text for _, text in part],
                    metadatas=[_document_metadata(record) for record, _ in part],
                )

    def delete_document(self, source: str) -> None:
        """Remove a document from the manifest (its chunks are deleted separately)."""
        with _translated():
            self.docs.delete(ids=[source])

    def document_text(self, source: str) -> tuple[DocumentRecord, str] | None:
        """A document's record and full text, or None if it was never ingested."""
        if source in RESERVED_IDS:
            return None
        with _translated():
            result = self.docs.get(ids=[source], include=["metadatas", "documents"])
        if not result["ids"]:
            return None
        return _record(result["metadatas"][0]), str(result["documents"][0])

    def generation(self) -> int:
        """A counter bumped by every completed write, for cheap change detection."""
        with _translated():
            result = self.docs.get(ids=[GENERATION_ID], include=["metadatas"])
        return int(result["metadatas"][0]["value"]) if result["ids"] else 0

    def latest_generation(self) -> int:
        """The generation, read from Chroma only when the change file has moved since the last read,
        or RECHECK_SECONDS have passed.

        Retrieval checks the generation before every question, and a Chroma read costs about
        0.6 ms of a 7 ms retrieval; a stat of the change file costs microseconds. Every write
        through a Store with a change file rewrites it after bumping the generation, so a change
        by this process or another on the same embedded index is seen at the next question. A
        writer that leaves the file alone (an older version of the assistant) is seen within
        RECHECK_SECONDS. Without a change file (a Chroma server) every call reads Chroma.
        """
        if self.change_file is None:
            return self.generation()
        stamp, now, seen = _stamp(self.change_file), time.monotonic(), self._seen
        if seen is not None and seen[0] == stamp and now - seen[1] < RECHECK_SECONDS:
            return seen[2]
        value = self.generation()
        self._seen = (stamp, now, value)
        return value

    def bump_generation(self) -> int:
        """Mark the index as changed; readers refresh their keyword index when they see it."""
        value = self.generation() + 1
        with _translated():
            self.docs.upsert(ids=[GENERATION_ID], embeddings=[[0.0]], documents=[""], metadatas=[{"value": value}])
        if self.change_file is not None:
            try:
                scratch = self.change_file.with_name(f"{self.change_file.name}.{os.getpid()}.tmp")
                scratch.write_text(f"{value}\n", encoding="utf-8")
                scratch.replace(self.change_file)  # a new file: its stamp differs even within a clock tick
            except OSError as exc:  # readers then see the change within RECHECK_SECONDS
                logger.warning("cannot write the change file %s: %s", self.change_file, exc)
        return value

    def pending(self) -> list[str]:
        """Chunk ids an interrupted sync wrote or meant to delete (empty after a clean sync)."""
        with _translated():
            result = self.docs.get(ids=[PENDING_ID], include=["documents"])
        return json.loads(result["documents"][0] or "[]") if result["ids"] else []

    def set_pending(self, ids: Sequence[str]) -> None:
        """Journal chunk ids before writing or orphaning them, so a crash can be cleaned up by id."""
        with _translated():
            if ids:
                self.docs.upsert(ids=[PENDING_ID], embeddings=[[0.0]], documents=[json.dumps(sorted(ids))])
            else:
                self.docs.delete(ids=[PENDING_ID])


def _stamp(path: Path) -> tuple[int, int, int]:
    try:
        info = path.stat()
    except OSError:
        return (0, 0, 0)
    return (info.st_ino, info.st_mtime_ns, info.st_size)


def _batches_by_size(
    documents: Sequence[tuple[DocumentRecord, str]], max_chars: int
) -> Iterator[Sequence[tuple[DocumentRecord, str]]]:
    """Consecutive slices of at most BATCH documents and about `max_chars` of text each."""
    start, size = 0, 0
    for end, (_, text) in enumerate(documents):
        if end > start and (end - start >= BATCH or size + len(text) > max_chars):
            yield documents[start:end]
            start, size = end, 0
        size += len(text)
    if start < len(documents):
        yield documents[start:]


def _document_metadata(record: DocumentRecord) -> dict[str, Any]:
    return {
        "source": record.source,
        "title": record.title,
        "doc_hash": record.doc_hash,
        "root": record.root,
        "chunk_ids": json.dumps(list(record.chunk_ids)),
        "chunking": record.chunking,
        "ingested": record.ingested,
    }


def _chunk_metadata(chunk: Chunk, vectors: ChunkVectors) -> dict[str, Any]:
    return {
        "source": chunk.source,
        "title": chunk.title,
        "section": chunk.section,
        "position": chunk.position,
        "body_start": chunk.body_start,
        "doc_hash": chunk.doc_hash,
        "chunk_hash": chunk.chunk_hash,
        "spans": json.dumps(vectors.spans),
        "sentvecs": base64.b64encode(vectors.sentence_vectors.astype(np.float16).tobytes()).decode("ascii"),
        "not_covered": chunk.not_covered,
        "tokbits": base64.b64encode(vectors.token_bits.tobytes()).decode("ascii"),
        "tokwidth": int(vectors.token_bits.shape[1]) if vectors.token_bits.ndim == 2 else 0,
    }


def _stored(chunk_id: str, text: str | None, meta: Any) -> StoredChunk:
    spans = tuple((int(a), int(b)) for a, b in json.loads(str(meta.get("spans", "[]"))))
    raw = base64.b64decode(str(meta.get("sentvecs", "")))
    matrix = np.frombuffer(raw, dtype=np.float16).astype(np.float32)
    matrix = matrix.reshape(len(spans), -1) if spans else np.zeros((0, 1), np.float32)
    width = int(meta.get("tokwidth", 0))
    bits = np.frombuffer(base64.b64decode(str(meta.get("tokbits", ""))), dtype=np.uint8)
    token_bits = bits.reshape(-1, width) if width else np.zeros((0, 0), np.uint8)
    return StoredChunk(
        id=chunk_id,
        source=str(meta["source"]),
        title=str(meta.get("title", "")),
        section=str(meta.get("section", "")),
        text=text or "",
        body_start=int(meta.get("body_start", 0)),
        position=int(meta.get("position", 0)),
        doc_hash=str(meta.get("doc_hash", "")),
        spans=spans,
        sentence_vectors=matrix,
        not_covered=bool(meta.get("not_covered", False)),
        token_bits=token_bits,
    )


def _record(meta: Any) -> DocumentRecord:
    return DocumentRecord(
        source=str(meta["source"]),
        title=str(meta.get("title", "")),
        doc_hash=str(meta.get("doc_hash", "")),
        root=str(meta.get("root", "")),
        chunk_ids=tuple(json.loads(str(meta.get("chunk_ids", "[]")))),
        chunking=int(meta.get("chunking", 1)),
        ingested=str(meta.get("ingested", "")),
    )
