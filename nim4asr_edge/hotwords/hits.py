"""What a search and an edit report: :class:`HotwordHit`, :class:`RemoveReport`, and :func:`format_hints`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["HotwordHit", "RemoveReport", "format_hints"]


@dataclass(frozen=True)
class HotwordHit:
    """A hotword found in a phoneme hypothesis."""

    text: str  # the hotword as stored
    score: float  # 1.0 = exact; else 1 - edit cost / entry phonemes
    start: int  # first matched hypothesis position (in the cleaned hypothesis: blanks removed)
    end: int  # one past the last matched position
    method: str  # "exact" (whole-word phoneme match) or "approx" (HNSW candidate verified by edit distance)
    phonemes: tuple[str, ...]  # the entry's phonemes
    weight: float = 1.0  # the entry's weight (ranking tie-breaker)
    namespace: str = "default"
    id: int = 0  # store id


@dataclass(frozen=True)
class RemoveReport:
    removed: int
    missing: list[str] = field(default_factory=list)  # texts that were not in the namespace


def format_hints(hits: Iterable[HotwordHit]) -> list[str]:
    """Hint strings for ``Contextual hints``: texts in rank order, case-insensitive duplicates removed.

    The caller joins them with the bundle's ``prompt.context_separator``.
    """
    out: list[str] = []
    seen: set[str] = set()
    for h in hits:
        k = h.text.casefold()
        if k not in seen:
            seen.add(k)
            out.append(h.text)
    return out
