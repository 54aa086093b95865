"""A new chunking or encoder setting rebuilds beside the old index, which serves until the switch."""

from __future__ import annotations

from pathlib import Path

from assistant.index.store import list_indexes
from assistant.migration import plan
from conftest import settings_for


def test_changed_chunking_rebuilds_beside_the_old_index(tmp_path: Path, guides: Path) -> None:
    index = tmp_path / "index"
    old_settings = settings_for(index, corpus_dir=guides)
    first = plan(old_settings)
    assert first.rebuild is None
    first.serving.ingest([guides])
    assert plan(old_settings).rebuild is None, "an unchanged, complete index is served as it is"

    new_settings = old_settings.replace(chunk_size=600, chunk_overlap=100)
    second = plan(new_settings)
    assert second.rebuild is not None
    assert second.serving.settings.chunk_size == 900, "the old index serves meanwhile"
    assert not second.serving.ask("How long is residency?").refused
    assert len(list_indexes(second.serving.store.client)) == 2

    rebuilt = second.rebuild()
    assert rebuilt.settings.chunk_size == 600 and rebuilt.chunk_count() > 0
    assert list(list_indexes(rebuilt.store.client)) == ["all-minilm-l6-v2-int8-c600o100"], "old index removed"
    assert "three years" in rebuilt.ask("How long is residency?").answer


def test_a_changed_encoder_rebuilds_beside_the_old_index_and_records_it(tmp_path: Path, guides: Path) -> None:
    index = tmp_path / "index"
    old_settings = settings_for(index, corpus_dir=guides, encoder="fp32")
    plan(old_settings).serving.ingest([guides])
    second = plan(old_settings.replace(encoder="int8"))
    assert second.rebuild is not None and second.serving.settings.encoder == "fp32", "the fp32 index serves meanwhile"
    assert second.serving.embedder.query_backend == "onnx"
    rebuilt = second.rebuild()
    assert rebuilt.embedder.query_backend == "onnx-int8"
    indexes = list_indexes(rebuilt.store.client)
    assert (
        list(indexes) == ["all-minilm-l6-v2-int8-c900o150"]
        and indexes["all-minilm-l6-v2-int8-c900o150"]["encoder"] == "int8"
    )
    assert "three years" in rebuilt.ask("How long is residency?").answer
