"""Accuracy of each mobile quantisation against the desktop bundle on held-out synthetic speech, JSON out.

    cd examples && python -m mobile.evaluate --mobile /work/mobile_work/bundles/ref-en-mobile \
        [--desktop BUNDLE] [--limit 25] [--clips-out /work/mobile_work/clips] > mobile/results/accuracy.json

Reuses the reference recipe's held-out sets (``reference_model.data.load_split``: eval_clean and eval_noisy, the
same clips and WER as ``reference_model.evaluate_bundle``) and runs every clip through the runtime with the desktop
bundle and with each LLM quantisation of the mobile bundle (ORT-format encoder). Reported per set and bundle: WER
with the evidence guard on and off, guard firing rate, and per clip whether the text and the phoneme hypothesis are
identical to the desktop bundle's. ``--clips-out`` also writes the first clips of each set as 16-kHz WAV with
their reference text (``clips.json``): the fixed clip set the profiles and the ARM64 check read (no PyTorch there).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from reference_model.data import load_split
from reference_model.datagen import is_heldout_voice
from reference_model.textnorm import wer_counts

SETS = ("eval_clean", "eval_noisy")
RATE = 16000


def run_bundle(bundle: str | None, quant: str | None, clips: dict[str, list], threads: int) -> dict:
    """Transcribe every clip with one bundle/quantisation: per-clip text, raw text, phonemes, and set totals."""
    from nim4asr_edge import Recognizer, RecognizerOptions

    rec = Recognizer(bundle, RecognizerOptions(threads=threads, llm_quant=quant))
    out = {"bundle": str(rec.bundle.path), "encoder_file": rec.engine.encoder.path.name,
           "llm_file": Path(rec.bundle.llm_path(quant)).name, "sets": {}}
    for name, items in clips.items():
        rows, err, raw_err, words, audio_s, compute_s = [], 0, 0, 0, 0.0, 0.0
        for c in items:
            audio = c.wav.numpy().astype(np.float32) / 32767.0
            res = rec.transcribe(audio, sample_rate=RATE)
            e, n = wer_counts(c.meta["text"], res.text)
            err, words = err + e, words + n
            raw_err += wer_counts(c.meta["text"], res.unguarded_text)[0]
            audio_s, compute_s = audio_s + res.duration, compute_s + res.timings.total
            rows.append({"text": res.text, "raw": res.unguarded_text, "phonemes": [s.phonemes for s in res.segments],
                         "withheld": any(s.withheld for s in res.segments), "err": e, "n": n,
                         "unseen_voice": bool(is_heldout_voice(c.meta["voice"]))})
        out["sets"][name] = {"clips": len(rows), "words": words, "wer": err / max(words, 1),
                             "wer_raw": raw_err / max(words, 1),
                             "guard_fired": sum(r["withheld"] for r in rows) / max(len(rows), 1),
                             "rtf": compute_s / max(audio_s, 1e-9), "rows": rows}
    rec.close()
    return out


def compare(ref: dict, other: dict) -> dict:
    """Per set: clips whose guarded text, raw text and phoneme hypothesis equal the reference run's."""
    res = {}
    for name, s in other["sets"].items():
        pairs = list(zip(ref["sets"][name]["rows"], s["rows"]))
        res[name] = {"same_text": sum(a["text"] == b["text"] for a, b in pairs),
                     "same_raw_text": sum(a["raw"] == b["raw"] for a, b in pairs),
                     "same_phonemes": sum(a["phonemes"] == b["phonemes"] for a, b in pairs),
                     "clips": len(pairs)}
    return res


def write_clips(clips: dict[str, list], out: Path, per_set: int) -> Path:
    """The first ``per_set`` clips of each set as 16-bit WAV plus ``clips.json`` (file, set, reference text)."""
    import soundfile as sf

    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, items in clips.items():
        for i, c in enumerate(items[:per_set]):
            f = f"{name}_{i:02d}.wav"
            sf.write(out / f, c.wav.numpy().astype(np.int16), RATE, subtype="PCM_16")
            index.append({"file": f, "set": name, "text": c.meta["text"]})
    (out / "clips.json").write_text(json.dumps(index, indent=1, ensure_ascii=False) + "\n")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mobile", required=True, help="mobile bundle (examples/mobile/make_bundle.py)")
    ap.add_argument("--desktop", default=None, help="desktop bundle (default: the SDK's default bundle)")
    ap.add_argument("--limit", type=int, default=25, help="clips per held-out set")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clips-out", type=Path, default=None, help="also write a fixed WAV clip set here")
    ap.add_argument("--clips-per-set", type=int, default=4)
    args = ap.parse_args()
    from nim4asr_edge.bundle import Bundle

    clips = {s: load_split(s)[0][: args.limit] for s in SETS}
    missing = [s for s, c in clips.items() if not c]
    clips = {s: c for s, c in clips.items() if c}  # a set this machine has not generated is reported as missing
    if not clips:
        raise SystemExit("no held-out clips found: run the reference recipe's data generation first")
    if args.clips_out:
        write_clips(clips, args.clips_out, args.clips_per_set)
    t0, load0 = time.time(), os.getloadavg()
    mobile = Bundle.load(args.mobile)
    desktop = run_bundle(args.desktop, None, clips, args.threads)
    out = {"desktop": desktop, "mobile": {}}
    for q in mobile.manifest.llm["files"]:
        run = run_bundle(args.mobile, q, clips, args.threads)
        run["same_as_desktop"] = compare(desktop, run)
        run["app_bytes"] = mobile.manifest.extra.get("mobile", {}).get("app_bytes", {}).get(q)
        out["mobile"][q] = run
    out["summary"] = {
        label: {"bytes": run.get("app_bytes"), **{s: {k: round(v, 4) for k, v in run["sets"][s].items()
                                                         if k in ("wer", "wer_raw", "guard_fired", "rtf")}
                                                    for s in clips}, "same_as_desktop": run.get("same_as_desktop")}
        for label, run in [("desktop", desktop), *((f"mobile {q}", r) for q, r in out["mobile"].items())]}
    out["missing_sets"] = missing
    out["machine"] = {"cpus": os.cpu_count(), "threads": args.threads, "loadavg_start": load0,
                      "loadavg_end": os.getloadavg(), "wall_s": round(time.time() - t0, 1),
                      "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime())}
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
