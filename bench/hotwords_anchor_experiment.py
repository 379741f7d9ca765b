"""Experiment (not the shipped search): one HNSW vector per entry for its rarest 2-word span ("anchor"), looked up
with the hypothesis's 2-word windows, side by side with the shipped search on the same queries. JSON out.

    python bench/hotwords_anchor_experiment.py --dir /tmp/hw1m [--candidates 16 32] > anchor.json

Why: the shipped search looks up every 1..4-word window (~66 lookups per 27-word utterance), ~65 % of its time.
Here each entry is indexed once, by the 2-word span of it that fewest entries share (1-word entries: the word), with
that span's word offset; a hypothesis needs one lookup per word start (2-word windows, plus 1-word windows long
enough to be an approximate hit: a merged word boundary), and a neighbour's entry is verified from the window's word
minus its anchor offset, with the shipped verifier and acceptance. The anchor graph is built beside nothing: in memory
from ``--dir`` (an index built by hotwords_bench.py), ~2 minutes for 1M entries on 2 cores.

Queries as in hotwords_bench.py: 300 snippets per error rate (10 %, 20 %), 200 hotword-free 27-word utterances per
rate (0 %, 20 %), 100 utterances with two entities for timing (1 and 2 query threads).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

import hnswlib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from entities import FILLER_WORDS
from hotwords_bench import corrupt, join_words

from nim4asr_edge.hotwords import HotwordIndex


def build_anchors(idx: HotwordIndex) -> tuple[hnswlib.Index, np.ndarray, np.ndarray]:
    ent, b = idx.entry_table, idx.boundary_id
    spans, df = [], Counter()
    for r in range(len(ent.ids)):
        s = ent.seq(r)
        cut = np.flatnonzero(s == b)
        starts, ends = np.concatenate([[0], cut + 1]), np.concatenate([cut, [len(s)]])
        sp = [(0, 0, len(s))] if len(starts) == 1 else [(i, starts[i], ends[i + 1]) for i in range(len(starts) - 1)]
        spans.append(sp)
        df.update(s[a:e].tobytes() for _, a, e in sp)
    offset = np.zeros(len(ent.ids), np.int64)
    seqs = []
    for r, sp in enumerate(spans):
        s = ent.seq(r)
        i, a, e = min(sp, key=lambda x: (df[s[x[1]:x[2]].tobytes()], -(x[2] - x[1])))
        offset[r] = i
        seqs.append(s[a:e])
    alen = np.array([int((q != b).sum()) for q in seqs], np.int64)
    graph = hnswlib.Index(space="ip", dim=idx.options.dim)
    graph.init_index(max_elements=len(seqs), M=idx.options.M, ef_construction=idx.options.ef_construction)
    graph.set_num_threads(2)
    graph.add_items(idx.embed_sequences(seqs), np.arange(len(seqs)))
    return graph, offset, alen


def anchor_search(idx, graph, offset, alen, phonemes, opt, k: int, threads: int, top_k: int = 10):
    """The shipped exact stage, verifier and ranking; only the candidate generation differs."""
    ent, b = idx.entry_table, idx.boundary_id
    hyp = idx.clean_hypothesis(phonemes)
    cut = np.flatnonzero(hyp == b)
    starts, ends = np.concatenate([[0], cut + 1]), np.concatenate([cut, [len(hyp)]])
    seqs, word, wlen = [], [], []
    for wi in range(len(starts)):
        for c in (0, 1):
            if wi + c >= len(starts):
                break
            n = int(ends[wi + c] - starts[wi]) - c
            if n < 2 or (c == 0 and not opt.span_can_match(np.array([n]))[0]):
                continue
            seqs.append(hyp[starts[wi]:ends[wi + c]])
            word.append(wi)
            wlen.append(n)
    rows, first, sim = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    if seqs:
        labels, dist = graph.knn_query(idx.embed_sequences(seqs), k=k, num_threads=threads)
        win = np.repeat(np.arange(len(seqs)), labels.shape[1])
        rows, sim = labels.ravel().astype(np.int64), 1.0 - dist.ravel()
        first_word = np.asarray(word)[win] - offset[rows]
        keep = (sim >= opt.min_similarity) & (first_word >= 0) & ent.live[rows]
        keep &= (ent.nphon[rows] >= opt.approx_min_phonemes)
        keep &= np.abs(np.asarray(wlen)[win] - alen[rows]) <= opt.max_length_ratio * alen[rows] + 1
        rows, first, sim = rows[keep], starts[np.maximum(first_word[keep], 0)], sim[keep]
    return idx.search_candidates(hyp, rows, first, sim, top_k, opt), len(seqs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="an index built by hotwords_bench.py")
    ap.add_argument("--candidates", type=int, nargs="+", default=[16, 32])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    idx = HotwordIndex.open(args.dir, on_stale="error")
    ent = idx.entry_table
    opt = idx.search_options.for_entries(int(ent.live.sum()))
    t = time.perf_counter()
    graph, offset, alen = build_anchors(idx)
    result: dict = {"entries": int(ent.live.sum()), "anchor_build_s": round(time.perf_counter() - t, 1), "modes": {}}
    rng = random.Random(args.seed)
    filler = {w: list(p) for w, p in zip(FILLER_WORDS, idx.g2p.phonemize(FILLER_WORDS)) if p}
    fw, live = list(filler), np.flatnonzero(ent.live)

    def entity(r):
        return [idx.inventory[i] for i in ent.seq(int(r))]

    def ctx(a, b):
        return [filler[rng.choice(fw)] for _ in range(rng.randint(a, b))]

    rows = rng.sample(list(live), 300)
    snips = {p: [(r, corrupt(join_words(ctx(2, 4) + [entity(r)] + ctx(2, 4)), p, rng)) for r in rows] for p in (0.1, 0.2)}
    free = {p: [corrupt(join_words([filler[rng.choice(fw)] for _ in range(27)]), p, rng) for _ in range(200)]
            for p in (0.0, 0.2)}
    utts = [corrupt(join_words(ctx(5, 8) + [entity(rng.choice(live))] + ctx(6, 9) + [entity(rng.choice(live))]
                               + ctx(5, 8)), 0.1, rng) for _ in range(100)]
    modes = {"shipped": lambda ph, th: idx.search(ph, options=dataclasses.replace(opt, threads=th))}
    for k in args.candidates:
        graph.set_ef(max(opt.ef, k))
        modes[f"anchor_k{k}"] = lambda ph, th, k=k: anchor_search(idx, graph, offset, alen, ph, opt, k, th)[0]
    for name, fn in modes.items():
        if name.startswith("anchor"):
            graph.set_ef(max(opt.ef, int(name[len("anchor_k"):])))
        out = {f"recall_{int(p * 100)}pct": round(sum(any(h.id == int(ent.ids[r]) for h in fn(ph, 1)) for r, ph in ss)
                                                   / len(ss), 3) for p, ss in snips.items()}
        out.update({f"false_hints_{int(p * 100)}pct": round(sum(len(fn(u, 1)) for u in us) / len(us), 3)
                    for p, us in free.items()})
        for th in (1, 2):
            for u in utts[:10]:
                fn(u, th)
            times = []
            for u in utts:
                t = time.perf_counter()
                fn(u, th)
                times.append(time.perf_counter() - t)
            out[f"utterance_p50_ms_{th}_threads"] = round(1000 * float(np.median(times)), 2)
        result["modes"][name] = out
    result["lookups_per_utterance"] = {
        "shipped": round(float(np.mean([len(idx.windows(idx.clean_hypothesis(u), opt)) for u in utts])), 1),
        "anchor": round(float(np.mean([anchor_search(idx, graph, offset, alen, u, opt, 16, 1)[1] for u in utts])), 1)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
