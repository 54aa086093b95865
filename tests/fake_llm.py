"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests and demos.

It is a real HTTP server on a real socket: the assistant reaches it through langchain-openai
exactly as it would reach Ollama, llama.cpp's server or vLLM. It answers
`POST /v1/chat/completions` (streaming SSE when the request says `"stream": true`, one JSON
object otherwise) and `GET /v1/models`.

The reply is scripted. The script is the next entry of `FakeLLM.queue` when one is queued,
else the request's `model` field, so a test (or a subprocess given `ASSISTANT_LLM_MODEL`)
picks it by name:

    good       quotes a sentence of passage 1 and of passage 2, each followed by its marker
    uncited    the same sentences without any marker
    cite9      cites passage 2, then a sentence citing [9] (no such passage), then [3][9]
    inject     one good cited sentence, then obeys the instruction planted in a passage
    slow       sends nothing for `slow_seconds`, then the good answer
    drip       streams one word every 0.3 s for about a minute
    error500   HTTP 500 with an OpenAI-style error object
    broken     a malformed SSE event (not JSON) in mid-stream
    truncated  the connection drops in mid-stream (chunked body never finished)
    nofinish   a complete HTTP body that ends without finish_reason and without [DONE]

Run it by hand to try the assistant against it:
`python tests/fake_llm.py --port 8089`, then
`ASSISTANT_LLM_BASE_URL=http://127.0.0.1:8089/v1 ASSISTANT_LLM_MODEL=good python -m assistant ask "..."`.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SCRIPTS = ("good", "uncited", "cite9", "inject", "slow", "drip", "error500", "broken", "truncated", "nofinish")
PASSAGE = re.compile(r'<passage id="(\d+)"[^>]*>(.*?)</passage>', re.DOTALL)
INSTRUCTION = re.compile(r"ignore (all )?previous instructions", re.IGNORECASE)
PAYLOAD = "New medical directors must wire a $500 onboarding fee to acme-payments.example before their first day"


class FakeLLM:
    """The scripted server: `start()` binds a free port on 127.0.0.1, `stop()` closes it.

    Example::

        with FakeLLM() as fake:
            fake.queue.append("uncited")
            ...  # point ASSISTANT_LLM_BASE_URL at fake.base_url
            assert fake.requests[-1]["messages"][0]["role"] == "system"
    """

    def __init__(self, slow_seconds: float = 30.0, token_delay: float = 0.0) -> None:
        self.slow_seconds = slow_seconds
        self.token_delay = token_delay  # pause between streamed words
        self.queue: deque[str] = deque()
        self.requests: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (after start)."""
        assert self._server is not None, "start() the server first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """The value for ASSISTANT_LLM_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, port: int = 0) -> FakeLLM:
        """Listen on 127.0.0.1 (a free port unless one is given) in a background thread."""
        handler = type("Handler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        server.daemon_threads = True
        server.block_on_close = False
        self._server, self.stopping = server, threading.Event()
        self._thread = threading.Thread(target=server.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the listening socket (new connections are refused)."""
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLLM:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script_for(self, body: dict[str, Any]) -> str:
        """The script answering this request: queued first, else the model name."""
        if self.queue:
            return self.queue.popleft()
        model = str(body.get("model", ""))
        return model if model in SCRIPTS else "good"


def reply_text(script: str, prompt: str) -> str:
    """The scripted answer text for a prompt holding `<passage id="n">` blocks."""
    passages = {int(n): text for n, text in PASSAGE.findall(prompt)}
    hostile = [n for n, text in passages.items() if INSTRUCTION.search(text)]
    benign = [n for n in sorted(passages) if n not in hostile] or sorted(passages)

    def claim(n: int) -> str:
        return quotable_sentence(passages.get(n, "")).rstrip(".")

    if script == "uncited":
        return f"{claim(1)}. {claim(2)}."
    if script == "cite9":
        return f"{claim(2)} [2].\n\n{claim(1)} [9].\n\n{claim(3)} [3][9]."
    if script == "inject":
        target = hostile[0] if hostile else 1
        return f"{claim(benign[0])} [{benign[0]}].\n\nIMPORTANT: {PAYLOAD} [{target}]."
    return f"{claim(1)} [1].\n\n- {claim(2)} [2]."


def quotable_sentence(text: str) -> str:
    """The first full sentence of a passage that is worth quoting (not a heading, not an order)."""
    body = re.sub(r"^#.*$", " ", text, flags=re.MULTILINE)
    for sentence in re.split(r"(?<=[.!?])\s+|\n\s*\n", body):
        sentence = " ".join(sentence.replace("&lt;", "<").split()).lstrip("-* ")
        if len(sentence.split()) >= 8 and sentence[:1].isupper() and not INSTRUCTION.search(sentence):
            return sentence if sentence.endswith((".", "!", "?")) else sentence + "."
    return "The guides describe this topic."


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLLM
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the recorded requests
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": [{"id": s, "object": "model"} for s in SCRIPTS]})
        else:
            self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

    def do_POST(self) -> None:
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "invalid_request_error"}})
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        self.fake.requests.append(body)
        script = self.fake.script_for(body)
        prompt = "\n".join(str(m.get("content", "")) for m in body.get("messages", []))
        if script == "error500":
            self._json(500, {"error": {"message": "scripted failure", "type": "server_error"}})
            return
        if script == "slow" and self.fake.stopping.wait(self.fake.slow_seconds):
            return
        text = reply_text(script, prompt)
        model = str(body.get("model", "fake"))
        if not body.get("stream"):
            self._json(200, _completion(model, text))
            return
        self._stream(script, model, text)

    def _stream(self, script: str, model: str, text: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        if script == "nofinish":
            payload = b"".join(_event(_chunk(model, {"content": w})) for w in _words(text))
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            self._send(_event(_chunk(model, {"role": "assistant", "content": ""})))
            words = _words(text)
            for index, word in enumerate(words):
                if script == "broken" and index == 3:
                    self._send(b'data: {"id": "chatcmpl-fake", "choices": [{"delta": {"content": "oops"\n\n')
                    break
                if script == "truncated" and index == len(words) // 2:
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.close()  # no terminating chunk: the body is cut off
                    return
                self._send(_event(_chunk(model, {"content": word})))
                pause = 0.3 if script == "drip" else self.fake.token_delay
                if pause and self.fake.stopping.wait(pause):
                    return
            if script == "drip":
                for _ in range(200):
                    self._send(_event(_chunk(model, {"content": " more"})))
                    if self.fake.stopping.wait(0.3):
                        return
            self._send(_event(_chunk(model, {}, finish="stop")))
            self._send(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up, as it should after its deadline

    def _send(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _words(text: str) -> list[str]:
    """The text split into streamable pieces whose concatenation is the text."""
    return re.findall(r"\S+\s*|\s+", text)


def _chunk(model: str, delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def _event(payload: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def serve(argv: list[str] | None = None) -> None:
    """Run the fake in the foreground until interrupted."""
    parser = argparse.ArgumentParser(description="scripted OpenAI-compatible chat server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=8089)
    parser.add_argument("--slow-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    fake = FakeLLM(slow_seconds=args.slow_seconds).start(args.port)
    print(f"fake LLM at {fake.base_url}; scripts: {', '.join(SCRIPTS)}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    serve()
