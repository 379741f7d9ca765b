"""Hotwords end to end on the reference model: entity recall and WER with a large store vs none vs only the right one.

    cd examples && PYTHONPATH=. python ../bench/hotwords_e2e.py --store-size 100000 --clips 12 > e2e.json

Utterances: held-out synthetic clips with entities (the recipe's eval sets, their audio; entities never seen in
training). Conditions: no hotwords; a store of ``--store-size`` generated entities (bench/entities.py) plus every
evaluated clip's entities; a store holding only that clip's entities. The hints come from retrieval over the
bundle's CTC phonemes (no oracle), so the figure measures retrieval and the LLM's use of hints together.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from entities import generate_entities


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store-size", type=int, default=100_000)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from reference_model.data import load_split
    from reference_model.textnorm import normalize, wer_counts

    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.hotwords import HotwordIndex

    clips = [c for s in ("eval_clean", "eval_noisy") for c in load_split(s)[0] if c.meta.get("entities")][: args.clips]
    ents = sorted({e for c in clips for e in c.meta["entities"]})
    out: dict = {"clips": len(clips), "entities": len(ents), "store_size": args.store_size}
    with tempfile.TemporaryDirectory() as tmp:
        base = Recognizer(None, RecognizerOptions(threads=args.threads))
        t = time.perf_counter()
        words = list(dict.fromkeys([*generate_entities(args.store_size, seed=7), *ents]))
        big = HotwordIndex.build(words, Path(tmp) / "big", "espeak-ng:en-us", base.bundle.phoneme_inventory)
        out["store_build_s"] = round(time.perf_counter() - t, 1)
        out["store_entries"] = len(words)
        conds = {"none": None, "large_store": big}
        for name, hw in conds.items():
            rec = Recognizer(base.bundle, RecognizerOptions(threads=args.threads), hotwords=hw)
            out[name] = _score(rec, clips, normalize, wer_counts)
            rec.close()
        rows = []
        for c in clips:  # only the right hotwords: one small store per clip
            rec = Recognizer(base.bundle, RecognizerOptions(threads=args.threads), hotwords=list(c.meta["entities"]))
            rows.append(_score(rec, [c], normalize, wer_counts, keep_rows=True))
            rec.close()
        out["only_right"] = _merge(rows)
        base.close()
    print(json.dumps(out, indent=1, ensure_ascii=False))


def _score(rec, clips, normalize, wer_counts, keep_rows: bool = False) -> dict:
    err = words = 0
    hits, raw_hits, n_hints, retrieval_ms = [], [], [], []
    for c in clips:
        audio = c.wav.numpy().astype(np.float32) / 32767.0
        res = rec.transcribe(audio, sample_rate=16000)
        e, n = wer_counts(c.meta["text"], res.text)
        err, words = err + e, words + n
        hits += [normalize(x) in normalize(res.text) for x in c.meta["entities"]]
        raw_hits += [normalize(x) in normalize(res.unguarded_text) for x in c.meta["entities"]]
        n_hints.append(sum(len(s.hints) for s in res.segments))
        retrieval_ms.append(1000 * res.timings.hotwords)
    return {"err": err, "words": words, "wer": err / max(words, 1), "entity_recall": float(np.mean(hits)),
            "entity_recall_raw": float(np.mean(raw_hits)), "hints_per_clip": float(np.mean(n_hints)),
            "retrieval_ms_per_clip": float(np.mean(retrieval_ms)), "_hits": hits, "_raw_hits": raw_hits}


def _merge(rows: list[dict]) -> dict:
    err, words = sum(r["err"] for r in rows), sum(r["words"] for r in rows)
    hits = [h for r in rows for h in r["_hits"]]
    raw = [h for r in rows for h in r["_raw_hits"]]
    return {"wer": err / max(words, 1), "entity_recall": float(np.mean(hits)), "entity_recall_raw": float(np.mean(raw)),
            "hints_per_clip": float(np.mean([r["hints_per_clip"] for r in rows]))}


if __name__ == "__main__":
    main()
