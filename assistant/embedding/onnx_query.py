"""A torch-free encoder: the embedding model exported to ONNX and run by onnxruntime.

Serving questions needs only one small encoder pass per question, but importing torch and
sentence-transformers costs about 8 s of the app's start-up. `models.export_query_encoder`
writes the same weights (with mean pooling and normalisation) to an ONNX file the first time
the torch model is loaded and checks it against that model; afterwards questions are embedded
here, with identical vectors, and torch is imported only when documents are embedded.

With ASSISTANT_ENCODER=int8 the export is quantized here (onnxruntime's dynamic quantization:
int8 weights per output channel, activations quantized on the fly) and that model embeds guides
and questions alike, without torch: faster, and a little less exact (docs/benchmarks.md).

This is the only module that imports onnxruntime or tokenizers.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

INPUTS = ("input_ids", "attention_mask", "token_type_ids")


class OnnxQueryEncoder:
    """Embeds one text at a time with an exported model and the model's own tokenizer.json."""

    def __init__(self, onnx_path: Path, tokenizer_path: Path, max_tokens: int) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # warnings about unused initialisers are noise here
        self._session = onnxruntime.InferenceSession(
            str(onnx_path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_tokens)
        self._inputs = [i.name for i in self._session.get_inputs()]
        self.path = onnx_path

    def embed(self, text: str) -> np.ndarray:
        """The unit-length embedding of `text` (truncated to the model's window)."""
        return self.encode(text)[0]

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int]]]:
        """(embedding, token vectors, their character spans) of `text`, special tokens left out."""
        encoding = self._tokenizer.encode(text)
        vectors, tokens = self._session.run(None, self._feed(_padded([encoding])[0]))
        real = [n for n, special in enumerate(encoding.special_tokens_mask) if not special]
        offsets = [encoding.offsets[n] for n in real]
        return np.asarray(vectors[0], dtype=np.float32), np.asarray(tokens[0][real], dtype=np.float32), offsets

    def _feed(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {name: arrays[name] for name in self._inputs}  # an export may not take token_type_ids

    def tokenize(self, texts: list[str]) -> list[Any]:
        """Each text's tokenizer encoding (truncated to the model's window), for `encode_tokenized`."""
        return list(self._tokenizer.encode_batch(texts))

    def encode_tokenized(self, encodings: list[Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings, token vectors, token character offsets, attention mask) of a batch of
        `tokenize`'s encodings, padded here to the longest.

        Special tokens are in the token vectors with offsets (0, 0), like the torch path's.
        """
        arrays, offsets = _padded(encodings)
        vectors, tokens = self._session.run(None, self._feed(arrays))
        return (
            np.asarray(vectors, dtype=np.float32),
            np.asarray(tokens, dtype=np.float32),
            offsets,
            arrays["attention_mask"].astype(bool),
        )


def _padded(encodings: list[Any]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The model's inputs and the token offsets for one encoding or a batch of any lengths,
    zero-padded to the longest (BERT's [PAD] is id 0; padding has mask 0 and offsets (0, 0))."""
    length = max(len(e.ids) for e in encodings)
    arrays = {name: np.zeros((len(encodings), length), dtype=np.int64) for name in INPUTS}
    offsets = np.zeros((len(encodings), length, 2), dtype=np.int64)
    for row, e in enumerate(encodings):
        n = len(e.ids)
        arrays["input_ids"][row, :n] = e.ids
        arrays["attention_mask"][row, :n] = e.attention_mask
        arrays["token_type_ids"][row, :n] = e.type_ids
        offsets[row, :n] = e.offsets
    return arrays, offsets


def quantize_int8(source: Path, target: Path) -> None:
    """Write an int8 copy of an exported model: weights per output channel, activations dynamic.

    Only matrix products with a constant weight are quantized (the attention's products of two
    activations stay float), which keeps embeddings within about 0.005 cosine of the float model.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    scratch = target.with_name(f"{target.name}.tmp")
    quantize_dynamic(
        str(source),
        str(scratch),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        extra_options={"MatMulConstBOnly": True},
    )
    scratch.replace(target)
    logger.info("wrote the int8 encoder %s", target)


def load_query_encoder(onnx_path: Path, tokenizer_path: Path, max_tokens: int) -> OnnxQueryEncoder | None:
    """The encoder, or None (and a warning) when the file is missing or unusable."""
    if not onnx_path.is_file() or not tokenizer_path.is_file():
        return None
    try:
        return OnnxQueryEncoder(onnx_path, tokenizer_path, max_tokens)
    except Exception as exc:  # a truncated or foreign file: fall back to torch, re-export later
        logger.warning("ignoring the exported query encoder %s: %s", onnx_path, exc)
        return None
