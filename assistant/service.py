"""The Assistant: the one place that wires settings, store, models, retrieval and answers.

Example::

    settings = load_settings(os.environ)
    assistant = Assistant.from_settings(settings)
    answer = assistant.ask("What is the CMD credential?")
    print(answer.answer, [c.source for c in answer.citations])
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from assistant.answering import gate
from assistant.answering.citations import Answer
from assistant.answering.composer import ComposerConfig, compose_extractive, lead_passage, rank_passages
from assistant.answering.conversation import Turn, standalone_question
from assistant.answering.gate import (
    CLINICAL,
    CLINICAL_REASON,
    OUT_OF_SCOPE,
    OUT_OF_SCOPE_REASON,
    WEAK_EVIDENCE_REASON,
    focus_not_covered,
    refuse,
)
from assistant.answering.generation import (
    UNAVAILABLE_NOTICE,
    UNGROUNDED_NOTICE,
    build_messages,
    check_reply,
    stream_reply,
)
from assistant.answering.questions import is_clinical_request, strip_injection
from assistant.answering.ranker import QuestionTerms
from assistant.config import Settings
from assistant.embedding.models import SentenceEmbeddings, build_chat_model, build_embeddings
from assistant.errors import InputError, LLMError
from assistant.index import locking
from assistant.index.store import DocumentRecord, Store, build_client, collection_suffix, index_settings
from assistant.ingest.sync import Progress, SyncReport, remove_documents, sync_paths
from assistant.retrieval.retriever import Passage, Retriever

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

logger = logging.getLogger(__name__)

# While serving, old chunks outlive a document's switch by this long, so a question already
# retrieving the old version can still read them.
SWITCH_GRACE_SECONDS = 1.5
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\ufeff]")


def normalise_question(question: object, max_chars: int) -> str:
    """The question as text we can process, or InputError saying what is wrong."""
    if not isinstance(question, str):
        raise InputError("the question must be text")
    text = " ".join(_CONTROL.sub(" ", question).split())
    if not text:
        raise InputError("the question is empty; type a question about the medical director role")
    if len(text) > max_chars:
        raise InputError(f"the question is {len(text)} characters long; please keep it under {max_chars}")
    return text


@dataclass(frozen=True)
class _Grounds:
    """What an answer may be built from: the question, as retrieval saw it, and its passages."""

    question: str
    query: str
    query_vector: np.ndarray
    passages: list[Passage]
    terms: QuestionTerms
    evidence: float


class Assistant:
    """Answers onboarding questions from the ingested guides, with citations.

    Example::

        assistant = Assistant.from_settings(load_settings(os.environ))
        assistant.ingest([Path("corpus")])
        answer = assistant.ask("How long is residency?")
    """

    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: SentenceEmbeddings,
        chat_model: BaseChatModel | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.retriever = Retriever(store, embedder, cache_bytes=int(settings.retrieval_cache_mb * 2**20), warm=True)
        self.composer = ComposerConfig()
        self.chat_model = chat_model  # None: extractive answers only
        self.serving = False  # set by the app: a sync then gives in-flight questions time to finish
        self._ingest_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, create: bool = False) -> Assistant:
        """Open the index named by the settings (IndexMissingError if absent and not create)."""
        client = build_client(settings, create=create)
        chat_model = build_chat_model(settings)
        if chat_model is not None:
            logger.info("LLM answers from %s (model %r)", settings.llm_base_url, settings.llm_model or "default")
        suffix = collection_suffix(settings)
        # on an embedded index, a file beside it tells readers cheaply when the index changed
        change_file = None if settings.uses_chroma_server else Path(settings.index_dir) / f"generation-{suffix}"
        store = Store(client, suffix, index_settings(settings), change_file)
        return cls(settings, store, build_embeddings(settings), chat_model)

    def chunk_count(self) -> int:
        """How many chunks the index holds."""
        return self.store.count()

    def hold_index(self, wait_seconds: float = 0.0) -> None:
        """Take the embedded index's write lock until release_index (the app does this).

        Another process that wants to ingest then hands the job over or waits (see ingest.py).
        Raises IndexBusyError if another process holds it past wait_seconds.
        """
        if not self.settings.uses_chroma_server:
            locking.hold(Path(self.settings.index_dir), wait_seconds)

    def release_index(self) -> None:
        """Give the write lock back (at shutdown)."""
        if not self.settings.uses_chroma_server:
            locking.release(Path(self.settings.index_dir))

    def ingest(self, paths: Sequence[Path], progress: Progress | None = None, wait_seconds: float = 0.0) -> SyncReport:
        """Sync files and folders into the index; questions see each document wholly old or new."""
        grace = SWITCH_GRACE_SECONDS if (self.serving or self.settings.uses_chroma_server) else 0.0
        with self._ingest_lock, contextlib.ExitStack() as stack:
            if not self.settings.uses_chroma_server:
                stack.enter_context(locking.write_lock(Path(self.settings.index_dir), wait_seconds))
            report = sync_paths(
                paths,
                self.store,
                self.embedder,
                self.settings,
                progress,
                on_switch=lambda: self.retriever.refresh(force=True),
                grace_seconds=grace,
            )
        self.retriever.refresh()
        return report

    def remove(self, source: str) -> DocumentRecord | None:
        """Take one document out of the index at once (its file is left alone); None if not indexed."""
        grace = SWITCH_GRACE_SECONDS if (self.serving or self.settings.uses_chroma_server) else 0.0
        with self._ingest_lock, contextlib.ExitStack() as stack:
            if not self.settings.uses_chroma_server:
                stack.enter_context(locking.write_lock(Path(self.settings.index_dir)))
            removed = remove_documents(
                [source], self.store, on_switch=lambda: self.retriever.refresh(force=True), grace_seconds=grace
            )
        self.retriever.refresh()
        return removed[0] if removed else None

    def documents(self) -> list[DocumentRecord]:
        """Every ingested document's record, by source."""
        return sorted(self.store.documents().values(), key=lambda record: record.source)

    def document(self, source: str) -> tuple[DocumentRecord, str] | None:
        """An ingested document's record and full text (None when there is no such source)."""
        return self.store.document_text(source)

    def ask(self, question: object, history: Sequence[Turn] = ()) -> Answer:
        """Answer a question: gate, retrieve, compose, cite; refusals are answers too."""
        answer: Answer | None = None
        for event in self.stream(question, history):
            if isinstance(event, Answer):
                answer = event
        assert answer is not None
        return answer

    def stream(self, question: object, history: Sequence[Turn] = ()) -> Iterator[str | Answer]:
        """Yield pieces of the answer text as they are ready, then the final Answer.

        Without a chat model the pieces are the extractive answer's lines. With one they are
        the model's text deltas as they arrive; the post-check may then drop sentences,
        renumber markers or replace the text with the extractive answer (with a `notice`),
        so the final Answer is authoritative: render it in place of the streamed text.
        """
        grounds = self._ground(question, history)
        if isinstance(grounds, Answer):
            answer = grounds
        elif self.chat_model is None or all(p.chunk.not_covered for p in grounds.passages):
            # Without a model, or when the guides' own words say they do not answer this.
            answer = self._extractive(grounds)
        else:
            yield from self._generate(self.chat_model, grounds)
            return
        yield from _lines(answer.answer)
        yield answer

    def _ground(self, question: object, history: Sequence[Turn]) -> Answer | _Grounds:
        """The gates and retrieval: a refusal, or the passages to answer from."""
        text = normalise_question(question, self.settings.max_question_chars)
        if is_clinical_request(text):
            # The text may describe a patient: log its size and a digest only.
            logger.info("refused (clinical): %d characters, sha256 %s", len(text), _digest(text))
            return refuse(text, CLINICAL, CLINICAL_REASON)
        query = strip_injection(standalone_question(text, history))
        if not query:
            return refuse(text, OUT_OF_SCOPE, OUT_OF_SCOPE_REASON)
        passages, evidence = self.weigh(query)
        if evidence < self.settings.min_evidence:
            logger.info("refused (weak evidence %.3f): %.80s", evidence, text)
            return dataclasses.replace(refuse(text, OUT_OF_SCOPE, WEAK_EVIDENCE_REASON, query), evidence=evidence)
        coverages = [self.retriever.support(query, [p]).coverage for p in passages]
        query_vector = np.asarray(self.embedder.embed_query(query), dtype=np.float32)
        terms = self.question_terms(query)
        lead = lead_passage(query, query_vector, passages, self.composer, terms)
        return _Grounds(text, query, query_vector, focus_not_covered(passages, coverages, lead), terms, evidence)

    def question_terms(self, query: str) -> QuestionTerms:
        """The question's terms weighted by their idf over the index (what the sentence ranker reads)."""
        return QuestionTerms(self.retriever.term_weights(query), self.retriever.terms_of)

    def weigh(self, query: str) -> tuple[list[Passage], float]:
        """The passages for a question and the evidence that they answer it (see `gate.weigh`)."""
        return gate.weigh(self.retriever, query, self.settings.top_k)

    def _extractive(self, grounds: _Grounds) -> Answer:
        answer = compose_extractive(
            grounds.question,
            grounds.query_vector,
            grounds.passages,
            self.composer,
            standalone=grounds.query,
            terms=grounds.terms,
        )
        return dataclasses.replace(answer, evidence=grounds.evidence)

    def _generate(self, model: BaseChatModel, grounds: _Grounds) -> Iterator[str | Answer]:
        """Stream the model's answer, then check it; any failure falls back to the extractive answer."""
        pieces: list[str] = []
        # The model reads the passages likeliest to answer first (the composer's ranker orders them).
        order = rank_passages(grounds.query, grounds.query_vector, grounds.passages, self.composer, grounds.terms)
        passages = [grounds.passages[k] for k in order] + [p for k, p in enumerate(grounds.passages) if k not in order]
        messages = build_messages(grounds.query, passages)
        try:
            for delta in stream_reply(model, messages, self.settings.llm_timeout):
                pieces.append(delta)
                yield delta
        except LLMError as exc:
            logger.warning("LLM failed, answering extractively: %s", exc)
            fallback = dataclasses.replace(self._extractive(grounds), notice=UNAVAILABLE_NOTICE)
            if not pieces:
                yield from _lines(fallback.answer)
            yield fallback
            return
        answer = check_reply(grounds.question, "".join(pieces), passages, standalone=grounds.query)
        if answer is None:
            logger.warning("LLM answer had no valid citation, answering extractively: %.80s", grounds.question)
            answer = dataclasses.replace(self._extractive(grounds), notice=UNGROUNDED_NOTICE)
        yield dataclasses.replace(answer, evidence=grounds.evidence)


def _lines(text: str) -> list[str]:
    """A text in line-sized pieces (the extractive answer is ready all at once)."""
    return re.split(r"(?<=\n)", text)


def _digest(text: str) -> str:
    """A short digest that links log lines about one question without keeping its words."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
