"""Decode speed by OpenMP wait policy and decode threads, on a quiet CPU and beside a busy process; JSON out.

llama.cpp's CPU threads are OpenMP threads, and the policy is read once, when libgomp starts (the SDK sets
``GOMP_SPINCOUNT=10000`` unless the environment names a policy or a spin count, see ``nim4asr_edge/_llama.py``).
Each cell is a fresh process: load the GGUF, prefill 64 tokens (2 threads; its speed is reported), then 3 rounds of
24 greedy single-token decodes (best and median tok/s) with 1 thread, 2, or the SDK's per-token choice
(``chooser``: ``LLMSession.tune_decode_threads`` at load, then ``ThreadChooser``), then the same prefill again (with
the chooser, on the prefill threads it chose by then). Situations: ``quiet``;
``one_busy_process`` (a process spinning on one core for the whole cell: a desktop app or another stream);
``busy_after_load`` (that process starts after the load-time tuning, so the choice must change while decoding).

    python bench/omp_wait_policy.py [--gguf /work/fullsize_cache/bundle/llm.q4_k_m.gguf]
        [--policies PASSIVE,sdk_default] [--threads 1,2,chooser] [--out omp.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
POLICIES = {"PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}, "ACTIVE": {"OMP_WAIT_POLICY": "ACTIVE"},
            "spin_10k": {"GOMP_SPINCOUNT": "10000"},  # libgomp's default policy with a short spin (~10 us)
            "sdk_default": {}}  # neither set: what the SDK chooses


def _hog() -> subprocess.Popen:
    """A process spinning on one core (a desktop app, or another stream)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def child(gguf: str, threads: str, busy_after_load: bool) -> dict:
    """One cell: prefill 64 tokens (2 threads), then 3 rounds of 24 greedy tokens with ``threads`` decode threads
    ("1", "2", or "chooser": the SDK's default, tuned at load and chosen token by token). ``busy_after_load``: the
    busy process starts after the load-time tuning, so the chooser must notice it while decoding."""
    from nim4asr_edge.llm import LLMOptions, LLMSession

    fixed = threads != "chooser"
    with LLMSession(gguf, LLMOptions(n_threads=int(threads) if fixed else 2, n_threads_batch=2, n_ctx=512)) as s:
        prompt = list(range(1000, 1064))
        s.eval_tokens(prompt[:8])  # wakes the thread pool
        s.clear()
        t = time.perf_counter()
        s.eval_tokens(prompt, output_last=True)
        prefill = len(prompt) / (time.perf_counter() - t)
        if not fixed:
            s.tune_decode_threads(prompt[-1])
        hog = _hog() if busy_after_load else None
        try:
            rates = []
            for _ in range(3):
                s.truncate(len(prompt) - 1)
                s.eval_tokens(prompt[-1:], output_last=True)
                t = time.perf_counter()
                tokens, _, _ = s.continue_greedy(25, stop_ids=())
                rates.append((len(tokens) - 1) / (time.perf_counter() - t))  # the last token is not evaluated
            s.clear()  # the same prefill again, after decoding (the chooser may have moved prefill to 1 thread)
            t = time.perf_counter()
            s.eval_tokens(prompt, output_last=True)
            prefill_after = len(prompt) / (time.perf_counter() - t)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
        chooser = getattr(s, "_chooser", None)
    rates.sort()
    return {"best_tok_s": round(rates[-1], 2), "median_tok_s": round(rates[1], 2),
            "prefill_tok_s": round(prefill, 1), "prefill_after_decoding_tok_s": round(prefill_after, 1),
            "switches": chooser.switches if chooser else None,
            "threads_at_end": chooser.current if chooser else int(threads)}


def cell(gguf: str, policy: str, threads: str, situation: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])  # GOMP_SPINCOUNT alone: the SDK then leaves the policy to libgomp (spin, then sleep)
    out = subprocess.run([sys.executable, __file__, "--child", gguf, threads, situation], env=env, capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        return {"error": out.stderr[-400:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default="/work/fullsize_cache/bundle/llm.q4_k_m.gguf")
    ap.add_argument("--out")
    ap.add_argument("--policies", default=",".join(POLICIES), help=f"comma list of {', '.join(POLICIES)}")
    ap.add_argument("--threads", default="1,2,chooser", help="decode threads per cell: 1, 2, chooser")
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], a.child[1], a.child[2] == "busy_after_load")))
        return
    from llm_overhead import finish, machine

    t0 = time.perf_counter()
    report: dict = {"benchmark": "bench/omp_wait_policy.py", "gguf": Path(a.gguf).name, "machine": machine(),
                    "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "quiet": {}, "one_busy_process": {},
                    "busy_after_load": {}}
    for situation in ("quiet", "one_busy_process", "busy_after_load"):
        hog = _hog() if situation == "one_busy_process" else None
        try:
            for policy in a.policies.split(","):
                for threads in a.threads.split(","):
                    row = cell(a.gguf, policy, threads, situation)
                    report[situation][f"{policy}_threads_{threads}"] = row
                    print(situation, policy, threads, row, file=sys.stderr, flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    finish(report, t0, Path(a.out) if a.out else None)


if __name__ == "__main__":
    main()
