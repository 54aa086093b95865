"""The embeddable widget in real headless Chromium, on third-party pages served from other origins.

An advisor's page on an allowed origin (another port on 127.0.0.1) gets the launcher, the
panel and cited answers; the same page on an origin that is not allowed gets neither the
iframe nor the API. Every request the pages make is recorded: none leaves the app's origin
besides the host page's own.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from appserver import ROOT, AppServer, chromium, free_port, post_json, request, start_app
from playwright.sync_api import Browser, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.server]

ARTIFACTS = ROOT / "tests" / "artifacts"
TITLE = 'Advisors <img src=x onerror="window.__xss = 1">'
HOST_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>A career advisor's site</title>
<style>
  /* A host page with heavy-handed CSS: none of it may reach the widget. */
  * {{ font-family: "Comic Sans MS", cursive !important; }}
  button {{ background: rgb(255, 0, 0) !important; color: yellow !important; font-size: 40px !important; }}
  iframe {{ display: none !important; }}
  div {{ border: 5px dashed hotpink !important; }}
</style></head>
<body><h1>Career advice for physicians</h1><p>Our own page content.</p>
<button id="own-button">The page's own button</button>
<script src="{app}/widget.js" data-title='{title}' data-greeting="Hi <b>there</b>! Ask me anything."
        data-accent="#0a7" data-position="bottom-left" async></script>
</body></html>
"""
ASK_FROM_PAGE = """async (url) => {
  try {
    const response = await fetch(url + "/api/ask", {method: "POST", headers: {"Content-Type": "application/json"},
                                                    body: JSON.stringify({question: "What is the CMD credential?"})});
    return {status: response.status, body: await response.json()};
  } catch (error) { return {blocked: String(error)}; }
}"""


@dataclass
class Sites:
    """The app, a third-party origin allowed to embed it, and one that is not."""

    app: AppServer
    limited: AppServer  # same allowed origin, default rate limit
    allowed: str
    denied: str


def serve_static(folder: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"http.server did not start on port {port}")


@pytest.fixture(scope="module")
def sites(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sites]:
    root = tmp_path_factory.mktemp("widget")
    allowed_port, denied_port = free_port(), free_port()
    allowed = f"http://127.0.0.1:{allowed_port}"
    env = {"ASSISTANT_ALLOWED_ORIGINS": allowed}
    app = start_app(corpus_index, root / "app", env={**env, "ASSISTANT_RATE_LIMIT": "1000"}, args=("--no-sync",))
    limited = start_app(corpus_index, root / "limited", env=env, args=("--no-sync",))
    pages = root / "pages"
    pages.mkdir()
    (pages / "index.html").write_text(HOST_PAGE.format(app=app.url, title=TITLE), encoding="utf-8")
    (pages / "limited.html").write_text(HOST_PAGE.format(app=limited.url, title="Ask"), encoding="utf-8")
    servers = [serve_static(pages, allowed_port), serve_static(pages, denied_port)]
    yield Sites(app, limited, allowed, f"http://127.0.0.1:{denied_port}")
    for server in servers:
        server.terminate()
        server.wait(10)
    app.stop()
    limited.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.requests = []  # type: ignore[attr-defined]
    page.console = []  # type: ignore[attr-defined]
    context.on("request", lambda r: page.requests.append(r.url))  # type: ignore[attr-defined]
    page.on("console", lambda m: page.console.append(m.text))  # type: ignore[attr-defined]
    yield page
    context.close()


def launcher(page: Page):  # type: ignore[no-untyped-def]
    """The launcher button (Playwright's CSS engine pierces the open shadow root)."""
    return page.locator("[data-medical-director-widget] button.launcher")


def widget_focus(page: Page) -> str:
    """Class of the element focused inside the widget's shadow root ('' when none)."""
    return str(
        page.evaluate(
            "() => { const a = document.querySelector('[data-medical-director-widget]').shadowRoot.activeElement;"
            " return a ? a.className : ''; }"
        )
    )


def test_an_allowed_site_gets_cited_answers_and_every_request_stays_on_the_two_origins(
    page: Page, sites: Sites
) -> None:
    page.goto(sites.allowed + "/index.html", wait_until="load")
    launcher(page).click()
    frame = page.frame_locator("iframe")
    question = frame.locator("#question")
    expect(question).to_be_focused(timeout=15_000)  # focus moved into the panel
    expect(frame.locator("#greeting")).to_have_text("Hi <b>there</b>! Ask me anything.")
    question.fill("How long is residency?")
    page.keyboard.press("Enter")
    answer = frame.locator(".message.assistant").last
    expect(answer.locator("a.cite").first).to_be_visible(timeout=60_000)
    answer.locator("details.sources summary").click()
    expect(answer.locator("li.source").first).to_contain_text("score")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "widget.png"))

    with page.context.expect_page() as opened:
        answer.locator("li.source a").first.click()
    source = opened.value
    source.wait_for_load_state("load")
    assert source.url.startswith(sites.app.url + "/sources/")
    expect(source.locator("#passage")).to_have_class("cited")
    expect(source.locator("#passage")).to_be_in_viewport()

    page.bring_to_front()
    question.focus()
    page.keyboard.press("Escape")  # Esc inside the iframe closes the panel...
    expect(page.locator("iframe")).to_be_hidden()
    assert widget_focus(page) == "launcher"  # ...and focus goes back to the launcher
    urls = [u for u in page.requests if not u.startswith(("data:", "blob:", "about:"))]  # type: ignore[attr-defined]
    strays = [u for u in urls if not u.startswith((sites.app.url + "/", sites.allowed + "/"))]
    assert strays == [], f"requests left the app's origin: {strays}"
    assert any(u.startswith(sites.app.url + "/api/stream") for u in urls)


def test_a_topic_the_guides_do_not_cover_is_shown_as_a_decline_with_its_reason(page: Page, sites: Sites) -> None:
    page.goto(sites.allowed + "/index.html", wait_until="load")
    launcher(page).click()
    frame = page.frame_locator("iframe")
    question = frame.locator("#question")
    # The panel focuses its question box once its script runs; an Enter before that was lost
    # under load (the stream was never requested).
    expect(question).to_be_focused(timeout=15_000)
    with page.expect_response(lambda r: r.url.startswith(sites.app.url + "/api/stream")) as streamed:
        question.fill("How much does a medical director earn?")
        question.press("Enter")
    assert streamed.value.status == 200  # its body is read by the widget (Chromium may not keep a copy)
    answer = frame.locator(".message.assistant.refused").last
    expect(answer).to_have_attribute("data-reason", "not_covered", timeout=60_000)
    expect(answer).to_contain_text("The guides do not say how much a medical director earns")
    status, _, body = request(
        sites.app.url + "/api/stream",
        "POST",
        json.dumps({"question": "How much does a medical director earn?"}).encode(),
        {"Content-Type": "application/json"},
    )
    events = [json.loads(line) for line in body.decode().splitlines()]
    assert status == 200 and events[-1]["answer"]["refused"] is True
    assert events[-1]["answer"]["reason"] == "not_covered"


def test_attributes_are_data_and_the_host_css_cannot_reach_the_widget(page: Page, sites: Sites) -> None:
    page.goto(sites.allowed + "/index.html", wait_until="load")
    button = launcher(page)
    expect(page.get_by_role("button", name="Open chat: Advisors <img")).to_be_visible()  # labelled for screen readers
    expect(button).to_contain_text("<img")  # the title is shown as text...
    assert page.evaluate("window.__xss") is None  # ...and never parsed
    style = button.evaluate(
        "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.fontSize, s.fontFamily]; }"
    )
    assert style[0] == "rgb(0, 170, 119)" and style[1] == "15px" and "Comic" not in style[2]
    assert page.locator("#own-button").evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(255, 0, 0)"
    box = button.bounding_box()
    assert box is not None and box["x"] < 100  # data-position="bottom-left"
    button.click()
    expect(page.locator("iframe")).to_be_visible()  # the page's `iframe {display: none}` does not apply
    button.press("Escape")
    expect(page.locator("iframe")).to_be_hidden()


def test_keyboard_only_and_full_screen_on_a_narrow_screen(browser: Browser, sites: Sites) -> None:
    context = browser.new_context(viewport={"width": 375, "height": 700})
    page = context.new_page()
    page.goto(sites.allowed + "/index.html", wait_until="load")
    launcher(page).focus()
    page.keyboard.press("Enter")
    expect(page.frame_locator("iframe").locator("#question")).to_be_focused(timeout=15_000)
    panel = page.get_by_role("dialog")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box is not None and (box["x"], box["y"], box["width"], box["height"]) == (0, 0, 375, 700)
    page.get_by_role("button", name="Close chat").click()
    expect(panel).to_be_hidden()
    context.close()


def test_a_site_not_allowed_gets_neither_the_iframe_nor_the_api(page: Page, sites: Sites) -> None:
    page.goto(sites.denied + "/index.html", wait_until="load")
    launcher(page).click()
    expect(page.get_by_role("alert")).to_contain_text("could not be shown", timeout=20_000)
    assert any("frame-ancestors" in line for line in page.console)  # type: ignore[attr-defined]
    assert all(f.locator("#question").count() == 0 for f in page.frames if f != page.main_frame)
    assert "blocked" in page.evaluate(ASK_FROM_PAGE, sites.app.url)


def test_an_allowed_site_may_call_the_api(page: Page, sites: Sites) -> None:
    page.goto(sites.allowed + "/index.html", wait_until="load")
    result = page.evaluate(ASK_FROM_PAGE, sites.app.url)
    assert result["status"] == 200 and result["body"]["citations"]


def test_headers_frame_ancestors_and_cors_for_exactly_the_listed_origin(sites: Sites) -> None:
    _, headers, _ = request(sites.app.url + "/embed")
    assert headers["content-security-policy"].endswith(f"frame-ancestors 'self' {sites.allowed}")
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    status, headers, _ = request(sites.app.url + "/api/ask", "OPTIONS", headers={"Origin": sites.allowed, **preflight})
    assert status == 200 and headers["access-control-allow-origin"] == sites.allowed
    status, headers, _ = request(sites.app.url + "/api/ask", "OPTIONS", headers={"Origin": sites.denied, **preflight})
    assert status >= 400 and "access-control-allow-origin" not in headers
    status, headers, body = post_json(
        sites.app.url + "/api/ask", {"question": "What is a CMD?"}, {"Origin": sites.denied}
    )
    assert status == 403 and "access-control-allow-origin" not in headers and "origin" in body["error"]
    status, headers, _ = post_json(
        sites.app.url + "/api/ask", {"question": "What is a CMD?"}, {"Origin": sites.allowed}
    )
    assert status == 200 and headers["access-control-allow-origin"] == sites.allowed
    assert f"allowed from this origin and {sites.allowed}" in sites.app.log_text()


def test_the_21st_question_in_a_minute_gets_429_and_the_widget_says_so(page: Page, sites: Sites) -> None:
    # Twenty at once, so a slow machine cannot stretch them past the one-minute window.
    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(
            pool.map(lambda _: post_json(sites.limited.url + "/api/ask", {"question": "What is a CMD?"}), range(20))
        )
    assert [status for status, _, _ in answers] == [200] * 20
    status, headers, body = post_json(sites.limited.url + "/api/ask", {"question": "What is a CMD?"})
    assert status == 429 and int(headers["retry-after"]) > 0 and "wait" in body["error"]
    # Ratings have a budget of their own: the answers just given can still be rated.
    ratings = [
        post_json(sites.limited.url + "/api/feedback", {"id": body["id"], "rating": "like"})[0]
        for _, _, body in answers
    ]
    assert ratings == [200] * 20
    status, _, body = post_json(sites.limited.url + "/api/feedback", {"id": answers[0][2]["id"], "rating": "dislike"})
    assert status == 429 and "too many ratings" in body["error"]

    page.goto(sites.allowed + "/limited.html", wait_until="load")
    launcher(page).click()
    frame = page.frame_locator("iframe")
    expect(frame.locator("#question")).to_be_focused(timeout=15_000)  # the panel's script has run
    frame.locator("#question").fill("How long is residency?")
    frame.locator("#send").click()
    expect(frame.locator(".message.rate-limited")).to_contain_text("wait a minute", timeout=30_000)


def test_the_demo_page_works_under_its_strict_policy(page: Page, sites: Sites) -> None:
    page.goto(sites.app.url + "/widget-demo", wait_until="load")
    button = launcher(page)
    assert button.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(15, 118, 110)"
    button.click()
    expect(page.frame_locator("iframe").locator("#question")).to_be_focused(timeout=15_000)
    assert not [line for line in page.console if "Content Security Policy" in line]  # type: ignore[attr-defined]
    assert json.loads(request(sites.app.url + "/healthz")[2])["status"] == "ok"
