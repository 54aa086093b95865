"""The chat UI: Gradio Blocks with thin handlers that call the Assistant.

The Assistant does the work; rendering.py turns its answers into safe HTML. The chatbot
shows that HTML as is (render_markdown off) after Gradio's own sanitizer, so text from
guides and users is escaped twice over. Every Gradio import of the project lives here.
"""

from __future__ import annotations

import asyncio
import html
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from starlette.routing import Mount

from assistant.answering.citations import Answer
from assistant.answering.conversation import Turn, parse_history
from assistant.documents.loading import SUFFIXES
from assistant.errors import AssistantError, InputError
from assistant.service import Assistant, normalise_question
from assistant.slot import AssistantSlot
from assistant.web.admin import delete_document, list_documents, reingest, token_status, upload
from assistant.web.failures import describe
from assistant.web.journal import Journal
from assistant.web.rendering import answer_html, gaps_html, partial_answer_html, user_html
from assistant.web.review import after_change, gaps_report, md_escape, report_text

logger = logging.getLogger(__name__)

TITLE = "Medical Director Onboarding Assistant"
EXAMPLES = (
    "What does a medical director do?",
    "How long is residency?",
    "What is the CMD credential?",
    "What should I focus on in my first 90 days?",
)
NOTICE = (
    "General career and onboarding information from curated guides, with sources. "
    "It gives <strong>no clinical or medical advice</strong>: for a patient's care, ask a clinician."
)
HEADER = f"""<div id="intro"><h1>{TITLE}</h1>
<p>Ask about becoming and working as a medical director: training, credentials, responsibilities,
the first months in the role. Each answer cites the guides it comes from.</p>
<p id="no-advice" role="note">{NOTICE}</p></div>"""
CSS = """
#intro h1 { font-size: 1.5rem; margin: 0 0 .25rem; }
#intro p { margin: .25rem 0; }
#no-advice { border-left: 4px solid #d97706; background: #fffbeb; color: #78350f; padding: .4rem .75rem; }
#chat .answer, #chat .question { white-space: normal; }
#chat .answer > :first-child { margin-top: 0; }
#chat .answer ul, #chat .answer ol { padding-left: 1.3rem; }
#chat .answer a.cite { font-size: .75em; vertical-align: super; text-decoration: none; padding: 0 .1em; }
#chat .answer sup.marker { font-size: .75em; color: #6b7280; }
#chat .answer details.sources { margin-top: .6rem; border-top: 1px solid #e5e7eb; padding-top: .4rem; }
#chat .answer details.sources summary { cursor: pointer; font-weight: 600; }
#chat .answer .source-list { list-style: none; padding-left: 0; margin: .4rem 0 0; }
#chat .answer .source-list li { margin: 0 0 .6rem; }
#chat .answer .section, #chat .answer .score, #chat .answer .rewritten { color: #6b7280; font-size: .9em; }
#chat .answer blockquote.snippet { margin: .2rem 0 0; padding-left: .6rem; border-left: 3px solid #d1d5db;
  font-size: .9em; }
#chat .answer .notice { font-style: italic; color: #6b7280; }
#chat .answer.refused > p:first-child { color: #374151; }
"""


def new_state() -> dict[str, Any]:
    """A fresh conversation: plain-text turns for the Assistant, answers by chatbot message index."""
    return {"turns": [], "answers": {}, "messages": []}


def respond(
    question: str,
    state: dict[str, Any],
    ready: AssistantSlot,
    allow: Callable[[str], bool],
    client: str = "local",
    journal: Journal | None = None,
) -> Iterator[tuple[Any, list[dict[str, str]], dict[str, Any]]]:
    """Stream an answer into the chat: yields (question box, chatbot messages, state) updates."""
    assistant = _ready(ready)
    if assistant is None:
        yield gr.skip(), state["messages"], state
        return
    try:
        text = normalise_question(question, assistant.settings.max_question_chars)
    except InputError as exc:
        gr.Warning(html.escape(str(exc), quote=False), title="Please check your question")
        yield gr.skip(), state["messages"], state
        return
    if not allow(client):
        gr.Warning("Too many questions in a minute; please wait a moment and ask again.", title="Slow down")
        yield gr.skip(), state["messages"], state
        return
    history = [Turn(t["role"], t["content"]) for t in state["turns"]]
    asked = [*state["messages"], {"role": "user", "content": user_html(text)}]
    messages = [*asked, {"role": "assistant", "content": partial_answer_html("…")}]
    yield "", messages, {**state, "messages": messages}
    streamed = ""
    started = time.perf_counter()
    try:
        for event in assistant.stream(text, history):
            if isinstance(event, Answer):
                messages = [*asked, {"role": "assistant", "content": answer_html(event)}]
                turns = [{"role": "user", "content": text}, {"role": "assistant", "content": event.answer}]
                kept = journal.answered(event, started, "chat") if journal else event.to_json()
                state = {
                    "messages": messages,
                    "turns": [*state["turns"], *turns],
                    "answers": {**state["answers"], len(messages) - 1: kept},
                }
            else:
                streamed += event
                messages = [*asked, {"role": "assistant", "content": partial_answer_html(streamed)}]
                state = {**state, "messages": messages}
            yield "", messages, state
    except AssistantError as exc:
        raise gr.Error(html.escape(describe(exc), quote=False)) from exc  # the toast renders HTML


def record_feedback(state: dict[str, Any], data: gr.LikeData, journal: Journal) -> None:
    """Store a like or dislike with the question, answer and citations it was about."""
    index = data.index if isinstance(data.index, int) else data.index[0]
    answer = state["answers"].get(index)
    if answer is None:
        return
    if not isinstance(data.liked, bool):  # "" when a rating is taken back: nothing to store
        return
    try:
        journal.rate_answer("like" if data.liked else "dislike", answer)
    except AssistantError as exc:  # the database is down, locked or full: the chat goes on
        logger.error("feedback not saved: %s", exc)
        gr.Warning("Sorry, your feedback could not be saved right now.", duration=5)
        return
    gr.Info("Thanks, your feedback was saved.", duration=3)


def api_ask(
    question: str,
    history: list[dict[str, str]],
    ready: AssistantSlot,
    allow: Callable[[str], bool],
    client: str = "local",
    journal: Journal | None = None,
) -> dict[str, Any]:
    """The answer object of /api/ask, for gradio_client callers."""
    assistant = _ready(ready)
    if assistant is None:
        raise gr.Error("the assistant is still starting; try again in a few seconds")
    if not allow(client):
        raise gr.Error("too many questions in a minute; please wait a moment and ask again")
    started = time.perf_counter()
    try:
        answer = assistant.ask(question, parse_history(history))
        return journal.answered(answer, started, "api") if journal else answer.to_json()
    except AssistantError as exc:  # read by programs (gradio_client), not rendered: plain text
        raise gr.Error(describe(exc)) from exc


def _ready(ready: AssistantSlot) -> Assistant | None:
    if ready.done() and ready.exception() is None:
        return ready.result()
    gr.Warning("The assistant is still starting (loading the guides); please try again in a few seconds.")
    return None


def _client(request: gr.Request | None) -> str:
    client = getattr(request, "client", None)
    return str(getattr(client, "host", "unknown"))


ADMIN_HELP = (
    "Manage the guides and see what users asked that they do not answer. Enter the admin token "
    "(`ASSISTANT_ADMIN_TOKEN`), then load the guides. Questions keep being answered while the index updates; "
    "after each change the check questions are asked again and any that lost their guide are listed."
)
DOCUMENT_COLUMNS = ["source", "title", "chunks", "updated"]


def _admin(ready: AssistantSlot, token: str) -> Assistant:
    assistant = _ready(ready)
    if assistant is None:
        raise gr.Error("The assistant is still starting; try again in a few seconds.")
    status = token_status(assistant.settings, f"Bearer {token or ''}")
    if status == 404:
        raise gr.Error("Admin is disabled: start the app with ASSISTANT_ADMIN_TOKEN set.")
    if status == 401:
        raise gr.Error("That admin token is not right.")
    return assistant


def admin_documents(ready: AssistantSlot, token: str) -> tuple[list[list[Any]], list[str]]:
    """The guides as table rows, and their sources (the delete choices)."""
    assistant = _admin(ready, token)
    try:
        documents = list_documents(assistant)
    except AssistantError as exc:
        raise gr.Error(describe(exc)) from exc
    rows = [[d["source"], d["title"], d["chunks"], (d["updated"] or "")[:16].replace("T", " ")] for d in documents]
    return rows, [d["source"] for d in documents]


def admin_reingest(ready: AssistantSlot, token: str, journal: Journal) -> str:
    """Re-ingest the guides folder: the summary and the check questions, as readable text."""
    assistant = _admin(ready, token)
    try:
        return report_text(after_change(assistant, journal.database, "ingest", reingest(assistant).to_json()))
    except AssistantError as exc:
        raise gr.Error(describe(exc)) from exc


def admin_upload(ready: AssistantSlot, token: str, path: str | None, journal: Journal) -> str:
    """Save an uploaded guide into the guides folder and ingest it: the summary as readable text."""
    assistant = _admin(ready, token)
    if not path:
        raise gr.Error("Choose a file first.")
    try:
        summary = upload(assistant, Path(path).name, Path(path).read_bytes()).to_json()
        return report_text(after_change(assistant, journal.database, "upload", summary))
    except AssistantError as exc:
        raise gr.Error(describe(exc)) from exc


def admin_delete(ready: AssistantSlot, token: str, source: str | None, journal: Journal) -> str:
    """Delete a guide (confirmed in the tab): the summary as readable text."""
    assistant = _admin(ready, token)
    if not source:
        raise gr.Error("Choose a guide to delete first.")
    try:
        return report_text(after_change(assistant, journal.database, "delete", delete_document(assistant, source)))
    except AssistantError as exc:
        raise gr.Error(describe(exc)) from exc


def admin_gaps(ready: AssistantSlot, token: str, journal: Journal) -> str:
    """The gaps report as HTML (every text in it escaped)."""
    assistant = _admin(ready, token)
    try:
        return gaps_html(gaps_report(assistant, journal.database))
    except AssistantError as exc:
        raise gr.Error(describe(exc)) from exc


def _admin_tab(ready: AssistantSlot, journal: Journal) -> None:
    """The Admin tab: token; guides (list, upload, re-ingest, delete with confirmation); report; gaps."""
    gr.Markdown(ADMIN_HELP)
    token = gr.Textbox(label="Admin token", type="password", elem_id="admin-token")
    load = gr.Button("Load guides", elem_id="admin-load")
    table = gr.Dataframe(
        headers=DOCUMENT_COLUMNS,
        value=[],
        interactive=False,
        label="Guides in the index",
        elem_id="admin-documents",
    )
    with gr.Row():
        choice = gr.Dropdown(choices=[], label="Guide to delete", elem_id="admin-delete-source", scale=3)
        delete = gr.Button("Delete guide…", variant="stop", elem_id="admin-delete", scale=1)
    pending = gr.State(None)  # the guide the open confirmation names: what "Yes" deletes
    with gr.Row(visible=False, elem_id="admin-confirm-row") as confirm_row:
        confirm_text = gr.Markdown()
        confirm = gr.Button("Yes, delete it", variant="stop", elem_id="admin-delete-confirm")
        cancel = gr.Button("Cancel", elem_id="admin-delete-cancel")
    guide = gr.File(label="A guide to add or replace", file_types=sorted(SUFFIXES), type="filepath")
    with gr.Row():
        upload_button = gr.Button("Upload and ingest", elem_id="admin-upload")
        reingest_button = gr.Button("Re-ingest all guides", elem_id="admin-reingest")
    report = gr.Markdown(elem_id="admin-report")
    gaps_button = gr.Button("Show the gaps report", elem_id="admin-gaps-load")
    gaps = gr.HTML(elem_id="admin-gaps")

    def refresh(t: str) -> tuple[Any, Any]:
        rows, sources = admin_documents(ready, t)
        return rows, gr.update(choices=sources, value=None)

    def ask_confirm(t: str, source: str | None) -> tuple[Any, str, str | None]:
        _admin(ready, t)  # a wrong token is said now, not after "Yes"
        if not source:
            raise gr.Error("Choose a guide to delete first.")
        text = f"Delete **{md_escape(source)}**? It leaves the answers at once; its file moves to `.trash/`."
        return gr.update(visible=True), text, source

    def confirmed(t: str, source: str | None) -> tuple[str, Any, Any, Any, None]:
        text = admin_delete(ready, t, source, journal)
        rows, sources = admin_documents(ready, t)
        return text, gr.update(visible=False), rows, gr.update(choices=sources, value=None), None

    load.click(refresh, [token], [table, choice], api_visibility="private")
    delete.click(ask_confirm, [token, choice], [confirm_row, confirm_text, pending], api_visibility="private")
    choice.change(lambda: (gr.update(visible=False), None), None, [confirm_row, pending], api_visibility="private")
    cancel.click(lambda: (gr.update(visible=False), None), None, [confirm_row, pending], api_visibility="private")
    confirm.click(confirmed, [token, pending], [report, confirm_row, table, choice, pending], api_visibility="private")
    upload_button.click(
        lambda t, f: admin_upload(ready, t, f, journal), [token, guide], report, api_visibility="private"
    ).then(refresh, [token], [table, choice], api_visibility="private")
    reingest_button.click(lambda t: admin_reingest(ready, t, journal), [token], report, api_visibility="private").then(
        refresh, [token], [table, choice], api_visibility="private"
    )
    gaps_button.click(lambda t: admin_gaps(ready, t, journal), [token], gaps, api_visibility="private")


def build_blocks(ready: AssistantSlot, journal: Journal, allow: Callable[[str], bool]) -> gr.Blocks:
    """The chat page: intro and notice, chatbot with examples and feedback, question box, clear button."""
    with gr.Blocks(title=TITLE, analytics_enabled=False) as blocks:
        state = gr.State(new_state())
        gr.HTML(HEADER)
        with gr.Tabs():
            with gr.Tab("Chat", id="chat-tab"):
                chatbot = gr.Chatbot(
                    elem_id="chat",
                    label="Conversation",
                    show_label=False,
                    render_markdown=False,
                    sanitize_html=True,
                    height="62vh",
                    layout="bubble",
                    buttons=["copy"],
                    feedback_options=("Like", "Dislike"),
                    examples=[{"text": q} for q in EXAMPLES],
                    placeholder="Ask a question, or pick an example.",
                )
                with gr.Row(equal_height=True):
                    box = gr.Textbox(
                        elem_id="question",
                        label="Your question",
                        show_label=False,
                        placeholder="Ask about the medical director role…",
                        lines=1,
                        max_lines=6,
                        scale=8,
                        autofocus=True,
                    )
                    ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=80)
                    clear = gr.Button("Clear chat", elem_id="clear", scale=1, min_width=120)
            with gr.Tab("Admin", id="admin-tab"):
                _admin_tab(ready, journal)

        def answer(question: str, state: dict[str, Any], request: gr.Request) -> Iterator[Any]:
            yield from respond(question, state, ready, allow, _client(request), journal)

        def pick_example(data: gr.SelectData) -> str:
            value = data.value
            return str(value.get("text", "")) if isinstance(value, dict) else str(value)

        def like(state: dict[str, Any], data: gr.LikeData) -> None:
            record_feedback(state, data, journal)

        outputs = [box, chatbot, state]
        gr.on(
            [box.submit, ask.click],
            answer,
            [box, state],
            outputs,
            api_visibility="private",
            show_progress="hidden",
        )
        chatbot.example_select(pick_example, None, box, api_visibility="private").then(
            answer, [box, state], outputs, api_visibility="private", show_progress="hidden"
        )
        chatbot.like(like, [state], None, api_visibility="private")
        clear.click(lambda: ("", [], new_state()), None, outputs, api_visibility="private")
        chatbot.clear(new_state, None, state, api_visibility="private")

        def ask_api(
            question: str, history: list[dict[str, str]] | None = None, request: gr.Request | None = None
        ) -> dict[str, Any]:
            """Answer a question (with an optional [{"role", "content"}] history): the /api/ask object."""
            return api_ask(question, history or [], ready, allow, _client(request), journal)

        gr.api(ask_api, api_name="ask")
    blocks.queue(default_concurrency_limit=4)
    return blocks


async def serve_mounted(app: FastAPI, blocks: gr.Blocks) -> None:
    """Mount the chat on an app that is already serving, start Gradio's queue, then run until cancelled.

    The entry point serves the API first and calls this from the server's event loop once
    gradio is imported (about 4 s), so /healthz and /api/ask do not wait for the UI. It does
    what `gr.mount_gradio_app`'s lifespan would have done at start-up. Until then `/` is the
    API's starting page, which `app.state.ui_ready` retires.
    """
    mount(app, blocks)
    mounted = app.router.routes[-1]  # the Mount that mount_gradio_app appended
    assert isinstance(mounted, Mount) and isinstance(mounted.app, FastAPI)
    gradio_app = mounted.app
    async with gradio_app.router.lifespan_context(gradio_app):
        blocks.run_startup_events()
        await blocks.run_extra_startup_events()
        app.state.ui_ready = True
        app.router.routes[:] = [r for r in app.router.routes if getattr(r, "name", "") != "starting"]
        logger.info("the chat is mounted at /")
        await asyncio.Event().wait()  # the server cancels this task when it stops


def mount(app: FastAPI, blocks: gr.Blocks) -> FastAPI:
    """Mount the chat at `/` with system fonts only, so the page needs nothing from outside."""
    theme = gr.themes.Default(
        primary_hue="teal",
        font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"],
        font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"],
    )
    return gr.mount_gradio_app(
        app,
        blocks,
        path="/",
        theme=theme,
        css=CSS,
        footer_links=["api"],
        run_history=False,
        ssr_mode=False,
        mcp_server=False,
        enable_monitoring=False,
        pwa=False,
    )
