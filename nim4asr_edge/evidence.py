"""Evidence: the phonemes of a segment, for hotword retrieval and the "never invent" guard.

Each model family has one evidence source:

* :class:`PhonemeCtcEvidence` (acoustic): the greedy path of the encoder's phoneme-CTC posteriors (NIM4).
* :class:`HypothesisEvidence` (from text): the G2P of the LLM's first-pass transcript, for models without a phoneme
  head. It can feed hotword retrieval (a second pass decodes with the hotwords it finds) but not the guard: text
  checked against its own phonemes always agrees.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .phonemes import ctc_greedy

__all__ = ["Evidence", "EvidenceSource", "HypothesisEvidence", "PhonemeCtcEvidence", "match_error", "phonemize_text"]

WORD_BOUNDARY = "|"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")
_G2P_CHARS = 200  # a G2P call's text limit (hotwords.g2p.MAX_TEXT_CHARS): longer transcripts go in word groups


@dataclass(frozen=True)
class Evidence:
    symbols: tuple[str, ...]  # phonemes ("|" = word boundary)
    source: str  # the EvidenceSource's name
    # acoustic evidence: the CTC log-posteriors (frames, inventory classes) whose greedy path ``symbols`` is, for
    # the hotword search's posterior verifier; None for evidence from text
    logprobs: np.ndarray | None = field(default=None, compare=False, repr=False)

    def text(self) -> str:
        return " ".join(self.symbols)


class EvidenceSource:
    """Where a family's evidence comes from. ``acoustic`` sources read the encoder output (``from_encoder``);
    the others read the first-pass transcript (``from_text``)."""

    name: str = ""
    acoustic: bool = False

    def from_encoder(self, logprobs: Sequence[np.ndarray]) -> Evidence:
        """Evidence of the encoder's posteriors (the chunks of one utterance, in order)."""
        raise NotImplementedError(f"{self.name} evidence does not come from the encoder")

    def from_text(self, text: str) -> Evidence:
        """Evidence of a transcript."""
        raise NotImplementedError(f"{self.name} evidence does not come from text")


class PhonemeCtcEvidence(EvidenceSource):
    name = "phoneme_ctc"
    acoustic = True

    def __init__(self, inventory: Sequence[str], blank: int = 0) -> None:
        self.inventory = list(inventory)
        self.blank = blank

    def from_encoder(self, logprobs: Sequence[np.ndarray]) -> Evidence:
        if not logprobs:
            return Evidence((), self.name)
        lp = np.concatenate(logprobs)
        return Evidence(ctc_greedy(lp, self.inventory, self.blank).symbols, self.name, lp)


class HypothesisEvidence(EvidenceSource):
    name = "hypothesis"
    acoustic = False

    def __init__(self, g2p) -> None:
        self.g2p = g2p

    def from_text(self, text: str) -> Evidence:
        return Evidence(phonemize_text(self.g2p, text), self.name)


def phonemize_text(g2p, text: str) -> tuple[str, ...]:
    """Phonemes of a whole transcript: one G2P call when it fits the G2P's length limit and is pronounceable as a
    whole; else its words (runs of letters and digits) in groups, leaving out what the G2P cannot pronounce (another
    script, symbols, broken characters) instead of failing the rest."""
    if len(text) <= _G2P_CHARS:
        whole = g2p.phonemize([text])[0]
        if whole:
            return tuple(whole)
    words = _WORD.findall(text)
    groups: list[list[str]] = [[]]
    for word in words:
        if groups[-1] and len(" ".join(groups[-1])) + 1 + len(word) > _G2P_CHARS:
            groups.append([])
        groups[-1].append(word)
    out: list[str] = []
    for group in groups:
        if not group:
            continue
        phonemes = g2p.phonemize([" ".join(group)])[0]
        if not phonemes and len(group) > 1:  # something in it is unpronounceable: keep the words that are not
            found = [p for p in g2p.phonemize(group) if p]
            phonemes = [s for i, p in enumerate(found) for s in ([WORD_BOUNDARY] if i else []) + list(p)]
        if phonemes:
            out.extend(([WORD_BOUNDARY] if out else []) + list(phonemes))
    return tuple(out)


def match_error(phonemes: Sequence[str], heard: Sequence[str]) -> float:
    """How badly ``phonemes`` (e.g. a hint's) fit anywhere inside ``heard`` (the evidence): the smallest edit
    distance between them and any stretch of ``heard``, over their length (0: heard exactly; 1 or more: absent).
    Word boundaries are ignored on both sides."""
    a = [p for p in phonemes if p != WORD_BOUNDARY]
    b = [p for p in heard if p != WORD_BOUNDARY]
    if not a:
        return 0.0
    if not b:
        return 1.0
    vocab = {s: i for i, s in enumerate(set(a) | set(b))}
    bb = np.fromiter((vocab[s] for s in b), dtype=np.int32, count=len(b))
    row = np.zeros(len(b) + 1, dtype=np.int64)  # a stretch may start anywhere in `heard`: free leading gap
    ramp = np.arange(len(b) + 1)
    for i, sym in enumerate(a, 1):
        diag = row[:-1] + (bb != vocab[sym])
        tmp = np.empty_like(row)
        tmp[0] = i
        tmp[1:] = np.minimum(diag, row[1:] + 1)
        row = np.minimum.accumulate(tmp - ramp) + ramp
    return float(row.min()) / len(a)  # ... and end anywhere
