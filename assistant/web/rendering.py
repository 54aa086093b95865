"""Rendering: answers, questions and guides as safe HTML for the chat and the source viewer.

Every piece of text passes two gates before it reaches a page: markdown-it with raw HTML
off (document and user text is escaped; `javascript:` links are refused; images are not
rendered, so a guide cannot make the browser fetch anything) and nh3 with an allow-list of
tags, attributes and URL schemes. Citation markers `[n]` become links to the source viewer,
which highlights the cited passage by finding the snippet's words in the document.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote, urlencode

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

from assistant.answering.citations import MARKER, Answer, Citation

MAX_HIGHLIGHT_CHARS = 2000  # longer ?highlight= values are cut: matching stays cheap

_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "details",
    "div",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "li",
    "ol",
    "p",
    "pre",
    "q",
    "section",
    "small",
    "span",
    "strong",
    "summary",
    "sup",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
_ATTRIBUTES = {
    "*": {"class", "id", "title"},
    "div": {"class", "data-reason"},
    "a": {"href", "target"},
    "td": {"style"},
    "th": {"style"},
}
_SCHEMES = {"http", "https", "mailto"}
_WORD = re.compile(r"\w+")
_BLOCK_OPENERS = {"paragraph_open", "heading_open", "blockquote_open", "table_open", "list_item_open"}
_BLOCK_LEAVES = {"fence", "code_block", "hr"}


def _markdown() -> MarkdownIt:
    # "reference" off: a guide cannot turn our [n] markers into links of its own.
    return MarkdownIt("commonmark", {"html": False}).enable("table").disable(["reference", "image"])


_MD = _markdown()


def sanitize(fragment: str) -> str:
    """The last gate: only allow-listed tags, attributes and URL schemes survive."""
    return nh3.clean(
        fragment,
        tags=_TAGS,
        attributes=_ATTRIBUTES,
        url_schemes=_SCHEMES,
        link_rel="noopener noreferrer",
        filter_style_properties={"text-align"},
    )


def source_link(source: str, snippet: str = "") -> str:
    """The source viewer's URL for a document, highlighting a snippet when given."""
    url = "/sources/" + quote(source, safe="/")
    if snippet:
        url += "?" + urlencode({"highlight": snippet[:MAX_HIGHLIGHT_CHARS]}) + "#passage"
    return url


def user_html(text: str) -> str:
    """A question as the user typed it: shown literally, never interpreted."""
    return sanitize('<p class="question">' + html.escape(text).replace("\n", "<br>") + "</p>")


def partial_answer_html(text: str) -> str:
    """Answer text still streaming in: Markdown rendered, markers shown as plain superscripts."""
    return sanitize('<div class="answer streaming">' + _compact(_render_markdown(text, {})) + "</div>")


def answer_html(answer: Answer) -> str:
    """A finished answer: text with `[n]` links, any notice, and a collapsible sources panel."""
    links = {c.id: _citation_link(c) for c in answer.citations}
    parts = [
        f'<div class="answer refused" data-reason="{html.escape(answer.reason or "")}">'
        if answer.refused
        else '<div class="answer">',
        _compact(_render_markdown(answer.answer, links)),
    ]
    if answer.notice:
        parts.append(f'<p class="notice">{html.escape(answer.notice)}</p>')
    parts.append(sources_panel_html(answer))
    parts.append("</div>")
    return sanitize("".join(parts))


def sources_panel_html(answer: Answer) -> str:
    """The `<details>` list under an answer: title, section, snippet, score, link; the rewritten query."""
    rewritten = answer.standalone_question and answer.standalone_question != answer.question
    if not answer.citations and not rewritten:
        return ""
    count = len(answer.citations)
    label = f"Sources ({count})" if count else "How the question was searched"
    items = [f'<details class="sources"><summary>{label}</summary>']
    if rewritten:
        items.append(
            f'<p class="rewritten">Searched for: <q>{html.escape(answer.standalone_question)}</q>'
            " (your follow-up, completed from the conversation)</p>"
        )
    if answer.citations:
        items.append('<ul class="source-list">')
        items.extend(_source_item(c) for c in answer.citations)
        items.append("</ul>")
    items.append("</details>")
    return "".join(items)


def _source_item(citation: Citation) -> str:
    href = html.escape(source_link(citation.source, citation.snippet))
    section = f' <span class="section">— {html.escape(citation.section)}</span>' if citation.section else ""
    return (
        f'<li class="source"><a href="{href}" target="_blank">'
        f"[{citation.id}] {html.escape(citation.title or citation.source)}</a>{section}"
        f' <span class="score" title="relevance score">score {citation.score:.2f}</span>'
        f'<blockquote class="snippet">{html.escape(citation.snippet)}</blockquote></li>'
    )


def _citation_link(citation: Citation) -> str:
    href = html.escape(source_link(citation.source, citation.snippet))
    label = html.escape(" — ".join(p for p in (citation.title, citation.section) if p))
    return f'<a class="cite" href="{href}" target="_blank" title="{label}">[{citation.id}]</a>'


def _render_markdown(text: str, links: dict[int, str]) -> str:
    """Markdown to HTML with raw HTML escaped; `[n]` markers become `links[n]` (or plain superscripts)."""
    tokens = _MD.parse(text)
    for token in tokens:
        if token.type == "inline" and token.children:
            token.children = _with_markers(token.children, links)
    rendered = _MD.renderer.render(tokens, _MD.options, {})
    return str(rendered)


def _compact(fragment: str) -> str:
    """Drop the newlines between block tags: the chat shows text with white-space preserved."""
    return re.sub(r">\n+<", "><", fragment)


def _with_markers(children: list[Token], links: dict[int, str]) -> list[Token]:
    result: list[Token] = []
    inside_link = 0
    for child in children:
        inside_link += {"link_open": 1, "link_close": -1}.get(child.type, 0)
        if child.type != "text" or inside_link or not MARKER.search(child.content):
            result.append(child)
            continue
        position = 0
        for match in MARKER.finditer(child.content):
            result.append(_text_token(child.content[position : match.start()]))
            number = int(match.group(1))
            markup = links.get(number, f'<sup class="marker">[{number}]</sup>')
            result.append(_html_token(markup))
            position = match.end()
        result.append(_text_token(child.content[position:]))
    return result


def _text_token(content: str) -> Token:
    token = Token("text", "", 0)
    token.content = content
    return token


def _html_token(markup: str) -> Token:
    # Markup we built ourselves from escaped values; nh3 still checks it afterwards.
    token = Token("html_inline", "", 0)
    token.content = markup
    return token


def document_html(text: str, highlight: str = "") -> tuple[str, bool]:
    """A whole guide as HTML; the blocks holding `highlight` get class "cited", the first id "passage".

    Returns (html, found) where found says whether the passage was located.
    """
    tokens = _MD.parse(text)
    lines = passage_lines(text, highlight) if highlight else None
    found = False
    if lines is not None:
        found = _mark_blocks(tokens, lines)
    return sanitize(str(_MD.renderer.render(tokens, _MD.options, {}))), found


def _mark_blocks(tokens: list[Token], lines: tuple[int, int]) -> bool:
    first, last = lines
    marked: list[Token] = []
    list_items: list[Token] = []
    for token in tokens:
        if token.type == "list_item_open":
            list_items.append(token)
        elif token.type == "list_item_close" and list_items:
            list_items.pop()
        if token.map is None or token.type not in (_BLOCK_OPENERS | _BLOCK_LEAVES) - {"list_item_open"}:
            continue
        start, end = token.map  # lines [start, end)
        if start <= last and end > first:
            # Paragraphs of tight lists are not rendered as <p>: mark their list item instead.
            target = list_items[-1] if token.hidden and list_items else token
            if target not in marked:
                target.attrJoin("class", "cited")
                marked.append(target)
    if marked:
        marked[0].attrSet("id", "passage")
    return bool(marked)


def passage_lines(text: str, snippet: str) -> tuple[int, int] | None:
    """The (first, last) 0-based lines of `text` holding the snippet's words, or None.

    Matching is on words, not characters, so Markdown markup, line breaks and an
    ellipsis in the snippet do not get in the way.
    """
    wanted = [w.lower() for w in _WORD.findall(snippet[:MAX_HIGHLIGHT_CHARS])]
    if not wanted:
        return None
    words = [(m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]
    plain = [w for w, _, _ in words]
    window = min(6, len(wanted))
    starts: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(plain) - window + 1):
        starts.setdefault(tuple(plain[i : i + window]), []).append(i)
    for offset in range(len(wanted) - window + 1):
        hits = starts.get(tuple(wanted[offset : offset + window]))
        if hits:
            begin = max(0, hits[0] - offset)
            end = min(len(words) - 1, begin + len(wanted) - 1)
            return text.count("\n", 0, words[begin][1]), text.count("\n", 0, words[end][2])
    return None


def source_page(source: str, title: str, text: str, highlight: str = "") -> str:
    """The complete source-viewer page for one document."""
    body, found = document_html(text, highlight)
    if found:
        note = '<p class="note" role="note">The highlighted passage is the one the answer cited.</p>'
    elif highlight:
        note = '<p class="note" role="note">The cited passage was not found; the guide may have changed since.</p>'
    else:
        note = ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title or source)} · Medical Director Onboarding Assistant</title>"
        '<link rel="stylesheet" href="/web/source.css"><script src="/web/source.js" defer></script></head>'
        '<body><header class="bar"><a href="/">← Ask the assistant</a>'
        f'<span class="path">{html.escape(source)}</span></header>'
        f'<main>{note}<article class="guide">{body}</article></main></body></html>'
    )


def gaps_html(report: dict[str, Any]) -> str:
    """The gaps report as an HTML table for the Admin tab; every text in it is escaped."""
    esc = html.escape
    if not report["groups"]:
        return f'<p class="gaps-empty">No gaps: no question was declined or rated 👎 in the last {report["days"]} days.</p>'
    rows = []
    for group in report["groups"]:
        near = group["nearest"]
        where = (
            f'<a href="{esc(source_link(near["source"]))}" target="_blank">{esc(near["source"])}</a>'
            f" › {esc(near['section'])}"
            if near
            else "none"
        )
        examples = "".join(f"<li>{esc(example)}</li>" for example in group["examples"])
        rows.append(
            f'<tr class="gap"><td class="count">{group["count"]}</td>'
            f"<td>{group['declined']} declined, {group['disliked']} 👎</td>"
            f"<td><ul>{examples}</ul></td><td>{esc(group['first'][:10])} – {esc(group['last'][:10])}</td>"
            f"<td>{where}</td></tr>"
        )
    head = "<tr><th>Questions</th><th>Why</th><th>Examples</th><th>Dates</th><th>Nearest guide section</th></tr>"
    summary = f"<p>{report['questions']} questions declined or rated 👎 in the last {report['days']} days.</p>"
    return f'{summary}<table class="gaps">{head}{"".join(rows)}</table>'
