"""How often does the model copy a hint that is not in the audio into its text? JSON out.

    cd examples && python ../bench/hint_leak.py --limit 40 > ../bench/results/hint_leak_ref_en.json

On held-out synthetic clips of the reference recipe (``python -m reference_model.datagen --split eval_clean``), each
clip is transcribed with 0, 3 and 10 distractor hints (names absent from the clip) and, for clips with an entity,
with the right entity among 3 distractors. A clip "leaks" when a distractor appears in the text. Every row runs the
same clips with the guard off (the LLM's own text) and on, for ``RecognizerOptions.hint_check`` off and at each
threshold given: the hints the acoustic evidence does not support are left out of the prompt. The cost of that check
is the entity recall with the right hint (the right entity must appear in the text).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _contains(text: str, phrase: str, normalize) -> bool:
    return f" {normalize(phrase)} " in f" {normalize(text)} "


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--limit", type=int, default=40, help="held-out clips")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checks", default="0.3,0.5", help="hint_check thresholds to compare with no check")
    args = ap.parse_args()
    sys.path.insert(0, os.getcwd())  # the recipe package lives in examples/
    from reference_model.corpus import distractors
    from reference_model.data import load_split
    from reference_model.textnorm import normalize

    from nim4asr_edge import Recognizer, RecognizerOptions

    clips = load_split("eval_clean")[0][: args.limit]
    if not clips:
        raise SystemExit("no held-out clips: run python -m reference_model.datagen --split eval_clean first")
    t0 = time.time()
    out: dict = {"clips": len(clips), "entity_clips": sum(bool(c.meta.get("entities")) for c in clips),
                 "threads": args.threads, "load_average_start": os.getloadavg()[0], "rows": []}
    for check in [None, *(float(x) for x in args.checks.split(",") if x)]:
        options = RecognizerOptions(threads=args.threads, guard="auto", hint_check=check)
        with Recognizer(args.bundle, options) as rec:
            for k in (0, 3, 10):
                r = np.random.default_rng(1000 + k)
                leaks = shown = 0
                for c in clips:
                    hints = distractors(r, k, set(c.meta.get("entities") or []))
                    res = rec.transcribe(c.wav.numpy().astype(np.float32) / 32767.0, sample_rate=16000, hints=hints)
                    leaks += any(_contains(res.unguarded_text, h, normalize) for h in hints)
                    shown += any(_contains(res.text, h, normalize) for h in hints)
                out["rows"].append({"hint_check": check, "distractors": k, "leak_rate_guard_off": leaks / len(clips),
                                    "leak_rate_guard_on": shown / len(clips)})
            r = np.random.default_rng(7)
            hits = raw_hits = n = 0
            for c in clips:
                ents = c.meta.get("entities") or []
                if not ents:
                    continue
                hints = [ents[0], *distractors(r, 3, set(ents))]
                r.shuffle(hints)
                res = rec.transcribe(c.wav.numpy().astype(np.float32) / 32767.0, sample_rate=16000, hints=hints)
                n += 1
                hits += _contains(res.text, ents[0], normalize)
                raw_hits += _contains(res.unguarded_text, ents[0], normalize)
            out["rows"].append({"hint_check": check, "right_entity_among_3": n,
                                "entity_recall_guard_off": raw_hits / max(n, 1),
                                "entity_recall_guard_on": hits / max(n, 1)})
        print(json.dumps(out["rows"][-4:]), file=sys.stderr)
    out["seconds"] = round(time.time() - t0, 1)
    out["load_average_end"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
