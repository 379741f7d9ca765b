"""Candidates from the CTC posteriors themselves: a phoneme prefix trie of the entries, searched by token passing.

The HNSW stage looks up windows of the greedy phoneme string, so an entity whose phonemes the CTC head deleted is
often not among its neighbours at all (at a million entries, 61 % of the missed mentions never became candidates).
Here every entry's CTC keyword path (the one :mod:`.ctc_score` scores) is followed through the frames directly:

* :class:`PhonemeTrie`: the live entries' symbol strings (word boundaries included) as a prefix trie in
  breadth-first order, children of node ``n`` at ``child[n]:child[n + 1]``; per node its symbol, its depth in
  phonemes, the most phonemes of an entry below it, and the entry rows that end there;
* :func:`trie_keyword_search`: frame-synchronous Viterbi over the trie's keyword paths (token passing). A token is
  a trie node in one of three states: on the node's phoneme (P), in the blank gap after it (G), or on a word
  boundary node's separator (S); frame costs and path rules are those of :func:`.ctc_score.keyword_states` (a
  gap is optional unless it separates two equal phonemes), and a path may start at any frame. A token whose cost
  exceeds what any entry below it may cost (:meth:`~.options.SearchOptions.max_keyword_cost` of the longest entry
  in its subtree) is dropped, which loses nothing; so is one over the *prefix beam*, ``trie_prefix_rate`` x its
  phonemes + ``trie_prefix_slack`` nats, which bounds the search and loses paths whose cost is front-loaded.

The cost found for an entry is its keyword cost over the whole utterance (the posterior verifier's cost with the
widest window), so the search records its hits with the verifier's acceptance rule (:mod:`.verifiers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import HotwordError
from . import ctc_score, verify
from .arrayfile import map_arrays, write_arrays

__all__ = ["PhonemeTrie", "trie_keyword_search"]

P, G, S = 0, 1, 2  # token states: on the node's phoneme, in the blank gap after it, on a boundary's separator
NO_SYMBOL = 255
KIND = "phoneme-trie"
VERSION = 1
_DTYPES = {"label": np.uint8, "child": np.int32, "depth": np.uint8, "maxlen": np.uint8, "final": np.uint8,
           "term_node": np.int32, "rows": np.int32}
_ARRAYS = tuple(_DTYPES)


@dataclass(frozen=True)
class PhonemeTrie:
    """A prefix trie of entry symbol strings, breadth-first; node 0 is the root. Saved as ``trie.g<N>.bin``
    (arrayfile.py) beside the other derived files and memory-mapped on open."""

    label: np.ndarray  # uint8 (nodes,): the node's symbol (NO_SYMBOL at the root)
    child: np.ndarray  # int32 (nodes + 1,): children of n are child[n]:child[n + 1]
    depth: np.ndarray  # uint8 (nodes,): phonemes from the root to the node, boundaries excluded
    maxlen: np.ndarray  # uint8 (nodes,): most phonemes of an entry ending at or below the node
    final: np.ndarray  # uint8 (nodes,): 1 where an entry ends
    term_node: np.ndarray  # int32 (entries,): the node each entry ends at, ascending
    rows: np.ndarray  # int32 (entries,): the entry table row of each, in the same order

    @property
    def nodes(self) -> int:
        return len(self.label)

    @property
    def nbytes(self) -> int:
        return sum(getattr(self, name).nbytes for name in _ARRAYS)

    def save(self, f) -> None:
        """Write the trie (arrayfile.py) to the open binary file ``f``."""
        write_arrays(f, KIND, {name: getattr(self, name) for name in _ARRAYS}, {"version": VERSION})

    @classmethod
    def load(cls, path: Path) -> PhonemeTrie:
        """Map a trie :meth:`save` wrote; HotwordError if the file is damaged, foreign or inconsistent."""
        arrays, meta = map_arrays(path, KIND)
        if meta.get("version") != VERSION or set(_ARRAYS) - set(arrays):
            raise HotwordError(f"trie {path.name} has version {meta.get('version')} or lacks arrays; "
                               f"expected version {VERSION}")
        trie = cls(**{name: arrays[name] for name in _ARRAYS})
        n = trie.nodes
        if any(getattr(trie, k).dtype != dt or getattr(trie, k).ndim != 1 for k, dt in _DTYPES.items()) or not (
                n >= 1 and len(trie.child) == n + 1 and all(len(getattr(trie, k)) == n for k in ("depth", "maxlen",
                                                                                                  "final"))
                and len(trie.rows) == len(trie.term_node) and int(trie.child[-1]) == n):
            raise HotwordError(f"trie {path.name} is inconsistent")
        return trie

    @classmethod
    def build(cls, offsets: np.ndarray, flat: np.ndarray, rows: np.ndarray, boundary: int) -> PhonemeTrie:
        """The trie of entry table rows ``rows`` (their symbols ``flat[offsets[r]:offsets[r + 1]]``)."""
        rows = np.asarray(rows, np.int64)
        lens = (offsets[rows + 1] - offsets[rows]).astype(np.int64)
        keep = lens > 0
        rows, lens = rows[keep], lens[keep]
        width = int(lens.max()) if len(rows) else 0
        mat = np.full((len(rows), width), NO_SYMBOL, np.uint8)
        start = offsets[rows]
        for c in range(width):  # a column at a time: no (entries x width) index array (10M entries: GBs)
            sel = np.flatnonzero(lens > c)
            mat[sel, c] = flat[start[sel] + c]
        order = np.lexsort(mat.T[::-1]) if width else np.zeros(0, np.int64)
        mat, rows, lens = mat[order], rows[order], lens[order]
        n = len(rows)
        # common prefix with the row before (in sorted order)
        lcp = np.zeros(n, np.int64)
        if n > 1:
            same = (mat[1:] == mat[:-1]) & (mat[1:] != NO_SYMBOL)
            lcp[1:] = np.cumprod(same, axis=1, dtype=np.uint8).sum(axis=1)
        phon_before = np.zeros((n, width + 1), np.uint8)  # phonemes in each row's first d symbols
        np.cumsum((mat != boundary) & (mat != NO_SYMBOL), axis=1, out=phon_before[:, 1:])
        nphon = phon_before[np.arange(n), lens] if n else np.zeros(0, np.uint8)
        labels, depths, maxlens, parents = [np.array([NO_SYMBOL], np.uint8)], [np.zeros(1, np.uint8)], \
            [np.array([nphon.max() if n else 0], np.uint8)], []
        term_node = np.zeros(n, np.int64)
        base = 1  # first node id of the depth being numbered
        node_of_prev = np.zeros(n, np.int64)  # each row's node one level up (the root at first)
        for d in range(1, width + 1):
            has = lens >= d
            new = has & (lcp < d)
            first = np.flatnonzero(new)
            node_of = base + np.cumsum(new) - 1  # valid where has
            labels.append(mat[first, d - 1])
            depths.append(phon_before[first, d])
            maxlens.append(np.maximum.reduceat(nphon[has], np.searchsorted(np.flatnonzero(has), first))
                           if len(first) else np.zeros(0, np.uint8))
            parents.append(node_of_prev[first])  # parent of every new node
            ends = lens == d
            term_node[ends] = node_of[ends]
            node_of_prev = np.where(has, node_of, node_of_prev)
            base += len(first)
        nodes = base
        parent = np.concatenate(parents) if parents else np.zeros(0, np.int64)
        if nodes >= 2**31 - 1:
            raise HotwordError(f"{nodes} trie nodes: more than the trie's 32-bit node numbers hold")
        nchild = np.bincount(parent, minlength=nodes)
        child = np.concatenate([[1], 1 + np.cumsum(nchild)]).astype(np.int32)
        by_node = np.argsort(term_node, kind="stable")
        final = np.zeros(nodes, np.uint8)
        final[term_node] = 1
        return cls(np.concatenate(labels), child, np.concatenate(depths), np.concatenate(maxlens).astype(np.uint8),
                   final, term_node[by_node].astype(np.int32), rows[by_node].astype(np.int32))


TrieHits = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # (rows, cost, first frame, last frame)


def trie_keyword_search(trie: PhonemeTrie, costs: np.ndarray, blank: int, boundary: int, limit_of_len: np.ndarray,
                        prefix_rate: float, prefix_slack: float, threads: int = 1) -> TrieHits:
    """Every entry of ``trie`` whose CTC keyword cost over the frame costs ``costs`` (:func:`.ctc_score.frame_costs`,
    the separator in the last column) is within its limit ``limit_of_len[phonemes]`` and whose path kept within the
    prefix beam: (entry rows, cost, first frame, last frame of the path), by row.

    Compiled when built (``_align.c``; the root's subtrees split over ``threads`` threads), else
    :func:`trie_keyword_search_numpy`; the results are identical.
    """
    ext = verify.compiled_module()
    if ext is None or not hasattr(ext, "trie_keyword"):
        return trie_keyword_search_numpy(trie, costs, blank, boundary, limit_of_len, prefix_rate, prefix_slack)
    costs = np.ascontiguousarray(costs, np.float32)
    limit_of_len = np.ascontiguousarray(np.broadcast_to(np.asarray(limit_of_len, np.float32), (256,)))
    arrays = [np.ascontiguousarray(getattr(trie, k), _DTYPES[k]) for k in ("label", "child", "depth", "maxlen",
                                                                          "final")]
    parts = max(1, min(threads, int(trie.child[1] - trie.child[0])))

    def run(part: int) -> tuple:
        return ext.trie_keyword(costs, *arrays, limit_of_len, costs.shape[0], costs.shape[1], trie.nodes, blank,
                                boundary, float(prefix_rate), float(prefix_slack), parts, part)

    found = [run(0)] if parts == 1 else list(ctc_score.worker_pool().map(run, range(parts)))
    nodes, cost, first, last = (np.concatenate([np.frombuffer(f[i], dt) for f in found]) for i, dt in
                                enumerate((np.int64, np.float32, np.int64, np.int64)))
    return _node_hits_to_rows(trie, nodes, cost, first, last)


def trie_keyword_search_numpy(trie: PhonemeTrie, costs: np.ndarray, blank: int, boundary: int,
                              limit_of_len: np.ndarray, prefix_rate: float, prefix_slack: float) -> TrieHits:
    """:func:`trie_keyword_search` in numpy (vectorised over the live tokens, a loop over frames)."""
    costs = np.ascontiguousarray(costs, np.float32)
    limit_of_len = np.broadcast_to(np.asarray(limit_of_len, np.float32), (256,))
    return _node_hits_to_rows(trie, *_search_numpy(trie, costs, blank, boundary, limit_of_len, prefix_rate,
                                                   prefix_slack))


def _node_hits_to_rows(trie: PhonemeTrie, nodes: np.ndarray, cost: np.ndarray, first: np.ndarray,
                       last: np.ndarray) -> TrieHits:
    key = nodes.astype(trie.term_node.dtype)  # the haystack's dtype: another would make numpy convert all of it
    lo = np.searchsorted(trie.term_node, key, side="left")
    which, at = _expand(lo, np.searchsorted(trie.term_node, key, side="right") - lo)
    rows = trie.rows[at].astype(np.int64)
    order = np.argsort(rows, kind="stable")
    return rows[order], cost[which][order], first[which][order], last[which][order]


def _expand(lo: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(which range, position) for every position of the ranges ``lo[i] : lo[i] + n[i]``, in order."""
    which = np.repeat(np.arange(len(n)), n)
    return which, lo[which] + (np.arange(len(which)) - np.repeat(np.cumsum(n) - n, n))


def _first_of_runs(key: np.ndarray) -> np.ndarray:
    """Where each run of equal values in the sorted ``key`` starts (bool)."""
    first = np.ones(len(key), bool)
    first[1:] = key[1:] != key[:-1]
    return first


def _children(trie: PhonemeTrie, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into ``nodes`` of each child's parent, the child) for every child of every node."""
    lo = trie.child[nodes].astype(np.int64)
    return _expand(lo, trie.child[nodes + 1] - lo)


def _search_numpy(trie: PhonemeTrie, costs: np.ndarray, blank: int, boundary: int, limit_of_len: np.ndarray,
                  rate: float, slack: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Best (cost, first, last frame) of every terminal node reached within its limit: arrays by node."""
    sep = costs.shape[1] - 1
    label = trie.label.astype(np.int64)
    is_b = trie.label == boundary
    eps = np.float32(1e-4)  # the tolerance of the compiled search's comparisons

    def bound(nodes: np.ndarray) -> np.ndarray:
        return np.minimum(limit_of_len[trie.maxlen[nodes]],
                          np.float32(rate) * trie.depth[nodes].astype(np.float32) + np.float32(slack))

    roots = np.arange(trie.child[0], trie.child[1])
    roots = roots[~is_b[roots]]
    empty_i = np.zeros(0, np.int64)
    node, state, cost, start = empty_i, np.zeros(0, np.int8), np.zeros(0, np.float32), empty_i
    hit_node, hit_cost, hit_first, hit_last = [], [], [], []
    for t in range(costs.shape[0]):
        c = costs[t]
        parts = [(node, state, cost, start)]
        grows = (state == P) & (trie.child[node + 1] > trie.child[node])
        parts.append((node[grows], np.full(int(grows.sum()), G, np.int8), cost[grows], start[grows]))
        src, kid = _children(trie, node)
        ks, kb = state[src], is_b[kid]
        ok = ~kb & ((ks != P) | (label[kid] != label[node[src]]))
        parts.append((kid[ok], np.full(int(ok.sum()), P, np.int8), cost[src][ok], start[src][ok]))
        ok = kb & (ks == P)
        bsrc, bkid = src[ok], kid[ok]
        parts.append((bkid, np.full(len(bkid), S, np.int8), cost[bsrc], start[bsrc]))
        src2, grand = _children(trie, bkid)  # skipping the separator (a word boundary the head dropped)
        ok = label[grand] != label[node[bsrc[src2]]]
        parts.append((grand[ok], np.full(int(ok.sum()), P, np.int8), cost[bsrc[src2]][ok], start[bsrc[src2]][ok]))
        parts.append((roots, np.full(len(roots), P, np.int8), np.zeros(len(roots), np.float32),
                      np.full(len(roots), t, np.int64)))
        node = np.concatenate([p[0] for p in parts])
        state = np.concatenate([p[1] for p in parts])
        cost = np.concatenate([p[2] for p in parts])
        start = np.concatenate([p[3] for p in parts])
        cls = np.where(state == P, label[node], np.where(state == G, blank, sep))
        cost = cost + c[cls]
        keep = cost <= bound(node) + eps
        node, state, cost, start = node[keep], state[keep], cost[keep], start[keep]
        key = node * 3 + state
        order = np.lexsort((start, cost, key))
        order = order[_first_of_runs(key[order])]
        node, state, cost, start = node[order], state[order], cost[order], start[order]
        fin = (state == P) & (trie.final[node] != 0)
        fin &= cost <= limit_of_len[trie.depth[node]] + eps
        if fin.any():
            hit_node.append(node[fin])
            hit_cost.append(cost[fin])
            hit_first.append(start[fin])
            hit_last.append(np.full(int(fin.sum()), t, np.int64))
    if not hit_node:
        return empty_i, np.zeros(0, np.float32), empty_i, empty_i
    hn, hc, hf, hl = (np.concatenate(a) for a in (hit_node, hit_cost, hit_first, hit_last))
    order = np.lexsort((hl, hc, hn))  # per node: cheapest, then earliest
    first = order[_first_of_runs(hn[order])]
    return hn[first], hc[first], hf[first], hl[first]
