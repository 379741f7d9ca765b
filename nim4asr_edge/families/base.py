"""What differs between kinds of LLM-ASR model, in one class per family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..evidence import EvidenceSource
from ..frontend import Frontend, make_frontend
from ..prompt import PromptFormat

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["ModelFamily", "Transcript"]

STREAMING_MODES = ("cache", "windowed")


@dataclass(frozen=True)
class Transcript:
    """A decoded answer, parsed."""

    text: str
    language: str | None = None  # the language the model names in its answer, or the forced one


class ModelFamily:
    """One kind of LLM-ASR model: frontend, encoder outputs, prompt, output parser, evidence and streaming mode.

    Subclass it, set ``name`` and register an instance with :func:`~nim4asr_edge.families.register_family`; a
    bundle whose manifest says ``"family": name`` then runs through the same engine as every other. Each method
    reads what it needs from the bundle's manifest.
    """

    name: str = ""

    def frontend(self, manifest: "Manifest") -> Frontend:
        """The feature frontend (default: the one the manifest's ``frontend`` section declares)."""
        return make_frontend(manifest.frontend)

    def encoder_outputs(self, manifest: "Manifest") -> tuple[str, ...]:
        """The encoder graph's outputs besides their ``*_lengths``: ``audio_embeds`` always, ``phoneme_logprobs``
        where the model has a phoneme-CTC head."""
        return ("audio_embeds",)

    def token_rate_hz(self, manifest: "Manifest") -> float:
        """Audio tokens per second of speech (sizes the LLM context)."""
        return float(manifest.encoder["token_rate_hz"])

    def prompt(self, manifest: "Manifest") -> PromptFormat:
        """The prompt around the speech."""
        raise NotImplementedError

    def parse_output(self, text: str, language: str | None = None) -> Transcript:
        """The transcript in the LLM's answer; ``language``: the forced one, if any (default: the answer as is)."""
        return Transcript(text.strip(), language)

    def evidence(self, manifest: "Manifest", g2p: Callable[[], object]) -> EvidenceSource:
        """The evidence source; ``g2p()`` returns the bundle's G2P (loaded on demand: it is an optional extra)."""
        raise NotImplementedError

    def streaming_mode(self, manifest: "Manifest") -> str:
        """``"cache"``: a cache-carrying encoder graph feeds the LLM chunk by chunk (when the bundle has one);
        ``"windowed"``: every partial re-encodes a bounded window of the utterance."""
        return "cache" if manifest.encoder.get("streaming") else "windowed"
