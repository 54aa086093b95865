"""Retrieval evaluation on BEIR-format datasets, through the pipeline the chat uses.

Each corpus record becomes a Document (source = its `_id`, title and text as given), which is
chunked, embedded and written by the ingest code (`sync_documents`) into a temporary embedded
Chroma index, and searched by the chat's `Retriever`. A document's rank is that of its best
chunk. Only a query's `text` reaches the retriever; its `metadata` (SciFact's evidence
annotations, keyed by the gold ids) is never read.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import logging
import math
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from assistant.config import Settings
from assistant.documents.loading import Document
from assistant.embedding.models import SentenceEmbeddings, build_embeddings
from assistant.errors import InputError
from assistant.index.store import Store, build_client, collection_suffix
from assistant.ingest.sync import sync_documents
from assistant.retrieval.retriever import Retriever

logger = logging.getLogger(__name__)

RECALL_DEPTH = 100  # documents ranked per query, for Recall@100


@dataclass(frozen=True)
class BeirDataset:
    """A BEIR dataset: corpus records, the queries of one split, and their relevance judgments."""

    corpus: list[dict[str, str]]
    queries: dict[str, str]  # query id -> text, in qrels order
    qrels: dict[str, dict[str, int]]  # query id -> {corpus id: grade}


def load_beir(folder: Path, split: str = "test", limit: int | None = None) -> BeirDataset:
    """Read a BEIR folder, keeping only the queries judged in `qrels/<split>.tsv` (the first `limit`).

    A folder that is not a well-formed BEIR dataset raises InputError saying what is wrong.
    """
    try:
        return _read_beir(folder, split, limit)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, OSError, EOFError) as exc:  # a missing column, a bad number...
        what = f"missing field {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise InputError(f"{folder} is not a well-formed BEIR dataset ({what})") from exc


def _read_beir(folder: Path, split: str, limit: int | None) -> BeirDataset:
    qrels_path = folder / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise InputError(f"{folder} has no qrels/{split}.tsv; choose a split that exists with --split")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    if limit is not None:
        qrels = dict(list(qrels.items())[:limit])
    texts = {str(r["_id"]): str(r["text"]) for r in _jsonl(folder / "queries.jsonl")}
    missing = [q for q in qrels if q not in texts]
    if missing:
        raise InputError(f"{len(missing)} judged queries are not in queries.jsonl (e.g. {missing[0]})")
    corpus_path = folder / "corpus.jsonl"
    if not corpus_path.exists():
        corpus_path = folder / "corpus.jsonl.gz"
    if not corpus_path.exists():
        raise InputError(f"{folder} has no corpus.jsonl or corpus.jsonl.gz")
    corpus = [
        {"_id": str(r["_id"]), "title": str(r.get("title") or ""), "text": str(r.get("text") or "")}
        for r in _jsonl(corpus_path)
    ]
    return BeirDataset(corpus=corpus, queries={q: texts[q] for q in qrels}, qrels=qrels)


def numbered_records(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """(line number, object) for each non-blank line of a JSONL file (gzipped when it ends in .gz);
    InputError names the file and line of anything else (bytes that are not UTF-8 raise UnicodeDecodeError)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if line.strip():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path.name} line {number} is not JSON ({exc.msg})") from exc
                if not isinstance(record, dict):
                    raise InputError(f"{path.name} line {number} is not a JSON object")
                yield number, record


def _jsonl(path: Path) -> Iterator[dict[str, object]]:
    return (record for _, record in numbered_records(path))


def corpus_documents(records: Sequence[dict[str, str]], root: str = "") -> list[Document]:
    """Corpus records as Documents, the way a loaded guide looks to the chunker."""
    docs = []
    for record in records:
        title, text = record["title"].strip(), record["text"].strip()
        digest = hashlib.sha256(f"{title}\x00{text}".encode()).hexdigest()
        docs.append(Document(source=record["_id"], title=title, text=text, content_hash=digest, root=root))
    return docs


def build_index(docs: Sequence[Document], settings: Settings, embedder: SentenceEmbeddings) -> Store:
    """Ingest documents into the (embedded) index named by the settings, as `ingest.py` would."""
    store = Store(build_client(settings), collection_suffix(settings))
    sync_documents(docs, store, embedder, settings)
    return store


def ndcg(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """nDCG@k with linear gains (as trec_eval / pytrec_eval compute it)."""
    dcg = sum(relevant.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    wanted = {d for d, g in relevant.items() if g > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def reciprocal_rank(ranked: Sequence[str], relevant: dict[str, int], k: int) -> float:
    """1 / rank of the first relevant document in the top k, else 0."""
    for i, d in enumerate(ranked[:k]):
        if relevant.get(d, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def score_runs(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]], k: int) -> dict[str, float]:
    """Mean nDCG@k, Recall@100 and MRR@k of ranked document ids per query."""
    n = max(1, len(qrels))
    return {
        f"ndcg@{k}": round(sum(ndcg(runs.get(q, []), r, k) for q, r in qrels.items()) / n, 4),
        f"recall@{RECALL_DEPTH}": round(sum(recall(runs.get(q, []), r, RECALL_DEPTH) for q, r in qrels.items()) / n, 4),
        f"mrr@{k}": round(sum(reciprocal_rank(runs.get(q, []), r, k) for q, r in qrels.items()) / n, 4),
    }


def evaluate_beir(
    dataset: Path, settings: Settings, k: int = 10, split: str = "test", limit: int | None = None
) -> dict:
    """Index a BEIR corpus in a temporary index, run its queries, and score the ranking.

    Returns {"ndcg@10", "recall@100", "mrr@10", "queries", "seconds"} (the cut-offs follow k).
    """
    started = time.perf_counter()
    data = load_beir(dataset, split, limit)
    embedder = build_embeddings(settings)
    with tempfile.TemporaryDirectory(prefix="beir-index-", ignore_cleanup_errors=True) as tmp:
        index_settings = settings.replace(index_dir=Path(tmp), chroma_host="")
        store = build_index(corpus_documents(data.corpus, str(dataset.resolve())), index_settings, embedder)
        indexed = time.perf_counter()
        logger.info("indexed %d documents (%d chunks) in %.1f s", len(data.corpus), store.count(), indexed - started)
        retriever = Retriever(store, embedder)
        runs = {q: [s for s, _ in retriever.rank_documents(text, RECALL_DEPTH)] for q, text in data.queries.items()}
        logger.info("ran %d queries in %.1f s", len(runs), time.perf_counter() - indexed)
    figures: dict[str, float | int] = dict(score_runs(runs, data.qrels, k))
    figures["queries"] = len(data.queries)
    figures["seconds"] = round(time.perf_counter() - started, 1)
    return figures
