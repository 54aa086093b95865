"""Re-ingesting while serving: crash safety, atomic switches, hand-over and waiting on the lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from assistant.devtools.bench import generate_corpus
from assistant.documents.chunking import chunk_document
from assistant.documents.loading import load_document
from assistant.errors import IndexBusyError
from assistant.ingest.sync import embed_chunks
from assistant.service import Assistant
from conftest import CORPUS, PYTHON, ROOT, settings_for


def _index_state(index: Path) -> tuple[int, dict[str, str], set[str]]:
    assistant = Assistant.from_settings(settings_for(index))
    docs = assistant.store.documents()
    live = {i for d in docs.values() for i in d.chunk_ids}
    ids, _ = assistant.store.all_texts()
    assert len(ids) == len(set(ids))
    return assistant.chunk_count(), {s: d.doc_hash for s, d in docs.items()}, live


def test_sigkill_mid_ingest_then_rerun_equals_a_clean_ingest(tmp_path: Path) -> None:
    corpus = tmp_path / "generated"
    generate_corpus(CORPUS, corpus, 40)
    index = tmp_path / "killed"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "ASSISTANT_INGEST_GROUP": "40"}  # several groups
    proc = subprocess.Popen(
        [PYTHON, "ingest.py", str(corpus), "--index", str(index), "--verbose"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    written = 0
    for line in proc.stderr:
        if "assistant.ingest.sync: wrote" in line:
            written += 1
            if written == 12:  # several groups in: chunks, manifest records and a journal on disk
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the ingest was killed partway"
    _, partial_docs, _ = _index_state(index)
    assert 0 < len(partial_docs) < 40

    rerun = subprocess.run(
        [PYTHON, "ingest.py", str(corpus), "--index", str(index), "--json"], cwd=ROOT, capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    clean = tmp_path / "clean"
    subprocess.run([PYTHON, "ingest.py", str(corpus), "--index", str(clean)], cwd=ROOT, check=True, capture_output=True)
    count, docs, live = _index_state(index)
    clean_count, clean_docs, _ = _index_state(clean)
    assert count == clean_count == len(live), "no orphaned or duplicate chunks"
    assert docs == clean_docs and len(docs) == 40


def test_questions_during_a_reingest_see_each_document_wholly_old_or_new(tmp_path: Path, guides: Path) -> None:
    assistant = Assistant.from_settings(settings_for(tmp_path / "index"), create=True)
    assistant.ingest([guides])
    assistant.serving = True
    target = guides / "residency-and-internship.md"
    original = target.read_text()
    problems: list[str] = []
    stop = threading.Event()

    def ask_loop() -> None:
        while not stop.is_set():
            passages = assistant.retriever.retrieve("How long is residency in the United States?", 8)
            hashes = {p.chunk.doc_hash for p in passages if p.chunk.source == target.name}
            if len(hashes) > 1:
                problems.append(f"mixed versions: {hashes}")
            if not hashes:
                problems.append("the residency guide was missing")

    thread = threading.Thread(target=ask_loop)
    thread.start()
    try:
        for round_ in range(3):
            target.write_text(original.replace("at least three years", f"at least three years (edit {round_})"))
            report = assistant.ingest([guides])
            assert report.updated == 1
    finally:
        stop.set()
        thread.join(timeout=60)
    assert problems == []
    answer = assistant.ask("How long is residency?")
    assert "(edit 2)" in answer.answer


def test_a_second_writer_waits_then_gives_a_clear_error(tmp_path: Path, guides: Path) -> None:
    index = tmp_path / "index"
    holder = subprocess.Popen(
        [
            PYTHON,
            "-c",
            f"import time; from pathlib import Path; from assistant.index import locking; "
            f"locking.hold(Path({str(index)!r})); print('held', flush=True); time.sleep(120)",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        other = Assistant.from_settings(settings_for(index), create=True)
        started = time.monotonic()
        with pytest.raises(IndexBusyError, match="another process is writing"):
            other.ingest([guides], wait_seconds=0.5)
        assert time.monotonic() - started >= 0.5
        result = subprocess.run(
            [PYTHON, "ingest.py", str(guides), "--index", str(index), "--wait", "0"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 3 and "another process is writing" in result.stderr
    finally:
        holder.kill()
        holder.wait(10)
    assert other.ingest([guides]).added == 3, "free again once the other process is gone"


def test_journal_of_an_interrupted_sync_is_cleaned_by_id(tmp_path: Path, guides: Path) -> None:
    assistant = Assistant.from_settings(settings_for(tmp_path / "index"), create=True)
    assistant.ingest([guides])
    before = assistant.chunk_count()
    record = next(iter(assistant.store.documents().values()))
    orphan = assistant.store.get_chunks([record.chunk_ids[0]])[0]
    # a crash after writing chunks that no document points to yet
    doc = load_document(guides / orphan.source, guides)
    doc = doc.__class__(doc.source, doc.title, doc.text + "\n\nNew text.", "newhash", doc.root)
    chunks = chunk_document(doc, 900, 150)
    vectors = embed_chunks(chunks, assistant.store, assistant.embedder)
    assistant.store.set_pending([c.id for c in chunks])
    assistant.store.add_chunks(chunks, vectors)
    assert assistant.chunk_count() == before + len(chunks)
    report = assistant.ingest([guides])
    assert report.unchanged == 3
    assert assistant.chunk_count() == before
    assert assistant.store.pending() == []
    assert json.dumps(report.to_json())
