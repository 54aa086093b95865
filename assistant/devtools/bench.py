"""Benchmarks on generated corpora: ingest throughput against the raw encoder, re-ingest, latency.

The generated guides are deterministic: sentences and headings of the shipped guides, drawn
with a fixed seed, so every run measures the same work.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import random
import re
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings

from assistant.config import Settings
from assistant.documents.chunking import Chunk, chunk_document, split_sentences
from assistant.documents.loading import find_documents, load_document
from assistant.embedding.models import ChunkVectors, build_embeddings
from assistant.index.store import DocumentRecord, forget_open_indexes
from assistant.service import Assistant
from assistant.web.review import load_checks

logger = logging.getLogger(__name__)

SCALED_CHUNKS = 100_000  # the full bench's large index (ours and the baseline's, made from copies)
QUESTIONS = [
    "How long is residency?",
    "What is the CMD credential?",
    "What should I do in my first 90 days?",
    "How do I prepare for a survey?",
    "Do I need an MBA to become a CMO?",
    "What does a medical director do?",
    "How does peer review work?",
    "What is QAPI?",
]


def bench_questions(settings: Settings) -> list[str]:
    """The timed questions: the eight above and the corpus's check questions (36 with the shipped ones)."""
    path = settings.check_questions_file
    checks = load_checks(path)[0] if path.is_file() else []
    return QUESTIONS + [check.question for check in checks]


def generate_corpus(source: Path, target: Path, count: int, words: int = 500, seed: int = 7) -> None:
    """Write `count` Markdown guides of about `words` words built from the shipped guides."""
    sentences: list[str] = []
    headings: list[str] = []
    for path in sorted(source.glob("*.md")):
        text = load_document(path, source).text
        headings += re.findall(r"^##+\s+(.+)$", text, re.MULTILINE)
        body = re.sub(r"^#.*$", "", text, flags=re.MULTILINE)
        sentences += [body[a:b] for a, b in split_sentences(body) if len(body[a:b].split()) >= 6]
    rng = random.Random(seed)
    target.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        parts = [f"# Generated guide {i}: {rng.choice(headings)}"]
        total = 0
        while total < words:
            parts.append(f"## {rng.choice(headings)}")
            paragraph = " ".join(rng.choice(sentences) for _ in range(rng.randint(3, 6)))
            parts.append(paragraph)
            total += len(paragraph.split())
        (target / f"guide-{i:05d}.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")


def _percentiles(samples: list[float]) -> dict[str, float]:
    arr = np.asarray(samples) * 1000
    return {f"p{p}_ms": round(float(np.percentile(arr, p)), 2) for p in (50, 95, 99)}


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def bench_ingest(settings: Settings, docs: int, work: Path) -> dict[str, Any]:
    """Ingest `docs` generated guides; compare with SentenceTransformer.encode on the same chunks."""
    corpus = work / f"corpus-{docs}"
    generate_corpus(Path(settings.corpus_dir), corpus, docs)
    root, files = find_documents(corpus)
    chunks = [
        c for f in files for c in chunk_document(load_document(f, root), settings.chunk_size, settings.chunk_overlap)
    ]
    texts = [c.text for c in chunks]
    embedder = build_embeddings(settings)
    embedder.model.encode(texts[:64], batch_size=32)  # warm up

    def raw_encode() -> float:
        return _timed(lambda: embedder.model.encode(texts, batch_size=32, normalize_embeddings=True))[1]

    # The encoder's speed drifts on a shared machine, so the limit is timed before and after
    # the ingest and the ingest is compared with the mean of the two.
    raw_before = raw_encode()
    assistant = Assistant.from_settings(settings.replace(index_dir=work / f"index-{docs}"), create=True)
    report, ingest_seconds = _timed(lambda: assistant.ingest([corpus]))
    raw_after = raw_encode()
    raw_seconds = (raw_before + raw_after) / 2
    _, nochange_seconds = _timed(lambda: assistant.ingest([corpus]))
    files[0].write_text(files[0].read_text(encoding="utf-8") + "\n\nOne edited closing sentence.\n")
    _, one_seconds = _timed(lambda: assistant.ingest([corpus]))
    rng = random.Random(11)
    for path in rng.sample(files, max(1, docs // 100)):
        path.write_text(path.read_text(encoding="utf-8") + "\n\nAn edited closing sentence for the benchmark.\n")
    edit_report, edit_seconds = _timed(lambda: assistant.ingest([corpus]))
    raw_cps = len(texts) / raw_seconds
    ingest_cps = report.chunks / ingest_seconds
    return {
        "docs": docs,
        "chunks": report.chunks,
        "raw_encode_chunks_per_s": round(raw_cps, 1),
        "raw_encode_before_after": [round(len(texts) / raw_before, 1), round(len(texts) / raw_after, 1)],
        "ingest_chunks_per_s": round(ingest_cps, 1),
        "ingest_vs_raw_encode": round(ingest_cps / raw_cps, 3),
        "ingest_seconds": round(ingest_seconds, 2),
        "reingest_nochange_seconds": round(nochange_seconds, 3),
        "reingest_nochange_ratio": round(nochange_seconds / ingest_seconds, 4),
        "reingest_1doc_seconds": round(one_seconds, 3),
        "reingest_1pct_seconds": round(edit_seconds, 3),
        "reingest_1pct_ratio": round(edit_seconds / ingest_seconds, 4),
        "reingest_1pct_updated": edit_report.updated,
    }


def bench_queries(
    settings: Settings, index_dir: Path, rounds: int, baseline: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Latency of retrieval alone and of the whole extractive ask, over a fixed question set.

    One pass over the questions comes first (steady state: the keyword index built, the
    chunks' records read into the retriever's cache, start-up's objects frozen out of the garbage
    collector's scans as app.py freezes them). Every timed question is encoded anew (the
    embedder's cache of recent questions is emptied before each), so a repeat costs what a new
    question costs; `retrieval_uncached` also empties the record cache, as for a question whose
    passages no one asked about before.

    With `baseline` (another pipeline's search, question -> passages), the same questions go to
    it first, with the same warm-up, as `baseline_retrieval`: both are timed in one stretch of the
    same process. Not question by question: each pipeline's thread pools (torch's, onnxruntime's)
    slow the other's next call, which doubled both p95s when they alternated.
    """
    questions = bench_questions(settings)
    asked = [questions[i % len(questions)] for i in range(rounds)]
    figures: dict[str, Any] = {}
    if baseline is not None:
        for question in questions:  # warm up
            baseline(question)
        figures["baseline_retrieval"] = _percentiles([_timed(partial(baseline, q))[1] for q in asked])
    assistant = Assistant.from_settings(settings.replace(index_dir=index_dir))
    retriever, embedder = assistant.retriever, assistant.embedder
    for question in questions:  # warm up
        retriever.retrieve(question, settings.top_k)
    retriever.warmed.wait(120)  # the records read into the cache after the keyword index was built
    gc.collect()
    gc.freeze()  # as app.py does once it has started (app.settle_heap)
    retrieval, uncached, asks = [], [], []
    for question in asked:  # each question encoded anew: the embedder's cache of recent questions is emptied
        embedder.forget_questions()
        retrieval.append(_timed(partial(retriever.retrieve, question, settings.top_k))[1])
        embedder.forget_questions()
        asks.append(_timed(partial(assistant.ask, question))[1])
    for question in asked:
        embedder.forget_questions()
        retriever.clear_cache()
        uncached.append(_timed(partial(retriever.retrieve, question, settings.top_k))[1])
    return {
        "chunks": assistant.chunk_count(),
        "retrieval": _percentiles(retrieval),
        "retrieval_uncached": _percentiles(uncached),
        "ask": _percentiles(asks),
        **figures,
    }


class TutorialEmbeddings(Embeddings):
    """What `langchain_huggingface.HuggingFaceEmbeddings` does with default settings.

    That package pins huggingface-hub < 2, which conflicts with transformers 5 here, so the
    baseline calls SentenceTransformer.encode the same way (default batch size, no
    normalisation, one text per call for queries).
    """

    def __init__(self, model: Any) -> None:
        self.model = model

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed texts as HuggingFaceEmbeddings would."""
        return [list(map(float, v)) for v in self.model.encode(texts, show_progress_bar=False)]

    def embed_query(self, text: str) -> list[float]:
        """Embed one query as HuggingFaceEmbeddings would."""
        return self.embed_documents([text])[0]


@dataclass(frozen=True)
class Baseline:
    """The LangChain tutorial's pipeline, ingested: its ingest figures, and where its index is."""

    figures: dict[str, Any]
    path: Path  # its Chroma folder: collection "baseline", and "baseline-scaled" when made
    embeddings: TutorialEmbeddings
    top_k: int

    def search(self, collection: str = "baseline") -> Callable[[str], Any]:
        """Question -> the top k passages, as the tutorial retrieves them, through a new client."""
        import chromadb
        from chromadb.config import Settings as ChromaSettings
        from langchain_chroma import Chroma

        client = chromadb.PersistentClient(path=str(self.path), settings=ChromaSettings(anonymized_telemetry=False))
        store = Chroma(client=client, collection_name=collection, embedding_function=self.embeddings)
        return partial(store.similarity_search, k=self.top_k)


def bench_langchain_baseline(settings: Settings, corpus: Path, work: Path, scaled_chunks: int = 0) -> Baseline:
    """The pipeline of LangChain's RAG tutorial on the same files: split, embed, Chroma, search.

    Its ingest is timed here; its searches are timed by `bench_queries`, in the same stretch as
    ours. With `scaled_chunks`, a collection of that many chunks ("baseline-scaled") is also made
    as `build_scaled_index` makes ours: copies of its real chunks, each vector with a little noise.
    """
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from langchain_chroma import Chroma
    from langchain_core.documents import Document as LCDocument
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    embeddings = TutorialEmbeddings(build_embeddings(settings).model)
    client = chromadb.PersistentClient(path=str(work / "baseline"), settings=ChromaSettings(anonymized_telemetry=False))

    def ingest() -> Any:
        files = sorted(corpus.glob("*.md"))
        docs = [LCDocument(page_content=f.read_text(encoding="utf-8"), metadata={"source": str(f)}) for f in files]
        splits = RecursiveCharacterTextSplitter(chunk_size=1000, chunk_overlap=200).split_documents(docs)
        return Chroma.from_documents(splits, embeddings, client=client, collection_name="baseline"), len(splits)

    (_, chunks), seconds = _timed(ingest)
    # The tutorial has no incremental mode: running it again re-embeds everything.
    client.delete_collection("baseline")
    _, again = _timed(ingest)
    figures: dict[str, Any] = {
        "chunks": chunks,
        "ingest_chunks_per_s": round(chunks / seconds, 1),
        "ingest_seconds": round(seconds, 2),
        "reingest_nochange_seconds": round(again, 2),
    }
    if scaled_chunks:
        scaled = client.create_collection("baseline-scaled", embedding_function=None)  # defaults, as the tutorial
        _copy_scaled(client.get_collection("baseline"), scaled, scaled_chunks)
        figures["scaled"] = {"chunks": scaled.count()}
    return Baseline(figures, work / "baseline", embeddings, settings.top_k)


def _copy_scaled(source: Any, target: Any, chunks: int) -> None:
    """Fill `target` with `chunks` copies of `source`'s records (text tagged, vector with noise)."""
    records = source.get(include=["documents", "metadatas", "embeddings"])
    vectors = np.asarray(records["embeddings"], dtype=np.float32)
    rng = np.random.default_rng(3)
    copy = 0
    written = 0
    while written < chunks:
        count = min(len(vectors), chunks - written)
        noisy = vectors[:count] + rng.normal(0, 0.01, (count, vectors.shape[1])).astype(np.float32)
        for start in range(0, count, 1000):
            end = min(start + 1000, count)
            target.add(
                ids=[f"{i}-{copy}" for i in records["ids"][start:end]],
                embeddings=noisy[start:end],
                documents=[f"{d}\n\n(copy {copy})" for d in records["documents"][start:end]],
                metadatas=records["metadatas"][start:end],
            )
        written += count
        copy += 1


def build_scaled_index(settings: Settings, source_index: Path, target: Path, chunks: int) -> None:
    """An index of `chunks` chunks made from the real chunks (text and vectors) of another index.

    Each copy keeps the chunk's text (tagged with its copy number) and its stored vectors plus
    a little noise, so the vector graph and the keyword index have realistic shapes without a
    long embedding run.
    """
    source = Assistant.from_settings(settings.replace(index_dir=source_index))
    records = list(source.store.documents().values())
    ids = [i for r in records for i in r.chunk_ids]
    stored = {c.id: c for c in source.store.get_chunks(ids)}
    vectors = source.store.get_vectors(ids)
    scaled = Assistant.from_settings(settings.replace(index_dir=target), create=True)
    rng = np.random.default_rng(3)
    copy = 0
    written = 0
    while written < chunks:
        copy_chunks: list[Chunk] = []
        copy_vectors: list[ChunkVectors] = []
        copy_records: list[tuple[DocumentRecord, str]] = []
        for record in records:
            ids_of_copy = []
            for position, chunk_id in enumerate(record.chunk_ids):
                original = stored[chunk_id]
                noisy = vectors[chunk_id] + rng.normal(0, 0.01, vectors[chunk_id].shape).astype(np.float32)
                ids_of_copy.append(f"{chunk_id[:24]}{copy:08d}")
                copy_chunks.append(
                    Chunk(
                        id=ids_of_copy[-1],
                        source=f"copy-{copy}/{record.source}",
                        title=original.title,
                        section=original.section,
                        text=f"{original.text}\n\n(copy {copy})",
                        body_start=original.body_start,
                        position=position,
                        doc_hash=f"{record.doc_hash}-{copy}",
                        chunk_hash=f"{chunk_id}-{copy}",
                    )
                )
                copy_vectors.append(
                    ChunkVectors(
                        noisy / np.linalg.norm(noisy),
                        list(original.spans),
                        original.sentence_vectors,
                        original.token_bits,
                    )
                )
            copy_records.append(
                (
                    DocumentRecord(
                        f"copy-{copy}/{record.source}",
                        record.title,
                        f"{record.doc_hash}-{copy}",
                        "",
                        tuple(ids_of_copy),
                    ),
                    "",
                )
            )
            written += len(ids_of_copy)
            if written >= chunks:
                break
        scaled.store.add_chunks(copy_chunks, copy_vectors)
        scaled.store.put_documents(copy_records)
        copy += 1
    scaled.store.bump_generation()


def bench_app(settings: Settings, index: Path, work: Path, load_seconds: float, clients: int) -> dict[str, Any]:
    """Cold start of `python app.py` on an existing index (/healthz 200: the API answers; then the chat
    is mounted), then its memory under a query load."""
    import socket
    import subprocess
    import sys
    import urllib.request

    from assistant.devtools.loadtest import run_loadtest

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "ASSISTANT_RATE_LIMIT": "1000000",
        "ASSISTANT_DATA_DIR": str(work / "app-data"),
        # the export the ingest above wrote, as a deployment's app finds it in its .data/models
        "ASSISTANT_MODEL_CACHE": str(settings.model_cache_dir.resolve()),
    }
    app = Path(__file__).resolve().parents[2] / "app.py"
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, str(app), "--port", str(port), "--index", str(index), "--no-sync"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        while True:
            if process.poll() is not None or time.perf_counter() - started > 120:
                raise RuntimeError("app.py did not become ready")
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                    if response.status == 200:
                        health = json.loads(response.read())
                        break
            except OSError:
                time.sleep(0.05)
        cold = time.perf_counter() - started
        while health.get("ui") != "ready" and time.perf_counter() - started < 120:  # the chat mounts later
            time.sleep(0.05)
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                health = json.loads(response.read())
        ui_ready = time.perf_counter() - started
        load = run_loadtest(url, clients, load_seconds, process.pid)
    finally:
        process.terminate()
        process.wait(15)
    first, last = load.get("rss_mb_first_quarter"), load.get("rss_mb_last_quarter")
    return {
        "cold_start_seconds": round(cold, 2),
        "chat_ready_seconds": round(ui_ready, 2),
        "query_encoder": health.get("query_encoder"),
        "rss_last_vs_first_quarter": round(last / first, 3) if first and last else None,
        "load": load,
    }


def _ratio(ours: dict[str, Any], base: dict[str, Any]) -> float:
    return round(ours["p95_ms"] / base["p95_ms"], 2)


def run_bench(settings: Settings, quick: bool, sizes: list[int] | None = None) -> dict[str, Any]:
    """All figures as one dict; quick uses one small corpus and finishes in about a minute.

    `sizes` (generated guides per corpus) overrides the default 100 and 1,000 (30 when quick);
    the baseline, the app and the 100k scaled indexes (ours and the baseline's) use the last,
    largest corpus.
    """
    sizes = sorted(sizes) if sizes else [30] if quick else [100, 1000]
    scaled = 0 if quick else SCALED_CHUNKS
    results: dict[str, Any] = {"quick": quick, "ingest": [], "queries": []}
    with tempfile.TemporaryDirectory(prefix="assistant-bench-") as tmp:
        work = Path(tmp)
        for docs in sizes:
            logger.info("bench: ingest of %d generated guides", docs)
            results["ingest"].append(bench_ingest(settings, docs, work))
        logger.info("bench: the LangChain tutorial's pipeline on the %d-guide corpus", sizes[-1])
        baseline = bench_langchain_baseline(settings, work / f"corpus-{sizes[-1]}", work, scaled)
        base = results["langchain_baseline"] = baseline.figures
        if scaled:
            logger.info("bench: %d chunks from the real chunks of the %d-guide index", scaled, sizes[-1])
            build_scaled_index(settings, work / f"index-{sizes[-1]}", work / "index-scaled", scaled)
        # Every index is timed as a process that opens it finds it (app.py opens its index at
        # start), not as the graph the writes left in this process's memory: reopened, the 100k
        # index answered 1.1 ms faster at p50 and p95, and so would the baseline's. On disk first.
        os.sync()
        forget_open_indexes()
        rounds = 20 if quick else 200
        for docs in sizes:  # the largest corpus's questions are also put to the baseline
            paired = baseline.search() if docs == sizes[-1] else None
            results["queries"].append(bench_queries(settings, work / f"index-{docs}", rounds, paired))
        ours, queries = results["ingest"][-1], results["queries"][-1]
        base["retrieval"] = queries.pop("baseline_retrieval")
        versus = results["ours_vs_baseline"] = {
            "ingest_throughput_x": round(ours["ingest_chunks_per_s"] / base["ingest_chunks_per_s"], 2),
            "ingest_seconds_ratio": round(ours["ingest_seconds"] / base["ingest_seconds"], 2),
            "reingest_nochange_ratio": round(ours["reingest_nochange_seconds"] / base["reingest_nochange_seconds"], 4),
            "retrieval_p95_ratio": _ratio(queries["retrieval"], base["retrieval"]),
            "retrieval_uncached_p95_ratio": _ratio(queries["retrieval_uncached"], base["retrieval"]),
        }
        if scaled:
            big = results["queries_100k"] = bench_queries(
                settings, work / "index-scaled", 200, baseline.search("baseline-scaled")
            )
            base["scaled"]["retrieval"] = big.pop("baseline_retrieval")
            versus["retrieval_p95_ratio_100k"] = _ratio(big["retrieval"], base["scaled"]["retrieval"])
            versus["retrieval_uncached_p95_ratio_100k"] = _ratio(big["retrieval_uncached"], base["scaled"]["retrieval"])
        logger.info("bench: app cold start and memory under load")
        results["app"] = bench_app(settings, work / f"index-{sizes[-1]}", work, 5 if quick else 60, 4 if quick else 16)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return results
