"""Retrieval over a CTC phoneme hypothesis: :class:`IndexSearch`, the search half of :class:`~.index.HotwordIndex`.

1. exact: every entry whose phoneme string occurs between word boundaries in the hypothesis (matcher.py);
2. approximate: for each word start and each window of 1..``max_window_words`` words whose length an accepted hit
   could have, the HNSW neighbours of the window's embedding (hashed phoneme n-grams; identical windows once, all
   in one hnswlib call) are candidates, unless their length alone rules out acceptance.
   With CTC log-posteriors the posterior verifier also takes candidates from the posteriors themselves
   (``SearchOptions.posterior_candidates``): token passing over the phoneme trie of the entries (trie.py) finds every
   entry whose keyword path stays within the acceptance rule and the prefix beam; from 500,000 entries by default
   it replaces the windows (whose graph is then never loaded);
3. every candidate is verified (:mod:`.verifiers`), by one of two verifiers (``SearchOptions.verifier``):
   *greedy*, the edit distance against the hypothesis from the window's start (free end; substitutions the CTC
   head often makes cost less, see costs.py and verify.py), ``score = 1 - cost / phonemes``, accepted within the
   length-aware allowance ``max_cost_per_phoneme * (phonemes - cost_free_phonemes)``; or *posterior*, the CTC
   keyword cost of the entry over the log-posteriors of the frames around the window (ctc_score.py; one-hot
   "posteriors" of the symbols for a bare phoneme string), accepted by the same list-size rule in units of
   ``frame_cap`` (:meth:`~.options.SearchOptions.max_keyword_cost`);
4. a hit inside the span of a longer hit with at least its score is dropped (longest match wins: "NIO House"
   over "NIO"); the rest are ranked by score, then length, then weight; the best ``top_k`` are returned.

:class:`IndexSearch` reads the state :class:`~.index.HotwordIndex` owns (entry table, graph, matcher, store) and
changes only its caches. Besides :meth:`IndexSearch.search` it offers a few hooks for benchmarks and experiments
(:meth:`~IndexSearch.windows`, :meth:`~IndexSearch.embed_sequences`, :meth:`~IndexSearch.graph_knn`,
:meth:`~IndexSearch.set_neighbour_lookup`, :meth:`~IndexSearch.search_candidates`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

import hnswlib
import numpy as np

from ..errors import HotwordError
from . import graph
from .accumulate import LookupCache
from .costs import PhonemeCosts
from .ctc_score import ONE_HOT_GAP, one_hot_logprobs
from .embed import EmbeddingSpec, embed, nearest
from .entries import EntryTable
from .g2p import G2P
from .graph import KnnFn
from .hits import HotwordHit
from .matcher import ExactMatcher
from .options import MAX_PHONEMES, SearchOptions
from .store import HotwordStore
from .trie import PhonemeTrie, trie_keyword_search
from .verifiers import (
    Best,
    FrameEvidence,
    frame_evidence,
    length_bound,
    record_keyword_hits,
    verify_greedy,
    verify_posterior,
)

__all__ = ["NAMESPACE_EXACT_MAX", "IndexSearch"]

# A namespace with at most this many entries inside a larger index is searched exactly (numpy) instead of through
# the HNSW graph with a filter, which must walk most of the graph to find a small namespace's neighbours (an
# 84-entry namespace in a 1M index: 45-76 s per 3-s clip filtered, 1.6 ms exactly).
NAMESPACE_EXACT_MAX = 100_000

class IndexSearch:
    """Search over the state of a :class:`~.index.HotwordIndex`, which inherits it and owns that state."""

    # the state HotwordIndex sets up (see its __init__)
    inventory: list[str]
    search_options: SearchOptions
    generation: int
    _store: HotwordStore
    _sym: dict[str, int]
    _boundary: int
    _blank: int
    _spec: EmbeddingSpec
    _entries: EntryTable
    _hnsw: hnswlib.Index | None  # None until first needed when opened (_graph)
    _graph_loader: Callable[[], tuple[hnswlib.Index, object]] | None  # loads the saved graph (files.load_derived)
    _graph_lock: threading.Lock
    huge_pages: object
    _matcher: ExactMatcher
    _ef: int  # the ef the graph was last set to
    _ns_of: dict[int, int] | None  # label -> namespace index, for the filtered graph search
    _ns_exact: dict[int, tuple[np.ndarray, np.ndarray]]  # small namespace -> (embeddings, ids)
    _costs: PhonemeCosts | None
    _sub_cost: np.ndarray | None
    _neighbour_lookup: KnnFn | None = None  # replaces the graph in the approximate stage (set_neighbour_lookup)
    _trie: tuple[tuple[int, int], PhonemeTrie] | None = None  # (entry table identity, rows) -> its live entries' trie

    @property
    def g2p(self) -> G2P:
        raise NotImplementedError  # HotwordIndex

    def _require_open(self) -> HotwordStore:
        raise NotImplementedError  # HotwordIndex

    def _graph(self) -> hnswlib.Index | None:
        """The HNSW graph, loaded from its file on first use after opening (a search with CTC posteriors over a
        large index takes candidates from the trie and never needs it)."""
        if self._hnsw is None and self._graph_loader is not None:
            with self._graph_lock:
                if self._hnsw is None and self._graph_loader is not None:
                    self._hnsw, self.huge_pages = self._graph_loader()
                    self._graph_loader = None
                    self._ef = -1
        return self._hnsw

    def _encode_symbols(self, symbols: Sequence[str]) -> np.ndarray:
        """Inventory ids of phoneme symbols (uint8)."""
        try:
            return np.array([self._sym[s] for s in symbols], np.uint8)
        except KeyError as exc:
            raise HotwordError(f"phoneme {exc.args[0]!r} is not in the index's inventory") from None

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
        return ids[self._kept(ids)]

    def _kept(self, ids: np.ndarray) -> np.ndarray:
        """Positions of ``ids`` that :meth:`clean_hypothesis` keeps."""
        pos = np.flatnonzero(ids != self._blank) if self._blank >= 0 else np.arange(len(ids))
        if len(pos):
            b = ids[pos] == self._boundary
            pos = pos[~(b & np.concatenate([[True], b[:-1]]))]
            if len(pos) and ids[pos[-1]] == self._boundary:
                pos = pos[:-1]
        return pos

    def search(self, phonemes: Sequence[str], top_k: int = 10, namespace: str | None = None,
               options: SearchOptions | None = None, cache: LookupCache | None = None,
               logprobs: np.ndarray | None = None) -> list[HotwordHit]:
        """Hotwords in a CTC phoneme hypothesis (inventory symbols, "|" between words).

        Positions in the hits index the hypothesis after :meth:`clean_hypothesis`. ``cache``: reuse the lookups of
        earlier searches over the same growing hypothesis (see :class:`LookupCache`); the hits are the same.
        ``logprobs``: the CTC log-posteriors ``(frames, classes)`` (classes in the index's inventory order) whose
        greedy path ``phonemes`` is; with them the posterior verifier runs by default (``SearchOptions.verifier``).
        Without them, ``verifier="posterior"`` scores one-hot "posteriors" of ``phonemes`` (text evidence).
        """
        self._require_open()
        base = options or self.search_options
        verifier = base.resolve_verifier(logprobs is not None)
        hyp = self.clean_hypothesis(phonemes)
        frames = self._greedy_frames(hyp, logprobs) if logprobs is not None else None
        if len(hyp) == 0 or top_k <= 0 or not self._entries.live_count():
            return []
        ent = self._entries
        ns_id = None
        if namespace is not None:
            if namespace not in ent.namespaces:
                return []
            ns_id = ent.namespaces.index(namespace)
        live = ent.live_count(ns_id)
        opt = base.for_entries(live)
        evidence = self._frame_evidence(hyp, logprobs, frames, opt) if verifier == "posterior" else None
        # best[row] = (score, start, end, method)
        best: Best = {}
        if opt.exact:
            self._exact(hyp, ns_id, best)
        if opt.approximate and live:
            from_posteriors = evidence is not None and not evidence.one_hot
            if not from_posteriors or opt.posterior_candidates != "trie":
                self._approximate(hyp, opt, ns_id, live, best, cache, evidence)
            if from_posteriors and opt.posterior_candidates != "windows":
                self._trie_candidates(hyp, evidence, opt, ns_id, best)
        return self._rank(best, top_k)

    def phoneme_trie(self) -> PhonemeTrie:
        """The prefix trie of the live entries' phonemes (trie.py): the saved one, else built in memory on first use
        and after entries are added without saving (removed entries are filtered from its hits)."""
        ent = self._entries
        if self._trie is None or self._trie[0] != (id(ent), len(ent.ids)):
            self._set_trie(PhonemeTrie.build(ent.offsets, ent.flat, np.flatnonzero(ent.live), self._boundary))
        return self._trie[1]

    def _set_trie(self, trie: PhonemeTrie) -> None:
        """Use ``trie``, built from the current entry table."""
        self._trie = ((id(self._entries), len(self._entries.ids)), trie)

    def _trie_candidates(self, hyp: np.ndarray, evidence: FrameEvidence, opt: SearchOptions, ns_id: int | None,
                         best: Best) -> None:
        """Entries found by token passing over the posteriors (trie.py), recorded by the posterior verifier's rule."""
        ent = self._entries
        limit = opt.max_keyword_cost(np.arange(256))
        limit[: opt.approx_min_phonemes] = -1.0  # shorter entries are matched exactly only
        rows, cost, first, last = trie_keyword_search(self.phoneme_trie(), evidence.costs, self._blank,
                                                      self._boundary, limit, opt.trie_prefix_rate,
                                                      opt.trie_prefix_slack, opt.threads)
        # the head must have emitted at least half of the entry's phonemes inside its path, and at least as many as
        # the shortest window the windows stage looks up: no hit on speech the greedy string has nothing of
        phonemes = np.concatenate([[0], np.cumsum(hyp != self._boundary)])
        emitted = phonemes[np.searchsorted(evidence.frames, last, side="right")] - \
            phonemes[np.searchsorted(evidence.frames, first, side="left")]
        keep = ent.live[rows] & (emitted >= min(opt.posterior_min_window, opt.approx_min_phonemes))
        keep &= 2 * emitted >= ent.nphon[rows]
        if ns_id is not None:
            keep &= ent.ns[rows] == ns_id
        record_keyword_hits(best, ent, evidence, rows[keep], cost[keep], first[keep], last[keep], opt)

    def _greedy_frames(self, hyp: np.ndarray, logprobs: np.ndarray) -> np.ndarray:
        """The frame of each symbol of ``hyp`` in the greedy path of ``logprobs`` (HotwordError unless ``hyp`` is
        that path, cleaned)."""
        lp = np.asarray(logprobs)
        if lp.ndim != 2 or lp.shape[1] != len(self.inventory):
            raise HotwordError(f"log-posteriors of shape {lp.shape} do not fit the index's inventory of "
                               f"{len(self.inventory)} classes")
        if self._blank < 0:
            raise HotwordError("the index's inventory has no CTC blank, so it cannot read CTC posteriors")
        best = lp.argmax(axis=1)
        emit = np.flatnonzero((best != self._blank) & np.concatenate([[True], best[1:] != best[:-1]]))
        ids = best[emit]
        kept = self._kept(ids)
        if not np.array_equal(ids[kept], hyp):
            raise HotwordError("the phonemes searched are not the greedy path of the log-posteriors given")
        return emit[kept]

    def _frame_evidence(self, hyp: np.ndarray, logprobs: np.ndarray | None, frames: np.ndarray | None,
                        opt: SearchOptions) -> FrameEvidence:
        """What the posterior verifier reads: the log-posteriors, or one-hot "posteriors" of ``hyp``."""
        if self._blank < 0:
            raise HotwordError("the posterior verifier needs a CTC blank in the index's inventory")
        if logprobs is not None:
            return frame_evidence(logprobs, frames, opt.frame_cap, self._blank, self._boundary)
        lp = one_hot_logprobs(hyp, len(self.inventory), opt.frame_cap, self._blank, self._boundary)
        frames = ONE_HOT_GAP + np.arange(len(hyp)) * (ONE_HOT_GAP + 1)
        return frame_evidence(lp, frames, opt.frame_cap, self._blank, self._boundary, one_hot=True)

    def _exact(self, hyp: np.ndarray, ns_id: int | None, best: Best) -> None:
        ent = self._entries
        for start, end, entry_ids in self._matcher.find(hyp):
            for r in ent.rows_of(np.asarray(entry_ids, np.int64)):
                if ent.live[r] and (ns_id is None or ent.ns[r] == ns_id):
                    best[int(r)] = (1.0, start, end, "exact")

    def _windows(self, hyp: np.ndarray, opt: SearchOptions,
                 posterior: bool = False) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Word windows to look up: (phoneme id sequences, start positions, phonemes per window)."""
        b = np.flatnonzero(hyp == self._boundary)
        starts = np.concatenate([[0], b + 1])
        ends = np.concatenate([b, [len(hyp)]])
        shortest = min(opt.posterior_min_window, opt.approx_min_phonemes) if posterior else opt.approx_min_phonemes
        seqs, win_start, win_len = [], [], []
        for wi, s in enumerate(starts):
            for c in range(opt.max_window_words):
                if wi + c >= len(starts):
                    break
                e = ends[wi + c]
                n = int(e - s) - c  # phonemes, boundaries excluded
                if n > MAX_PHONEMES + MAX_PHONEMES // 2:
                    break
                if n >= shortest:
                    seqs.append(hyp[s:e])
                    win_start.append(int(s))
                    win_len.append(n)
        win_start_a, win_len_a = np.asarray(win_start, np.int64), np.asarray(win_len, np.int64)
        if opt.prune and seqs:
            # a window whose length no acceptable hit can have would only find hits on other spans from its
            # start, which the windows of those spans look up themselves
            useful = opt.span_can_match(win_len_a, posterior)
            seqs = [q for q, u in zip(seqs, useful) if u]
            win_start_a, win_len_a = win_start_a[useful], win_len_a[useful]
        return seqs, win_start_a, win_len_a

    def _approximate(self, hyp: np.ndarray, opt: SearchOptions, ns_id: int | None, live: int,
                     best: Best, cache: LookupCache | None = None, evidence: FrameEvidence | None = None) -> None:
        ent = self._entries
        seqs, win_start, win_len = self._windows(hyp, opt, evidence is not None)
        if not seqs:
            return
        k = min(opt.candidates, live)
        if k <= 0:
            return
        g = self._graph()
        if self._ef != opt.ef:
            g.set_ef(opt.ef)
            self._ef = opt.ef
        # Identical windows (a repeated word or phrase) have the same neighbours: look each up once, in one call.
        first: dict[bytes, int] = {}
        which = np.array([first.setdefault(s.tobytes(), len(first)) for s in seqs], np.int64)
        keys = list(first)
        uniq = [seqs[i] for i in np.unique(which, return_index=True)[1]]
        known = cache.take((id(g), self.generation, ns_id, k, opt.ef), keys) if cache is not None \
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
        self._verify(hyp, rows[keep], win_start[win[keep]], sim[keep], opt, best, evidence)

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
                best: Best, evidence: FrameEvidence | None) -> None:
        """Verify candidate (entry row, start) pairs, most similar first, and record the accepted ones in ``best``."""
        if evidence is None:
            verify_greedy(self._entries, hyp, rows, st, sim, opt, self._boundary, self._sub_cost, best)
        else:
            verify_posterior(self._entries, hyp, evidence, rows, st, sim, opt, self._blank, self._boundary, best)

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
        """The greedy verifier's lower bound on each pair's cost (:func:`.verifiers.length_bound`)."""
        return length_bound(self._entries, hyp, self._boundary, rows, st, tlen)

    def _knn(self, vecs: np.ndarray, k: int, threads: int, filt) -> tuple[np.ndarray, np.ndarray]:
        if self._neighbour_lookup is not None:
            return self._neighbour_lookup(vecs, k, threads, filt)
        return graph.knn(self._graph(), vecs, k, threads, filt)

    def _rank(self, best: Best, top_k: int) -> list[HotwordHit]:
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

    # ------------------------------------------------------------------------- hooks for benchmarks, experiments
    def embed_sequences(self, seqs: Sequence[np.ndarray]) -> np.ndarray:
        """The index's embeddings (as its graph holds them) of phoneme id sequences: (len(seqs), dim) float32."""
        return embed(list(seqs), len(self.inventory), self._spec)

    def windows(self, hyp: np.ndarray, options: SearchOptions | None = None) -> list[np.ndarray]:
        """The word windows of a cleaned hypothesis (:meth:`clean_hypothesis`) that the approximate stage looks up,
        identical ones included (:meth:`search` looks those up once)."""
        return self._windows(hyp, (options or self.search_options).for_entries(self._entries.live_count()))[0]

    def graph_knn(self, vecs: np.ndarray, k: int, threads: int = 1,
                  ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A raw hnswlib query of the HNSW graph: (labels, 1 - similarity) of the ``k`` nearest entries of each
        vector, at search breadth ``ef`` (None: as last used). hnswlib raises RuntimeError where it finds fewer."""
        g = self._graph()
        if ef is not None and self._ef != ef:
            g.set_ef(ef)
            self._ef = ef
        return g.knn_query(vecs, k=k, num_threads=threads)

    def set_neighbour_lookup(self, lookup: KnnFn | None) -> None:
        """Find the approximate stage's candidates with ``lookup(vecs, k, threads, filter) -> (labels, distances)``
        (as :func:`.graph.knn` answers) instead of the HNSW graph; None: the graph again. Benchmarks put exact
        neighbours here to measure the graph's recall."""
        self._neighbour_lookup = lookup

    def search_candidates(self, hyp: np.ndarray, rows: np.ndarray, starts: np.ndarray, similarity: np.ndarray,
                          top_k: int = 10, options: SearchOptions | None = None,
                          logprobs: np.ndarray | None = None) -> list[HotwordHit]:
        """:meth:`search`'s exact stage, verification and ranking, with approximate candidates found elsewhere.

        ``hyp``: a cleaned hypothesis (:meth:`clean_hypothesis`); candidate ``i`` is entry table row ``rows[i]``
        (:attr:`~.index.HotwordIndex.entry_table`), verified from position ``starts[i]`` of ``hyp`` as the
        approximate stage verifies its own (the ``max_verify`` most similar first); ``logprobs`` as in
        :meth:`search`. For experiments with other candidate generators (bench/hotwords_anchor_experiment.py).
        """
        self._require_open()
        base = options or self.search_options
        opt = base.for_entries(self._entries.live_count())
        evidence = None
        if base.resolve_verifier(logprobs is not None) == "posterior":
            frames = self._greedy_frames(hyp, logprobs) if logprobs is not None else None
            evidence = self._frame_evidence(hyp, logprobs, frames, opt)
        best: Best = {}
        if opt.exact:
            self._exact(hyp, None, best)
        self._verify(hyp, np.asarray(rows, np.int64), np.asarray(starts, np.int64), np.asarray(similarity), opt,
                     best, evidence)
        return self._rank(best, top_k)
