"""Would sentences encoded on their own rank better than the vectors pooled inside their chunk?

    python experiments/fit_ranker.py --no-write      # collects /tmp/fit-ranker/table.npz first
    python experiments/try_sentence_cosine.py
    python experiments/try_sentence_cosine.py --probes   # also the frozen encoder's 384-d probes

Each candidate sentence of fit_ranker's table is encoded alone (the packaged encoder, as a
question-time step would) and its cosine to the question is scored alone and as one more
ranker feature, with the same folds grouped by document. `--probes` adds, as 384 more features
each (L2 0.1): the product of the question's and the sentence's vectors, and the vector of
"question [SEP] sentence" encoded as one text, a linear probe of the frozen encoder reading
both at once.
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
    parser.add_argument("--probes", action="store_true")
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
    if args.probes:
        texts = [str(t) for t in data["text"]]
        product = own * np.asarray([asked[str(q)] for q in data["question"]], dtype=np.float32)
        pairs_file = args.cache.with_name("pair_vectors.npy")
        if pairs_file.exists():
            pairs = np.load(pairs_file)
        else:
            joined = [f"{q} [SEP] {t}" for q, t in zip(map(str, data["question"]), texts)]
            pairs = np.asarray(embedder.embed_documents(joined), dtype=np.float32)
            np.save(pairs_file, pairs)
        for name, extra in (("question * sentence", product), ("question [SEP] sentence", pairs)):
            probed = {**data, "X": np.column_stack([data["X"], cosine, extra])}
            keep = list(range(probed["X"].shape[1]))
            say(report(f"ranker + {name}", probed, cross_validate(probed, 0.1, keep)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
