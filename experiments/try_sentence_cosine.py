"""Would sentences encoded on their own rank better than the vectors pooled inside their chunk?

    python experiments/fit_ranker.py --no-write      # collects /tmp/fit-ranker/table.npz first
    python experiments/try_sentence_cosine.py

Each candidate sentence of fit_ranker's table is encoded alone (the packaged encoder, as a
question-time step would) and its cosine to the question is scored alone and as one more
ranker feature, with the same folds grouped by document.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fit_ranker import cross_validate, report, say

from assistant.config import load_settings
from assistant.embedding.models import build_embeddings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/fit-ranker/table.npz"))
    parser.add_argument("--l2", type=float, default=0.01)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    data = dict(np.load(args.cache))
    vectors_file = args.cache.with_name("sentence_vectors.npy")
    embedder = build_embeddings(load_settings(os.environ))
    if vectors_file.exists():
        own = np.load(vectors_file)
    else:
        own = np.asarray(embedder.embed_documents([str(t) for t in data["text"]]), dtype=np.float32)
        np.save(vectors_file, own)
    questions = sorted(set(map(str, data["question"])))
    asked = dict(zip(questions, np.asarray(embedder.embed_documents(questions), dtype=np.float32)))
    cosine = np.asarray([own[i] @ asked[str(q)] for i, q in enumerate(data["question"])], dtype=np.float32)
    gap = cosine.copy()
    for key in np.unique(data["q"]):
        mask = data["q"] == key
        gap[mask] -= cosine[mask].max()
    say(report("own-sentence cosine alone", data, cosine))
    base = list(range(data["X"].shape[1]))
    say(report("ranker as shipped", data, cross_validate(data, args.l2, base)))
    extended = {**data, "X": np.column_stack([data["X"], cosine, gap])}
    both = [*base, len(base), len(base) + 1]
    say(report("ranker + own-sentence cosine", extended, cross_validate(extended, args.l2, both)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
