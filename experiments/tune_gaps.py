"""Fit the gaps report's grouping (assistant/records/gaps.py DENSE_WEIGHT and THRESHOLD) on public data.

    python experiments/tune_gaps.py [../shared/eval]

The gaps report should put one missing topic in one group, whatever the wording. Two public
sets nobody here wrote have such topics: MedQuAD's questions (every id `NHLBI_0000001-k` asks
about one condition: what it is, its causes, symptoms...; split in halves by a hash of the
topic), SciFact's claims (claims citing the same abstract are one topic; train for tuning,
test for the report) and covid-qa's questions (the questions asked of one article are one
topic; articles split in halves by hash). For each weight of the sentence vectors against tf-idf words
(`mixed_vectors`) and each threshold, average-linkage clusters are scored by pairwise F1 (a
pair of questions together in the truth and/or in the clustering). The pair with the best
summed dev F1 is chosen; its test F1 is printed beside tf-idf alone and sentence vectors
alone, each at its own best threshold (the baselines).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.config import load_settings
from assistant.embedding.models import build_embeddings
from assistant.records.gaps import group_by_meaning, mixed_vectors

THRESHOLDS = [round(t, 2) for t in np.arange(0.15, 0.86, 0.05)]
WEIGHTS = (0.0, 0.25, 0.4, 0.5, 0.6, 0.75, 1.0)  # of the sentence vectors; 0 = tf-idf alone, the baseline


def pairwise_f1(truth: list[str], clusters: list[list[int]]) -> float:
    """F1 of the same-group pairs: precision over the clustering's pairs, recall over the truth's."""
    label = np.empty(len(truth), dtype=int)
    for number, members in enumerate(clusters):
        label[members] = number
    same_truth = np.equal.outer(np.asarray(truth), np.asarray(truth))
    same_found = np.equal.outer(label, label)
    upper = np.triu(np.ones_like(same_truth, dtype=bool), 1)
    both = (same_truth & same_found & upper).sum()
    found = (same_found & upper).sum()
    real = (same_truth & upper).sum()
    precision = both / found if found else 0.0
    recall = both / real if real else 0.0
    return float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0


def medquad(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """(texts, topics) of each half: the questions about one condition are one topic."""
    halves: dict[str, tuple[list[str], list[str]]] = {"dev": ([], []), "test": ([], [])}
    for line in (folder / "queries.jsonl").open(encoding="utf-8"):
        query = json.loads(line)
        topic = query["_id"].rsplit("-", 1)[0]
        half = "dev" if int(hashlib.sha256(topic.encode()).hexdigest(), 16) % 2 == 0 else "test"
        halves[half][0].append(query["text"])
        halves[half][1].append(topic)
    return halves


def scifact(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """(texts, topics) of the train (dev) and test claims: claims that cite one abstract are one topic."""
    texts = {}
    for line in (folder / "queries.jsonl").open(encoding="utf-8"):
        query = json.loads(line)
        texts[query["_id"]] = query["text"]
    out = {}
    for split, half in (("train", "dev"), ("test", "test")):
        parent: dict[str, str] = {}

        def root(x: str, parent: dict[str, str] = parent) -> str:
            while parent.setdefault(x, x) != x:
                x = parent[x]
            return x

        rows = [line.split("\t") for line in (folder / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]]
        for query_id, doc_id, _ in rows:
            parent[root("q" + query_id)] = root("d" + doc_id)
        claims = sorted({q for q, _, _ in rows}, key=int)
        out[half] = ([texts[q] for q in claims], [root("q" + q) for q in claims])
    return out


def covid_qa(folder: Path) -> dict[str, tuple[list[str], list[str]]]:
    """(texts, topics) of each half: the questions asked of one article are one topic (articles split by hash)."""
    halves: dict[str, tuple[list[str], list[str]]] = {"dev": ([], []), "test": ([], [])}
    for line in (folder / "questions.jsonl").open(encoding="utf-8"):
        question = json.loads(line)
        topic = question["source"]
        half = "dev" if int(hashlib.sha256(topic.encode()).hexdigest(), 16) % 2 == 0 else "test"
        halves[half][0].append(question["question"])
        halves[half][1].append(topic)
    return halves


def main() -> int:
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/eval")
    sets = {
        "medquad": medquad(shared / "medquad-cdc-nhlbi"),
        "scifact": scifact(shared / "scifact"),
        "covid_qa": covid_qa(shared / "covid-qa"),
    }
    embedder = build_embeddings(load_settings(os.environ))
    dense = {
        (name, half): np.asarray([embedder.embed_query(t) for t in texts], dtype=np.float32)
        for name, halves in sets.items()
        for half, (texts, _) in halves.items()
    }
    table = {}
    for weight in WEIGHTS:
        for t in THRESHOLDS:
            row = {}
            for name, halves in sets.items():
                for half, (texts, topics) in halves.items():
                    clusters = group_by_meaning(mixed_vectors(dense[name, half], texts, weight), t)
                    row[f"{name}_{half}"] = pairwise_f1(topics, clusters)
            table[weight, t] = row

    def dev_score(key: tuple[float, float]) -> float:
        return sum(f for name, f in table[key].items() if name.endswith("_dev"))

    chosen = max(table, key=dev_score)
    summary: dict[str, object] = {
        "sizes": {f"{n}_{h}": len(ts) for n, hs in sets.items() for h, (ts, _) in hs.items()},
        "chosen (dense weight, threshold)": list(chosen),
    }
    for label, weight in (("chosen", chosen[0]), ("tf-idf alone (baseline)", 0.0), ("sentence vectors alone", 1.0)):
        best = (
            chosen
            if label == "chosen"
            else max(((weight, t) for t in THRESHOLDS), key=lambda k: table[k]["medquad_dev"] + table[k]["scifact_dev"])
        )
        summary[label] = {"threshold": best[1], **{k: round(v, 3) for k, v in table[best].items()}}
    sys.stdout.write(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
