"""Real-time streaming: VAD-gated utterances, a partial every chunk, a second-pass final at the endpoint.

One producer thread calls ``accept_waveform`` / ``input_finished``; one consumer thread reads ``events()``.
Work runs on the stream's own worker thread with its own LLM context (KV cache) forked from the shared weights,
so many streams share one loaded bundle and a failing stream cannot wedge the others. Partials and finals go
through the same :class:`~.engine.SegmentEngine` as offline recognition: a final is the offline result of the
utterance's audio.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from .audio import to_float_mono
from .engine import SegmentEngine
from .errors import AudioError, StreamError
from .results import Timings
from .vad import FRAME, SAMPLE_RATE, Endpointer, SileroVad, VadOptions

__all__ = ["Stream", "StreamEvent", "StreamOptions", "StreamError"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StreamOptions:
    vad: VadOptions = field(default_factory=VadOptions)
    chunk_ms: int = 640  # windowed-mode partial cadence; a streaming encoder graph uses its own chunk (640 ms)
    rollback_tokens: int = 5  # trailing tokens of a partial that the next chunk may rewrite
    unstable_chunks: int = 2  # the first chunks' partials are all unstable (no stable prefix, nothing forced)
    partials: bool = True  # emit partial events (finals and endpoints are always emitted)
    # When decoding falls behind the input, decode one partial for the newest audio instead of one per chunk_ms
    # (latency stays bounded). False: a partial for every chunk_ms of audio however late (repeatable cadence).
    skip_late_partials: bool = True
    window_seconds: float = 30.0  # windowed mode (no streaming graph): most audio re-encoded per partial
    # use the bundle's cache-carrying encoder graph, or the encoder's finished blocks, when it has them (False:
    # windowed re-encoding)
    use_streaming_graph: bool = True

    def __post_init__(self) -> None:
        if not 160 <= self.chunk_ms <= 5000 or self.rollback_tokens < 0 or self.unstable_chunks < 0:
            raise ValueError("chunk_ms must be within [160, 5000] ms, rollback_tokens and unstable_chunks >= 0")
        if self.window_seconds < 1.0:
            raise ValueError("window_seconds must be >= 1")


@dataclass(frozen=True)
class StreamEvent:
    kind: str  # "partial" | "final" | "endpoint"
    text: str  # hypothesis of the current utterance ("" for endpoint events)
    stable: str  # leading part of `text` that later partials will keep (== text for finals)
    utterance: int  # 0-based index of the utterance in the stream
    start: float  # utterance start, seconds of stream time
    end: float  # end of the audio this event covers, seconds of stream time
    latency: float  # seconds from the arrival of the audio that completed this event to the event
    tokens: tuple[int, ...] = ()
    confidence: float | None = None  # the evidence guard's, as in an offline Segment (None: no guard)
    withheld: str = ""  # text the guard withheld (then `text` is "")
    language: str | None = None  # the language the model named or was forced to (None: not known)
    passes: int = 1  # LLM decodes behind the text (2: a first pass's hotwords were decoded again)


_END = object()


class Stream:
    """A live recognition stream over a loaded model. Create with ``recognizer.create_stream()``."""

    def __init__(self, engine: SegmentEngine, options: StreamOptions = StreamOptions(), hints: Sequence[str] = ()):
        self._engine = engine
        self.options = options
        self.hints = tuple(hints)
        self._inbox: queue.Queue = queue.Queue()
        self._outbox: queue.Queue = queue.Queue()
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None
        self._rate: int | None = None
        self._resampler = None
        self._decoder = engine.new_decoder()
        try:
            self._vad = SileroVad()
        except BaseException:
            self._decoder.llm.close()
            raise
        self._endpointer = Endpointer(options.vad)
        self._pending = np.zeros(0, np.float32)  # 16 kHz samples not yet seen by the VAD (< one frame)
        self._consumed = 0  # 16 kHz samples seen by the VAD
        pad = int(options.vad.speech_pad_ms * SAMPLE_RATE / 1000) + options.vad.min_speech_ms * SAMPLE_RATE // 1000
        self._history: deque[np.ndarray] = deque(maxlen=pad // FRAME + 2)  # pre-roll frames before a start
        self._utt: list[np.ndarray] | None = None  # frames of the open utterance
        self._utt_start = 0
        self._utt_index = -1
        self._chunks = 0  # partials decoded in this utterance
        self._last_partial_len = 0
        self._prev_tokens: tuple[int, ...] = ()
        self._feats_done = 0  # feature frames of the utterance given to the streaming encoder
        self._utt_logprobs: list[np.ndarray | None] = []  # encoder posteriors of the utterance so far
        self._enc_state = None  # per-utterance caches of the streaming encoder graph (None: windowed mode)
        self._blocks_done = 0  # "blocks" mode: finished encoder blocks of the utterance committed to the KV cache
        self._hotwords = None
        if engine.hotwords is not None:
            from .hotwords import HotwordAccumulator

            self._hotwords = HotwordAccumulator(engine.options.hotword_top_k)
        self._worker = threading.Thread(target=self._run, name="nim4asr-stream", daemon=True)
        self._worker.start()

    # -- producer side ----------------------------------------------------------------------------------
    def accept_waveform(self, sample_rate: int, samples: np.ndarray) -> None:
        """Queue audio (float in [-1, 1] or int16/int32 PCM, mono or [n, channels]) at any rate; never blocks on
        recognition. The rate may change between calls (each rate is resampled separately)."""
        if self._finished:
            raise StreamError("accept_waveform() after input_finished(): create a new stream for new audio")
        self._raise_worker_error()
        mono = to_float_mono(samples, sample_rate, allow_empty=True)
        self._inbox.put((int(sample_rate), mono, time.perf_counter()))

    def input_finished(self) -> None:
        """No more audio: the open utterance is finalised and the event stream ends."""
        if not self._finished:
            self._finished = True
            self._inbox.put(_END)

    # -- consumer side ----------------------------------------------------------------------------------
    def events(self, timeout: float | None = None) -> Iterator[StreamEvent]:
        """Events in order until the stream ends (after input_finished). ``timeout``: most seconds to wait for
        one event before raising ``StreamError``."""
        while True:
            try:
                item = self._outbox.get(timeout=timeout)
            except queue.Empty as exc:
                raise StreamError(f"no stream event within {timeout} s") from exc
            if item is _END:
                self._outbox.put(_END)  # later calls end at once too
                self._raise_worker_error()
                return
            yield item

    def close(self) -> None:
        """Stop the worker and free the stream's LLM context (idempotent)."""
        if self._closed:
            return
        self.input_finished()
        self._worker.join()
        self._decoder.llm.close()
        self._closed = True

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _raise_worker_error(self) -> None:
        if self._error is not None:
            raise StreamError(f"the stream's worker failed: {self._error}") from self._error

    # -- worker ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            finished = False
            while not finished:
                items = self._take_queued()
                for i, item in enumerate(items):
                    if item is _END:
                        self._flush_resampler()
                        self._finish()
                        finished = True
                        break
                    rate, samples, arrived = item
                    # One partial per batch, for the newest audio: when decoding falls behind, partials for audio
                    # that newer audio already covers would only add to the delay.
                    latest = i == len(items) - 1 or not self.options.skip_late_partials
                    self._feed(self._resample(rate, samples), arrived, partial=latest)
        except BaseException as exc:  # delivered to the producer and the consumer
            log.exception("stream worker failed")
            self._error = exc
        finally:
            self._outbox.put(_END)

    def _take_queued(self) -> list:
        """The next inbox item (waiting for it) and every item queued behind it, up to the end marker."""
        items = [self._inbox.get()]
        while items[-1] is not _END:
            try:
                items.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return items

    def _resample(self, rate: int, samples: np.ndarray) -> np.ndarray:
        if rate != self._rate:
            self._flush_resampler()
            self._rate = rate
            if rate != SAMPLE_RATE:
                import soxr

                self._resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        if self._resampler is None:
            return samples
        return self._resampler.resample_chunk(samples).astype(np.float32, copy=False)

    def _flush_resampler(self) -> None:
        """Feed the resampler's buffered tail (at a rate change or the end of input)."""
        if self._resampler is not None:
            tail = self._resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            self._resampler = None
            if len(tail):
                self._feed(tail.astype(np.float32, copy=False), time.perf_counter())

    def _feed(self, samples: np.ndarray, arrived: float, partial: bool = True) -> None:
        """VAD and endpointing frame by frame, and (with ``partial``) partials for the open utterance: after the
        block, or every ``chunk_ms`` of audio without ``skip_late_partials``."""
        buf = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n_frames = len(buf) // FRAME
        for i in range(n_frames):
            frame = buf[i * FRAME : (i + 1) * FRAME]
            self._consumed += FRAME
            for ev in self._endpointer.update(self._vad(frame), self._consumed):
                if ev.kind == "start":
                    self._open(ev.sample)
                else:
                    self._close_utterance(ev.sample, arrived)
            if self._utt is not None:
                self._utt.append(frame)
                if partial and not self.options.skip_late_partials:
                    self._maybe_partial(arrived)
            else:
                self._history.append(frame)
        self._pending = buf[n_frames * FRAME :].copy()
        if self._utt is not None and self._blocks_mode():
            self._commit_blocks()
        if partial and self.options.skip_late_partials and self._utt is not None:
            self._maybe_partial(arrived)

    def _open(self, start: int) -> None:
        # Pre-roll: the history frames from `start` on (the current frame is appended by the caller).
        history = list(self._history)
        first = self._consumed - FRAME - len(history) * FRAME
        skip = max(0, (start - first) // FRAME)
        self._utt = history[skip:]
        self._utt_start = first + skip * FRAME
        self._utt_index += 1
        self._chunks = 0
        self._last_partial_len = 0
        self._prev_tokens = ()
        self._history.clear()
        self._feats_done = 0
        self._blocks_done = 0
        self._utt_logprobs = []
        if self._hotwords is not None:
            self._hotwords.reset()
        streaming = self._engine.streaming_encoder if self.options.use_streaming_graph else None
        self._enc_state = streaming.new_state() if streaming is not None else None

    def _utt_audio(self) -> np.ndarray:
        return np.concatenate(self._utt) if self._utt else np.zeros(0, np.float32)

    def _maybe_partial(self, arrived: float) -> None:
        if self._enc_state is not None:
            self._streaming_step(arrived)
            return
        chunk = int(self.options.chunk_ms * SAMPLE_RATE / 1000)
        n = len(self._utt) * FRAME
        if not self.options.partials or n - self._last_partial_len < chunk:
            return
        self._last_partial_len = n
        if self._blocks_mode():
            self._blocks_partial(arrived)
            return
        audio = self._utt_audio()[-int(self.options.window_seconds * SAMPLE_RATE) :]
        out = self._engine.encode(audio)
        if out is None:
            return
        self._decoder.set_speech(out.audio_embeds)
        self._utt_logprobs = [out.phoneme_logprobs]
        self._partial(len(audio), arrived)

    def _blocks_mode(self) -> bool:
        return self._engine.blocks is not None and self.options.use_streaming_graph and self.options.partials

    def _commit_blocks(self) -> None:
        """Encoder blocks: a block's embeddings go into the KV cache as soon as its audio is in, between partials,
        so that a partial's latency holds only the open block."""
        frames, shift = self._engine.blocks.frames, self._engine.frontend.frame_shift
        if len(self._utt) * FRAME < ((self._blocks_done + 1) * frames - 1) * shift:
            return  # not one more block of feature frames yet (the features themselves say exactly)
        split = self._engine.encode_blocks(self._utt_audio(), self._blocks_done, open_block=False)
        if split is not None and len(split[0]):
            self._commit(split[0])
            self._decoder.evaluate()

    def _commit(self, finished: np.ndarray) -> None:
        """Append finished blocks' embeddings to the speech (the KV cache takes them with the next batch)."""
        if len(finished):
            self._decoder.append_speech(finished)
            self._blocks_done += len(finished) // self._engine.blocks.tokens

    def _blocks_partial(self, arrived: float) -> None:
        """Encoder blocks: finished blocks' embeddings committed to the KV cache once, the open block re-encoded."""
        audio = self._utt_audio()
        split = self._engine.encode_blocks(audio, self._blocks_done)
        if split is None:
            return
        finished, open_block = split  # finished: blocks completed within this feed (a partial per frame)
        self._commit(finished)
        self._decoder.set_tail(open_block)
        self._partial(len(audio), arrived)

    def _streaming_step(self, arrived: float) -> None:
        """Cache-carrying encoder: new feature frames in, each completed chunk's embeddings appended to the KV cache."""
        frontend = self._engine.frontend
        n = len(self._utt) * FRAME
        hop, win = frontend.frame_shift, frontend.frame_len
        total = 0 if n < win else 1 + (n - win) // hop
        if total <= self._feats_done:
            return
        start = self._feats_done * hop  # only the audio the new frames need (no re-concatenating the utterance)
        first = start // FRAME
        audio = np.concatenate(self._utt[first:])[start - first * FRAME :]
        feats = frontend(audio).values[: total - self._feats_done]
        self._feats_done = total
        out = self._engine.streaming_encoder.accept(self._enc_state, feats)
        if len(out.audio_embeds) == 0:
            return
        self._decoder.append_speech(out.audio_embeds)
        self._utt_logprobs.append(out.phoneme_logprobs)
        if self.options.partials:
            self._partial(n, arrived)

    def _partial(self, n_samples: int, arrived: float) -> None:
        o = self.options
        stable_ok = self._chunks >= o.unstable_chunks
        forced = self._prev_tokens[: max(0, len(self._prev_tokens) - o.rollback_tokens)] if stable_ok else ()
        evidence = self._engine.acoustic_evidence(self._utt_logprobs)
        d = self._engine.decode(self._decoder, evidence, n_samples / SAMPLE_RATE, self.hints, self._hotwords,
                                forced, draft=self._prev_tokens[len(forced) :], second_pass=False)
        tokens = d.hypothesis.tokens
        self._chunks += 1
        self._prev_tokens = tokens
        keep = max(0, len(tokens) - o.rollback_tokens) if self._chunks > o.unstable_chunks else 0
        prefix = self._decoder.llm.detokenize(tokens[:keep], final=False)
        stable = self._engine.family.parse_output(prefix, d.transcript.language).text
        if d.withheld or not d.text.startswith(stable):  # withheld, or cut inside the family's answer format
            stable = ""
        self._emit("partial", d.text, stable, self._consumed, arrived, tokens, d.confidence, d.withheld,
                   d.transcript.language, d.passes)

    def _close_utterance(self, end: int, arrived: float) -> None:
        if self._utt is None:
            return
        audio = self._utt_audio()[: max(0, end - self._utt_start)]
        self._utt = None
        self._enc_state = None
        n = self._utt_start + len(audio)
        try:
            # the second pass decodes the whole utterance as offline recognition does; the last partial is its draft
            seg = self._engine.segment(audio, self._utt_start / SAMPLE_RATE, self.hints, Timings(), self._decoder,
                                       self._hotwords, draft=self._prev_tokens)
            self._emit("final", seg.text, seg.text, n, arrived, seg.tokens, seg.confidence, seg.withheld,
                       seg.language, seg.passes)
        except AudioError:  # too short to encode: nothing was said
            self._emit("final", "", "", n, arrived, ())
        self._decoder.reset()
        self._emit("endpoint", "", "", n, arrived, ())

    def _finish(self) -> None:
        if len(self._pending):  # a last partial frame: zero-pad it so the VAD sees it
            tail = np.zeros(FRAME, np.float32)
            tail[: len(self._pending)] = self._pending
            self._pending = np.zeros(0, np.float32)
            self._feed(tail, time.perf_counter(), partial=False)
        for ev in self._endpointer.finish(self._consumed):
            self._close_utterance(ev.sample, time.perf_counter())

    def _emit(self, kind: str, text: str, stable: str, end_sample: int, arrived: float, tokens, *rest) -> None:
        self._outbox.put(
            StreamEvent(kind, text, stable, self._utt_index, self._utt_start / SAMPLE_RATE, end_sample / SAMPLE_RATE,
                        time.perf_counter() - arrived, tuple(tokens), *rest)
        )
