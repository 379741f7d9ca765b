"""End to end at full size, old vs new llama.cpp buffer defaults, in alternating fresh processes; JSON out.

    python bench/fullsize_e2e.py [--cache /work/fullsize_work] [--threads 2] [--rounds 3] [--out e2e.json]

Each child builds a ``Recognizer`` on the 2.3 B bundle of ``bench/fullsize_build.py`` (int8 encoder + Q4_K_M),
records ``Recognizer.load_memory``, warms up on 5 s, then transcribes 5 / 10 / 30 s of real speech (jfk.wav
repeated) with decoding forced to 3 tokens per second of speech (stop tokens off: a random model never stops).
Configurations:

* ``new_defaults``: ``LLMOptions()`` (repacking and mmap chosen automatically for this CPU);
* ``old_defaults``: repacked buffers on and the GGUF mapped (the previous defaults on CPUs without AMX);
* ``repack_read``: repacked buffers on, GGUF read (what the automatic mmap rule does when repacking is on);
* ``encoder_no_prepack``: the defaults with ``EncoderOptions(prepack_weights=False)``;
* ``encoder_no_arena``: the defaults with ``EncoderOptions(enable_mem_arena=False)`` (every encoder buffer through
  malloc: the default before the arena emptied after each run);
* ``kv_f16``, ``kv_q8_0``, ``kv_k_q8_0``: the defaults with the KV cache f16, q8_0, or K q8_0 and V f16.

Peak RSS is the child's ``ru_maxrss`` (load + all transcriptions), and ``peak_rss_gb_so_far`` the process's VmHWM
after each duration (load + warm-up + the durations up to it); the load average is recorded around each child.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from llm_overhead import DEFAULT_CACHE, alternate, finish, machine, spread

JFK = HERE.parent / "examples" / "audio" / "jfk.wav"
DURATIONS = (5.0, 10.0, 30.0)
TOKENS_PER_SECOND = 3.0
CONFIGS = {
    "new_defaults": {},
    "old_defaults": {"extra_buffers": True, "use_mmap": True},
    "repack_read": {"extra_buffers": True},
    "encoder_no_prepack": {"encoder": {"prepack_weights": False}},  # onnxruntime keeps no pre-packed weight copies
    "encoder_no_arena": {"encoder": {"enable_mem_arena": False}},  # every encoder buffer through malloc
    "kv_f16": {"type_k": "f16", "type_v": "f16"},  # the KV cache type before q8_0 became the default
    "kv_q8_0": {"type_k": "q8_0", "type_v": "q8_0"},  # both halves of the KV cache q8_0
    "kv_k_q8_0": {"type_k": "q8_0", "type_v": "f16"},  # K q8_0, V f16
}


def _speech(seconds: float):
    import numpy as np

    from nim4asr_edge.audio import load_audio

    x = load_audio(str(JFK), 16000)
    return np.ascontiguousarray(np.tile(x, int(np.ceil(seconds * 16000 / len(x))))[: int(seconds * 16000)])


def c_e2e(a: dict) -> dict:
    """One recognizer in this fresh process: load, warm-up, one transcription per duration (``reps`` each)."""
    from nim4asr_edge import ProcessMemory, Recognizer, RecognizerOptions
    from nim4asr_edge.bundle import Bundle
    from nim4asr_edge.encoder import EncoderOptions
    from nim4asr_edge.llm import LLMOptions

    bundle = Bundle.load(Path(a["cache"]) / "bundle", verify="none")
    llm = {k: v for k, v in a["options"].items() if k != "encoder"}
    opts = RecognizerOptions(threads=a["threads"], encoder_precision="int8", llm_quant="q4_k_m", verify="none",
                             max_tokens_per_second=TOKENS_PER_SECOND, min_new_tokens=1, llm=LLMOptions(**llm),
                             encoder=EncoderOptions(**a["options"].get("encoder", {})))
    rec = Recognizer(bundle, opts)
    mem = rec.load_memory
    rec.engine.decoder.stop_ids = []  # forced budget: every decode generates exactly its token budget
    out: dict = {"load_s": round(rec.load_seconds, 3), "mmap": rec.engine.llm.uses_mmap,
                 "extra_buffers": rec.engine.llm.uses_extra_buffers,
                 "load_memory_gb": {k: round(getattr(mem, k) / 1e9, 3) for k in
                                    ("rss_bytes", "peak_rss_bytes", "anon_bytes", "file_bytes")}}
    rec.transcribe(_speech(5.0), sample_rate=16000)  # warm-up
    for d in a["durations"]:
        x = _speech(d)
        runs = [rec.transcribe(x, sample_rate=16000) for _ in range(a["reps"])]
        t = [r.timings for r in runs]
        out[f"{int(d)}s"] = {"rtf": statistics.median(r.rtf for r in runs),
                             "peak_rss_gb_so_far": round(ProcessMemory.now().peak_rss_bytes / 1e9, 3),
                             "stages_s": {k: round(statistics.median(getattr(x, k) for x in t), 3)
                                          for k in ("frontend", "encoder", "prefill", "decode")},
                             "prompt_tokens": t[0].prompt_tokens, "generated_tokens": t[0].generated_tokens}
    rec.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--reps", type=int, default=1, help="transcriptions per duration inside each child")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--durations", default=",".join(str(d) for d in DURATIONS))
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(c_e2e(json.loads(args.child_args))))
        return
    durations = [float(d) for d in args.durations.split(",")]
    base = {"cache": str(args.cache), "threads": args.threads, "reps": args.reps, "durations": durations}
    configs = [(n, base | {"options": CONFIGS[n]}) for n in args.configs.split(",")]
    t0 = time.perf_counter()
    res: dict = {"benchmark": "bench/fullsize_e2e.py", "argv": sys.argv[1:],
                 "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "machine": machine(),
                 "settings": {"threads": args.threads, "rounds": args.rounds, "reps_per_child": args.reps,
                              "tokens_per_audio_s": TOKENS_PER_SECOND, "encoder": "int8", "llm": "q4_k_m"}}
    rows = alternate(configs, args.rounds, child="e2e", script=Path(__file__).resolve())
    summary: dict = {}
    for name, rs in rows.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            summary[name] = {"error": rs[0].get("error"), "stderr_tail": rs[0].get("stderr_tail")}
            continue
        row: dict = {"options": CONFIGS[name], "mmap": ok[0]["mmap"], "extra_buffers": ok[0]["extra_buffers"],
                     "peak_rss_gb": spread([r["peak_rss_gb"] for r in ok]),
                     "rss_after_load_gb": spread([r["load_memory_gb"]["rss_bytes"] for r in ok]),
                     "load_s": spread([r["load_s"] for r in ok]),
                     "loadavg_1min": spread([x for r in ok for x in (r["loadavg_before"][0], r["loadavg_after"][0])])}
        for d in durations:
            k = f"{int(d)}s"
            row[k] = {"rtf": spread([r[k]["rtf"] for r in ok]),
                      "peak_rss_gb_so_far": spread([r[k]["peak_rss_gb_so_far"] for r in ok if "peak_rss_gb_so_far" in r[k]]
                                                   or [float("nan")]),
                      "prefill_s": spread([r[k]["stages_s"]["prefill"] for r in ok]),
                      "decode_s": spread([r[k]["stages_s"]["decode"] for r in ok]),
                      "encoder_s": spread([r[k]["stages_s"]["encoder"] for r in ok]),
                      "prompt_tokens": ok[0][k]["prompt_tokens"], "generated_tokens": ok[0][k]["generated_tokens"]}
        summary[name] = row
    res["results"] = summary
    res["runs"] = rows
    finish(res, t0, args.out)


if __name__ == "__main__":
    main()
