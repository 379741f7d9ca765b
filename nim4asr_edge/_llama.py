"""Private owning wrappers over llama.cpp's raw ctypes API (``llama_cpp.llama_cpp``).

Layering follows llama-cpp-python: raw ctypes -> these wrappers (one native handle each, freed idempotently on an
``ExitStack``) -> the public :mod:`nim4asr_edge.llm`. A context registers its ``close`` on its model, so closing a
model first frees its contexts. llama.cpp's own log lines go to ``logging.getLogger("nim4asr_edge.llama")``
(INFO lines at DEBUG level; the logger has a ``NullHandler``, so nothing prints unless the application asks).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .errors import BundleError, DecodeError, MissingDependencyError

# llama.cpp's CPU threads are OpenMP threads, and libgomp reads its wait policy once, when it starts (before llama_cpp
# loads). Spinning forever (ACTIVE) collapses 2-thread decoding as soon as anything else wants a core; sleeping at
# once (PASSIVE) pays a wake-up per graph node (full size: 20 tok/s with 2 threads instead of 26). The default is a
# short spin, then sleep (GOMP_SPINCOUNT=10000, about 10 us), with the decode thread count chosen token by token
# (decode_threads.ThreadChooser): 1 thread when a busy CPU makes the spinning threads wait on each other
# (bench/omp_wait_policy.py). A policy or spin count in the environment is kept as given.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "10000"

try:
    import llama_cpp.llama_cpp as _L  # raw ctypes bindings; importing the package also loads libllama
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDependencyError(
        "'llama_cpp' is not installed; install it with: pip install 'llama-cpp-python==0.3.36'"
    ) from exc

log = logging.getLogger("nim4asr_edge.llama")
log.addHandler(logging.NullHandler())

# ggml_log_level (NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5) -> logging level. INFO is demoted to DEBUG:
# llama.cpp prints dozens of INFO lines per load. (llama-cpp-python's own _logger.py uses an older, wrong order.)
_LOG_LEVELS = {0: logging.DEBUG, 1: logging.DEBUG, 2: logging.DEBUG, 3: logging.WARNING, 4: logging.ERROR}
_GGML_LOG_LEVEL_CONT = 5  # continuation of the previous message

# ggml_type names accepted for the KV cache
GGML_TYPES = {"f32": _L.GGML_TYPE_F32, "f16": _L.GGML_TYPE_F16, "q8_0": _L.GGML_TYPE_Q8_0}

_backend_lock = threading.Lock()
_backend_ready = False
_log_state = {"level": logging.DEBUG, "buf": ""}


def _on_log(level: int, text: bytes | None, _user: Any) -> None:
    # Called from native code: never raise.
    try:
        if level != _GGML_LOG_LEVEL_CONT:
            _log_state["level"] = _LOG_LEVELS.get(level, logging.DEBUG)
        py_level = _log_state["level"]
        if not log.isEnabledFor(py_level):
            return
        msg = _log_state["buf"] + (text or b"").decode("utf-8", errors="backslashreplace")
        lines = msg.split("\n")
        _log_state["buf"] = lines.pop()  # an unfinished line waits for its continuation
        for line in lines:
            if line.strip():
                log.log(py_level, "%s", line)
    except Exception:  # pragma: no cover - logging must never crash native code
        pass


_LOG_CALLBACK = _L.llama_log_callback(_on_log)  # kept alive for the life of the process


def ensure_backend() -> None:
    """Initialise llama.cpp once per process and route its logs into :data:`log`."""
    global _backend_ready
    with _backend_lock:
        if _backend_ready:
            return
        _L.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        _L.llama_backend_init()
        _backend_ready = True


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from Linux /proc/cpuinfo (``avx2``, ``avx512f``, ``amx_int8`` ...); empty when unknown."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_amx() -> bool:
    """True when the CPU advertises AMX (Linux /proc/cpuinfo); False when unknown."""
    flags = cpu_flags()
    return "amx_int8" in flags or "amx_tile" in flags


def decode_error(code: int, n_tokens: int, n_ctx: int) -> DecodeError:
    """One distinct message per ``llama_decode`` return code."""
    if code == 1:
        return DecodeError(
            f"llama.cpp found no free KV-cache slot for a batch of {n_tokens} (n_ctx={n_ctx}): "
            "the prompt plus generated tokens exceed the context; raise LLMOptions.n_ctx or shorten the input"
        )
    if code == 2:
        return DecodeError("llama.cpp decoding was aborted (abort callback); the KV cache holds a partial batch")
    if code == -1:
        return DecodeError(f"llama.cpp rejected the input batch of {n_tokens} as invalid (positions, ids or seq ids)")
    return DecodeError(f"llama.cpp decode failed with code {code} (fatal error; the context should be recreated)")


class _Owner:
    """Owns native handles through ``self._stack`` (an ExitStack): ``close()`` is idempotent, ``with`` closes,
    ``__del__`` is a fallback only."""

    _stack: ExitStack

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


class LlamaModel(_Owner):
    """Owns one ``llama_model *``."""

    def __init__(
        self, path: str | Path, *, n_gpu_layers: int = 0, use_mmap: bool = True, extra_buffers: bool = False
    ) -> None:
        ensure_backend()
        self._stack = ExitStack()
        self.model: Any = None
        self.path = Path(path)
        self.use_mmap = use_mmap
        self.extra_buffers = extra_buffers
        if not self.path.is_file():
            raise BundleError(f"LLM file {self.path} not found")
        params = _L.llama_model_default_params()
        params.n_gpu_layers = n_gpu_layers
        params.load_mode = _L.LLAMA_LOAD_MODE_MMAP if use_mmap else _L.LLAMA_LOAD_MODE_NONE
        params.use_extra_bufts = extra_buffers
        model = _L.llama_model_load_from_file(str(self.path).encode("utf-8"), params)
        if not model:
            raise BundleError(
                f"llama.cpp could not load {self.path} (not a GGUF, unsupported architecture or damaged file; "
                "enable logging for 'nim4asr_edge.llama' to see why)"
            )
        self.model = model
        self._stack.callback(self._free)
        vocab = _L.llama_model_get_vocab(model)
        if not vocab:
            self.close()
            raise BundleError(f"{self.path} has no vocabulary")
        self.vocab = vocab

    def _free(self) -> None:
        if self.model is not None:
            _L.llama_model_free(self.model)
            self.model = None
            self.vocab = None

    def register_child(self, close: Callable[[], None]) -> None:
        """Run ``close`` before this model is freed (contexts must go first)."""
        self._stack.callback(close)

    def _live(self) -> Any:
        if self.model is None:
            raise DecodeError("the LLM model has been closed")
        return self.model

    # model facts
    def n_embd(self) -> int:
        return int(_L.llama_model_n_embd(self._live()))

    def n_vocab(self) -> int:
        self._live()
        return int(_L.llama_vocab_n_tokens(self.vocab))

    def head_sizes(self) -> tuple[int, int]:
        """(K, V) values per attention head: the GGUF's ``<arch>.attention.key_length`` / ``value_length``, else
        n_embd / n_head."""
        default = self.n_embd() // max(1, int(_L.llama_model_n_head(self._live())))
        arch = self.meta("general.architecture")
        sizes = [self.meta(f"{arch}.attention.{k}_length") for k in ("key", "value")]
        return tuple(int(s) if s and s.isdigit() else default for s in sizes)  # type: ignore[return-value]

    def desc(self) -> str:
        buf = ctypes.create_string_buffer(256)
        _L.llama_model_desc(self._live(), buf, len(buf))
        return buf.value.decode("utf-8", errors="replace")

    def meta(self, key: str) -> str | None:
        buf = ctypes.create_string_buffer(4096)
        n = _L.llama_model_meta_val_str(self._live(), key.encode("utf-8"), buf, len(buf))
        return None if n < 0 else buf.value.decode("utf-8", errors="replace")

    # vocabulary
    def tokenize(self, text: bytes, *, add_special: bool, parse_special: bool) -> list[int]:
        self._live()
        n_max = len(text) + 8
        buf = (_L.llama_token * n_max)()
        n = _L.llama_tokenize(self.vocab, text, len(text), buf, n_max, add_special, parse_special)
        if n < 0:
            n_max = -n
            buf = (_L.llama_token * n_max)()
            n = _L.llama_tokenize(self.vocab, text, len(text), buf, n_max, add_special, parse_special)
            if n < 0:
                raise DecodeError(f"llama.cpp failed to tokenize {len(text)} bytes (code {n})")
        return list(buf[:n])

    def token_to_piece(self, token: int, *, special: bool) -> bytes:
        self._live()
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = _L.llama_token_to_piece(self.vocab, token, buf, size, 0, special)
            if n >= 0:
                return buf.raw[:n]
            size = -n

    def token_text(self, token: int) -> bytes:
        """The raw vocabulary entry (as stored in the GGUF, e.g. with '▁' or 'Ġ')."""
        self._live()
        return _L.llama_vocab_get_text(self.vocab, token) or b""

    def token_attr(self, token: int) -> int:
        self._live()
        return int(_L.llama_vocab_get_attr(self.vocab, token))

    def bos(self) -> int:
        self._live()
        return int(_L.llama_vocab_bos(self.vocab))

    def eos(self) -> int:
        self._live()
        return int(_L.llama_vocab_eos(self.vocab))


class LlamaContext(_Owner):
    """Owns one ``llama_context *`` created from a :class:`LlamaModel`; closes itself before the model."""

    def __init__(self, model: LlamaModel, params: Any) -> None:
        self._stack = ExitStack()
        self.ctx: Any = None
        self.model = model
        ctx = _L.llama_init_from_model(model._live(), params)
        if not ctx:
            raise DecodeError(
                f"llama.cpp could not create a context (n_ctx={params.n_ctx}, n_batch={params.n_batch}): "
                "out of memory or an unsupported option combination"
            )
        self.ctx = ctx
        self._n_batch = int(_L.llama_n_batch(ctx))  # fixed for the context's life: checked before every decode
        self._stack.callback(self._free)
        model.register_child(self.close)
        mem = _L.llama_get_memory(ctx)
        if not mem:
            self.close()
            raise DecodeError("llama.cpp context has no memory (KV cache); a decoder-only model is required")
        self.memory = mem

    def _free(self) -> None:
        if self.ctx is not None:
            _L.llama_free(self.ctx)
            self.ctx = None
            self.memory = None

    def _live(self) -> Any:
        if self.ctx is None:
            raise DecodeError("the LLM context has been closed")
        return self.ctx

    def n_ctx(self) -> int:
        return int(_L.llama_n_ctx(self._live()))

    def n_batch(self) -> int:
        self._live()
        return self._n_batch

    def n_ubatch(self) -> int:
        return int(_L.llama_n_ubatch(self._live()))

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        _L.llama_set_n_threads(self._live(), n_threads, n_threads_batch)

    def clear(self) -> None:
        """Drop every cached position (all sequences)."""
        self._live()
        _L.llama_memory_clear(self.memory, True)

    def seq_rm(self, seq_id: int, p0: int, p1: int) -> bool:
        """Remove positions [p0, p1) of ``seq_id`` from the KV cache (-1 = open end)."""
        self._live()
        return bool(_L.llama_memory_seq_rm(self.memory, seq_id, p0, p1))

    def seq_pos_max(self, seq_id: int = 0) -> int:
        self._live()
        return int(_L.llama_memory_seq_pos_max(self.memory, seq_id))

    def decode(self, batch: "LlamaBatch") -> None:
        """Run ``batch``; raises a :class:`DecodeError` naming the failure for every non-zero return code."""
        ctx = self._live()
        n = batch.batch.n_tokens
        if n <= 0:
            raise DecodeError("internal error: empty batch")
        if n > self._n_batch:  # llama.cpp asserts (kills the process) on this: refuse in Python instead
            raise DecodeError(f"internal error: batch of {n} exceeds n_batch={self._n_batch}")
        code = _L.llama_decode(ctx, batch.batch)
        if code != 0:
            raise decode_error(int(code), n, self.n_ctx())

    def logits_ith(self, i: int, n_vocab: int) -> np.ndarray:
        """A copy of the logits of output row ``i`` (-1 = last) as float32 [n_vocab]."""
        return self.logits_view(i, n_vocab).copy()

    def logits_view(self, i: int, n_vocab: int) -> np.ndarray:
        """The logits of output row ``i`` (-1 = last) in llama.cpp's buffer, without a copy: valid only until the
        next decode on this context (copying 152 k floats per token cost ~60 us in the greedy loop)."""
        ptr = _L.llama_get_logits_ith(self._live(), i)
        if not ptr:
            raise DecodeError(f"llama.cpp has no logits for output {i} (was the row marked for output?)")
        return np.frombuffer((ctypes.c_float * n_vocab).from_address(ctypes.addressof(ptr.contents)), np.float32)


class LlamaBatch(_Owner):
    """Owns one ``llama_batch`` from ``llama_batch_init``: token ids (``n_embd == 0``) or embeddings."""

    def __init__(self, capacity: int, n_embd: int = 0, n_seq_max: int = 1) -> None:
        if capacity <= 0:
            raise ValueError("batch capacity must be positive")
        self._stack = ExitStack()
        self.capacity = capacity
        self.n_embd = n_embd
        self.batch: Any = _L.llama_batch_init(capacity, n_embd, n_seq_max)
        self._alive = True
        self._stack.callback(self._free)
        b = self.batch
        self._pos = np.ctypeslib.as_array(b.pos, shape=(capacity,))
        self._n_seq = np.ctypeslib.as_array(b.n_seq_id, shape=(capacity,))
        self._logits = np.ctypeslib.as_array(b.logits, shape=(capacity,))
        if n_embd:
            self._embd = np.ctypeslib.as_array(b.embd, shape=(capacity, n_embd))
            self._tok = None
        else:
            self._embd = None
            self._tok = np.ctypeslib.as_array(b.token, shape=(capacity,))
        for i in range(capacity):  # one sequence (id 0) per row
            b.seq_id[i][0] = 0

    def _free(self) -> None:
        if self._alive:
            self._pos = self._n_seq = self._logits = self._embd = self._tok = None  # drop views before freeing
            _L.llama_batch_free(self.batch)
            self._alive = False

    def _fill_common(self, n: int, pos0: int, output_last: bool, output_all: bool = False) -> None:
        if not self._alive:
            raise DecodeError("the batch has been freed")
        if not 0 < n <= self.capacity:
            raise DecodeError(f"internal error: {n} rows do not fit a batch of {self.capacity}")
        self._pos[:n] = np.arange(pos0, pos0 + n, dtype=np.int32)
        self._n_seq[:n] = 1
        self._logits[:n] = 1 if output_all else 0
        if output_last:
            self._logits[n - 1] = 1
        self.batch.n_tokens = n

    def set_tokens(self, tokens: np.ndarray | list[int], pos0: int, *, output_last: bool,
                   output_all: bool = False) -> None:
        if self._tok is None:
            raise DecodeError("internal error: an embedding batch cannot hold token ids")
        arr = np.asarray(tokens, dtype=np.int32)
        self._fill_common(len(arr), pos0, output_last, output_all)
        self._tok[: len(arr)] = arr

    def set_one_token(self, token: int, pos: int) -> None:
        """One token at ``pos`` with output logits: the greedy loop's batch, without per-call array building."""
        if self._tok is None:
            raise DecodeError("internal error: an embedding batch cannot hold token ids" if self._alive
                              else "the batch has been freed")
        self._tok[0] = token
        self._pos[0] = pos
        self._n_seq[0] = 1
        self._logits[0] = 1
        self.batch.n_tokens = 1

    def set_embeds(self, embeds: np.ndarray, pos0: int, *, output_last: bool) -> None:
        if self._embd is None:
            raise DecodeError("internal error: a token batch cannot hold embeddings")
        if embeds.ndim != 2 or embeds.shape[1] != self.n_embd:
            raise DecodeError(f"internal error: embeddings of shape {embeds.shape} for n_embd={self.n_embd}")
        self._fill_common(embeds.shape[0], pos0, output_last)
        self._embd[: embeds.shape[0]] = embeds
