"""What one llama_decode batch costs by its size, and audio + prompt text in one batch vs two (``token_table.py``).

For each bundle: the time to evaluate n token ids in one batch (n = 1 ... 64) on the recognizer's threads, then the
work of a streaming partial side by side in one process, alternating: ``two``, the audio embeddings in one batch
and the prompt text after them (the prompt's own tokens + forced tokens) as token ids in a second, as llama.cpp
takes them; ``one``, both in one batch with the text as its GGUF embedding rows (``LLMSession.eval_parts``). The
logits of the last position are compared: llama.cpp picks its matrix kernels by batch size, so a different split
into batches moves the float rounding (as any split does; a random network amplifies it). Prints JSON.

    python bench/prefill_batches.py --bundle /work/qwen3_asr_cache/bundle-0.6B [--bundle ...] \
        [--out bench/results/prefill_batches.json]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_overhead import finish, machine  # noqa: E402


def _median_ms(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(1000 * statistics.median(times), 2)


def measure(bundle: str, reps: int) -> dict:
    from nim4asr_edge import Recognizer, RecognizerOptions

    rec = Recognizer(bundle, RecognizerOptions(encoder_precision="int8", llm_quant="q4_k_m", verify="none"))
    decoder = rec.engine.new_decoder()
    llm = decoder.llm
    base = llm.n_past
    rng = np.random.default_rng(0)
    ids = [int(t) for t in rng.integers(1000, 20000, 64)]
    emb = (rng.standard_normal((64, llm.n_embd)) * 0.02).astype(np.float32)

    def tokens(n):
        llm.truncate(base)
        llm.eval_tokens(ids[:n], output_last=True)

    batch_ms = {n: _median_ms(lambda n=n: tokens(n), reps) for n in (1, 2, 4, 8, 16, 32, 64)}
    rows = {}
    for n_audio, n_text in ((13, 6), (26, 6), (13, 30), (26, 30), (60, 36)):
        audio, text = emb[:n_audio], ids[:n_text]

        def two():
            llm.truncate(base)
            llm.eval_embeds(audio)
            llm.eval_tokens(text, output_last=True)
            return llm.last_logits().copy()

        def one():
            llm.truncate(base)
            llm.eval_parts([audio, text], output_last=True)
            return llm.last_logits().copy()

        a, b = two(), one()
        diff = {"max_abs_logit_diff": round(float(np.abs(a - b).max()), 5),
                "max_abs_logit": round(float(np.abs(a).max()), 3), "same_argmax": bool(a.argmax() == b.argmax())}
        t_two, t_one = [], []
        for _ in range(reps):  # alternating, so both see the same load
            t_two.append(_median_ms(two, 1))
            t_one.append(_median_ms(one, 1))
        rows[f"{n_audio}_audio+{n_text}_text"] = {
            "two_batches_ms": statistics.median(t_two), "one_batch_ms": statistics.median(t_one),
            "one_over_two": round(statistics.median(t_one) / statistics.median(t_two), 3),
            **diff}
    threads = llm.options.resolved_threads()
    out = {"bundle": Path(bundle).name, "llm": llm.path.name, "n_threads_decode_batch": list(threads),
           "tokens_in_one_batch_ms": batch_ms, "partial_prefill": rows}
    llm.close()
    rec.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", action="append", required=True)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--out")
    a = ap.parse_args()
    t0 = time.perf_counter()
    report = {"benchmark": "bench/prefill_batches.py", "machine": machine(),
              "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%MZ"),
              "bundles": [measure(b, a.reps) for b in a.bundle]}
    finish(report, t0, Path(a.out) if a.out else None)


if __name__ == "__main__":
    main()
