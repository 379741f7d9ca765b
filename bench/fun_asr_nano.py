"""Fun-ASR-Nano at the released shapes with random weights (the real weights were not available here): a directory
laid out like the release is written once (``--cache``), imported with the int8 encoder + Q4_K_M LLM, and measured.

Prints JSON (and writes ``--out``): machine and load, import time, bundle size, load time, offline RTF at 5/10/30 s
with a fixed number of generated tokens per second of audio (stop tokens disabled: a random model stops by chance),
peak RSS of a process that loads the bundle and transcribes, the same work side by side with raw llama.cpp (ctypes)
+ a bare onnxruntime session in one process (interleaved, so both see the same load), and streaming partial/final
latency with the audio fed at real speed.

    python bench/fun_asr_nano.py --threads 2 --out bench/results/fun_asr_nano.json
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
TOKENS_PER_SECOND = 3.0  # generated tokens per second of audio (a fixed decode load, as bench/fullsize.py)
SECONDS = (5.0, 10.0, 30.0)
REPS = 3
UPSTREAM = {"total_size_gb": 1.3, "rtf": 0.16, "threads": 8,
            "source": "Fun-ASR runtime/llama.cpp README (GGUF encoder f16 469 MB + LLM Q4_K_M 484 MB; 44 s clip ~7 s "
                      "on 8 CPU threads); MODELS.md A9"}


def _speech(seconds: float) -> np.ndarray:
    import soundfile as sf

    x, _ = sf.read(ROOT / "examples" / "audio" / "jfk.wav", dtype="float32")
    n = int(seconds * 16000)
    return np.ascontiguousarray(np.tile(x, n // len(x) + 1)[:n])


def _med(xs):
    return float(np.median(xs))


# -- workers (each in its own process) ----------------------------------------------------------------------------

def w_build(a: dict) -> dict:
    from nim4asr_export.importers import ImportOptions, import_model
    from nim4asr_export.importers.fun_asr_nano import released_llm_config, write_random_release
    from nim4asr_export.model.sensevoice import released_audio_config
    from nim4asr_export.qwen_tokenizer import fetch_qwen2_vocab, qwen_tokenizer_json

    cache = Path(a["cache"])
    out = {}
    release = cache / "Fun-ASR-Nano-2512"
    if not (release / "model.pt").is_file():
        t = time.perf_counter()
        tok = qwen_tokenizer_json(fetch_qwen2_vocab(), cache / "tokenizer")
        write_random_release(release, tok, audio=released_audio_config(), llm_config=released_llm_config(), seed=0)
        out["release_write_s"] = round(time.perf_counter() - t, 1)
    bundle = cache / "bundle"
    if not (bundle / "manifest.json").is_file():
        t = time.perf_counter()
        m = import_model("fun-asr-nano", release, bundle, ImportOptions(quant=("int8", "q4_k_m"), threads=a["threads"]),
                         progress=lambda s: print(s, file=sys.stderr, flush=True))
        out["import_s"] = round(time.perf_counter() - t, 1)
        out["export_checks"] = m.extra.get("export_checks")
    out["bundle_mb"] = {p.name: round(p.stat().st_size / 1e6, 1) for p in bundle.iterdir() if p.is_file()}
    out["model_pt_mb"] = round((release / "model.pt").stat().st_size / 1e6, 1)
    return out


def _recognizer(a: dict):
    from nim4asr_edge import Recognizer, RecognizerOptions

    opts = RecognizerOptions(threads=a["threads"], encoder_precision="int8", llm_quant="q4_k_m", verify="size",
                             max_tokens_per_second=TOKENS_PER_SECOND, min_new_tokens=1, guard="off",
                             tune_decode_threads=a.get("tune", True))
    t = time.perf_counter()
    rec = Recognizer(Path(a["cache"]) / "bundle", opts)
    return rec, time.perf_counter() - t


def w_ours(a: dict) -> dict:
    """The product path alone: load, then transcribe 5/10/30 s (this process's peak RSS is the figure)."""
    rec, load_s = _recognizer(a)
    rec.engine.decoder.stop_ids = []  # exactly the budget, every time
    out = {"load_s": round(load_s, 2), "rtf": {}, "timings": {}}
    for s in SECONDS:
        x = _speech(s)
        rec.transcribe(x, sample_rate=16000)  # warm
        runs = [rec.transcribe(x, sample_rate=16000) for _ in range(REPS)]
        out["rtf"][f"{s:g}s"] = round(_med([r.rtf for r in runs]), 4)
        t = runs[-1].timings
        out["timings"][f"{s:g}s"] = {k: round(getattr(t, k), 3) for k in
                                     ("frontend", "encoder", "prefill", "decode", "generated_tokens")}
    rec.close()
    return out


def w_compare(a: dict) -> dict:
    """Ours vs raw llama.cpp + bare onnxruntime on the same audio, interleaved; encoder and LLM stages separately."""
    from fullsize_raw import RawLlama, bare_ort_session

    rec, _ = _recognizer(a)
    engine = rec.engine
    engine.decoder.stop_ids = []
    sess = bare_ort_session(engine.encoder.path, a["threads"], spinning=False)
    o = engine.llm.options
    raw = RawLlama(engine.llm.path, n_ctx=o.n_ctx, n_batch=o.n_batch, n_ubatch=o.n_ubatch, n_threads=a["threads"],
                   flash_attn=o.flash_attn, type_k=o.type_k, type_v=o.type_v, use_mmap=o.use_mmap,
                   extra_bufts=o.resolved_extra_buffers())
    prefix = engine.decoder.prefix
    suffix = engine.llm.tokenize(engine.prompt.render().after)
    raw.tokens(prefix, logits_last=False)
    out = {}
    for s in SECONDS:
        x = _speech(s)
        n_new = engine.token_budget(s)
        ours_t, raw_t, ours_enc, raw_enc, ours_llm, raw_llm = [], [], [], [], [], []
        for rep in range(REPS + 1):
            t = time.perf_counter()
            r = rec.transcribe(x, sample_rate=16000)
            dt = time.perf_counter() - t
            t = time.perf_counter()
            f = engine.frontend(x).values
            emb = sess.run(None, {"features": f[None], "feature_lengths": np.array([len(f)], np.int64)})
            emb = emb[0][0, : int(emb[1][0])]
            t_enc = time.perf_counter() - t
            t1 = time.perf_counter()
            raw.truncate(len(prefix))
            raw.embeds(emb)
            raw.tokens(suffix)
            raw.greedy(n_new)
            t_llm = time.perf_counter() - t1
            if rep:  # the first round warms both
                ours_t.append(dt)
                raw_t.append(t_enc + t_llm)
                ours_enc.append(r.timings.frontend + r.timings.encoder)
                raw_enc.append(t_enc)
                ours_llm.append(r.timings.prefill + r.timings.decode)
                raw_llm.append(t_llm)
        out[f"{s:g}s"] = {
            "generated_tokens": n_new, "audio_tokens": len(emb),
            "ours_s": round(_med(ours_t), 3), "raw_s": round(_med(raw_t), 3),
            "ours_rtf": round(_med(ours_t) / s, 4), "raw_rtf": round(_med(raw_t) / s, 4),
            "raw_over_ours_speed": round(_med(raw_t) / _med(ours_t), 3),
            "frontend_encoder_s": {"ours": round(_med(ours_enc), 3), "raw": round(_med(raw_enc), 3)},
            "prefill_decode_s": {"ours": round(_med(ours_llm), 3), "raw": round(_med(raw_llm), 3)},
        }
    raw.close()
    rec.close()
    return out


def w_stream(a: dict) -> dict:
    """20 s of speech fed at real speed in 100 ms chunks: partial and final latency."""
    from nim4asr_edge import StreamOptions

    rec, _ = _recognizer(a)
    x = _speech(20.0)
    events = []
    with rec.create_stream(StreamOptions()) as stream:
        def feed():
            t0 = time.perf_counter()
            for i in range(0, len(x), 1600):
                wait = t0 + i / 16000 - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                stream.accept_waveform(16000, x[i: i + 1600])
            stream.input_finished()

        th = threading.Thread(target=feed)
        th.start()
        events = list(stream.events(timeout=600))
        th.join()
    rec.close()
    part = [e.latency for e in events if e.kind == "partial"]
    fin = [e.latency for e in events if e.kind == "final"]
    q = (lambda xs, p: round(float(np.percentile(xs, p)), 3) if xs else None)
    return {"audio_s": 20.0, "partials": len(part), "finals": len(fin), "partial_latency_p50_s": q(part, 50),
            "partial_latency_p95_s": q(part, 95), "final_latency_s": [round(v, 3) for v in fin],
            "note": "windowed re-encoding (no streaming graph): each partial re-encodes up to the stream window"}


WORKERS = {"build": w_build, "ours": w_ours, "compare": w_compare, "stream": w_stream}


def run_worker(name: str, args: dict, log) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--worker-args", json.dumps(args)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT))
    chunks: dict[str, list[bytes]] = {"out": [], "err": []}
    th = [threading.Thread(target=lambda s=s, k=k: chunks[k].append(s.read()))
          for s, k in ((proc.stdout, "out"), (proc.stderr, "err"))]
    for x in th:
        x.start()
    _, status, ru = os.wait4(proc.pid, 0)
    for x in th:
        x.join()
    code = os.waitstatus_to_exitcode(status)
    rss = round(ru.ru_maxrss * 1024 / 1e9, 3)
    err = b"".join(chunks["err"]).decode(errors="replace")
    if code != 0:
        why = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        log(f"{name}: FAILED ({why}) {err.strip()[-400:]}")
        return {"error": why, "stderr_tail": err.strip()[-600:], "peak_rss_gb": rss}
    res = json.loads(b"".join(chunks["out"]).decode().strip().splitlines()[-1])
    res["peak_rss_gb"] = rss
    res["wall_s"] = round(time.perf_counter() - t, 1)
    log(f"{name}: done in {res['wall_s']} s, peak RSS {rss} GB")
    return res


def _machine() -> dict:
    import platform

    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "loadavg_1_5_15": [round(v, 2) for v in load]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "nim4asr-edge" / "bench-fun-asr-nano"))
    p.add_argument("--out", help="write the JSON here too")
    p.add_argument("--no-tune", action="store_true", help="keep the decode thread count (no load-time tuning)")
    p.add_argument("--skip", default="", help="comma list of workers to skip (ours, compare, stream)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--worker-args", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        print(json.dumps(WORKERS[a.worker](json.loads(a.worker_args))))
        return
    Path(a.cache).mkdir(parents=True, exist_ok=True)
    args = {"threads": a.threads, "cache": a.cache, "tune": not a.no_tune}
    res = {"bench": "fun_asr_nano", "weights": "random, released shapes (Fun-ASR-Nano-2512 + Qwen3-0.6B)",
           "encoder": "int8", "llm": "q4_k_m", "threads": a.threads, "tokens_per_second_of_audio": TOKENS_PER_SECOND,
           "machine_before": _machine(), "upstream_published": UPSTREAM}

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}  (load {os.getloadavg()[0]:.2f})", file=sys.stderr, flush=True)

    def save() -> None:
        if a.out:
            Path(a.out).write_text(json.dumps(res, indent=2, ensure_ascii=False) + "\n")

    res["build"] = run_worker("build", args, log)
    save()
    for name in ("ours", "compare", "stream"):
        if name not in a.skip.split(","):
            res[name] = run_worker(name, args, log)
            save()
    res["machine_after"] = _machine()
    ours, cmp_ = res.get("ours", {}), res.get("compare", {})
    if "rtf" in ours and "10s" in cmp_:
        res["targets"] = {
            "peak_rss_le_1.3_GB": {"value_gb": ours["peak_rss_gb"], "met": ours["peak_rss_gb"] <= 1.3},
            "rtf_le_0.3_at_10s": {"value": ours["rtf"]["10s"], "met": ours["rtf"]["10s"] <= 0.3},
            "ours_ge_95pct_of_raw_speed": {f"{s:g}s": {"raw_over_ours": cmp_[f"{s:g}s"]["raw_over_ours_speed"],
                                                        "met": cmp_[f"{s:g}s"]["raw_over_ours_speed"] >= 0.95}
                                           for s in SECONDS},
        }
        if "partial_latency_p95_s" in res.get("stream", {}):
            v = res["stream"]["partial_latency_p95_s"]
            res["targets"]["stream_partial_p95_le_0.5_s"] = {"value_s": v, "met": v is not None and v <= 0.5}
    save()
    print(json.dumps(res, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
