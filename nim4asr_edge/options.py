"""Recognition options: the one place where the simple knobs and the advanced per-component options meet."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

from .encoder import EncoderOptions
from .errors import OptionsError
from .guard import GuardOptions
from .llm import LLMOptions

__all__ = ["RecognizerOptions"]

_LLM_DEFAULTS = LLMOptions()
AUTO_HINT_CHECK = 0.3  # hint_check="auto" where the model has acoustic evidence (bench/results/hint_leak_ref_en.json)


def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


@dataclass(frozen=True)
class RecognizerOptions:
    encoder_precision: str | None = None  # "fp32" | "int8"; None: the bundle's default
    llm_quant: str | None = None  # "f16" | "q8_0" | "q4_k_m" | ...; None: the bundle's default
    threads: int = 0  # CPU threads for encoder and LLM; 0: up to 8 of this machine's cores
    max_segment_seconds: float = 30.0  # longer audio is split at low-energy points
    max_tokens_per_second: float = 8.0  # cap on generated tokens per second of audio (stops runaway output)
    min_new_tokens: int = 16  # token budget floor for very short segments
    hotword_top_k: int = 10  # hotword hits injected as contextual hints per segment
    hotword_namespace: str | None = None  # search only this namespace of the hotword index (None: every entry)
    language: str | None = None  # force the output language, where the model's prompt has a form for it
    # Give the LLM only the caller's hints that the acoustic evidence supports: those whose phonemes fit some stretch
    # of the evidence with at most this share of edits (evidence.match_error). "auto": 0.3 where the model has
    # acoustic evidence (bench/hint_leak.py: no absent hint copied into the text, and better entity recall), off
    # where it has none; None: every hint goes in.
    hint_check: "float | str | None" = "auto"
    verify: str = "full"  # bundle file check: "full" (sha256) | "size" | "none"
    n_ctx: int = 0  # LLM context; 0: llm.n_ctx if set, else enough for the longest segment plus prompt and output
    # Advanced llama.cpp settings. Their n_threads (when not 0) and n_ctx (when not the default) are used as given;
    # giving a different `threads` / `n_ctx` above as well is an error. An explicit n_threads turns tuning off.
    llm: LLMOptions | None = None
    encoder: EncoderOptions | None = None  # advanced onnxruntime settings (intra_op_num_threads: as for llm)
    guard: "GuardOptions | str" = "auto"  # "auto": the bundle's calibrated evidence guard, if any; "off"; or options
    tune_decode_threads: bool = True  # at load, decode with 1 thread if that is faster here (small LLMs; ~0.2 s)

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError("threads must be >= 0")
        if not 5.0 <= self.max_segment_seconds <= 120.0:
            raise ValueError("max_segment_seconds must be within [5, 120]")
        if self.max_tokens_per_second <= 0 or self.min_new_tokens < 1:
            raise ValueError("max_tokens_per_second must be > 0 and min_new_tokens >= 1")
        if self.verify not in ("full", "size", "none"):
            raise ValueError("verify must be 'full', 'size' or 'none'")
        if self.hotword_top_k < 0:
            raise ValueError("hotword_top_k must be >= 0")
        if self.n_ctx < 0:
            raise ValueError("n_ctx must be >= 0")
        if self.hint_check not in (None, "auto") and not (
                isinstance(self.hint_check, (int, float)) and 0.0 <= self.hint_check <= 1.0):
            raise ValueError("hint_check must be 'auto', None or a number within [0, 1]")
        if isinstance(self.guard, str) and self.guard not in ("auto", "off"):
            raise ValueError("guard must be 'auto', 'off' or a GuardOptions")
        llm_threads = self.llm.n_threads if self.llm is not None else 0
        enc_threads = self.encoder.intra_op_num_threads if self.encoder is not None else 0
        for name, value in (("llm.n_threads", llm_threads), ("encoder.intra_op_num_threads", enc_threads)):
            if self.threads and value and value != self.threads:
                raise OptionsError(f"threads={self.threads} contradicts {name}={value}: set one of them")
        if self.n_ctx and self._llm_n_ctx and self._llm_n_ctx != self.n_ctx:
            raise OptionsError(f"n_ctx={self.n_ctx} contradicts llm.n_ctx={self._llm_n_ctx}: set one of them")

    @property
    def _llm_n_ctx(self) -> int:
        """The n_ctx of ``llm`` when the user changed it from LLMOptions' default (0 otherwise)."""
        if self.llm is None or self.llm.n_ctx == _LLM_DEFAULTS.n_ctx:
            return 0
        return self.llm.n_ctx

    @property
    def effective_threads(self) -> int:
        """Encoder and prefill threads: ``threads``, else the advanced options' own, else up to 8 cores."""
        own = (self.llm.n_threads if self.llm is not None else 0) or (
            self.encoder.intra_op_num_threads if self.encoder is not None else 0)
        return self.threads or own or _default_threads()

    def llm_options(self, needed_ctx: int) -> LLMOptions:
        """The LLM options to load with; ``needed_ctx``: the context the longest segment needs."""
        base = self.llm or LLMOptions()
        threads = base.n_threads or self.effective_threads
        return dataclasses.replace(base, n_threads=threads, n_ctx=self.n_ctx or self._llm_n_ctx or needed_ctx)

    def encoder_options(self) -> EncoderOptions:
        base = self.encoder or EncoderOptions()
        return dataclasses.replace(base, intra_op_num_threads=base.intra_op_num_threads or self.effective_threads)

    @property
    def tunes_decode_threads(self) -> bool:
        """Whether the recognizer picks the decode thread count at load (not when ``llm.n_threads`` is explicit)."""
        return self.tune_decode_threads and not (self.llm is not None and self.llm.n_threads)
