"""Hotword retrieval on real CTC output: the reference bundle's phoneme hypotheses of held-out synthetic clips.

    cd examples && PYTHONPATH=. python ../bench/hotwords_real_ctc.py --base-dir /tmp/hw1m > real_ctc.json

``--base-dir`` is an index built by ``hotwords_bench.py`` (1M generated entities); it is copied, and the entities of
the held-out clips (never seen in training) are added to the copy. Each clip is run through the bundle's encoder and
its greedy phoneme hypothesis is searched, side by side in one run: exact matching only (the paper's method), the
default search (measured substitution costs), and the default search with unit substitution costs. Reported: share
of the clips' entities among the top-K hits ("hint recall"), hits per entity-free clip (false hints), other hits
per clip with entities, and per-clip search time. The substitution costs were measured on the training clips only (``measure_confusions``).
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
    from nim4asr_edge.phonemes import ctc_greedy

    clips = [c for s in ("eval_clean", "eval_noisy") for c in load_split(s)[0]]
    with Recognizer(None, RecognizerOptions(threads=2)) as rec:
        hyps = []
        for c in clips:
            out = rec.encoder.run(rec.frontend(c.wav.numpy().astype(np.float32) / 32767.0))
            hyps.append(ctc_greedy(out.phoneme_logprobs, rec.inventory, rec.blank).symbols)
    ents = sorted({e for c in clips for e in c.meta.get("entities") or []})
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(args.base_dir, Path(tmp) / "i")
        with HotwordIndex.open(Path(tmp) / "i", on_stale="error") as idx:
            before = idx.stats()["entries"]
            report = idx.add(ents)
            default = dataclasses.replace(idx.search_options, threads=args.threads)
            modes = {"exact_aho_corasick": dataclasses.replace(default, approximate=False), "hnsw": default,
                     "hnsw_unit_costs": dataclasses.replace(default, phoneme_costs=False)}
            result: dict = {"clips": len(clips), "entity_clips": sum(bool(c.meta.get("entities")) for c in clips),
                            "entities": len(ents), "store_entries": before + len(ents) - len(report.skipped),
                            "skipped": [(s.text, s.reason) for s in report.skipped], "top_k": args.top_k,
                            "costs_source": idx.costs.source if idx.costs else None, "modes": {}}
            for mode, opt in modes.items():
                found = total = false = free = wrong = 0
                ms = []
                for c, hyp in zip(clips, hyps):
                    t = time.perf_counter()
                    hits = idx.search(hyp, top_k=args.top_k, options=opt)
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
                result["modes"][mode] = {"hint_recall": round(found / max(total, 1), 4), "entities_found": found,
                                         "entity_mentions": total,
                                         "false_hints_per_entity_free_clip": round(false / max(free, 1), 3),
                                         "entity_free_clips": free,
                                         "other_hints_per_entity_clip": round(wrong / max(len(clips) - free, 1), 3), "search_ms_p50": round(float(np.median(ms)), 2),
                                         "search_ms_p90": round(float(np.percentile(ms, 90)), 2)}
    print(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    sys.exit(main())
