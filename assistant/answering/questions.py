"""What a question asks: patient-level clinical advice, planted orders, a term, two things compared.

Pure text analysis, no retrieval: the service's gates (`is_clinical_request`, `strip_injection`)
and the shapes the composer and the evidence gate treat specially ("what is X?", "X vs Y?").
"""

from __future__ import annotations

import re

# Patient-level clinical requests. The role's own topics (medication *policies*, treatment
# *protocols* a director approves) must not trip these, so each needs a patient-level cue.
_DOSING = re.compile(
    r"\b(dose|doses|dosage|dosing|overdose|milligrams?|\d+\s?(mg|mcg|ml)\b|how (much|many) \w+ (should|can|do) (i|we|you) (give|take))",
    re.IGNORECASE,
)
_PERSON = re.compile(
    r"\b(my|our|a|this|the) (\d+[- ]year[- ]old|child|son|daughter|kid|baby|toddler|infant|patient|mother|mom|father|dad|wife|husband|partner|friend|grandmother|grandfather)\b",
    re.IGNORECASE,
)
_CLINICAL_TERMS = re.compile(
    r"\b(medicat\w*|medicine|drug|pill|antibiotic\w*|ibuprofen|acetaminophen|paracetamol|insulin|amoxicillin|"
    r"symptom\w*|fever|pain|rash|infection|diagnos\w*|treat\w*|prescri\w*|cure|sick|ill|disease|cancer|diabetes|"
    r"blood pressure|chest|cough|vaccin\w*|side effects?)\b",
    re.IGNORECASE,
)
_SELF_CARE = re.compile(
    r"\b(should|can|could|may) (i|we|he|she|they) (take|give|stop|start|use|double|mix)\b|"
    r"\b(diagnose|treat) (me|my|him|her|them|this)\b|\bwhat (medication|drug|antibiotic|treatment) should\b|"
    r"\bis it safe (for me|to take|to give|to send|to discharge|to stop|to start)\b|\bdo i have\b",
    re.IGNORECASE,
)
# "what dose of haldol", "what insulin sliding scale doses should our protocol use": the doses themselves, for a
# protocol or not; "what dosing policy" and "the dose policy" are about the policy.
_DOSE_VALUES = re.compile(
    r"\bwhat (?:\w+ ){0,4}(?:doses|dosages|dose|dosage)\b(?! (?:polic|protocol|procedure|committee|review|guideline))",
    re.IGNORECASE,
)
_ROLE_CONTEXT = re.compile(
    r"\b(polic(y|ies)|protocols?|procedures?|committees?|formulary|standing orders?|guidelines?)\b", re.IGNORECASE
)
_INJECTION = re.compile(
    r"(ignore|disregard|forget) (all |any |the )?(previous|prior|above|earlier|your) (instructions|rules|prompts?)"
    r"|you are now\b|system prompt|act as\b|pretend (to be|you)",
    re.IGNORECASE,
)
_ARTICLE = r"(?:(?:a|an|the)\s+)?"
_DEFINITION = re.compile(
    r"^\s*(?:(?:so|and|ok|okay|hi|hey)[,\s]+)?(?:"
    rf"(?:what|who)(?:\s+(?:is|are|was|were)|\s*['’]?s)\s+{_ARTICLE}(?P<what>.+?)"
    rf"|what\s+(?:does|do)\s+{_ARTICLE}(?P<mean>.+?)\s+(?:mean|stand\s+for)"
    rf"|(?:define|explain)\s+{_ARTICLE}(?P<define>.+?)"
    r")\s*[?.!]*\s*$",
    re.IGNORECASE,
)
# "what's FPPE and when is it used?": a second question about the same term.
_MORE = frozenset({"when", "where", "why", "how", "who", "what"})
_TELL_ABOUT = re.compile(
    r"^\s*(?:(?:so|and|ok|okay|hi|hey|please)[,\s]+)?(?:(?:can|could|would)\s+you\s+)?(?:please\s+)?"
    rf"(?:tell|teach)\s+me\s+(?:\w+\s+)?about\s+{_ARTICLE}(?P<subject>.+?)\s*[?.!]*\s*$",
    re.IGNORECASE,
)
DEFINITION_WORDS = 4  # a longer "what is ..." asks about more than a term ("what is the best way to ...")
_COMPARISONS = (
    re.compile(
        r"\bdiff[a-z]*\s+(?:between|btwn)\s+(?P<x>[^?]+?)\s+(?:and|vs\.?|versus)\s+(?P<y>[^?]+?)\s*[?.!]*\s*$", re.I
    ),
    re.compile(r"^\s*(?P<x>[^?]+?)\s+(?:vs\.?|versus)\s+(?P<y>[^?]+?)\s*[?.!]*\s*$", re.I),
)
_FIGURE_QUESTION = re.compile(
    r"\bhow (?:many|much|long|often|soon|old)\b|\bwhat (?:\w+ ){0,3}(?:percentage|percent|fee|fees|price|cost|salary|rate)\b",
    re.IGNORECASE,
)
_ARTICLES = re.compile(r"^(?:an?|the)\s+", re.IGNORECASE)


def is_clinical_request(question: str) -> bool:
    """True when the question asks for individual clinical advice (doses, diagnosis, treatment)."""
    person = bool(_PERSON.search(question))
    policy = bool(_ROLE_CONTEXT.search(question)) and not person  # "the dosing policy for insulin"
    if _DOSE_VALUES.search(question):
        return True
    if _DOSING.search(question) and (person or (_CLINICAL_TERMS.search(question) and not policy)):
        return True
    if _SELF_CARE.search(question) and _CLINICAL_TERMS.search(question):
        return True
    return bool(_PERSON.search(question) and re.search(r"\b(give|take|treat|prescribe|diagnose)\b", question, re.I))


def definition_subject(question: str, loosely: bool = False) -> str:
    """The term a "what is X?" question asks about ("HIPAA" in "What is HIPAA?"), else "".

    Such a question is about X and nothing else, so when the guides never use X's words they
    cannot answer it, however much the question's shape resembles a glossary entry (the encoder
    puts "What is HIPAA?" next to the glossary's acronyms). `loosely`, X is also the term of
    "what is X and when/how/... ?" and of "tell me about X", which ask more than X's definition:
    the gate weighs the evidence for X, and the composer answers the whole question.
    """
    if loosely:
        if subject := definition_subject(_first_question(question)):
            return subject
        told = _TELL_ABOUT.match(question)
        if told and len(told.group("subject").split()) <= DEFINITION_WORDS:
            return told.group("subject")
    match = _DEFINITION.match(question)
    if not match:
        return ""
    subject = next(group for group in match.groups() if group)
    return subject if len(subject.split()) <= DEFINITION_WORDS else ""


def _first_question(question: str) -> str:
    """What comes before ", and when/how/... ?" ("what's FPPE" in "what's FPPE and when is it
    used"), else "". Read word by word: a pattern with a lazy prefix took seconds on long inputs."""
    words = question.split()
    for i in range(1, len(words) - 1):
        if words[i].lower() == "and" and words[i + 1].lower() in _MORE:
            return " ".join(words[:i]).rstrip(",")
    return ""


def compared_subjects(question: str) -> tuple[str, str] | None:
    """The two things an "X vs Y?" or "difference between X and Y?" question compares."""
    match = next((m for m in (c.search(question) for c in _COMPARISONS) if m), None)
    if not match:
        return None
    x, y = (_ARTICLES.sub("", part).strip() for part in match.group("x", "y"))
    if not x or not y or "," in x + y or max(len(x.split()), len(y.split())) > DEFINITION_WORDS:
        return None  # three or more things ("a policy, a procedure and a protocol") are not two sides
    return x, y


def strip_injection(question: str) -> str:
    """Remove instruction-like phrases so they neither steer retrieval nor the LLM."""
    return _INJECTION.sub(" ", question).strip(" .,;:!-")


def asks_for_figure(question: str) -> bool:
    """True when the question asks for a number: how many, how much, how long, a fee, a percentage."""
    return bool(_FIGURE_QUESTION.search(question))
