"""The baselines of bench/fullsize.py: the same work done with raw llama.cpp calls (``llama_cpp.llama_cpp``, the
ctypes layer, in a minimal loop of our own) and with a bare onnxruntime ``InferenceSession``.

Deliberately minimal: no validation, no wrappers, no logits copy; what a careful user of the raw APIs would
write. The only thing our SDK adds on top should be Python bookkeeping, which is what the ratios measure.
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import llama_cpp.llama_cpp as L
import numpy as np

_KV_TYPES = {"f32": L.GGML_TYPE_F32, "f16": L.GGML_TYPE_F16, "q8_0": L.GGML_TYPE_Q8_0}
_backend = False


class RawLlama:
    """One llama.cpp model + context + a token batch and an embedding batch, driven directly."""

    def __init__(self, path: str | Path, *, n_ctx: int, n_batch: int = 512, n_ubatch: int = 512, n_threads: int = 2,
                 flash_attn: bool = False, type_k: str | None = "f16", type_v: str | None = "f16",
                 use_mmap: bool | None = True,
                 extra_bufts: bool = False, n_gpu_layers: int = 0, n_threads_batch: int | None = None,
                 model=None) -> None:
        """``model``: a loaded ``llama_model *`` to share (not freed by :meth:`close`) instead of loading ``path``;
        ``type_k`` / ``type_v`` None: LLMOptions' automatic KV-cache types for this model."""
        global _backend
        if not _backend:
            L.llama_backend_init()
            _backend = True
        self._owns_model = model is None
        self.model = model if model is not None else self._load(path, use_mmap, extra_bufts, n_gpu_layers)
        self._context(n_ctx, n_batch, n_ubatch, n_threads, n_threads_batch, flash_attn, type_k, type_v)

    @staticmethod
    def _load(path, use_mmap, extra_bufts, n_gpu_layers):
        mp = L.llama_model_default_params()
        mp.n_gpu_layers = n_gpu_layers
        if use_mmap is None:  # LLMOptions' automatic choice: read the file when the weights are repacked
            use_mmap = not extra_bufts
        mp.load_mode = L.LLAMA_LOAD_MODE_MMAP if use_mmap else L.LLAMA_LOAD_MODE_NONE
        mp.use_extra_bufts = extra_bufts
        model = L.llama_model_load_from_file(str(path).encode(), mp)
        if not model:
            raise RuntimeError(f"llama_model_load_from_file failed for {path}")
        return model

    def _head_sizes(self) -> tuple[int, int]:
        """(K, V) values per attention head, from the GGUF's metadata, else n_embd / n_head."""
        buf = ctypes.create_string_buffer(64)
        n = L.llama_model_meta_val_str(self.model, b"general.architecture", buf, 64)
        arch = buf.value.decode() if n > 0 else ""
        out = []
        for key in ("key", "value"):
            n = L.llama_model_meta_val_str(self.model, f"{arch}.attention.{key}_length".encode(), buf, 64)
            per_head = L.llama_model_n_embd(self.model) // L.llama_model_n_head(self.model)
            out.append(int(buf.value) if n > 0 else per_head)
        return out[0], out[1]

    def _context(self, n_ctx, n_batch, n_ubatch, n_threads, n_threads_batch, flash_attn, type_k, type_v) -> None:
        cp = L.llama_context_default_params()
        cp.n_ctx, cp.n_batch, cp.n_ubatch, cp.n_seq_max = n_ctx, n_batch, n_ubatch, 1
        cp.n_threads = n_threads
        cp.n_threads_batch = n_threads_batch or n_threads
        cp.flash_attn_type = L.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash_attn else L.LLAMA_FLASH_ATTN_TYPE_DISABLED
        if type_k is None or type_v is None:
            from nim4asr_edge.llm_options import LLMOptions

            heads = self._head_sizes()
            type_k, type_v = LLMOptions(flash_attn=flash_attn, type_k=type_k, type_v=type_v).resolved_kv_types(*heads)
        self.kv_types = (type_k, type_v)
        cp.type_k, cp.type_v = _KV_TYPES[type_k], _KV_TYPES[type_v]
        cp.embeddings = False
        cp.no_perf = True
        self.ctx = L.llama_init_from_model(self.model, cp)
        if not self.ctx:
            raise RuntimeError("llama_init_from_model failed")
        self.mem = L.llama_get_memory(self.ctx)
        self.vocab = L.llama_model_get_vocab(self.model)
        self.n_vocab = L.llama_vocab_n_tokens(self.vocab)
        self.n_embd = L.llama_model_n_embd(self.model)
        self.n_batch = L.llama_n_batch(self.ctx)
        self.tb = L.llama_batch_init(self.n_batch, 0, 1)
        self.eb = L.llama_batch_init(self.n_batch, self.n_embd, 1)
        for b in (self.tb, self.eb):
            for i in range(self.n_batch):
                b.seq_id[i][0] = 0
                b.n_seq_id[i] = 1
        self.n_past = 0

    def close(self) -> None:
        if self.ctx:
            L.llama_batch_free(self.tb)
            L.llama_batch_free(self.eb)
            L.llama_free(self.ctx)
            if self._owns_model:
                L.llama_model_free(self.model)
            self.ctx = self.model = None

    def clear(self) -> None:
        L.llama_memory_clear(self.mem, True)
        self.n_past = 0

    def truncate(self, n_keep: int) -> None:
        L.llama_memory_seq_rm(self.mem, 0, n_keep, -1)
        self.n_past = n_keep

    def _decode(self, b, n: int, logits_last: bool) -> None:
        for i in range(n):
            b.pos[i] = self.n_past + i
            b.logits[i] = 0
        if logits_last:
            b.logits[n - 1] = 1
        b.n_tokens = n
        rc = L.llama_decode(self.ctx, b)
        if rc != 0:
            raise RuntimeError(f"llama_decode returned {rc}")
        self.n_past += n

    def tokens(self, ids, logits_last: bool = True) -> None:
        b = self.tb
        for s in range(0, len(ids), self.n_batch):
            part = ids[s : s + self.n_batch]
            for i, t in enumerate(part):
                b.token[i] = t
            self._decode(b, len(part), logits_last and s + len(part) == len(ids))

    def embeds(self, e: np.ndarray, logits_last: bool = False) -> None:
        e = np.ascontiguousarray(e, dtype=np.float32)
        for s in range(0, e.shape[0], self.n_batch):
            part = e[s : s + self.n_batch]
            ctypes.memmove(self.eb.embd, part.ctypes.data, part.nbytes)
            self._decode(self.eb, part.shape[0], logits_last and s + part.shape[0] == e.shape[0])

    def greedy(self, n_new: int) -> list[int]:
        """``n_new`` argmax tokens from the current logits (the last one is not evaluated, as in our SDK)."""
        out = []
        for k in range(n_new):
            ptr = L.llama_get_logits_ith(self.ctx, -1)
            tok = int(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).argmax())
            out.append(tok)
            if k < n_new - 1:
                self.tokens([tok])
        return out


def bare_ort_session(path: str | Path, threads: int = 2, spinning: bool = True):
    """A plain onnxruntime CPU session with the same settings our EncoderSession uses (``spinning=False``: intra-op
    threads sleep instead of spin-waiting between operators)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if not spinning:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])


def bare_encode(sess, feats: np.ndarray):
    """(audio_embeds [tokens, d], phoneme_logprobs [frames, p]) from the offline graph."""
    emb, _, lp, _ = sess.run(None, {"features": feats[None], "feature_lengths": np.array([len(feats)], np.int64)})
    return emb[0], lp[0]


class BareStreamingEncoder:
    """The cache-carrying graph driven directly: window ``c`` is feature frames ``64c .. 64c + 66``."""

    def __init__(self, sess) -> None:
        self.sess = sess
        ins = {i.name: i.shape for i in sess.get_inputs()}
        self.window = ins["features"][1]
        self.chunk = self.window - 3
        self.caches = {k: np.zeros(ins[k], np.float32) for k in ("key_cache", "value_cache", "conv_cache")}
        self.offset = 0
        self.enc_chunk = self.chunk // 4

    def step(self, window: np.ndarray) -> np.ndarray:
        n = window.shape[0]
        if n < self.window:
            window = np.concatenate([window, np.zeros((self.window - n, window.shape[1]), np.float32)])
        outs = self.sess.run(None, {"features": window[None], "feature_lengths": np.array([n], np.int64),
                                    "offset": np.array([self.offset], np.int64), **self.caches})
        emb, n_tok = outs[0], int(outs[1][0])
        self.caches = {"key_cache": outs[4], "value_cache": outs[5], "conv_cache": outs[6]}
        self.offset += self.enc_chunk
        return emb[0, :n_tok]
