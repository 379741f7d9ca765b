"""The cache-carrying streaming encoder graph (docs/FORMAT.md, "Encoder ONNX graph (streaming)"): 640 ms chunks,
caches of the 4 chunks before, one state object per stream over a shared session::

    with StreamingEncoderSession("bundle/encoder.stream.int8.onnx") as enc:
        state = enc.new_state()            # one per stream; streams share the session
        out = enc.accept(state, feats)     # any number of frames: every complete 640 ms chunk
        out = enc.flush(state, rest)       # end of stream: the partial last chunk
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np

from .encoder import (
    ADAPTOR_STACK,
    OUTPUT_NAMES,
    EncoderOptions,
    EncoderOutput,
    _check_features,
    _CONTRACT,
    _open_session,
    run_options,
    _OrtSession,
    audio_tokens,
    encoder_frames,
)
from .errors import AudioError, BundleError

__all__ = ["StreamingEncoderSession", "StreamingEncoderState"]

logger = logging.getLogger("nim4asr_edge.encoder")


STREAM_INPUT_NAMES = ("features", "feature_lengths", "offset", "key_cache", "value_cache", "conv_cache")
STREAM_OUTPUT_NAMES = OUTPUT_NAMES + ("next_key_cache", "next_value_cache", "next_conv_cache")
_CACHE_NAMES = ("key_cache", "value_cache", "conv_cache")
STEM_STRIDE = 4  # feature frames per encoder frame
STEM_LOOKAHEAD = 3  # feature frames past a chunk that its last encoder frame reads (stem kernel 7 - stride 4)


class StreamingEncoderState:
    """The per-stream state of a ``StreamingEncoderSession``: fixed-size caches, the RoPE offset, and up to one
    step of buffered feature frames.  Make one with ``session.new_state()``; it belongs to that session.

    Memory is constant over a stream (``nbytes``).  A state is not thread-safe: feed one stream from one thread
    (different states may run concurrently on one session).
    """

    def __init__(self, session: "StreamingEncoderSession"):
        self._owner = session
        self._caches = {name: np.zeros(shape, np.float32) for name, shape in session._cache_shapes.items()}
        self._pending = np.zeros((0, session.n_mels), np.float32)  # frames not yet run (incl. 3 look-ahead)
        self.offset = 0  # encoder frames emitted so far (= RoPE position of the next chunk's first frame)
        self.frames_in = 0  # feature frames accepted so far
        self.finished = False  # True after flush(): the stream is over

    @property
    def frames_needed(self) -> int:
        """Feature frames the next ``step`` takes: chunk + 3 look-ahead frames on the first step, a chunk after."""
        return self._owner.window_frames - self._pending.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held by the caches and the frame buffer (constant over a stream, at most one step of frames)."""
        return sum(a.nbytes for a in self._caches.values()) + self._pending.nbytes

    def __repr__(self) -> str:
        return (f"StreamingEncoderState(offset={self.offset}, frames_in={self.frames_in}, "
                f"pending={self._pending.shape[0]}, finished={self.finished})")


class StreamingEncoderSession(_OrtSession):
    """An onnxruntime session over a streaming (cache-carrying) encoder graph; many streams share one session.

    The graph (docs/FORMAT.md, "Encoder ONNX graph (streaming)") encodes one chunk of ``chunk_frames`` feature
    frames (64 = 640 ms -> 16 encoder frames -> 4 audio tokens) plus the 3 following frames that the conv2d stem
    reads, against caches of the ``left_chunks`` chunks before it.  The results, chunk by chunk, equal the
    chunked whole-utterance PyTorch forward (``forward_audio(..., chunk_size=16, left_chunks=4)``).  Usage::

        with StreamingEncoderSession("bundle/encoder.stream.int8.onnx") as enc:
            state = enc.new_state()
            out = enc.step(state, feats[:state.frames_needed])  # 67 frames first, then 64 per step
            ...
            last = enc.flush(state, remaining_feats)        # the rest (any length, may be 0): pads + masks

    or ``enc.accept(state, any_number_of_frames)`` which buffers and runs every complete step.
    A chunk's output is available 30 ms (3 frames) after the chunk ends: that is the stem's look-ahead.
    """

    def __init__(self, path: str | Path, options: EncoderOptions | None = None):
        self.path = Path(path)
        self.options = options if options is not None else EncoderOptions()
        self._session = _open_session(self.path, self.options)
        self._run_options = run_options(self.options)
        self._check_contract()
        logger.debug(
            "streaming encoder %s: chunk=%d frames, window=%d, cache=%d encoder frames, providers=%s",
            self.path, self.chunk_frames, self.window_frames, self.cache_frames, self.providers,
        )

    # -- contract ---------------------------------------------------------------------------------------------

    def _check_contract(self) -> None:
        sess = self._session
        inputs = {i.name: i for i in sess.get_inputs()}
        outputs = {o.name: o for o in sess.get_outputs()}
        if set(inputs) != set(STREAM_INPUT_NAMES) or set(outputs) != set(STREAM_OUTPUT_NAMES):
            raise BundleError(
                f"{_CONTRACT}: {self.path} is not a streaming encoder graph: it has inputs {sorted(inputs)} and "
                f"outputs {sorted(outputs)}, expected inputs {list(STREAM_INPUT_NAMES)} and outputs "
                f"{list(STREAM_OUTPUT_NAMES)} (docs/FORMAT.md)"
            )
        ints = {"feature_lengths", "offset", "audio_embed_lengths", "phoneme_lengths"}
        ranks = {"features": 3, "feature_lengths": 1, "offset": 1, "key_cache": 5, "value_cache": 5,
                 "conv_cache": 4, "audio_embeds": 3, "audio_embed_lengths": 1, "phoneme_logprobs": 3,
                 "phoneme_lengths": 1, "next_key_cache": 5, "next_value_cache": 5, "next_conv_cache": 4}
        shapes: dict[str, tuple[int, ...]] = {}
        for name, rank in ranks.items():
            arg = inputs.get(name) or outputs[name]
            want = "tensor(int64)" if name in ints else "tensor(float)"
            if arg.type != want:
                raise BundleError(f"{_CONTRACT}: {name} is {arg.type}, expected {want}")
            if len(arg.shape) != rank or not all(isinstance(d, int) and d >= 1 for d in arg.shape):
                raise BundleError(
                    f"{_CONTRACT}: {name} has shape {arg.shape}, expected rank {rank} with every axis fixed "
                    "(the streaming graph has static shapes)"
                )
            shapes[name] = tuple(arg.shape)
        _, window, self._n_mels = shapes["features"]
        _, self._chunk_enc, self._n_phonemes = shapes["phoneme_logprobs"]
        _, n_tokens, self._llm_hidden = shapes["audio_embeds"]
        kv, conv = shapes["key_cache"], shapes["conv_cache"]
        self._cache_shapes = {"key_cache": kv, "value_cache": shapes["value_cache"], "conv_cache": conv}
        problems = []
        if any(shapes[n][0] != 1 for n in ("features", "feature_lengths", "offset", "audio_embeds")):
            problems.append("batch axes must be 1")
        if window != STEM_STRIDE * self._chunk_enc + STEM_LOOKAHEAD:
            problems.append(f"a window of {window} frames does not fit a chunk of {self._chunk_enc} encoder frames")
        if self._chunk_enc % ADAPTOR_STACK or n_tokens != self._chunk_enc // ADAPTOR_STACK:
            problems.append(f"{n_tokens} tokens for a chunk of {self._chunk_enc} encoder frames")
        if shapes["value_cache"] != kv or kv[3] % self._chunk_enc or kv[1] != 1 or conv[:2] != (kv[0], 1):
            problems.append(f"inconsistent cache shapes {kv}, {shapes['value_cache']}, {conv}")
        for name in _CACHE_NAMES:
            if shapes["next_" + name] != shapes[name]:
                problems.append(f"next_{name} {shapes['next_' + name]} differs from {name} {shapes[name]}")
        if problems:
            raise BundleError(f"{_CONTRACT}: {self.path}: " + "; ".join(problems))
        self._window = window

    # -- properties -------------------------------------------------------------------------------------------

    @property
    def chunk_frames(self) -> int:
        """Feature frames (10 ms) per chunk: 64 = 640 ms."""
        return STEM_STRIDE * self._chunk_enc

    @property
    def chunk_encoder_frames(self) -> int:
        return self._chunk_enc

    @property
    def window_frames(self) -> int:
        """Feature frames the graph reads per step: a chunk plus ``STEM_LOOKAHEAD``."""
        return self._window

    @property
    def cache_frames(self) -> int:
        """Encoder frames of left context held in the attention caches (``left_chunks * chunk_encoder_frames``)."""
        return self._cache_shapes["key_cache"][3]

    @property
    def left_chunks(self) -> int:
        return self.cache_frames // self._chunk_enc

    # -- streams ----------------------------------------------------------------------------------------------

    def new_state(self) -> StreamingEncoderState:
        """A fresh stream: zero caches, offset 0."""
        self._live()
        return StreamingEncoderState(self)

    def step(self, state: StreamingEncoderState, features: np.ndarray) -> EncoderOutput:
        """Encode the next chunk: ``features`` [state.frames_needed, n_mels] float32 -- 67 frames on a stream's
        first step (the chunk and the 3 frames after it), 64 on every later one (fewer if ``accept`` left frames
        buffered).  Returns the chunk's 4 audio tokens and 16 phoneme frames."""
        self._check_state(state)
        _check_features(features, self._n_mels)
        need = state.frames_needed
        if features.shape[0] != need:
            raise AudioError(
                f"a streaming step takes exactly state.frames_needed = {need} feature frames (a stream's first "
                f"step: one {self.chunk_frames}-frame chunk and the {STEM_LOOKAHEAD} frames after it; later steps: "
                f"{self.chunk_frames}), got {features.shape[0]}; pass a partial tail to flush(), or any number of "
                "frames to accept()"
            )
        window = np.concatenate([state._pending, features]) if state._pending.shape[0] else features
        out = self._run_window(state, window, self._window)
        state._pending = np.ascontiguousarray(window[self.chunk_frames:])
        state.frames_in += need
        return dataclasses.replace(out, n_frames=need)

    def accept(self, state: StreamingEncoderState, features: np.ndarray) -> EncoderOutput:
        """Buffer ``features`` [any, n_mels] and encode every chunk that is now complete (zero or more: the
        result may be empty)."""
        self._check_state(state)
        _check_features(features, self._n_mels)
        buf = np.concatenate([state._pending, features])
        state.frames_in += features.shape[0]
        outs = []
        while buf.shape[0] >= self._window:
            outs.append(self._run_window(state, buf[: self._window], self._window))
            buf = buf[self.chunk_frames:]
        state._pending = np.ascontiguousarray(buf)
        return self._concat(outs, features.shape[0])

    def flush(self, state: StreamingEncoderState, tail: np.ndarray | None = None) -> EncoderOutput:
        """End the stream: encode ``tail`` (the remaining frames, any number, may be none) and the partial last
        chunk.  The last window is zero-padded to the graph's size and ``feature_lengths`` masks the padding, so
        the result equals the whole-utterance chunked forward.  The state is finished afterwards."""
        if tail is None:
            tail = np.zeros((0, self._n_mels), np.float32)
        out = self.accept(state, tail)
        buf = state._pending
        n_valid = buf.shape[0]
        outs = [out]
        if encoder_frames(n_valid) > 0:
            window = np.zeros((self._window, self._n_mels), np.float32)
            window[:n_valid] = buf
            outs.append(self._run_window(state, window, n_valid))
        state._pending = np.zeros((0, self._n_mels), np.float32)
        state.finished = True
        return self._concat(outs, tail.shape[0])

    def run(self, features: np.ndarray) -> EncoderOutput:
        """A whole utterance through the streaming graph (a fresh state, ``accept`` + ``flush``): the chunked
        forward's result, for tests and for comparing with the offline graph."""
        state = self.new_state()
        return self.flush(state, features)

    # -- internals --------------------------------------------------------------------------------------------

    def _check_state(self, state: StreamingEncoderState) -> None:
        if not isinstance(state, StreamingEncoderState) or state._owner is not self:
            raise ValueError("state must come from this session's new_state()")
        self._live()
        if state.finished:
            raise AudioError("this stream was flushed (its input is finished); start a new one with new_state()")

    def _run_window(self, state: StreamingEncoderState, window: np.ndarray, n_valid: int) -> EncoderOutput:
        feeds = {
            "features": window[None],
            "feature_lengths": np.array([n_valid], np.int64),
            "offset": np.array([state.offset], np.int64),
            **state._caches,
        }
        try:
            embeds, embed_lens, logprobs, phone_lens, k, v, c = self._live().run(list(STREAM_OUTPUT_NAMES), feeds,
                                                                                     self._run_options)
        except Exception as exc:
            raise BundleError(f"streaming encoder graph {self.path} failed at offset {state.offset}: {exc}") from exc
        n_enc, n_tok = int(phone_lens[0]), int(embed_lens[0])
        want = min(encoder_frames(n_valid), self._chunk_enc)
        if n_enc != want or n_tok != audio_tokens(want):
            raise BundleError(
                f"{_CONTRACT}: for a window of {n_valid} valid frames it returned {n_enc} encoder frames and "
                f"{n_tok} tokens, expected {want} and {audio_tokens(want)}"
            )
        state._caches = {"key_cache": k, "value_cache": v, "conv_cache": c}
        state.offset += self._chunk_enc
        return EncoderOutput(
            audio_embeds=np.ascontiguousarray(embeds[0, :n_tok]),
            phoneme_logprobs=np.ascontiguousarray(logprobs[0, :n_enc]),
            n_frames=min(n_valid, self.chunk_frames),
        )

    def _concat(self, outs: list[EncoderOutput], n_frames: int) -> EncoderOutput:
        if len(outs) == 1:
            o = outs[0]
            return dataclasses.replace(o, n_frames=n_frames)
        return EncoderOutput(
            audio_embeds=np.concatenate(
                [o.audio_embeds for o in outs] or [np.zeros((0, self._llm_hidden), np.float32)]),
            phoneme_logprobs=np.concatenate(
                [o.phoneme_logprobs for o in outs] or [np.zeros((0, self._n_phonemes), np.float32)]),
            n_frames=n_frames,
        )

    def __repr__(self) -> str:
        state = "closed" if self._session is None else (
            f"chunk_frames={self.chunk_frames}, left_chunks={self.left_chunks}, llm_hidden={self._llm_hidden}")
        return f"StreamingEncoderSession({str(self.path)!r}, {state})"
