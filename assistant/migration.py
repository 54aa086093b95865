"""Changing the embedding model or the chunking: rebuild beside the old index, then switch.

The old index keeps answering (with the model that built it) while the new one is built; the
switch happens only once the new index is complete (its first sync finished); then the old
one is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from assistant.config import Settings
from assistant.index.store import Store, collection_suffix, drop_index, index_settings, list_indexes
from assistant.service import Assistant

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plan:
    """What to serve now, and the rebuild (None when nothing needs rebuilding)."""

    serving: Assistant
    rebuild: Callable[[], Assistant] | None


def plan(settings: Settings) -> Plan:
    """Open the index for these settings, or keep an older complete one serving while it is built."""
    current = Assistant.from_settings(settings, create=True)
    suffix = collection_suffix(settings)
    if current.store.generation() > 0:
        _drop_others(current, suffix)
        return Plan(current, None)
    for other, meta in list_indexes(current.store.client).items():
        if other == suffix or not {"embedding_model", "chunk_size", "chunk_overlap"} <= set(meta):
            continue
        old_settings = settings.replace(
            embedding_model=str(meta["embedding_model"]),
            chunk_size=int(meta["chunk_size"]),
            chunk_overlap=int(meta["chunk_overlap"]),
            encoder=str(meta.get("encoder", "fp32")),
        )
        old_store = Store(current.store.client, other, index_settings(old_settings))
        if old_store.generation() == 0:
            continue
        try:
            old = Assistant.from_settings(old_settings)
        except Exception as exc:  # the old model may be gone; then there is nothing to serve meanwhile
            logger.warning("cannot serve the old index %s meanwhile: %s", other, exc)
            continue
        logger.info("settings changed: serving the old index %s while %s is built", other, suffix)

        def rebuild() -> Assistant:
            current.ingest([settings.corpus_dir])
            _drop_others(current, suffix)
            return current

        return Plan(old, rebuild)
    return Plan(current, None)


def _drop_others(current: Assistant, keep: str) -> None:
    for other in list_indexes(current.store.client):
        if other != keep:
            drop_index(current.store.client, other)
