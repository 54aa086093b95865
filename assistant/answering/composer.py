"""The extractive composer: a cited answer from the best sentences of the passages.

The composer needs no language model. It scores each sentence of the retrieved passages by
cosine similarity to the question (sentence vectors were pooled at ingest from the same
encoder pass as their chunk), adds a little for shared keywords and passage rank, keeps the
best few that say different things, and writes them as a lead sentence plus bullet points,
each followed by its `[n]` citation marker.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant.answering.citations import Answer, Citation
from assistant.answering.gate import OUT_OF_SCOPE, refuse
from assistant.answering.questions import asks_for_figure, compared_subjects, definition_subject
from assistant.answering.text import STOPWORDS, clean_sentence, key_terms, planted_instructions
from assistant.index.store import StoredChunk
from assistant.retrieval.retriever import Passage

NO_FIGURE = "The guides don't give that figure. What they do say:"
# Sentences that only point elsewhere ("See the guide on residency.") say nothing on their own.
_SIGNPOST = re.compile(
    r"\b(this guide|the guides? on|see the guide|other guides?|guide (covers|describes))\b", re.IGNORECASE
)


@dataclass(frozen=True)
class ComposerConfig:
    """How many sentences, and how they are picked."""

    max_sentences: int = 5
    min_words: int = 6
    relative_floor: float = 0.72  # keep sentences scoring at least this share of the best
    redundancy: float = 0.95  # skip a sentence this similar to one kept (pooled vectors of one chunk are close)
    overlap_redundancy: float = 0.7  # ... or sharing this share of its words with one kept
    keyword_bonus: float = 0.15
    rank_bonus: float = 0.05
    context_weight: float = 0.3  # how much the whole passage's similarity counts for its sentences
    whole_list: int = 10  # a list of at most this many items is quoted whole when one item is chosen


def lead_passage(
    question: str, query_vector: np.ndarray, passages: list[Passage], config: ComposerConfig | None = None
) -> int | None:
    """The index of the passage holding the composer's best sentence (None: nothing quotable)."""
    cfg = config or ComposerConfig()
    candidates = [c for c in _candidates(passages, query_vector, key_terms(question), cfg) if c.selectable]
    return max(candidates, key=lambda c: c.score).passage if candidates else None


@dataclass(frozen=True)
class _Candidate:
    passage: int
    intro: str  # for a list item: the sentence that introduces the list, ending with ":"
    text: str  # the sentence, or the list item without its closing punctuation
    quote: str  # the words as they stand in the guide, for the citation snippet
    score: float
    vector: np.ndarray
    order: int = 0  # where the sentence stands in its passage
    item: bool = False  # a list item in the guide
    selectable: bool = True  # False: too short to be chosen alone ("physics;"), quoted with its list
    after: int = -1  # where the sentence before it in the passage stands (-1: none)
    section: str = ""  # the guide section the sentence is in (a chunk can hold the start of the next)


def _candidates(
    passages: list[Passage], query_vector: np.ndarray, terms: set[str], cfg: ComposerConfig
) -> list[_Candidate]:
    """Every quotable sentence of the passages with its score against the question."""
    out = []
    for rank, passage in enumerate(passages):
        chunk = passage.chunk
        intro = ""
        continues = False  # the item before ended with ";": the list runs on through its last item
        planted = planted_instructions(chunk.text)
        headings = [(m.start(), m.group(1)) for m in _HEADING.finditer(chunk.text, chunk.body_start)]
        last = -1  # where the span before this one starts
        for (begin, end), vector in zip(chunk.spans, chunk.sentence_vectors):
            before, last = last, begin
            if any(begin < stop and end > start for start, stop in planted):
                continue
            raw = chunk.text[begin:end]
            quote = clean_sentence(raw)
            if _SIGNPOST.search(quote):
                continue
            is_item = bool(_LIST_ITEM.match(raw))
            if not is_item:
                intro = quote[:-1] + ":" if quote[-1:] in ".:" else ""
                continues = False
                if quote.endswith(":"):
                    continue
            selectable = True
            fragment = is_item and (not quote[:1].isupper() or quote.endswith((";", ",")) or continues)
            continues = is_item and quote.endswith((";", ","))
            if fragment:
                if len(quote.split()) < 3:
                    if not intro:
                        continue
                    selectable = False
                lead, text = intro, quote.rstrip(";,.")
                if not lead:
                    text = text[:1].upper() + text[1:]
            elif len(quote.split()) >= (3 if is_item else cfg.min_words) and not quote.startswith("#"):
                # A labelled item ("General surgery: usually five years.") says enough in few words;
                # a bare "Yes," or "No," answered the guide's own question, which may not be this one.
                lead, text = "", _YES_NO.sub("", quote)
                text = text[:1].upper() + text[1:]
            else:
                continue
            overlap = len(terms & key_terms(f"{lead} {text}")) / len(terms) if terms else 0.0
            section = next((title for at, title in reversed(headings) if at < begin), chunk.section)
            # The passage's similarity speaks for its own section, not for the start of the next
            # one that the chunk runs into ("Where medical directors work" after "Other titles").
            context = passage.similarity if section == chunk.section else 0.0
            score = (
                float(vector @ query_vector)
                + cfg.context_weight * context
                + cfg.keyword_bonus * overlap
                + cfg.rank_bonus / (rank + 1)
            )
            out.append(
                _Candidate(
                    passage=rank,
                    intro=lead,
                    text=text,
                    quote=quote.rstrip(";,"),
                    score=score,
                    vector=vector,
                    order=begin,
                    item=is_item,
                    selectable=selectable,
                    after=before,
                    section=section,
                )
            )
    return out


def compose_extractive(
    question: str,
    query_vector: np.ndarray,
    passages: list[Passage],
    config: ComposerConfig | None = None,
    standalone: str = "",
) -> Answer:
    """Build a cited answer from the best sentences of the passages.

    Passages from a `not-covered` guide are quoted whole when they are all there is (the
    service narrowed to one, see `focus_not_covered`), and never mixed into other answers,
    where a sentence such as "They give no salary figures" would read as part of them.
    """
    cfg = config or ComposerConfig()
    if passages and all(p.chunk.not_covered for p in passages):
        text = _whole_section(passages[0].chunk)
        if not text:
            return refuse(question, OUT_OF_SCOPE, standalone)
        section = passages[0].chunk
        cited = Citation(1, section.source, section.title, section.section, _snippet([text]), passages[0].similarity)
        return Answer(question, f"{text} [1]", refused=False, citations=(cited,), standalone_question=standalone)
    every = _candidates(passages, query_vector, key_terms(standalone or question), cfg)
    candidates = [c for c in every if not passages[c.passage].chunk.not_covered]
    if not candidates:
        return refuse(question, OUT_OF_SCOPE, standalone)
    pool = [c for c in candidates if c.selectable]
    naming, definition = _on_subject(pool, definition_subject(standalone or question))
    chosen = _both_sides(_best_sentences(naming or pool, cfg), pool, compared_subjects(standalone or question), cfg)
    # A sentence that leans on the one before it ("In that case it may...") cannot lead.
    lead = definition or next((c for c in chosen if not _LEANS_BACK.match(c.text)), chosen[0])
    chosen = _whole_lists([lead, *(c for c in chosen if c is not lead)][: cfg.max_sentences], candidates, cfg)
    chosen = _not_dangling(chosen)
    # One number per guide section: two chunks of one section are one source to the reader, and
    # a sentence from the next section that a chunk runs into is cited as that section.
    numbers: dict[tuple[str, str], int] = {}
    for cand in chosen:
        numbers.setdefault(_place(cand, passages), len(numbers) + 1)
    # The best sentence leads; the rest follow source by source, each in the guide's order. When
    # the best is one step of a list whose other steps come too, its source reads in order.
    steps = sum(c.item and c.passage == chosen[0].passage for c in chosen)
    first = 0 if chosen[0].item and steps >= 3 else 1
    chosen = chosen[:first] + sorted(
        chosen[first:], key=lambda c: (numbers[_place(c, passages)], passages[c.passage].chunk.position, c.order)
    )
    lines = _lines(chosen, [numbers[_place(c, passages)] for c in chosen])
    text = lines[0] if len(lines) == 1 else lines[0] + "\n\n" + "\n".join(f"- {line}" for line in lines[1:])
    if asks_for_figure(standalone or question) and not any(_FIGURE.search(f"{c.intro} {c.text}") for c in chosen):
        # "How many days does a nursing home have to submit its plan of correction?" was answered
        # with what a plan of correction is, which reads as if the deadline were in it.
        text = f"{NO_FIGURE}\n\n{text}"
    citations = []
    for place, number in numbers.items():
        quoted = [c for c in chosen if _place(c, passages) == place]
        citations.append(
            Citation(
                id=number,
                source=place[0],
                title=passages[quoted[0].passage].chunk.title,
                section=place[1],
                snippet=_snippet([c.quote for c in quoted]),
                score=max(passages[c.passage].similarity for c in quoted),
            )
        )
    return Answer(question, text, refused=False, citations=tuple(citations), standalone_question=standalone)


def _place(cand: _Candidate, passages: list[Passage]) -> tuple[str, str]:
    """The guide and section a sentence is cited as."""
    return passages[cand.passage].chunk.source, cand.section


def _not_dangling(chosen: list[_Candidate]) -> list[_Candidate]:
    """Without sentences that lean on one left out: "It is sponsored by the FSMB ..." after the
    glossary's USMLE entry would read as said of the sentence quoted before it (the MCAT)."""
    quoted = {(c.passage, c.order) for c in chosen}
    kept = [c for c in chosen[1:] if not _LEANS_BACK.match(c.text) or (c.passage, c.after) in quoted]
    return chosen[:1] + kept


def _whole_section(chunk: StoredChunk) -> str:
    """A chunk's body as one paragraph: every sentence and list item in order, Markdown removed,
    planted instructions left out."""
    planted = planted_instructions(chunk.text)
    parts = []
    for begin, end in chunk.spans:
        if begin >= chunk.body_start and not any(begin < stop and end > start for start, stop in planted):
            quote = clean_sentence(chunk.text[begin:end])
            if quote and not quote.startswith("#"):
                parts.append(quote)
    return " ".join(parts)


def _best_sentences(candidates: list[_Candidate], cfg: ComposerConfig) -> list[_Candidate]:
    """The highest-scoring sentences, near the best and not repeating one another."""
    ranked = sorted(candidates, key=lambda c: -c.score)
    best = ranked[0].score
    chosen: list[_Candidate] = []
    for cand in ranked:
        if len(chosen) == cfg.max_sentences or cand.score < best * cfg.relative_floor:
            break
        if any(_redundant(cand, c, cfg) for c in chosen):
            continue
        chosen.append(cand)
    return chosen


def _whole_lists(chosen: list[_Candidate], candidates: list[_Candidate], cfg: ComposerConfig) -> list[_Candidate]:
    """Every item of a chosen item's list, when the list is short.

    "Typical coursework includes: biochemistry" reads as if biochemistry were all of it; a
    list introduced by a sentence is quoted whole (up to `whole_list` items), in the guide's order.
    """
    out = list(chosen)
    quoted = {(c.passage, c.order) for c in chosen}
    for cand in chosen:
        if not (cand.item and cand.intro):
            continue
        siblings = [c for c in candidates if c.item and c.passage == cand.passage and c.intro == cand.intro]
        if len(siblings) <= cfg.whole_list:
            out += [c for c in siblings if (c.passage, c.order) not in quoted]
            quoted |= {(c.passage, c.order) for c in siblings}
    return out


def _lines(chosen: list[_Candidate], numbers: list[int]) -> list[str]:
    """One line per point, ending with its citation number (`numbers`, one per chosen sentence);
    items of one list are joined after the sentence that introduces them, in the guide's order
    (steps such as Plan-Do-Study-Act must not come out shuffled)."""
    groups: dict[tuple[int, str], list[_Candidate]] = {}
    order: list[tuple[int, str]] = []
    number_of: dict[tuple[int, str], int] = {}
    for cand, number in zip(chosen, numbers):
        key = (cand.passage, cand.intro) if cand.intro else (cand.passage, f"\x00{len(order)}")
        if key not in groups:
            groups[key] = []
            order.append(key)
            number_of[key] = number
        groups[key].append(cand)
    lines = []
    for passage, intro in order:
        items = [c.text for c in sorted(groups[(passage, intro)], key=lambda c: c.order)]
        body = "; ".join(items) if not intro.startswith("\x00") else items[0]
        text = f"{intro} {body}" if not intro.startswith("\x00") else body
        lines.append(f"{_sentence_end(text)} [{number_of[(passage, intro)]}]")
    return lines


def _redundant(a: _Candidate, b: _Candidate, cfg: ComposerConfig) -> bool:
    if float(a.vector @ b.vector) > cfg.redundancy:
        return True
    wa, wb = key_terms(a.text), key_terms(b.text)
    return bool(wa and wb) and len(wa & wb) / min(len(wa), len(wb)) >= cfg.overlap_redundancy


# A number in an answer: digits, or words that count or measure time ("three years", "twice a year").
_FIGURE = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|hundred|thousand|half|"
    r"quarter|percent|once|twice|annual|annually|yearly|monthly|weekly|daily|several|few)\b",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^#{2,6}\s+(.+?)\s*$", re.MULTILINE)  # a later section inside a chunk
_WORDS = re.compile(r"[A-Za-z0-9]+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_YES_NO = re.compile(r"^(?:yes|no)[,.;]\s+(?=\w)", re.IGNORECASE)
_LEANS_BACK = re.compile(
    r"^(?:it|its|they|their|them|such|he|she|this is|these are|those are|that is|in that case|in this case"
    r"|for example|for instance|however|otherwise)\b",
    re.IGNORECASE,
)


def _sentence_end(text: str) -> str:
    return text if text[-1:] in ".!?" else text + "."


def _snippet(sentences: list[str], limit: int = 320) -> str:
    text = " ".join(sentences)
    return text if len(text) <= limit else text[: limit - 1].rsplit(" ", 1)[0] + "…"


def _namer(subject: str) -> Callable[[str], bool] | None:
    """A test for "this text names the subject": each of its words, whole (a plural allowed);
    an acronym with its capitals ("DO", not "do"). None when no word is left to look for."""
    words = [w for w in _WORDS.findall(subject) if w.lower() not in STOPWORDS or (w.isupper() and len(w) > 1)]
    if not words:
        return None
    patterns = [
        re.compile(rf"\b{re.escape(w)}s?\b")
        if w.isupper() and len(w) > 1
        else re.compile(rf"\b{re.escape(w)}(?:s|es)?\b", re.IGNORECASE)
        for w in words
    ]
    return lambda text: all(p.search(text) for p in patterns)


def _both_sides(
    chosen: list[_Candidate], pool: list[_Candidate], sides: tuple[str, str] | None, cfg: ComposerConfig
) -> list[_Candidate]:
    """For "X vs Y": an answer about both, when the passages name both.

    "What's the difference between an MD and a DO?" was led by a glossary line about job titles
    that stood next to both. Only sentences that name X or Y are kept, and the best one naming
    the side left out is added.
    """
    if sides is None:
        return chosen
    first, second = _namer(sides[0]), _namer(sides[1])
    if first is None or second is None:
        return chosen
    named = [[c for c in pool if names(f"{c.intro} {c.text}")] for names in (first, second)]
    if not named[0] or not named[1]:
        return chosen
    either = {id(c) for side in named for c in side}
    kept = [c for c in chosen if id(c) in either] or _best_sentences([*named[0], *named[1]], cfg)
    for side in named:
        if not any(c in side for c in kept):
            kept = [*kept[: cfg.max_sentences - 1], max(side, key=lambda c: c.score)]
    return kept


def _on_subject(pool: list[_Candidate], subject: str) -> tuple[list[_Candidate], _Candidate | None]:
    """For "what is X?": the sentences that name X, and the best one that defines it.

    The answer is made of the sentences that name X when there are any: the sentences closest
    in meaning may be about something else (OPPE under "what is utilization review?") and would
    read as X's definition. A sentence of the form "X is ...", "X: ..." or "X stands for ..."
    leads, as a glossary would.
    """
    names = _namer(subject)
    if names is None:
        return [], None
    naming = [c for c in pool if names(f"{c.intro} {c.text}")]
    defines = re.compile(
        rf"^(?:(?:a|an|the)\s+)?{re.escape(subject)}(?:s|es)?\s*(?:\([^)]*\)\s*)?"
        r"(?::|is\b|are\b|means\b|stands\s+for\b|refers\s+to\b)",
        re.IGNORECASE,
    )
    definitions = [c for c in naming if defines.match(c.text)]
    return naming, max(definitions, key=lambda c: c.score, default=None)
