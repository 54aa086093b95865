"""The Admin tab in a real headless Chromium: the token, the guides table, delete with confirmation, gaps.

Needs Debian's chromium at /usr/bin/chromium (scripts/test.sh installs it). The app serves a copy
of corpus/ (its own index, built at start-up), so deleting a guide touches nothing shared.
"""

from __future__ import annotations

import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from appserver import ROOT, AppServer, chromium, post_json, start_app
from playwright.sync_api import Browser, Dialog, Locator, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.server]

TOKEN = "admin-" + secrets.token_hex(16)
UI = 60_000  # ms for a UI step: the CPU is shared, and re-ingest asks every check question again
DELETED = "budgets-and-finance.md"
SALARY = (
    "How much does a medical director earn?",
    "What is the typical salary of a medical director?",
    "Average compensation for a nursing home medical director?",
)
HOSTILE = "<img src=x onerror=alert(1)> salary of a medical director?"


@dataclass
class AdminApp:
    """The running app and the corpus copy it serves (its ASSISTANT_CORPUS_DIR)."""

    server: AppServer
    guides: Path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture(scope="module")
def admin_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminApp]:
    work = tmp_path_factory.mktemp("browser-admin")
    guides = work / "guides"
    shutil.copytree(ROOT / "corpus", guides)
    env = {"ASSISTANT_ADMIN_TOKEN": TOKEN, "ASSISTANT_CORPUS_DIR": str(guides), "ASSISTANT_RATE_LIMIT": "1000"}
    server = start_app(work / "index", work, env=env, timeout=180.0)  # no index yet: it ingests the copy first
    yield AdminApp(server, guides)
    server.stop()


@pytest.fixture
def page(browser: Browser, admin_app: AdminApp) -> Iterator[Page]:
    """A fresh page on the Admin tab; script dialogs (alert) are recorded in `page.dialogs`."""
    context = browser.new_context(viewport={"width": 1100, "height": 1000})
    page = context.new_page()
    dialogs: list[str] = []
    page.dialogs = dialogs  # type: ignore[attr-defined]

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    page.goto(admin_app.server.url + "/", wait_until="load")
    page.get_by_role("tab", name="Admin").click()
    expect(page.locator("#admin-token input")).to_be_visible(timeout=UI)
    yield page
    context.close()


def source_cells(page: Page) -> Locator:
    """The `source` column's cells of the guides table (Gradio's Dataframe is a grid of divs)."""
    return page.locator("#admin-documents [role=gridcell][data-col='0']")


def load_guides(page: Page, token: str = TOKEN) -> None:
    page.locator("#admin-token input").fill(token)
    page.locator("#admin-load").click()


def choose(page: Page, source: str) -> None:
    """Pick a guide in the delete dropdown (a combobox input with a list of options)."""
    page.locator("#admin-delete-source input").click()
    page.get_by_role("option", name=source, exact=True).click()
    expect(page.locator("#admin-delete-source input")).to_have_value(source, timeout=UI)


def ask(app: AdminApp, question: str) -> dict[str, object]:
    status, _, answer = post_json(app.server.url + "/api/ask", {"question": question})
    assert status == 200, answer
    return dict(answer)


def cited(answer: dict[str, object]) -> set[str]:
    return {c["source"] for c in answer["citations"]}  # type: ignore[attr-defined, index]


def guide_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.md"))


def test_a_wrong_token_shows_an_error_and_no_guides(page: Page) -> None:
    load_guides(page, "not-the-token")
    expect(page.get_by_test_id("toast-body")).to_contain_text("That admin token is not right.", timeout=UI)
    expect(page.locator("#admin-documents")).to_contain_text("source")  # the empty table's header
    expect(page.locator("#admin-documents [role=gridcell]")).to_have_count(0)


def test_the_guides_table_lists_the_corpus_guides(page: Page, admin_app: AdminApp) -> None:
    load_guides(page)
    cells = source_cells(page)
    expect(cells.get_by_text(DELETED, exact=True)).to_be_visible(timeout=UI)
    expect(cells.get_by_text("faq.md", exact=True)).to_be_visible()
    expected = guide_names(admin_app.guides)
    expect(cells).to_have_count(len(expected))
    assert sorted(cells.all_inner_texts()) == expected
    expect(page.get_by_test_id("toast-body")).to_have_count(0)


def test_delete_asks_first_then_moves_the_guide_to_trash_and_reingest_keeps_it_gone(
    page: Page, admin_app: AdminApp
) -> None:
    question = "Tell me about budgets"
    assert DELETED in cited(ask(admin_app, question))  # the guide answers it before the delete
    guides, trashed = admin_app.guides, admin_app.guides / ".trash" / DELETED
    load_guides(page)
    cells = source_cells(page)
    expect(cells.get_by_text(DELETED, exact=True)).to_be_visible(timeout=UI)
    confirm_row = page.locator("#admin-confirm-row")
    expect(confirm_row).to_be_hidden()

    choose(page, DELETED)
    page.locator("#admin-delete").click()
    expect(confirm_row).to_be_visible(timeout=UI)
    expect(confirm_row).to_contain_text(DELETED)
    expect(page.locator("#admin-delete-confirm")).to_have_text("Yes, delete it")
    page.locator("#admin-delete-cancel").click()
    expect(confirm_row).to_be_hidden(timeout=UI)
    assert (guides / DELETED).is_file() and not trashed.exists()
    expect(cells.get_by_text(DELETED, exact=True)).to_be_visible()
    assert DELETED in cited(ask(admin_app, question))

    expect(page.locator("#admin-delete-source input")).to_have_value(DELETED)  # Cancel keeps the choice
    choose(page, "glossary.md")
    page.locator("#admin-delete").click()
    expect(confirm_row).to_contain_text("glossary.md", timeout=UI)
    choose(page, DELETED)  # another guide chosen while asked: the question closes, nothing is deleted
    expect(confirm_row).to_be_hidden(timeout=UI)
    assert (guides / "glossary.md").is_file()
    page.locator("#admin-delete").click()
    expect(confirm_row).to_be_visible(timeout=UI)
    page.locator("#admin-delete-confirm").click()
    report = page.locator("#admin-report")
    expect(report).to_contain_text(f"Deleted {DELETED}", timeout=UI)
    expect(report).to_contain_text(f".trash/{DELETED}")
    expect(confirm_row).to_be_hidden(timeout=UI)
    expect(cells.get_by_text(DELETED, exact=True)).to_have_count(0, timeout=UI)
    expect(cells.get_by_text("faq.md", exact=True)).to_be_visible()
    assert trashed.is_file() and not (guides / DELETED).exists()
    assert DELETED not in cited(ask(admin_app, question))

    page.locator("#admin-reingest").click()
    expect(report).to_contain_text("Ingest:", timeout=UI)
    unchanged = len(guide_names(guides))
    expect(report).to_contain_text(re.compile(rf"0 added, 0 updated, 0 removed, {unchanged} unchanged; \d+ chunks"))
    expect(report).to_contain_text(re.compile(r"Check questions: \d+ of \d+ still cite their guide"))
    expect(report).to_contain_text(f"expected {DELETED}")  # its check questions are listed as failing
    expect(cells.get_by_text("faq.md", exact=True)).to_be_visible(timeout=UI)
    expect(cells).to_have_count(unchanged)
    expect(cells.get_by_text(DELETED, exact=True)).to_have_count(0)
    assert trashed.is_file() and not (guides / DELETED).exists()
    assert DELETED not in cited(ask(admin_app, question))


def test_the_gaps_report_groups_declined_and_disliked_questions_and_escapes_them(
    page: Page, admin_app: AdminApp
) -> None:
    for question in SALARY:
        answer = ask(admin_app, question)
        assert answer["refused"] is True, (question, answer)
    answered = ask(admin_app, "How long is residency?")
    assert answered["refused"] is False
    status, _, body = post_json(admin_app.server.url + "/api/feedback", {"id": answered["id"], "rating": "dislike"})
    assert status == 200, body

    page.locator("#admin-token input").fill(TOKEN)
    page.locator("#admin-gaps-load").click()
    gaps = page.locator("#admin-gaps")
    salary = gaps.locator("tr.gap")
    for question in SALARY:
        salary = salary.filter(has_text=question)
    expect(salary).to_have_count(1, timeout=UI)
    expect(salary.locator("td.count")).to_have_text("3")
    expect(salary).to_contain_text("3 declined")
    disliked = gaps.locator("tr.gap").filter(has_text="How long is residency?")
    expect(disliked).to_contain_text("1 👎")

    assert ask(admin_app, HOSTILE)["refused"] is True
    page.locator("#admin-gaps-load").click()
    expect(gaps.locator("tr.gap li").filter(has_text=HOSTILE)).to_have_count(1, timeout=UI)  # shown as text
    page.wait_for_timeout(500)
    assert gaps.locator("img").count() == 0
    assert page.dialogs == []  # type: ignore[attr-defined]
