"""Voice activity detection (Silero VAD v6 ONNX, MIT, shipped in models/vad/) and endpointing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import BundleError

__all__ = ["SileroVad", "VadOptions", "Endpointer", "VadEvent", "SILERO_PATH"]

SILERO_PATH = Path(__file__).parent / "models" / "vad" / "silero_vad.onnx"
SAMPLE_RATE = 16000
FRAME = 512  # samples per VAD decision at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous frame the model sees


@dataclass(frozen=True)
class VadOptions:
    threshold: float = 0.5  # speech probability that starts speech
    neg_threshold: float = 0.35  # probability below which a frame counts as silence (hysteresis)
    min_speech_ms: int = 160  # speech shorter than this is ignored (clicks, coughs)
    min_silence_ms: int = 600  # trailing silence that ends an utterance (the endpoint)
    speech_pad_ms: int = 96  # audio kept before the detected start
    max_utterance_s: float = 30.0  # an utterance is force-ended here so the LLM never sees an overlong input

    def __post_init__(self) -> None:
        if not 0.0 < self.neg_threshold <= self.threshold < 1.0:
            raise ValueError("need 0 < neg_threshold <= threshold < 1")
        if self.min_speech_ms < 0 or self.min_silence_ms < FRAME * 1000 // SAMPLE_RATE or self.speech_pad_ms < 0:
            raise ValueError("min_speech_ms and speech_pad_ms must be >= 0, min_silence_ms >= 32")
        if not 1.0 <= self.max_utterance_s <= 120.0:
            raise ValueError("max_utterance_s must be within [1, 120]")


class SileroVad:
    """Frame-by-frame speech probability. One instance per stream (it carries recurrent state)."""

    def __init__(self, path: str | Path = SILERO_PATH, threads: int = 1) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises several types for unreadable models
            raise BundleError(f"cannot load the VAD model {path}: {exc}; reinstall nim4asr-edge") from exc
        self.reset()

    def reset(self) -> None:
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros((1, CONTEXT), np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        """Speech probability of one 512-sample frame at 16 kHz."""
        x = np.concatenate([self._context, frame.reshape(1, FRAME).astype(np.float32)], axis=1)
        out, self._state = self._session.run(
            None, {"input": x, "state": self._state, "sr": np.array(SAMPLE_RATE, np.int64)}
        )
        self._context = x[:, -CONTEXT:]
        return float(out[0, 0])


@dataclass(frozen=True)
class VadEvent:
    kind: str  # "start" (speech began at `sample`) or "end" (the endpoint: speech ended at `sample`)
    sample: int  # position in the stream, in 16 kHz samples


class Endpointer:
    """Turns per-frame probabilities into speech start / end events with hysteresis and trailing silence."""

    def __init__(self, options: VadOptions = VadOptions()) -> None:
        self.options = options
        self.in_speech = False
        self._speech_run = 0  # frames of consecutive speech while not yet in speech
        self._silence_run = 0  # frames of consecutive silence while in speech
        self._start = 0

    def update(self, prob: float, frame_end: int) -> list[VadEvent]:
        """Feed the probability of the frame ending at sample ``frame_end``."""
        o = self.options
        ms = FRAME * 1000 / SAMPLE_RATE
        events: list[VadEvent] = []
        if not self.in_speech:
            self._speech_run = self._speech_run + 1 if prob >= o.threshold else 0
            if self._speech_run * ms >= max(o.min_speech_ms, ms):
                self.in_speech = True
                self._silence_run = 0
                start = frame_end - self._speech_run * FRAME - int(o.speech_pad_ms * SAMPLE_RATE / 1000)
                self._start = max(0, start)
                events.append(VadEvent("start", self._start))
        else:
            self._silence_run = self._silence_run + 1 if prob < o.neg_threshold else 0
            too_long = frame_end - self._start >= o.max_utterance_s * SAMPLE_RATE
            if self._silence_run * ms >= o.min_silence_ms or too_long:
                end = frame_end if too_long else frame_end - self._silence_run * FRAME + FRAME // 2
                events.append(VadEvent("end", end))
                self.in_speech = False
                self._speech_run = 0
        return events

    def finish(self, stream_end: int) -> list[VadEvent]:
        """End of input: close an open utterance."""
        if self.in_speech:
            self.in_speech = False
            return [VadEvent("end", stream_end)]
        return []
