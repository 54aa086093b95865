"""Late interaction (MaxSim over MiniLM token vectors) on a tune_retrieval cache.

    python experiments/tune_maxsim.py tokens ../shared/eval/scifact --cache /tmp/tune/scifact   # ~10 min
    python experiments/tune_maxsim.py grid ../shared/eval/scifact --cache /tmp/tune/scifact --split train

`tokens` encodes the cache's chunk texts and queries once more and saves every token vector
(fp16, unit length; [CLS] and [SEP] included, as the encoder pass at ingest sees them).
`grid` re-scores the chosen fusion's candidates (cosine + 0.8 x conf@10 x BM25/best, exact dense
search, 100 candidates a side) with `fused + weight x MaxSim`, where MaxSim is the mean over
the question's word pieces (without [CLS]/[SEP]) of the best cosine with a piece of the chunk:

- question pieces weighted equally ("plain"), by the idf of the word piece over the chunks
  ("piece idf"), or by the BM25 idf of the word they belong to ("word idf": the product's
  `KeywordIndex.piece_weights`, 0 for stopwords and punctuation);
- chunk pieces kept as fp16 vectors, or as sign bits (the product's `interaction.py`);
- every candidate re-scored, or only the best `late_candidates` by fused score, the rest kept
  below them in fused order (the product's `Retriever._interact`).

Tune on `--split train` only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tune_retrieval import Cached, _candidates, confidence, say
from tune_variants import _documents

from assistant.devtools.eval import score_runs
from assistant.embedding.interaction import maxsim, pack_tokens
from assistant.retrieval.keyword import KeywordIndex


def _model():  # type: ignore[no-untyped-def]
    from assistant.config import load_settings
    from assistant.embedding.models import build_embeddings

    return build_embeddings(load_settings({})).model


def tokens(cache: Path) -> None:
    """Save every chunk's and query's token vectors (fp16, unit rows) and their counts."""
    meta = json.loads((cache / "meta.json").read_text())
    model = _model()
    for name, texts in (("q", meta["qtexts"]), ("c", meta["texts"])):
        out = model.encode(texts, output_value="token_embeddings", convert_to_numpy=False, batch_size=32)
        matrix = np.concatenate([o.float().numpy() for o in out])
        matrix /= np.linalg.norm(matrix, axis=1, keepdims=True) + 1e-9
        np.save(cache / f"{name}_tok.npy", matrix.astype(np.float16))
        np.save(cache / f"{name}_len.npy", np.asarray([len(o) for o in out]))
        say(f"{name}: {len(texts)} texts, {len(matrix)} token vectors")


def grid(cache: Path, data: Cached) -> None:
    meta = json.loads((cache / "meta.json").read_text())
    row_of = {q: n for n, q in enumerate(meta["qids"])}
    qtok = np.load(cache / "q_tok.npy").astype(np.float32)
    ctok = np.load(cache / "c_tok.npy").astype(np.float32)
    qoff = np.concatenate([[0], np.cumsum(np.load(cache / "q_len.npy"))])
    coff = np.concatenate([[0], np.cumsum(np.load(cache / "c_len.npy"))])
    tokenizer = _model().tokenizer
    chunk_ids = tokenizer(meta["texts"], truncation=True, max_length=256)["input_ids"]
    df = np.zeros(tokenizer.vocab_size + 10)
    for ids in chunk_ids:
        df[list(set(ids))] += 1
    piece_idf = np.log((len(chunk_ids) - df + 0.5) / (df + 0.5) + 1)
    keyword_index = KeywordIndex(list(range(len(meta["texts"]))), meta["texts"], 0.9, 0.4)  # type: ignore[arg-type]
    keyword = data.bm25()
    gap = confidence(keyword, 10)
    bits = [pack_tokens(ctok[coff[c] : coff[c + 1]]) for c in range(len(meta["texts"]))]

    features = []  # per question: candidates, fused, and MaxSim under each variant
    for qi, q in enumerate(data.qids):
        n = row_of[q]
        text = meta["qtexts"][n]
        question = qtok[qoff[n] + 1 : qoff[n + 1] - 1]  # without [CLS] and [SEP]
        encoded = tokenizer(text, truncation=True, max_length=256, return_offsets_mapping=True)
        offsets = [tuple(o) for o in encoded["offset_mapping"][1:-1]]
        weights = {
            "plain": np.ones(len(question), np.float32),
            "piece idf": piece_idf[encoded["input_ids"][1:-1]].astype(np.float32),
            "word idf": keyword_index.piece_weights(text, offsets),
        }
        cand, _, _ = _candidates(data.dense[qi], keyword[qi])
        s = keyword[qi][cand]
        fused = data.dense[qi][cand] + 0.8 * gap[qi] * s / max(float(s.max()), 1e-9)
        segments = [np.arange(coff[c], coff[c + 1]) for c in cand]
        starts = np.concatenate([[0], np.cumsum([len(g) for g in segments])[:-1]])
        best = np.maximum.reduceat(question @ ctok[np.concatenate(segments)].T, starts, axis=1)
        late = {}
        for name, w in weights.items():
            share = w / w.sum() if w.sum() > 0 else np.full(len(w), 1 / len(w))
            late[("fp16", name)] = share @ best
            late[("bits", name)] = maxsim(question, w, [bits[c] for c in cand])
        features.append((cand, fused, late))

    def score(weight: float, variant: tuple[str, str], top: int = 0, alone: bool = False) -> str:
        runs = {}
        for q, (cand, fused, late) in zip(data.qids, features):
            scores = late[variant] if alone else fused + weight * late[variant]
            if top:
                order = np.argsort(-fused, kind="stable")
                floor = late[variant][order[:top]].min()
                scores = fused + weight * floor
                scores[order[:top]] = fused[order[:top]] + weight * late[variant][order[:top]]
            runs[q] = _documents(data, cand[np.argsort(-scores, kind="stable")])
        r = score_runs(runs, data.qrels, 10)
        return f"{r['ndcg@10']:.4f} | {r['recall@100']:.4f} | {r['mrr@10']:.4f}"

    say(f"| chosen fusion | {score(0.0, ('fp16', 'plain'))} |")
    for name in ("plain", "piece idf", "word idf"):
        say(f"| MaxSim alone (ordering the same candidates), {name}, fp16 | {score(1.0, ('fp16', name), alone=True)} |")
    for storage in ("fp16", "bits"):
        for name in ("plain", "piece idf", "word idf"):
            for weight in (0.5, 1.0, 1.5, 2.0):
                say(f"| + {weight} x MaxSim, {name}, {storage} | {score(weight, (storage, name))} |")
    for top in (10, 30):
        for weight in (1.0, 1.5):
            variant = ("bits", "word idf")
            say(f"| + {weight} x MaxSim, word idf, bits, best {top} re-scored | {score(weight, variant, top)} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["tokens", "grid"])
    parser.add_argument("dataset", type=Path, help="BEIR folder")
    parser.add_argument("--cache", type=Path, required=True, help="a tune_retrieval.py build cache")
    parser.add_argument("--split", default="train", help="qrels split to score (tune on train)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "tokens":
        tokens(args.cache)
    else:
        grid(args.cache, Cached(args.cache, args.dataset, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
