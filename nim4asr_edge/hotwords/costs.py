"""Substitution costs for the verifier: phonemes the CTC head often confuses cost less to swap.

A substitution between unrelated phonemes costs 1, as do phoneme insertions and deletions; a pair the head turns
into each other often costs 0.75 or 0.5. The costs come from how often a real head substitutes one phoneme for the
other, not from phonetic rules: :func:`costs_from_confusions` turns aligned (reference, emitted) counts into a
table, and ``examples/reference_model/measure_confusions.py`` measures them for the reference model's head.

The table shipped for :data:`~.g2p.ENGLISH_INVENTORY` (``data/en_ipa_costs.json``) is used by default by every
index whose inventory it fits (:func:`default_costs`). Costs never fall below 0.5, so a hit that is not exact
still costs at least half an edit (``SearchOptions.span_can_match`` relies on it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import HotwordError
from .g2p import BLANK, ENGLISH_INVENTORY, WORD_BOUNDARY

__all__ = ["PhonemeCosts", "costs_from_confusions", "default_costs"]

FORMAT = "nim4asr-phoneme-costs"
MIN_COST = 0.5
ENGLISH_COSTS_FILE = Path(__file__).with_name("data") / "en_ipa_costs.json"
# Share of the substitutions of either phoneme of a pair that turn one into the other, for cost 0.5 / 0.75.
_LEVELS = ((0.15, 0.5), (0.06, 0.75))


@dataclass(frozen=True)
class PhonemeCosts:
    """Symmetric substitution costs below 1 between symbols of ``inventory`` (every other pair costs 1)."""

    inventory: tuple[str, ...]
    pairs: tuple[tuple[str, str, float], ...]  # (a, b, cost) with a before b in the inventory
    source: str = ""

    def __post_init__(self) -> None:
        known = set(self.inventory)
        for a, b, c in self.pairs:
            if a not in known or b not in known or a == b or {a, b} & {BLANK, WORD_BOUNDARY}:
                raise HotwordError(f"phoneme costs: pair {a!r} {b!r} is not two distinct inventory phonemes")
            if not MIN_COST <= c < 1.0 or (c * 4) % 1:
                raise HotwordError(f"phoneme costs: cost {c} of {a} {b} must be a multiple of 0.25 in [0.5, 1)")

    def matrix(self, inventory: Sequence[str]) -> np.ndarray:
        """(V + 1, V + 1) float32 costs for :func:`~.verify.align_scores` over ``inventory``'s ids; the last row and
        column (padding) are prohibitive."""
        if tuple(inventory) != self.inventory:
            raise HotwordError("phoneme costs were measured for another phoneme inventory")
        v = len(inventory)
        m = np.ones((v + 1, v + 1), np.float32)
        sym = {s: i for i, s in enumerate(inventory)}
        for a, b, c in self.pairs:
            m[sym[a], sym[b]] = m[sym[b], sym[a]] = c
        np.fill_diagonal(m, 0.0)
        m[v, :] = m[:, v] = 1e9
        return m

    def to_json(self) -> dict:
        return {"format": FORMAT, "version": 1, "source": self.source, "inventory": list(self.inventory),
                "pairs": [[a, b, c] for a, b, c in self.pairs]}

    @classmethod
    def from_json(cls, d: dict) -> PhonemeCosts:
        if not isinstance(d, dict) or d.get("format") != FORMAT or d.get("version") != 1:
            raise HotwordError(f"not a phoneme cost table ({FORMAT} version 1)")
        try:
            return cls(tuple(d["inventory"]), tuple((str(a), str(b), float(c)) for a, b, c in d["pairs"]),
                       str(d.get("source", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise HotwordError(f"malformed phoneme cost table: {exc}") from exc

    @classmethod
    def load(cls, path: str | os.PathLike) -> PhonemeCosts:
        try:
            return cls.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HotwordError(f"cannot read phoneme costs {path}: {exc}") from exc

    def save(self, path: str | os.PathLike) -> None:
        """JSON, one pair per line (reviewable diffs)."""
        d = self.to_json()
        pairs = d.pop("pairs")
        head = json.dumps(d, ensure_ascii=False, indent=1)[:-2]
        body = ",\n".join("  " + json.dumps(p, ensure_ascii=False) for p in pairs)
        Path(path).write_text(f'{head},\n "pairs": [\n{body}\n ]\n}}\n', encoding="utf-8")


def costs_from_confusions(counts: np.ndarray, inventory: Sequence[str], source: str = "",
                          min_events: int = 5) -> PhonemeCosts:
    """Costs from a (V, V) matrix of aligned (reference, emitted) counts (the diagonal is ignored).

    A pair's share is (a->b + b->a) / (all substitutions of a + all of b); shares of at least 0.15 cost 0.5 and of
    at least 0.06 cost 0.75, if the pair was seen ``min_events`` times. Blank and word boundary are left out.
    """
    inv = list(inventory)
    s = np.asarray(counts, np.float64)[: len(inv), : len(inv)].copy()
    if s.shape != (len(inv), len(inv)):
        raise ValueError(f"counts of shape {np.shape(counts)} do not fit an inventory of {len(inv)}")
    np.fill_diagonal(s, 0.0)
    skip = [i for i, p in enumerate(inv) if p in (BLANK, WORD_BOUNDARY)]
    s[skip, :] = 0.0
    s[:, skip] = 0.0
    per = s.sum(axis=1)
    pairs = []
    for a in range(len(inv)):
        for b in range(a + 1, len(inv)):
            n = s[a, b] + s[b, a]
            if n < min_events:
                continue
            share = n / (per[a] + per[b])
            cost = next((c for th, c in _LEVELS if share >= th), None)
            if cost is not None:
                pairs.append((inv[a], inv[b], cost))
    return PhonemeCosts(tuple(inv), tuple(pairs), source)


@lru_cache(maxsize=1)
def _english() -> PhonemeCosts:
    return PhonemeCosts.load(ENGLISH_COSTS_FILE)


def default_costs(inventory: Sequence[str]) -> PhonemeCosts | None:
    """The shipped table for ``inventory`` (the reference English head's), or None: unit costs."""
    return _english() if tuple(inventory) == tuple(ENGLISH_INVENTORY) else None
