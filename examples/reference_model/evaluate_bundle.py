"""Evaluate a *bundle* through the SDK runtime (onnxruntime encoder + llama.cpp LLM + evidence guard), JSON out.

    python -m reference_model.evaluate_bundle [--bundle DIR] [--precision int8] [--limit 40] > bundle_eval.json

This measures what users get (the exported ONNX graph, the Q4_1 GGUF, the guard), unlike ``evaluate.py`` which
scores the PyTorch glue. Sets: jfk.wav (real speech, peer = Whisper tiny.en's own decoder on the same weights),
held-out synthetic clean / noisy (seen vs unseen voices; peer transcripts were stored at generation time), entity
recall with the right hint among distractors / distractors only / no hints, and silence/noise-only clips (any
non-empty output counts as a hallucination). Every text figure is given with the guard on (shipped behaviour) and
off (``raw``: the LLM's text before the guard), with the guard's firing rate.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

from .data import load_split
from .datagen import is_heldout_voice
from .resources import JFK_TEXT, JFK_WAV
from .textnorm import normalize, wer_counts


# The runtime alone, in a fresh process: this evaluation's own process also holds PyTorch, the Whisper peer and the
# evaluation audio, so its peak RSS says nothing about what a user's process needs.
_FOOTPRINT = """
import json, sys
from nim4asr_edge import Recognizer, RecognizerOptions, load_audio
bundle, threads, precision, wav = sys.argv[1:5]
rec = Recognizer(bundle or None, RecognizerOptions(threads=int(threads), encoder_precision=precision or None))
audio = load_audio(wav, 16000)
rtf = sorted(rec.transcribe(audio, sample_rate=16000).timings.total / (len(audio) / 16000) for _ in range(3))
print(json.dumps({"load_seconds": rec.load_seconds, "rtf_median_of_3": rtf[1]}))
"""


def runtime_footprint(bundle: str | None, precision: str | None, threads: int) -> dict:
    """Peak RSS and RTF of a process that only loads the bundle and transcribes jfk.wav three times."""
    proc = subprocess.run([sys.executable, "-c", _FOOTPRINT, bundle or "", str(threads), precision or "", str(JFK_WAV)],
                          capture_output=True, text=True, check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # KiB on Linux; the only child so far
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "peak_rss_mb": round(peak, 1)}


def _run(rec, audio: np.ndarray, hints: list[str]) -> dict:
    res = rec.transcribe(audio, sample_rate=16000, hints=hints)
    return {"text": res.text, "raw": res.unguarded_text, "fired": any(s.withheld for s in res.segments),
            "seconds": res.duration,
            "compute": res.timings.total, "confidence": res.confidence, "encoder_file": res.options["encoder_file"]}


def score_set(rec, clips, hints_mode: str = "none", seed: int = 99) -> dict:
    from .corpus import distractors

    r = np.random.default_rng(seed)
    tot = {"err": 0, "raw_err": 0, "peer_err": 0, "words": 0}
    rows, fired, non_empty, raw_non_empty, hits, raw_hits = [], 0, 0, 0, [], []
    audio_s = compute_s = 0.0
    for c in clips:
        ents = c.meta.get("entities") or []
        hints: list[str] = []
        if hints_mode == "right" and ents:
            hints = [ents[0], *distractors(r, 3, set(ents))]
            r.shuffle(hints)
        elif hints_mode == "distractors":
            hints = distractors(r, 4, set(ents))
        audio = c.wav.numpy().astype(np.float32) / 32767.0
        out = _run(rec, audio, hints)
        ref = c.meta["text"]
        e, n = wer_counts(ref, out["text"])
        tot["err"] += e
        tot["raw_err"] += wer_counts(ref, out["raw"])[0]
        tot["words"] += n
        if "peer" in c.meta:
            tot["peer_err"] += wer_counts(ref, c.meta["peer"])[0]
        fired += out["fired"]
        non_empty += bool(normalize(out["text"]))
        raw_non_empty += bool(normalize(out["raw"]))
        hits += [normalize(x) in normalize(out["text"]) for x in ents]
        raw_hits += [normalize(x) in normalize(out["raw"]) for x in ents]
        audio_s += out["seconds"]
        compute_s += out["compute"]
        rows.append({"ref": ref, "hyp": out["text"], "raw": out["raw"], "fired": out["fired"], "voice": c.meta["voice"],
                     "wer_err": e, "n": n, "hints": hints, "peer": c.meta.get("peer")})
    w = max(tot["words"], 1)
    res = {"clips": len(clips), "words": tot["words"], "wer": tot["err"] / w, "wer_raw": tot["raw_err"] / w,
           "guard_fired": fired / max(len(clips), 1), "non_empty": non_empty, "non_empty_raw": raw_non_empty,
           "rtf": compute_s / max(audio_s, 1e-9)}
    if any("peer" in c.meta for c in clips):
        res["peer_wer"] = tot["peer_err"] / w
        res["peer_non_empty"] = sum(1 for c in clips if normalize(c.meta.get("peer", "")))
    if hits:
        res["entity_recall"] = float(np.mean(hits))
        res["entity_recall_raw"] = float(np.mean(raw_hits))
    seen = [row for row in rows if not is_heldout_voice(row["voice"])]
    unseen = [row for row in rows if is_heldout_voice(row["voice"])]
    for name, sel in (("seen_voices", seen), ("unseen_voices", unseen)):
        n = sum(row["n"] for row in sel)
        if n:
            res[f"{name}_wer"] = sum(row["wer_err"] for row in sel) / n
            res[f"{name}_clips"] = len(sel)
    res["examples"] = [{k: row[k] for k in ("ref", "hyp", "raw", "fired")} for row in rows[:4]]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", default=None, help="bundle directory (default: the SDK's default bundle)")
    ap.add_argument("--precision", default=None, help="encoder precision (default: the bundle's)")
    ap.add_argument("--limit", type=int, default=40, help="clips per synthetic set")
    ap.add_argument("--entity-limit", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-jfk", default="", help="Whisper peer transcript of jfk.wav (else decoded here)")
    args = ap.parse_args()
    from nim4asr_edge import Recognizer, RecognizerOptions, load_audio

    t0 = time.time()
    footprint = runtime_footprint(args.bundle, args.precision, args.threads)
    rec = Recognizer(args.bundle, RecognizerOptions(threads=args.threads, encoder_precision=args.precision))
    jfk = load_audio(JFK_WAV, 16000)
    j = _run(rec, jfk, [])
    out: dict = {"bundle": str(rec.bundle.path), "encoder_file": j["encoder_file"], "load_seconds": rec.load_seconds,
                 "runtime_alone": footprint}
    peer = args.peer_jfk
    if not peer:
        import torch

        from .resources import whisper_dir
        from .whisper_torch import CHUNK_FRAMES, greedy_decode, load_whisper, log_mel

        w = load_whisper(whisper_dir())
        with torch.no_grad():
            h = w.encoder(torch.from_numpy(log_mel(jfk, pad_to_frames=CHUNK_FRAMES)[:CHUNK_FRAMES])[None])[0]
        peer = greedy_decode(w, h, max_tokens=120)
    e, n = wer_counts(JFK_TEXT, j["text"])
    out["real"] = [{"file": "jfk.wav", "seconds": j["seconds"], "hyp": j["text"], "raw": j["raw"],
                    "guard_fired": j["fired"], "confidence": j["confidence"], "wer": e / n,
                    "wer_raw": wer_counts(JFK_TEXT, j["raw"])[0] / n, "peer_hyp": peer,
                    "peer_wer": wer_counts(JFK_TEXT, peer)[0] / n, "rtf": j["compute"] / j["seconds"]}]
    sets = {s: load_split(s)[0] for s in ("eval_clean", "eval_noisy", "eval_empty")}
    for s in ("eval_clean", "eval_noisy"):
        out[s] = score_set(rec, sets[s][: args.limit])
    ents = [c for c in sets["eval_clean"] + sets["eval_noisy"] if c.meta.get("entities")][: args.entity_limit]
    for mode in ("none", "right", "distractors"):
        out[f"entities_{mode}_hints"] = score_set(rec, ents, mode)
    out["eval_empty"] = score_set(rec, sets["eval_empty"][:50])
    out["eval_process_peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["eval_seconds"] = time.time() - t0
    print(json.dumps(out, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
