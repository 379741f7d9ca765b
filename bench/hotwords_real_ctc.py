"""Hotword retrieval on real CTC output: the reference bundle's phoneme hypotheses of held-out synthetic clips.

    cd examples && PYTHONPATH=. python ../bench/hotwords_real_ctc.py --base-dir /tmp/hw1m > real_ctc.json

Stores: the held-out clips' own entities (never seen in training) alone; 10,000 generated entities plus them; and
``--base-dir``, an index built by ``hotwords_bench.py`` (1M generated entities), copied, plus them. Each clip is run
through the bundle's encoder and its greedy phoneme hypothesis is searched, side by side in one run: exact matching
only (the paper's method), the default search (measured substitution costs, free phonemes of the length-aware rule
by list size), the default with unit substitution costs, and the default with the million-entry rule at any size
(``cost_free_phonemes=5.5``). Reported: share of the clips' entities among the top-K hits ("hint recall"), hits per
entity-free clip (false hints), other hits per clip with entities, and per-clip search time. The substitution costs
were measured on the training clips only (``measure_confusions``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from entities import generate_entities


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base-dir", required=True, help="an index built by hotwords_bench.py (copied, not changed)")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    from reference_model.data import load_split
    from reference_model.textnorm import normalize

    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.hotwords import HotwordIndex

    clips = [c for s in ("eval_clean", "eval_noisy") for c in load_split(s)[0]]
    with Recognizer(None, RecognizerOptions(threads=2)) as rec:
        engine = rec.engine
        hyps = []
        for c in clips:
            out = engine.encode(c.wav.numpy().astype(np.float32) / 32767.0)
            hyps.append(engine.acoustic_evidence([out.phoneme_logprobs]).symbols)
        inventory = rec.bundle.phoneme_inventory
    ents = sorted({e for c in clips for e in c.meta.get("entities") or []})
    result: dict = {"clips": len(clips), "entity_clips": sum(bool(c.meta.get("entities")) for c in clips),
                    "entities": len(ents), "top_k": args.top_k, "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(args.base_dir, Path(tmp) / "big")
        stores = {"own_entities": lambda: HotwordIndex.build(ents, Path(tmp) / "own", "espeak-ng:en-us", inventory),
                  "10k_generated_plus_own": lambda: HotwordIndex.build(
                      list(dict.fromkeys([*generate_entities(10_000, seed=3), *ents])), Path(tmp) / "10k",
                      "espeak-ng:en-us", inventory),
                  "1m_generated_plus_own": lambda: HotwordIndex.open(Path(tmp) / "big", on_stale="error")}
        for name, make in stores.items():
            with make() as idx:
                if name.startswith("1m"):
                    idx.add(ents)  # already-stored ones are reported as duplicates, not added twice
                default = dataclasses.replace(idx.search_options, threads=args.threads)
                modes = {"exact_aho_corasick": dataclasses.replace(default, approximate=False), "hnsw": default,
                         "hnsw_unit_costs": dataclasses.replace(default, phoneme_costs=False),
                         "hnsw_free_5.5": dataclasses.replace(default, cost_free_phonemes=5.5)}
                live = idx.stats()["entries"]
                result["stores"][name] = {"entries": live,
                                          "cost_free_phonemes_default": default.for_entries(live).cost_free_phonemes,
                                          "modes": {m: _score(idx, clips, hyps, opt, args.top_k, normalize)
                                                    for m, opt in modes.items()}}
        result["costs_source"] = idx.costs.source if idx.costs else None
    print(json.dumps(result, indent=1, ensure_ascii=False))


def _score(idx, clips, hyps, opt, top_k: int, normalize) -> dict:
    found = total = false = free = wrong = 0
    ms = []
    for c, hyp in zip(clips, hyps):
        t = time.perf_counter()
        hits = idx.search(hyp, top_k=top_k, options=opt)
        ms.append(1000 * (time.perf_counter() - t))
        want = {normalize(e) for e in c.meta.get("entities") or []}
        if want:
            got = {normalize(h.text) for h in hits}
            found += len(want & got)
            total += len(want)
            wrong += len(got - want)
        else:
            free += 1
            false += len(hits)
    return {"hint_recall": round(found / max(total, 1), 4), "entities_found": found, "entity_mentions": total,
            "false_hints_per_entity_free_clip": round(false / max(free, 1), 3), "entity_free_clips": free,
            "other_hints_per_entity_clip": round(wrong / max(len(clips) - free, 1), 3),
            "search_ms_p50": round(float(np.median(ms)), 2), "search_ms_p90": round(float(np.percentile(ms, 90)), 2)}


if __name__ == "__main__":
    sys.exit(main())
