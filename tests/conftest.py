"""Shared fixtures: the real packaged model (loaded once), real Chroma in temp dirs."""

from __future__ import annotations

import os
import tempfile

# Before anything imports huggingface_hub: a download attempt must fail loudly.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["ANONYMIZED_TELEMETRY"] = "False"
# One ONNX export of the model for the whole run (and the app processes it starts), not one per
# data dir; exports are keyed by the model files, so keeping them between runs is safe.
os.environ.setdefault("ASSISTANT_MODEL_CACHE", os.path.join(tempfile.gettempdir(), "assistant-test-models"))

import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
REFERENCE = ROOT.parent / "shared" / "reference"
PYTHON = sys.executable

from assistant.config import Settings, load_settings  # noqa: E402
from assistant.documents.chunking import split_sentences  # noqa: E402
from assistant.embedding.models import SentenceEmbeddings, build_embeddings  # noqa: E402
from assistant.index.store import StoredChunk  # noqa: E402
from assistant.retrieval.retriever import Passage  # noqa: E402
from assistant.service import Assistant  # noqa: E402

CORPUS_FIXTURES = ("corpus_index", "corpus_assistant")
VECTOR_DIM = 384  # all-MiniLM-L6-v2's width, so hand-made and model vectors are interchangeable


def settings_for(index_dir: Path, **changes: object) -> Settings:
    """Settings for a test: an index in a temp dir, nothing read from the real environment."""
    return load_settings(
        {},
        index_dir=index_dir,
        data_dir=index_dir.parent / "data",
        corpus_dir=CORPUS,
        model_cache=os.environ["ASSISTANT_MODEL_CACHE"],
    ).replace(**changes)


@pytest.fixture(scope="session")
def embedder() -> SentenceEmbeddings:
    """The packaged all-MiniLM-L6-v2, loaded once per test session."""
    return build_embeddings(Settings(model_cache=os.environ["ASSISTANT_MODEL_CACHE"]))


@pytest.fixture(scope="session")
def corpus_index(tmp_path_factory: pytest.TempPathFactory, embedder: SentenceEmbeddings) -> Path:
    """An index of the shipped corpus, built once per session; treat it as read-only."""
    index = tmp_path_factory.mktemp("corpus-index") / "index"
    assistant = Assistant.from_settings(settings_for(index), create=True)
    report = assistant.ingest([CORPUS])
    assert report.added > 0 and not report.failed
    return index


@pytest.fixture(scope="session")
def corpus_assistant(corpus_index: Path) -> Assistant:
    """An Assistant over the shipped corpus (read-only)."""
    return Assistant.from_settings(settings_for(corpus_index))


@pytest.fixture
def guides(tmp_path: Path) -> Iterator[Path]:
    """A writable copy of three shipped guides, to edit, add to and delete from."""
    folder = tmp_path / "guides"
    folder.mkdir()
    for name in ("residency-and-internship.md", "cmd-credential-long-term-care.md", "first-90-days.md"):
        shutil.copy(CORPUS / name, folder / name)
    yield folder


def read_jsonl(path: Path) -> list[dict[str, object]]:
    """The records of a JSONL file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs the shipped corpus's index (directly or through a fixture) `corpus`."""
    for item in items:
        if any(name in CORPUS_FIXTURES for name in getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.corpus)


# --- synthetic chunks: the composer's and the gate's rules without an index ----------------------


def unit_vector(key: str, dim: int = VECTOR_DIM) -> np.ndarray:
    """A fixed pseudo-random unit vector for a key; vectors of different keys are near orthogonal."""
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return vector / np.linalg.norm(vector)


def stored_chunk(
    body: str,
    *,
    source: str = "guide.md",
    title: str = "A guide",
    section: str = "A section",
    position: int = 0,
    not_covered: bool = False,
    embedder: SentenceEmbeddings | None = None,
) -> StoredChunk:
    """A StoredChunk as ingest stores it: heading line, sentence spans and their vectors.

    With `embedder` the vectors come from the model's pass over the chunk, as at ingest;
    without, each sentence gets `unit_vector` of its text (for rules, not meaning).
    """
    heading = " > ".join([title, *([section] if section else [])])
    text = f"{heading}\n\n{body.strip()}"
    start = len(heading) + 2
    spans = [(start + a, start + b) for a, b in split_sentences(text[start:])]
    bits = np.zeros((0, 0), np.uint8)
    if embedder is not None:
        pooled = embedder.embed_chunks([text], [spans])[0]
        spans, vectors, bits = list(pooled.spans), pooled.sentence_vectors, pooled.token_bits
    else:
        vectors = np.vstack([unit_vector(text[a:b]) for a, b in spans]) if spans else np.zeros((0, VECTOR_DIM))
    return StoredChunk(
        id=hashlib.sha256(f"{source}\x00{position}\x00{text}".encode()).hexdigest()[:32],
        source=source,
        title=title,
        section=section,
        text=text,
        body_start=start,
        position=position,
        doc_hash=hashlib.sha256(source.encode()).hexdigest(),
        spans=tuple(spans),
        sentence_vectors=vectors.astype(np.float32),
        not_covered=not_covered,
        token_bits=bits,
    )


def passage(chunk: StoredChunk | str, *, similarity: float = 0.5, **fields: Any) -> Passage:
    """A retrieved Passage of a chunk (or of `stored_chunk(chunk, **fields)` for a body text)."""
    stored = stored_chunk(chunk, **fields) if isinstance(chunk, str) else chunk
    return Passage(stored, similarity=similarity, fused=similarity)
