"""The extractive composer: a cited answer from the best sentences of the passages.

The composer needs no language model. The ranker (`ranker.py`, weights learned from data)
gives each sentence of the retrieved passages its chance of being the one that answers; the
composer leads with the best, keeps the few near it that say something new, and writes them as
a lead sentence plus bullet points, each followed by its `[n]` citation marker.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from assistant.answering.citations import Answer, Citation
from assistant.answering.gate import (
    NOT_COVERED_REASON,
    OUT_OF_SCOPE,
    OUT_OF_SCOPE_REASON,
    WEAK_EVIDENCE_REASON,
    refuse,
)
from assistant.answering.questions import asks_for_figure, compared_subjects, definition_subject
from assistant.answering.ranker import QuestionTerms, Ranker, SentenceView, features, shipped_ranker
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
    relative_floor: float = 0.01  # keep sentences whose chance of answering is at least this share of the best's
    max_words: int = 75  # add no sentence that would take the answer past this many words
    redundancy: float = 0.95  # skip a sentence this similar to one kept (pooled vectors of one chunk are close)
    overlap_redundancy: float = 0.7  # ... or sharing this share of its words with one kept
    repeated_run: int = 8  # ... or repeating this many words in a row of one kept (a clause two guides share)
    whole_list: int = 10  # a list of at most this many items is quoted whole when one item is chosen


def lead_passage(
    question: str,
    query_vector: np.ndarray,
    passages: list[Passage],
    config: ComposerConfig | None = None,
    terms: QuestionTerms | None = None,
) -> int | None:
    """The index of the passage holding the composer's best sentence (None: nothing quotable)."""
    order = rank_passages(question, query_vector, passages, config, terms)
    return order[0] if order else None


def rank_passages(
    question: str,
    query_vector: np.ndarray,
    passages: list[Passage],
    config: ComposerConfig | None = None,
    terms: QuestionTerms | None = None,
) -> list[int]:
    """Indexes of the passages with a quotable sentence, likeliest answer first (by their best sentence)."""
    best: dict[int, float] = {}
    for c in _candidates(question, passages, query_vector, terms, config or ComposerConfig()):
        if c.selectable:
            best[c.passage] = max(best.get(c.passage, 0.0), c.score)
    return sorted(best, key=lambda k: (-best[k], k))


def plain_terms(question: str) -> QuestionTerms:
    """Question terms without an index's idf (every word weighs one): for callers without a retriever."""
    return QuestionTerms({t: 1.0 for t in key_terms(question)}, lambda texts: [key_terms(t) for t in texts])


def sentence_table(
    question: str, query_vector: np.ndarray, passages: list[Passage], terms: QuestionTerms
) -> list[tuple[str, np.ndarray]]:
    """Every sentence the composer could lead with and its ranker features (to fit the ranker)."""
    cands = [c for c in _candidates(question, passages, query_vector, terms, ComposerConfig()) if c.selectable]
    rows = features(question, terms, [c.view for c in cands if c.view is not None])
    return [(f"{c.intro} {c.text}".strip(), row) for c, row in zip(cands, rows)]


@dataclass(frozen=True)
class _Candidate:
    passage: int
    intro: str  # for a list item: the sentence that introduces the list, ending with ":"
    text: str  # the sentence, or the list item without its closing punctuation
    quote: str  # the words as they stand in the guide, for the citation snippet
    score: float  # the ranker's chance that this sentence is the one that answers
    vector: np.ndarray
    order: int = 0  # where the sentence stands in its passage
    item: bool = False  # a list item in the guide
    numbered: bool = False  # ... of a numbered list ("1. Plan"): its items are steps, read in order
    selectable: bool = True  # False: too short to be chosen alone ("physics;"), quoted with its list
    after: int = -1  # where the sentence before it in the passage stands (-1: none)
    section: str = ""  # the guide section the sentence is in (a chunk can hold the start of the next)
    view: SentenceView | None = None  # what the ranker reads of it


def _candidates(
    question: str,
    passages: list[Passage],
    query_vector: np.ndarray,
    terms: QuestionTerms | None,
    cfg: ComposerConfig,
    ranker: Ranker | None = None,
) -> list[_Candidate]:
    """Every quotable sentence of the passages, scored by the ranker's chance that it answers."""
    out: list[_Candidate] = []
    for rank, passage in enumerate(passages):
        chunk = passage.chunk
        intro = ""
        continues = False  # the item before ended with ";": the list runs on through its last item
        planted = planted_instructions(chunk.text)
        headings = _later_sections(chunk)
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
            section = next((title for at, title in reversed(headings) if at < begin), chunk.section)
            out.append(
                _Candidate(
                    passage=rank,
                    intro=lead,
                    text=text,
                    quote=quote.rstrip(";,"),
                    score=0.0,
                    vector=vector,
                    order=begin,
                    item=is_item,
                    numbered=bool(_NUMBERED_ITEM.match(raw)),
                    selectable=selectable,
                    after=before,
                    section=section,
                    view=SentenceView(
                        text=f"{lead} {text}".strip(),
                        cosine=float(vector @ query_vector),
                        passage_rank=rank,
                        passage_similarity=passage.similarity,
                        heading=f"{chunk.title} {section}",
                        index=0,
                        count=0,
                        list_item=is_item,
                        other_section=section != chunk.section,
                        text_before=out[-1].quote if out and out[-1].passage == rank else "",
                    ),
                )
            )
    out = _placed(out)
    rows = features(question, terms or plain_terms(question), [c.view for c in out if c.view is not None])
    scores = (ranker or shipped_ranker()).scores(rows)
    chances = np.exp(scores - scores.max()) if len(scores) else scores
    chances = chances / chances.sum() if len(chances) else chances
    return [dataclasses.replace(c, score=float(p)) for c, p in zip(out, chances)]


def _placed(candidates: list[_Candidate]) -> list[_Candidate]:
    """The candidates with their place among their passage's sentences, and the sentence after, filled in."""
    count = Counter(c.passage for c in candidates)
    seen: Counter[int] = Counter()
    out = []
    for k, c in enumerate(candidates):
        assert c.view is not None
        following = candidates[k + 1] if k + 1 < len(candidates) else None
        after = following.quote if following is not None and following.passage == c.passage else ""
        view = dataclasses.replace(c.view, index=seen[c.passage], count=count[c.passage], text_after=after)
        out.append(dataclasses.replace(c, view=view))
        seen[c.passage] += 1
    return out


def compose_extractive(
    question: str,
    query_vector: np.ndarray,
    passages: list[Passage],
    config: ComposerConfig | None = None,
    standalone: str = "",
    terms: QuestionTerms | None = None,
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
            return refuse(question, OUT_OF_SCOPE, OUT_OF_SCOPE_REASON, standalone)
        section = passages[0].chunk
        cited = Citation(1, section.source, section.title, section.section, _snippet([text]), passages[0].similarity)
        return Answer(
            question,
            f"{text} [1]",
            refused=True,
            citations=(cited,),
            standalone_question=standalone,
            reason=NOT_COVERED_REASON,
        )
    every = _candidates(standalone or question, passages, query_vector, terms, cfg)
    candidates = [c for c in every if not passages[c.passage].chunk.not_covered]
    if not candidates:
        return refuse(question, OUT_OF_SCOPE, OUT_OF_SCOPE_REASON, standalone)
    pool = [c for c in candidates if c.selectable]
    if not pool:  # only list items too short to stand alone, and no sentence introducing them
        return refuse(question, OUT_OF_SCOPE, WEAK_EVIDENCE_REASON, standalone)
    naming, definition = _on_subject(pool, definition_subject(standalone or question))
    chosen = _both_sides(_best_sentences(naming or pool, cfg), pool, compared_subjects(standalone or question), cfg)
    # A sentence that leans on the one before it ("In that case it may...") cannot lead; when all
    # do, the best one's antecedent leads it, and without one there is nothing safe to quote.
    lead = definition or next((c for c in chosen if not _LEANS_BACK.match(c.text)), None)
    if lead is None:
        lead = next((c for c in candidates if (c.passage, c.order) == (chosen[0].passage, chosen[0].after)), None)
        if lead is None:
            return refuse(question, OUT_OF_SCOPE, WEAK_EVIDENCE_REASON, standalone)
        chosen = [lead, *chosen]
    chosen = _whole_lists([lead, *(c for c in chosen if c is not lead)][: cfg.max_sentences], candidates, cfg)
    chosen = _not_dangling(chosen)
    # One number per guide section: two chunks of one section are one source to the reader, and
    # a sentence from the next section that a chunk runs into is cited as that section.
    numbers: dict[tuple[str, str], int] = {}
    for cand in chosen:
        numbers.setdefault(_place(cand, passages), len(numbers) + 1)
    # The best sentence leads; the rest follow source by source, each in the guide's order. When
    # the best is one step of a numbered list whose other steps come too, its source reads in
    # order (Plan-Do-Study-Act); a bulleted list's best item still leads ("Medical school: ...,
    # roughly eight years" for "how many years is college plus med school?").
    steps = sum(c.numbered and c.passage == chosen[0].passage for c in chosen)
    first = 0 if chosen[0].numbered and steps >= 3 else 1
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


def _later_sections(chunk: StoredChunk) -> list[tuple[int, str]]:
    """Where each later section a chunk runs into starts, and its heading path.

    Chunking writes a merged section's heading with one '#' more than its depth ("### Where they
    work" under "## Roles"), so its path is the chunk's own path cut to the heading's parents plus
    the heading: "Roles > Where they work", as the section's own chunk is cited, not "Where they
    work", which made one section two citations.
    """
    path = chunk.section.split(" > ") if chunk.section else []
    out = []
    for found in _HEADING.finditer(chunk.text, chunk.body_start):
        parents = len(found.group("marks")) - 2
        path = [*path[:parents], found.group("title")]
        out.append((found.start(), " > ".join(path)))
    return out


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
    """The likeliest sentences, near the best, not repeating one another, within the word budget."""
    ranked = sorted(candidates, key=lambda c: -c.score)
    best = ranked[0].score
    chosen: list[_Candidate] = []
    words = 0
    for cand in ranked:
        if len(chosen) == cfg.max_sentences or cand.score < best * cfg.relative_floor:
            break
        size = len(f"{cand.intro} {cand.text}".split())
        if (chosen and words + size > cfg.max_words) or any(_redundant(cand, c, cfg) for c in chosen):
            continue
        chosen.append(cand)
        words += size
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
    if float(a.vector @ b.vector) > cfg.redundancy or repeats_run(a.text, b.text, cfg.repeated_run):
        return True
    wa, wb = key_terms(a.text), key_terms(b.text)
    return bool(wa and wb) and len(wa & wb) / min(len(wa), len(wb)) >= cfg.overlap_redundancy


def repeats_run(a: str, b: str, length: int) -> bool:
    """True when `a` and `b` have `length` words in a row in common (case aside).

    "Residency in the United States lasts at least three years, and the first year ..." and
    "... lasts at least three years, during which ..." (two guides) share 58% of their key words,
    under `overlap_redundancy`, and their vectors pass the other test too, yet read as the same
    sentence twice. Runs of 8 took the gold top-3 from 0.760 to 0.773, covid-qa unchanged.
    """
    words_a = [w.lower() for w in _WORDS.findall(a)]
    words_b = [w.lower() for w in _WORDS.findall(b)]
    runs = {tuple(words_b[i : i + length]) for i in range(len(words_b) - length + 1)}
    return any(tuple(words_a[i : i + length]) in runs for i in range(len(words_a) - length + 1))


# A number in an answer: digits, or words that count or measure time ("three years", "twice a year").
_FIGURE = re.compile(
    r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|dozen|hundred|thousand|half|"
    r"quarter|percent|once|twice|annual|annually|yearly|monthly|weekly|daily|several|few)\b",
    re.IGNORECASE,
)
_HEADING = re.compile(r"^(?P<marks>#{2,6})\s+(?P<title>.+?)\s*$", re.MULTILINE)  # a later section inside a chunk
_WORDS = re.compile(r"[A-Za-z0-9]+")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+•]|\d+[.)])\s+")
_NUMBERED_ITEM = re.compile(r"^\s*\d+[.)]\s+")
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
    # A sentence defining each side ("Privileging is the process of ...") comes first when the
    # passages have one: a sentence that merely names both says nothing of the difference.
    definitions = [
        max(found, key=lambda c: c.score)
        for found in ([c for c in pool if _defines(side).match(c.text)] for side in sides)
        if found
    ]
    return [*definitions, *(c for c in kept if c not in definitions)][: cfg.max_sentences]


def _defines(subject: str) -> re.Pattern[str]:
    """A sentence that defines the subject: "X is ...", "X: ...", "X stands for ..."."""
    return re.compile(
        rf"^(?:(?:a|an|the)\s+)?{re.escape(subject)}(?:s|es)?\s*(?:\([^)]*\)\s*)?"
        r"(?::|is\b|are\b|means\b|stands\s+for\b|refers\s+to\b)",
        re.IGNORECASE,
    )


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
    definitions = [c for c in naming if _defines(subject).match(c.text)]
    return naming, max(definitions, key=lambda c: c.score, default=None)
