"""What recognition returns: plain dataclasses carrying text, times and diagnostics."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Segment", "Timings", "Result"]


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the input
    end: float
    text: str
    tokens: tuple[int, ...]  # LLM token ids of the transcript
    phonemes: str  # phoneme-CTC hypothesis, space separated ("|" = word boundary)
    hints: tuple[str, ...] = ()  # contextual hints given to the LLM for this segment
    stopped: bool = True  # False when generation hit the token limit instead of the end token
    confidence: float | None = None  # agreement of the text with the phoneme-CTC evidence (None: no guard)
    withheld: str = ""  # text the guard withheld because the acoustics did not support it
    language: str | None = None  # the language the model named in its answer, or the forced one (None: unknown)
    passes: int = 1  # LLM decodes behind the text: 2 when a first pass's hotwords were decoded again


@dataclass
class Timings:
    """Wall-clock seconds per stage, summed over segments."""

    load: float = 0.0
    audio: float = 0.0  # reading and resampling
    frontend: float = 0.0
    encoder: float = 0.0
    hotwords: float = 0.0
    prefill: float = 0.0  # prompt + audio embeddings into the LLM
    decode: float = 0.0  # token-by-token generation
    total: float = 0.0
    generated_tokens: int = 0
    prompt_tokens: int = 0


@dataclass(frozen=True)
class Result:
    text: str
    segments: tuple[Segment, ...]
    duration: float  # seconds of audio
    timings: Timings
    options: dict[str, Any] = field(default_factory=dict)  # the effective recognizer options

    @property
    def rtf(self) -> float:
        """Real-time factor: processing seconds per second of audio."""
        return self.timings.total / self.duration if self.duration else 0.0

    @property
    def confidence(self) -> float | None:
        """Lowest segment confidence (None when the bundle has no calibrated guard)."""
        values = [s.confidence for s in self.segments if s.confidence is not None]
        return min(values) if values else None

    @property
    def language(self) -> str | None:
        """The first language a segment names (None when the model does not say)."""
        return next((s.language for s in self.segments if s.language), None)

    @property
    def unguarded_text(self) -> str:
        """The text with the segments the evidence guard withheld put back (for evaluation and inspection)."""
        return " ".join(s.text or s.withheld for s in self.segments if s.text or s.withheld)

    @property
    def phonemes(self) -> str:
        return " | ".join(s.phonemes for s in self.segments if s.phonemes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "duration": self.duration,
            "rtf": self.rtf,
            "confidence": self.confidence,
            "language": self.language,
            "segments": [dataclasses.asdict(s) for s in self.segments],
            "timings": dataclasses.asdict(self.timings),
            "options": self.options,
        }
