"""Qwen3-ASR (0.6B / 1.7B): the AuT audio encoder (windowed attention, ~13 audio tokens/s) and a Qwen3 LLM.

What this module reproduces of the official ``qwen-asr`` package (0.0.6), each checked by a parity test:

* frontend ``qwen3_asr_logmel``: the waveform is divided by its peak when that exceeds 1 and clipped to [-1, 1]
  (``float_range_normalize``), then Whisper's 128-bin log-Mel (``WhisperFeatureExtractor``) without the 30-s padding;
* audio tokens ``13 * (T // 100) + ceil((T % 100) / 8)`` for ``T`` feature frames
  (``_get_feat_extract_output_lengths``);
* the prompt (chat template): context in the system turn, the speech between ``<|audio_start|>`` and
  ``<|audio_end|>`` in the user turn, and ``language {Name}<asr_text>`` after the assistant header when a language is
  forced; generation stops at ``<|im_end|>`` or ``<|endoftext|>``;
* the answer parser ``parse_asr_output``: ``language X<asr_text>text``, ``language None`` -> no language, runs
  repeated more than 20 times collapsed.

The model has no phoneme head: hotword evidence is the G2P of the first-pass transcript, and hotwords found there
go into the system turn's context for a second pass.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import BundleError
from ..evidence import EvidenceSource, HypothesisEvidence
from ..frontend import FRONTENDS, Features, WhisperLogMel
from ..prompt import PromptParts, check_language
from .base import EncoderBlocks, ModelFamily, Transcript

if TYPE_CHECKING:
    from ..manifest import Manifest

__all__ = [
    "LANGUAGES",
    "Qwen3AsrFamily",
    "Qwen3AsrLogMel",
    "Qwen3AsrPrompt",
    "audio_token_count",
    "fix_repetitions",
    "parse_asr_output",
]

FAMILY = "qwen3-asr"
FRONTEND = "qwen3_asr_logmel"
CHUNK_FRAMES = 100  # feature frames the encoder convolves as one chunk (n_window * 2)
TOKENS_PER_CHUNK = 13  # audio tokens of a whole chunk: three stride-2 convolutions, 100 -> 50 -> 25 -> 13
ASR_TEXT = "<asr_text>"
STOP = ("<|im_end|>", "<|endoftext|>")  # generate(eos_token_id=[151645, 151643])
REPEAT_THRESHOLD = 20  # detect_and_fix_repetitions(threshold=20)

# qwen_asr.inference.utils.SUPPORTED_LANGUAGES, in its order
LANGUAGES: tuple[str, ...] = (
    "Chinese", "English", "Cantonese", "Arabic", "German", "French", "Spanish", "Portuguese", "Indonesian",
    "Italian", "Korean", "Russian", "Thai", "Vietnamese", "Japanese", "Turkish", "Hindi", "Malay", "Dutch",
    "Swedish", "Danish", "Finnish", "Polish", "Czech", "Filipino", "Persian", "Greek", "Romanian", "Hungarian",
    "Macedonian",
)


def audio_token_count(n_frames: int) -> int:
    """Audio tokens for ``n_frames`` feature frames, as the reference computes it: each whole 100-frame chunk gives
    13, the rest ``r`` gives ``ceil(r / 8)`` (three stride-2 convolutions with padding 1)."""
    rest = n_frames % CHUNK_FRAMES
    tail = ((((rest - 1) // 2 + 1) - 1) // 2 + 1 - 1) // 2 + 1 if rest else 0
    return TOKENS_PER_CHUNK * (n_frames // CHUNK_FRAMES) + tail


# -- frontend ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Qwen3AsrLogMel(WhisperLogMel):
    """The reference's input normalisation (÷ peak when the peak exceeds 1, clip to [-1, 1]) followed by Whisper's
    log-Mel (128 bins, no padding: ``frames = samples // 160``)."""

    num_mel_bins: int = 128

    def __call__(self, samples: np.ndarray) -> Features:
        x = np.asarray(samples, dtype=np.float32)
        if x.size:
            peak = float(np.max(np.abs(x)))
            if peak > 1.0:
                x = x / peak
            x = np.clip(x, -1.0, 1.0)
        return super().__call__(x)

    def to_manifest(self) -> dict[str, Any]:
        spec = {**super().to_manifest(), "type": FRONTEND}
        del spec["pad_to_seconds"]  # never padded
        return spec


FRONTENDS.setdefault(FRONTEND, lambda params: Qwen3AsrLogMel(**params))


# -- prompt -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Qwen3AsrPrompt:
    """The Qwen3-ASR chat prompt around the speech embeddings (the ``<|audio_pad|>`` run the embeddings replace).

    ``hints`` become the system turn's context, joined by ``context_separator``; a forced ``language`` opens the
    answer with ``language {Name}<asr_text>`` as ``Qwen3ASRModel._build_text_prompt`` does.
    """

    languages: tuple[str, ...] = LANGUAGES
    context_separator: str = ", "
    stop: tuple[str, ...] = STOP

    def context(self, hints: Sequence[str] = ()) -> str:
        # NFC: the release's tokenizer normalises its input and llama.cpp does not (tests/test_qwen_tokenizer.py)
        return self.context_separator.join(unicodedata.normalize("NFC", h.strip()) for h in hints if h.strip())

    def render(self, hints: Sequence[str] = (), language: str | None = None) -> PromptParts:
        check_language(self, language)
        before = f"<|im_start|>system\n{self.context(hints)}<|im_end|>\n<|im_start|>user\n<|audio_start|>"
        after = "<|audio_end|><|im_end|>\n<|im_start|>assistant\n"
        if language:
            after += f"language {language}{ASR_TEXT}"
        return PromptParts(before, after)


# -- answer parser ----------------------------------------------------------------------------------------------------


def _fix_char_repeats(s: str, threshold: int) -> str:
    out = []
    i = 0
    while i < len(s):
        count = 1
        while i + count < len(s) and s[i + count] == s[i]:
            count += 1
        out.append(s[i] if count > threshold else s[i : i + count])
        i += count
    return "".join(out)


def _fix_pattern_repeats(s: str, threshold: int, max_len: int = 20) -> str:
    """A pattern of 1..max_len characters repeated ``threshold`` times or more is kept once (the reference's
    ``fix_pattern_repeats``, iterative rather than recursive)."""
    out = []
    while len(s) >= threshold * 2:
        i = 0
        found = False
        while i <= len(s) - threshold * 2:
            for k in range(1, max_len + 1):
                if i + k * threshold > len(s):
                    break
                pattern = s[i : i + k]
                if all(s[i + r * k : i + r * k + k] == pattern for r in range(1, threshold)):
                    end = i + threshold * k
                    while end + k <= len(s) and s[end : end + k] == pattern:
                        end += k
                    out.append(s[:i] + pattern)
                    s = s[end:]
                    found = True
                    break
            if found:
                break
            i += 1
        if not found:
            break
    out.append(s)
    return "".join(out)


def fix_repetitions(text: str, threshold: int = REPEAT_THRESHOLD) -> str:
    """Collapse characters and short patterns repeated more than ``threshold`` times
    (``detect_and_fix_repetitions``)."""
    return _fix_pattern_repeats(_fix_char_repeats(text, threshold), threshold)


def parse_asr_output(raw: str, language: str | None = None) -> Transcript:
    """The transcript and language of a raw answer, as the reference's ``parse_asr_output``: with a forced
    ``language`` the answer is all text; else ``language X<asr_text>text`` (``language None``: no language), and an
    answer without the tag is all text."""
    s = (raw or "").strip()
    if not s:
        return Transcript("", language)
    s = fix_repetitions(s)
    if language:
        return Transcript(s, language)
    meta, tag, text = s.partition(ASR_TEXT)
    if not tag:
        return Transcript(s.strip(), None)
    if "language none" in meta.lower():
        return Transcript(text.strip(), None)
    found = None
    for line in meta.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.lower().startswith("language "):
            value = line[len("language "):].strip()
            if value:
                found = value[:1].upper() + value[1:].lower()
            break
    return Transcript(text.strip(), found)


# -- the family -------------------------------------------------------------------------------------------------------


class Qwen3AsrFamily(ModelFamily):
    """Qwen3-ASR bundles (``nim4asr-edge import qwen3-asr``): see the module docstring."""

    name = FAMILY

    def token_rate_hz(self, manifest: Manifest) -> float:
        return float(manifest.encoder.get("token_rate_hz", TOKENS_PER_CHUNK))

    def prompt(self, manifest: Manifest) -> Qwen3AsrPrompt:
        spec = manifest.extra.get("qwen3_asr", {}) if isinstance(manifest.extra, dict) else {}
        return Qwen3AsrPrompt(languages=tuple(spec.get("languages", LANGUAGES)),
                              context_separator=str(spec.get("context_separator", ", ")))

    def parse_output(self, text: str, language: str | None = None) -> Transcript:
        return parse_asr_output(text, language)

    def evidence(self, manifest: Manifest, g2p: Callable[[], object]) -> EvidenceSource:
        return HypothesisEvidence(g2p())

    def streaming_mode(self, manifest: Manifest) -> str:
        # The reference's streaming re-encodes all audio so far for each chunk (vLLM); attention within windows
        # makes a finished window's embeddings final, so only the open window is re-encoded here (in the short
        # streaming window where the bundle's graph takes one: see encoder_blocks).
        return "blocks"

    def encoder_blocks(self, manifest: Manifest) -> EncoderBlocks:
        # the short streaming window where the graph takes one (imported with a stream window), else the offline 8 s
        enc = manifest.encoder
        stream = enc.get("stream_window_tokens")
        window = int(stream or enc.get("window_tokens", TOKENS_PER_CHUNK * 8))
        chunk = int(enc.get("chunk_frames", CHUNK_FRAMES))
        if chunk != CHUNK_FRAMES or window % TOKENS_PER_CHUNK:
            raise BundleError(f"Qwen3-ASR encoder windows of {window} tokens over {chunk}-frame chunks: this runtime "
                              f"knows {CHUNK_FRAMES}-frame chunks of {TOKENS_PER_CHUNK} tokens")
        return EncoderBlocks(frames=window // TOKENS_PER_CHUNK * chunk, tokens=window, window_input=bool(stream))
