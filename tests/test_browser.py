"""The chat in a real headless Chromium: streamed cited answers, the source viewer, feedback, safety.

Needs Debian's chromium at /usr/bin/chromium (scripts/test.sh installs it). Screenshots go to
tests/artifacts/; set UPDATE_SCREENSHOTS=1 to refresh docs/screenshot-chat.png as well.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appserver import ROOT, AppServer, chromium, start_app
from playwright.sync_api import Browser, Page, expect

from assistant.records.database import Database
from assistant.service import Assistant
from conftest import settings_for

pytestmark = [pytest.mark.browser, pytest.mark.server]

ARTIFACTS = ROOT / "tests" / "artifacts"
HOSTILE_GUIDE = """---
title: "Zebra rounds <script>window.__xss = 'title'</script>"
---
# Zebra rounds checklist <img src=x onerror="window.__xss = 'heading'">

Zebra rounds are the weekly onboarding walk a new medical director takes through every unit. <script>window.__xss = 'script'</script>

The zebra rounds checklist covers staffing, infection control and the pharmacy <img src="x" onerror="window.__xss = 'img'"> before the first board meeting.

Open the [zebra rounds form](javascript:window.__xss='link') or <a href="javascript:window.__xss='a'">this link</a> for the zebra rounds checklist.

<svg onload="window.__xss = 'svg'"></svg><iframe src="javascript:window.__xss='iframe'"></iframe>
<details open ontoggle="window.__xss = 'toggle'">zebra rounds details</details>
"""
HOSTILE_QUESTION = "<img src=x onerror=\"window.__xss = 'question'\"><script>window.__xss = 'q'</script> What is on the zebra rounds checklist?"

WATCH_STREAMING = """
window.__sawStreaming = false;
new MutationObserver(() => {
  if (document.querySelector('#chat .answer.streaming')) window.__sawStreaming = true;
}).observe(document, {subtree: true, childList: true});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def server(corpus_index: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    app = start_app(corpus_index, tmp_path_factory.mktemp("browser"), args=("--no-sync",))
    yield app
    app.stop()


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Iterator[AppServer]:
    root = tmp_path_factory.mktemp("hostile")
    guides = root / "guides"
    guides.mkdir()
    (guides / "zebra-rounds.md").write_text(HOSTILE_GUIDE, encoding="utf-8")
    report = Assistant.from_settings(settings_for(root / "index"), create=True).ingest([guides])
    assert report.added == 1 and not report.failed
    app = start_app(root / "index", root / "run", env={"ASSISTANT_CORPUS_DIR": str(guides)}, args=("--no-sync",))
    yield app
    app.stop()


@pytest.fixture
def page(browser: Browser, server: AppServer) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    page.requests = []  # type: ignore[attr-defined]
    context.on("request", lambda request: page.requests.append(request.url))  # type: ignore[attr-defined]
    page.add_init_script(WATCH_STREAMING)
    yield page
    context.close()


def ask(page: Page, question: str, button: bool = False) -> None:
    """Type a question, send it (Enter or the Ask button), and wait until the answer has finished streaming."""
    answers = page.locator("#chat .answer:not(.streaming)")
    before = answers.count()
    page.locator("#question textarea").fill(question)
    if button:
        page.locator("#ask").click()
    else:
        page.keyboard.press("Enter")
    expect(answers).to_have_count(before + 1, timeout=60_000)


def network_urls(page: Page) -> list[str]:
    return [u for u in page.requests if not u.startswith(("data:", "blob:", "about:"))]  # type: ignore[attr-defined]


def test_a_streamed_answer_with_citations_opens_the_highlighted_source(page: Page, server: AppServer) -> None:
    page.set_viewport_size({"width": 1100, "height": 1150})  # the question and its answer in one screenshot
    page.goto(server.url + "/", wait_until="load")
    expect(page.locator("#no-advice")).to_contain_text("no clinical or medical advice")
    expect(page.get_by_label("Your question")).to_be_visible()  # labelled for screen readers
    ask(page, "How long is residency?")
    assert page.evaluate("window.__sawStreaming") is True
    answer = page.locator("#chat .answer").last
    expect(answer.locator("a.cite").first).to_have_text("[1]")
    answer.locator("details.sources summary").click()
    expect(answer.locator(".source-list li").first).to_contain_text("score")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "chat.png"))
    if os.environ.get("UPDATE_SCREENSHOTS") or not (ROOT / "docs" / "screenshot-chat.png").exists():
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(ARTIFACTS / "chat.png", ROOT / "docs" / "screenshot-chat.png")

    with page.context.expect_page() as opened:
        answer.locator("a.cite").first.click()
    source = opened.value
    source.wait_for_load_state("load")
    assert "/sources/" in source.url
    passage = source.locator("#passage")
    expect(passage).to_have_class("cited")
    expect(passage).to_be_in_viewport()
    source.screenshot(path=str(ARTIFACTS / "source.png"))
    outside = [u for u in network_urls(page) if not u.startswith(server.url)]
    assert outside == [], f"requests left the app: {outside}"


def test_a_follow_up_shows_the_rewritten_question(page: Page, server: AppServer) -> None:
    page.goto(server.url + "/", wait_until="load")
    ask(page, "What is residency?")
    ask(page, "How long does that take?", button=True)
    answer = page.locator("#chat .answer").last
    answer.locator("details.sources summary").click()
    expect(answer.locator(".rewritten")).to_contain_text("residency")


def test_an_example_question_likes_and_clear_chat(page: Page, server: AppServer) -> None:
    page.goto(server.url + "/", wait_until="load")
    page.get_by_text("What is the CMD credential?").click()
    expect(page.locator("#chat .answer:not(.streaming) a.cite").first).to_be_visible(timeout=60_000)
    page.locator("#chat button[aria-label='Like']").last.click()
    expect(page.get_by_text("your feedback was saved")).to_be_visible()
    rows = Database(f"sqlite:///{server.data_dir / 'assistant.sqlite3'}").feedback_rows()
    assert rows and rows[-1]["rating"] == "like" and rows[-1]["question"] == "What is the CMD credential?"
    page.locator("#clear").click()
    expect(page.locator("#chat .answer")).to_have_count(0)
    expect(page.get_by_text("What is the CMD credential?")).to_be_visible()  # the examples are back


@pytest.mark.parametrize("question", ["   ", "x" * 20_000])
def test_bad_input_gets_a_friendly_notice(page: Page, server: AppServer, question: str) -> None:
    page.goto(server.url + "/", wait_until="load")
    page.locator("#question textarea").fill(question)
    page.keyboard.press("Enter")
    expect(page.get_by_test_id("toast-body")).to_contain_text("question")
    expect(page.locator("#chat .answer")).to_have_count(0)


def test_hostile_guides_and_questions_never_run_script(browser: Browser, hostile_server: AppServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.goto(hostile_server.url + "/", wait_until="load")
    ask(page, HOSTILE_QUESTION)
    answer = page.locator("#chat .answer").last
    expect(answer.locator("a.cite").first).to_be_visible()  # the hostile guide was really used
    answer.locator("details.sources summary").click()
    expect(page.locator("#chat")).to_contain_text("<script>")  # shown as text, not run
    page.wait_for_timeout(500)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#chat a[href^='javascript:'], #chat img, #chat svg[onload], #chat iframe").count() == 0

    with context.expect_page() as opened:
        answer.locator("a.cite").first.click()
    source = opened.value
    source.wait_for_load_state("load")
    expect(source.locator("article")).to_contain_text("<script>")
    expect(source.locator(".cited").first).to_be_visible()
    source.wait_for_timeout(500)
    assert source.evaluate("window.__xss") is None
    assert source.locator("a[href^='javascript:'], img, iframe, svg, script:not([src])").count() == 0
    assert dialogs == []
    context.close()


def test_the_embed_page_never_runs_script_from_guides_or_questions(browser: Browser, hostile_server: AppServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(hostile_server.url + "/embed", wait_until="load")
    page.locator("#question").fill(HOSTILE_QUESTION)
    page.locator("#send").click()
    answer = page.locator(".message.assistant").last
    expect(answer.locator("a.cite").first).to_be_visible(timeout=60_000)
    answer.locator("details.sources summary").click()
    expect(answer).to_contain_text("<script>")  # the hostile title, shown as text
    expect(page.locator(".message.user")).to_contain_text("<img src=x onerror=")
    page.wait_for_timeout(500)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#log img, #log svg, #log iframe, #log script, #log a[href^='javascript:']").count() == 0
    context.close()
