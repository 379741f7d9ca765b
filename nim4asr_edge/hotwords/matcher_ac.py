"""The exact matcher of index format version 1 (Aho-Corasick, pyahocorasick), kept as the reference the compact
matcher (matcher.py) is tested and benchmarked against; the index no longer uses it. Needs ``pyahocorasick``
(``pip install 'nim4asr-edge[dev]'``).

Each inventory symbol becomes one character (``chr(0x100 + index)``), and every pattern is the entry's phonemes
wrapped in word boundaries, so a hotword only matches whole words: "NIO" does not fire inside "neon". Homophones
(different texts, same phonemes) share one pattern whose value lists all their ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from ..errors import HotwordError

__all__ = ["AhoCorasickMatcher"]

_CHAR0 = 0x100  # symbol i -> chr(_CHAR0 + i): printable, outside ASCII, one code point per phoneme


def _key(ids: np.ndarray, boundary: int) -> str:
    b = chr(_CHAR0 + boundary)
    return b + "".join(chr(_CHAR0 + int(i)) for i in ids) + b


class AhoCorasickMatcher:
    """Owns one pyahocorasick automaton; values are (pattern length, tuple of entry ids)."""

    def __init__(self, boundary: int, automaton=None):
        self.boundary = boundary
        self._a = automaton if automaton is not None else _ahocorasick().Automaton()
        self._dirty = automaton is None

    # ------------------------------------------------------------------------------------------------ updates
    def add(self, items: Iterable[tuple[int, np.ndarray]]) -> None:
        for entry_id, ids in items:
            key = _key(ids, self.boundary)
            old = self._a.get(key, None)
            self._a.add_word(key, (len(key), (old[1] if old else ()) + (int(entry_id),)))
        self._dirty = True

    def remove(self, items: Iterable[tuple[int, np.ndarray]]) -> None:
        for entry_id, ids in items:
            key = _key(ids, self.boundary)
            old = self._a.get(key, None)
            if old is None:
                continue
            rest = tuple(i for i in old[1] if i != entry_id)
            if rest:
                self._a.add_word(key, (old[0], rest))
            else:
                self._a.remove_word(key)
        self._dirty = True

    def finalize(self) -> None:
        if self._dirty:
            self._a.make_automaton()
            self._dirty = False

    def __len__(self) -> int:
        return len(self._a)

    # ----------------------------------------------------------------------------------------------- matching
    def find(self, ids: np.ndarray) -> Iterator[tuple[int, int, tuple[int, ...]]]:
        """(start, end, entry ids) of every exact match; positions index `ids`, end exclusive."""
        if self._dirty:
            self.finalize()
        if len(self._a) == 0 or len(ids) == 0:
            return
        text = _key(ids, self.boundary)
        for end_char, (length, entry_ids) in self._a.iter(text):
            # text[k] is ids[k-1]; the pattern spans text[end_char-length+1 .. end_char], boundaries included
            start = end_char - length + 1  # the leading boundary, i.e. ids[start-1] or the padding
            yield start, end_char - 1, entry_ids

    # ------------------------------------------------------------------------------------------- persistence
    def save(self, path: str) -> None:
        """pyahocorasick's own file format; values as int64 arrays (no pickle: loading runs no code)."""
        self.finalize()
        self._a.save(str(path), _serialize)

    @classmethod
    def load(cls, path: str, boundary: int) -> AhoCorasickMatcher:
        try:
            automaton = _ahocorasick().load(str(path), _deserialize)
        except (ValueError, OSError, MemoryError) as exc:
            raise HotwordError(f"exact matcher file {path} is damaged or foreign: {exc}") from exc
        return cls(boundary, automaton)


def _serialize(value: tuple[int, tuple[int, ...]]) -> bytes:
    return np.array([value[0], *value[1]], np.int64).tobytes()


def _deserialize(data: bytes) -> tuple[int, tuple[int, ...]]:
    arr = np.frombuffer(data, np.int64)
    if len(arr) < 2:
        raise ValueError("matcher value too short")
    return int(arr[0]), tuple(int(x) for x in arr[1:])



def _ahocorasick():
    from ..errors import require

    return require("ahocorasick", "dev")
