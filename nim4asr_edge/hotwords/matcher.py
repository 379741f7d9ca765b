"""Exact matching of hotword phoneme strings inside a phoneme hypothesis: sorted pattern hashes in a mapped file.

Every pattern is an entry's phonemes wrapped in word boundaries (``| p1 ... pn |``), so a hotword only matches
whole words: "NIO" does not fire inside "neon". Homophones (different texts, same phonemes) share one pattern
that lists all their ids. A match of a pattern in a hypothesis therefore starts and ends on a word boundary of the
boundary-wrapped hypothesis, and is no longer than the longest pattern: :meth:`ExactMatcher.find` hashes every
such span (a 10-s hypothesis of ~100 phonemes has a few hundred), looks the hashes up by binary search in the
sorted pattern hashes, and compares the phonemes of each hash hit, so a hash collision never makes a false match.
The result is the same as an Aho-Corasick automaton's over the same patterns (matcher_ac.py; tested equal).

On disk (``matcher.g<N>.bin``, arrayfile.py, kind ``exact-matcher``): ``hash`` (uint64, sorted), ``pat_off`` and
``pat`` (each pattern's phoneme ids without the wrapping boundaries), ``id_off`` and ``ids`` (its entry ids,
ascending). About 1 byte per pattern phoneme plus ~24 bytes per pattern; memory-mapped on open, so a search pages
in only the few hundred bytes its lookups touch. Entries added or removed after the file was written are kept
beside it in memory until the next :meth:`save`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import numpy as np

from ..errors import HotwordError
from .arrayfile import map_arrays, write_arrays

__all__ = ["ExactMatcher", "pattern_hashes"]

KIND = "exact-matcher"
VERSION = 1
_BASE = np.uint64(0x100000001B3)  # odd, so invertible modulo 2**64 (prefix hashes below)
_INV = np.uint64(pow(0x100000001B3, -1, 1 << 64))
_MIX = np.uint64(0x9E3779B97F4A7C15)
_CHUNK = 1 << 18  # entries hashed at a time when building (~150 MB of temporaries)


class _Powers:
    """BASE**k and BASE**-k modulo 2**64, grown on demand."""

    def __init__(self) -> None:
        self.pos = np.ones(1, np.uint64)
        self.neg = np.ones(1, np.uint64)

    def upto(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.pos) <= n:
            m = max(n + 1, 2 * len(self.pos))
            with np.errstate(over="ignore"):
                self.pos = np.cumprod(np.full(m, _BASE, np.uint64), dtype=np.uint64) * _INV
                self.neg = np.cumprod(np.full(m, _INV, np.uint64), dtype=np.uint64) * _BASE
        return self.pos, self.neg


_POW = _Powers()


def _finish(h: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Mix the polynomial hash with the span length (boundaries included)."""
    with np.errstate(over="ignore"):
        x = h ^ (length.astype(np.uint64) * _MIX)
        x ^= x >> np.uint64(31)
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(29)
    return x


def pattern_hashes(offsets: np.ndarray, flat: np.ndarray, boundary: int) -> np.ndarray:
    """The hash of each boundary-wrapped pattern ``| flat[offsets[i]:offsets[i+1]] |`` (uint64), as :meth:`find`
    hashes hypothesis spans."""
    offsets = np.asarray(offsets, np.int64)
    lens = np.diff(offsets)
    if len(lens) and lens.min() <= 0:
        raise HotwordError("an exact-matcher pattern is empty")
    out = np.empty(len(lens), np.uint64)
    b = np.uint64(boundary + 1)
    pos, _ = _POW.upto(int(lens.max()) + 2 if len(lens) else 2)
    for lo in range(0, len(lens), _CHUNK):
        hi = min(lo + _CHUNK, len(lens))
        ln = lens[lo:hi]
        seg = flat[offsets[lo] : offsets[hi]].astype(np.uint64) + np.uint64(1)
        start = np.repeat(offsets[lo:hi] - offsets[lo], ln)
        k = np.arange(len(seg), dtype=np.int64) - start  # position inside the pattern
        with np.errstate(over="ignore"):
            terms = seg * pos[np.repeat(ln, ln) - 1 - k]
            inner = np.add.reduceat(terms, (offsets[lo:hi] - offsets[lo]).astype(np.intp)) if len(seg) else terms
            full = b * pos[ln + 1] + inner * _BASE + b  # | inner |
        out[lo:hi] = _finish(full, ln + 2)
    return out


class ExactMatcher:
    """Exact whole-word matches of entry phoneme strings (see the module docstring). Not thread-safe for edits."""

    def __init__(self, boundary: int, arrays: dict[str, np.ndarray] | None = None, max_len: int | None = None):
        """``arrays`` as :meth:`arrays` returns them; ``max_len``: the longest pattern's length plus 2 (computed
        from ``pat_off`` when not given; a mapped file records it, so opening reads no array)."""
        self.boundary = boundary
        a = arrays or _empty_arrays()
        self._hash, self._pat_off, self._pat = a["hash"], a["pat_off"], a["pat"]
        self._id_off, self._ids = a["id_off"], a["ids"]
        if max_len is None:
            max_len = int(np.diff(np.asarray(self._pat_off, np.int64)).max()) + 2 if len(self._hash) else 0
        self._max_len = max_len  # boundaries included
        self._added: dict[bytes, list[int]] = {}  # pattern -> entry ids added since the arrays were made
        self._removed: set[int] = set()  # entry ids removed since then
        self._added_max = 0
        self._count = len(self._hash)  # live patterns

    @classmethod
    def from_entries(cls, boundary: int, ids: np.ndarray, offsets: np.ndarray, flat: np.ndarray,
                     keep: np.ndarray | None = None) -> ExactMatcher:
        """A matcher over entries given as arrays (an EntryTable's ``ids``, ``offsets``, ``flat``; ``keep``: a
        mask of the rows to include). Vectorised: 10M entries in well under a minute."""
        ids = np.asarray(ids, np.int64)
        offsets = np.asarray(offsets, np.int64)
        if keep is not None and not np.all(keep):
            rows = np.flatnonzero(keep)
            lens = np.diff(offsets)[rows]
            new_off = np.concatenate([[0], np.cumsum(lens)])
            ids, offsets, flat = ids[rows], new_off, _gather(np.asarray(flat), offsets[rows], lens)
        return cls(boundary, _group(boundary, ids, offsets, np.asarray(flat, np.uint8)))

    # ------------------------------------------------------------------------------------------------ updates
    def add(self, items: Iterable[tuple[int, np.ndarray]]) -> None:
        """Add (entry id, phoneme ids) pairs; ids above every id added before."""
        for entry_id, seq in items:
            key = np.asarray(seq, np.uint8).tobytes()
            if not key:
                raise HotwordError("an exact-matcher pattern is empty")
            if not self._live_ids(key):
                self._count += 1
            self._added.setdefault(key, []).append(int(entry_id))
            self._added_max = max(self._added_max, len(key) + 2)

    def remove(self, items: Iterable[tuple[int, np.ndarray]]) -> None:
        """Remove (entry id, phoneme ids) pairs; pairs not in the matcher are ignored."""
        for entry_id, seq in items:
            key = np.asarray(seq, np.uint8).tobytes()
            entry_id = int(entry_id)
            added = self._added.get(key)
            before = self._live_ids(key)
            if added is not None and entry_id in added:
                added.remove(entry_id)
                if not added:
                    del self._added[key]
            elif entry_id in self._base_ids(key):
                self._removed.add(entry_id)
            if before and not self._live_ids(key):
                self._count -= 1

    def finalize(self) -> None:
        """Nothing to prepare (kept for the interface the index uses): additions are searchable at once."""

    def __len__(self) -> int:
        """Distinct patterns with at least one entry."""
        return self._count

    # ----------------------------------------------------------------------------------------------- matching
    def find(self, ids: np.ndarray) -> Iterator[tuple[int, int, tuple[int, ...]]]:
        """(start, end, entry ids) of every exact match; positions index `ids`, end exclusive. Ordered by end, then
        longest first (as an Aho-Corasick automaton reports them)."""
        ids = np.asarray(ids)
        max_len = max(self._max_len, self._added_max)
        if len(ids) == 0 or max_len == 0:
            return
        text = np.concatenate([[self.boundary], ids.astype(np.int64), [self.boundary]])
        bpos = np.flatnonzero(text == self.boundary)
        # every span from a boundary to a later one, at most max_len symbols long (boundaries included)
        hi = np.searchsorted(bpos, bpos + max_len - 1, side="right")
        n_after = hi - np.arange(len(bpos)) - 1
        a_i = np.repeat(np.arange(len(bpos)), n_after)
        b_i = a_i + 1 + (np.arange(len(a_i)) - np.repeat(np.cumsum(n_after) - n_after, n_after))
        a, b = bpos[a_i], bpos[b_i]
        found: list[tuple[int, int, tuple[int, ...]]] = []
        if len(self._hash) and len(a):
            pos, neg = _POW.upto(len(text) + 1)
            with np.errstate(over="ignore"):
                c = text.astype(np.uint64) + np.uint64(1)
                # prefix[i] = sum_{k<i} c_k BASE^(i-1-k), from a cumulative sum of c_k BASE^-k
                prefix = np.zeros(len(c) + 1, np.uint64)
                prefix[1:] = np.cumsum(c * neg[: len(c)], dtype=np.uint64) * pos[: len(c)]
                length = (b - a + 1).astype(np.int64)
                h = _finish(prefix[b + 1] - prefix[a] * pos[length], length)
            lo = np.searchsorted(self._hash, h)
            hit = np.flatnonzero(lo < len(self._hash))
            hit = hit[self._hash[lo[hit]] == h[hit]]
            for j in hit:
                span = text[a[j] + 1 : b[j]].astype(np.uint8).tobytes()
                g = int(lo[j])
                while g < len(self._hash) and self._hash[g] == h[j]:
                    if self._pat[self._pat_off[g] : self._pat_off[g + 1]].tobytes() == span:
                        found.append((int(a[j]), int(b[j]) - 1, self._group_ids(g, span)))
                        break
                    g += 1
        if self._added:
            seen = {(s, e) for s, e, _ in found}
            for s, e in zip(a.tolist(), b.tolist()):
                if e - s + 1 <= self._added_max and (s, e - 1) not in seen:
                    span = text[s + 1 : e].astype(np.uint8).tobytes()
                    if span in self._added:
                        found.append((s, e - 1, self._live_ids(span)))
        found = [f for f in found if f[2]]
        found.sort(key=lambda f: (f[1], f[0]))
        yield from found

    def _base_ids(self, key: bytes) -> list[int]:
        """Entry ids of pattern ``key`` in the arrays (removals not applied)."""
        if not len(self._hash):
            return []
        seq = np.frombuffer(key, np.uint8)
        h = pattern_hashes(np.array([0, len(seq)]), seq, self.boundary)[0]
        g = int(np.searchsorted(self._hash, h))
        while g < len(self._hash) and self._hash[g] == h:
            if self._pat[self._pat_off[g] : self._pat_off[g + 1]].tobytes() == key:
                return self._ids[self._id_off[g] : self._id_off[g + 1]].tolist()
            g += 1
        return []

    def _group_ids(self, g: int, key: bytes) -> tuple[int, ...]:
        ids = self._ids[self._id_off[g] : self._id_off[g + 1]].tolist()
        if self._removed:
            ids = [i for i in ids if i not in self._removed]
        return tuple(ids + self._added.get(key, []))

    def _live_ids(self, key: bytes) -> tuple[int, ...]:
        base = [i for i in self._base_ids(key) if i not in self._removed]
        return tuple(base + self._added.get(key, []))

    # ------------------------------------------------------------------------------------------- persistence
    def arrays(self) -> dict[str, np.ndarray]:
        """The matcher as the arrays :meth:`save` writes, edits since it was made merged in."""
        if not self._added and not self._removed:
            return {"hash": self._hash, "pat_off": self._pat_off, "pat": self._pat, "id_off": self._id_off,
                    "ids": self._ids}
        # one row per (entry, pattern): the arrays' groups expanded, removals dropped, additions appended
        counts = np.diff(np.asarray(self._id_off, np.int64))
        group = np.repeat(np.arange(len(self._hash)), counts)
        ids = np.asarray(self._ids, np.int64)
        keep = ~np.isin(ids, np.fromiter(self._removed, np.int64, len(self._removed)))
        group, ids = group[keep], ids[keep]
        pat_off = np.asarray(self._pat_off, np.int64)
        lens = np.diff(pat_off)[group]
        offsets = np.concatenate([[0], np.cumsum(lens)])
        flat = np.asarray(self._pat)[np.repeat(pat_off[group] - offsets[:-1], lens)
                                     + np.arange(int(offsets[-1]), dtype=np.int64)]
        add_ids = [i for v in self._added.values() for i in v]
        add_seqs = [np.frombuffer(k, np.uint8) for k, v in self._added.items() for _ in v]
        if add_ids:
            add_lens = np.array([len(s) for s in add_seqs], np.int64)
            ids = np.concatenate([ids, np.asarray(add_ids, np.int64)])
            offsets = np.concatenate([offsets, offsets[-1] + np.cumsum(add_lens)])
            flat = np.concatenate([flat, *add_seqs])
        return _group(self.boundary, ids, offsets, flat)

    def save(self, path: str | os.PathLike) -> None:
        """Write the matcher (edits merged) to ``path`` (arrayfile.py)."""
        a = self.arrays()
        max_len = int(np.diff(np.asarray(a["pat_off"], np.int64)).max()) + 2 if len(a["hash"]) else 0
        with open(path, "wb") as f:
            write_arrays(f, KIND, a, {"version": VERSION, "boundary": self.boundary, "max_len": max_len,
                                      "patterns": len(self)})

    @classmethod
    def load(cls, path: str | os.PathLike, boundary: int) -> ExactMatcher:
        """Map a file :meth:`save` wrote; HotwordError if it is damaged, foreign or for another boundary id."""
        arrays, meta = map_arrays(path, KIND)
        if meta.get("version") != VERSION or meta.get("boundary") != boundary:
            raise HotwordError(f"exact matcher file {os.fspath(path)} has version {meta.get('version')} and "
                               f"boundary {meta.get('boundary')}; expected {VERSION} and {boundary}")
        names = ("hash", "pat_off", "pat", "id_off", "ids")
        if set(names) - set(arrays):
            raise HotwordError(f"exact matcher file {os.fspath(path)} lacks arrays {sorted(set(names) - set(arrays))}")
        p = len(arrays["hash"])
        if not (len(arrays["pat_off"]) == p + 1 == len(arrays["id_off"])
                and int(arrays["pat_off"][-1]) == len(arrays["pat"]) and int(arrays["id_off"][-1]) == len(arrays["ids"])):
            raise HotwordError(f"exact matcher file {os.fspath(path)} is inconsistent")
        if not isinstance(meta.get("max_len"), int):
            raise HotwordError(f"exact matcher file {os.fspath(path)} does not record its longest pattern")
        return cls(boundary, arrays, meta["max_len"])


def _empty_arrays() -> dict[str, np.ndarray]:
    return {"hash": np.zeros(0, np.uint64), "pat_off": np.zeros(1, np.uint32), "pat": np.zeros(0, np.uint8),
            "id_off": np.zeros(1, np.uint32), "ids": np.zeros(0, np.uint32)}


def _narrow(a: np.ndarray) -> np.ndarray:
    """uint32 when every value fits (offsets and ids of up to 4G), else int64."""
    return a.astype(np.uint32) if (len(a) == 0 or (a.min() >= 0 and a.max() < 2**32)) else a.astype(np.int64)


def _group(boundary: int, ids: np.ndarray, offsets: np.ndarray, flat: np.ndarray) -> dict[str, np.ndarray]:
    """Sorted, grouped arrays from one row per (entry id, pattern)."""
    if len(ids) == 0:
        return _empty_arrays()
    h = pattern_hashes(offsets, flat, boundary)
    order = np.lexsort((ids, h))
    h, ids = h[order], ids[order]
    starts, lens = offsets[:-1][order], np.diff(offsets)[order]
    new_group = np.concatenate([[True], h[1:] != h[:-1]])
    # rows with the hash of the row before: the same pattern (homophones), unless the hash collides
    for j in np.flatnonzero(~new_group):
        if not (lens[j] == lens[j - 1]
                and np.array_equal(flat[starts[j] : starts[j] + lens[j]], flat[starts[j - 1] : starts[j - 1] + lens[j - 1]])):
            new_group[j] = True
    if np.count_nonzero(~new_group) and not _runs_contiguous(flat, h, starts, lens, new_group):
        # a collision split a run into interleaved patterns: order each run by its phonemes, then regroup
        keys = [flat[s : s + n].tobytes() for s, n in zip(starts, lens)]
        order = sorted(range(len(h)), key=lambda i: (int(h[i]), keys[i], int(ids[i])))
        h, ids, starts, lens = h[order], ids[order], starts[order], lens[order]
        new_group = np.array([i == 0 or h[i] != h[i - 1] or keys[order[i]] != keys[order[i - 1]]
                              for i in range(len(h))])
    first = np.flatnonzero(new_group)
    g_lens = lens[first]
    pat_off = np.concatenate([[0], np.cumsum(g_lens)])
    pat = _gather(flat, starts[first], g_lens)
    id_off = np.concatenate([first, [len(ids)]])
    return {"hash": h[first], "pat_off": _narrow(pat_off), "pat": pat.astype(np.uint8), "id_off": _narrow(id_off),
            "ids": _narrow(ids)}


def _gather(flat: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """``flat[starts[i] : starts[i] + lens[i]]`` concatenated, in chunks (bounded temporaries at 10M entries)."""
    out = np.empty(int(lens.sum()), np.uint8)
    pos = 0
    for lo in range(0, len(lens), _CHUNK):
        ln = lens[lo : lo + _CHUNK]
        n = int(ln.sum())
        rel = np.concatenate([[0], np.cumsum(ln)[:-1]])
        out[pos : pos + n] = flat[np.repeat(starts[lo : lo + _CHUNK] - rel, ln) + np.arange(n, dtype=np.int64)]
        pos += n
    return out


def _runs_contiguous(flat, h, starts, lens, new_group) -> bool:
    """Whether, within each run of equal hashes, every pattern's rows are adjacent (always, barring collisions)."""
    run_start = np.concatenate([[True], h[1:] != h[:-1]])
    multi = np.flatnonzero(new_group & ~run_start)  # a new pattern inside a run: a collision
    if not len(multi):
        return True
    for j in multi:
        r = j
        while not run_start[r]:
            r -= 1
        seen = set()
        for i in range(r, len(h)):
            if i > r and run_start[i]:
                break
            key = flat[starts[i] : starts[i] + lens[i]].tobytes()
            if new_group[i] and key in seen:
                return False
            seen.add(key)
    return True
