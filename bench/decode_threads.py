"""LLM decode threads, side by side in one process, JSON out: what ``RecognizerOptions.tune_decode_threads`` buys.

    python bench/decode_threads.py [--model BUNDLE] [--threads 2] [--rounds 5]

* per-token decode and per-token prefill of the bundle's GGUF with ``threads`` threads and with 1, on one context
  (``llama_set_n_threads`` between runs), rounds interleaved so that both see the same machine load;
* end to end on jfk.wav: a recognizer with tuning (the default) and one without, transcriptions alternating, RTF
  and the decode / prefill seconds of each, and the thread count the tuned one chose.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

from nim4asr_edge import Recognizer, RecognizerOptions, load_audio
from nim4asr_edge.bundle import Bundle
from nim4asr_edge.llm import LLMOptions, LLMSession

JFK = Path(__file__).resolve().parents[1] / "examples" / "audio" / "jfk.wav"
TEXT = "Please remind Samuel Moore that the meeting moved to Thursday at half past two in the main office. " * 3


def raw_llama(gguf: Path, threads: int, rounds: int, tokens: int = 32) -> dict:
    """ms per token, decode and prefill, with ``threads`` and with 1 thread, interleaved."""
    out: dict = {f"decode_ms_{n}t": [] for n in (threads, 1)} | {f"prefill_ms_{n}t": [] for n in (threads, 1)}
    with LLMSession(gguf, LLMOptions(n_threads=threads, n_ctx=1024)) as llm:
        ids = llm.tokenize(TEXT)
        for r in range(rounds):
            for n in ((threads, 1) if r % 2 == 0 else (1, threads)):
                llm.set_threads(n, n)
                llm.clear()
                t = time.perf_counter()
                llm.eval_tokens(ids, output_last=True)
                out[f"prefill_ms_{n}t"].append((time.perf_counter() - t) / len(ids) * 1e3)
                t = time.perf_counter()
                for i in range(tokens):
                    llm.eval_tokens([ids[i]], output_last=True)
                out[f"decode_ms_{n}t"].append((time.perf_counter() - t) / tokens * 1e3)
    res = {k: round(statistics.median(v), 2) for k, v in out.items()}
    res["decode_ratio_1t_over_nt"] = round(res["decode_ms_1t"] / res[f"decode_ms_{threads}t"], 3)
    res["prefill_tokens"] = len(ids)
    return res


def end_to_end(bundle: str | None, threads: int, rounds: int) -> dict:
    audio = load_audio(JFK, 16000)
    recs = {name: Recognizer(bundle, RecognizerOptions(threads=threads, tune_decode_threads=tune))
            for name, tune in (("tuned", True), ("untuned", False))}
    runs: dict = {name: [] for name in recs}
    try:
        for name, rec in recs.items():
            rec.transcribe(audio, sample_rate=16000)  # warm-up
        for r in range(rounds):
            for name in (("tuned", "untuned") if r % 2 == 0 else ("untuned", "tuned")):
                res = recs[name].transcribe(audio, sample_rate=16000)
                t = res.timings
                runs[name].append((t.total / res.duration, t.decode, t.prefill, t.generated_tokens))
        out = {}
        for name, rows in runs.items():
            out[name] = {"rtf": round(statistics.median(x[0] for x in rows), 4),
                         "decode_s": round(statistics.median(x[1] for x in rows), 3),
                         "prefill_s": round(statistics.median(x[2] for x in rows), 3),
                         "generated_tokens": rows[0][3],
                         "decode_threads": recs[name].llm.options.n_threads,
                         "load_s": round(recs[name].load_seconds, 3)}
        out["rtf_ratio_tuned_over_untuned"] = round(out["tuned"]["rtf"] / out["untuned"]["rtf"], 3)
        return out
    finally:
        for rec in recs.values():
            rec.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="bundle directory (default: the shipped default bundle)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    gguf = Bundle.load(args.model, verify="size").llm_path()
    print(json.dumps({"machine": platform.processor() or platform.machine(), "threads": args.threads,
                      "llm": gguf.name, "raw_llama_cpp": raw_llama(gguf, args.threads, args.rounds),
                      "end_to_end_jfk": end_to_end(args.model, args.threads, args.rounds)}, indent=1))


if __name__ == "__main__":
    main()
