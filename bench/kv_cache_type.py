"""The LLM's KV-cache type (f32, f16, q8_0): what each costs in accuracy, side by side in one run; JSON out.

    python bench/kv_cache_type.py [--clips 40] [--text-sentences 120] [--out bench/results/kv_cache_type.json]

The only trained weights on this machine are the reference bundle's (``nim4asr-ref-en``: a trained encoder and
adaptor in front of SmolLM2-135M), so both measurements use them:

* **recognition**: ``--clips`` sentences of the reference recipe's corpus (a seed no training split uses),
  synthesised by its Piper voice, transcribed with each KV type: WER, and the clips whose text equals the f32
  run's (the f32 cache is exact up to llama.cpp's own arithmetic);
* **next-token distributions**: the corpus text teacher-forced through the LLM one token at a time, the whole text in
  one context (up to its n_ctx); per type, the KL divergence of each position's next-token distribution from the
  f32 one (mean, p99, max) and the share of positions whose top token is the f32 top token.

The KV cache's memory is arithmetic (positions x layers x (K + V) per position: q8_0 stores 34 bytes per 32 values,
f16 64, f32 128); the full-size peak RSS with each type is ``bench/fullsize_e2e.py --configs new_defaults,kv_f16``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "examples"))

from llm_overhead import finish, machine
from mobile.piper_clips import sentences, synthesise

TYPES = ("f32", "f16", "q8_0")
CORPUS_SEED = 20261207  # not a seed of any reference training or eval split
RATE = 16000


def recognition(texts: list[str], clips: list[np.ndarray], threads: int) -> dict:
    from reference_model.textnorm import wer_counts

    from nim4asr_edge import Recognizer, RecognizerOptions
    from nim4asr_edge.llm import LLMOptions

    out: dict = {}
    for kv in TYPES:
        llm = LLMOptions(type_k=kv, type_v=kv)
        with Recognizer(None, RecognizerOptions(threads=threads, llm=llm)) as rec:
            t0 = time.perf_counter()
            hyps = [rec.transcribe(c, sample_rate=RATE).unguarded_text for c in clips]
            wall = time.perf_counter() - t0
        errs, words = map(sum, zip(*(wer_counts(r, h) for r, h in zip(texts, hyps))))
        out[kv] = {"wer": round(errs / words, 4), "errors": errs, "words": words, "wall_s": round(wall, 2),
                   "texts": hyps}
    for kv in TYPES:
        out[kv]["same_text_as_f32"] = sum(a == b for a, b in zip(out[kv]["texts"], out["f32"]["texts"]))
    return out


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    x = x - x.max()
    return x - np.log(np.exp(x).sum())


def distributions(texts: list[str], threads: int) -> dict:
    from nim4asr_edge.bundle import Bundle
    from nim4asr_edge.llm import LLMOptions, LLMSession

    path = Bundle.load(None).llm_path(None)
    logp: dict[str, list[np.ndarray]] = {}
    for kv in TYPES:
        with LLMSession(path, LLMOptions(n_threads=threads, n_ctx=1024, type_k=kv, type_v=kv)) as s:
            ids = s.tokenize(" ".join(texts), parse_special=False)[: s.n_ctx - 1]
            rows = []
            for t in ids:
                s.eval_tokens([t], output_last=True)
                rows.append(_log_softmax(s.last_logits()))
        logp[kv] = rows
    out: dict = {"positions": len(logp["f32"])}
    ref = logp["f32"]
    for kv in TYPES[1:]:
        kl = np.array([float(np.sum(np.exp(a) * (a - b))) for a, b in zip(ref, logp[kv])])
        top = np.mean([int(a.argmax() == b.argmax()) for a, b in zip(ref, logp[kv])])
        out[kv] = {"kl_mean": float(kl.mean()), "kl_p99": float(np.quantile(kl, 0.99)), "kl_max": float(kl.max()),
                   "top1_agreement": round(float(top), 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=40, help="synthesised sentences to transcribe")
    ap.add_argument("--text-sentences", type=int, default=120, help="corpus sentences teacher-forced through the LLM")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    info = machine()
    t0 = time.perf_counter()
    texts = sentences(a.clips, CORPUS_SEED)
    result = {"benchmark": "bench/kv_cache_type.py", "argv": sys.argv[1:], "machine": info,
              "settings": {"clips": a.clips, "text_sentences": a.text_sentences, "threads": a.threads,
                           "bundle": "nim4asr-ref-en (SmolLM2-135M LLM, Q4_1)", "corpus_seed": CORPUS_SEED},
              "recognition": recognition(texts, synthesise(texts, CORPUS_SEED), a.threads),
              "distributions": distributions(sentences(a.text_sentences, CORPUS_SEED + 1), a.threads)}
    finish(result, t0, a.out)


if __name__ == "__main__":
    main()
