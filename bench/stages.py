"""Time per stage for one clip, and bundle file sizes, as JSON.

    python bench/stages.py [--model BUNDLE] [--audio FILE] [--seconds 10] [--repeat 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import time


from nim4asr_edge.audio import load_audio
from nim4asr_edge.bundle import Bundle
from nim4asr_edge.recognizer import Recognizer, RecognizerOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", help="bundle directory (default: the shipped one)")
    ap.add_argument("--audio", default="examples/audio/jfk.wav")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    t = time.perf_counter()
    bundle = Bundle.load(args.model)
    verify_s = time.perf_counter() - t
    samples = load_audio(args.audio)[: int(args.seconds * 16000)]
    results = {}
    for enc in bundle.manifest.encoder["files"]:
        for llm in bundle.manifest.llm["files"]:
            opts = RecognizerOptions(threads=args.threads, encoder_precision=enc, llm_quant=llm, verify="none")
            with Recognizer(bundle, opts) as rec:
                runs = [rec.transcribe(samples, sample_rate=16000) for _ in range(args.repeat)]
            stages = {
                f.name: statistics.median(getattr(r.timings, f.name) for r in runs)
                for f in dataclasses.fields(runs[0].timings)
            }
            stages["load"] = rec.load_seconds
            results[f"{enc}+{llm}"] = {
                "stages_s": {k: round(v, 4) for k, v in stages.items()},
                "rtf": round(statistics.median(r.rtf for r in runs), 4),
                "text": runs[0].text[:80],
            }
    m = bundle.manifest
    print(json.dumps({
        "bundle": m.name,
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "clip_seconds": round(len(samples) / 16000, 2),
        "verify_sha256_s": round(verify_s, 3),
        "file_sizes_mb": {name: round(e.size / 1e6, 3) for name, e in m.files.items()},
        "runs": results,
    }, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
