"""The embedder: questions through the ONNX export match torch, and a process that only asks never imports torch."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from assistant.config import load_settings
from assistant.embedding.models import CHECK_TEXTS, QUESTION_CACHE, SentenceEmbeddings, resolve_model_path
from assistant.errors import ConfigError
from conftest import PYTHON, ROOT

MODEL = "all-MiniLM-L6-v2"
QUESTIONS = [
    "What is the CMD credential?",
    "how long does that take?",
    "Résidence et internat: combien d'années ?",
    "<script>alert(1)</script> What does a medical director do?",
    "board certification " * 200,  # past the 256-token window: truncated the same way
]


def _embedder(export_dir: Path) -> SentenceEmbeddings:
    return SentenceEmbeddings(resolve_model_path(MODEL), MODEL, export_dir=export_dir)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding a fresh export, written by loading the torch model once."""
    folder = tmp_path_factory.mktemp("export")
    embedder = _embedder(folder)
    assert embedder.query_backend == "torch", "nothing exported yet"
    embedder.model  # noqa: B018 - loading the torch model writes the export
    assert embedder.query_backend == "onnx"
    return folder


def test_onnx_question_vectors_equal_the_torch_ones(exported: Path) -> None:
    embedder = _embedder(exported.parent / "no-export-here")  # questions on torch
    onnx = _embedder(exported)
    assert onnx.query_backend == "onnx"
    for question in QUESTIONS:
        expected = np.asarray(embedder.embed_documents([question])[0])
        got = np.asarray(onnx.embed_query(question))
        assert np.abs(got - expected).max() < 1e-4, question
        assert abs(float(np.linalg.norm(got)) - 1.0) < 1e-5


def test_onnx_question_token_vectors_equal_the_torch_ones(exported: Path) -> None:
    onnx, torch = _embedder(exported), _embedder(exported.parent / "no-export-here")
    torch._query_encoder = None  # this one answers through torch
    for question in QUESTIONS:
        got, expected = onnx.encode_question(question), torch._encode_with_torch(question)
        assert got.offsets == expected.offsets, question
        assert got.tokens.shape == (len(got.offsets), 384)
        assert np.abs(got.tokens - expected.tokens).max() < 1e-3, question
        norms = np.linalg.norm(got.tokens.astype(np.float32), axis=1)
        assert norms == pytest.approx(np.ones(len(got.offsets)), abs=1e-3)
    first = onnx.encode_question("What is the CMD credential?")
    assert [("What is the CMD credential?")[a:b] for a, b in first.offsets][:3] == ["What", "is", "the"]


def test_the_question_cache_stays_bounded(exported: Path) -> None:
    onnx = _embedder(exported)
    for n in range(QUESTION_CACHE + 10):
        onnx.encode_question(f"How long is residency, question {n}?")
    assert len(onnx._cache) == QUESTION_CACHE
    assert "How long is residency, question 0?" not in onnx._cache  # the oldest went first
    cached = onnx.encode_question("How long is residency, question 20?")
    assert onnx.encode_question("How long is residency, question 20?") is cached
    onnx.forget_questions()  # the bench times every question's encoding
    again = onnx.encode_question("How long is residency, question 20?")
    assert again is not cached and np.array_equal(again.vector, cached.vector)


def test_a_process_that_only_asks_never_imports_torch(exported: Path) -> None:
    script = f"""
import json, sys
from pathlib import Path
from assistant.embedding.models import SentenceEmbeddings, resolve_model_path
e = SentenceEmbeddings(resolve_model_path({MODEL!r}), {MODEL!r}, export_dir=Path({str(exported)!r}))
v = e.embed_query("How long is residency?")
print(json.dumps({{"backend": e.query_backend, "torch": "torch" in sys.modules, "dim": len(v)}}))
"""
    result = subprocess.run([PYTHON, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"backend": "onnx", "torch": False, "dim": 384}


def test_a_corrupt_export_is_ignored_then_replaced(tmp_path: Path, exported: Path, caplog) -> None:
    (good,) = exported.glob("*.onnx")
    bad = tmp_path / good.name
    bad.write_bytes(b"\x00not an onnx model\xff" * 100)
    embedder = _embedder(tmp_path)
    assert embedder.query_backend == "torch"
    assert "ignoring the exported query encoder" in caplog.text
    vector = embedder.embed_query(CHECK_TEXTS[0])  # torch loads, and writes a good export
    assert embedder.query_backend == "onnx"
    assert bad.stat().st_size == good.stat().st_size
    assert _embedder(tmp_path).query_backend == "onnx"
    assert len(vector) == 384


def test_an_unwritable_export_folder_leaves_questions_on_torch(tmp_path: Path, caplog) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the export folder should be")
    embedder = _embedder(blocker)
    vector = embedder.embed_query("What is QAPI?")
    assert embedder.query_backend == "torch"
    assert "could not export the embedding model" in caplog.text
    assert len(vector) == 384


CHUNKS = [
    "Residency lasts at least three years. Some specialties take five or more. Fellowship adds one to three.",
    "The CMD credential is awarded by AMDA. It is optional. Many employers in long-term care prefer it.",
    "x",
]


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    spans, start = [], 0
    for end in [i + 1 for i, ch in enumerate(text) if ch == "."] or [len(text)]:
        spans.append((start, end))
        start = end + 1
    return spans


def test_the_int8_encoder_is_quantized_from_the_export_and_stays_close_to_torch(exported: Path) -> None:
    reference = _embedder(exported.parent / "no-export-here")  # guides and questions on torch, fp32
    int8 = SentenceEmbeddings(resolve_model_path(MODEL), MODEL, export_dir=exported, precision="int8")
    assert int8.query_backend == "onnx-int8" and len(list(exported.glob("*-int8.onnx"))) == 1
    for question in QUESTIONS:
        got, expected = np.asarray(int8.embed_query(question)), np.asarray(reference.embed_documents([question])[0])
        assert float(got @ expected) > 0.97, question
    spans = [_sentence_spans(t) for t in CHUNKS]
    for got, expected in zip(int8.embed_chunks(CHUNKS, spans), reference.embed_chunks(CHUNKS, spans), strict=True):
        assert float(got.vector @ expected.vector) > 0.97
        assert got.spans == expected.spans and got.token_bits.shape == expected.token_bits.shape
        assert all(float(a @ b) > 0.95 for a, b in zip(got.sentence_vectors, expected.sentence_vectors, strict=True))
    assert np.allclose(int8.embed_documents(CHUNKS), [c.vector for c in int8.embed_chunks(CHUNKS, spans)], atol=1e-5)


def test_an_int8_ingest_never_imports_torch_once_the_export_exists(exported: Path) -> None:
    code = f"""
import json, sys
from pathlib import Path
from assistant.embedding.models import SentenceEmbeddings, resolve_model_path
e = SentenceEmbeddings(resolve_model_path("{MODEL}"), "{MODEL}", export_dir=Path({str(exported)!r}), precision="int8")
chunks = e.embed_chunks(["Residency lasts three years. Then boards."], [[(0, 28), (29, 41)]])
print(json.dumps({{"backend": e.query_backend, "torch": "torch" in sys.modules, "sentences": len(chunks[0].spans)}}))
"""
    result = subprocess.run([PYTHON, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "backend": "onnx-int8",
        "torch": False,
        "sentences": 2,
    }


def test_an_unknown_encoder_setting_is_refused() -> None:
    with pytest.raises(ConfigError, match="ASSISTANT_ENCODER"):
        load_settings({"ASSISTANT_ENCODER": "fp16"})
