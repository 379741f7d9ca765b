"""The entry table: every indexed entry's id, phonemes, namespace, weight and liveness as flat numpy arrays, by row
(what verification and ranking read; ``entries.g<N>.npz`` on disk)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HotwordError

__all__ = ["EntryTable"]


@dataclass
class EntryTable:
    """Entry data for verification, by row; ids ascending (store ids are AUTOINCREMENT).

    Saved as ``entries.g<N>.npz`` beside the store; one row per entry ever indexed (removed ones stay, not live).
    """

    ids: np.ndarray  # int64 (R,)
    offsets: np.ndarray  # int64 (R+1,) into flat
    flat: np.ndarray  # uint8 phoneme ids
    nphon: np.ndarray  # int32 phonemes per entry, word boundaries excluded
    ns: np.ndarray  # int16 namespace index
    weight: np.ndarray  # float32
    live: np.ndarray  # bool: False once removed
    namespaces: list[str]
    _row_of: np.ndarray | None = field(default=None, repr=False)  # id -> row (-1: none), built on first use
    _live_counts: dict = field(default_factory=dict, repr=False)  # namespace index (None: all) -> live entries

    @classmethod
    def empty(cls) -> EntryTable:
        return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int32),
                   np.zeros(0, np.int16), np.zeros(0, np.float32), np.zeros(0, bool), [])

    def seq(self, row: int) -> np.ndarray:
        """The phoneme ids of row ``row`` (word boundaries included)."""
        return self.flat[self.offsets[row] : self.offsets[row + 1]]

    def live_count(self, ns: int | None = None) -> int:
        """Live entries, in namespace index ``ns`` or in all; cached (every search asks, at 1M a pass costs ~0.1 ms)."""
        if ns not in self._live_counts:
            self._live_counts[ns] = int(self.live.sum() if ns is None else (self.live & (self.ns == ns)).sum())
        return self._live_counts[ns]

    def kill(self, rows: np.ndarray) -> None:
        """Mark rows removed."""
        self.live[rows] = False
        self._live_counts.clear()

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of store ids; HotwordError if one is not in the table (a damaged index)."""
        top = int(self.ids[-1]) + 1 if len(self.ids) else 0
        if top > 4 * len(self.ids) + (1 << 20):  # ids too sparse (many removals) for a dense map
            rows = np.minimum(np.searchsorted(self.ids, ids), max(len(self.ids) - 1, 0))
            if len(self.ids) == 0 or not np.array_equal(self.ids[rows], ids):
                raise HotwordError("search index and entry table disagree (damaged index): rebuild it")
            return rows
        if self._row_of is None:
            self._row_of = np.full(top, -1, np.int32 if len(self.ids) < 2**31 else np.int64)
            self._row_of[self.ids] = np.arange(len(self.ids))
        ok = (ids >= 0) & (ids < len(self._row_of))
        rows = self._row_of[np.where(ok, ids, 0)] if len(self._row_of) else np.full(len(ids), -1)
        if not ok.all() or (rows < 0).any():
            raise HotwordError("search index and entry table disagree (damaged index): rebuild it")
        return rows.astype(np.int64)

    def append(self, ids, seqs, nphon, ns_names, weights) -> None:
        """Add live rows (ids above every id in the table)."""
        ns_idx = []
        for name in ns_names:
            if name not in self.namespaces:
                self.namespaces.append(name)
            ns_idx.append(self.namespaces.index(name))
        lens = np.array([len(s) for s in seqs], np.int64)
        self.ids = np.concatenate([self.ids, np.asarray(ids, np.int64)])
        self.offsets = np.concatenate([self.offsets, self.offsets[-1] + np.cumsum(lens)])
        self.flat = np.concatenate([self.flat] + [np.asarray(s, np.uint8) for s in seqs])
        self.nphon = np.concatenate([self.nphon, np.asarray(nphon, np.int32)])
        self.ns = np.concatenate([self.ns, np.asarray(ns_idx, np.int16)])
        self.weight = np.concatenate([self.weight, np.asarray(weights, np.float32)])
        self.live = np.concatenate([self.live, np.ones(len(ids), bool)])
        self._row_of = None
        self._live_counts.clear()

    def save(self, f) -> None:
        """Write the table as an npz archive (no pickled objects) to the open binary file ``f``."""
        np.savez(f, ids=self.ids, offsets=self.offsets, flat=self.flat, nphon=self.nphon, ns=self.ns,
                 weight=self.weight, live=self.live, namespaces=np.array(self.namespaces, dtype=str))

    @classmethod
    def load(cls, path: Path) -> EntryTable:
        """Read a table :meth:`save` wrote; HotwordError if the file is unreadable or inconsistent."""
        try:
            with np.load(path, allow_pickle=False) as z:
                e = cls(z["ids"], z["offsets"], z["flat"], z["nphon"], z["ns"], z["weight"], z["live"],
                        [str(s) for s in z["namespaces"]])
        except Exception as exc:  # zipfile/numpy raise several types on damaged files
            raise HotwordError(f"entry table {path.name} is unreadable ({exc})") from exc
        r = len(e.ids)
        if not (len(e.offsets) == r + 1 and all(len(a) == r for a in (e.nphon, e.ns, e.weight, e.live))
                and e.offsets[-1] == len(e.flat)):
            raise HotwordError(f"entry table {path.name} is inconsistent")
        return e
