"""Greedy decoding of the encoder's phoneme-CTC output."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["PhonemeHypothesis", "ctc_greedy", "edit_distance"]


@dataclass(frozen=True)
class PhonemeHypothesis:
    symbols: tuple[str, ...]  # phonemes after collapsing repeats and dropping blanks ("|" = word boundary)
    frames: tuple[int, ...]  # encoder frame (25 Hz) where each symbol was emitted
    mean_logprob: float  # average best-class log-probability over non-blank frames (0 = certain)
    speech_frames: int  # frames whose best class is not the blank

    def text(self) -> str:
        return " ".join(self.symbols)


def ctc_greedy(logprobs: np.ndarray, inventory: Sequence[str], blank: int = 0) -> PhonemeHypothesis:
    """Best path: argmax per frame, merge repeats, drop blanks."""
    if logprobs.ndim != 2 or logprobs.shape[1] != len(inventory):
        raise ValueError(f"phoneme log-probs of shape {logprobs.shape} do not fit an inventory of {len(inventory)}")
    best = logprobs.argmax(axis=1)
    best_lp = logprobs[np.arange(len(best)), best]
    keep = best != blank
    starts = np.ones_like(keep)
    starts[1:] = best[1:] != best[:-1]
    emit = np.flatnonzero(keep & starts)
    return PhonemeHypothesis(
        symbols=tuple(inventory[i] for i in best[emit]),
        frames=tuple(int(f) for f in emit),
        mean_logprob=float(best_lp[keep].mean()) if keep.any() else 0.0,
        speech_frames=int(keep.sum()),
    )


def edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    """Levenshtein distance between two symbol sequences (numpy row DP, O(len(a) * len(b)))."""
    if not a or not b:
        return max(len(a), len(b))
    vocab = {s: i for i, s in enumerate(set(a) | set(b))}
    bb = np.fromiter((vocab[s] for s in b), dtype=np.int32, count=len(b))
    ramp = np.arange(len(b) + 1)
    row = ramp.copy()
    for i, sym in enumerate(a, 1):
        diag = row[:-1] + (bb != vocab[sym])  # substitution (or match)
        up = row[1:] + 1  # deletion
        tmp = np.empty_like(row)
        tmp[0] = i
        tmp[1:] = np.minimum(diag, up)
        row = np.minimum.accumulate(tmp - ramp) + ramp  # insertions chain left to right
    return int(row[-1])
