"""Calibrate the evidence guard's threshold on held-out clips that the bundle evaluation does not report on, JSON out.

    python -m reference_model.calibrate_guard [--bundle DIR] [--skip 25]

For each held-out synthetic clip after the first ``--skip`` of each set (``evaluate_bundle --limit 25`` reports on
those), the bundle's unguarded text and its phoneme error against the CTC evidence are recorded; an output counts as
invented when its WER exceeds ``--invented-wer``. Per threshold: how often the guard fires, the share of invented
outputs it catches, the share of the others it withholds, and the mean WER with and without the guard (a withheld
segment counts as all deletions).
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from .data import load_split
from .evaluate_bundle import _run
from .textnorm import wer_counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--skip", type=int, default=25, help="clips per set left to the evaluation")
    ap.add_argument("--invented-wer", type=float, default=0.7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from nim4asr_edge import Recognizer, RecognizerOptions

    errors, wers = [], []
    with Recognizer(args.bundle, RecognizerOptions(threads=args.threads)) as rec:
        if rec.engine.guard is None:
            raise SystemExit("this bundle declares no evidence guard")
        for split in ("eval_clean", "eval_noisy"):
            for c in load_split(split)[0][args.skip:]:
                out = _run(rec, c.wav.numpy().astype(np.float32) / 32767.0, [])
                e, n = wer_counts(c.meta["text"], out["raw"])
                errors.append(1.0 - (out["confidence"] if out["confidence"] is not None else 1.0))
                wers.append(e / max(n, 1))
        current = rec.engine.guard.options.max_phoneme_error
    d, w = np.asarray(errors), np.asarray(wers)
    invented = w > args.invented_wer
    rows = []
    for th in (0.4, 0.5, 0.6, 0.7, 0.8, 0.9):
        fired = d > th
        rows.append({"threshold": th, "fires": round(float(fired.mean()), 3),
                     "invented_caught": round(float(fired[invented].mean()), 3) if invented.any() else None,
                     "others_withheld": round(float(fired[~invented].mean()), 3) if (~invented).any() else None,
                     "wer_guarded": round(float(np.where(fired, 1.0, w).mean()), 4)})
    print(json.dumps({"clips": len(w), "invented": int(invented.sum()), "invented_wer": args.invented_wer,
                      "wer_unguarded": round(float(w.mean()), 4), "bundle_threshold": current, "thresholds": rows},
                     indent=1))


if __name__ == "__main__":
    main()
