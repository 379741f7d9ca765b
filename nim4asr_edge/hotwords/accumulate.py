"""Streaming accumulation: :class:`LookupCache` (window neighbours reused across the searches of one growing
hypothesis) and :class:`HotwordAccumulator` (the best hit per hotword over one utterance)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import numpy as np

from .hits import HotwordHit, format_hints

__all__ = ["HotwordAccumulator", "LookupCache"]


class LookupCache:
    """Neighbours of the windows already looked up, for repeated searches over one growing hypothesis.

    A stream searches the utterance so far at every partial; earlier words come back with the same windows, whose
    neighbours depend only on the window and the search settings, so only new windows need the graph. Pass the
    same cache to :meth:`HotwordIndex.search` for every search of one utterance; it empties itself when the
    settings or the index change, and keeps at most ``max_windows`` windows.
    """

    def __init__(self, max_windows: int = 4096):
        self.max_windows = max_windows
        self._scope: tuple | None = None
        self._found: dict[bytes, tuple[np.ndarray, np.ndarray]] = {}
        self.lookups = 0  # windows looked up in the graph
        self.reused = 0  # windows answered from the cache

    def take(self, scope: tuple, windows: list[bytes]) -> list[tuple[np.ndarray, np.ndarray] | None]:
        if scope != self._scope:
            self._scope = scope
            self._found.clear()
        return [self._found.get(w) for w in windows]

    def put(self, windows: list[bytes], labels: np.ndarray, dist: np.ndarray) -> None:
        if len(self._found) + len(windows) > self.max_windows:
            self._found.clear()
        for w, lab, d in zip(windows, labels, dist):
            self._found[w] = (lab, d)

    def clear(self) -> None:
        self._scope = None
        self._found.clear()


class HotwordAccumulator:
    """Hits accumulated over one utterance while streaming: the best hit per hotword, in rank order.

    Feed the hits of each chunk's search with :meth:`add` (``offset`` = position of the chunk's hypothesis in the
    utterance, to keep positions utterance-global); read :meth:`hits` / :meth:`hints`; :meth:`reset` between
    utterances.
    """

    def __init__(self, top_k: int = 10):
        self.top_k = top_k  # hints kept per utterance
        self._best: dict[tuple[str, str], HotwordHit] = {}
        self.lookups = LookupCache()  # pass to every search of the utterance

    def add(self, hits: Iterable[HotwordHit], offset: int = 0) -> list[HotwordHit]:
        """Merge hits; returns those that are new or improved."""
        changed = []
        for h in hits:
            if offset:
                h = dataclasses.replace(h, start=h.start + offset, end=h.end + offset)
            key = (h.namespace, h.text.casefold())
            old = self._best.get(key)
            if old is None or h.score > old.score:
                self._best[key] = h
                changed.append(h)
        return changed

    def hits(self) -> list[HotwordHit]:
        ranked = sorted(self._best.values(), key=lambda h: (-h.score, -len(h.phonemes), -h.weight, h.start))
        return ranked[: self.top_k]

    def hints(self) -> list[str]:
        return format_hints(self.hits())

    def reset(self) -> None:
        self._best.clear()
        self.lookups.clear()
