"""More retrieval variants scored on a tune_retrieval cache (docs/history.md).

    python experiments/tune_variants.py heading ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py rm3 ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py prf ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py late ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py docbm25 ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py centrality ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py neighbours ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py docconf ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py hubness ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py centring ../shared/eval/scifact --cache /tmp/tune/scifact
    python experiments/tune_variants.py paired ../shared/eval/scifact --cache /tmp/tune/scifact \
        --against /tmp/tune/scifact600 --against /tmp/tune/scifact-t160
    python experiments/tune_variants.py windows ../shared/eval/scifact --cache /tmp/tune/scifact \
        --windows /tmp/tune/scifact600

Each prints table rows (setting | nDCG@10 | R@100 | MRR@10) under the chosen fusion
(cosine + 0.8 x conf@10 x BM25/best), with the grid's exact dense search:

- heading: the chunk's heading line embedded on its own, its cosine added to the chunk's.
- rm3: BM25 expansion terms from the top fused chunks (RM3-like).
- prf: dense pseudo-relevance feedback over a grid, with 5-fold cross-validation on the split.
- docbm25: the BM25 score of the chunk's whole document added to the chunk's own.
- centrality: BM25 query terms weighted by how central each is to the question's meaning (the
  cosine of the term's MiniLM token vectors to the question's vector), to a power.
- neighbours: BM25 over each chunk together with its neighbours in the document (one before, one
  after; or two), over whole documents instead of chunks, bm25s' other BM25 formulas, and a
  document scored by its best chunk plus a share of its second best.
- docconf: BM25's confidence measured over distinct documents (each scored by its best chunk)
  instead of chunks, whose neighbours share words (and, under windows, whole texts), with and
  without the neighbour windows.
- hubness: each chunk's cosine lowered by beta x its mean cosine to its k nearest chunks of
  other documents (hubness reduction, CSLS-like: a chunk close to everything is close to every
  question too).
- centring: cosines after subtracting the chunks' mean vector, and after also removing the top
  principal components ("all-but-the-top").
- paired: is a variant's nDCG@10 difference from the chosen setting more than noise? Per-question
  differences against other caches (--against) and the Porter stemmer, with a 95% bootstrap
  interval and a sign-flip randomization p-value.
- late: "late-chunked" windows: means of consecutive sentence vectors (pooled at ingest).
- windows: small-to-big; each chunk scored by its best window from a second cache built with
  smaller chunks (e.g. ASSISTANT_CHUNK_SIZE=600 ASSISTANT_CHUNK_OVERLAP=100), alone or with its
  own vector.
Tune on `--split train` only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tune_retrieval import Cached, _bm25, _candidates, _tokens, confidence, convex_max, run, say

from assistant.devtools.eval import RECALL_DEPTH, ndcg, score_runs

WEIGHT = 0.8  # the chosen fusion's BM25 weight


def row(name: str, figures: dict[str, float]) -> None:
    say(f"| {name} | {figures['ndcg@10']:.4f} | {figures['recall@100']:.4f} | {figures['mrr@10']:.4f} |")


def chosen(data: Cached, keyword: np.ndarray, weight: float = WEIGHT) -> dict[str, float]:
    return run(data, convex_max(weight, confidence(keyword, 10)), keyword)


def _documents(data: Cached, order: np.ndarray) -> list[str]:
    seen: dict[str, None] = {}
    for i in order:
        seen.setdefault(data.sources[i])
        if len(seen) == RECALL_DEPTH:
            break
    return list(seen)


def _fused_order(data: Cached, qi: int, cosine: np.ndarray, keyword: np.ndarray) -> np.ndarray:
    """Candidate chunks of one question, best first, under the chosen fusion."""
    cand, _, _ = _candidates(cosine, keyword)
    top = -np.sort(-keyword)[:10]
    best = max(float(top[0]), 1e-9)
    gap = (top[0] - top[-1]) / best
    fused = cosine[cand] + WEIGHT * gap * keyword[cand] / best
    return cand[np.argsort(-fused, kind="stable")]


def heading(data: Cached) -> None:
    from assistant.config import load_settings
    from assistant.embedding.models import build_embeddings

    heads = [t.split("\n", 1)[0] for t in data.texts]
    unique = sorted(set(heads))
    embedder = build_embeddings(load_settings(os.environ))
    vectors = np.asarray(embedder.embed_documents(unique), np.float32)
    where = {h: n for n, h in enumerate(unique)}
    head_cosine = (data.queries @ vectors.T)[:, [where[h] for h in heads]]
    keyword, plain = data.bm25(), data.dense
    for share in (0.1, 0.2, 0.3):
        for weight in (0.8, 1.0):
            data.dense = plain + share * head_cosine
            row(f"chunk cosine + {share} x heading cosine, BM25 weight {weight}", chosen(data, keyword, weight))
    data.dense = plain


def rm3(data: Cached) -> None:
    docs, queries = _tokens(data.texts), _tokens(data.qtexts)
    import bm25s

    model = bm25s.BM25(k1=0.9, b=0.4)
    model.index(docs, show_progress=False)
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    idf = {t: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for t, n in df.items()}
    keyword = data.bm25()
    first = [_fused_order(data, qi, data.dense[qi], keyword[qi]) for qi in range(len(data.qids))]
    single: dict[str, np.ndarray] = {}

    def term(t: str) -> np.ndarray:
        if t not in single:
            single[t] = np.asarray(model.get_scores([t]), np.float32)
        return single[t]

    for feedback in (3, 5):
        for terms in (5, 10):
            for weight in (0.2, 0.4):
                runs = {}
                for qi, q in enumerate(data.qids):
                    asked, mass = set(queries[qi]), dict[str, float]()
                    for i in first[qi][:feedback]:
                        counts = Counter(docs[i])
                        length = sum(counts.values())
                        for t, n in counts.items():
                            if t not in asked:
                                mass[t] = mass.get(t, 0.0) + n / length * idf[t]
                    picked = sorted(mass.items(), key=lambda kv: -kv[1])[:terms]
                    expanded = keyword[qi].copy()
                    if picked:
                        total = sum(w for _, w in picked)
                        expanded += weight * len(asked) * sum((w / total) * term(t) for t, w in picked)
                    runs[q] = _documents(data, _fused_order(data, qi, data.dense[qi], expanded))
                row(
                    f"RM3-like: top {feedback} chunks, {terms} terms, weight {weight}",
                    score_runs(runs, data.qrels, 10),
                )


def prf(data: Cached) -> None:
    keyword = data.bm25()
    first = [_fused_order(data, qi, data.dense[qi], keyword[qi]) for qi in range(len(data.qids))]
    per_query: dict[tuple[float, int, bool], np.ndarray] = {}
    for beta in (0.0, 0.1, 0.2, 0.3, 0.4, 0.6):
        for top in (1, 2, 3, 5):
            for by_document in (False, True):
                if beta == 0 and (top > 1 or by_document):
                    continue
                figures = []
                for qi, q in enumerate(data.qids):
                    order = first[qi]
                    if beta > 0:
                        picked = _feedback(data, order, top, by_document)
                        vector = data.queries[qi] + beta * data.chunks[picked].mean(0)
                        vector /= np.linalg.norm(vector)
                        order = _fused_order(data, qi, data.chunks @ vector, keyword[qi])
                    figures.append(ndcg(_documents(data, order), data.qrels[q], 10))
                per_query[(beta, top, by_document)] = np.asarray(figures)
                say(
                    f"| PRF weight {beta}, top {top} {'documents' if by_document else 'chunks'} | {np.mean(figures):.4f} | | |"
                )
    settings = list(per_query)
    for seed in range(3):
        folds = np.array_split(np.random.default_rng(seed).permutation(len(data.qids)), 5)
        cv, base = [], []
        for f in range(5):
            rest = np.concatenate([folds[g] for g in range(5) if g != f])
            best = max(settings, key=lambda k: float(per_query[k][rest].mean()))
            cv.append(per_query[best][folds[f]].mean())
            base.append(per_query[(0.0, 1, False)][folds[f]].mean())
        say(
            f"| PRF, 5-fold CV (seed {seed}): best grid setting on 4 folds, scored on the 5th | {np.mean(cv):.4f} | chosen {np.mean(base):.4f} | |"
        )


def _feedback(data: Cached, order: np.ndarray, top: int, by_document: bool) -> list[int]:
    if not by_document:
        return [int(i) for i in order[:top]]
    picked, seen = [], set()
    for i in order:
        if data.sources[i] not in seen:
            seen.add(data.sources[i])
            picked.append(int(i))
            if len(picked) == top:
                break
    return picked


def docbm25(data: Cached) -> None:
    """Chunk BM25 + w x its document's BM25 (title line once, then every chunk body)."""
    sources = sorted(set(data.sources))
    column = {source: n for n, source in enumerate(sources)}
    title: dict[str, str] = {}
    bodies: dict[str, list[str]] = {source: [] for source in sources}
    for text, source in zip(data.texts, data.sources, strict=True):
        head, _, body = text.partition("\n\n")
        title.setdefault(source, head)
        bodies[source].append(body)
    documents = [title[s] + "\n" + " ".join(bodies[s]) for s in sources]
    whole = _bm25(_tokens(documents, "en"), _tokens(data.qtexts, "en"), 0.9, 0.4)
    per_chunk = whole[:, [column[s] for s in data.sources]]
    base = data.bm25()
    row("chosen", chosen(data, base))
    for w in (0.1, 0.2, 0.3, 0.5, 1.0):
        row(f"chunk BM25 + {w} x document BM25", chosen(data, base + w * per_chunk))


def neighbours(data: Cached) -> None:
    """Keyword evidence from a chunk's context: BM25 over the chunk and its neighbours, and more."""
    import bm25s

    texts, sources = data.texts, data.sources  # a cache keeps each document's chunks in order
    base = data.bm25()
    row("chosen", chosen(data, base))
    for r in (1, 2):
        keyword = data.bm25(_window_texts(data, r))
        for weight in (0.8, 1.2):
            for rank in (10, 20):
                name = f"BM25 over chunk +- {r} neighbours, {weight} x conf@{rank}"
                row(name, run(data, convex_max(weight, confidence(keyword, rank)), keyword))
    whole = data.bm25(_window_texts(data, 10**6))  # the whole document for every chunk
    for weight in (0.8, 1.2):
        for rank in (10, 20):
            row(
                f"BM25 over the whole document, {weight} x conf@{rank}",
                run(data, convex_max(weight, confidence(whole, rank)), whole),
            )
    docs, queries = _tokens(texts), _tokens(data.qtexts)
    for method, delta in (("robertson", 0.5), ("atire", 0.5), ("bm25l", 0.5), ("bm25+", 0.5), ("bm25+", 1.0)):
        model = bm25s.BM25(k1=0.9, b=0.4, method=method, delta=delta)
        model.index(docs, show_progress=False)
        keyword = np.zeros_like(base)
        for n, query in enumerate(queries):
            terms = [t for t in query if t in model.vocab_dict]
            if terms:
                keyword[n] = model.get_scores(terms)
        row(f"bm25s method {method}, delta {delta}", chosen(data, keyword))
    gap = confidence(base, 10)
    for share in (0.05, 0.1, 0.2):
        runs = {}
        for qi, q in enumerate(data.qids):
            cand, _, _ = _candidates(data.dense[qi], base[qi])
            best = max(float(base[qi][cand].max()), 1e-9)
            fused = data.dense[qi][cand] + WEIGHT * gap[qi] * base[qi][cand] / best
            per_doc: dict[str, list[float]] = {}
            for i in np.argsort(-fused, kind="stable"):
                per_doc.setdefault(sources[cand[i]], []).append(float(fused[i]))
            score = {d: v[0] + share * (v[1] if len(v) > 1 else 0.0) for d, v in per_doc.items()}
            runs[q] = sorted(score, key=lambda d: -score[d])[:RECALL_DEPTH]
        row(f"document = best chunk + {share} x second best", score_runs(runs, data.qrels, 10))


def _window_texts(data: Cached, radius: int) -> list[str]:
    """Each chunk's text joined with up to `radius` chunks either side of it in the same document."""
    texts, sources, n = data.texts, data.sources, len(data.texts)
    return [
        "\n".join(texts[j] for j in range(i - radius, i + radius + 1) if 0 <= j < n and sources[j] == sources[i])
        for i in range(n)
    ]


def docconf(data: Cached) -> None:
    """conf@n over distinct documents' best BM25 chunk, for chunk BM25 and the neighbour windows."""
    documents = {d: k for k, d in enumerate(sorted(set(data.sources)))}
    column = np.array([documents[s] for s in data.sources])

    def over_documents(keyword: np.ndarray, rank: int) -> np.ndarray:
        best = np.zeros((keyword.shape[0], len(documents)))
        np.maximum.at(best.T, column, keyword.T)
        return confidence(best, rank)

    for radius, label in ((0, "chunk BM25"), (1, "+- 1 neighbour"), (2, "+- 2 neighbours"), (10**6, "whole document")):
        keyword = data.bm25() if radius == 0 else data.bm25(_window_texts(data, radius))
        for weight in (0.8, 1.0, 1.2):
            for rank in (5, 10, 20):
                fusion = convex_max(weight, over_documents(keyword, rank))
                row(f"{label}, {weight} x document conf@{rank}", run(data, fusion, keyword))


def hubness(data: Cached) -> None:
    """Cosine minus beta x the chunk's mean cosine to its k nearest chunks of other documents."""
    keyword, plain = data.bm25(), data.dense
    vectors = data.chunks.astype(np.float32)
    _, document = np.unique(np.array(data.sources), return_inverse=True)
    depths = (5, 10, 50)
    density = {k: np.zeros(len(vectors), np.float32) for k in depths}
    for start in range(0, len(vectors), 1024):
        block = vectors[start : start + 1024] @ vectors.T
        block[document[start : start + 1024, None] == document[None, :]] = -1.0
        nearest = -np.sort(-block, axis=1)[:, : max(depths)]
        for k in depths:
            density[k][start : start + 1024] = nearest[:, :k].mean(axis=1)
    row("chosen", chosen(data, keyword))
    for k in depths:
        for beta in (0.1, 0.2, 0.3, 0.5):
            data.dense = plain - beta * density[k][None, :]
            row(f"cosine - {beta} x mean cosine to the {k} nearest chunks", chosen(data, keyword))
    data.dense = plain


def centring(data: Cached) -> None:
    """Cosines of mean-centred vectors, optionally without the top principal components."""
    keyword, plain = data.bm25(), data.dense
    chunks, queries = data.chunks.astype(np.float64), data.queries.astype(np.float64)
    mean = chunks.mean(axis=0)

    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    row("chosen", chosen(data, keyword))
    for share in (0.5, 1.0):
        data.dense = (unit(queries - share * mean) @ unit(chunks - share * mean).T).astype(np.float32)
        row(f"centred ({share} x the mean vector subtracted)", chosen(data, keyword))
    centred = chunks - mean
    _, _, components = np.linalg.svd(centred[::3], full_matrices=False)
    for top in (1, 2, 5, 10):
        drop = components[:top]
        q, c = queries - mean, centred
        data.dense = (unit(q - q @ drop.T @ drop) @ unit(c - c @ drop.T @ drop).T).astype(np.float32)
        row(f"centred, top {top} principal components removed", chosen(data, keyword))
    data.dense = plain


def centrality(data: Cached) -> None:
    """BM25 with each question term weighted by (its centrality / the question's mean) ** gamma."""
    import re

    import bm25s

    from assistant.config import load_settings
    from assistant.embedding.models import build_embeddings

    model = build_embeddings(load_settings({})).model
    index = bm25s.BM25(k1=0.9, b=0.4)
    index.index(_tokens(data.texts, "en"), show_progress=False)
    weights: list[dict[str, float]] = []
    for question in data.qtexts:
        offsets = model.tokenizer(question, return_offsets_mapping=True, truncation=True)["offset_mapping"]
        tokens = model.encode(question, output_value="token_embeddings", convert_to_numpy=True)
        meaning = tokens[1:-1].mean(axis=0)
        meaning /= np.linalg.norm(meaning)
        found: dict[str, float] = {}
        for word in re.finditer(r"(?u)\b\w\w+\b", question):
            stems = _tokens([word.group()], "en")[0]
            inside = [i for i, (a, b) in enumerate(offsets) if b > a and a >= word.start() and b <= word.end()]
            if stems and inside and stems[0] in index.vocab_dict:
                vector = tokens[inside].mean(axis=0)
                found[stems[0]] = max(found.get(stems[0], -1.0), float(vector @ meaning / np.linalg.norm(vector)))
        weights.append(found)
    scores = [{t: index.get_scores([t]) for t in found} for found in weights]
    row("chosen", chosen(data, data.bm25()))
    for gamma in (0.5, 1.0, 2.0, 4.0):
        keyword = np.zeros((len(data.qids), len(data.texts)), np.float32)
        for qi, found in enumerate(weights):
            if found:
                mean = float(np.mean(list(found.values())))
                for term, c in found.items():
                    keyword[qi] += (max(c, 1e-3) / mean) ** gamma * scores[qi][term]
        row(f"BM25 terms weighted by centrality ** {gamma}", chosen(data, keyword))


def _per_question(data: Cached, keyword: np.ndarray) -> np.ndarray:
    """nDCG@10 of every question under the chosen fusion, in data.qids order."""
    out = []
    for qi, q in enumerate(data.qids):
        order = _fused_order(data, qi, data.dense[qi], keyword[qi])
        out.append(ndcg(_documents(data, order), data.qrels[q], 10))
    return np.asarray(out)


def paired(data: Cached, others: list[tuple[str, Cached]]) -> None:
    """Differences to the chosen setting, question by question: mean, 95% CI, p-value."""
    rng = np.random.default_rng(0)
    chosen_scores = _per_question(data, data.bm25())
    variants = [(name, _per_question(other, other.bm25())) for name, other in others]
    porter = _bm25(_tokens(data.texts, "en", "porter"), _tokens(data.qtexts, "en", "porter"), 0.9, 0.4)
    variants.append(("Porter stemmer", _per_question(data, porter)))
    say("| variant | nDCG@10 difference | 95% interval (bootstrap) | p (sign flips) | questions changed |")
    say("|---|---|---|---|---|")
    for name, scores in variants:
        diff = scores - chosen_scores
        flips = rng.choice([-1.0, 1.0], size=(20000, len(diff)))
        p = float((np.abs((flips * diff).mean(axis=1)) >= abs(diff.mean()) - 1e-12).mean())
        boot = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(2000)]
        low, high = np.percentile(boot, [2.5, 97.5])
        say(f"| {name} | {diff.mean():+.4f} | {low:+.4f} to {high:+.4f} | {p:.2f} | {int((diff != 0).sum())} |")


def _sentence_vectors(cache: Path, data: Cached) -> list[np.ndarray]:
    """Every cached chunk's sentence vectors (pooled at ingest), read once from the cache's index."""
    saved = cache / "sentences.npz"
    if not saved.exists():
        from assistant.config import load_settings
        from assistant.index.store import Store, build_client, collection_suffix

        settings = load_settings(os.environ, index_dir=cache / "index")
        store = Store(build_client(settings), collection_suffix(settings))
        meta = json.loads((cache / "meta.json").read_text())
        got = {}
        for start in range(0, len(meta["ids"]), 2000):
            got.update({c.id: c.sentence_vectors for c in store.get_chunks(meta["ids"][start : start + 2000])})
        arrays = [np.asarray(got[i], np.float32).reshape(-1, data.chunks.shape[1]) for i in meta["ids"]]
        offsets = np.cumsum([0] + [len(a) for a in arrays])
        np.savez(saved, vectors=np.vstack(arrays), offsets=offsets)
    stored = np.load(saved)
    vectors, offsets = stored["vectors"], stored["offsets"]
    return [vectors[offsets[n] : offsets[n + 1]] for n in range(len(offsets) - 1)]


def late(cache: Path, data: Cached) -> None:
    sentences = _sentence_vectors(cache, data)
    keyword, plain = data.bm25(), data.dense
    for size in (2, 3, 4, 6):
        windows, owner = [], []
        for n, vectors in enumerate(sentences):
            for start in range(max(1, len(vectors) - size + 1)):
                if len(vectors):
                    v = vectors[start : start + size].mean(0)
                    windows.append(v / np.linalg.norm(v))
                    owner.append(n)
        cosine = data.queries @ np.asarray(windows, np.float32).T
        best = np.full_like(plain, -1.0)
        for q in range(len(data.qids)):
            np.maximum.at(best[q], np.asarray(owner), cosine[q])
        data.dense = np.maximum(plain, best)
        row(f"late-chunked windows of {size} sentences: max(chunk, window) cosine", chosen(data, keyword))
        data.dense = (plain + best) / 2
        row(f"late-chunked windows of {size} sentences: mean of chunk and window cosine", chosen(data, keyword))
    data.dense = plain


def windows(dataset: Path, data: Cached, small: Cached) -> None:
    """Small-to-big: a chunk's cosine from the smaller chunks ("windows") lying at least half inside it."""
    texts = {}
    for line in (dataset / "corpus.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            texts[str(record["_id"])] = str(record["text"]).strip()

    def spans(cached: Cached) -> list[tuple[int, int]]:
        out = []
        for text, source in zip(cached.texts, cached.sources):
            body = text.split("\n\n", 1)[-1]
            start = texts[source].find(body[:80])
            out.append((start, start + len(body)))
        return out

    big, little = spans(data), spans(small)
    by_source: dict[str, list[int]] = {}
    for j, source in enumerate(small.sources):
        by_source.setdefault(source, []).append(j)
    children = []
    for (a, b), source in zip(big, data.sources):
        inside = [
            j
            for j in by_source[source]
            if min(b, little[j][1]) - max(a, little[j][0]) >= 0.5 * (little[j][1] - little[j][0])
        ]
        children.append(inside or [max(by_source[source], key=lambda j: min(b, little[j][1]) - max(a, little[j][0]))])
    width = max(len(c) for c in children)
    index = np.asarray([(c * width)[:width] for c in children])
    best_window = np.max(small.dense[:, index], axis=2)
    mean_vectors = np.stack([small.chunks[c].mean(0) for c in children])
    mean_vectors /= np.linalg.norm(mean_vectors, axis=1, keepdims=True)
    mean_cosine = small.queries @ mean_vectors.T
    keyword, plain = data.bm25(), data.dense
    say(f"| windows per chunk: {np.mean([len(c) for c in children]):.2f} | | | |")
    for name, cosine in (
        ("chunk's own vector (chosen)", plain),
        ("best window instead of the chunk's vector", best_window),
        ("max(chunk's vector, best window)", np.maximum(plain, best_window)),
        ("mean of the windows' vectors instead of the chunk's", mean_cosine),
        ("max(mean of windows, best window)", np.maximum(mean_cosine, best_window)),
    ):
        data.dense = cosine
        row(f"small-to-big: {name}", chosen(data, keyword))
    data.dense = plain


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "command",
        choices=[
            "heading",
            "rm3",
            "prf",
            "late",
            "docbm25",
            "centrality",
            "neighbours",
            "docconf",
            "hubness",
            "centring",
            "paired",
            "windows",
        ],
    )
    parser.add_argument("dataset", type=Path, help="BEIR folder")
    parser.add_argument("--cache", type=Path, required=True, help="a tune_retrieval.py build cache")
    parser.add_argument("--windows", type=Path, help="windows: a cache built with smaller chunks")
    parser.add_argument("--against", type=Path, action="append", default=[], help="paired: another cache")
    parser.add_argument("--split", default="train", help="qrels split to score (tune on train)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = Cached(args.cache, args.dataset, args.split)
    if args.command == "heading":
        heading(data)
    elif args.command == "rm3":
        rm3(data)
    elif args.command == "prf":
        prf(data)
    elif args.command == "late":
        late(args.cache, data)
    elif args.command == "docbm25":
        docbm25(data)
    elif args.command == "centrality":
        centrality(data)
    elif args.command == "neighbours":
        neighbours(data)
    elif args.command == "docconf":
        docconf(data)
    elif args.command == "hubness":
        hubness(data)
    elif args.command == "centring":
        centring(data)
    elif args.command == "paired":
        paired(data, [(str(c), Cached(c, args.dataset, args.split)) for c in args.against])
    else:
        if args.windows is None:
            parser.error("windows needs --windows CACHE")
        windows(args.dataset, data, Cached(args.windows, args.dataset, args.split))
    return 0


if __name__ == "__main__":
    sys.exit(main())
