"""Recall and false hints of an existing index at several cost_free_phonemes values, side by side (JSON lines).

    python bench/hotwords_free_phonemes.py --dir /work/hw10m --free 5.5 6.0 6.5

200 snippet queries (a stored entry inside 2-4 filler words) at 10 and 20 % phoneme error, and 100 hotword-free
27-word utterances at 0 and 20 % error, the same for every value (error model and definitions: hotwords_bench.py).
Used to extend ``cost_free_for`` beyond the sizes ``hotwords_size_sweep.py`` builds (10M entries).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hotwords_bench import Material, corrupt, join_words

from nim4asr_edge.hotwords import HotwordIndex


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--free", type=float, nargs="+", default=[5.5, 6.0, 6.5])
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    idx = HotwordIndex.open(args.dir, on_stale="error")
    ent = idx.entry_table
    rng = random.Random(args.seed)
    m = Material(idx)
    rows = rng.sample(list(m.live), 200)
    snips = {rate: [(r, corrupt(join_words(m.ctx(rng, 2, 4) + [m.entity(r)] + m.ctx(rng, 2, 4)), rate, rng))
                    for r in rows] for rate in (0.1, 0.2)}
    free = {rate: [corrupt(join_words(m.ctx(rng, 27, 27)), rate, rng) for _ in range(100)] for rate in (0.0, 0.2)}
    for fr in args.free:
        opt = dataclasses.replace(idx.search_options, cost_free_phonemes=fr)
        out = {"entries": len(m.live), "cost_free_phonemes": fr}
        for rate, sn in snips.items():
            found = sum(any(h.id == int(ent.ids[q]) for h in idx.search(ph, options=opt)) for q, ph in sn)
            out[f"recall_{int(rate * 100)}pct"] = found / len(sn)
        for rate, us in free.items():
            out[f"false_hints_{int(rate * 100)}pct"] = float(np.mean([len(idx.search(u, options=opt)) for u in us]))
        print(json.dumps(out), flush=True)
    idx.close()


if __name__ == "__main__":
    main()
