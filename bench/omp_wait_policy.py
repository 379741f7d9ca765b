"""Decode speed by OpenMP wait policy and thread count, on a quiet CPU and beside one busy process; JSON out.

llama.cpp's CPU threads are OpenMP threads, and the policy is read once, when libgomp starts (the SDK sets
``OMP_WAIT_POLICY=PASSIVE`` unless the environment names a policy or a ``GOMP_SPINCOUNT``, see
``nim4asr_edge/_llama.py``). Each cell is a
fresh process: load the GGUF, prefill 64 tokens, then 3 rounds of 24 single-token decodes (best and median tok/s).
``--busy`` adds one process that spins on a core for the whole run (a desktop app or another stream), so both
situations are measured with the same script.

    python bench/omp_wait_policy.py [--gguf /work/fullsize_cache/bundle/llm.q4_k_m.gguf] [--out omp.json]
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
            "spin_10k": {"GOMP_SPINCOUNT": "10000"}}  # libgomp's default policy with a short spin (~10 us)


def child(gguf: str, threads: int) -> dict:
    from nim4asr_edge.llm import LLMOptions, LLMSession

    with LLMSession(gguf, LLMOptions(n_threads=threads, n_threads_batch=2, n_ctx=512)) as s:
        s.eval_tokens(list(range(1000, 1064)), output_last=True)
        base = s.n_past
        rates = []
        for _ in range(3):
            s.truncate(base)
            t = time.perf_counter()
            for i in range(24):
                s.eval_tokens([2000 + i], output_last=True)
            rates.append(24 / (time.perf_counter() - t))
    rates.sort()
    return {"best_tok_s": round(rates[-1], 2), "median_tok_s": round(rates[1], 2)}


def cell(gguf: str, policy: str, threads: int) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])  # GOMP_SPINCOUNT alone: the SDK then leaves the policy to libgomp (spin, then sleep)
    out = subprocess.run([sys.executable, __file__, "--child", gguf, str(threads)], env=env, capture_output=True,
                         text=True, cwd=ROOT)
    if out.returncode:
        return {"error": out.stderr[-400:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gguf", default="/work/fullsize_cache/bundle/llm.q4_k_m.gguf")
    ap.add_argument("--out")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child(a.child[0], int(a.child[1]))))
        return
    from llm_overhead import finish, machine

    t0 = time.perf_counter()
    report: dict = {"benchmark": "bench/omp_wait_policy.py", "gguf": Path(a.gguf).name, "machine": machine(),
                    "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"), "quiet": {}, "one_busy_process": {}}
    for situation in ("quiet", "one_busy_process"):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if situation != "quiet" else None
        try:
            for policy in POLICIES:
                for threads in (1, 2):
                    row = cell(a.gguf, policy, threads)
                    report[situation][f"{policy}_threads_{threads}"] = row
                    print(situation, policy, threads, row, file=sys.stderr, flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    finish(report, t0, Path(a.out) if a.out else None)


if __name__ == "__main__":
    main()
