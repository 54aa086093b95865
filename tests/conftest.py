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

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
REFERENCE = ROOT.parent / "shared" / "reference"
PYTHON = sys.executable

from assistant.config import Settings, load_settings  # noqa: E402
from assistant.embedding.models import SentenceEmbeddings, build_embeddings  # noqa: E402
from assistant.service import Assistant  # noqa: E402


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
