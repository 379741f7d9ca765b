"""Build (once, cached) a random-weight checkpoint and bundle of the exact full NIM4-ASR shape through the real
export path, keeping peak memory low.

    python bench/fullsize_build.py [--cache /work/fullsize_cache]

* ``CACHE/checkpoint/``: a ``nim4asr-checkpoint`` directory (docs/FORMAT.md) for ``full_config()``: the weights are
  generated tensor by tensor and streamed into ``model.safetensors`` (encoder fp32, LLM bf16 like a Qwen3
  release), so at most one tensor (in row chunks) is in memory; a byte-level BPE tokenizer trained with
  ``export/tokenizers.py`` (the GGUF writer pads it to Qwen3-1.7B's 151 936 rows, as convert_hf_to_gguf does);
  CMVN, a 72-symbol phoneme inventory, the default frontend and prompt.
* ``CACHE/bundle/``: ``export_bundle`` with int8 + fp32 encoder (offline and streaming graphs) and Q4_K_M + Q8_0
  LLM (the f16 base GGUF is written, quantised, and removed by the exporter).

Each part is rebuilt only when missing (a finished part writes ``.done``). Speed and memory do not depend on the
weight values; the values only have to be finite and well scaled.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import struct
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_CACHE = Path("/work/fullsize_cache")
N_PHONEMES = 72
LLM_STD = 0.02  # Qwen3Config.initializer_range
_ST_DTYPES = {"float32": ("F32", 4), "bfloat16": ("BF16", 2)}
_ROWS_ELEMS = 1 << 25  # generate at most 32 M values at a time


def _log(msg: str) -> None:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"[fullsize-build {time.strftime('%H:%M:%S')} peak {rss:.2f} GB] {msg}", flush=True)


def _tensor_plan(cfg) -> list[tuple[str, tuple[int, ...], str]]:
    """(name, shape, dtype) of every checkpoint tensor, from the model built on the meta device."""
    import torch
    from nim4asr_export.model import Nim4AsrModel

    with torch.device("meta"):
        model = Nim4AsrModel(cfg)
    plan = []
    for name, t in model.state_dict().items():
        if name == "llm.lm_head.weight" and cfg.llm.get("tie_word_embeddings"):
            continue  # tied to llm.model.embed_tokens.weight (save_checkpoint drops it too)
        plan.append((name, tuple(t.shape), "bfloat16" if name.startswith("llm.") else "float32"))
    return plan


def _init_spec(name: str, shape: tuple[int, ...], shapes: dict[str, tuple[int, ...]]) -> tuple[str, float]:
    """(kind, scale) of the random init: PyTorch's defaults for the encoder (Linear/Conv U(+-1/sqrt(fan_in)),
    LayerNorm 1/0), Qwen3's for the LLM (N(0, 0.02) matrices, RMSNorm 1)."""
    if name.startswith("llm."):
        return ("normal", LLM_STD) if len(shape) >= 2 else ("ones", 0.0)
    if len(shape) >= 2:
        return "uniform", 1.0 / math.sqrt(math.prod(shape[1:]))
    sibling = shapes.get(name.rsplit(".", 1)[0] + ".weight")
    if name.endswith(".weight"):
        return "ones", 0.0  # LayerNorm scale
    if sibling is not None and len(sibling) >= 2:
        return "uniform", 1.0 / math.sqrt(math.prod(sibling[1:]))  # Linear / Conv bias
    return "zeros", 0.0  # LayerNorm shift


def write_random_safetensors(path: Path, plan, seed: int = 0) -> None:
    """Stream random tensors into a safetensors file (header first, then each tensor in row chunks)."""
    import torch

    shapes = {n: s for n, s, _ in plan}
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape, dtype in plan:
        code, size = _ST_DTYPES[dtype]
        n = math.prod(shape) * size
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    gen = torch.Generator().manual_seed(seed)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for i, (name, shape, dtype) in enumerate(plan):
            kind, scale = _init_spec(name, shape, shapes)
            rows = shape[0]
            row_elems = max(1, math.prod(shape[1:]))
            step = max(1, _ROWS_ELEMS // row_elems)
            for r0 in range(0, rows, step):
                sub = (min(step, rows - r0), *shape[1:])
                if kind == "normal":
                    t = torch.empty(sub).normal_(0.0, scale, generator=gen)
                elif kind == "uniform":
                    t = torch.empty(sub).uniform_(-scale, scale, generator=gen)
                elif kind == "ones":
                    t = torch.ones(sub)
                else:
                    t = torch.zeros(sub)
                t = t.to(getattr(torch, dtype)).contiguous()
                raw = t.view(torch.int16) if dtype == "bfloat16" else t
                f.write(memoryview(raw.numpy()).cast("B"))
                del t, raw
            if i % 50 == 0:
                _log(f"  tensor {i + 1}/{len(plan)} {name} {list(shape)}")
        written = f.tell()
    if written != 8 + len(blob) + offset:
        raise RuntimeError(f"safetensors size {written} != expected {8 + len(blob) + offset}")
    tmp.replace(path)


def build_checkpoint(out: Path, seed: int = 0) -> Path:
    from nim4asr_export.checkpoint import BLANK, DEFAULT_FRONTEND, WEIGHTS
    from nim4asr_export.config import full_config
    from nim4asr_export.tokenizers import sample_corpus, train_bpe

    from nim4asr_edge.prompt import NIM4_PROMPT

    if (out / ".done").is_file():
        _log(f"checkpoint cached at {out}")
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cfg = full_config(n_phonemes=N_PHONEMES)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    # A real BPE trained on the project's unicode-heavy sample corpus: it stops well below 151 936 tokens
    # (nothing left to merge); the GGUF writer pads the vocabulary to vocab_size with unused [PAD] entries.
    tok = train_bpe(out, sample_corpus(n_lines=20000, seed=seed), cfg.llm["vocab_size"], seed)
    _log(f"tokenizer: {tok}")
    rng = np.random.default_rng(seed)
    n_mels = cfg.encoder.n_mels
    cmvn = {"mean": (10.0 + rng.standard_normal(n_mels)).tolist(), "istd": (1.0 / (3.0 + rng.random(n_mels))).tolist()}
    (out / "cmvn.json").write_text(json.dumps(cmvn) + "\n")
    phonemes = [BLANK, "|"] + [f"ph{i:02d}" for i in range(N_PHONEMES - 2)]
    (out / "phonemes.txt").write_text("\n".join(phonemes) + "\n")
    (out / "frontend.json").write_text(json.dumps(DEFAULT_FRONTEND) + "\n")
    (out / "prompt.json").write_text(json.dumps(NIM4_PROMPT.to_dict(), ensure_ascii=False) + "\n")
    plan = _tensor_plan(cfg)
    n_params = sum(math.prod(s) for _, s, _ in plan)
    _log(f"writing {len(plan)} tensors, {n_params / 1e9:.3f} B parameters")
    write_random_safetensors(out / WEIGHTS, plan, seed)
    (out / ".done").write_text("ok\n")
    _log(f"checkpoint written: {out}")
    return out


def build_bundle(ckpt: Path, out: Path, threads: int = 2) -> Path:
    from nim4asr_export.exporter import ExportOptions, export_bundle

    if (out / ".done").is_file():
        _log(f"bundle cached at {out}")
        return out
    shutil.rmtree(out, ignore_errors=True)
    opts = ExportOptions(quant=("int8", "fp32", "q4_k_m", "q8_0"), name="fullsize-random", threads=threads,
                         overwrite=True)
    export_bundle(ckpt, out, opts, progress=_log)
    (out / ".done").write_text("ok\n")
    _log(f"bundle written: {out}")
    return out


def ensure_built(cache: Path = DEFAULT_CACHE, threads: int = 2) -> Path:
    """The cached bundle directory, building what is missing."""
    cache.mkdir(parents=True, exist_ok=True)
    ckpt = build_checkpoint(cache / "checkpoint")
    return build_bundle(ckpt, cache / "bundle", threads)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    t0 = time.perf_counter()
    bundle = ensure_built(args.cache, args.threads)
    _log(f"done in {time.perf_counter() - t0:.0f} s: {bundle}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
