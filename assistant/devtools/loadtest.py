"""Load test: concurrent clients asking through POST /api/ask, bounded in time and count.

Loopback only: it refuses any host that is not this machine, so it can never be pointed at
someone else's server by mistake.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from assistant.errors import InputError

logger = logging.getLogger(__name__)

QUESTIONS = [
    "How long is residency?",
    "What is the CMD credential?",
    "What should a new medical director do in the first 30 days?",
    "How do I prepare for a state survey?",
    "Do I need an MBA to become a chief medical officer?",
    "What does a medical director do?",
    "How does peer review work?",
    "What is QAPI in a nursing home?",
    "Where do medical directors work?",
    "What board certifications do employers ask for?",
    "What's the capital of France?",
    "How do I build a budget for my department?",
]
MAX_REQUESTS = 100_000


@dataclass
class _Tally:
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    rss_mb: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def require_loopback(url: str) -> None:
    """Raise InputError unless the URL's host resolves only to loopback addresses."""
    host = urlparse(url).hostname or ""
    try:
        addresses = {str(info[4][0]) for info in socket.getaddrinfo(host, None)}
    except socket.gaierror as exc:
        raise InputError(f"cannot resolve {host!r}: {exc}") from exc
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise InputError(f"loadtest only targets this machine (127.0.0.1, ::1, localhost), not {host!r}")


def _rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _client(url: str, deadline: float, number: int, tally: _Tally, counter: list[int]) -> None:
    i = number
    while time.monotonic() < deadline:
        with tally.lock:
            if counter[0] >= MAX_REQUESTS:
                return
            counter[0] += 1
        body = json.dumps({"question": QUESTIONS[i % len(QUESTIONS)], "history": []}).encode()
        i += 1
        request = urllib.request.Request(
            f"{url}/api/ask", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        started = time.perf_counter()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                payload = json.loads(response.read())
                if "answer" not in payload:
                    raise ValueError("no answer in the response")
            with tally.lock:
                tally.latencies.append(time.perf_counter() - started)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            kind = f"HTTP {exc.code}" if isinstance(exc, urllib.error.HTTPError) else type(exc).__name__
            with tally.lock:
                tally.errors[kind] = tally.errors.get(kind, 0) + 1


def run_loadtest(url: str, clients: int, seconds: float, pid: int | None = None) -> dict[str, Any]:
    """Drive `clients` concurrent askers for `seconds`; return throughput, latency and errors."""
    url = url.rstrip("/")
    require_loopback(url)
    if not 1 <= clients <= 256 or not 0 < seconds <= 3600:
        raise InputError("clients must be 1-256 and seconds 0-3600")
    tally = _Tally()
    counter = [0]
    started = time.monotonic()
    deadline = started + seconds
    threads = [
        threading.Thread(target=_client, args=(url, deadline, n, tally, counter), daemon=True) for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline + 35:
        if pid is not None and (rss := _rss_mb(pid)) is not None:
            tally.rss_mb.append(rss)
        time.sleep(1.0)
    elapsed = time.monotonic() - started
    lat = np.asarray(tally.latencies) * 1000 if tally.latencies else np.zeros(1)
    result: dict[str, Any] = {
        "clients": clients,
        "seconds": round(elapsed, 1),
        "requests": len(tally.latencies) + sum(tally.errors.values()),
        "ok": len(tally.latencies),
        "errors": sum(tally.errors.values()),
        "error_kinds": tally.errors,
        "throughput_rps": round(len(tally.latencies) / elapsed, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
    }
    if tally.rss_mb:
        quarter = max(1, len(tally.rss_mb) // 4)
        result["rss_mb_first_quarter"] = round(float(np.mean(tally.rss_mb[:quarter])), 1)
        result["rss_mb_last_quarter"] = round(float(np.mean(tally.rss_mb[-quarter:])), 1)
        result["rss_mb_peak"] = round(max(tally.rss_mb), 1)
    return result
