"""The evidence gate: whether the passages answer the question, and the refusals when not.

`weigh` retrieves and scores; the service refuses under `Settings.min_evidence` (calibrated in
docs/calibration.md) and narrows to a not-covered section when that is the answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from assistant.answering.citations import Answer
from assistant.answering.questions import definition_subject
from assistant.retrieval.retriever import Passage, Retriever

logger = logging.getLogger(__name__)

OUT_OF_SCOPE = (
    "The guides don't cover this, so I won't guess. I answer questions about becoming and working "
    "as a medical director: what the role involves, the path through medical school, residency, "
    "board certification and licensure, the CMD credential in long-term care, moving up to Chief "
    "Medical Officer, and the first 90 days in the job."
)
CLINICAL = (
    "I can't advise on an individual patient's care, such as doses, diagnoses or treatments. "
    "Please ask a clinician who knows the patient; in an emergency, call your local emergency "
    "number. I can help with questions about the medical director role and career path."
)

# Why an answer declines (the answer object's `reason`): a request for individual clinical advice;
# a question outside the guides' subject; retrieval's evidence under the threshold; a guide's own
# not-covered section says the guides do not answer it.
CLINICAL_REASON = "clinical"
OUT_OF_SCOPE_REASON = "out_of_scope"
WEAK_EVIDENCE_REASON = "weak_evidence"
NOT_COVERED_REASON = "not_covered"
REASONS = (CLINICAL_REASON, OUT_OF_SCOPE_REASON, WEAK_EVIDENCE_REASON, NOT_COVERED_REASON)

_SENTENCE_START = ".!?:>#*-\n"  # after these, a capital starts a sentence, a heading or an item
_NAME = re.compile(r"[A-Z][\w-]*(?:\s+(?:of|and|for|on|[A-Z][\w-]*))*")  # "Match", "COMLEX", "Joint Commission"


COVERAGE_WEIGHT = 0.2  # calibrated with the threshold; see docs/calibration.md
MIN_COVERAGE = 0.15  # below this share of the question's words the passages are not about it (in-scope lowest: 0.29)


def evidence_score(passages: list[Passage], coverage: float, phrase: bool = False) -> float:
    """How well the passages support answering: best cosine similarity plus keyword coverage.

    Coverage counts twice when the question's key terms appear as one phrase in a passage
    (`Support.phrase`): MiniLM does not know many terms of art ("just culture"),
    and an exact phrase is the evidence it misses. Under `MIN_COVERAGE` the evidence is 0.
    """
    if not passages or coverage < MIN_COVERAGE:
        # "blorp medical zzzq directorate flumox?" is near the guides' reading lists in meaning
        # (cosine 0.45) while they hold 2% of its words: the encoder is matching noise.
        return 0.0
    best = max(p.similarity for p in passages)
    return best + COVERAGE_WEIGHT * coverage * (2 if phrase else 1)


def focus_not_covered(passages: list[Passage], coverages: Sequence[float], lead: int | None) -> list[Passage]:
    """Only one passage, when it says the guides do not answer the question; else all of them.

    A guide tagged `not-covered` names topics the guides do not answer ("how much does a
    medical director earn?"). Such questions still resemble every guide about medical
    directors, so without this the answer would quote loosely related sentences with
    confident citations. Such a section is the answer when it is the best-ranked passage and
    holds the question's words (`coverages`, IDF-weighted, one per passage) at least as well
    as any other passage, when it is closer in meaning (cosine) to the question than every other
    passage (a shared word such as "paid" can rank "How health care organizations are paid"
    first for "What do medical directors get paid per year?"), or when it holds the best
    sentence (`lead`, from `lead_passage`).
    The service narrows before composing or generating, so both answer the same way.
    """
    if passages and passages[0].chunk.not_covered and coverages[0] >= max(coverages[1:], default=0.0):
        return passages[:1]
    for n, candidate in enumerate(passages):
        others = [p.similarity for m, p in enumerate(passages) if m != n]
        if candidate.chunk.not_covered and candidate.similarity > max(others, default=-1.0):
            return [candidate]  # closest in meaning of all: the question is one of its topics
    if lead is not None and passages[lead].chunk.not_covered:
        return [passages[lead]]
    return passages


def weigh(retriever: Retriever, query: str, top_k: int) -> tuple[list[Passage], float]:
    """The passages for a question and the evidence that they answer it (the refusal gate's score).

    Evidence is the best cosine plus keyword coverage (`evidence_score`). "What is X?" gets
    0 when some word of X is in no guide (unless the best passage is a `not-covered` one,
    which declines in its own words), and its coverage counts twice when a passage uses X
    as a name ("the Match"), as for a phrase.
    """
    subject = definition_subject(query, loosely=True)
    passages = retriever.retrieve(query, top_k)
    unknown = retriever.unknown_terms(subject) if subject else []
    if unknown and not (passages and passages[0].chunk.not_covered):
        logger.info("no guide uses %r, which the question asks about", unknown[0])
        return passages, 0.0
    support = retriever.support(query, passages)
    phrase = support.phrase or bool(subject and names_subject(subject, passages))
    return passages, evidence_score(passages, support.coverage, phrase)


def names_subject(subject: str, passages: Sequence[Passage]) -> bool:
    """True when a capitalised subject ("Match", "COMLEX") is a name some passage uses.

    The passage must write it with the same capitals, inside a sentence rather than at its start
    and outside headings, which are in title case ("... usually called the Match."): a name the
    guides use is strong evidence for "what is X?", where the encoder scores a one-word term of
    art near zero.
    """
    if not _NAME.fullmatch(subject):
        return False
    name = re.compile(rf"(?<![\w-]){re.escape(subject)}(?![\w])")
    for passage in passages:
        # The first line is the heading path, and headings are in title case.
        body = [line for line in passage.chunk.text.split("\n")[1:] if not line.startswith("#")]
        for line in body:
            for found in name.finditer(line):
                before = line[: found.start()].rstrip(" (")
                if before and before[-1] not in _SENTENCE_START:
                    return True
    return False


def refuse(question: str, text: str, reason: str, standalone: str = "") -> Answer:
    """A refusal: no citations, a helpful message, and why (one of REASONS)."""
    assert reason in REASONS, reason
    return Answer(question=question, answer=text, refused=True, standalone_question=standalone, reason=reason)
