"""The full-size LLM (Qwen3-1.7B shape, random weights) on a GPU: our LLMSession vs raw llama.cpp, offloaded.

    python bench/fullsize_gpu.py --work /tmp/fsgpu --out result.json [--gpu-layers -1]

Meant for a machine with a CUDA build of llama-cpp-python (see README "GPU install"). It builds the LLM part of
the full-size bundle through the real export path (random Qwen3-1.7B weights -> ``write_llm_gguf`` F16 ->
``quantize_gguf`` Q4_K_M and Q8_0), then runs ``fullsize.w_llm`` (audio-embedding prefill + greedy decode, ours vs a
raw llama.cpp loop, same options) offloaded and, for reference, on the CPU. The encoder half needs an onnxruntime
GPU provider; what the machine offers is recorded (``onnxruntime_providers``). Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fullsize import w_llm


def _log(msg: str) -> None:
    print(f"[fullsize-gpu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_llm(work: Path, threads: int, seed: int = 0, small: bool = False, f16_only: bool = False,
              tokenizer: Path | None = None) -> dict[str, Path]:
    """F16 GGUF of the full config's LLM with random weights, quantised to Q4_K_M and Q8_0 (cached in ``work``).

    ``tokenizer``: an existing ``tokenizer.json`` (else a byte-level BPE is trained, as bench/fullsize_build does).

    ``f16_only`` stops after the F16 file (it needs no llama.cpp, so it can run while llama.cpp is being built)."""
    work.mkdir(parents=True, exist_ok=True)
    out = {q: work / f"llm.{q}.gguf" for q in ("q4_k_m", "q8_0")}
    f16 = work / "llm.f16.gguf"
    if all(p.is_file() for p in out.values()):
        return out
    if not f16.is_file():
        _write_f16(f16, seed, small, tokenizer)
    if f16_only:
        return {"f16": f16}
    from nim4asr_export.llama_quantize import quantize_gguf

    for q, p in out.items():
        t = time.perf_counter()
        quantize_gguf(f16, p, q, n_threads=threads)
        _log(f"quantised {q} in {time.perf_counter() - t:.1f} s ({p.stat().st_size / 1e9:.2f} GB)")
    f16.unlink()
    return out


def _write_f16(f16: Path, seed: int, small: bool, tokenizer: Path | None) -> None:
    import torch
    from nim4asr_export.config import full_config, tiny_config
    from nim4asr_export.gguf_export import write_llm_gguf
    from nim4asr_export.tokenizers import sample_corpus, train_bpe
    from transformers import Qwen3Config, Qwen3ForCausalLM

    work = f16.parent
    cfg = (tiny_config(vocab_size=4096) if small else full_config()).llm
    tok = tokenizer or train_bpe(work, sample_corpus(n_lines=20000, seed=seed), cfg["vocab_size"], seed)
    with torch.device("meta"):
        model = Qwen3ForCausalLM(Qwen3Config(**cfg))
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, t in model.state_dict().items():
        if name == "lm_head.weight" and cfg.get("tie_word_embeddings"):
            continue
        if t.dim() >= 2:
            state[name] = torch.empty(t.shape, dtype=torch.float16).normal_(0.0, 0.02, generator=gen)
        else:
            state[name] = torch.ones(t.shape, dtype=torch.float32)
    _log(f"random LLM state: {sum(v.numel() for v in state.values()) / 1e9:.3f} B parameters")
    write_llm_gguf(state, cfg, tok, f16, "f16", name="fullsize-random-llm")


def _gpu_name() -> str | None:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                              check=False, capture_output=True, text=True, timeout=30).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def render_table(path: Path) -> str:
    """Markdown table (medians over the runs) of a results file ``{"runs": [<this script's JSON>, ...]}``."""
    import statistics

    runs = json.loads(Path(path).read_text())["runs"]
    first = runs[0]
    lines = [(f"Machine: {first['machine']['gpu']}, {first['machine']['cpu_count']} CPU cores; {first['date']}; "
             f"{len(runs)} runs (each the median of its repetitions), medians shown; random weights, Qwen3-1.7B shape, "
             f"{first['q4_k_m_gpu']['prefill_tokens']} audio embeddings prefilled, "
             f"{first['q4_k_m_gpu']['decode_tokens']} tokens decoded."), "",
             "| GGUF | where | prefill tok/s ours (raw) | decode tok/s ours (raw) | ours / raw prefill, decode | same tokens |",
             "|---|---|---|---|---|---|"]
    for q in ("q4_k_m", "q8_0"):
        for where in ("gpu", "cpu"):
            rows = [r[f"{q}_{where}"] for r in runs if "error" not in r[f"{q}_{where}"]]
            if not rows:
                continue

            def med(k, rows=rows):
                return statistics.median(r[k] for r in rows)

            label = "GPU, all layers" if where == "gpu" else f"CPU, {rows[0]['options']['n_threads']} threads"
            lines.append(f"| {q.upper()} | {label} | {med('ours_prefill_tok_s'):.0f} ({med('raw_prefill_tok_s'):.0f}) | "
                         f"{med('ours_decode_tok_s'):.0f} ({med('raw_decode_tok_s'):.0f}) | "
                         f"{med('prefill_ours_over_raw'):.3f}, {med('decode_ours_over_raw'):.3f} | "
                         f"{all(r['same_tokens_as_raw'] for r in rows)} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path("/tmp/fullsize_gpu"))
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=8, help="CPU threads (quantisation and the CPU reference rows)")
    ap.add_argument("--gpu-layers", type=int, default=-1)
    ap.add_argument("--prefill", type=int, default=188, help="audio embeddings per prefill (30 s at 6.25 Hz)")
    ap.add_argument("--decode", type=int, default=64)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="tiny config (to test this script without a GPU)")
    ap.add_argument("--f16-only", action="store_true", help="only write the F16 GGUF (no llama.cpp needed)")
    ap.add_argument("--tokenizer", type=Path, default=None, help="use this tokenizer.json instead of training one")
    ap.add_argument("--extra-buffers", action="store_true",
                    help="llama.cpp extra buffer types on (the H200 runs used this; on the 2-core AMX dev machine "
                         "the CPU repack it enables segfaults, see the README)")
    ap.add_argument("--table", type=Path, default=None, help="render a results file as Markdown and exit")
    args = ap.parse_args()
    if args.table:
        print(render_table(args.table))
        return
    if args.f16_only:
        build_llm(args.work, args.threads, small=args.small, f16_only=True, tokenizer=args.tokenizer)
        return

    import llama_cpp.llama_cpp as L
    import onnxruntime as ort

    res: dict = {"machine": {"gpu": _gpu_name(), "cpu_count": os.cpu_count(),
                             "python": platform.python_version()},
                 "date": time.strftime("%Y-%m-%d"), "llama_supports_gpu_offload": bool(L.llama_supports_gpu_offload()),
                 "onnxruntime_providers": ort.get_available_providers(), "small_config": args.small}

    def save() -> None:
        text = json.dumps(res, indent=1)
        if args.out:
            args.out.write_text(text + "\n")

    t = time.perf_counter()
    paths = build_llm(args.work, args.threads, small=args.small, tokenizer=args.tokenizer)
    res["build_s"] = round(time.perf_counter() - t, 1)
    save()
    base = {"threads": args.threads, "prefill": args.prefill, "decode": args.decode, "reps": args.reps}
    for q, p in paths.items():
        for where, layers in (("gpu", args.gpu_layers), ("cpu", 0)):
            key = f"{q}_{where}"
            _log(f"measuring {key}")
            try:
                res[key] = w_llm(base | {"gguf": str(p), "n_gpu_layers": layers,
                                         "extra_buffers": True if args.extra_buffers else None})
            except Exception as exc:  # noqa: BLE001 (one failed row must not lose the others)
                res[key] = {"error": f"{type(exc).__name__}: {exc}"}
            save()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
