"""Rendering: answers, questions and guides as safe HTML; the cited passage found by its words."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.answering.citations import Answer, Citation
from assistant.web.rendering import (
    answer_html,
    document_html,
    partial_answer_html,
    passage_lines,
    source_link,
    source_page,
    user_html,
)

CITATION = Citation(
    1, "guides/faq one.md", "FAQ <b>bold</b>", "How long?", "Residency lasts at least three years.", 0.6789
)
HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[click](javascript:alert(1))",
    "<a href='javascript:alert(1)'>x</a>",
    '<svg onload="alert(1)"></svg>',
    "![x](http://example.org/tracker.png)",
    '<iframe src="https://example.org"></iframe>',
    "[1]: javascript:alert(1)",
]
FORBIDDEN_TAGS = {"script", "img", "svg", "iframe", "object", "embed", "style", "link", "meta", "form", "base"}


class Tags(HTMLParser):
    """The real tags and attributes of an HTML fragment (escaped text does not count)."""

    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.feed(fragment)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, attrs))


def dangers(fragment: str) -> list[str]:
    """Anything in the fragment that could run script or fetch from elsewhere."""
    problems = []
    for tag, attrs in Tags(fragment).found:
        if tag in FORBIDDEN_TAGS:
            problems.append(f"<{tag}>")
        for name, value in attrs:
            if name.startswith("on") or name in {"src", "style", "srcdoc", "formaction"}:
                problems.append(f"{tag} {name}=")
            if name == "href" and (value or "").strip().lower().startswith(("javascript:", "data:", "vbscript:")):
                problems.append(f"{tag} href={value}")
    return problems


def test_markers_become_links_to_the_highlighted_source() -> None:
    html = answer_html(Answer("q", "Residency lasts three years. [1] Unknown [7].", False, (CITATION,)))
    link = re.search(r'<a class="cite" href="([^"]+)"[^>]*>\[1\]</a>', html)
    assert link is not None
    assert link.group(1).startswith("/sources/guides/faq%20one.md?highlight=Residency+lasts")
    assert link.group(1).endswith("#passage")
    assert '<sup class="marker">[7]</sup>' in html  # a marker with no citation stays plain text


def test_the_sources_panel_lists_title_section_snippet_score_and_the_rewritten_question() -> None:
    answer = Answer("how long?", "Three years. [1]", False, (CITATION,), standalone_question="how long (residency)?")
    html = answer_html(answer)
    assert "<details" in html and "Sources (1)" in html
    assert "FAQ &lt;b&gt;bold&lt;/b&gt;" in html and "How long?" in html and "score 0.68" in html
    assert "Residency lasts at least three years." in html
    assert "Searched for: <q>how long (residency)?</q>" in html


def test_a_refusal_has_no_sources_panel() -> None:
    html = answer_html(Answer("dose?", "I can't give clinical advice.", True))
    assert 'class="answer refused"' in html and "<details" not in html


def test_hostile_text_is_escaped_everywhere() -> None:
    for text in HOSTILE:
        hostile_citation = Citation(1, "x.md", text, text, text, 0.5)
        outputs = [
            answer_html(Answer(text, text + " [1]", False, (hostile_citation,), standalone_question=text)),
            partial_answer_html(text),
            user_html(text),
            document_html(text, text)[0],
            source_page("x.md", text, text, text).split("</head>")[1],  # the page's own head is ours
        ]
        for output in outputs:
            assert dangers(output) == [], (text, output)
        assert "&lt;" in outputs[2] or "<" not in text  # the question is shown, escaped


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet=st.sampled_from(list("<>\"'=/ ()[]:!#*-`\nabcjavscriptonerrorimgsvghref0123456789")), max_size=200)
)
def test_no_markup_survives_any_mix_of_characters(text: str) -> None:
    for output in (answer_html(Answer(text, text, False)), user_html(text), document_html(text, text)[0]):
        assert dangers(output) == []


def test_the_passage_is_found_by_words_despite_markup_and_line_breaks() -> None:
    text = "# Title\n\nIntro line.\n\nResidency **lasts** at\nleast three years, and the first\nyear is the internship.\n\nOther."
    assert passage_lines(text, "Residency lasts at least three years, and the first year is the internship.") == (4, 6)
    assert passage_lines(text, "…least three years, and the first year…") == (5, 6)
    assert passage_lines(text, "nothing like this is in the guide at all") is None


def test_the_cited_blocks_are_marked_and_the_first_is_the_anchor() -> None:
    text = "# Guide\n\nFirst paragraph here.\n\n- item one about residency training length\n- item two\n"
    html, found = document_html(text, "item one about residency training length")
    assert found
    assert '<li class="cited" id="passage">item one about residency training length</li>' in html
    html, found = document_html(text, "not in the text whatsoever, really")
    assert not found and "cited" not in html


def test_source_links_quote_paths_and_questions_are_shown_literally() -> None:
    assert source_link("a b/c#d.md") == "/sources/a%20b/c%23d.md"
    assert user_html("**not bold**\nline two") == '<p class="question">**not bold**<br>line two</p>'
