"""NIM4-ASR: Kaldi fbank (or a Whisper log-Mel for Whisper-encoder bundles), a phoneme-CTC head beside the adaptor,
6.25 audio tokens/s, the ChatML prompt stored in the bundle, plain-text answers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..evidence import EvidenceSource, PhonemeCtcEvidence
from ..prompt import PromptFormat
from .base import ModelFamily

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["Nim4Family"]


class Nim4Family(ModelFamily):
    name = "nim4"

    def encoder_outputs(self, manifest: "Manifest") -> tuple[str, ...]:
        return ("audio_embeds", "phoneme_logprobs")

    def token_rate_hz(self, manifest: "Manifest") -> float:
        return float(manifest.encoder.get("token_rate_hz", 6.25))

    def prompt(self, manifest: "Manifest") -> PromptFormat:
        return manifest.prompt

    def evidence(self, manifest: "Manifest", g2p: Callable[[], object]) -> EvidenceSource:
        return PhonemeCtcEvidence(manifest.phonemes["inventory"], int(manifest.phonemes.get("blank", 0)))
