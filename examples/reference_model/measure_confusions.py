"""Measure which phonemes the reference CTC head confuses and write the hotword verifier's substitution costs.

    python -m reference_model.measure_confusions [--ctc CKPT] [--out PATH]

The head's greedy output on every training clip is aligned to the clip's eSpeak phonemes (the held-out clips stay
out: they evaluate retrieval on real CTC output, ``bench/hotwords_real_ctc.py``); the substitution counts become a
:class:`nim4asr_edge.hotwords.costs.PhonemeCosts` table, written to ``--out`` (default: the SDK's shipped English
table). Prints the error breakdown and the table's pairs as JSON.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from nim4asr_edge.hotwords.costs import ENGLISH_COSTS_FILE, costs_from_confusions

from .data import load_split
from .model import CTCHead, GlueConfig
from .posteriors import BLANK, align_pairs
from .resources import WORK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ctc", default=str(WORK / "ckpt" / "ctc_s3.pt"), help="train_ctc.py checkpoint of the head")
    ap.add_argument("--out", default=str(ENGLISH_COSTS_FILE))
    args = ap.parse_args()
    torch.set_num_threads(2)
    ck = torch.load(args.ctc, map_location="cpu", weights_only=False)
    inventory = list(ck["inventory"])
    if "config" not in ck:
        raise SystemExit(f"{args.ctc} does not record its head's config")
    head = CTCHead(GlueConfig(**ck["config"]))
    head.load_state_dict(ck["state"])
    head.eval()
    sym = {p: i for i, p in enumerate(inventory)}
    n = len(inventory)
    counts = np.zeros((n + 1, n + 1), np.int64)  # last row / column: nothing (insertion / deletion)
    clips = load_split("train")[0]
    with torch.no_grad():
        for c in clips:
            best = head(c.feat.float()).argmax(-1).tolist()
            hyp = [i for k, i in enumerate(best) if i != BLANK and (k == 0 or i != best[k - 1])]
            ref = [sym[p] for p in c.meta["phonemes"] if p in sym]
            for a, b in align_pairs(ref, hyp):
                counts[n if a is None else a, n if b is None else b] += 1
    source = (f"greedy output of {Path(args.ctc).name} (step {ck.get('step')}) on the {len(clips)} synthetic training "
              "clips, reference_model.measure_confusions")
    costs = costs_from_confusions(counts[:n, :n], inventory, source)
    costs.save(args.out)
    ref_total = int(counts[:n].sum())
    substitutions = counts[:n, :n].sum() - np.trace(counts[:n, :n])
    print(json.dumps({"clips": len(clips), "reference_phonemes": ref_total,
                      "substitution_rate": round(float(substitutions / ref_total), 4),
                      "deletion_rate": round(float(counts[:n, n].sum() / ref_total), 4),
                      "insertion_rate": round(float(counts[n, :n].sum() / ref_total), 4),
                      "out": args.out, "pairs": [" ".join(map(str, p)) for p in costs.pairs]}, ensure_ascii=False,
                     indent=1))


if __name__ == "__main__":
    main()
