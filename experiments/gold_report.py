"""The chat's own figures for a retriever setting: gold questions, refusal gate, uncovered questions.

    python experiments/gold_report.py                       # the shipped settings, on ./.index
    python experiments/gold_report.py --index /tmp/idx --set confidence_rank=20 --set late_weight=0

Prints, for the gold questions (tests/gold_questions.jsonl), how often the expected guide is
the first passage (rank 1), among the first three (top 3), and how often the answer contains the
key phrase; the misses; then `calibrate`'s threshold and mistakes, and the uncovered questions
declined (tests/uncovered_questions.jsonl, uncovered_heldout.jsonl, uncovered_heldout2.jsonl). `--set FIELD=VALUE`
overrides a `RetrievalConfig` field for this run (docs/retrieval.md: a retrieval change must not
cost the gold set). Build the index first: `python ingest.py --index DIR`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.config import load_settings
from assistant.devtools.calibration import calibrate
from assistant.retrieval.fusion import RetrievalConfig
from assistant.service import Assistant

ROOT = Path(__file__).resolve().parent.parent


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def overrides(pairs: list[str]) -> dict[str, object]:
    """FIELD=VALUE pairs as RetrievalConfig fields, each value converted to the field's type."""
    types = {f.name: type(getattr(RetrievalConfig(), f.name)) for f in dataclasses.fields(RetrievalConfig)}
    out: dict[str, object] = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in types:
            raise SystemExit(f"unknown RetrievalConfig field {name!r}; known: {', '.join(sorted(types))}")
        out[name] = types[name](value)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--index", type=Path, default=Path(".index"), help="an index built by ingest.py")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="RetrievalConfig override")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    assistant = Assistant.from_settings(load_settings(os.environ, index_dir=args.index))
    assistant.retriever.config = dataclasses.replace(RetrievalConfig(), **overrides(args.set))  # type: ignore[arg-type]
    assistant.retriever.refresh(force=True)
    gold_path = ROOT / "tests" / "gold_questions.jsonl"
    gold = [json.loads(line) for line in gold_path.read_text().splitlines() if line.strip()]
    first = top3 = phrase = 0
    for record in gold:
        sources = [p.chunk.source for p in assistant.retriever.retrieve(record["question"], 5)]
        first += sources[:1] == [record["source"]]
        top3 += record["source"] in sources[:3]
        if record["source"] not in sources[:3]:
            say(f"not in top 3: {record['question']} -> {sources[:3]}")
        if record["phrase"].lower() in assistant.ask(record["question"]).answer.lower():
            phrase += 1
        else:
            say(f"no key phrase: {record['question']} (expected {record['phrase']!r})")
    n = len(gold)
    say(f"gold: rank 1 {first}/{n}, top 3 {top3}/{n}, key phrase {phrase}/{n}")
    uncovered = [ROOT / "tests" / f"uncovered_{name}.jsonl" for name in ("questions", "heldout", "heldout2")]
    report = calibrate(assistant, gold_path, ROOT / "tests" / "offtopic_questions.jsonl", uncovered)
    say(
        f"calibrate: threshold {report['threshold']}, {report['mistakes']} mistakes of "
        f"{report['in_scope'] + report['off_topic']}; in-scope lowest {report['in_scope_lowest']}, "
        f"off-topic highest {report['off_topic_highest']}"
    )
    for path, result in report["uncovered"].items():
        say(f"uncovered declined: {result['declined']}/{result['questions']} ({Path(path).name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
