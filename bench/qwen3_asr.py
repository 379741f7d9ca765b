"""Qwen3-ASR on this CPU (issue 16): both released shapes with random weights, int8 encoder + Q4_K_M, side by side
with bare onnxruntime + raw llama.cpp doing the same work, in one run; prints JSON.

    nice -n 5 python bench/qwen3_asr.py [--cache /work/qwen3_asr_cache] [--sizes 0.6B,1.7B] [--threads 2] \
        [--out bench/results/qwen3_asr.json]

Bundles are built once through the real import path (``write_random_release`` -> ``import_model``) and cached.
Every measurement runs in a fresh child process (``os.wait4`` gives its peak RSS):

* ``memory``: Recognizer load + one 10-s transcription, nothing else in the process (the RSS target);
  ``memory_nommap`` the same with ``LLMOptions(use_mmap=False)``;
* ``e2e``: load time, then RTF at 5/10/30 s of speech (jfk.wav repeated), ours (``Recognizer.transcribe``) and the
  baseline (numpy frontend + bare ``onnxruntime.InferenceSession`` + a raw llama.cpp loop, ``fullsize_raw.py``)
  interleaved; decoding is forced to ``--tokens-per-second`` tokens per second of audio (stop tokens disabled: a
  random model does not stop by itself);
* ``stream``: jfk.wav fed in 100-ms blocks at real speed through ``Recognizer.create_stream`` as one 11-s
  utterance, at the default 640-ms partial cadence and the reference's 2 s, with finished encoder windows kept in the
  KV cache and the open one re-encoded (``blocks``, the default; the bundle's stream window, 2 s unless imported with
  another ``--stream-window``) and with every partial re-encoding the whole utterance (``whole``): partial latency
  p50/p95, and each partial's (audio so far, latency).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
JFK = ROOT / "examples" / "audio" / "jfk.wav"
DURATIONS = (5.0, 10.0, 30.0)


def _speech(seconds: float) -> np.ndarray:
    from nim4asr_edge.audio import load_audio

    x = load_audio(str(JFK), 16000)
    return np.ascontiguousarray(np.tile(x, int(np.ceil(seconds * 16000 / len(x))))[: int(seconds * 16000)])


def _r(x, n=4):
    return None if x is None else round(float(x), n)


def build(cache: Path, size: str) -> Path:
    """The cached bundle of ``size`` (random weights, imported with int8 + q4_k_m)."""
    bundle = cache / f"bundle-{size}"
    if (bundle / "manifest.json").is_file():
        return bundle
    from nim4asr_export.importers import ImportOptions, import_model
    from nim4asr_export.importers.qwen3_asr import with_asr_tokens, write_random_release
    from nim4asr_export.qwen_tokenizer import fetch_qwen2_vocab, qwen_tokenizer_json

    cache.mkdir(parents=True, exist_ok=True)
    tok = with_asr_tokens(qwen_tokenizer_json(fetch_qwen2_vocab(), cache / "tok"), cache / "tok-asr")
    release = write_random_release(cache / f"release-{size}", size, tok, seed=0, shards=2 if size == "1.7B" else 1)
    import_model("qwen3-asr", release, bundle, ImportOptions(quant=("int8", "q4_k_m"), check=False),
                 progress=lambda m: print(m, file=sys.stderr, flush=True))
    return bundle


# -- workers (each in its own process) ---------------------------------------------------------------------------------


def _options(a: dict, **kw):
    from nim4asr_edge import RecognizerOptions

    return RecognizerOptions(threads=a["threads"], encoder_precision="int8", llm_quant="q4_k_m", verify="none",
                             max_tokens_per_second=a["tps"], min_new_tokens=1, **kw)


def w_memory(a: dict, **kw) -> dict:
    from nim4asr_edge import Recognizer

    t = time.perf_counter()
    rec = Recognizer(a["bundle"], _options(a, **kw))
    load = time.perf_counter() - t
    rec.engine.decoder.stop_ids = []
    result = rec.transcribe(_speech(10.0), sample_rate=16000)
    return {"load_s": _r(load, 3), "rtf_10s": _r(result.rtf), "tokens": result.segments[0].tokens.__len__()}


def w_e2e(a: dict) -> dict:
    from fullsize_raw import RawLlama, bare_ort_session

    from nim4asr_edge import Recognizer

    t = time.perf_counter()
    rec = Recognizer(a["bundle"], _options(a))
    load = time.perf_counter() - t
    engine = rec.engine
    engine.decoder.stop_ids = []
    t = time.perf_counter()
    sess = bare_ort_session(engine.encoder.path, a["threads"], spinning=False)
    o = engine.llm.options
    raw = RawLlama(engine.llm.path, n_ctx=o.n_ctx, n_batch=o.n_batch, n_ubatch=o.n_ubatch, n_threads=a["threads"],
                   flash_attn=o.flash_attn, type_k=o.type_k, type_v=o.type_v, use_mmap=o.use_mmap,
                   extra_bufts=o.resolved_extra_buffers())
    raw_load = time.perf_counter() - t
    parts = engine.prompt.render()
    prefix, suffix = engine.llm.tokenize(parts.before), engine.llm.tokenize(parts.after)
    raw.tokens(prefix, logits_last=False)

    def raw_transcribe(x):
        t0 = time.perf_counter()
        feats = engine.frontend(x).values
        emb = sess.run(None, {"features": feats[None], "feature_lengths": np.array([len(feats)], np.int64)})
        n = int(emb[1][0])
        raw.truncate(len(prefix))
        raw.embeds(emb[0][0, :n])
        raw.tokens(suffix)
        raw.greedy(engine.token_budget(len(x) / 16000))
        return time.perf_counter() - t0

    rec.transcribe(_speech(5.0), sample_rate=16000)  # warm-up both
    raw_transcribe(_speech(5.0))
    out = {"load_s": _r(load, 3), "raw_load_s": _r(raw_load, 3)}
    for d in DURATIONS:
        x = _speech(d)
        ours, base, rows = [], [], []
        for _ in range(a["reps"]):
            r = rec.transcribe(x, sample_rate=16000)
            rows.append(r)
            ours.append(r.timings.total)
            base.append(raw_transcribe(x))
        tm = rows[0].timings
        out[f"{int(d)}s"] = {
            "rtf": _r(statistics.median(ours) / d), "raw_rtf": _r(statistics.median(base) / d),
            "ours_over_raw_time": _r(statistics.median(ours) / statistics.median(base)),
            "stages_s": {k: _r(getattr(tm, k), 3) for k in ("frontend", "encoder", "prefill", "decode")},
            "audio_tokens": int(round(d * 13)), "generated_tokens": tm.generated_tokens,
        }
    rec.close()
    raw.close()
    return out


def w_stream(a: dict) -> dict:
    from nim4asr_edge import Recognizer, StreamOptions
    from nim4asr_edge.vad import VadOptions

    rec = Recognizer(a["bundle"], _options(a))
    audio = _speech(11.0)
    out = {}
    for (mode, chunk_ms) in (("blocks", 640), ("whole", 640), ("blocks", 2000), ("whole", 2000)):
        # blocks: finished encoder windows stay in the KV cache; whole: every partial re-encodes everything
        stream = rec.create_stream(StreamOptions(chunk_ms=chunk_ms, use_streaming_graph=mode == "blocks",
                                                 vad=VadOptions(min_silence_ms=3000)))
        block = 1600
        events: list = []
        th = threading.Thread(target=lambda s=stream, ev=events: ev.extend(s.events(timeout=300)))
        th.start()
        t0 = time.perf_counter()
        for i in range(0, len(audio), block):
            stream.accept_waveform(16000, audio[i: i + block])
            wait = t0 + (i + block) / 16000 - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        stream.input_finished()
        th.join()
        stream.close()
        lat = sorted(e.latency for e in events if e.kind == "partial")
        fin = [e.latency for e in events if e.kind == "final"]
        out[f"{mode}_chunk_{chunk_ms}ms"] = {
            "partials": len(lat), "partial_latency_p50_s": _r(np.percentile(lat, 50), 3) if lat else None,
            "partial_latency_p95_s": _r(np.percentile(lat, 95), 3) if lat else None,
            "final_latency_s": [_r(f, 3) for f in fin],
            "partials_end_s_latency_s": [[_r(e.end - e.start, 2), _r(e.latency, 3)] for e in events
                                         if e.kind == "partial"]}
    rec.close()
    return out


def w_memory_nommap(a: dict) -> dict:
    """As ``memory`` with the GGUF read into memory instead of mapped (``LLMOptions(use_mmap=False)``)."""
    from nim4asr_edge.llm import LLMOptions

    return w_memory(a, llm=LLMOptions(use_mmap=False))


WORKERS = {"memory": w_memory, "memory_nommap": w_memory_nommap, "e2e": w_e2e, "stream": w_stream}


def run_child(kind: str, args: dict) -> dict:
    """``kind`` in a fresh process; its result plus its peak RSS (GB). Linux counts the pre-exec copy of the parent
    in a child's ``ru_maxrss``: the parent must stay small (it builds bundles in a child of its own)."""
    proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, json.dumps(args)], stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        return {"error": f"worker {kind} exited with status {status}"}
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_gb"] = _r(usage.ru_maxrss / 1e6, 3)  # ru_maxrss is in kB on Linux
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", default="/work/qwen3_asr_cache")
    ap.add_argument("--sizes", default="0.6B,1.7B")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--tokens-per-second", type=float, default=3.0, dest="tps")
    ap.add_argument("--only", default="memory,memory_nommap,e2e,stream")
    ap.add_argument("--out")
    ap.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--build", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build:
        build(Path(args.cache), args.build)
        return
    if args.worker:
        kind, payload = args.worker
        print(json.dumps(WORKERS[kind](json.loads(payload))))
        return
    from importlib.metadata import version

    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "threads_used": args.threads, "load_average_start": os.getloadavg()},
              "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"),
              "versions": {"llama_cpp_python": version("llama-cpp-python"), "onnxruntime": version("onnxruntime")},
              "weights": "random, released shapes (MODELS.md B3/B4), int8 encoder + Q4_K_M LLM",
              "tokens_per_audio_second": args.tps, "sizes": {}}
    for size in args.sizes.split(","):
        bundle = Path(args.cache) / f"bundle-{size}"
        if not (bundle / "manifest.json").is_file():  # built in a child: this process stays small (see run_child)
            subprocess.run([sys.executable, __file__, "--build", size, "--cache", args.cache], check=True)
        files = json.loads((bundle / "manifest.json").read_text())["files"]
        row = {"files_gb": {k: _r(v["size"] / 1e9, 3) for k, v in files.items()}}
        common = {"bundle": str(bundle), "threads": args.threads, "tps": args.tps, "reps": args.reps}
        for kind in args.only.split(","):
            if kind == "stream" and size == "1.7B":  # the streaming target is for 0.6B
                continue
            row[kind] = run_child(kind, common)
            print(f"{size} {kind}: {json.dumps(row[kind])}", file=sys.stderr, flush=True)
        report["sizes"][size] = row
    report["machine"]["load_average_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
