"""How llama.cpp runs the LLM: the options and their one verification."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from . import _llama

__all__ = ["LLMOptions", "replace_options", "verify_options"]


@dataclass(frozen=True)
class LLMOptions:
    """How llama.cpp runs the LLM. Override with ``dataclasses.replace`` (unknown fields fail)."""

    n_threads: int = 0  # threads for single-token decoding; 0 = every CPU this process may use
    n_threads_batch: int = 0  # threads for prompt/embedding prefill; 0 = same as n_threads
    n_ctx: int = 4096  # KV-cache positions: prompt + audio tokens + generated tokens must fit
    n_batch: int = 512  # most positions handed to one llama_decode call (inputs are split to fit)
    n_ubatch: int = 512  # physical micro-batch inside llama.cpp; <= n_batch
    flash_attn: bool = True  # flash attention: faster prefill and decode, smaller buffers; needed for a quantised V cache
    type_k: str = "f16"  # KV-cache K type: "f32" (exact parity with PyTorch), "f16", "q8_0"
    type_v: str = "f16"  # KV-cache V type: "f32", "f16", "q8_0" (q8_0 needs flash_attn)
    use_mmap: bool = True  # map the GGUF instead of reading it (lower load time, higher RSS on CPU repack)
    n_gpu_layers: int = 0  # layers offloaded to a GPU build of llama.cpp; 0 = CPU only, -1 = all
    # llama.cpp's extra CPU weight buffers (repacked layouts for AMX / AVX kernels). None = on, except on CPUs with
    # AMX: llama-cpp-python 0.3.36's AMX path segfaults on every quantised model we tried (Q8_0, Q4_0, Q4_K_M, Q4_1).
    extra_buffers: bool | None = None
    seed: int = 0  # recorded for reproducibility; greedy decoding draws no random numbers

    def resolved_extra_buffers(self) -> bool:
        """``extra_buffers`` with None resolved for this CPU."""
        return (not _llama.cpu_has_amx()) if self.extra_buffers is None else self.extra_buffers

    def resolved_threads(self) -> tuple[int, int]:
        """(n_threads, n_threads_batch) with 0 replaced by the usable CPU count."""
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cpus = os.cpu_count() or 1
        n = self.n_threads or cpus
        return n, self.n_threads_batch or n


def verify_options(o: LLMOptions) -> None:
    """Raise ``ValueError`` for a bad value or combination."""
    for name in ("n_threads", "n_threads_batch", "seed"):
        v = getattr(o, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ValueError(f"LLMOptions.{name}={v!r} must be an int >= 0")
    for name in ("n_ctx", "n_batch", "n_ubatch"):
        v = getattr(o, name)
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"LLMOptions.{name}={v!r} must be a positive int")
    if o.n_ubatch > o.n_batch:
        raise ValueError(f"LLMOptions.n_ubatch={o.n_ubatch} must not exceed n_batch={o.n_batch}")
    for name in ("type_k", "type_v"):
        v = getattr(o, name)
        if v not in _llama.GGML_TYPES:
            raise ValueError(f"LLMOptions.{name}={v!r} must be one of {sorted(_llama.GGML_TYPES)}")
    if o.type_v not in ("f32", "f16") and not o.flash_attn:
        raise ValueError(f"LLMOptions.type_v={o.type_v!r} (a quantised V cache) needs flash_attn=True")
    if o.extra_buffers not in (None, True, False):
        raise ValueError(f"LLMOptions.extra_buffers={o.extra_buffers!r} must be None (auto), True or False")
    if not isinstance(o.n_gpu_layers, int) or o.n_gpu_layers < -1:
        raise ValueError(f"LLMOptions.n_gpu_layers={o.n_gpu_layers!r} must be -1 (all), 0 or a positive int")


def replace_options(options: LLMOptions, **changes: object) -> LLMOptions:
    """``dataclasses.replace`` plus verification (unknown fields raise ``TypeError``)."""
    new = dataclasses.replace(options, **changes)  # type: ignore[arg-type]
    verify_options(new)
    return new
