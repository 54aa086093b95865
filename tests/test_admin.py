"""Admin routes, ingest hand-over to a running app, and Chroma's server mode with two apps."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from appserver import PYTHON, ROOT, AppServer, free_port, post_chunked, post_json, request, start_app, start_chroma

from assistant.records.database import Database
from assistant.slot import AssistantSlot
from assistant.web.journal import Journal
from assistant.web.ui import admin_delete, admin_documents, admin_reingest, admin_upload
from conftest import CORPUS, settings_for

pytestmark = pytest.mark.server
TOKEN = "test-admin-token-" + uuid.uuid4().hex


def multipart(name: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppServer, Path, Path]]:
    work = tmp_path_factory.mktemp("admin")
    guides = work / "guides"
    shutil.copytree(ROOT / "corpus", guides)
    index = work / "index"
    env = {"ASSISTANT_ADMIN_TOKEN": TOKEN, "ASSISTANT_CORPUS_DIR": str(guides), "ASSISTANT_RATE_LIMIT": "1000"}
    app = start_app(index, work, env=env)
    yield app, guides, index
    app.stop()


def ask(app: AppServer, question: str) -> dict[str, object]:
    status, _, answer = post_json(app.url + "/api/ask", {"question": question})
    assert status == 200
    return dict(answer)


def test_admin_routes_need_the_token(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, _, _ = admin_app
    for path in ("/api/admin/ingest", "/api/admin/documents"):
        status, headers, body = request(app.url + path, "POST", b"{}")
        assert status == 401 and "error" in json.loads(body) and headers.get("www-authenticate") == "Bearer"
        status, _, body = request(app.url + path, "POST", b"{}", {"Authorization": "Bearer wrong"})
        assert status == 401
        assert TOKEN not in body.decode() and TOKEN not in app.log_text()


def test_reingest_returns_the_summary(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, _, _ = admin_app
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, _, summary = post_json(app.url + "/api/admin/ingest", {}, auth)
    assert status == 200
    assert set(summary) >= {"added", "updated", "removed", "unchanged", "chunks", "seconds", "failed"}
    assert summary["unchanged"] == len(list(CORPUS.glob("*.md"))) and summary["added"] == 0
    for paths in (["/dev/null"], ["/no/such/folder"], ["bad\x00name"], ["x" * 5000]):
        status, headers, body = post_json(app.url + "/api/admin/ingest", {"paths": paths}, auth)
        assert status == 400 and headers["content-type"].startswith("application/json"), body
        assert paths[0][:20].replace("\x00", "\\x00") in body["error"]


def test_upload_adds_a_guide_that_is_then_answered_and_bad_uploads_are_refused(
    admin_app: tuple[AppServer, Path, Path],
) -> None:
    app, guides, _ = admin_app
    auth = {"Authorization": f"Bearer {TOKEN}"}
    guide = b"# Night coverage\n\n## Who covers nights\n\nThe zebracorn rota decides which physician covers nights.\n"
    body, kind = multipart("night-coverage.md", guide)
    status, _, raw = request(app.url + "/api/admin/documents", "POST", body, {**auth, "Content-Type": kind})
    assert status == 200, raw
    assert json.loads(raw)["added"] == 1 and (guides / "night-coverage.md").read_bytes() == guide
    answer = ask(app, "What does the zebracorn rota decide?")
    assert not answer["refused"] and "night-coverage.md" in {c["source"] for c in answer["citations"]}  # type: ignore[union-attr]

    for name, data, expected in [
        ("binary.md", bytes(range(256)) * 8, 400),
        ("../escape.md", guide, 400),
        ("/etc/passwd.md", guide, 400),
        ("notes.exe", guide, 400),
        ("empty.md", b"", 400),
        ("rate-limits.md", b"", 400),  # a 400 for the content, whatever the name says
        ("big.md", b"x" * 20_010_000, 413),  # over the 20 MB limit by less than the multipart slack
    ]:
        body, kind = multipart(name, data)
        status, _, raw = request(app.url + "/api/admin/documents", "POST", body, {**auth, "Content-Type": kind})
        assert status == expected, (name, status, raw[:200])
        assert "error" in json.loads(raw)
    assert not (guides.parent / "escape.md").exists()
    # Over the size limit: refused from the headers alone, before the body is read.
    parts = urlsplit(app.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    connection.putrequest("POST", "/api/admin/documents")
    for name, value in {**auth, "Content-Type": "application/octet-stream", "Content-Length": "25000000"}.items():
        connection.putheader(name, value)
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413 and "limit" in json.loads(response.read())["error"]
    connection.close()
    # No Content-Length (chunked): refused once the body passes the limit, nothing saved.
    body, kind = multipart("chunked.md", b"")
    head, tail = body[: body.index(b"\r\n\r\n") + 4], body[body.index(b"\r\n\r\n") + 4 :]
    pieces = [head, *[b"x" * 1_000_000] * 21, tail]
    status, raw = post_chunked(app.url + "/api/admin/documents", pieces, {**auth, "Content-Type": kind})
    assert status == 413 and "limit" in json.loads(raw)["error"]
    assert not (guides / "chunked.md").exists() and not (guides / "big.md").exists()


def test_reingest_while_questions_run(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, guides, _ = admin_app
    auth = {"Authorization": f"Bearer {TOKEN}"}
    residency = guides / "residency-and-internship.md"
    residency.write_text(residency.read_text().replace("at least three years", "at least three years (revised)"))
    (guides / "budgets-and-finance.md").unlink()
    results: list[tuple[float, int, dict[str, object]]] = []
    stop = threading.Event()

    def loop() -> None:
        questions = ["How long is residency?", "How do I build a department budget?", "What is the CMD?"]
        i = 0
        while not stop.is_set():
            status, _, body = post_json(app.url + "/api/ask", {"question": questions[i % 3]})
            results.append((time.monotonic(), status, body))
            i += 1

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        time.sleep(1)
        status, _, summary = post_json(app.url + "/api/admin/ingest", {}, auth)
        finished = time.monotonic()
        time.sleep(2)
    finally:
        stop.set()
        thread.join(60)
    assert status == 200 and summary["updated"] == 1 and summary["removed"] == 1
    assert results and all(code == 200 for _, code, _ in results), "no errors during the sync"
    for when, _, body in results:
        sources = {c["source"] for c in body["citations"]}  # type: ignore[union-attr]
        if when > finished:
            assert "budgets-and-finance.md" not in sources, "a deleted guide is never cited after the sync"
        ids = {c["id"] for c in body["citations"] if c["source"] == "residency-and-internship.md"}  # type: ignore[union-attr,index]
        lines = [line for line in str(body["answer"]).splitlines() if any(f"[{i}]" in line for i in ids)]
        versions = {"(revised)" in line for line in lines if "at least three years" in line}
        assert len(versions) <= 1, f"no answer mixes old and new text of one guide: {lines}"


def test_ingest_cli_hands_its_job_to_the_running_app(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, guides, index = admin_app
    (guides / "hand-over.md").write_text(
        "# Hand over\n\n## Flamingo duty\n\nThe flamingo duty list is kept by the chief.\n"
    )
    env = {**os.environ, "ASSISTANT_ADMIN_TOKEN": TOKEN, "ASSISTANT_CORPUS_DIR": str(guides)}
    result = subprocess.run(
        [PYTHON, "ingest.py", "--index", str(index), "--json"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "handing the ingest over" in result.stderr
    assert json.loads(result.stdout)["added"] == 1
    assert not ask(app, "Who keeps the flamingo duty list?")["refused"]


def test_admin_tab_handlers(tmp_path: Path, guides: Path) -> None:
    import gradio as gr

    from assistant.service import Assistant

    slot = AssistantSlot()
    slot.set_result(
        Assistant.from_settings(settings_for(tmp_path / "i", corpus_dir=guides, admin_token="t0k"), create=True)
    )
    journal = Journal(Database(f"sqlite:///{tmp_path / 'app.sqlite3'}"))
    with pytest.raises(gr.Error, match="not right"):
        admin_reingest(slot, "wrong", journal)
    assert admin_reingest(slot, "t0k", journal).startswith("**Ingest:** 3 added, 0 updated, 0 removed")
    extra = tmp_path / "extra guide.md"
    extra.write_text("# Extra\n\nAn extra guide about the okapi committee and its members.")
    assert admin_upload(slot, "t0k", str(extra), journal).startswith("**Upload:** 1 added")
    assert (guides / "extra guide.md").exists()
    rows, sources = admin_documents(slot, "t0k")
    assert "extra guide.md" in sources and len(rows) == 4
    assert "extra guide.md" in admin_delete(slot, "t0k", "extra guide.md", journal)
    assert (guides / ".trash" / "extra guide.md").exists() and not (guides / "extra guide.md").exists()
    assert [e.action for e in journal.database.events()] == ["delete", "upload", "ingest"]
    disabled = AssistantSlot()
    disabled.set_result(Assistant.from_settings(settings_for(tmp_path / "j", corpus_dir=guides), create=True))
    with pytest.raises(gr.Error, match="disabled"):
        admin_reingest(disabled, "", journal)


def test_admin_routes_are_404_without_a_configured_token(corpus_index: Path, tmp_path: Path) -> None:
    app = start_app(corpus_index, tmp_path, args=("--no-sync",))
    try:
        status, _, body = request(app.url + "/api/admin/ingest", "POST", b"{}", {"Authorization": "Bearer x"})
        assert status == 404 and "ASSISTANT_ADMIN_TOKEN" in json.loads(body)["error"]
    finally:
        app.stop()


def test_two_apps_on_a_chroma_server_and_the_server_restarting(tmp_path: Path) -> None:
    port = free_port()
    chroma = start_chroma(tmp_path / "chroma", port)
    guides = tmp_path / "guides"
    shutil.copytree(ROOT / "corpus", guides)
    env = {
        "ASSISTANT_CHROMA_HOST": "127.0.0.1",
        "ASSISTANT_CHROMA_PORT": str(port),
        "ASSISTANT_CORPUS_DIR": str(guides),
        "ASSISTANT_ADMIN_TOKEN": TOKEN,
        "ASSISTANT_RATE_LIMIT": "1000",
    }
    first = start_app(tmp_path / "unused-1", tmp_path / "a", env=env)
    second = start_app(tmp_path / "unused-2", tmp_path / "b", env=env)
    try:
        assert ask(second, "What is the pangolin protocol?")["refused"]
        (guides / "pangolin.md").write_text(
            "# Pangolin protocol\n\n## What it is\n\nThe pangolin protocol is how our night team hands over patients.\n"
        )
        status, _, summary = post_json(first.url + "/api/admin/ingest", {}, {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and summary["added"] == 1
        answer = ask(second, "What is the pangolin protocol?")
        assert not answer["refused"], "the other app sees the change without a restart"

        chroma.terminate()
        chroma.wait(10)
        started = time.monotonic()
        status, _, body = post_json(second.url + "/api/ask", {"question": "How long is residency?"})
        assert status == 503 and "unavailable" in body["error"]
        assert time.monotonic() - started < 5, "fails fast"
        chroma = start_chroma(tmp_path / "chroma", port)
        assert not ask(second, "How long is residency?")["refused"], "recovers without restarting the app"
    finally:
        first.stop()
        second.stop()
        chroma.terminate()
        chroma.wait(10)


# --- the admins' loop: guides listed and deleted, check questions, gaps (these run last on admin_app) ----------


def test_the_guides_are_listed_with_their_chunks_times_and_hashes(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, _, _ = admin_app
    auth = {"Authorization": f"Bearer {TOKEN}"}
    status, _, body = request(app.url + "/api/admin/documents", headers=auth)
    documents = {d["source"]: d for d in json.loads(body)["documents"]}
    assert status == 200 and "faq.md" in documents and "check-questions.jsonl" not in documents
    faq = documents["faq.md"]
    assert faq["title"] and faq["chunks"] > 0 and len(faq["hash"]) == 64 and faq["updated"].endswith("+00:00")
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        status, _, _ = request(app.url + "/api/admin/documents", headers=headers)
        assert status == 401


@pytest.mark.parametrize(
    "source",
    ["no-such-guide.md", "../corpus/faq.md", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "faq.md%00", "sub//faq.md"],
)
def test_deleting_an_unknown_guide_or_a_path_trick_is_404(admin_app: tuple[AppServer, Path, Path], source: str) -> None:
    app, guides, _ = admin_app
    status, _, body = request(
        app.url + "/api/admin/documents/" + source, "DELETE", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert status == 404 and "no ingested guide" in json.loads(body)["error"]
    assert (guides / "faq.md").is_file()


def test_a_wrong_token_cannot_delete(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, guides, _ = admin_app
    status, _, _ = request(app.url + "/api/admin/documents/faq.md", "DELETE", headers={"Authorization": "Bearer x"})
    assert status == 401 and (guides / "faq.md").is_file()


def test_a_deleted_guide_leaves_the_answers_at_once_and_stays_deleted(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, guides, _ = admin_app
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = ask(app, "whats the difference between a policy and a procedure")
    assert "policies-and-procedures.md" in {c["source"] for c in before["citations"]}  # type: ignore[union-attr]
    status, _, body = request(app.url + "/api/admin/documents/policies-and-procedures.md", "DELETE", headers=auth)
    summary = json.loads(body)
    assert status == 200 and summary["removed"] == "policies-and-procedures.md"
    assert summary["trashed"] == ".trash/policies-and-procedures.md"
    assert (guides / ".trash" / "policies-and-procedures.md").is_file() and not (
        guides / "policies-and-procedures.md"
    ).exists()
    failed = {f["question"]: f for f in summary["checks"]["failures"]}
    assert failed["whats the difference between a policy and a procedure"]["expected"] == "policies-and-procedures.md"
    after = ask(app, "whats the difference between a policy and a procedure")
    assert "policies-and-procedures.md" not in {c["source"] for c in after["citations"]}  # type: ignore[union-attr]
    status, _, summary = post_json(app.url + "/api/admin/ingest", {}, auth)
    assert status == 200 and summary["added"] == 0, "the re-ingest does not bring it back"
    status, _, body = request(app.url + "/api/admin/documents", headers=auth)
    assert "policies-and-procedures.md" not in {d["source"] for d in json.loads(body)["documents"]}


def test_an_edit_that_breaks_a_check_question_shows_in_the_reingest_report(
    admin_app: tuple[AppServer, Path, Path],
) -> None:
    app, guides, _ = admin_app
    auth = {"Authorization": f"Bearer {TOKEN}"}
    glossary = guides / "glossary.md"
    original = glossary.read_text(encoding="utf-8")
    try:
        glossary.write_text("# Glossary\n\nThis glossary is being rewritten; see the other guides for now.\n")
        status, _, summary = post_json(app.url + "/api/admin/ingest", {}, auth)
        assert status == 200 and summary["updated"] == 1
        checks = summary["checks"]
        assert checks["asked"] >= 20 and checks["passed"] < checks["asked"]
        broken = {f["question"] for f in checks["failures"] if f["expected"] == "glossary.md"}
        assert broken == {"what is ABMS", "what does FTE mean"}
    finally:
        glossary.write_text(original, encoding="utf-8")
        status, _, summary = post_json(app.url + "/api/admin/ingest", {}, auth)
    assert not [f for f in summary["checks"]["failures"] if f["expected"] == "glossary.md"], "fixed again"


def test_the_gaps_report_groups_what_the_guides_miss(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, _, index = admin_app
    salary = [
        "How much does a medical director earn?",
        "What is the typical salary of a medical director?",
        "Average compensation for a nursing home medical director?",
        "Is the pay for medical directors good?",
        "What do medical directors get paid per year?",
    ]
    malpractice = [
        "What malpractice insurance does a medical director need?",
        "Does my malpractice policy cover medical director work?",
        "How much is malpractice insurance for a medical director?",
        "Is malpractice coverage required for medical directors?",
        "Who pays for a medical director's malpractice coverage?",
    ]
    answers = [ask(app, q) for pair in zip(salary, malpractice, strict=True) for q in pair]
    ask(app, "I have a patient with chest pain, should I give aspirin?")
    answered = [a for a in answers if not a["refused"]]  # the guides do not cover these: rate them 👎
    for answer in answered:
        status, _, _ = post_json(app.url + "/api/feedback", {"id": answer["id"], "rating": "dislike"})
        assert status == 200
    status, _, body = request(app.url + "/api/admin/gaps", headers={"Authorization": f"Bearer {TOKEN}"})
    report = json.loads(body)
    assert status == 200
    groups = [g for g in report["groups"] if set(g["examples"]) & set(salary + malpractice)]
    assert sorted(g["count"] for g in groups) == [5, 5], report
    for group in groups:
        topic = salary if group["examples"][0] in salary else malpractice
        assert set(group["examples"]) <= set(topic)
    assert sum(g["disliked"] for g in groups) == len(answered) and sum(g["declined"] for g in groups) == 10 - len(
        answered
    )
    salary_group = next(g for g in groups if g["examples"][0] in salary)
    assert salary_group["nearest"]["source"] == "questions-the-guides-do-not-answer.md"
    assert "aspirin" not in json.dumps(report)

    env = {**os.environ, "ASSISTANT_DATA_DIR": str(app.data_dir), "HF_HUB_OFFLINE": "1"}
    shown = {}
    for flag in ("--json", "--csv"):
        result = subprocess.run(
            [PYTHON, "-m", "assistant", "gaps", flag, "--index", str(index)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stderr
        shown[flag] = result.stdout
    assert [g["count"] for g in json.loads(shown["--json"])["groups"]] == [g["count"] for g in report["groups"]]
    assert shown["--csv"].startswith("count,declined,disliked")


def test_feedback_on_an_unknown_answer_or_with_a_bad_body_is_refused(admin_app: tuple[AppServer, Path, Path]) -> None:
    app, _, _ = admin_app
    for payload, expected in [
        ({"id": "0" * 32, "rating": "dislike"}, 404),
        ({"id": "0" * 32, "rating": "meh"}, 400),
        ({"rating": "dislike"}, 400),
        (["dislike"], 400),
    ]:
        status, _, body = post_json(app.url + "/api/feedback", payload)
        assert status == expected and "error" in body, (payload, status, body)
    status, _, _ = request(app.url + "/api/feedback", "POST", b"\xff\xfe binary", {"Content-Type": "application/json"})
    assert status == 400
