"""The LLM half of recognition: a GGUF model run by llama.cpp, fed with token ids and audio embeddings.

:class:`LLMSession` owns one model and one context. :meth:`LLMSession.generate` clears the KV cache, decodes
``prefix ids ++ audio embeddings ++ suffix ids`` (positions continue across the three parts; every batch is split
to fit ``n_batch``) and decodes greedily. Works for any decoder-only GGUF llama.cpp loads (``qwen3`` bundles,
``llama`` models such as SmolLM2).
"""

from __future__ import annotations

import codecs
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from . import _llama
from .decode_threads import ThreadChooser, best_seconds
from .errors import BundleError, DecodeError
from .llm_options import LLMOptions, load_model, replace_options, verify_options
from .token_table import TokenTable, is_embeds, open_token_table

__all__ = ["Generation", "LLMOptions", "LLMSession", "replace_options"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    """The result of :meth:`LLMSession.generate`."""

    tokens: list[int]  # generated ids; the stop token, if one ended generation, is not included
    text: str  # detokenised ``tokens`` (bytes joined across tokens, decoded once; a cut character shows as U+FFFD)
    n_prompt: int  # positions decoded before generation (prefix + embeddings + suffix)
    prefill_s: float  # wall time of the prompt prefill
    decode_s: float  # wall time of the token-by-token decode
    stopped: bool  # True when a stop id ended generation, False when max_new_tokens did
    stop_id: int | None = None  # the stop id that ended generation
    logits: np.ndarray | None = field(default=None, repr=False)  # [steps, n_vocab] float32 when requested
    options: LLMOptions | None = None  # the effective options


class LLMSession:
    """A GGUF model plus one llama.cpp context; a context manager. Not thread-safe: one generation at a time."""

    def __init__(self, path: str | Path, options: LLMOptions | None = None, *, _model=None,
                 _owns_model: bool = False) -> None:
        self.options = options if options is not None else LLMOptions()
        verify_options(self.options)
        o = self.options
        self.path = Path(path)
        self._owns_model = _model is None or _owns_model  # a fork() shares its parent's weights: not freed
        if o.n_gpu_layers != 0 and _model is None and not _llama._L.llama_supports_gpu_offload():
            log.warning(
                "n_gpu_layers=%d ignored: this llama.cpp build has no GPU support (see the README's GPU install)",
                o.n_gpu_layers,
            )
        if _model is None:
            if not self.path.is_file():
                raise BundleError(f"LLM GGUF {self.path} not found; check the bundle directory")
            _model = load_model(self.path, o)
        self._model = _model
        try:
            n_threads, n_threads_batch = o.resolved_threads()
            params = _llama._L.llama_context_default_params()
            params.n_ctx = o.n_ctx
            params.n_batch = o.n_batch
            params.n_ubatch = o.n_ubatch
            params.n_seq_max = 1
            params.n_threads = n_threads
            params.n_threads_batch = n_threads_batch
            params.flash_attn_type = (
                _llama._L.LLAMA_FLASH_ATTN_TYPE_ENABLED if o.flash_attn else _llama._L.LLAMA_FLASH_ATTN_TYPE_DISABLED
            )
            self.kv_types = o.resolved_kv_types(*self._model.head_sizes())  # (K, V) cache types used
            params.type_k, params.type_v = (_llama.GGML_TYPES[t] for t in self.kv_types)
            params.embeddings = False
            params.no_perf = True
            self._ctx = _llama.LlamaContext(self._model, params)
            self._n_embd = self._model.n_embd()
            self._n_vocab = self._model.n_vocab()
            self._n_ctx = self._ctx.n_ctx()
            self._n_batch = self._ctx.n_batch()  # llama.cpp may lower it (e.g. to n_ctx): the real limit
            self._tok_batch = _llama.LlamaBatch(self._n_batch)
            self._emb_batch = _llama.LlamaBatch(self._n_batch, self._n_embd)
        except BaseException:
            if self._owns_model:
                self._model.close()
            raise
        self._n_past = 0
        self._chooser: ThreadChooser | None = None  # set by tune_decode_threads
        log.debug(
            "loaded %s: %s, n_embd=%d, n_vocab=%d, n_ctx=%d, n_batch=%d, repacked buffers=%s, mmap=%s",
            self.path, self._model.desc(), self._n_embd, self._n_vocab, self._n_ctx, self._n_batch,
            self._model.extra_buffers, self._model.use_mmap,
        )

    # lifecycle
    def close(self) -> None:
        """Free the batches, the context and the model (idempotent)."""
        for name in ("_tok_batch", "_emb_batch"):
            b = getattr(self, name, None)
            if b is not None:
                b.close()
        ctx = getattr(self, "_ctx", None)
        if ctx is not None:
            ctx.close()
        model = getattr(self, "_model", None)
        if model is not None and self._owns_model:
            model.close()  # also closes the contexts of forks still open (registered children)

    def fork(self, options: LLMOptions | None = None) -> "LLMSession":
        """A new session with its own context (KV cache) sharing this session's loaded weights.

        Concurrent streams each take a fork; the weights stay loaded until the original session closes.
        """
        child = LLMSession(self.path, options or self.options, _model=self._model)
        if self._chooser is not None and options is None:
            child._chooser = self._chooser.copy()
            child._ctx.set_threads(*child._chooser.threads(child.options.resolved_threads()[1]))
        return child

    def __enter__(self) -> "LLMSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # fallback only
        try:
            self.close()
        except Exception:
            pass

    # facts
    @property
    def n_embd(self) -> int:
        return self._n_embd

    @property
    def n_ctx(self) -> int:
        """KV-cache positions of the context (llama.cpp may round the requested n_ctx up)."""
        return self._n_ctx

    @property
    def n_vocab(self) -> int:
        return self._n_vocab

    @property
    def n_batch(self) -> int:
        return self._n_batch

    @property
    def uses_mmap(self) -> bool:
        """Whether the weights are mapped from the GGUF (False: read into memory); ``use_mmap=None`` resolved."""
        return self._model.use_mmap

    @property
    def uses_extra_buffers(self) -> bool:
        """Whether llama.cpp holds repacked weight buffers; ``extra_buffers=None`` resolved (and any fallback)."""
        return self._model.extra_buffers

    @property
    def n_past(self) -> int:
        """Positions currently in the KV cache."""
        return self._n_past

    @property
    def decode_threads(self) -> int:
        """The threads the next single-token decode uses (chosen token by token after :meth:`tune_decode_threads`)."""
        return self._chooser.current if self._chooser is not None else self.options.resolved_threads()[0]

    @property
    def eos_id(self) -> int:
        return self._model.eos()

    def metadata(self, key: str) -> str | None:
        """A GGUF metadata value as a string (e.g. ``general.architecture``), or None."""
        return self._model.meta(key)

    # vocabulary
    def tokenize(self, text: str, parse_special: bool = True, *, add_bos: bool = False) -> list[int]:
        """Token ids of ``text``; special tokens written in the text are parsed unless ``parse_special=False``.

        Nothing is added unless ``add_bos=True``, which prepends the GGUF's BOS token.
        """
        ids = self._model.tokenize(text.encode("utf-8"), add_special=False, parse_special=parse_special)
        if add_bos:
            bos = self._model.bos()
            if bos < 0:
                raise BundleError(f"{self.path.name} defines no BOS token; build the prompt without add_bos")
            ids.insert(0, bos)
        return ids

    def token_id(self, piece: str) -> int:
        """The id of one vocabulary piece, typically a special token such as ``"<|im_end|>"``."""
        ids = self.tokenize(piece, parse_special=True)
        if len(ids) != 1 or self.token_bytes(ids[0], special=True) != piece.encode("utf-8"):
            raise BundleError(f"the LLM vocabulary has no single token {piece!r} (it tokenises to {ids})")
        return ids[0]

    def token_bytes(self, token: int, *, special: bool = False) -> bytes:
        """The bytes ``token`` contributes to text; a byte-level piece may be part of a UTF-8 character.

        Control tokens (``<|im_end|>`` ...) contribute nothing unless ``special=True``.
        """
        self._check_ids([token], "token")
        return self._model.token_to_piece(int(token), special=special)

    def detokenize(self, ids: Sequence[int], *, special: bool = False, final: bool = True) -> str:
        """Text of ``ids``: the pieces' bytes are joined first and decoded once (byte-level BPE splits characters).

        ``final=False`` leaves out a trailing incomplete UTF-8 sequence (the rest of that character may come with
        the next token), so the text of a prefix of ``ids`` is a prefix of the text of ``ids``.
        """
        self._check_ids(ids, "ids")
        raw = b"".join(self._model.token_to_piece(int(t), special=special) for t in ids)
        return codecs.getincrementaldecoder("utf-8")(errors="replace").decode(raw, final=final)

    def set_threads(self, n_threads: int, n_threads_batch: int) -> None:
        """Use these decode / prefill thread counts from now on (forks inherit them; ends the per-token choice)."""
        self._chooser = None
        self.options = replace_options(self.options, n_threads=n_threads, n_threads_batch=n_threads_batch)
        self._ctx.set_threads(n_threads, n_threads_batch)

    def tune_decode_threads(self, probe_token: int, *, steps: int = 3, small_model_ms: float = 60.0) -> int:
        """Time single-token decodes with every thread and with one (only if all of them take under
        ``small_model_ms``), then let a :class:`~nim4asr_edge.decode_threads.ThreadChooser` pick between them token
        by token (forks inherit it). Returns the decode threads chosen now; the KV cache is left as found."""
        n, n_batch = self.options.resolved_threads()
        if n <= 1:
            return n

        def per_token(threads: int) -> float:
            self._ctx.set_threads(threads, n_batch)
            n0 = self._n_past
            try:
                return best_seconds(lambda: self.eval_tokens([probe_token]), steps)
            finally:
                self.truncate(n0)

        many = per_token(n)
        one = per_token(1) if many * 1000 <= small_model_ms else float("inf")
        self._chooser = ThreadChooser(n, one, many)
        self._ctx.set_threads(*self._chooser.threads(n_batch))
        log.debug("decode threads: %d (%.1f ms/token with %d, %.1f with 1)", self._chooser.current, many * 1e3, n,
                  one * 1e3)
        return self._chooser.current

    # decoding
    def clear(self) -> None:
        """Empty the KV cache."""
        self._ctx.clear()
        self._n_past = 0

    def truncate(self, n_keep: int) -> None:
        """Keep the first ``n_keep`` positions in the KV cache and drop the rest (e.g. suffix + hypothesis)."""
        if not 0 <= n_keep <= self._n_past:
            raise ValueError(f"n_keep={n_keep} must be within [0, {self._n_past}]")
        if not self._ctx.seq_rm(0, n_keep, -1):
            raise DecodeError(f"llama.cpp could not remove positions {n_keep}.. from the KV cache")
        self._n_past = n_keep

    def eval_tokens(self, ids: Sequence[int], *, output_last: bool = False) -> None:
        """Append token ids at the next positions, in batches of at most ``n_batch``."""
        arr = np.asarray(list(ids), dtype=np.int64)
        self._check_ids(arr, "ids")
        self._check_room(len(arr))
        for start in range(0, len(arr), self._n_batch):
            chunk = arr[start : start + self._n_batch]
            last = output_last and start + len(chunk) == len(arr)
            self._tok_batch.set_tokens(chunk, self._n_past, output_last=last)
            self._ctx.decode(self._tok_batch)
            self._n_past += len(chunk)

    def eval_embeds(self, embeds: np.ndarray, *, output_last: bool = False) -> None:
        """Append embeddings (float32 [n, n_embd]) at the next positions, in batches of at most ``n_batch``."""
        e = self._check_embeds(embeds)
        self._check_room(e.shape[0])
        for start in range(0, e.shape[0], self._n_batch):
            chunk = e[start : start + self._n_batch]
            last = output_last and start + chunk.shape[0] == e.shape[0]
            self._emb_batch.set_embeds(chunk, self._n_past, output_last=last)
            self._ctx.decode(self._emb_batch)
            self._n_past += chunk.shape[0]

    def eval_parts(self, parts: Sequence[np.ndarray | Sequence[int]], *, output_last: bool = False) -> None:
        """Append embeddings (float32 [n, n_embd] arrays) and token ids (int sequences) in order: as one batch, the
        token ids as their embedding rows, where the model's input embedding is a plain row lookup (see
        :mod:`.token_table`), else one batch per part."""
        parts = [p for p in parts if len(p)]
        table = self._token_table() if len(parts) > 1 else None
        if table is not None:
            for i, part in enumerate(parts):
                if not is_embeds(part):
                    self._check_ids(part, "ids")
                    parts[i] = table.rows([int(t) for t in part])
            parts = [np.concatenate(parts)]
        for i, part in enumerate(parts):
            last = output_last and i == len(parts) - 1
            (self.eval_embeds if is_embeds(part) else self.eval_tokens)(part, output_last=last)

    def _token_table(self) -> TokenTable | None:
        """The model's token table, opened once per loaded model (forks share it); None: ids go in as ids."""
        if not hasattr(self._model, "token_table"):
            arch = self.metadata("general.architecture")
            self._model.token_table = open_token_table(self.path, arch, self._n_vocab, self._n_embd)
        return self._model.token_table

    def last_logits(self) -> np.ndarray:
        """Logits (float32 [n_vocab]) of the last position decoded with output."""
        return self._ctx.logits_ith(-1, self._n_vocab)

    def generate(
        self,
        prefix_ids: Sequence[int],
        embeds: np.ndarray | None,
        suffix_ids: Sequence[int],
        *,
        max_new_tokens: int,
        stop_ids: Sequence[int] | None = None,
        return_logits: bool = False,
    ) -> Generation:
        """Clear the KV cache, decode ``prefix ++ embeds ++ suffix`` and generate greedily.

        ``stop_ids=None`` stops at the model's EOS; pass ``()`` to always run ``max_new_tokens`` steps.
        The prompt plus ``max_new_tokens`` must fit ``n_ctx`` (checked before any work).
        """
        if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={max_new_tokens!r} must be a positive int")
        prefix = [int(t) for t in prefix_ids]
        suffix = [int(t) for t in suffix_ids]
        self._check_ids(prefix, "prefix_ids")
        self._check_ids(suffix, "suffix_ids")
        e = self._check_embeds(embeds) if embeds is not None else np.zeros((0, self._n_embd), np.float32)
        stops = {self.eos_id} if stop_ids is None else {int(t) for t in stop_ids}
        n_prompt = len(prefix) + e.shape[0] + len(suffix)
        if n_prompt == 0:
            raise ValueError("the prompt is empty: give prefix ids, embeddings or suffix ids")
        if n_prompt + max_new_tokens > self._n_ctx:
            raise ValueError(
                f"prompt of {n_prompt} positions ({len(prefix)} prefix + {e.shape[0]} audio + {len(suffix)} suffix) "
                f"plus max_new_tokens={max_new_tokens} exceeds n_ctx={self._n_ctx}; "
                "raise LLMOptions.n_ctx, shorten the audio or lower max_new_tokens"
            )

        t0 = time.perf_counter()
        self.clear()
        if prefix:
            self.eval_tokens(prefix, output_last=not (e.shape[0] or suffix))
        if e.shape[0]:
            self.eval_embeds(e, output_last=not suffix)
        if suffix:
            self.eval_tokens(suffix, output_last=True)
        t1 = time.perf_counter()
        tokens, stop_id, steps = self.continue_greedy(max_new_tokens, stops, return_logits=return_logits)
        t2 = time.perf_counter()
        return Generation(
            tokens=tokens,
            text=self.detokenize(tokens),
            n_prompt=n_prompt,
            prefill_s=t1 - t0,
            decode_s=t2 - t1,
            stopped=stop_id is not None,
            stop_id=stop_id,
            logits=np.stack(steps) if return_logits else None,
            options=self.options,
        )

    def continue_greedy(
        self,
        max_new_tokens: int,
        stop_ids: Sequence[int] | set[int],
        *,
        return_logits: bool = False,
        draft: Sequence[int] = (),
    ) -> tuple[list[int], int | None, list[np.ndarray]]:
        """Greedy tokens from the current state (the last evaluated position must have output logits).

        ``draft`` is a guess of the tokens to come (e.g. the last streaming partial): while the greedy choices agree
        with it, the rest of it is evaluated in one batch and checked against the logits of every position, which
        costs about one prefill instead of one decode call per token.  The tokens are the greedy ones either way
        (up to the floating-point differences between batched and single-token evaluation).

        Returns (tokens, the stop id that ended generation or None, per-step logits if requested). Chosen tokens
        are evaluated into the KV cache, except a stop token and the token that exhausts the budget.
        """
        stops = {int(t) for t in stop_ids}
        draft = [int(t) for t in draft]
        self._check_ids(draft, "draft")
        n_start = self._n_past
        tokens: list[int] = []
        steps: list[np.ndarray] = []
        stop_id = None
        # logits for the next choice, then after each token in `ahead`; a single-token step reads llama.cpp's
        # buffer in place (valid until the next decode, so a requested step is copied before it)
        pending = [self._ctx.logits_view(-1, self._n_vocab)]
        ahead: list[int] = []  # draft tokens already in the KV cache beyond the chosen ones
        lookahead = 4  # draft tokens checked per batch, doubled while the draft holds
        on_draft = bool(draft)  # every token chosen so far equals the draft's
        while len(tokens) < max_new_tokens:
            logits = pending.pop(0)
            if return_logits:
                steps.append(np.array(logits, copy=True))
            tok = int(logits.argmax())
            if ahead:
                if tok == ahead[0] and tok not in stops:
                    ahead.pop(0)
                    tokens.append(tok)
                    continue
                self.truncate(self._n_past - len(ahead))  # the draft went wrong here: drop the rest of it
                ahead, pending, on_draft = [], [], False
            if tok in stops:
                stop_id = tok
                break
            tokens.append(tok)
            if len(tokens) == max_new_tokens:
                break
            n = len(tokens)
            on_draft = on_draft and n <= len(draft) and draft[n - 1] == tok
            room = min(lookahead, max_new_tokens - n, self._n_batch - 1, self._n_ctx - self._n_past - 1)
            if on_draft and room > 0 and len(draft) > n:
                ahead = draft[n : n + room]
                pending = self._eval_all_logits([tok, *ahead])
                lookahead = min(2 * lookahead, 64)
            else:
                self._eval_one(tok)
                pending = [self._ctx.logits_view(-1, self._n_vocab)]
        keep = n_start + len(tokens) - (1 if stop_id is None and tokens else 0)
        if self._n_past > keep:  # draft tokens evaluated past the end
            self.truncate(keep)
        return tokens, stop_id, steps

    def _eval_one(self, token: int) -> None:
        """Append one token chosen from the logits (an argmax index: always in the vocabulary), with output."""
        self._check_room(1)
        self._tok_batch.set_one_token(token, self._n_past)
        t = time.perf_counter()
        self._ctx.decode(self._tok_batch)
        self._n_past += 1
        if self._chooser is not None and self._chooser.record(time.perf_counter() - t):
            self._ctx.set_threads(*self._chooser.threads(self.options.resolved_threads()[1]))

    def _eval_all_logits(self, ids: list[int]) -> list[np.ndarray]:
        """Evaluate ``ids`` (at most ``n_batch``) in one batch; the logits after each of them."""
        self._check_room(len(ids))
        self._tok_batch.set_tokens(ids, self._n_past, output_last=True, output_all=True)
        self._ctx.decode(self._tok_batch)
        self._n_past += len(ids)
        return [self._ctx.logits_ith(i, self._n_vocab) for i in range(len(ids))]

    # validation
    def _check_ids(self, ids: Sequence[int] | np.ndarray, what: str) -> None:
        arr = np.asarray(ids)
        if arr.size == 0:
            return
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{what} must be a flat sequence of int token ids")
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi >= self._n_vocab:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{what} contains token id {bad}, outside the vocabulary [0, {self._n_vocab})")

    def _check_embeds(self, embeds: np.ndarray) -> np.ndarray:
        if not isinstance(embeds, np.ndarray):
            raise ValueError(f"embeddings must be a numpy array, got {type(embeds).__name__}")
        if embeds.dtype != np.float32:
            raise ValueError(f"embeddings must be float32, got {embeds.dtype} (convert explicitly with .astype)")
        if embeds.ndim != 2 or embeds.shape[1] != self._n_embd:
            raise ValueError(
                f"embeddings have shape {list(embeds.shape)}, expected [n, {self._n_embd}] "
                f"(n_embd of {self.path.name}); the encoder and the LLM do not belong together"
            )
        if not np.isfinite(embeds).all():
            bad = int(np.argwhere(~np.isfinite(embeds))[0][0])
            raise ValueError(f"embeddings contain NaN or Inf (first at row {bad}); the encoder output is broken")
        return np.ascontiguousarray(embeds)

    def _check_room(self, n: int) -> None:
        if self._n_past + n > self._n_ctx:
            raise ValueError(
                f"{self._n_past} cached + {n} new positions exceed n_ctx={self._n_ctx}; raise LLMOptions.n_ctx"
            )
