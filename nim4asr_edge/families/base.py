"""What differs between kinds of LLM-ASR model, in one class per family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..encoder import MIN_FRAMES
from ..evidence import EvidenceSource
from ..frontend import Frontend, make_frontend
from ..prompt import PromptFormat

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = ["EncoderBlocks", "ModelFamily", "Transcript"]

STREAMING_MODES = ("cache", "blocks", "windowed")


@dataclass(frozen=True)
class Transcript:
    """A decoded answer, parsed."""

    text: str
    language: str | None = None  # the language the model names in its answer, or the forced one


@dataclass(frozen=True)
class EncoderBlocks:
    """An encoder that attends within fixed blocks of feature frames (``"blocks"`` streaming): the embeddings of a
    finished block depend on nothing after it, so a stream commits them to the LLM's cache once (as soon as the
    block's audio is in) and re-encodes only the open block for each partial. Finished blocks' embeddings equal
    those of encoding the whole utterance at once (with the same window). The open block is encoded from the first
    uncommitted block on: alone once the blocks before it are committed, which for an encoder whose convolution chunks
    treat a short input differently (Qwen3-ASR) is the encoding a short utterance gets, not exactly its part of the
    whole (a tentative partial's tail; the final decodes the whole utterance). For encoders without a phoneme head:
    a stream's evidence then comes from its transcripts."""

    frames: int  # feature frames per block
    tokens: int  # audio embeddings of a finished block
    min_frames: int = MIN_FRAMES  # an open block shorter than this (the encoder's shortest input) waits for audio
    # the blocks are a window the graph takes through its ``attention_window`` input (shorter than its own)
    window_input: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.min_frames <= self.frames or self.tokens <= 0:
            raise ValueError("EncoderBlocks needs 0 < min_frames <= frames and tokens > 0")

    def split(self, encode: Callable[[np.ndarray], np.ndarray], features: np.ndarray,
              committed: int, open_block: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings of the blocks finished after the first ``committed``, embeddings of the open block) for an
        utterance's ``features`` [T, n_mels]; ``encode`` maps features to embeddings [N, d] (one graph run).
        ``open_block=False``, or an open block shorter than ``min_frames``: the finished blocks only."""
        start = committed * self.frames
        if len(features) < start:
            raise ValueError(f"{committed} blocks committed but the features hold {len(features)} frames")
        end = start + (len(features) - start) // self.frames * self.frames
        empty = np.zeros((0, 0), np.float32)
        if not open_block or len(features) - end < self.min_frames:
            return (encode(features[start:end]) if end > start else empty), empty
        embeds = encode(features[start:])
        done = (end - start) // self.frames * self.tokens
        return embeds[:done], embeds[done:]


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
        ``"blocks"``: the encoder attends within fixed blocks (:meth:`encoder_blocks`), finished blocks stay cached
        and each partial re-encodes the open one; ``"windowed"``: every partial re-encodes a bounded window of the
        utterance."""
        return "cache" if manifest.encoder.get("streaming") else "windowed"

    def encoder_blocks(self, manifest: "Manifest") -> EncoderBlocks | None:
        """The encoder's attention blocks for ``"blocks"`` streaming (None: the encoder attends over everything)."""
        return None
