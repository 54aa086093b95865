"""Fit the composer's sentence ranker (assistant/answering/ranker.py) and write its weights.

    python experiments/fit_ranker.py                 # collect, cross-validate, write ranker_weights.json
    python experiments/fit_ranker.py --no-write      # figures only
    python experiments/fit_ranker.py --ablate        # also each feature left out in turn
    python experiments/fit_ranker.py --gbm           # also gradient-boosted trees on the same folds

Data: covid-qa's dev questions (../shared/eval/covid-qa, gold answer spans) and the shipped
corpus's gold questions (tests/gold_questions.jsonl, key phrases). Each question's candidate
sentences are the composer's, from the pipeline's own passages (`Assistant.weigh`); a sentence
is a positive when it holds the gold span (`answer_eval.holds`). The model is a conditional
logit (softmax over one question's candidates) with an L2 penalty, fitted by L-BFGS; folds are
grouped by source document so no article is both fitted and scored. The collected table is
cached (`--cache`), the indexes kept (`--index-root`), so a second run takes seconds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.answering.composer import sentence_table
from assistant.answering.ranker import FEATURES, WEIGHTS_FILE, Ranker
from assistant.config import load_settings
from assistant.devtools.answer_eval import holds, load_questions, normalise
from assistant.service import Assistant

ROOT = Path(__file__).resolve().parent.parent
logger = logging.getLogger("fit_ranker")


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def collect(name: str, articles: Path, questions: Path, index_dir: Path) -> dict[str, np.ndarray]:
    """One row per candidate sentence: features, label, question number, source document."""
    settings = load_settings(os.environ).replace(index_dir=index_dir, chroma_host="")
    assistant = Assistant.from_settings(settings, create=True)
    assistant.ingest([articles])
    rows, labels, qids, groups, texts, asked = [], [], [], [], [], []
    for number, gold in enumerate(load_questions(questions)):
        passages, _ = assistant.weigh(gold.question)
        vector = np.asarray(assistant.embedder.embed_query(gold.question), dtype=np.float32)
        span = normalise(gold.answer)
        for text, row in sentence_table(gold.question, vector, passages, assistant.question_terms(gold.question)):
            rows.append(row)
            labels.append(holds(span, text))
            qids.append(number)
            groups.append(f"{name}:{gold.source}")
            texts.append(text)
            asked.append(gold.question)
    logger.info("%s: %d questions, %d sentences", name, len(set(qids)), len(rows))
    return {
        "X": np.asarray(rows, dtype=np.float32),
        "y": np.asarray(labels, dtype=bool),
        "q": np.asarray([f"{name}:{q}" for q in qids]),
        "g": np.asarray(groups),
        "text": np.asarray(texts),  # kept so an experiment can add a feature without re-asking
        "question": np.asarray(asked),
    }


def _segments(q: np.ndarray) -> list[np.ndarray]:
    _, first, inverse = np.unique(q, return_index=True, return_inverse=True)
    return [np.flatnonzero(inverse == k) for k in np.argsort(first)]


def fit(X: np.ndarray, y: np.ndarray, q: np.ndarray, l2: float) -> Ranker:
    """Conditional logit: maximise log sum_{positives} softmax(X w) per question, minus l2 |w|^2."""
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale[scale == 0] = 1.0
    Z = (X - mean) / scale
    segs = [s for s in _segments(q) if y[s].any()]

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        total, grad = 0.0, np.zeros_like(w)
        for s in segs:
            z = Z[s] @ w
            z -= z.max()
            p = np.exp(z)
            p /= p.sum()
            pos = y[s]
            mass = p[pos].sum()
            total -= np.log(mass + 1e-12)
            # d/dw -log sum_pos p = E_p[x] - E_{p|pos}[x]
            grad += p @ Z[s] - (p[pos] / (mass + 1e-12)) @ Z[s][pos]
        n = max(1, len(segs))
        return total / n + l2 * float(w @ w), grad / n + 2 * l2 * w

    w0 = np.zeros(X.shape[1])
    w0[FEATURES.index("cosine")] = 1.0
    result = minimize(loss, w0, jac=True, method="L-BFGS-B")
    return Ranker(result.x.astype(np.float32), mean.astype(np.float32), scale.astype(np.float32))


def lead_hits(score: np.ndarray, y: np.ndarray, q: np.ndarray) -> float:
    """Share of questions whose best-scored sentence is a positive."""
    segs = _segments(q)
    return float(np.mean([bool(y[s][int(np.argmax(score[s]))]) for s in segs])) if segs else 0.0


def fold_ids(groups: np.ndarray, folds: int) -> np.ndarray:
    """Each row's fold: its source document's, the documents dealt to folds in a fixed shuffle."""
    unique = np.unique(groups)
    rng = np.random.default_rng(0)
    fold_of = dict(zip(rng.permutation(unique), np.arange(len(unique)) % folds))
    return np.asarray([fold_of[g] for g in groups])


def cross_validate(data: dict[str, np.ndarray], l2: float, keep: list[int], folds: int = 5) -> np.ndarray:
    """Out-of-fold scores, folds grouped by source document."""
    fold = fold_ids(data["g"], folds)
    X = data["X"][:, keep]
    out = np.zeros(len(X))
    for k in range(folds):
        train, test = fold != k, fold == k
        ranker = fit(X[train], data["y"][train], data["q"][train], l2)
        out[test] = ranker.scores(X[test])
    return out


def within_question_ranks(X: np.ndarray, q: np.ndarray, cap: int = 10) -> np.ndarray:
    """Each feature's rank among its question's candidates (0 = highest), capped."""
    ranks = np.zeros_like(X)
    for s in _segments(q):
        ranks[s] = (-X[s]).argsort(axis=0).argsort(axis=0)
    return np.minimum(ranks, cap)


def cross_validate_trees(data: dict[str, np.ndarray], X: np.ndarray, folds: int = 5) -> np.ndarray:
    """Out-of-fold chances from gradient-boosted trees (pointwise), on cross_validate's folds."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    fold = fold_ids(data["g"], folds)
    out = np.zeros(len(X))
    for k in range(folds):
        train, test = fold != k, fold == k
        trees = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40, random_state=0
        )
        out[test] = trees.fit(X[train], data["y"][train]).predict_proba(X[test])[:, 1]
    return out


def report(name: str, data: dict[str, np.ndarray], score: np.ndarray) -> str:
    figures = []
    for subset in ("covid", "gold"):
        mask = np.char.startswith(data["q"].astype(str), subset + ":")
        if mask.any():
            figures.append(f"{subset} {lead_hits(score[mask], data['y'][mask], data['q'][mask]):.3f}")
    return f"{name:<28} " + "  ".join(figures)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--covid", type=Path, default=ROOT.parent / "shared" / "eval" / "covid-qa")
    parser.add_argument("--index-root", type=Path, default=Path("/tmp/fit-ranker"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fit-ranker/table.npz"))
    parser.add_argument("--l2", type=float, default=0.01)
    parser.add_argument("--ablate", action="store_true")
    parser.add_argument("--gbm", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    if args.cache.exists():
        data = dict(np.load(args.cache))
    else:
        parts = [
            collect("covid", args.covid / "articles", args.covid / "questions.jsonl", args.index_root / "covid"),
            collect("gold", ROOT / "corpus", ROOT / "tests" / "gold_questions.jsonl", args.index_root / "gold"),
        ]
        data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
        args.cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.cache, **data)
    X, y, q = data["X"], data["y"], data["q"]
    say(f"{len(np.unique(q))} questions, {len(X)} sentences, {int(y.sum())} positives")
    say("lead@1 over the candidates (questions with no positive count as misses)")
    say(report("baseline: best cosine", data, X[:, FEATURES.index("cosine")]))
    say(report("baseline: best idf overlap", data, X[:, FEATURES.index("overlap")]))
    everything = list(range(len(FEATURES)))
    cv = cross_validate(data, args.l2, everything)
    say(report("ranker, 5-fold by document", data, cv))
    if args.ablate:
        for k, name in enumerate(FEATURES):
            say(report(f"  without {name}", data, cross_validate(data, args.l2, [i for i in everything if i != k])))
    if args.gbm:
        with_ranks = np.hstack([X, within_question_ranks(X, q)])
        say(
            report(
                "linear, features + ranks",
                data,
                cross_validate({**data, "X": with_ranks}, args.l2, list(range(with_ranks.shape[1]))),
            )
        )
        say(report("trees, features", data, cross_validate_trees(data, X)))
        say(report("trees, features + ranks", data, cross_validate_trees(data, with_ranks)))
    ranker = fit(X, y, q, args.l2)
    say(report("ranker, fitted on all", data, ranker.scores(X)))
    for name, w in sorted(zip(FEATURES, ranker.weights), key=lambda t: -abs(t[1])):
        say(f"  {name:<20} {w:+.3f}")
    if not args.no_write:
        fitted = f"experiments/fit_ranker.py --l2 {args.l2} on {datetime.date.today().isoformat()}"
        payload = {"fitted": fitted, "cross_validated": report("lead@1", data, cv).split(None, 1)[1]}
        WEIGHTS_FILE.write_text(json.dumps({**payload, "features": ranker.to_json()}, indent=1) + "\n")
        say(f"wrote {WEIGHTS_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
