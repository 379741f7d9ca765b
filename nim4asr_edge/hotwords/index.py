"""HotwordIndex: the SQLite store plus its derived search files, and retrieval over a CTC phoneme hypothesis.

Directory layout (``DIR``)::

    hotwords.sqlite        the store: durable truth (see store.py)
    index.json             sidecar: generation, space, dim, M, ef, inventory, G2P, embedding, file sizes/sha256
    index.g<N>.hnsw        hnswlib graph over entry embeddings (label = store id)
    matcher.g<N>.bin       Aho-Corasick automaton of entry phoneme strings (exact matches)
    entries.g<N>.npz       entry phonemes, namespaces and weights as arrays (for verification)

Derived files are written to a temporary name, fsynced and renamed, and carry the store generation ``N`` in
their names; the sidecar is replaced last. A crash at any point leaves either the old, complete set (whose
generation no longer matches the store: detected on open) or the new one.

Retrieval (:meth:`HotwordIndex.search`):

1. exact: every entry whose phoneme string occurs between word boundaries in the hypothesis (Aho-Corasick);
2. approximate: for each word start and each window of 1..``max_window_words`` words whose length an accepted hit
   could have, the HNSW neighbours of the window's embedding (hashed phoneme n-grams; identical windows once, all
   in one hnswlib call) are candidates, unless their length alone rules out acceptance;
3. every candidate is verified by edit distance against the hypothesis from the window's start (free end;
   substitutions the CTC head often makes cost less, see costs.py);
   ``score = 1 - cost / phonemes``; approximate hits need ``score >= min_score`` and, by default, a cost within
   the length-aware allowance ``max_cost_per_phoneme * (phonemes - cost_free_phonemes)`` (:class:`SearchOptions`);
4. a hit inside the span of a longer hit with at least its score is dropped (longest match wins: "NIO House"
   over "NIO"); the rest are ranked by score, then length, then weight; the best ``top_k`` are returned.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import hnswlib
import numpy as np

from ..errors import HotwordError
from . import hnsw_layout, hugepages
from .costs import PhonemeCosts, default_costs
from .embed import PAD, EmbeddingSpec, align_scores, embed, nearest
from .g2p import BLANK, G2P, WORD_BOUNDARY, get_g2p
from .matcher import ExactMatcher
from .store import (
    STORE_FILE,
    Entries,
    HotwordEntry,
    HotwordStore,
    ImportReport,
    Skipped,
    iter_entries,
)

if TYPE_CHECKING:  # typing.Self is Python 3.11+; setup.py allows 3.10
    from typing import Self

__all__ = [
    "HotwordAccumulator",
    "HotwordHit",
    "HotwordIndex",
    "IndexOptions",
    "RemoveReport",
    "SearchOptions",
    "format_hints",
]

log = logging.getLogger("nim4asr_edge.hotwords")

SIDECAR = "index.json"
INDEX_FORMAT = "nim4asr-hotword-index"
INDEX_VERSION = 1
MAX_PHONEMES = 64  # longer entries are refused (a hotword, not a sentence)
# A namespace with at most this many entries inside a larger index is searched exactly (numpy) instead of through
# the HNSW graph with a filter, which must walk most of the graph to find a small namespace's neighbours (an
# 84-entry namespace in a 1M index: 45-76 s per 3-s clip filtered, 1.6 ms exactly).
NAMESPACE_EXACT_MAX = 100_000
IMPORT_CHUNK = 20_000  # entries converted to phonemes at a time during an import
RENUMBER_MIN = 50_000  # smaller graphs fit the caches anyway: saved in insertion order
FREE_AT_1M, FREE_PER_DECADE, FREE_MIN, FREE_MAX = 5.5, 1.0, 2.0, 6.5  # cost_free_for (bench/hotwords_size_sweep.py;
# 10M: docs/HOTWORDS.md)


@dataclass(frozen=True)
class IndexOptions:
    """How the derived search files are built; recorded in the sidecar."""

    dim: int = 128  # embedding width; 1 M entries x 128 float32 = 512 MB of vectors
    M: int = 16  # HNSW graph degree
    ef_construction: int = 160  # HNSW build breadth (160 vs 80 at 1M: +0.02 recall at 20 % error at the same ef)
    threads: int = 0  # build threads (0 = all cores)
    ngram_weights: tuple[float, float, float] = (1.0, 1.0, 0.0)  # weight of phoneme 1-, 2-, 3-grams


def cost_free_for(entries: int) -> float:
    """Default free phonemes of the length-aware rule for a search over ``entries`` entries.

    ``5.5 + log10(entries / 1e6)`` within [2, 6.5]: 6.5 from ten million entries, 5.5 at a million, 4.5 at 100,000,
    3.5 at 10,000, 2 up to about 300. Calibrated so that hotword-free speech gets about half a false hint per
    27-word utterance at every list size (``bench/hotwords_size_sweep.py``; docs/HOTWORDS.md).
    """
    decades = np.log10(max(int(entries), 1) / 1e6)
    return float(np.clip(FREE_AT_1M + FREE_PER_DECADE * decades, FREE_MIN, FREE_MAX))


@dataclass(frozen=True)
class SearchOptions:
    """How a hypothesis is searched. Override with ``dataclasses.replace``.

    Acceptance of an approximate hit for an entry of ``n`` phonemes (word boundaries excluded) whose best alignment
    costs ``cost`` edits: ``1 - cost / n >= min_score`` and, unless ``max_cost_per_phoneme`` is None, the
    length-aware rule ``cost <= max_cost_per_phoneme * (n - cost_free_phonemes)``. The first
    ``cost_free_phonemes`` phonemes of an entry earn no error allowance: a short entry matched with two or three
    errors is most often a chance match among a large list, while a long entry with 20-30 % errors rarely is.
    With the defaults at a million entries an entry of 8 phonemes may cost 1.25 (costs are multiples of 0.25: one
    error plus a misplaced word boundary is too much), 12 phonemes 3.25, 20 phonemes 7.25; entries of 6 phonemes or
    fewer are in effect matched exactly only. Substitutions the CTC head often makes cost less than 1 (``costs.py``).

    Chance matches grow with the number of entries searched, so by default (``cost_free_phonemes=None``) the free
    phonemes grow with it too (:func:`cost_free_for`): 5.5 at a million entries, 6.5 at ten million, fewer for a
    short list, which may accept a 7-phoneme name with one error where a million-entry list may not. :meth:`HotwordIndex.search` resolves
    it for the entries it searches (:meth:`for_entries`).
    """

    ef: int = 48  # HNSW search breadth (>= candidates); 1M: recall as 64 for 0.85x the time (bench --ef-sweep)
    candidates: int = 16  # HNSW neighbours taken per window
    max_window_words: int = 4  # windows of 1..this many words start at every word
    min_similarity: float = 0.35  # cosine similarity a neighbour needs to be verified
    min_score: float = 0.6  # 1 - edit cost / entry phonemes an approximate hit needs
    max_cost_per_phoneme: float | None = 0.5  # length-aware rule: allowance per phoneme beyond the free ones
    cost_free_phonemes: float | None = None  # phonemes of each entry that earn no error allowance; None: by size
    max_length_ratio: float = 0.35  # |window - entry| phonemes allowed, relative to the entry's length
    max_verify: int = 400  # most similar (entry, window) candidates verified by edit distance per search
    approx_min_phonemes: int = 5  # entries with fewer phonemes are only matched exactly
    threads: int = 1  # HNSW query threads
    prune: bool = True  # skip windows and candidates whose length rules out acceptance (False: check them all)
    phoneme_costs: bool = True  # the index's substitution costs (see costs.py); False: every substitution costs 1
    exact: bool = True  # run the exact matcher
    approximate: bool = True  # run the HNSW stage

    def __post_init__(self) -> None:
        if self.candidates < 1 or self.ef < self.candidates:
            raise ValueError(f"need 1 <= candidates <= ef, got candidates={self.candidates}, ef={self.ef}")
        if not 0.0 < self.min_score <= 1.0:
            raise ValueError(f"min_score must be in (0, 1], got {self.min_score}")
        if self.max_window_words < 1:
            raise ValueError("max_window_words must be >= 1")
        if self.max_cost_per_phoneme is not None and not 0.0 < self.max_cost_per_phoneme <= 1.0:
            raise ValueError(f"max_cost_per_phoneme must be in (0, 1] or None, got {self.max_cost_per_phoneme}")
        if self.cost_free_phonemes is not None and not 0.0 <= self.cost_free_phonemes < MAX_PHONEMES:
            raise ValueError(f"cost_free_phonemes must be in [0, {MAX_PHONEMES}), got {self.cost_free_phonemes}")

    def for_entries(self, n: int) -> SearchOptions:
        """These options for a search over ``n`` entries: ``cost_free_phonemes`` resolved if it is None."""
        if self.cost_free_phonemes is not None:
            return self
        return dataclasses.replace(self, cost_free_phonemes=cost_free_for(n))

    def max_cost(self, nphon: np.ndarray) -> np.ndarray:
        """Largest edit cost an approximate hit on entries of `nphon` phonemes may have (negative: none)."""
        n = np.asarray(nphon, np.float64)
        limit = (1.0 - self.min_score) * n
        if self.max_cost_per_phoneme is not None:
            if self.cost_free_phonemes is None:
                raise ValueError("cost_free_phonemes is None (by list size): resolve it with for_entries(n) first")
            limit = np.minimum(limit, self.max_cost_per_phoneme * (n - self.cost_free_phonemes))
        return limit

    def span_can_match(self, nphon: np.ndarray) -> np.ndarray:
        """Whether a hypothesis span of `nphon` phonemes can be an approximate hit on an entry of any length.

        Aligning an entry of n phonemes to a span of p costs at least |n - p| (see ``_length_bound``); a hit must
        also pass the window-length filter (``max_length_ratio``) and, when the exact matcher runs, cost at least
        0.5 (a zero-cost alignment is an exact match, found by the exact stage).
        """
        n_e = np.arange(self.approx_min_phonemes, MAX_PHONEMES + 1, dtype=np.float64)
        limit = np.minimum(self.max_cost(n_e), self.max_length_ratio * n_e + 1)
        limit[self.max_cost(n_e) < (0.5 if self.exact else 0.0) - 1e-4] = -1.0
        p = np.asarray(nphon, np.float64)[:, None]
        return (np.abs(p - n_e[None, :]) <= limit[None, :] + 1e-4).any(axis=1)


@dataclass(frozen=True)
class HotwordHit:
    """A hotword found in a phoneme hypothesis."""

    text: str  # the hotword as stored
    score: float  # 1.0 = exact; else 1 - edit cost / entry phonemes
    start: int  # first matched hypothesis position (in the cleaned hypothesis: blanks removed)
    end: int  # one past the last matched position
    method: str  # "exact" (Aho-Corasick) or "approx" (HNSW candidate verified by edit distance)
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


# ------------------------------------------------------------------------------------------- derived arrays
@dataclass
class _Entries:
    """Entry data for verification, by row; ids ascending (store ids are AUTOINCREMENT)."""

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
    def empty(cls) -> _Entries:
        return cls(np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.uint8), np.zeros(0, np.int32),
                   np.zeros(0, np.int16), np.zeros(0, np.float32), np.zeros(0, bool), [])

    def seq(self, row: int) -> np.ndarray:
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
        np.savez(f, ids=self.ids, offsets=self.offsets, flat=self.flat, nphon=self.nphon, ns=self.ns,
                 weight=self.weight, live=self.live, namespaces=np.array(self.namespaces, dtype=str))

    @classmethod
    def load(cls, path: Path) -> _Entries:
        try:
            with np.load(path, allow_pickle=False) as z:
                e = cls(z["ids"], z["offsets"], z["flat"], z["nphon"], z["ns"], z["weight"], z["live"],
                        [str(s) for s in z["namespaces"]])
        except Exception as exc:  # zipfile/numpy raise several types on damaged files
            raise _Stale(f"entry table {path.name} is unreadable ({exc})") from exc
        r = len(e.ids)
        if not (len(e.offsets) == r + 1 and all(len(a) == r for a in (e.nphon, e.ns, e.weight, e.live))
                and e.offsets[-1] == len(e.flat)):
            raise _Stale(f"entry table {path.name} is inconsistent")
        return e


class _Stale(Exception):
    """The derived files do not match the store (reason in the message)."""


def _chunks(items: Iterable, size: int) -> Iterable[list]:
    chunk = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform/filesystem can fsync a directory
        _fsync_file(path)


def _sha256(path: Path) -> str:
    from ..manifest import sha256_file

    return sha256_file(path)


# --------------------------------------------------------------------------------------------- the index
class HotwordIndex:
    """A hotword store with its exact matcher and HNSW index. Thread-compatible: one search at a time per object.

    Create with :meth:`build`, :meth:`open` or :meth:`from_words`; close with :meth:`close` or ``with``.
    """

    def __init__(self, directory: Path, store: HotwordStore, g2p: G2P | None, options: IndexOptions,
                 search_options: SearchOptions | None = None, _tmpdir: str | None = None):
        self.directory = directory
        self._store = store
        self._g2p = g2p
        self.options = options
        self.search_options = search_options or SearchOptions()
        self._tmpdir = _tmpdir
        self.inventory: list[str] = list(store.inventory)
        self._sym = {s: i for i, s in enumerate(self.inventory)}
        self._boundary = self._sym[WORD_BOUNDARY]
        self._blank = self._sym.get(BLANK, -1)
        self._spec = EmbeddingSpec(dim=options.dim, weights=tuple(options.ngram_weights))
        self._entries = _Entries.empty()
        self._hnsw: hnswlib.Index | None = None
        self._matcher = ExactMatcher(self._boundary)
        self._ef = 0
        self._ns_of: dict[int, int] | None = None
        self._ns_exact: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # small namespace -> (embeddings, ids)
        self._costs: PhonemeCosts | None = None
        self._sub_cost: np.ndarray | None = None
        self.set_costs(default_costs(self.inventory))
        self.import_report: ImportReport | None = None  # report of the import that built this index
        self.generation = -1
        self.huge_pages = None  # the thread backing a loaded graph with huge pages, while it runs (hugepages.py)

    # ------------------------------------------------------------------------------------------- factories
    @classmethod
    def build(cls, entries: Entries, out_dir: str | os.PathLike, g2p: G2P | str, inventory: Sequence[str],
              namespace: str = "default", options: IndexOptions | None = None, progress: bool = False,
              overwrite: bool = False) -> HotwordIndex:
        """Create a store in `out_dir` from `entries` and build its search files.

        The import report (skipped lines and why) is in ``index.import_report``.
        """
        _check_inventory(inventory)
        g2p = get_g2p(g2p, inventory) if isinstance(g2p, str) else g2p
        out = Path(out_dir)
        if out.exists() and any(out.iterdir()):
            if not overwrite:
                raise HotwordError(f"{out} is not empty; choose a new directory or pass overwrite")
            if not (out / STORE_FILE).exists():
                raise HotwordError(f"{out} is not a hotword index directory; refusing to overwrite it")
            shutil.rmtree(out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HotwordError(f"cannot create hotword index directory {out}: {exc}") from exc
        store = HotwordStore.create(out / STORE_FILE, inventory, g2p.name)
        self = cls(out, store, g2p, options or IndexOptions())
        try:
            self.import_report = self._import(entries, namespace, progress, incremental=False)
            self._derive_all(progress)
            self._save_derived(renumber=True)
        except OSError as exc:
            self.close()
            raise HotwordError(f"cannot write the hotword index in {out}: {exc}") from exc
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def open(cls, directory: str | os.PathLike, g2p: G2P | str | None = None,
             inventory: Sequence[str] | None = None, on_stale: str = "rebuild", verify: str = "size",
             search_options: SearchOptions | None = None) -> HotwordIndex:
        """Open an index directory.

        inventory: the bundle's phoneme inventory; a store built for another one is refused.
        on_stale: "rebuild" (derived files that do not match the store are rebuilt from it, with a warning) or
        "error" (raise HotwordError). verify: "size" (file sizes) or "full" (sha256 of every derived file).
        g2p: needed only to add entries; by default the store's recorded G2P is created on first use.
        """
        if on_stale not in ("rebuild", "error"):
            raise ValueError(f"on_stale must be 'rebuild' or 'error', not {on_stale!r}")
        if verify not in ("size", "full"):
            raise ValueError(f"verify must be 'size' or 'full', not {verify!r}")
        d = Path(directory)
        if not d.is_dir():
            raise HotwordError(f"no hotword index directory at {d}")
        store = HotwordStore.open(d / STORE_FILE)
        if inventory is not None and list(inventory) != store.inventory:
            store.close()
            raise HotwordError(
                f"hotword store {d} was built for a different phoneme inventory ({len(store.inventory)} symbols, "
                f"G2P {store.g2p_name}) than this model ({len(list(inventory))} symbols); rebuild it from the "
                "hotword list with 'nim4asr-edge hotwords build'")
        if isinstance(g2p, str):
            g2p = get_g2p(g2p, store.inventory)
        if g2p is not None and g2p.name != store.g2p_name:
            store.close()
            raise HotwordError(f"hotword store {d} was built with G2P {store.g2p_name}, not {g2p.name}")
        try:
            sidecar = json.loads((d / SIDECAR).read_text(encoding="utf-8"))
            options = IndexOptions(dim=int(sidecar["dim"]), M=int(sidecar["M"]),
                                   ef_construction=int(sidecar["ef_construction"]),
                                   ngram_weights=tuple(sidecar["embedding"]["weights"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            sidecar, options = None, IndexOptions()
            why = f"sidecar {SIDECAR} is missing or unreadable ({exc})"
        self = cls(d, store, g2p, options, search_options)
        try:
            if sidecar is None:
                raise _Stale(why)
            self._load_derived(sidecar, verify)
        except _Stale as exc:
            if on_stale == "error":
                self.close()
                raise HotwordError(f"hotword index {d} does not match its store: {exc}; reopen with "
                                   "on_stale='rebuild' (CLI: it rebuilds by default) to rebuild it") from None
            log.warning("hotword index %s: %s; rebuilding from the store", d, exc)
            try:
                self._entries = _Entries.empty()
                self._matcher = ExactMatcher(self._boundary)
                self._derive_all(progress=False)
                self._save_derived(renumber=True)
            except OSError as oserr:
                self.close()
                raise HotwordError(f"hotword index {d} is stale ({exc}) and cannot be rebuilt there: "
                                   f"{oserr}") from oserr
            except BaseException:
                self.close()
                raise
        except BaseException:
            self.close()
            raise
        return self

    @classmethod
    def from_words(cls, words: Entries, g2p: G2P | str, inventory: Sequence[str], namespace: str = "default",
                   options: IndexOptions | None = None) -> HotwordIndex:
        """An index over a plain list, in a temporary directory removed on :meth:`close`."""
        tmp = tempfile.mkdtemp(prefix="nim4asr-hotwords-")
        try:
            self = cls.build(words, Path(tmp) / "index", g2p, inventory, namespace,
                             options or IndexOptions(M=12, ef_construction=64))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._tmpdir = tmp
        return self

    # ------------------------------------------------------------------------------------------- lifecycle
    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None  # type: ignore[assignment]
        self._hnsw = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # fallback only; call close()
        with contextlib.suppress(Exception):
            self.close()

    def _require_open(self) -> HotwordStore:
        if self._store is None:
            raise HotwordError("this HotwordIndex is closed")
        return self._store

    @property
    def g2p(self) -> G2P:
        if self._g2p is None:
            self._g2p = get_g2p(self._require_open().g2p_name, self.inventory)
        return self._g2p

    # --------------------------------------------------------------------------------------------- editing
    def add(self, entries: Entries, namespace: str = "default", progress: bool = False) -> ImportReport:
        """Add entries (texts, (text, weight) pairs or a txt/csv path); returns what was added and skipped."""
        self._require_open()
        report = self._import(entries, namespace, progress, incremental=True)
        if report.added or report.updated:
            self._save_derived()
        return report

    def remove(self, texts: Sequence[str] | str, namespace: str = "default") -> RemoveReport:
        """Remove entries by text (case-insensitive); texts not found are listed in the report."""
        store = self._require_open()
        if isinstance(texts, str):
            texts = [texts]
        ids, missing = store.remove(list(texts), namespace)
        if ids:
            rows = self._entries.rows_of(np.asarray(ids, np.int64))
            self._entries.kill(rows)
            self._ns_exact.clear()
            for i in ids:
                self._hnsw.mark_deleted(int(i))
            self._matcher.remove((int(self._entries.ids[r]), self._entries.seq(r)) for r in rows)
            self._matcher.finalize()
            self._save_derived()
        return RemoveReport(len(ids), missing)

    def list(self, namespace: str | None = None, limit: int | None = None) -> list[HotwordEntry]:
        return self._require_open().entries(namespace, limit)

    def export(self, path: str | os.PathLike, namespace: str | None = None) -> int:
        """Write entries as a txt list (``text<TAB>weight``) that :meth:`build` reads back; returns the count."""
        rows = self.list(namespace)
        tmp = Path(str(path) + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(f"# nim4asr-edge hotwords, namespace {namespace or 'all'}, {len(rows)} entries\n")
            f.writelines(f"{e.text}\t{e.weight:g}\n" for e in rows)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return len(rows)

    def stats(self) -> dict:
        store = self._require_open()
        files = {p.name: p.stat().st_size for p in sorted(self.directory.iterdir()) if p.is_file()}
        return {
            "directory": str(self.directory),
            "entries": self._entries.live_count(),
            "namespaces": store.counts(),
            "generation": self.generation,
            "g2p": store.g2p_name,
            "inventory_size": len(self.inventory),
            "exact_patterns": len(self._matcher),
            "hnsw": {"space": "ip", "dim": self.options.dim, "M": self.options.M,
                     "ef_construction": self.options.ef_construction, "ef": self.search_options.ef,
                     "elements": self._hnsw.element_count if self._hnsw is not None else 0},
            "acceptance": {"cost_free_phonemes": self.search_options.for_entries(self._entries.live_count())
                           .cost_free_phonemes, "max_cost_per_phoneme": self.search_options.max_cost_per_phoneme,
                           "phoneme_costs": self._costs.source if self._costs else None},
            "bytes_on_disk": sum(files.values()),
            "files": files,
        }

    # --------------------------------------------------------------------------------------------- import
    def _import(self, entries: Entries, namespace: str, progress: bool, incremental: bool) -> ImportReport:
        store = self._require_open()
        if not namespace or not isinstance(namespace, str):
            raise HotwordError(f"namespace must be a non-empty string, not {namespace!r}")
        report = ImportReport()
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(desc=f"G2P {self.g2p.name}", unit="entry", mininterval=1.0)
        # Converted chunk by chunk as the store inserts them (in its one transaction), so a list of millions never
        # sits in memory as pronunciations.
        rows = (row for chunk in _chunks(iter_entries(entries), IMPORT_CHUNK)
                for row in self._pronounce_chunk(chunk, report, bar))
        try:
            new_ids = store.add(rows, namespace, report)
        finally:
            if bar is not None:
                bar.close()
        report.skipped.sort(key=lambda s: s.line)
        for s in report.skipped:
            log.info("hotword line %d %r skipped: %s", s.line, s.text, s.reason)
        if incremental and (new_ids or report.updated):
            by_id = {}
            if new_ids:
                by_id = {i: (p, ns) for i, ns, p in
                         (r for batch in store.iter_phonemes() for r in batch if r[0] >= new_ids[0])}
                self._append(new_ids, [by_id[i][0].split(" ") for i in new_ids], [by_id[i][1] for i in new_ids],
                             [1.0] * len(new_ids))
                self._matcher.finalize()
            self._refresh_weights()
        return report

    def _pronounce_chunk(self, chunk: list[tuple[int, str, float | None, str | None]], report: ImportReport,
                         bar) -> list[tuple[int, str, float | None, tuple[str, ...]]]:
        """(line, text, weight, phonemes) of a chunk's usable entries; the others go to ``report.skipped``."""
        raw = []
        for line, text, weight, problem in chunk:
            if problem is not None:
                report.skipped.append(Skipped(line, text, problem))
            else:
                raw.append((line, text, weight))
        rows = []
        for (line, text, weight), pron in zip(raw, self.g2p.pronounce([t for _, t, _ in raw])):
            if pron.problem is not None:
                report.skipped.append(Skipped(line, text, pron.problem))
                continue
            bad = [p for p in pron.phonemes if p not in self._sym or p == BLANK]
            if bad:
                report.skipped.append(Skipped(line, text, f"phoneme {bad[0]!r} is not in the inventory"))
                continue
            n = sum(p != WORD_BOUNDARY for p in pron.phonemes)
            if n > MAX_PHONEMES:
                report.skipped.append(Skipped(line, text, f"too long ({n} phonemes, at most {MAX_PHONEMES})"))
                continue
            rows.append((line, pron.text, weight, pron.phonemes))
        if bar is not None:
            bar.update(len(chunk))
        return rows

    def _refresh_weights(self) -> None:
        w = {i: wt for i, (_, wt, _) in self._store.get([int(i) for i in self._entries.ids]).items()} \
            if len(self._entries.ids) < 50_000 else None
        if w is None:
            rows = self._store._conn.execute("SELECT id, weight FROM hotwords ORDER BY id").fetchall()
            w = dict(rows)
        self._entries.weight = np.array([w.get(int(i), 0.0) for i in self._entries.ids], np.float32)

    # -------------------------------------------------------------------------------------- derived files
    def _encode_symbols(self, symbols: Sequence[str]) -> np.ndarray:
        try:
            return np.array([self._sym[s] for s in symbols], np.uint8)
        except KeyError as exc:
            raise HotwordError(f"phoneme {exc.args[0]!r} is not in the index's inventory") from None

    def _append(self, ids: list[int], phonemes: list[Sequence[str]], namespaces: list[str],
                weights: list[float]) -> None:
        self._ns_of = None
        self._ns_exact.clear()
        seqs = [self._encode_symbols(p) for p in phonemes]
        nphon = [int(np.count_nonzero(s != self._boundary)) for s in seqs]
        self._entries.append(ids, seqs, nphon, namespaces, weights)
        vecs = embed(seqs, len(self.inventory), self._spec)
        if self._hnsw is None:
            self._hnsw = hnswlib.Index(space="ip", dim=self.options.dim)
            self._hnsw.init_index(max_elements=max(1024, len(ids)), M=self.options.M,
                                  ef_construction=self.options.ef_construction, random_seed=100)
        need = self._hnsw.element_count + len(ids)
        if need > self._hnsw.get_max_elements():
            self._hnsw.resize_index(max(need, int(self._hnsw.get_max_elements() * 1.5)))
        self._hnsw.add_items(vecs, np.asarray(ids, np.int64), num_threads=self.options.threads or -1)
        self._matcher.add(zip(ids, seqs))  # finalized by the caller: rebuilding the automaton costs O(all entries)

    def _derive_all(self, progress: bool) -> None:
        """(Re)build every derived structure from the store."""
        store = self._require_open()
        self._hnsw = None
        total = sum(store.counts().values())
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="index", unit="entry", mininterval=1.0)
        first = True
        for batch in store.iter_phonemes(batch=100_000):
            ids = [r[0] for r in batch]
            if first:
                self._hnsw = hnswlib.Index(space="ip", dim=self.options.dim)
                before = hugepages.anonymous_mappings()
                self._hnsw.init_index(max_elements=max(1024, total + 1024), M=self.options.M,
                                      ef_construction=self.options.ef_construction, random_seed=100)
                hugepages.advise_new_mappings(before, collapse=False)  # still empty: faults bring huge pages
                first = False
            self._append(ids, [r[2].split(" ") for r in batch], [r[1] for r in batch], [1.0] * len(ids))
            if bar is not None:
                bar.update(len(ids))
        if bar is not None:
            bar.close()
        self._matcher.finalize()
        self._refresh_weights()
        if self._hnsw is None:
            self._hnsw = hnswlib.Index(space="ip", dim=self.options.dim)
            self._hnsw.init_index(max_elements=1024, M=self.options.M, ef_construction=self.options.ef_construction)

    def _renumber(self, path: Path) -> None:
        """Replace the saved graph at ``path`` by its BFS renumbering if that answers the same, and search it.

        Only one graph is in memory at a time (10M entries: 6.6 GB each): the old one answers a sample first and
        is dropped; if the renumbered one answers differently, the original file at ``path`` is loaded back.
        """
        out = path.with_name(path.name + ".bfs")
        if not hnsw_layout.reorder_file(path, out, self.options.dim):
            return
        ids = self._entries.ids[:: max(1, len(self._entries.ids) // 256)]
        sample = np.asarray(self._hnsw.get_items(ids.tolist()), np.float32)
        ef = max(self.search_options.ef, 32)
        self._hnsw.set_ef(ef)
        want = self._hnsw.knn_query(sample, k=10, num_threads=1)
        capacity = self._hnsw.get_max_elements()
        self._hnsw = hnsw = None
        try:
            hnsw = self._load_graph(out, capacity)
            hnsw.set_ef(ef)
            got = hnsw.knn_query(sample, k=10, num_threads=1)
            # the same graph: the same neighbours (labels may swap only between equally distant homophones)
            same = np.array_equal(got[1], want[1]) and np.mean(np.all(got[0] == want[0], axis=1)) >= 0.98
        except RuntimeError:  # unloadable, or fewer than k neighbours found: not the same graph
            same = False
        if same:
            os.replace(out, path)
        else:
            log.warning("renumbered HNSW graph answers differently; keeping insertion order")
            del hnsw
            out.unlink(missing_ok=True)
            hnsw = self._load_graph(path, capacity)
        self._hnsw, self._ef = hnsw, -1

    def _load_graph(self, path: Path, capacity: int) -> hnswlib.Index:
        """A saved graph, backed by huge pages where the system offers them (hugepages.py)."""
        hnsw = hnswlib.Index(space="ip", dim=self.options.dim)
        before = hugepages.anonymous_mappings()
        hnsw.load_index(str(path), max_elements=capacity)
        self.huge_pages = hugepages.advise_new_mappings(before)
        return hnsw

    def _save_derived(self, renumber: bool = False) -> None:
        """Write the derived files for the store's generation. ``renumber`` (after a full build): the HNSW graph is
        saved in breadth-first node order (hnsw_layout.py) and reloaded from that file."""
        store = self._require_open()
        gen = store.generation
        d = self.directory
        names = {"hnsw": f"index.g{gen}.hnsw", "matcher": f"matcher.g{gen}.bin", "entries": f"entries.g{gen}.npz"}
        files = {}
        for kind, name in names.items():
            tmp = d / (name + ".tmp")
            if kind == "hnsw":
                self._hnsw.save_index(str(tmp))
                if renumber and self._hnsw.element_count >= RENUMBER_MIN:
                    self._renumber(tmp)
            elif kind == "matcher":
                self._matcher.save(str(tmp))
            else:
                with open(tmp, "wb") as f:
                    self._entries.save(f)
            _fsync_file(tmp)
            os.replace(tmp, d / name)
            files[kind] = {"name": name, "size": (d / name).stat().st_size, "sha256": _sha256(d / name)}
        sidecar = {
            "format": INDEX_FORMAT, "format_version": INDEX_VERSION, "generation": gen, "space": "ip",
            "dim": self.options.dim, "M": self.options.M, "ef_construction": self.options.ef_construction,
            "ef": self.search_options.ef, "inventory": self.inventory, "g2p": store.g2p_name,
            "embedding": self._spec.to_json(), "count": self._entries.live_count(),
            "elements": int(self._hnsw.element_count), "files": files, "written": time.time(),
        }
        tmp = d / (SIDECAR + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(sidecar, f, ensure_ascii=False, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, d / SIDECAR)
        _fsync_dir(d)
        keep = set(names.values()) | {SIDECAR, STORE_FILE}
        for p in d.iterdir():
            if p.name.startswith(("index.g", "matcher.g", "entries.g")) and p.name not in keep:
                p.unlink(missing_ok=True)
        self.generation = gen

    def _load_derived(self, sidecar: dict, verify: str) -> None:
        store = self._require_open()
        d = self.directory
        if sidecar.get("format") != INDEX_FORMAT or sidecar.get("format_version") != INDEX_VERSION:
            raise _Stale(f"sidecar is not a version-{INDEX_VERSION} {INDEX_FORMAT} file")
        if sidecar.get("generation") != store.generation:
            raise _Stale(f"index generation {sidecar.get('generation')} != store generation {store.generation} "
                         "(the store changed after the index was written, e.g. an interrupted update)")
        if sidecar.get("inventory") != self.inventory:
            raise _Stale("index was built for a different phoneme inventory than its store")
        if sidecar.get("space") != "ip" or EmbeddingSpec.from_json(sidecar["embedding"]) != self._spec:
            raise _Stale("index uses a different space or embedding than this SDK")
        paths = {}
        for kind in ("hnsw", "matcher", "entries"):
            info = sidecar["files"][kind]
            p = d / info["name"]
            if not p.is_file():
                raise _Stale(f"{info['name']} is missing")
            if p.stat().st_size != info["size"]:
                raise _Stale(f"{info['name']} has {p.stat().st_size} bytes, the sidecar says {info['size']} "
                             "(truncated or replaced)")
            if verify == "full" and _sha256(p) != info["sha256"]:
                raise _Stale(f"{info['name']} does not match its sha256 (damaged or replaced)")
            paths[kind] = p
        entries = _Entries.load(paths["entries"])
        try:
            matcher = ExactMatcher.load(str(paths["matcher"]), self._boundary)
        except HotwordError as exc:
            raise _Stale(str(exc)) from None
        try:
            hnsw = self._load_graph(paths["hnsw"], max(1024, int(sidecar["elements"]) + 1024))
        except RuntimeError as exc:
            raise _Stale(f"{paths['hnsw'].name} is unreadable ({exc})") from None
        if hnsw.element_count != sidecar["elements"] or len(entries.ids) != sidecar["elements"]:
            raise _Stale("HNSW element count disagrees with the sidecar")
        if entries.live_count() != sum(store.counts().values()):
            raise _Stale("entry count disagrees with the store")
        self._entries, self._matcher, self._hnsw = entries, matcher, hnsw
        self._ns_of = None
        self._ns_exact.clear()
        self.generation = store.generation

    # ---------------------------------------------------------------------------------------------- search
    @property
    def costs(self) -> PhonemeCosts | None:
        """The verifier's substitution costs (None: every substitution costs 1)."""
        return self._costs

    def set_costs(self, costs: PhonemeCosts | None) -> None:
        """Use ``costs`` (measured for this index's inventory) in verification; None for unit costs."""
        self._sub_cost = None if costs is None else costs.matrix(self.inventory)
        self._costs = costs

    def search_text(self, text: str, top_k: int = 10, namespace: str | None = None,
                    options: SearchOptions | None = None) -> list[HotwordHit]:
        """Phonemise `text` with the store's G2P and :meth:`search` it (for the CLI and tests)."""
        pron = self.g2p.pronounce([text])[0]
        if pron.problem is not None:
            raise HotwordError(f"cannot phonemise the query {text!r}: {pron.problem}")
        return self.search(pron.phonemes, top_k, namespace, options)

    def clean_hypothesis(self, phonemes: Sequence[str]) -> np.ndarray:
        """Inventory ids of a phoneme hypothesis: blanks dropped, repeated/leading/trailing boundaries removed."""
        ids = self._encode_symbols(phonemes) if len(phonemes) else np.zeros(0, np.uint8)
        ids = ids[ids != self._blank] if self._blank >= 0 else ids
        if len(ids):
            b = ids == self._boundary
            keep = ~(b & np.concatenate([[True], b[:-1]]))
            ids = ids[keep]
            if len(ids) and ids[-1] == self._boundary:
                ids = ids[:-1]
        return ids

    def search(self, phonemes: Sequence[str], top_k: int = 10, namespace: str | None = None,
               options: SearchOptions | None = None, cache: LookupCache | None = None) -> list[HotwordHit]:
        """Hotwords in a CTC phoneme hypothesis (inventory symbols, "|" between words).

        Positions in the hits index the hypothesis after :meth:`clean_hypothesis`. ``cache``: reuse the lookups of
        earlier searches over the same growing hypothesis (see :class:`LookupCache`); the hits are the same.
        """
        self._require_open()
        hyp = self.clean_hypothesis(phonemes)
        if len(hyp) == 0 or top_k <= 0 or not self._entries.live_count():
            return []
        ent = self._entries
        ns_id = None
        if namespace is not None:
            if namespace not in ent.namespaces:
                return []
            ns_id = ent.namespaces.index(namespace)
        live = ent.live_count(ns_id)
        opt = (options or self.search_options).for_entries(live)
        # best[row] = (score, start, end, method)
        best: dict[int, tuple[float, int, int, str]] = {}
        if opt.exact:
            self._exact(hyp, ns_id, best)
        if opt.approximate and live:
            self._approximate(hyp, opt, ns_id, live, best, cache)
        return self._rank(best, top_k)

    def _exact(self, hyp: np.ndarray, ns_id: int | None, best: dict[int, tuple[float, int, int, str]]) -> None:
        ent = self._entries
        for start, end, entry_ids in self._matcher.find(hyp):
            for r in ent.rows_of(np.asarray(entry_ids, np.int64)):
                if ent.live[r] and (ns_id is None or ent.ns[r] == ns_id):
                    best[int(r)] = (1.0, start, end, "exact")

    def _windows(self, hyp: np.ndarray, opt: SearchOptions) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Word windows to look up: (phoneme id sequences, start positions, phonemes per window)."""
        b = np.flatnonzero(hyp == self._boundary)
        starts = np.concatenate([[0], b + 1])
        ends = np.concatenate([b, [len(hyp)]])
        seqs, win_start, win_len = [], [], []
        for wi, s in enumerate(starts):
            for c in range(opt.max_window_words):
                if wi + c >= len(starts):
                    break
                e = ends[wi + c]
                n = int(e - s) - c  # phonemes, boundaries excluded
                if n > MAX_PHONEMES + MAX_PHONEMES // 2:
                    break
                if n >= opt.approx_min_phonemes:
                    seqs.append(hyp[s:e])
                    win_start.append(int(s))
                    win_len.append(n)
        win_start_a, win_len_a = np.asarray(win_start, np.int64), np.asarray(win_len, np.int64)
        if opt.prune and seqs:
            # a window whose length no acceptable hit can have would only find hits on other spans from its
            # start, which the windows of those spans look up themselves
            useful = opt.span_can_match(win_len_a)
            seqs = [q for q, u in zip(seqs, useful) if u]
            win_start_a, win_len_a = win_start_a[useful], win_len_a[useful]
        return seqs, win_start_a, win_len_a

    def _approximate(self, hyp: np.ndarray, opt: SearchOptions, ns_id: int | None, live: int,
                     best: dict[int, tuple[float, int, int, str]], cache: LookupCache | None = None) -> None:
        ent = self._entries
        seqs, win_start, win_len = self._windows(hyp, opt)
        if not seqs:
            return
        k = min(opt.candidates, live)
        if k <= 0:
            return
        if self._ef != opt.ef:
            self._hnsw.set_ef(opt.ef)
            self._ef = opt.ef
        # Identical windows (a repeated word or phrase) have the same neighbours: look each up once, in one call.
        first: dict[bytes, int] = {}
        which = np.array([first.setdefault(s.tobytes(), len(first)) for s in seqs], np.int64)
        keys = list(first)
        uniq = [seqs[i] for i in np.unique(which, return_index=True)[1]]
        known = cache.take((id(self._hnsw), self.generation, ns_id, k, opt.ef), keys) if cache is not None \
            else [None] * len(keys)
        todo = [i for i, kn in enumerate(known) if kn is None]
        labels = np.empty((len(keys), k), np.int64)
        dist = np.empty((len(keys), k), np.float32)
        if todo:
            lab, dd = self._lookup(embed([uniq[i] for i in todo], len(self.inventory), self._spec), k, opt, ns_id,
                                   live)
            labels[todo], dist[todo] = lab, dd
            if cache is not None:
                cache.put([keys[i] for i in todo], labels[todo], dist[todo])
                cache.lookups += len(todo)
        for i, kn in enumerate(known):
            if kn is not None:
                labels[i], dist[i] = kn
        if cache is not None:
            cache.reused += len(keys) - len(todo)
        labels, dist = labels[which], dist[which]
        ok = ((1.0 - dist) >= opt.min_similarity) & (labels >= 0)
        if not ok.any():
            return
        win = np.broadcast_to(np.arange(len(seqs))[:, None], labels.shape)[ok]
        rows = ent.rows_of(labels[ok].astype(np.int64))
        sim = (1.0 - dist[ok]).astype(np.float32)
        nph = ent.nphon[rows].astype(np.int64)
        keep = np.abs(win_len[win] - nph) <= opt.max_length_ratio * nph + 1  # a window far from the entry's
        keep &= ent.live[rows] & (nph >= opt.approx_min_phonemes)            # length cannot be its aligned span
        if ns_id is not None:
            keep &= ent.ns[rows] == ns_id
        self._verify(hyp, rows[keep], win_start[win[keep]], sim[keep], opt, best)

    def _lookup(self, vecs: np.ndarray, k: int, opt: SearchOptions, ns_id: int | None,
                live: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest entries of each window vector, in the whole index or in namespace ``ns_id``."""
        ent = self._entries
        if ns_id is None or len(ent.namespaces) == 1:
            return self._knn(vecs, k, opt.threads, None)
        if live <= NAMESPACE_EXACT_MAX:
            return nearest(vecs, *self._namespace_vectors(ns_id), k)
        # a large namespace: the graph with a filter callback finds its members often enough
        if self._ns_of is None:  # label -> namespace
            self._ns_of = dict(zip(ent.ids.tolist(), ent.ns.tolist()))
        ns_of = self._ns_of
        return self._knn(vecs, k, opt.threads, lambda label: ns_of.get(label) == ns_id)

    def _verify(self, hyp: np.ndarray, rows: np.ndarray, st: np.ndarray, sim: np.ndarray, opt: SearchOptions,
                best: dict[int, tuple[float, int, int, str]]) -> None:
        """Verify candidate (entry row, start) pairs, most similar first, and record the accepted ones in ``best``."""
        ent = self._entries
        if len(rows) == 0:
            return
        order = np.argsort(-sim, kind="stable")  # most similar first, then keep the first of each pair
        rows, st = rows[order], st[order]
        _, firsts = np.unique(rows * (len(hyp) + 1) + st, return_index=True)
        keep = np.sort(firsts)
        rows, st = rows[keep], st[keep]
        elen = (ent.offsets[rows + 1] - ent.offsets[rows]).astype(np.int64)
        slack = np.maximum(2, elen // 3)
        tlen = np.minimum(elen + slack, len(hyp) - st)
        if opt.prune:
            feasible = self._length_bound(hyp, rows, st, tlen) <= opt.max_cost(ent.nphon[rows]) + 1e-4
            rows, st, elen, tlen = rows[feasible], st[feasible], elen[feasible], tlen[feasible]
        rows, st, elen, tlen = rows[: opt.max_verify], st[: opt.max_verify], elen[: opt.max_verify], \
            tlen[: opt.max_verify]
        if len(rows) == 0:
            return
        m = int(elen.max())
        idx = ent.offsets[rows][:, None] + np.arange(m)[None, :]
        emat = np.where(np.arange(m)[None, :] < elen[:, None],
                        ent.flat[np.minimum(idx, len(ent.flat) - 1)].astype(np.int64), PAD)
        n = int(tlen.max())
        tidx = st[:, None] + np.arange(n)[None, :]
        tmat = np.where(np.arange(n)[None, :] < tlen[:, None], hyp[np.minimum(tidx, len(hyp) - 1)].astype(np.int64),
                        PAD)
        cost, matched = align_scores(emat, elen, tmat, tlen, self._boundary, word_end=True,
                                     text_is_final=st + tlen >= len(hyp),
                                     sub_cost=self._sub_cost if opt.phoneme_costs else None)
        nphon = np.maximum(ent.nphon[rows], 1)
        score = 1.0 - cost / nphon
        accept = cost <= opt.max_cost(nphon) + 1e-4  # float32 costs are multiples of 0.25: exact
        for r, s, sc, ml, ok in zip(rows.tolist(), st.tolist(), score.tolist(), matched.tolist(), accept.tolist()):
            if not ok:
                continue
            old = best.get(r)
            if old is None or sc > old[0]:
                end = s + ml
                while end > s and hyp[end - 1] == self._boundary:
                    end -= 1
                best[r] = (round(sc, 4), s, end, "approx" if old is None or old[3] != "exact" else "exact")

    def _namespace_vectors(self, ns_id: int) -> tuple[np.ndarray, np.ndarray]:
        """(embeddings, ids) of a namespace's live entries, for its exact search; the last four built are kept."""
        if ns_id not in self._ns_exact:
            ent = self._entries
            rows = np.flatnonzero(ent.live & (ent.ns == ns_id))
            if len(self._ns_exact) >= 4:
                self._ns_exact.pop(next(iter(self._ns_exact)))
            self._ns_exact[ns_id] = (embed([ent.seq(int(r)) for r in rows], len(self.inventory), self._spec),
                                     ent.ids[rows])
        return self._ns_exact[ns_id]

    def _length_bound(self, hyp: np.ndarray, rows: np.ndarray, st: np.ndarray, tlen: np.ndarray) -> np.ndarray:
        """Lower bound on each (entry row, start) pair's verification cost: the phoneme-count difference.

        Every edit that changes the number of phonemes (boundaries excluded) by one costs 1, so aligning an entry
        of n phonemes to a span of p phonemes costs at least |n - p|; the bound is the smallest such difference
        over the spans :func:`align_scores` may end at (word ends within ``tlen`` of the start).
        """
        is_b = hyp == self._boundary
        cum = np.concatenate([[0], np.cumsum(~is_b)])  # phonemes in hyp[:j]
        word_end = np.concatenate([np.flatnonzero(is_b), [len(hyp)]])  # exclusive end of every word
        span = cum[word_end][None, :] - cum[st][:, None]  # (pairs, words): phonemes from the start to each end
        valid = (word_end[None, :] > st[:, None]) & (word_end[None, :] - st[:, None] <= tlen[:, None])
        diff = np.abs(self._entries.nphon[rows].astype(np.int64)[:, None] - span)
        return np.where(valid, diff, MAX_PHONEMES * 4).min(axis=1)

    def _knn(self, vecs: np.ndarray, k: int, threads: int, filt) -> tuple[np.ndarray, np.ndarray]:
        try:
            return self._hnsw.knn_query(vecs, k=k, num_threads=threads, filter=filt)
        except RuntimeError:
            # hnswlib refuses when it finds fewer than k live neighbours for some query: ask row by row.
            labels = np.full((len(vecs), k), -1, np.int64)
            dist = np.full((len(vecs), k), 2.0, np.float32)
            for i, v in enumerate(vecs):
                kk = k
                while kk > 0:
                    try:
                        lab, dd = self._hnsw.knn_query(v[None, :], k=kk, num_threads=1, filter=filt)
                        labels[i, :kk], dist[i, :kk] = lab[0], dd[0]
                        break
                    except RuntimeError:
                        kk //= 2
            return labels, dist

    def _rank(self, best: dict[int, tuple[float, int, int, str]], top_k: int) -> list[HotwordHit]:
        ent = self._entries
        cands = sorted(best.items(), key=lambda kv: (-int(ent.nphon[kv[0]]), -kv[1][0]))
        kept: list[tuple[int, tuple[float, int, int, str]]] = []
        for r, (sc, s, e, how) in cands:
            n = int(ent.nphon[r])
            if any(ks <= s and e <= ke and int(ent.nphon[kr]) > n and ksc >= sc
                   for kr, (ksc, ks, ke, _) in kept):
                continue  # inside a longer, at least as good hit: longest match wins
            kept.append((r, (sc, s, e, how)))
        kept.sort(key=lambda kv: (-kv[1][0], -int(ent.nphon[kv[0]]), -float(ent.weight[kv[0]]), kv[1][1]))
        kept = kept[:top_k]
        info = self._store.get([int(ent.ids[r]) for r, _ in kept])
        hits = []
        for r, (sc, s, e, how) in kept:
            eid = int(ent.ids[r])
            if eid not in info:  # removed from the store by another process since the index was loaded
                continue
            text, weight, ns = info[eid]
            phon = tuple(self.inventory[i] for i in ent.seq(r))
            hits.append(HotwordHit(text, float(sc), s, e, how, phon, float(weight), ns, eid))
        return hits


def _check_inventory(inventory: Sequence[str]) -> None:
    inv = list(inventory)
    if WORD_BOUNDARY not in inv:
        raise HotwordError(f"the phoneme inventory has no word boundary {WORD_BOUNDARY!r}")
    if len(set(inv)) != len(inv):
        raise HotwordError("the phoneme inventory has duplicate symbols")
    if len(inv) > 250:
        raise HotwordError(f"the phoneme inventory has {len(inv)} symbols; at most 250 are supported")
