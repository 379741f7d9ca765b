"""The entry table: every indexed entry's id, phonemes, namespace, weight and liveness as flat numpy arrays, by row
(what verification and ranking read; ``entries.g<N>.bin`` on disk, memory-mapped on open: arrayfile.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import HotwordError
from .arrayfile import map_arrays, write_arrays

__all__ = ["EntryTable"]

KIND = "entry-table"
VERSION = 1
_ARRAYS = ("ids", "offsets", "flat", "nphon", "ns", "weight", "live")


@dataclass
class EntryTable:
    """Entry data for verification, by row; ids ascending (store ids are AUTOINCREMENT).

    Saved as ``entries.g<N>.bin`` beside the store; one row per entry ever indexed (removed ones stay, not live).
    A loaded table's arrays are read-only views of the mapped file; :meth:`kill` copies ``live`` before writing.
    """

    ids: np.ndarray  # int64 (R,)
    offsets: np.ndarray  # int64 (R+1,) into flat
    flat: np.ndarray  # uint8 phoneme ids
    nphon: np.ndarray  # int32 phonemes per entry, word boundaries excluded
    ns: np.ndarray  # int16 namespace index
    weight: np.ndarray  # float32
    live: np.ndarray  # bool: False once removed
    namespaces: list[str]
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
        if not self.live.flags.writeable:
            self.live = np.array(self.live)
        self.live[rows] = False
        self._live_counts.clear()

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Rows of store ids; HotwordError if one is not in the table (a damaged index). Needs no memory of its own:
        ids of a table built in one go are consecutive (row = id - first id); otherwise a binary search."""
        ids = np.asarray(ids, np.int64)
        n = len(self.ids)
        if n == 0:
            if len(ids):
                raise HotwordError("search index and entry table disagree (damaged index): rebuild it")
            return np.zeros(0, np.int64)
        first = int(self.ids[0])
        if int(self.ids[-1]) - first == n - 1:
            rows = ids - first
            if len(ids) and (rows.min() < 0 or rows.max() >= n):
                raise HotwordError("search index and entry table disagree (damaged index): rebuild it")
            return rows
        rows = np.minimum(np.searchsorted(self.ids, ids), n - 1)
        if not np.array_equal(self.ids[rows], ids):
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
        self._live_counts.clear()

    def save(self, f) -> None:
        """Write the table (arrayfile.py; no pickled objects) to the open binary file ``f``."""
        write_arrays(f, KIND, {name: getattr(self, name) for name in _ARRAYS},
                     {"version": VERSION, "namespaces": list(self.namespaces)})

    @classmethod
    def load(cls, path: Path) -> EntryTable:
        """Map a table :meth:`save` wrote (nothing read but the header); HotwordError if the file is damaged,
        foreign or inconsistent."""
        arrays, meta = map_arrays(path, KIND)
        if meta.get("version") != VERSION or set(_ARRAYS) - set(arrays) or not isinstance(meta.get("namespaces"), list):
            raise HotwordError(f"entry table {path.name} has version {meta.get('version')} or lacks arrays; "
                               f"expected version {VERSION}")
        dtypes = {"ids": np.int64, "offsets": np.int64, "flat": np.uint8, "nphon": np.int32, "ns": np.int16,
                  "weight": np.float32, "live": np.bool_}
        if any(arrays[k].dtype != dt or arrays[k].ndim != 1 for k, dt in dtypes.items()):
            raise HotwordError(f"entry table {path.name} has arrays of unexpected types")
        e = cls(*(arrays[k] for k in _ARRAYS), [str(s) for s in meta["namespaces"]])
        r = len(e.ids)
        if not (len(e.offsets) == r + 1 and all(len(a) == r for a in (e.nphon, e.ns, e.weight, e.live))
                and e.offsets[-1] == len(e.flat)):
            raise HotwordError(f"entry table {path.name} is inconsistent")
        return e
