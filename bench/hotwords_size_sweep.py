"""Length-aware rule vs list size: recall under 20 % phoneme error and false hints per hotword-free utterance for
several ``cost_free_phonemes`` at several numbers of entries, JSON lines out (calibrates ``cost_free_for``).

    python bench/hotwords_size_sweep.py --sizes 100 1000 10000 100000 --index-1m /tmp/hw1m > size_sweep.jsonl

Lists of each size are generated (bench/entities.py, seed 9) and built in a temporary directory; ``--index-1m``
reuses an index built by hotwords_bench.py for 1,000,000. Queries and utterances as in hotwords_bench.py (200
snippets at 20 % error; 100 hotword-free 27-word utterances at 0 % and at 20 % error). Every line also gives the
value ``cost_free_for`` picks for that size.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from entities import FILLER_WORDS, generate_entities
from hotwords_bench import corrupt, join_words

from nim4asr_edge.hotwords import (
    ENGLISH_INVENTORY,
    EspeakG2P,
    HotwordIndex,
    SearchOptions,
    cost_free_for,
)


def sweep(idx: HotwordIndex, filler: dict, frees: list[float], seed: int) -> list[dict]:
    rng = random.Random(seed)
    fw = list(filler)
    ent = idx.entry_table
    live = np.flatnonzero(ent.live)

    def entity(r):
        return [idx.inventory[i] for i in ent.seq(int(r))]

    def ctx():
        return [filler[rng.choice(fw)] for _ in range(rng.randint(2, 4))]

    rows = rng.sample(list(live), min(200, len(live)))
    snips = [(r, corrupt(join_words(ctx() + [entity(r)] + ctx()), 0.2, rng)) for r in rows]
    free_utts = {rate: [corrupt(join_words([filler[rng.choice(fw)] for _ in range(27)]), rate, rng) for _ in range(100)]
                 for rate in (0.0, 0.2)}
    out = []
    for f in frees:
        opt = SearchOptions(cost_free_phonemes=f)
        found = sum(any(h.id == int(ent.ids[r]) for h in idx.search(ph, options=opt)) for r, ph in snips)
        fh = {rate: sum(len(idx.search(u, options=opt)) for u in us) / len(us) for rate, us in free_utts.items()}
        out.append({"entries": len(live), "cost_free_phonemes": f,
                    "default_for_size": round(cost_free_for(len(live)), 2),
                    "recall_at_20pct": round(found / len(snips), 3), "false_hints_0pct": round(fh[0.0], 3),
                    "false_hints_20pct": round(fh[0.2], 3)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 1000, 10_000, 100_000])
    ap.add_argument("--index-1m", default=None, help="an index of 1,000,000 entries built by hotwords_bench.py")
    ap.add_argument("--free", type=float, nargs="*", default=[2.0, 3.0, 4.0, 4.5, 5.0, 5.5])
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    g2p = EspeakG2P()
    filler = {w: list(p) for w, p in zip(FILLER_WORDS, g2p.phonemize(FILLER_WORDS)) if p}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            with HotwordIndex.build(list(generate_entities(n, seed=9)), Path(tmp) / "i", g2p, ENGLISH_INVENTORY) as idx:
                for row in sweep(idx, filler, args.free, args.seed):
                    print(json.dumps(row), flush=True)
    if args.index_1m:
        with HotwordIndex.open(args.index_1m, on_stale="error") as idx:
            for row in sweep(idx, filler, args.free, args.seed):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
