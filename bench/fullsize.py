"""Full-size performance (issue 6): the 2.3 B NIM4-ASR shape (600 M Conformer + Qwen3-1.7B) on this CPU, side by
side with raw llama.cpp calls and a bare onnxruntime session, in one run; prints JSON.

    nice -n 5 python bench/fullsize.py [--cache /work/fullsize_cache] [--threads 2] [--out fullsize.json]
    python bench/fullsize_table.py fullsize.json          # the README table

The bundle (random weights, exact full shape, built through the real export path) is built once by
``bench/fullsize_build.py`` and cached. Every measurement runs in a fresh child process (``os.wait4`` gives its
peak RSS); ours and the baseline are interleaved inside one child so that the ratios see the same machine load.
Decoding is forced to ~3 tokens per second of speech (stop tokens disabled): a random model never stops.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import platform
import signal
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

DEFAULT_CACHE = Path("/work/fullsize_cache")
JFK = ROOT / "examples" / "audio" / "jfk.wav"
TOKENS_PER_SECOND = 3.0  # forced hypothesis length per second of speech
DURATIONS = (5.0, 10.0, 30.0)
PREFILL_TOKENS = 188  # audio tokens of a 30 s segment (6.25 Hz), the longest offline segment
DECODE_TOKENS = 32
STREAM_SECONDS = 15.0
ROLLBACK = 5  # streaming: the last 5 tokens of a partial are regenerated (StreamOptions.rollback_tokens)
UNSTABLE = 2  # streaming: the first 2 chunks force nothing (StreamOptions.unstable_chunks)


def _med(xs):
    return float(statistics.median(xs))


def _r(x, n=4):
    return None if x is None else round(float(x), n)


def _speech(seconds: float) -> np.ndarray:
    """``seconds`` of real speech: jfk.wav (11 s, 16 kHz) repeated and cut."""
    from nim4asr_edge.audio import load_audio

    x = load_audio(str(JFK), 16000)
    reps = int(np.ceil(seconds * 16000 / len(x)))
    return np.ascontiguousarray(np.tile(x, reps)[: int(seconds * 16000)])


def _bundle(cache: Path):
    from nim4asr_edge.bundle import Bundle

    return Bundle.load(cache / "bundle", verify="none")


# ---------------------------------------------------------------------------------------------------- workers
# Each worker runs in its own process and returns a JSON-able dict.


def w_bandwidth(a: dict) -> dict:
    """Memory bandwidth with numpy: read (sum) on 1 and on all threads, and copy (read + write)."""
    n = 1 << 27  # 128 M float32 = 512 MiB per array
    x = np.ones(n, np.float32)
    y = np.empty_like(x)
    nbytes = x.nbytes
    reads, copies, reads_mt = [], [], []
    threads = a["threads"]
    parts = np.array_split(x, threads)
    for _ in range(5):
        t = time.perf_counter()
        x.sum()
        reads.append(nbytes / (time.perf_counter() - t))
        t = time.perf_counter()
        np.copyto(y, x)
        copies.append(2 * nbytes / (time.perf_counter() - t))
        ths = [threading.Thread(target=p.sum) for p in parts]  # numpy releases the GIL in reductions
        t = time.perf_counter()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        reads_mt.append(nbytes / (time.perf_counter() - t))
    gb = 1e9
    return {"read_1t_GBps": _r(max(reads) / gb, 2), f"read_{threads}t_GBps": _r(max(reads_mt) / gb, 2),
            "copy_1t_GBps": _r(max(copies) / gb, 2), "ceiling_GBps": _r(max(max(reads), max(reads_mt)) / gb, 2),
            "method": f"numpy float32 sum over 512 MiB (1 thread and {threads} threads), np.copyto; best of 5"}


def w_load(a: dict) -> dict:
    """Build a Recognizer (encoder session, LLM load, context, cached prompt prefix) and stop."""
    from nim4asr_edge.llm import LLMOptions
    from nim4asr_edge.recognizer import Recognizer, RecognizerOptions

    t = time.perf_counter()
    bundle = _bundle(Path(a["cache"]))
    opts = RecognizerOptions(threads=a["threads"], encoder_precision=a["enc"], llm_quant=a["llm"], verify="none",
                             llm=LLMOptions(use_mmap=a["mmap"]))
    with Recognizer(bundle, opts) as rec:
        total = time.perf_counter() - t
        return {"load_s": _r(total, 3), "recognizer_load_s": _r(rec.load_seconds, 3)}


def w_encoder(a: dict) -> dict:
    """Encoder time per second of audio, ours (EncoderSession) vs bare onnxruntime, fp32 vs int8; argmax agreement."""
    from fullsize_raw import bare_encode, bare_ort_session

    from nim4asr_edge.encoder import EncoderOptions, EncoderSession

    bundle = _bundle(Path(a["cache"]))
    samples = _speech(11.0)
    seconds = len(samples) / 16000
    feats = bundle.frontend()(samples).values
    out: dict = {"audio_s": round(seconds, 2), "frames": int(feats.shape[0])}
    argmax = {}
    for prec in ("fp32", "int8"):
        path = bundle.encoder_path(prec)
        t = time.perf_counter()
        ours = EncoderSession(path, EncoderOptions(intra_op_num_threads=a["threads"]))
        load_ours = time.perf_counter() - t
        t = time.perf_counter()
        bare = bare_ort_session(path, a["threads"])
        load_bare = time.perf_counter() - t
        res = ours.run(feats)  # warm-up, and the reference output
        bare_encode(bare, feats)
        t_ours, t_bare = [], []
        for _ in range(a["reps"]):
            t = time.perf_counter()
            res = ours.run(feats)
            t_ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            bare_encode(bare, feats)
            t_bare.append(time.perf_counter() - t)
        argmax[prec] = res.phoneme_logprobs.argmax(1)
        if prec == "int8":  # onnxruntime's intra-op threads spin-wait by default; on a shared CPU that can hurt
            nospin = bare_ort_session(path, a["threads"], spinning=False)
            bare_encode(nospin, feats)
            t_ns = []
            for _ in range(a["reps"]):
                t = time.perf_counter()
                bare_encode(nospin, feats)
                t_ns.append(time.perf_counter() - t)
            out["int8_bare_no_spinning_s_per_audio_s"] = _r(_med(t_ns) / seconds)
            del nospin
        out[prec] = {
            "file_mb": round(sum(p.stat().st_size for p in path.parent.glob(path.name + "*")) / 1e6, 1),
            "session_load_s": _r(load_ours, 3), "bare_session_load_s": _r(load_bare, 3),
            "s_per_audio_s": _r(_med(t_ours) / seconds), "bare_s_per_audio_s": _r(_med(t_bare) / seconds),
            "ours_over_bare_time": _r(_med(t_ours) / _med(t_bare), 3), "runs": a["reps"],
        }
        if prec == "fp32":
            ref_emb = res.audio_embeds
        else:
            diff = res.audio_embeds - ref_emb
            out["int8_vs_fp32_embed_rel_err"] = _r(np.linalg.norm(diff) / np.linalg.norm(ref_emb), 5)
        ours.close()
        del bare
    out["int8_speedup_vs_fp32"] = _r(out["fp32"]["s_per_audio_s"] / out["int8"]["s_per_audio_s"], 3)
    out["phoneme_argmax_agreement_int8_vs_fp32"] = _r(float((argmax["int8"] == argmax["fp32"]).mean()), 4)
    out["phoneme_frames"] = int(argmax["fp32"].shape[0])
    return out


def _llm_opts(a: dict, **kw):
    from nim4asr_edge.llm import LLMOptions

    base = {"n_threads": a["threads"], "n_threads_batch": a["threads"], "n_ctx": 2048, "use_mmap": True,
            "n_gpu_layers": a.get("n_gpu_layers", 0), "extra_buffers": a.get("extra_buffers")}
    base.update(kw)
    return LLMOptions(**base)


def _raw_kw(o) -> dict:
    return {"n_ctx": o.n_ctx, "n_batch": o.n_batch, "n_ubatch": o.n_ubatch, "n_threads": o.n_threads,
            "flash_attn": o.flash_attn, "type_k": o.type_k, "type_v": o.type_v, "use_mmap": o.use_mmap,
            "extra_bufts": o.resolved_extra_buffers(), "n_gpu_layers": o.n_gpu_layers}


def _fake_embeds(n: int, d: int, seed: int = 0) -> np.ndarray:
    # LLM speed does not depend on values; scaled like token embeddings (std 0.02 init -> use unit-ish rows).
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32) * 0.05


def _ours_prefill_decode(llm, prefix, embeds, n_dec):
    llm.clear()
    llm.eval_tokens(prefix)
    t = time.perf_counter()
    llm.eval_embeds(embeds, output_last=True)
    t1 = time.perf_counter()
    toks, _, _ = llm.continue_greedy(n_dec, ())
    t2 = time.perf_counter()
    return t1 - t, t2 - t1, toks


def _raw_prefill_decode(raw, prefix, embeds, n_dec):
    raw.clear()
    raw.tokens(prefix, logits_last=False)
    t = time.perf_counter()
    raw.embeds(embeds, logits_last=True)
    t1 = time.perf_counter()
    toks = raw.greedy(n_dec)
    t2 = time.perf_counter()
    return t1 - t, t2 - t1, toks


def w_llm(a: dict) -> dict:
    """Audio-embedding prefill and decode tok/s, ours (LLMSession) vs a raw llama.cpp loop on the same GGUF."""
    from fullsize_raw import RawLlama

    from nim4asr_edge.llm import LLMSession
    from nim4asr_edge.prompt import NIM4_PROMPT

    path = Path(a["gguf"]) if a.get("gguf") else _bundle(Path(a["cache"])).llm_path(a["llm"])
    o = _llm_opts(a)
    t = time.perf_counter()
    ours = LLMSession(path, o)
    load_ours = time.perf_counter() - t
    t = time.perf_counter()
    raw = RawLlama(path, **_raw_kw(o))
    load_raw = time.perf_counter() - t
    prefix = ours.tokenize(NIM4_PROMPT.prefix)
    emb = _fake_embeds(a["prefill"], ours.n_embd)
    _ours_prefill_decode(ours, prefix, emb[:16], 4)  # warm-up
    _raw_prefill_decode(raw, prefix, emb[:16], 4)
    rows = {"ours": [], "raw": []}
    same = True
    for _ in range(a["reps"]):
        p, d, t_ours = _ours_prefill_decode(ours, prefix, emb, a["decode"])
        rows["ours"].append((p, d))
        p, d, t_raw = _raw_prefill_decode(raw, prefix, emb, a["decode"])
        rows["raw"].append((p, d))
        same = same and t_ours == t_raw
    res = {"file": path.name, "file_gb": _r(path.stat().st_size / 1e9, 3), "options": {
        k: getattr(o, k) for k in ("n_threads", "n_ctx", "n_batch", "n_ubatch", "flash_attn", "type_k", "type_v",
                                   "use_mmap", "n_gpu_layers")} | {"extra_buffers": o.resolved_extra_buffers()},
        "load_s": _r(load_ours, 3), "raw_load_s": _r(load_raw, 3), "prefill_tokens": a["prefill"],
        "prefix_tokens": len(prefix), "decode_tokens": a["decode"], "runs": a["reps"],
        "same_tokens_as_raw": same}
    for who in ("ours", "raw"):
        res[f"{who}_prefill_tok_s"] = _r(a["prefill"] / _med([p for p, _ in rows[who]]), 2)
        res[f"{who}_decode_tok_s"] = _r(a["decode"] / _med([d for _, d in rows[who]]), 2)
    res["prefill_ours_over_raw"] = _r(res["ours_prefill_tok_s"] / res["raw_prefill_tok_s"], 4)
    res["decode_ours_over_raw"] = _r(res["ours_decode_tok_s"] / res["raw_decode_tok_s"], 4)
    ours.close()
    raw.close()
    return res


def _force_count(decoder) -> None:
    # A random model does not stop by itself and may stop by chance: disable the stop tokens so that every
    # decode generates exactly the budget (the benchmark's ~3 tokens per second of speech).
    decoder.stop_ids = []


def w_e2e(a: dict) -> dict:
    """End-to-end offline RTF (Recognizer.transcribe) for 5/10/30 s of speech; with ``raw``, the same work with
    numpy frontend + bare onnxruntime + raw llama.cpp, interleaved."""
    from nim4asr_edge.llm import LLMOptions
    from nim4asr_edge.recognizer import Recognizer, RecognizerOptions

    bundle = _bundle(Path(a["cache"]))
    opts = RecognizerOptions(threads=a["threads"], encoder_precision=a["enc"], llm_quant=a["llm"], verify="none",
                             max_tokens_per_second=TOKENS_PER_SECOND, min_new_tokens=1,
                             llm=LLMOptions(use_mmap=a["mmap"]))
    rec = Recognizer(bundle, opts)
    load_s = rec.load_seconds
    engine = rec.engine
    _force_count(engine.decoder)
    raw = sess = None
    if a.get("raw"):
        from fullsize_raw import RawLlama, bare_encode, bare_ort_session

        sess = bare_ort_session(engine.encoder.path, a["threads"])
        raw = RawLlama(engine.llm.path, **_raw_kw(engine.llm.options))
        raw_prefix = engine.decoder.prefix
        raw.tokens(raw_prefix, logits_last=False)
        raw_suffix = engine.llm.tokenize(engine.prompt.render([]).after)

        def raw_transcribe(samples):
            t = time.perf_counter()
            feats = engine.frontend(samples).values
            emb, _ = bare_encode(sess, feats)
            raw.truncate(len(raw_prefix))
            raw.embeds(emb)
            raw.tokens(raw_suffix)
            raw.greedy(engine.token_budget(len(samples) / 16000))
            return time.perf_counter() - t

    rec.transcribe(_speech(5.0), sample_rate=16000)  # warm-up
    if raw is not None:
        raw_transcribe(_speech(5.0))
    out: dict = {"config": {"encoder": a["enc"], "llm": a["llm"], "use_mmap": a["mmap"], "threads": a["threads"]},
                 "load_s": _r(load_s, 3), "tokens_per_audio_s": TOKENS_PER_SECOND, "runs": a["reps"]}
    for d in a["durations"]:
        x = _speech(d)
        runs, raw_times = [], []
        for _ in range(a["reps"]):
            runs.append(rec.transcribe(x, sample_rate=16000))
            if raw is not None:
                raw_times.append(raw_transcribe(x))
        tm = [r.timings for r in runs]
        row = {
            "rtf": _r(_med([r.rtf for r in runs])),
            "total_s": _r(_med([t.total for t in tm]), 3),
            "stages_s": {k: _r(_med([getattr(t, k) for t in tm]), 3)
                         for k in ("frontend", "encoder", "prefill", "decode")},
            "generated_tokens": tm[0].generated_tokens, "prompt_tokens": tm[0].prompt_tokens,
        }
        if raw is not None:
            row["raw_total_s"] = _r(_med(raw_times), 3)
            row["raw_rtf"] = _r(_med(raw_times) / d)
            row["ours_over_raw_time"] = _r(_med([t.total for t in tm]) / _med(raw_times), 4)
        out[f"{int(d)}s"] = row
    rec.close()
    if raw is not None:
        raw.close()
    return out


def w_stream(a: dict) -> dict:
    """Streaming cost per 640 ms chunk over a 30 s utterance: StreamingEncoderSession.step + LLM append + partial
    decode (PromptedDecoder, rollback 5, ~3 tokens/s), vs bare onnxruntime + raw llama.cpp doing the same."""
    from fullsize_raw import BareStreamingEncoder, RawLlama, bare_ort_session

    from nim4asr_edge.decoding import PromptedDecoder
    from nim4asr_edge.encoder import EncoderOptions
    from nim4asr_edge.streaming_encoder import StreamingEncoderSession
    from nim4asr_edge.llm import LLMSession

    bundle = _bundle(Path(a["cache"]))
    seconds = a["seconds"]
    feats = bundle.frontend()(_speech(seconds)).values
    spath = bundle.streaming_encoder_path(a["enc"])
    enc = StreamingEncoderSession(spath, EncoderOptions(intra_op_num_threads=a["threads"]))
    bare_sess = bare_ort_session(spath, a["threads"])
    o = _llm_opts(a)
    llm = LLMSession(bundle.llm_path(a["llm"]), o)
    raw = RawLlama(bundle.llm_path(a["llm"]), **_raw_kw(o))
    prompt = bundle.manifest.prompt
    chunk, window = enc.chunk_frames, enc.window_frames
    n_chunks = (feats.shape[0] - 3) // chunk  # full chunks only (the tail goes to flush in a real stream)

    def budget(c: int) -> int:
        return max(1, round(TOKENS_PER_SECOND * (c + 1) * chunk / 100.0))

    def run_ours():
        dec = PromptedDecoder(llm, prompt)
        _force_count(dec)
        state = enc.new_state()
        prev: tuple = ()
        rows = []
        for c in range(n_chunks):
            lo = c * chunk + (0 if c == 0 else 3)
            piece = feats[lo : c * chunk + window]
            t0 = time.perf_counter()
            out = enc.step(state, piece)
            t1 = time.perf_counter()
            dec.append_speech(out.audio_embeds)
            t2 = time.perf_counter()
            forced = prev[: max(0, len(prev) - ROLLBACK)] if c >= UNSTABLE else ()
            hyp = dec.decode([], budget(c), forced)
            t3 = time.perf_counter()
            prev = hyp.tokens
            rows.append((t1 - t0, t2 - t1, t3 - t2, len(hyp.tokens) - len(forced)))
        return rows

    suffix = llm.tokenize(prompt.render_suffix([]))
    prefix = llm.tokenize(prompt.prefix)

    def run_raw():
        raw.clear()
        raw.tokens(prefix, logits_last=False)
        benc = BareStreamingEncoder(bare_sess)
        n_speech = 0
        prev: list = []
        rows = []
        for c in range(n_chunks):
            t0 = time.perf_counter()
            emb = benc.step(feats[c * chunk : c * chunk + window])
            t1 = time.perf_counter()
            raw.truncate(len(prefix) + n_speech)
            raw.embeds(emb)
            n_speech += len(emb)
            t2 = time.perf_counter()
            keep = raw.n_past
            forced = prev[: max(0, len(prev) - ROLLBACK)] if c >= UNSTABLE else []
            n_new = budget(c) - len(forced)
            raw.tokens(suffix + forced)
            prev = forced + raw.greedy(n_new)
            raw.truncate(keep)
            t3 = time.perf_counter()
            rows.append((t1 - t0, t2 - t1, t3 - t2, n_new))
        return rows

    passes = {"ours": [], "raw": []}
    for _ in range(a["reps"]):
        passes["ours"].append(run_ours())
        passes["raw"].append(run_raw())
    chunk_s = chunk / 100.0

    def summarise(ps):
        per_chunk = [[_med([p[c][k] for p in ps]) for k in range(3)] for c in range(n_chunks)]
        totals = [sum(r) for r in per_chunk]
        return {
            "encoder_step_ms": _r(1000 * _med([r[0] for r in per_chunk]), 1),
            "llm_append_ms": _r(1000 * _med([r[1] for r in per_chunk]), 1),
            "partial_decode_ms": _r(1000 * _med([r[2] for r in per_chunk]), 1),
            "chunk_total_ms_median": _r(1000 * _med(totals), 1),
            "chunk_total_ms_mean": _r(1000 * float(np.mean(totals)), 1),
            "chunk_total_ms_p90": _r(1000 * float(np.percentile(totals, 90)), 1),
            "chunk_total_ms_max": _r(1000 * max(totals), 1),
            "chunk_total_ms_last": _r(1000 * totals[-1], 1),
            "rtf_mean": _r(float(np.mean(totals)) / chunk_s),
            "new_tokens_per_chunk_mean": _r(float(np.mean([r[3] for r in ps[0]])), 2),
        }

    res = {"chunk_ms": int(chunk_s * 1000), "chunks": n_chunks, "stream_s": seconds, "runs": a["reps"],
           "config": {"encoder": a["enc"], "llm": a["llm"], "threads": a["threads"]},
           "ours": summarise(passes["ours"]), "raw": summarise(passes["raw"])}
    res["ours_over_raw_time"] = _r(res["ours"]["chunk_total_ms_mean"] / res["raw"]["chunk_total_ms_mean"], 4)
    llm.close()
    raw.close()
    enc.close()
    return res


def _sweep_one(llm, a: dict, reps: int) -> dict:
    from nim4asr_edge.prompt import NIM4_PROMPT

    prefix = llm.tokenize(NIM4_PROMPT.prefix)
    emb = _fake_embeds(a["prefill"], llm.n_embd)
    _ours_prefill_decode(llm, prefix, emb[:8], 2)
    ps, ds = [], []
    for _ in range(reps):
        p, d, _ = _ours_prefill_decode(llm, prefix, emb, a["decode"])
        ps.append(p)
        ds.append(d)
    return {"prefill_tok_s": _r(a["prefill"] / _med(ps), 2), "decode_tok_s": _r(a["decode"] / _med(ds), 2)}


def w_sweep(a: dict) -> dict:
    """LLM device options on one loaded model (contexts forked on shared weights): threads, KV type, flash
    attention, n_batch/n_ubatch; the GPU offload check. Baseline repeated first and last."""
    from nim4asr_edge.llm import LLMSession

    bundle = _bundle(Path(a["cache"]))
    path = bundle.llm_path(a["llm"])
    base = _llm_opts(a)
    root = LLMSession(path, base)
    t = a["threads"]
    configs = [
        ("baseline", {}),
        ("threads=1", {"n_threads": 1, "n_threads_batch": 1}),
        ("kv=f32", {"type_k": "f32", "type_v": "f32"}),
        ("flash_attn", {"flash_attn": True}),
        ("flash_attn+kv=q8_0", {"flash_attn": True, "type_k": "q8_0", "type_v": "q8_0"}),
        ("n_batch=n_ubatch=64", {"n_batch": 64, "n_ubatch": 64}),
        ("n_batch=512,n_ubatch=128", {"n_ubatch": 128}),
        ("baseline(again)", {}),
    ]
    if t > 1 and os.cpu_count() and os.cpu_count() > t:
        configs.insert(2, (f"threads={2 * t}", {"n_threads": 2 * t, "n_threads_batch": 2 * t}))
    out = {"llm": path.name, "prefill_tokens": a["prefill"], "decode_tokens": a["decode"], "configs": {}}
    import dataclasses

    for name, kw in configs:
        try:
            ctx = root.fork(dataclasses.replace(base, **kw))
        except Exception as exc:  # noqa: BLE001 - e.g. an option combination llama.cpp refuses: report it
            out["configs"][name] = {"options": kw, "error": str(exc)}
            continue
        try:
            out["configs"][name] = {"options": kw} | _sweep_one(ctx, a, a["reps"])
        finally:
            ctx.close()
    b = [out["configs"]["baseline"], out["configs"]["baseline(again)"]]
    ref_p = _med([x["prefill_tok_s"] for x in b])
    ref_d = _med([x["decode_tok_s"] for x in b])
    for row in out["configs"].values():
        if "error" in row:
            continue
        row["prefill_vs_baseline"] = _r(row["prefill_tok_s"] / ref_p, 3)
        row["decode_vs_baseline"] = _r(row["decode_tok_s"] / ref_d, 3)
    root.close()
    return out


def w_gpu(a: dict) -> dict:
    """GPU offload options: what this machine's builds offer, and the fallback that happens when absent."""
    import logging

    import llama_cpp.llama_cpp as L
    import onnxruntime as ort

    from nim4asr_edge.encoder import EncoderOptions, EncoderSession

    res: dict = {"llama_supports_gpu_offload": bool(L.llama_supports_gpu_offload()),
                 "onnxruntime_providers": ort.get_available_providers()}
    if res["llama_supports_gpu_offload"]:
        res["llama"] = "GPU build: n_gpu_layers=-1 offloads every layer (measure with --gpu-layers)"
    else:
        res["llama"] = ("this llama-cpp-python build has no GPU backend: n_gpu_layers is ignored and every layer "
                        "runs on the CPU (install a CUDA/Metal/Vulkan build, see README 'GPU install')")
    caught: list[str] = []

    class _H(logging.Handler):
        def emit(self, record):
            caught.append(record.getMessage())

    lg = logging.getLogger("nim4asr_edge.encoder")
    lg.addHandler(_H())
    bundle = _bundle(Path(a["cache"]))
    wanted = ("CUDAExecutionProvider", "DmlExecutionProvider", "CoreMLExecutionProvider", "CPUExecutionProvider")
    with EncoderSession(bundle.encoder_path("int8"), EncoderOptions(intra_op_num_threads=a["threads"],
                                                                    providers=wanted)) as enc:
        res["encoder_requested_providers"] = list(wanted)
        res["encoder_used_providers"] = enc.providers
    res["encoder_fallback_message"] = caught[0] if caught else None
    return res


def w_threads(a: dict) -> dict:
    """Decode/prefill at 1 and 2 threads (forked contexts) in this process's OpenMP wait policy."""
    import dataclasses

    from nim4asr_edge.llm import LLMSession

    bundle = _bundle(Path(a["cache"]))
    root = LLMSession(bundle.llm_path(a["llm"]), _llm_opts(a))
    out = {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}  # as set when llama.cpp loaded
    for th in (1, 2):
        ctx = root.fork(dataclasses.replace(root.options, n_threads=th, n_threads_batch=th))
        out[f"threads={th}"] = _sweep_one(ctx, a, a["reps"])
        ctx.close()
    root.close()
    return out


def w_extra_buffers(a: dict) -> dict:
    """Load + one decode with llama.cpp's extra (repacked) CPU buffers on; may crash on AMX CPUs (run isolated)."""
    from nim4asr_edge.llm import LLMSession

    bundle = _bundle(Path(a["cache"]))
    with LLMSession(bundle.llm_path(a["llm"]), _llm_opts(a, extra_buffers=True)) as llm:
        return {"extra_buffers": True} | _sweep_one(llm, a, 1)


def _mem_now() -> dict:
    import resource

    import psutil

    mi = psutil.Process().memory_full_info()
    return {"rss_gb": _r(mi.rss / 1e9, 3), "anon_gb": _r((mi.rss - mi.shared) / 1e9, 3),
            "file_backed_gb": _r(mi.shared / 1e9, 3),
            "peak_rss_gb": _r(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, 3)}


def w_memory(a: dict) -> dict:
    """Where the resident memory goes: first the product path (Recognizer load + a 10 s transcription; its peak is
    this worker's figure), then each part alone after closing it (RSS split into anonymous and file-backed)."""
    from nim4asr_edge.encoder import EncoderOptions, EncoderSession
    from nim4asr_edge.llm import LLMOptions, LLMSession
    from nim4asr_edge.process_memory import return_freed_heap
    from nim4asr_edge.recognizer import Recognizer, RecognizerOptions

    def trimmed() -> dict:  # what is still held once glibc returns freed heap
        return_freed_heap()
        return _mem_now()

    kv = a.get("kv", "f16")
    llm_opts = LLMOptions(use_mmap=a["mmap"], type_k=kv, type_v=kv)
    out = {"imports": _mem_now(), "kv_cache_type": kv}
    bundle = _bundle(Path(a["cache"]))
    opts = RecognizerOptions(threads=a["threads"], encoder_precision="int8", llm_quant="q4_k_m", verify="none",
                             max_tokens_per_second=TOKENS_PER_SECOND, min_new_tokens=1, llm=llm_opts)
    rec = Recognizer(bundle, opts)
    out["recognizer_loaded"] = _mem_now() | {"n_ctx": rec.engine.llm.n_ctx}
    _force_count(rec.engine.decoder)
    rec.transcribe(_speech(10.0), sample_rate=16000)
    out["after_10s_transcribe"] = _mem_now()
    out["peak_rss_gb"] = out["after_10s_transcribe"]["peak_rss_gb"]
    n_ctx = rec.engine.llm.n_ctx
    rec.close()
    del rec
    out["closed"] = trimmed()
    enc = EncoderSession(bundle.encoder_path("int8"), EncoderOptions(intra_op_num_threads=a["threads"]))
    out["encoder_session_int8_alone"] = _mem_now()
    enc.close()
    del enc
    out["closed_again"] = trimmed()
    llm = LLMSession(bundle.llm_path("q4_k_m"), dataclasses.replace(llm_opts, n_threads=a["threads"], n_ctx=n_ctx))
    out[f"llm_model_and_context_n_ctx_{n_ctx}_alone"] = _mem_now()
    llm.close()
    out["weights_on_disk_gb"] = {"encoder_int8": _r(bundle.encoder_path("int8").stat().st_size / 1e9, 3),
                                 "llm_q4_k_m": _r(bundle.llm_path("q4_k_m").stat().st_size / 1e9, 3)}
    return out


WORKERS = {f.__name__[2:]: f for f in (w_bandwidth, w_load, w_memory, w_encoder, w_llm, w_e2e, w_stream, w_sweep, w_threads, w_gpu,
                                          w_extra_buffers)}


# ---------------------------------------------------------------------------------------------------- driver


WORKER_ENV: dict = {}


def run_worker(name: str, args: dict, log, env: dict | None = None) -> dict:
    """Run one worker in a child process; adds its peak RSS (ru_maxrss) and wall time. A crash is reported."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--worker-args", json.dumps(args)]
    t = time.perf_counter()
    full_env = dict(os.environ)
    full_env.update(WORKER_ENV if env is None else env)
    full_env = {k: v for k, v in full_env.items() if v is not None}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT), env=full_env)
    out_chunks: list[bytes] = []
    err_chunks: list[bytes] = []
    th = [threading.Thread(target=lambda s=s, b=b: b.append(s.read())) for s, b in
          ((proc.stdout, out_chunks), (proc.stderr, err_chunks))]
    for x in th:
        x.start()
    _, status, ru = os.wait4(proc.pid, 0)
    for x in th:
        x.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    stdout = b"".join(out_chunks).decode(errors="replace")
    stderr = b"".join(err_chunks).decode(errors="replace")
    rss_gb = round(ru.ru_maxrss * 1024 / 1e9, 3)  # Linux reports KiB
    if proc.returncode != 0:
        sig = -proc.returncode if proc.returncode < 0 else None
        why = f"killed by {signal.Signals(sig).name}" if sig else f"exit status {proc.returncode}"
        log(f"{name}: FAILED ({why}) {stderr.strip().splitlines()[-1] if stderr.strip() else ''}")
        return {"error": why, "stderr_tail": stderr.strip()[-600:], "peak_rss_gb": rss_gb, "wall_s": round(wall, 1)}
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_gb"] = rss_gb
    res["wall_s"] = round(wall, 1)
    log(f"{name}: done in {wall:.0f} s, peak RSS {rss_gb} GB")
    return res


def _evict(paths) -> None:
    """Drop these files' pages from the page cache (posix_fadvise DONTNEED): the next load is a cold one."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def _machine(threads: int) -> dict:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    import llama_cpp
    import onnxruntime

    return {"cpu": cpu, "cores": os.cpu_count(), "threads_used": threads,
            "memory_gb": round(psutil.virtual_memory().total / 1e9, 1),
            "available_memory_gb_at_start": round(psutil.virtual_memory().available / 1e9, 1),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "os": platform.platform(), "python": platform.python_version(),
            "llama_cpp_python": llama_cpp.__version__, "onnxruntime": onnxruntime.__version__,
            "gpu": None}


def _gguf_bytes_per_token(path: Path, n_ctx_tokens: int) -> dict:
    """Bytes a decode step reads: every weight matrix once (the tied token embedding is the output matrix; the
    embedding lookup itself reads one row) plus the f16 KV cache of the positions attended to."""
    import gguf

    r = gguf.GGUFReader(path)
    weights = sum(int(t.n_bytes) for t in r.tensors)
    f = {f.name: f for f in r.fields.values()}

    def val(key):
        fld = f[key]
        return int(fld.parts[fld.data[0]][0])

    n_layer = val("qwen3.block_count")
    n_kv = val("qwen3.attention.head_count_kv")
    hd = val("qwen3.attention.key_length")
    kv = 2 * n_layer * n_kv * hd * 2 * n_ctx_tokens
    return {"weight_bytes": weights, "kv_bytes_at_context": kv, "context_tokens": n_ctx_tokens,
            "bytes_per_token": weights + kv}


def _targets(res: dict) -> dict:
    t = {}
    e2e = res["e2e"]["int8_q4_k_m_mmap"]
    worst = max(e2e[f"{int(d)}s"]["rtf"] for d in DURATIONS)
    t["e2e_rtf_le_0.5_q4_k_m_int8_2cores"] = {"value": worst, "met": worst <= 0.5,
                                              "note": "worst of 5/10/30 s, ours, mmap on"}
    rss = min(res["e2e"]["int8_q4_k_m_mmap"]["peak_rss_gb"], res["e2e"]["int8_q4_k_m_nommap"]["peak_rss_gb"])
    t["peak_rss_le_1.8_GB"] = {
        "value": rss, "met": rss <= 1.8,
        "mmap_on_gb": res["e2e"]["int8_q4_k_m_mmap"]["peak_rss_gb"],
        "mmap_off_gb": res["e2e"]["int8_q4_k_m_nommap"]["peak_rss_gb"],
        "note": "peak RSS of a process that loads int8 + Q4_K_M and transcribes 5/10/30 s (best of mmap on/off)"}
    llm = res["llm"]["q4_k_m"]
    t["prefill_ge_95pct_of_raw"] = {"value": llm["prefill_ours_over_raw"], "met": llm["prefill_ours_over_raw"] >= 0.95}
    t["decode_ge_95pct_of_raw"] = {"value": llm["decode_ours_over_raw"], "met": llm["decode_ours_over_raw"] >= 0.95}
    enc = res["encoder"]
    t["int8_encoder_ge_1.5x_fp32"] = {"value": enc["int8_speedup_vs_fp32"], "met": enc["int8_speedup_vs_fp32"] >= 1.5}
    agr = enc["phoneme_argmax_agreement_int8_vs_fp32"]
    t["int8_argmax_agreement_ge_99pct"] = {"value": agr, "met": agr >= 0.99,
                                           "note": "random weights: phoneme logits are near-flat, so argmax "
                                                   "agreement is a pessimistic proxy for a trained head"}
    return t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--only", default="", help="comma-separated sections to run (debugging)")
    ap.add_argument("--omp-wait-policy", default="unset",
                    help="OMP_WAIT_POLICY for the measuring processes (llama.cpp's CPU backend uses OpenMP); "
                         "'unset' (default) leaves the SDK's default (a short spin, GOMP_SPINCOUNT=10000, set by "
                         "nim4asr_edge._llama unless the environment names a policy); ACTIVE spins, which collapses "
                         "2-thread llama.cpp on a shared, oversubscribed CPU (see the omp_wait_policy section)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--worker-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        import logging

        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        res = WORKERS[args.worker](json.loads(args.worker_args))
        print(json.dumps(res))
        return

    def log(msg: str) -> None:
        print(f"[fullsize {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if args.omp_wait_policy.lower() != "unset":
        WORKER_ENV["OMP_WAIT_POLICY"] = args.omp_wait_policy
    else:
        WORKER_ENV["OMP_WAIT_POLICY"] = None
    build = subprocess.run([sys.executable, str(HERE / "fullsize_build.py"), "--cache", str(args.cache),
                            "--threads", str(args.threads)], stdout=sys.stderr, stderr=sys.stderr, check=False)
    if build.returncode != 0:
        sys.exit(f"building the full-size bundle failed (exit {build.returncode})")
    cache = args.cache
    base = {"cache": str(cache), "threads": args.threads}
    only = set(filter(None, args.only.split(",")))
    want = (lambda s: not only or s in only)

    from nim4asr_edge.bundle import Bundle
    from nim4asr_edge.manifest import Manifest

    manifest: Manifest = Bundle.load(cache / "bundle", verify="none").manifest
    res: dict = {"benchmark": "bench/fullsize.py", "issue": 6,
                 "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"),
                 "machine": _machine(args.threads),
                 "settings": {"threads": args.threads, "OMP_WAIT_POLICY": WORKER_ENV["OMP_WAIT_POLICY"] or "unset",
                              "nice": os.nice(0), "tokens_per_audio_s": TOKENS_PER_SECOND}}

    def save() -> None:
        if args.out:
            args.out.write_text(json.dumps(res, indent=2) + "\n")

    res["bundle"] = {
        "path": str(cache / "bundle"), "weights": "random (exact full shape), exported by export_bundle",
        "files_mb": {n: round(e.size / 1e6, 1) for n, e in manifest.files.items()},
        "export_seconds": manifest.extra.get("export_seconds"),
        "quant_fallbacks": {q: len(r.get("fallback_tensors", [])) for q, r in manifest.llm["quantization"].items()},
    }
    t = time.perf_counter()
    Bundle.load(cache / "bundle", verify="full")
    res["bundle"]["verify_sha256_all_files_s"] = round(time.perf_counter() - t, 1)

    if want("bandwidth"):
        res["bandwidth"] = run_worker("bandwidth", base, log)
    if want("load"):
        enc_int8 = [str(p) for p in (cache / "bundle").glob("encoder.int8.onnx*")]
        gguf_q4 = str(Bundle.load(cache / "bundle", verify="none").llm_path("q4_k_m"))
        res["load"] = {}
        for mmap in (True, False):
            key = "mmap" if mmap else "nommap"
            a = base | {"enc": "int8", "llm": "q4_k_m", "mmap": mmap}
            _evict(enc_int8 + [gguf_q4])
            res["load"][f"cold_{key}"] = run_worker("load", a, log)
            res["load"][f"warm_{key}"] = run_worker("load", a, log)
        res["load"]["cold_method"] = "posix_fadvise(DONTNEED) on the int8 encoder and Q4_K_M GGUF before the load"
        save()
    if want("memory"):
        res["memory"] = {k: run_worker("memory", base | {"mmap": m, "kv": kv}, log)
                         for k, m, kv in (("mmap", True, "f16"), ("nommap", False, "f16"), ("mmap_kv_q8_0", True, "q8_0"))}
        save()
    if want("encoder"):
        res["encoder"] = run_worker("encoder", base | {"reps": args.reps}, log)
        save()
    if want("llm"):
        res["llm"] = {q: run_worker("llm", base | {"llm": q, "reps": 2, "prefill": PREFILL_TOKENS,
                                                   "decode": DECODE_TOKENS}, log) for q in ("q4_k_m", "q8_0")}
        save()
    if want("e2e"):
        durs = list(DURATIONS)
        res["e2e"] = {
            "int8_q4_k_m_vs_raw": run_worker("e2e", base | {"enc": "int8", "llm": "q4_k_m", "mmap": True, "raw": True,
                                                            "reps": 2, "durations": durs}, log),
            "int8_q4_k_m_mmap": run_worker("e2e", base | {"enc": "int8", "llm": "q4_k_m", "mmap": True,
                                                          "reps": 2, "durations": durs}, log),
            "int8_q4_k_m_nommap": run_worker("e2e", base | {"enc": "int8", "llm": "q4_k_m", "mmap": False,
                                                            "reps": 2, "durations": durs}, log),
            "fp32_q8_0_mmap": run_worker("e2e", base | {"enc": "fp32", "llm": "q8_0", "mmap": True,
                                                        "reps": 1, "durations": [10.0]}, log),
        }
        save()
    if want("stream"):
        res["streaming"] = run_worker("stream", base | {"enc": "int8", "llm": "q4_k_m", "seconds": STREAM_SECONDS,
                                                        "reps": 1}, log)
        save()
    if want("sweep"):
        res["sweep"] = run_worker("sweep", base | {"llm": "q4_k_m", "reps": 1, "prefill": 64, "decode": 16}, log)
        res["sweep"]["use_mmap"] = {k: res.get("load", {}).get(k) for k in
                                    ("warm_mmap", "warm_nommap")} if "load" in res else None
        res["sweep"]["extra_buffers_on"] = run_worker("extra_buffers", base | {"llm": "q4_k_m", "prefill": 128,
                                                                                "decode": 32}, log)
        res["sweep"]["gpu"] = run_worker("gpu", base, log)
        small = base | {"llm": "q4_k_m", "reps": 1, "prefill": 32, "decode": 8}
        res["sweep"]["omp_wait_policy"] = {
            "ACTIVE": run_worker("threads", small, log, env={"OMP_WAIT_POLICY": "ACTIVE"}),
            "PASSIVE": run_worker("threads", small, log, env={"OMP_WAIT_POLICY": "PASSIVE"}),
        }
        save()
    if "llm" in res and "bandwidth" in res:
        bw = res["bandwidth"]["ceiling_GBps"] * 1e9
        res["ceiling"] = {}
        for q, row in res["llm"].items():
            if "error" in row:
                continue
            ctx_tokens = row["prefix_tokens"] + PREFILL_TOKENS + DECODE_TOKENS // 2
            b = _gguf_bytes_per_token(Bundle.load(cache / "bundle", verify="none").llm_path(q), ctx_tokens)
            ceiling = bw / b["bytes_per_token"]
            res["ceiling"][q] = b | {"ceiling_tok_s": _r(ceiling, 2), "decode_tok_s": row["ours_decode_tok_s"],
                                     "fraction_of_ceiling": _r(row["ours_decode_tok_s"] / ceiling, 3)}
    res["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    if all(k in res for k in ("e2e", "llm", "encoder")):
        try:
            res["targets"] = _targets(res)
        except (KeyError, TypeError) as exc:  # a section failed: its error is in the JSON already
            res["targets"] = {"error": f"cannot evaluate targets: missing {exc}"}
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
