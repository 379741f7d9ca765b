"""How llama.cpp runs the LLM: the options, their one verification, and loading a GGUF with them."""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from . import _llama
from .errors import BundleError

__all__ = ["LLMOptions", "auto_extra_buffers", "load_model", "replace_options", "verify_options"]

log = logging.getLogger("nim4asr_edge.llm")

_AMX = ("amx_tile", "amx_int8")


def auto_extra_buffers(cpu_flags: frozenset[str] | set[str]) -> tuple[bool, str]:
    """The one rule for ``LLMOptions.extra_buffers=None``: (repack weights?, why) for a CPU with these flags
    (``/proc/cpuinfo`` names; empty when unknown).

    llama.cpp's extra CPU buffers hold weights repacked for its interleaved AVX2/NEON kernels. Measured on an AVX-512
    CPU without AMX (``bench/llm_overhead.py``): they bought no decode speed, slowed prefill, and kept a second copy
    of the weights beside a mapped file. AMX CPUs: llama-cpp-python 0.3.36 segfaulted with them on every quantised
    model tried. Elsewhere (AVX2-only x86, ARM, unknown) the repacked kernels are llama.cpp's fast path: on.
    """
    if any(f in cpu_flags for f in _AMX):
        return False, "AMX CPU: llama-cpp-python 0.3.36 segfaulted with repacked buffers here"
    if "avx512f" in cpu_flags:
        return False, "AVX-512 CPU: repacking measured slower prefill and no faster decode"
    return True, "repacked kernels are llama.cpp's fast path on this CPU"


@dataclass(frozen=True)
class LLMOptions:
    """How llama.cpp runs the LLM. Override with ``dataclasses.replace`` (unknown fields fail)."""

    n_threads: int = 0  # threads for single-token decoding; 0 = every CPU this process may use
    n_threads_batch: int = 0  # threads for prompt/embedding prefill; 0 = same as n_threads
    n_ctx: int = 4096  # KV-cache positions: prompt + audio tokens + generated tokens must fit
    n_batch: int = 512  # most positions handed to one llama_decode call (inputs are split to fit)
    n_ubatch: int = 512  # physical micro-batch inside llama.cpp; <= n_batch
    flash_attn: bool = True  # flash attention: faster prefill and decode, smaller buffers; needed for a quantised V cache
    # KV-cache types: "f32" (with flash_attn=False: ~1e-5 parity with PyTorch), "f16", "q8_0"; None (auto): q8_0
    # when flash attention is on and the head sizes are multiples of 32 (q8_0's block), else f16. q8_0 holds the
    # cache in 53 % of f16's memory (full size, 1024 positions: 60 instead of 112 MiB); on the reference bundle's
    # trained SmolLM2-135M its next-token distributions are 0.0035 nats (KL) from f32's, with the same top token at
    # 96 % of positions and the same WER on synthetic speech (bench/kv_cache_type.py; f16 is identical to f32 there).
    type_k: str | None = None
    type_v: str | None = None  # a quantised V cache needs flash_attn
    # Map the GGUF (True) or read it into memory (False). None (auto): map it unless the weights are repacked
    # (extra_buffers): repacking copies every weight out of the file, and a mapped file would stay resident beside
    # the copy (full 2.3 B shape, int8 encoder + Q4_K_M, load + 10 s of speech: 2.74 GB peak, vs 2.08 GB with one
    # copy). Mapped weights are file-backed pages: shared between processes and reclaimable by the OS.
    use_mmap: bool | None = None
    n_gpu_layers: int = 0  # layers offloaded to a GPU build of llama.cpp; 0 = CPU only, -1 = all
    # llama.cpp's extra CPU weight buffers (weights repacked for its AMX / AVX / NEON kernels). None (auto): the CPU
    # rule of auto_extra_buffers (off on AVX-512 and AMX CPUs, on elsewhere); the load falls back to plain buffers
    # if llama.cpp cannot load the model with them.
    extra_buffers: bool | None = None
    seed: int = 0  # recorded for reproducibility; greedy decoding draws no random numbers

    def resolved_extra_buffers(self) -> bool:
        """``extra_buffers`` with None resolved for this CPU."""
        if self.extra_buffers is not None:
            return self.extra_buffers
        return auto_extra_buffers(_llama.cpu_flags())[0]

    def resolved_use_mmap(self, extra_buffers: bool | None = None) -> bool:
        """``use_mmap`` with None resolved: map unless the weights are repacked (``extra_buffers``: the resolved
        value actually used, default :meth:`resolved_extra_buffers`)."""
        if self.use_mmap is not None:
            return self.use_mmap
        return not (self.resolved_extra_buffers() if extra_buffers is None else extra_buffers)

    def resolved_kv_types(self, head_k: int, head_v: int) -> tuple[str, str]:
        """(type_k, type_v) with None resolved for a model with these K / V values per attention head."""
        auto = "q8_0" if self.flash_attn and head_k % 32 == 0 and head_v % 32 == 0 else "f16"
        return self.type_k or auto, self.type_v or auto

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
        if v is not None and v not in _llama.GGML_TYPES:
            raise ValueError(f"LLMOptions.{name}={v!r} must be one of {sorted(_llama.GGML_TYPES)} or None (auto)")
    if o.type_v not in (None, "f32", "f16") and not o.flash_attn:
        raise ValueError(f"LLMOptions.type_v={o.type_v!r} (a quantised V cache) needs flash_attn=True")
    for name in ("extra_buffers", "use_mmap"):
        if getattr(o, name) not in (None, True, False):
            raise ValueError(f"LLMOptions.{name}={getattr(o, name)!r} must be None (auto), True or False")
    if not isinstance(o.n_gpu_layers, int) or o.n_gpu_layers < -1:
        raise ValueError(f"LLMOptions.n_gpu_layers={o.n_gpu_layers!r} must be -1 (all), 0 or a positive int")


def load_model(path: Path, o: LLMOptions) -> _llama.LlamaModel:
    """Load a GGUF with ``o``'s resolved buffer and mmap choices; an automatic repacking choice that llama.cpp
    refuses falls back to plain buffers (a bad file then fails again, with llama.cpp's error)."""
    extra = o.resolved_extra_buffers()
    try:
        return _llama.LlamaModel(path, n_gpu_layers=o.n_gpu_layers, use_mmap=o.resolved_use_mmap(extra),
                                 extra_buffers=extra)
    except BundleError:
        if not (extra and o.extra_buffers is None):
            raise
        log.warning("llama.cpp could not load %s with repacked weight buffers; loading without them", path.name)
        return _llama.LlamaModel(path, n_gpu_layers=o.n_gpu_layers, use_mmap=o.resolved_use_mmap(False),
                                 extra_buffers=False)


def replace_options(options: LLMOptions, **changes: object) -> LLMOptions:
    """``dataclasses.replace`` plus verification (unknown fields raise ``TypeError``)."""
    new = dataclasses.replace(options, **changes)  # type: ignore[arg-type]
    verify_options(new)
    return new
