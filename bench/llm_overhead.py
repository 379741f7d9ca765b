"""LLM speed that resolves small differences: our ``LLMSession`` vs a raw llama.cpp loop, and llama.cpp options;
medians with spread, the load average recorded around every child process. JSON out.

    python bench/llm_overhead.py --mode interleave --size reference,full --threads 1,2 --rounds 2 --pairs 6
    python bench/llm_overhead.py --mode interleave --size full --threads 2 --other '{"extra_buffers": true}'
    python bench/llm_overhead.py --mode overhead --size reference,full --threads 1,2 --rounds 5
    python bench/llm_overhead.py --mode options --size full --threads 2 --rounds 3

* ``interleave``: ours and raw on one loaded model (a context each; ``--other``: ours with other options on a
  second loaded model instead of raw) in one process, alternating run by run (ABBA), ratios per adjacent pair; and
  the Python time per decoded token outside ``llama_decode`` / ``llama_get_logits_ith`` (what ours adds or saves).
* ``overhead``: one fresh child per (round, side), ours / raw order flipping every round; the ratio ours/raw is
  taken per round. Each run prefills ``--prefill`` audio-like embeddings after a short token prefix and decodes
  ``--decode`` greedy tokens (stop tokens off).
* ``options``: fresh children of ours with llama.cpp settings (repacked buffers, mmap, n_ubatch, flash attention,
  KV type, prefill threads) against the defaults; each child's peak RSS (``os.wait4``) is the memory figure.
* ceilings (with ``overhead`` / ``options``, or ``--mode ceilings``): bandwidth (numpy copy and dot over 512 MiB, 1
  and N threads) and float32 matmul FLOP/s (BLAS on N threads). Decode is compared with bandwidth / bytes read per
  token, prefill with matmul FLOP/s / (2 x matrix parameters): a reference, not a bound (llama.cpp's quantised
  kernels use integer dot products).

``--size reference`` is the shipped default bundle's GGUF, ``full`` the 2.3 B bundle of ``bench/fullsize_build.py``
(``--cache``), or any GGUF path.
"""

from __future__ import annotations

import argparse
import dataclasses
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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

DEFAULT_CACHE = Path("/work/fullsize_cache")  # bench/fullsize_build.py's default
PREFIX_TEXT = "<|im_start|>system\nYou are a Multilingual Speech Recognition Model.<|im_end|>\n<|im_start|>user\n"
OPTION_SETS = {  # name -> LLMOptions overrides (the defaults are "default")
    "default": {},
    "repack": {"extra_buffers": True},  # use_mmap auto: read, not mapped
    "repack+mmap": {"extra_buffers": True, "use_mmap": True},  # the former default on this CPU class
    "mmap_off": {"use_mmap": False},
    "n_ubatch=128": {"n_ubatch": 128},
    "flash_attn_off": {"flash_attn": False},
    "kv=q8_0": {"type_k": "q8_0", "type_v": "q8_0"},
    "prefill_threads=1": {"n_threads_batch": 1},
}


def _r(x: float | None, n: int = 4) -> float | None:
    return None if x is None else round(float(x), n)


def spread(xs: list[float]) -> dict:
    """Median with min / max and the quartiles (n < 4: quartiles are the min / max)."""
    xs = sorted(float(x) for x in xs)
    q = statistics.quantiles(xs, n=4, method="inclusive") if len(xs) >= 4 else [xs[0], None, xs[-1]]
    return {"median": _r(statistics.median(xs)), "min": _r(xs[0]), "max": _r(xs[-1]), "q1": _r(q[0]),
            "q3": _r(q[2]), "n": len(xs)}


def proc_memory() -> dict:
    """This process's resident memory in GB (``Recognizer.load_memory``'s reading of /proc/self/status)."""
    from nim4asr_edge.process_memory import ProcessMemory

    return {k.replace("_bytes", "_gb"): _r(v / 1e9, 3) for k, v in dataclasses.asdict(ProcessMemory.now()).items() if v}


def gguf_path(size: str, cache: Path) -> Path:
    if size == "reference":
        from nim4asr_edge.bundle import Bundle
        from nim4asr_edge.models import reference_bundle_path

        return Bundle.load(reference_bundle_path(), verify="none").llm_path()
    path = cache / "bundle" / "llm.q4_k_m.gguf" if size == "full" else Path(size)
    if not path.is_file():
        sys.exit(f"{path} not found (--size full: build it with python bench/fullsize_build.py --cache {cache})")
    return path


def gguf_costs(path: Path, ctx_tokens: int) -> dict:
    """Bytes one decode step reads (every weight once; an untied token embedding only one row; the f16 KV cache of
    ``ctx_tokens`` positions) and the matrix parameters a prefilled token multiplies (no embedding / output)."""
    import gguf
    import numpy as np

    r = gguf.GGUFReader(path)
    fields = {f.name: f for f in r.fields.values()}

    def val(key: str):
        f = fields[key]
        return f.parts[f.data[0]]

    arch = bytes(val("general.architecture")).decode()
    names = {t.name for t in r.tensors}
    weight_bytes = 0
    matrix_params = 0
    for t in r.tensors:
        if t.name == "token_embd.weight" and "output.weight" in names:
            weight_bytes += int(t.n_bytes) // int(t.shape[-1] if len(t.shape) > 1 else 1)  # one row looked up
        else:
            weight_bytes += int(t.n_bytes)
        if len(t.shape) >= 2 and t.name.startswith("blk."):
            matrix_params += int(np.prod([int(x) for x in t.shape]))
    n_layer = int(val(f"{arch}.block_count")[0])
    n_head = int(val(f"{arch}.attention.head_count")[0])
    n_kv = int(val(f"{arch}.attention.head_count_kv")[0])
    n_embd = int(val(f"{arch}.embedding_length")[0])
    key_len = f"{arch}.attention.key_length"
    hd = int(val(key_len)[0]) if key_len in fields else n_embd // n_head
    kv = 2 * n_layer * n_kv * hd * 2 * ctx_tokens
    return {"file_gb": _r(path.stat().st_size / 1e9, 3), "weight_bytes_per_token": weight_bytes,
            "kv_bytes_per_token": kv, "bytes_per_token": weight_bytes + kv, "matrix_params": matrix_params,
            "context_tokens": ctx_tokens}


# ------------------------------------------------------------------------------------------------ child processes


def c_llm(a: dict) -> dict:
    """One side (ours / raw) in this fresh process: load, warm up, ``reps`` x (prefill, decode)."""
    import numpy as np

    from nim4asr_edge.llm import LLMOptions, LLMSession

    o = LLMOptions(n_threads=a["threads"], n_ctx=a["n_ctx"], **a["options"])
    t = time.perf_counter()
    if a["side"] == "ours":
        llm = LLMSession(Path(a["gguf"]), o)
        prefix = llm.tokenize(PREFIX_TEXT)
        mmap, extra = llm.uses_mmap, llm.uses_extra_buffers
    else:
        import llama_cpp.llama_cpp as L
        from fullsize_raw import RawLlama

        extra = o.resolved_extra_buffers()
        mmap = o.resolved_use_mmap(extra)
        llm = RawLlama(Path(a["gguf"]), n_ctx=o.n_ctx, n_batch=o.n_batch, n_ubatch=o.n_ubatch, n_threads=a["threads"],
                       n_threads_batch=o.resolved_threads()[1], flash_attn=o.flash_attn, type_k=o.type_k,
                       type_v=o.type_v, use_mmap=mmap, extra_bufts=extra)
        buf = (L.llama_token * 256)()
        prefix = list(buf[: L.llama_tokenize(llm.vocab, PREFIX_TEXT.encode(), len(PREFIX_TEXT.encode()), buf, 256,
                                             False, True)])
    ours = isinstance(llm, LLMSession)
    n_embd = llm.n_embd

    def once(emb, n_dec):
        llm.clear()
        llm.eval_tokens(prefix) if ours else llm.tokens(prefix, logits_last=False)
        t0 = time.perf_counter()
        llm.eval_embeds(emb, output_last=True) if ours else llm.embeds(emb, logits_last=True)
        t1 = time.perf_counter()
        toks = llm.continue_greedy(n_dec, ())[0] if ours else llm.greedy(n_dec)
        return t1 - t0, time.perf_counter() - t1, toks

    load_s = time.perf_counter() - t
    mem_loaded = proc_memory()
    emb = (np.random.default_rng(0).standard_normal((a["prefill"], n_embd)) * 0.05).astype(np.float32)
    once(emb[:16], 4)  # warm-up
    pre, dec, tokens = [], [], None
    for _ in range(a["reps"]):
        p, d, toks = once(emb, a["decode"])
        pre.append(p)
        dec.append(d)
        tokens = tokens or toks
    llm.close()
    return {"prefill_tok_s": a["prefill"] / statistics.median(pre), "decode_tok_s": a["decode"] / statistics.median(dec),
            "prefill_s": pre, "decode_s": dec, "load_s": _r(load_s, 3), "mmap": mmap, "extra_buffers": extra,
            "memory_after_load_gb": mem_loaded, "memory_end_gb": proc_memory(), "tokens": tokens}


def c_ceilings(a: dict) -> dict:
    """Bandwidth (copy / dot, 1 and N threads) and fp32 matmul throughput (BLAS on N threads; env set by parent)."""
    import numpy as np

    n = 1 << 27  # 512 MiB of float32
    x = np.ones(n, np.float32)
    y = np.empty_like(x)
    t_n = a["threads"]

    def threaded(fn, parts):
        ths = [threading.Thread(target=fn, args=p) for p in parts]  # numpy releases the GIL in both kernels
        t = time.perf_counter()
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        return time.perf_counter() - t

    xs, ys = np.array_split(x, t_n), np.array_split(y, t_n)
    ones = [np.ones(len(p), np.float32) for p in xs]
    res: dict = {"copy_GBps": {}, "read_GBps": {}}
    for th in sorted({1, t_n}):
        cp = [(ys[i], xs[i]) for i in range(t_n)] if th > 1 else [(y, x)]
        rd = [(xs[i], ones[i]) for i in range(t_n)] if th > 1 else [(x, np.ones(n, np.float32))]
        copies = [2 * x.nbytes / threaded(np.copyto, cp) for _ in range(5)]
        reads = [x.nbytes / threaded(np.dot, rd) for _ in range(5)]
        res["copy_GBps"][f"{th}t"] = _r(max(copies) / 1e9, 2)
        res["read_GBps"][f"{th}t"] = _r(max(reads) / 1e9, 2)
    del x, y, xs, ys, ones
    m = 2048
    A = np.random.default_rng(0).standard_normal((m, m)).astype(np.float32)
    B = np.random.default_rng(1).standard_normal((m, m)).astype(np.float32)
    best = float("inf")
    for _ in range(6):  # the first warms up
        t = time.perf_counter()
        A @ B
        best = min(best, time.perf_counter() - t)
    res["matmul_fp32_GFLOPs"] = _r(2 * m ** 3 / best / 1e9, 1)
    res["method"] = ("numpy: np.copyto (read+write bytes) and np.dot with ones (read bytes) over 512 MiB, split over "
                     "threads; best of 5. float32 2048^3 matmul, BLAS threads = OPENBLAS/OMP_NUM_THREADS; best of 5")
    return res


def c_interleave(a: dict) -> dict:
    """Ours and raw on one loaded model (a context each), alternating run by run (ABBA), so both see the same load;
    the time inside llama_decode / llama_get_logits_ith is measured apart from the Python around it."""
    import llama_cpp.llama_cpp as L
    import numpy as np
    from fullsize_raw import RawLlama

    from nim4asr_edge.llm import LLMOptions, LLMSession

    native = [0.0]

    def timed(fn):
        def call(*args):
            t = time.perf_counter()
            out = fn(*args)
            native[0] += time.perf_counter() - t
            return out
        return call

    L.llama_decode, L.llama_get_logits_ith = timed(L.llama_decode), timed(L.llama_get_logits_ith)  # both sides
    o = LLMOptions(n_threads=a["threads"], n_ctx=a["n_ctx"], **a["options"])
    ours = LLMSession(Path(a["gguf"]), o)
    _, tb = o.resolved_threads()
    if a.get("other") is not None:  # side "raw" is then our session with other options, on its own model
        raw = LLMSession(Path(a["gguf"]), LLMOptions(n_threads=a["threads"], n_ctx=a["n_ctx"], **a["other"]))
    else:
        raw = RawLlama(a["gguf"], n_ctx=o.n_ctx, n_batch=o.n_batch, n_ubatch=o.n_ubatch, n_threads=a["threads"],
                       n_threads_batch=tb, flash_attn=o.flash_attn, type_k=o.type_k, type_v=o.type_v,
                       model=ours._model.model)
    prefix = ours.tokenize(PREFIX_TEXT)
    emb = (np.random.default_rng(0).standard_normal((a["prefill"], ours.n_embd)) * 0.05).astype(np.float32)

    def run(side: str, e, n_dec: int):
        s = ours if side == "ours" else raw
        s.clear()
        s.eval_tokens(prefix) if isinstance(s, LLMSession) else s.tokens(prefix, logits_last=False)
        t0 = time.perf_counter()
        s.eval_embeds(e, output_last=True) if isinstance(s, LLMSession) else s.embeds(e, logits_last=True)
        t1 = time.perf_counter()
        native[0] = 0.0
        toks = s.continue_greedy(n_dec, ())[0] if isinstance(s, LLMSession) else s.greedy(n_dec)
        t2 = time.perf_counter()
        return {"prefill_s": t1 - t0, "decode_s": t2 - t1, "python_s": t2 - t1 - native[0], "tokens": toks}

    run("ours", emb[:16], 4)
    run("raw", emb[:16], 4)
    rows: dict[str, list] = {"ours": [], "raw": []}
    for i in range(a["pairs"]):
        for side in (("ours", "raw") if i % 2 == 0 else ("raw", "ours")):
            rows[side].append(run(side, emb, a["decode"]))
    raw.close()
    ours.close()
    n = a["decode"]
    out: dict = {"pairs": a["pairs"], "same_tokens": all(x["tokens"] == y["tokens"] for x, y in zip(*rows.values()))}
    for side, rs in rows.items():
        out[side] = {"prefill_tok_s": [a["prefill"] / r["prefill_s"] for r in rs],
                     "decode_tok_s": [n / r["decode_s"] for r in rs],
                     "python_us_per_token": [1e6 * r["python_s"] / n for r in rs]}
    return out


CHILDREN = {"llm": c_llm, "ceilings": c_ceilings, "interleave": c_interleave}


# ------------------------------------------------------------------------------------------------ driver


def run_child(name: str, args: dict, env: dict | None = None, script: Path | None = None) -> dict:
    """Run child ``name`` of ``script`` (default: this file; it must accept ``--child NAME --child-args JSON``) in a
    fresh process; adds peak RSS (``os.wait4``), wall time and the load average around it."""
    script = script or Path(__file__).resolve()
    cmd = [sys.executable, str(script), "--child", name, "--child-args", json.dumps(args)]
    load_before = [round(x, 2) for x in os.getloadavg()]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(ROOT),
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})
    chunks: dict[str, bytes] = {}
    readers = [threading.Thread(target=lambda k=k, s=s: chunks.__setitem__(k, s.read()))
               for k, s in (("out", proc.stdout), ("err", proc.stderr))]
    for th in readers:
        th.start()
    _, status, ru = os.wait4(proc.pid, 0)  # reaps the child: its own peak RSS, not the driver's
    for th in readers:
        th.join()
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    out, err = chunks["out"], chunks["err"]
    row: dict = {"loadavg_before": load_before, "loadavg_after": [round(x, 2) for x in os.getloadavg()],
                 "wall_s": round(time.perf_counter() - t, 1), "peak_rss_gb": round(ru.ru_maxrss * 1024 / 1e9, 3)}
    if code != 0:
        tail = err.decode(errors="replace").strip().splitlines()
        return row | {"error": f"exit {code}", "stderr_tail": tail[-3:]}
    return row | json.loads(out.decode().strip().splitlines()[-1])


def _log(msg: str) -> None:
    print(f"[{Path(sys.argv[0]).stem} {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def alternate(configs: list[tuple[str, dict]], rounds: int, child: str = "llm",
              script: Path | None = None) -> dict[str, list[dict]]:
    """Every config once per round in fresh processes; the order rotates (and reverses) from round to round."""
    out: dict[str, list[dict]] = {name: [] for name, _ in configs}
    for r in range(rounds):
        order = configs[r % len(configs):] + configs[: r % len(configs)]
        if r % 2:
            order = order[::-1]
        for name, args in order:
            row = run_child(child, args, script=script)
            row["round"] = r
            out[name].append(row)
            what = row.get("error") or (f"prefill {row['prefill_tok_s']:.1f} decode {row['decode_tok_s']:.2f} tok/s"
                                        if "decode_tok_s" in row else "ok")
            _log(f"round {r} {name}: {what}, rss {row.get('peak_rss_gb')} GB, "
                 f"load {row['loadavg_before'][0]}->{row['loadavg_after'][0]}")
    return out


def summarise(rows: list[dict]) -> dict:
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return {"error": rows[0].get("error") if rows else "no runs"}
    return {"prefill_tok_s": spread([r["prefill_tok_s"] for r in ok]),
            "decode_tok_s": spread([r["decode_tok_s"] for r in ok]),
            "peak_rss_gb": spread([r["peak_rss_gb"] for r in ok if "peak_rss_gb" in r]),
            "load_s": spread([r["load_s"] for r in ok]), "mmap": ok[0]["mmap"], "extra_buffers": ok[0]["extra_buffers"],
            "memory_after_load_gb": ok[0]["memory_after_load_gb"],
            "loadavg_1min": spread([x for r in ok for x in (r["loadavg_before"][0], r["loadavg_after"][0])]),
            "failed_runs": len(rows) - len(ok)}


def paired(a_rows: list[dict], b_rows: list[dict], key: str) -> dict | None:
    """a/b of ``key`` per round (both children of a round ran back to back), summarised over rounds."""
    b_by_round = {r["round"]: r for r in b_rows if "error" not in r}
    ratios = [r[key] / b_by_round[r["round"]][key] for r in a_rows if "error" not in r and r["round"] in b_by_round]
    return spread(ratios) if ratios else None


def finish(res: dict, t0: float, out: Path | None) -> None:
    """Record the load at the end and the wall time, write ``res`` to ``out`` (if given) and print it."""
    res["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(res, indent=2)
    if out:
        out.write_text(text + "\n")
    print(text)


def machine() -> dict:
    import llama_cpp

    from nim4asr_edge import _llama
    from nim4asr_edge.llm_options import auto_extra_buffers

    cpu = platform.machine()
    with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    flags = _llama.cpu_flags()
    return {"cpu": cpu, "cores": os.cpu_count(), "simd": sorted(f for f in flags if f.startswith(("avx", "amx"))),
            "repack_rule": auto_extra_buffers(flags), "llama_cpp_python": llama_cpp.__version__,
            "openmp": {k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},  # as llama.cpp runs
            "python": platform.python_version(), "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mode", choices=("overhead", "interleave", "options", "ceilings"), default="overhead")
    ap.add_argument("--pairs", type=int, default=8, help="--mode interleave: ours/raw pairs per child process")
    ap.add_argument("--other", help='--mode interleave: LLMOptions JSON (e.g. \'{"extra_buffers": true}\') run in '
                    'place of raw llama.cpp, on its own loaded model')
    ap.add_argument("--size", default="reference", help="comma list: reference, full, or GGUF paths")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="bench/fullsize_build.py's cache (--size full)")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--reps", type=int, default=2, help="prefill + decode repetitions inside each child")
    ap.add_argument("--prefill", type=int, default=96, help="embeddings prefilled (a 10 s clip's audio + prompt)")
    ap.add_argument("--decode", type=int, default=32)
    ap.add_argument("--options", default=",".join(OPTION_SETS), help="--mode options: names of OPTION_SETS")
    ap.add_argument("--no-ceilings", action="store_true", help="skip the bandwidth / matmul probes")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--child-args", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(CHILDREN[args.child](json.loads(args.child_args))))
        return
    threads = [int(t) for t in args.threads.split(",")]
    res: dict = {"benchmark": "bench/llm_overhead.py", "mode": args.mode, "argv": sys.argv[1:],
                 "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "machine": machine(),
                 "settings": {"rounds": args.rounds, "reps_per_child": args.reps, "prefill": args.prefill,
                              "decode": args.decode},
                 "results": {}}
    t0 = time.perf_counter()
    ceil_threads = max(threads)
    if args.mode in ("ceilings", "overhead", "options") and not args.no_ceilings:
        env = {"OPENBLAS_NUM_THREADS": str(ceil_threads), "OMP_NUM_THREADS": str(ceil_threads),
               "MKL_NUM_THREADS": str(ceil_threads)}
        res["ceilings"] = run_child("ceilings", {"threads": ceil_threads}, env)
        _log(f"ceilings: {res['ceilings']}")
    for size in args.size.split(",") if args.mode != "ceilings" else []:
        path = gguf_path(size, args.cache)
        for th in threads:
            key = f"{size if size in ('reference', 'full') else path.name}_{th}t"
            res["results"][key] = interleaved(path, th, args) if args.mode == "interleave" else fresh(path, th, args, res)
            if args.out:
                args.out.write_text(json.dumps(res, indent=2) + "\n")
    finish(res, t0, args.out)


def fresh(path: Path, th: int, args, res: dict) -> dict:
    """``--mode overhead`` / ``options``: every config once per round, each in a fresh process (``alternate``)."""
    base = {"gguf": str(path), "threads": th, "n_ctx": 1024, "prefill": args.prefill, "decode": args.decode,
            "reps": args.reps}
    if args.mode == "overhead":
        configs = [("ours", base | {"side": "ours", "options": {}}), ("raw", base | {"side": "raw", "options": {}})]
    else:
        names = [n for n in args.options.split(",") if th > 1 or n != "prefill_threads=1"]
        configs = [(n, base | {"side": "ours", "options": OPTION_SETS[n]}) for n in names]
    rows = alternate(configs, args.rounds)
    block: dict = {"gguf": str(path), "threads": th,
                   "costs": gguf_costs(path, len(PREFIX_TEXT) // 3 + args.prefill + args.decode // 2),
                   "configs": {n: summarise(rows[n]) | {"options": c["options"]} for n, c in configs},
                   "runs": {n: [{k: v for k, v in r.items() if k != "tokens"} for r in rs] for n, rs in rows.items()}}
    first = configs[0][0]
    for name, _ in configs[1:]:  # ours/raw in overhead mode; each option set / default in options mode
        block.setdefault("paired_vs_" + first, {})[name] = {
            k: paired(rows[name], rows[first], k) for k in ("prefill_tok_s", "decode_tok_s")}
    if args.mode == "overhead":
        block["ours_over_raw"] = {k: paired(rows["ours"], rows["raw"], k) for k in ("prefill_tok_s", "decode_tok_s")}
        block["same_tokens_as_raw"] = all(a.get("tokens") == b.get("tokens") for a, b in zip(rows["ours"], rows["raw"]))
    _ceiling(block, res.get("ceilings", {}), th)
    return block


def interleaved(path: Path, threads: int, args) -> dict:
    """``--rounds`` fresh processes of ``c_interleave``; ratios ours/raw per adjacent pair, over every pair."""
    a = {"gguf": str(path), "threads": threads, "n_ctx": 1024, "prefill": args.prefill, "decode": args.decode,
         "pairs": args.pairs, "options": {}, "other": json.loads(args.other) if args.other else None}
    runs = []
    for r in range(args.rounds):
        row = run_child("interleave", a)
        runs.append(row)
        _log(f"interleave {path.name} {threads}t round {r}: " + (row.get("error") or "ok") +
             f", load {row['loadavg_before'][0]}->{row['loadavg_after'][0]}")
    ok = [r for r in runs if "error" not in r]
    out: dict = {"gguf": str(path), "threads": threads, "rounds": len(ok), "pairs_per_round": args.pairs,
                 "raw_side": a["other"] or "raw llama.cpp (fullsize_raw.RawLlama) on the same model",
                 "same_tokens": all(r["same_tokens"] for r in ok),
                 "loadavg_1min": spread([x for r in runs for x in (r["loadavg_before"][0], r["loadavg_after"][0])])}
    if not ok:
        return out | {"error": runs[0].get("error"), "stderr_tail": runs[0].get("stderr_tail")}
    for k in ("prefill_tok_s", "decode_tok_s", "python_us_per_token"):
        for side in ("ours", "raw"):
            out.setdefault(side, {})[k] = spread([x for r in ok for x in r[side][k]])
        if k != "python_us_per_token":
            out.setdefault("ours_over_raw", {})[k] = spread(
                [o / w for r in ok for o, w in zip(r["ours"][k], r["raw"][k])])
    return out


def _ceiling(block: dict, ceil: dict, threads: int) -> None:
    """Decode against bandwidth / bytes per token; prefill against fp32 matmul FLOP/s / (2 x matrix params)."""
    if "error" in ceil or not ceil:
        return
    bw = max(max(ceil["copy_GBps"].values()), max(ceil["read_GBps"].values())) * 1e9
    decode_ceiling = bw / block["costs"]["bytes_per_token"]
    prefill_ref = ceil["matmul_fp32_GFLOPs"] * 1e9 / (2 * block["costs"]["matrix_params"])
    block["ceiling"] = {"bandwidth_GBps": _r(bw / 1e9, 2), "decode_ceiling_tok_s": _r(decode_ceiling, 2),
                        "prefill_fp32_matmul_ref_tok_s": _r(prefill_ref, 1), "probe_threads": max(
                            int(k[:-1]) for k in ceil["copy_GBps"]), "run_threads": threads}
    for row in block["configs"].values():
        if "error" in row:
            continue
        row["decode_fraction_of_ceiling"] = _r(row["decode_tok_s"]["median"] / decode_ceiling, 3)
        row["prefill_fraction_of_fp32_matmul_ref"] = _r(row["prefill_tok_s"]["median"] / prefill_ref, 3)


if __name__ == "__main__":
    main()
