"""The "never invent" guard: the LLM's text must agree with the phoneme-CTC evidence of the same audio.

The text is phonemised with the bundle's G2P and compared with the CTC hypothesis; the phoneme error rate
(edit distance / CTC length) measures how far the text strays from what the acoustics support. Past the bundle's
threshold the text is withheld (an empty, flagged segment) instead of returned as fluent fiction. One
implementation guards offline results, streaming partials and finals alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from .evidence import phonemize_text
from .phonemes import edit_distance

__all__ = ["Evidence", "EvidenceGuard", "GuardOptions"]

_BOUNDARY = "|"


@dataclass(frozen=True)
class GuardOptions:
    max_phoneme_error: float = 0.6  # text whose phonemes differ from the CTC evidence by more than this is withheld
    min_evidence: int = 2  # CTC phonemes needed before any text is accepted (less: the audio holds no speech)

    @classmethod
    def from_manifest(cls, phonemes: Mapping[str, Any]) -> "GuardOptions | None":
        """The guard a bundle declares in ``phonemes.guard`` (None: the bundle has no calibrated guard)."""
        spec = phonemes.get("guard")
        if not spec:
            return None
        return cls(**spec)

    def __post_init__(self) -> None:
        if self.max_phoneme_error <= 0 or self.min_evidence < 0:
            raise ValueError("max_phoneme_error must be > 0 and min_evidence >= 0")


@dataclass(frozen=True)
class Evidence:
    phoneme_error: float  # edit distance between G2P(text) and the CTC hypothesis, / CTC length (inf: no evidence)
    confidence: float  # 1 - phoneme_error, clipped to [0, 1]
    accepted: bool


class EvidenceGuard:
    """Checks LLM text against CTC phonemes with a G2P that emits the bundle's phoneme inventory."""

    def __init__(self, g2p, options: GuardOptions) -> None:
        self.g2p = g2p
        self.options = options

    def check(self, text: str, ctc_symbols: Sequence[str]) -> Evidence:
        heard = [s for s in ctc_symbols if s != _BOUNDARY]
        if not text.strip():
            return Evidence(0.0, 1.0, True)
        if len(heard) < self.options.min_evidence:
            return Evidence(float("inf"), 0.0, False)
        said = [s for s in phonemize_text(self.g2p, text) if s != _BOUNDARY]
        error = edit_distance(said, heard) / len(heard)
        return Evidence(error, max(0.0, min(1.0, 1.0 - error)), error <= self.options.max_phoneme_error)
