"""BEIR evaluation: the metrics by hand, the loader's split filter, and eval-beir on a SciFact slice."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.__main__ import main
from assistant.devtools.eval import load_beir, ndcg, recall, reciprocal_rank, score_runs
from conftest import ROOT

SCIFACT = ROOT.parent / "shared" / "eval" / "scifact"


def test_metrics_by_hand() -> None:
    relevant = {"a": 1, "b": 1}
    assert ndcg(["a", "b", "x"], relevant, 10) == pytest.approx(1.0)
    # one hit at rank 2 of two relevant: (1/log2 3) / (1 + 1/log2 3)
    assert ndcg(["x", "a"], relevant, 10) == pytest.approx(0.6309298 / 1.6309298, rel=1e-6)
    assert ndcg(["x", "a"], relevant, 1) == 0.0
    assert recall(["x", "a"], relevant, 100) == 0.5
    assert recall(["x", "a"], relevant, 1) == 0.0
    assert reciprocal_rank(["x", "y", "b"], relevant, 10) == pytest.approx(1 / 3)
    assert reciprocal_rank(["x", "y", "b"], relevant, 2) == 0.0
    figures = score_runs({"q1": ["a"], "q2": []}, {"q1": {"a": 1}, "q2": {"z": 1}}, 10)
    assert figures == {"ndcg@10": 0.5, "recall@100": 0.5, "mrr@10": 0.5}


def _write_beir(folder: Path, corpus: list[dict], queries: list[dict], qrels: dict[str, list[tuple[str, str]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (folder / "queries.jsonl").write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in rows]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_loader_keeps_only_the_judged_queries_of_the_split(tmp_path: Path) -> None:
    corpus = [{"_id": "d1", "title": "T", "text": "x"}, {"_id": "d2", "title": "", "text": "y"}]
    queries = [{"_id": "q1", "text": "one", "metadata": {"d1": "gold"}}, {"_id": "q2", "text": "two"}]
    _write_beir(tmp_path, corpus, queries, {"test": [("q2", "d2")], "train": [("q1", "d1")]})
    data = load_beir(tmp_path, "test")
    assert data.queries == {"q2": "two"}
    assert data.qrels == {"q2": {"d2": 1}}
    assert [r["_id"] for r in data.corpus] == ["d1", "d2"]
    assert load_beir(tmp_path, "train").queries == {"q1": "one"}


@pytest.fixture(scope="module")
def scifact_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 10 SciFact test queries over 100 documents: their gold ones plus the corpus head."""
    if not (SCIFACT / "corpus.jsonl").is_file():
        pytest.skip(f"SciFact is not at {SCIFACT}")
    data = load_beir(SCIFACT, "test", limit=10)
    gold = {d for rels in data.qrels.values() for d in rels}
    corpus = [r for r in data.corpus if r["_id"] in gold]
    corpus += [r for r in data.corpus if r["_id"] not in gold][: 100 - len(corpus)]
    queries = [{"_id": q, "text": t} for q, t in data.queries.items()]
    folder = tmp_path_factory.mktemp("scifact-slice")
    _write_beir(folder, corpus, queries, {"test": [(q, d) for q, rels in data.qrels.items() for d in rels]})
    return folder


def test_eval_beir_on_a_scifact_slice(scifact_slice: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval-beir", str(scifact_slice), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"ndcg@10", "recall@100", "mrr@10", "queries", "seconds"}
    assert figures["queries"] == 10
    # 100 documents make it easier than the full corpus (about 0.74 there), but not trivial
    assert 0.6 <= figures["ndcg@10"] <= 1.0
    assert figures["recall@100"] == 1.0  # the slice holds fewer than 100 documents
    assert figures["mrr@10"] >= 0.6


def test_eval_beir_limit_and_a_missing_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = [
        {
            "_id": "p",
            "title": "Pilots",
            "text": "Commercial pilots need a licence and many hours of logged flight time.",
        },
        {
            "_id": "b",
            "title": "Bread",
            "text": "Sourdough bread rises with a starter of wild yeast and lactic bacteria.",
        },
        {"_id": "t", "title": "Tides", "text": "Tides follow the moon; spring tides come with the new and full moon."},
    ]
    queries = [{"_id": "q1", "text": "how do I become an airline pilot"}, {"_id": "q2", "text": "why does dough rise"}]
    _write_beir(tmp_path, corpus, queries, {"test": [("q1", "p"), ("q2", "b")]})
    assert main(["eval-beir", str(tmp_path), "--json", "--limit", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["queries"] == 1
    assert figures["ndcg@10"] == figures["mrr@10"] == 1.0
    assert main(["eval-beir", str(tmp_path), "--split", "train"]) == 2
    assert "qrels/train.tsv" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda f: (f / "queries.jsonl").write_text('{"_id": "q1", "text": "one"}\n{not json\n'), "line 2 is not JSON"),
        (lambda f: (f / "queries.jsonl").write_text('["a list"]\n'), "not a JSON object"),
        (lambda f: (f / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\thigh\n"), "well-formed"),
        (lambda f: (f / "qrels" / "test.tsv").write_text("query\tdoc\nq1\td1\n"), "missing field"),
        (lambda f: (f / "corpus.jsonl").write_text('{"title": "no id"}\n'), "missing field '_id'"),
        (lambda f: (f / "corpus.jsonl").write_bytes(b"\xff\xfe\x00garbage"), "well-formed"),
    ],
)
def test_a_malformed_dataset_is_a_usage_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], object], expected: str
) -> None:
    corpus = [{"_id": "d1", "title": "T", "text": "x"}]
    _write_beir(tmp_path, corpus, [{"_id": "q1", "text": "one"}], {"test": [("q1", "d1")]})
    damage(tmp_path)
    assert main(["eval-beir", str(tmp_path), "--json"]) == 2
    assert expected in capsys.readouterr().err
