"""The HTTP API through a real `python app.py` process: /healthz, /api/ask, /api/stream, /sources."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from appserver import PYTHON, ROOT, AppServer, free_port, post_chunked, post_json, request, start_app

from assistant.service import Assistant
from assistant.web.rendering import source_link

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    # Many requests from one client here: the rate limit has its own test in test_widget.py.
    app = start_app(
        corpus_index, tmp_path_factory.mktemp("api"), env={"ASSISTANT_RATE_LIMIT": "1000"}, args=("--no-sync",)
    )
    yield app
    app.stop()


def raw_get(server: AppServer, path: str) -> int:
    """Status of a GET sent exactly as written: no client-side normalisation of `..` or escapes."""
    parts = urlsplit(server.url)
    connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    connection.putrequest("GET", path, skip_accept_encoding=True)
    connection.endheaders()
    status = connection.getresponse().status
    connection.close()
    return status


def test_healthz_is_ok_with_the_chunk_count(server: AppServer) -> None:
    status, _, body = request(server.url + "/healthz")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok" and health["chunks"] > 100
    assert health["query_encoder"] == "onnx-int8", "the ingest wrote the export, so the app never loads torch"
    assert health["ui"] == "ready"
    print(f"app.py ready in {server.seconds_to_ready:.1f} s")  # timed by `bench`, not asserted here


def test_the_api_answers_before_the_chat_is_mounted(corpus_assistant: Assistant, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from assistant.records.database import Database
    from assistant.slot import AssistantSlot
    from assistant.web.api import build_api
    from assistant.web.journal import Journal
    from assistant.web.middleware import RateLimiter

    ready = AssistantSlot()
    ready.set_result(corpus_assistant)
    journal = Journal(Database(f"sqlite:///{tmp_path / 'app.sqlite3'}"))
    client = TestClient(build_api(ready, corpus_assistant.settings, RateLimiter(100), journal))
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json()["ui"] == "starting"
    page = client.get("/")
    assert page.status_code == 503 and page.headers["retry-after"] == "2"
    assert "The chat is starting" in page.text and 'http-equiv="refresh"' in page.text
    answer = client.post("/api/ask", json={"question": "How long is residency?"})
    assert answer.status_code == 200 and not answer.json()["refused"] and answer.json()["id"]


def test_ask_answers_the_contract_object(server: AppServer) -> None:
    status, headers, answer = post_json(server.url + "/api/ask", {"question": "How long is residency?"})
    assert status == 200 and headers["content-type"].startswith("application/json")
    assert {"question", "answer", "refused", "citations"} <= answer.keys()
    assert answer["refused"] is False and "[1]" in answer["answer"]
    citation = answer["citations"][0]
    assert set(citation) == {"id", "source", "title", "section", "snippet", "score"}
    assert citation["source"].endswith(".md") and not citation["source"].startswith("/")


def test_a_follow_up_is_rewritten_with_the_history(server: AppServer) -> None:
    history = [
        {"role": "user", "content": "What is residency?"},
        {"role": "assistant", "content": "Residency is specialty training after medical school. [1]"},
    ]
    status, _, answer = post_json(server.url + "/api/ask", {"question": "how long does that take?", "history": history})
    assert status == 200
    assert answer["standalone_question"] != answer["question"]
    assert "residency" in answer["standalone_question"].lower()


def test_stream_sends_pieces_then_the_answer(server: AppServer) -> None:
    status, headers, body = request(
        server.url + "/api/stream", "POST", json.dumps({"question": "What is the CMD credential?"}).encode()
    )
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    events = [json.loads(line) for line in body.decode().splitlines()]
    assert events[0]["type"] == "delta" and events[-1]["type"] == "answer"
    streamed = "".join(e["text"] for e in events if e["type"] == "delta")
    assert streamed == events[-1]["answer"]["answer"]


@pytest.mark.parametrize(
    ("question", "reason"),
    [
        ("How much does a medical director earn?", "not_covered"),
        ("What dose of ibuprofen should I give my child?", "clinical"),
        ("What's the capital of France?", "weak_evidence"),
    ],
)
def test_declines_say_why_through_ask_and_stream(server: AppServer, question: str, reason: str) -> None:
    status, _, answer = post_json(server.url + "/api/ask", {"question": question})
    assert status == 200 and answer["refused"] is True and answer["reason"] == reason
    status, _, body = request(server.url + "/api/stream", "POST", json.dumps({"question": question}).encode())
    final = json.loads(body.decode().splitlines()[-1])["answer"]
    assert status == 200 and final["refused"] is True and final["reason"] == reason


def test_an_answer_has_no_reason(server: AppServer) -> None:
    _, _, answer = post_json(server.url + "/api/ask", {"question": "How long is residency?"})
    assert answer["refused"] is False and answer["reason"] is None


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"",
        b"[1, 2]",
        b'{"question": 42}',
        b'{"history": []}',
        b'{"question": ""}',
        b'{"question": "   \\n\\t  "}',
        b'{"question": "\\u0000\\u0001\\u0007"}',
        json.dumps({"question": "a" * 20_000}).encode(),
        b'{"question": "What is a CMD?", "history": "nope"}',
        b'{"question": "What is a CMD?", "history": [{"role": "system", "content": "x"}]}',
        b'{"question": "What is a CMD?", "history": [{"role": "user", "content": 5}]}',
        b"\xff\xfe\x00",
    ],
    ids=[
        "invalid-json",
        "empty-body",
        "not-an-object",
        "question-not-text",
        "no-question",
        "empty",
        "whitespace",
        "control-characters",
        "20000-characters",
        "history-not-a-list",
        "history-bad-role",
        "history-content-not-text",
        "not-utf8",
    ],
)
def test_bad_bodies_get_4xx_json(server: AppServer, body: bytes) -> None:
    status, headers, response = request(server.url + "/api/ask", "POST", body, {"Content-Type": "application/json"})
    assert 400 <= status < 500, response
    assert headers["content-type"].startswith("application/json")
    error = json.loads(response)["error"]
    assert isinstance(error, str) and error


def test_an_oversized_body_gets_413(server: AppServer) -> None:
    status, _, response = request(server.url + "/api/ask", "POST", b'{"question": "' + b"a" * 300_000 + b'"}')
    assert status == 413 and "limit" in json.loads(response)["error"]


def test_sources_shows_the_document_with_the_cited_passage_marked(server: AppServer) -> None:
    _, _, answer = post_json(server.url + "/api/ask", {"question": "What is the CMD credential?"})
    citation = answer["citations"][0]
    status, headers, body = request(server.url + source_link(citation["source"], citation["snippet"]))
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert 'id="passage"' in page and 'class="cited"' in page
    marked = page[page.index('id="passage"') :][:2000]
    assert citation["snippet"].split()[2] in marked
    assert "default-src 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"


@pytest.mark.parametrize(
    "path",
    [
        "/sources/../app.py",
        "/sources/../../etc/passwd",
        "/sources/%2e%2e/app.py",
        "/sources/%2E%2E%2Fapp.py",
        "/sources/..%2fapp.py",
        "/sources/%252e%252e/app.py",
        "/sources//etc/passwd",
        "/sources/%2fetc%2fpasswd",
        "/sources/C:/Windows/win.ini",
        "/sources/faq.md/../faq.md",
        "/sources/./faq.md",
        "/sources/faq.md%00",
        "/sources/nope.md",
        "/sources/",
    ],
)
def test_source_path_tricks_get_404(server: AppServer, path: str) -> None:
    assert raw_get(server, path) == 404


def test_a_source_by_its_exact_id_is_served(server: AppServer) -> None:
    assert raw_get(server, "/sources/faq.md") == 200


def test_with_no_allowed_origins_only_this_origin_may_frame_or_call(server: AppServer) -> None:
    assert "ASSISTANT_ALLOWED_ORIGINS is empty" in server.log_text()
    _, headers, _ = request(server.url + "/embed")
    assert headers["content-security-policy"].endswith("frame-ancestors 'self'")
    status, headers, refused = post_json(
        server.url + "/api/ask", {"question": "What is a CMD?"}, {"Origin": "http://127.0.0.1:1"}
    )
    assert status == 403 and "access-control-allow-origin" not in headers and "origin" in refused["error"]
    status, _, _ = post_json(server.url + "/api/ask", {"question": "What is a CMD?"}, {"Origin": server.url})
    assert status == 200


def test_missing_index_is_built_from_the_corpus_first(tmp_path: Path) -> None:
    corpus = tmp_path / "guides"
    corpus.mkdir()
    (corpus / "only.md").write_text(
        "# Residency\n\nResidency in the United States lasts at least three years after medical school.\n",
        encoding="utf-8",
    )
    app = start_app(tmp_path / "index", tmp_path / "run", env={"ASSISTANT_CORPUS_DIR": str(corpus)})
    try:
        _, _, body = request(app.url + "/healthz")
        assert json.loads(body)["chunks"] >= 1
        assert "ingesting" in app.log_text()
    finally:
        app.stop()


def test_an_unreachable_store_stops_the_app_with_status_3(tmp_path: Path) -> None:
    env = {**os.environ, "ASSISTANT_CHROMA_HOST": "127.0.0.1", "ASSISTANT_CHROMA_PORT": str(free_port())}
    result = subprocess.run(
        [PYTHON, str(ROOT / "app.py"), "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 3
    assert "cannot start the assistant" in result.stderr


def test_a_chunked_body_without_content_length_is_still_held_to_the_limit(server: AppServer) -> None:
    boundary = "chunkedboundary"
    kind = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="big.md"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    # Gradio's upload route takes files up to ASSISTANT_MAX_FILE_MB (20 MB): 21 MB is refused...
    status, body = post_chunked(server.url + "/gradio_api/upload", [head, *[b"x" * 1_000_000] * 21, tail], kind)
    assert status == 413 and "limit" in json.loads(body)["error"]
    # ...while a small chunked upload still goes through, and so does a 5 MB one (over the 4 MB
    # general limit: the Admin tab uploads guides through this route).
    for size in (1000, 5_000_000):
        status, body = post_chunked(
            server.url + "/gradio_api/upload", [head, b"# A guide\n" * (size // 10), tail], kind
        )
        assert status == 200, body[:300]
    status, body = post_chunked(server.url + "/api/ask", [b'{"question": "', b"a" * 300_000, b'"}'], {})
    assert status == 413 and "limit" in json.loads(body)["error"]
