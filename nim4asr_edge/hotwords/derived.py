"""The derived search state of a :class:`~.index.HotwordIndex`: building it from the store, writing it, opening it.

:class:`DerivedState` (inherited by ``HotwordIndex``, after :class:`~.search.IndexSearch`) owns the entry table,
the exact matcher, the HNSW graph and the phoneme trie: :meth:`~DerivedState._derive_all` builds them from the store,
:meth:`~DerivedState._append` adds new entries, :meth:`~DerivedState._save_derived` writes them (files.py) and maps
the written matcher, entry table and trie back, so that after a build or an edit, as after an open, only the graph
lives in anonymous memory.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import files, graph
from .embed import embed
from .entries import EntryTable
from .matcher import ExactMatcher
from .search import IndexSearch
from .trie import PhonemeTrie

__all__ = ["COMPACT_FROM", "COMPACT_OPTIONS", "DerivedState"]

log = logging.getLogger("nim4asr_edge.hotwords")

# A build with default options over at least COMPACT_FROM entries uses COMPACT_OPTIONS: hnswlib keeps every vector
# as float32 with 2*M level-0 links, 4 + 8 M + 4 dim + 8 bytes per entry (dim 128, M 16: 652 bytes, 6.5 GB at 10M);
# dim 64, M 12: 364 bytes (3.6 GB at 10M). Measured: bench/hotwords_compact.py hnsw (docs/HOTWORDS.md).
COMPACT_FROM = 2_000_000
COMPACT_OPTIONS = {"dim": 64, "M": 12, "ef_construction": 120}
DERIVE_BATCH = 100_000  # entries read from the store and added to the graph at a time


class DerivedState(IndexSearch):
    """Building, writing and opening the derived files; the state is set up by ``HotwordIndex.__init__``."""

    directory: Path
    huge_pages: object
    options_by_size: bool = False  # the options were not chosen by the caller: a large build uses COMPACT_OPTIONS

    def _refresh_weights(self) -> None:
        """Entry weights from the store (they change without a new pronunciation)."""
        ids = self._entries.ids
        if len(ids) < 50_000:
            w = self._store.weights([int(i) for i in ids])
            self._entries.weight = np.array([w.get(int(i), 0.0) for i in ids], np.float32)
            return
        store_ids, weights = self._store.weight_arrays()
        pos = np.minimum(np.searchsorted(store_ids, ids), max(len(store_ids) - 1, 0))
        found = (store_ids[pos] == ids) if len(store_ids) else np.zeros(len(ids), bool)
        self._entries.weight = np.where(found, weights[pos] if len(store_ids) else 0.0, 0.0).astype(np.float32)

    def _append(self, ids: list[int], phonemes: list[Sequence[str]], namespaces: list[str],
                weights: list[float], matcher: bool = True) -> None:
        """Add entries to the entry table, the graph and (``matcher``) the exact matcher."""
        self._ns_of = None
        self._ns_exact.clear()
        seqs = [self._encode_symbols(p) for p in phonemes]
        nphon = [int(np.count_nonzero(s != self._boundary)) for s in seqs]
        self._entries.append(ids, seqs, nphon, namespaces, weights)
        vecs = embed(seqs, len(self.inventory), self._spec)
        g = self._graph()
        if g is None:
            g = self._hnsw = graph.new_graph(self.options, max(1024, len(ids)))
        need = g.element_count + len(ids)
        if need > g.get_max_elements():
            g.resize_index(max(need, int(g.get_max_elements() * 1.5)))
        g.add_items(vecs, np.asarray(ids, np.int64), num_threads=self.options.threads or -1)
        if matcher:
            self._matcher.add(zip(ids, seqs))

    def _derive_all(self, progress: bool) -> None:
        """(Re)build every derived structure from the store."""
        store = self._require_open()
        self._hnsw, self._graph_loader = None, None
        self._entries = EntryTable.empty()
        total = sum(store.counts().values())
        if self.options_by_size and total >= COMPACT_FROM:
            self.options = dataclasses.replace(self.options, **COMPACT_OPTIONS)
            self._spec = dataclasses.replace(self._spec, dim=self.options.dim)
            log.info("%d entries: building with %s to keep the graph small", total, COMPACT_OPTIONS)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="index", unit="entry", mininterval=1.0)
        for batch in store.iter_phonemes(batch=DERIVE_BATCH):
            ids = [r[0] for r in batch]
            if self._hnsw is None:
                self._hnsw = graph.new_graph(self.options, max(1024, total + 1024), huge_pages=True)
            self._append(ids, [r[2].split(" ") for r in batch], [r[1] for r in batch], [1.0] * len(ids),
                         matcher=False)
            if bar is not None:
                bar.update(len(ids))
        if bar is not None:
            bar.close()
        ent = self._entries
        self._matcher = ExactMatcher.from_entries(self._boundary, ent.ids, ent.offsets, ent.flat, ent.live)
        self._refresh_weights()
        if self._hnsw is None:
            self._hnsw = graph.new_graph(self.options, 1024)

    def _save_derived(self, renumber: bool = False) -> None:
        """Write the derived files for the store's generation (files.py), then map the written matcher and entry
        table in place of the in-memory ones. ``renumber`` (after a full build of a large graph: index.py decides):
        the graph is saved in breadth-first node order (hnsw_layout.py) and reloaded from that file."""
        store = self._require_open()
        gen = store.generation

        self._graph()  # an opened index loads its graph to write it again (no reference kept: _renumber drops it)

        def write_graph(path: Path) -> None:
            self._hnsw.save_index(str(path))
            if renumber:
                self._renumber(path)

        ent = self._entries
        trie = PhonemeTrie.build(ent.offsets, ent.flat, np.flatnonzero(ent.live), self._boundary)
        files.save_derived(self.directory, gen, write_graph, self._matcher, ent, trie, options=self.options,
                           ef=self.search_options.ef, inventory=self.inventory, g2p_name=store.g2p_name,
                           spec=self._spec, elements=self._hnsw.element_count)
        names = files.derived_names(gen)
        self._entries = EntryTable.load(self.directory / names["entries"])
        self._matcher = ExactMatcher.load(self.directory / names["matcher"], self._boundary)
        self._set_trie(PhonemeTrie.load(self.directory / names["trie"]))
        self.generation = gen

    def _renumber(self, path: Path) -> None:
        """Replace the saved graph at ``path`` by its BFS renumbering if that answers the same, and search it.

        At most one graph is in memory at a time (10M entries: several GB each), and none while the file is copied:
        the old one answers a sample first and is dropped; if the renumbered one answers differently, or the layout
        is not one hnsw_layout.py knows, the original file at ``path`` is loaded back.
        """
        expected = graph.probe(self._hnsw, self._entries.ids, max(self.search_options.ef, 32))
        capacity = self._hnsw.get_max_elements()
        self._hnsw = None
        renumbered = graph.renumbered_copy(path, self.options.dim)
        if renumbered is None:
            self._hnsw, self.huge_pages = graph.load_graph(path, self.options.dim, capacity)
        else:
            self._hnsw, self.huge_pages = graph.adopt_renumbered(path, renumbered, expected, self.options.dim,
                                                                 capacity)
        self._ef = -1

    def _load_derived(self, sidecar: dict, verify: str) -> None:
        store = self._require_open()
        self._entries, self._matcher, loader, trie = files.load_derived(
            self.directory, sidecar, verify, store, self.inventory, self._spec, self._boundary)
        self._hnsw, self._graph_loader = None, loader
        self._trie = None
        if trie is not None:
            self._set_trie(trie)
        self._ns_of = None
        self._ns_exact.clear()
        self.generation = store.generation
