"""The posterior verifier: CTC keyword scores of hotword entries against the phoneme-CTC log-posteriors.

A greedy phoneme string loses what the CTC head was unsure of (a deleted phoneme is one whose posterior never won a
frame); the posteriors keep it. The keyword score asks how much worse the best path of the frames becomes when it
is forced to contain the entry somewhere in a window of frames:

* per-frame cost of class ``v`` at frame ``t``: ``min(max_u lp[t, u] - lp[t, v], cap)`` (nats, >= 0; the best class
  costs 0). ``cap`` bounds what one frame can cost, so a phoneme the head confidently heard as another costs like
  one edit instead of without bound (:func:`frame_costs`);
* the entry's CTC path: its phonemes in order, each on one or more frames, with optional blanks between them (a
  blank is required between two equal phonemes); between two words the optional state is a *separator* that costs
  ``min(cost[blank], cost[|])`` per frame, since the head often drops word boundaries and a boundary frame is
  also a fine gap between words. Frames outside the path keep their best class (cost 0), so the path may start
  and end anywhere in the window;
* ``keyword cost`` = the cheapest such path's summed frame costs (Viterbi, :func:`keyword_costs`): the
  log-likelihood ratio, in nats, of the best path of the window against the best path that contains the entry
  (keyword model plus free phone loop against the free phone loop alone). 0 means the greedy path already spells
  the entry; each phoneme the head deleted adds what its best frame lacks to win.

:class:`~.options.SearchOptions` turns the cost into acceptance (per phoneme, with the same list-size rule as
the greedy verifier, in units of ``cap``) and into the hit's score ``1 - cost / (cap * phonemes)``.

Text evidence (a transcript's G2P, for families without a phoneme head) is scored the same way over
:func:`one_hot_logprobs`: one frame per symbol, blank frames between them, every other class ``cap`` below; there
one edit (a substitution, a missing or an extra phoneme) costs ``cap``, so the acceptance rule in units of ``cap``
reads as edits.

:func:`keyword_costs` runs the compiled DP (``_align.c``) when it was built, else :func:`keyword_costs_numpy`
(vectorised over candidates, a loop over frames), with identical results (same float32 operations in the same
order, same tie-breaking).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import verify

__all__ = ["BIG", "ONE_HOT_GAP", "KeywordCosts", "frame_costs", "keyword_costs", "keyword_costs_numpy", "keyword_states",
           "one_hot_logprobs"]

BIG = np.float32(1e9)  # cost of an impossible state
PAD = -1
ONE_HOT_GAP = 2  # blank frames between the symbols of one-hot "posteriors"

KeywordCosts = tuple[np.ndarray, np.ndarray, np.ndarray]  # (cost (C,) float32, start frame (C,), end frame (C,))


def frame_costs(logprobs: np.ndarray, cap: float, blank: int, boundary: int) -> np.ndarray:
    """Per-frame class costs for :func:`keyword_costs`: ``(T, V + 1)`` float32, ``min(max lp - lp, cap)``; the last
    column is the separator's ``min(cost[blank], cost[boundary])``."""
    lp = np.asarray(logprobs, np.float32)
    if lp.ndim != 2:
        raise ValueError(f"log-posteriors must be (frames, classes), got shape {lp.shape}")
    out = np.empty((lp.shape[0], lp.shape[1] + 1), np.float32)
    np.subtract(lp.max(axis=1, keepdims=True), lp, out=out[:, :-1])
    np.minimum(out[:, :-1], np.float32(cap), out=out[:, :-1])
    np.minimum(out[:, blank], out[:, boundary], out=out[:, -1])
    return out


def one_hot_logprobs(ids: np.ndarray, classes: int, cap: float, blank: int, boundary: int,
                     gap: int = ONE_HOT_GAP) -> np.ndarray:
    """"Posteriors" of a symbol string (text evidence): one frame per symbol, where it has log-prob 0 and every other
    class ``-cap``, with ``gap`` blank frames before, between and after the symbols (so that up to ``gap``
    consecutive entry phonemes missing from the string cost one ``cap`` each). A word boundary frame gives the
    blank ``-cap / 2`` (a misplaced boundary costs half an edit, as in the greedy verifier). Symbol ``i`` is at
    frame ``gap + i (gap + 1)``; ``(gap + len (gap + 1), classes)`` float32."""
    ids = np.asarray(ids, np.int64)
    n = len(ids)
    lp = np.full((gap + n * (gap + 1), classes), -np.float32(cap), np.float32)
    at = gap + np.arange(n) * (gap + 1)
    blanks = np.ones(len(lp), bool)
    blanks[at] = False
    lp[blanks, blank] = 0.0
    lp[at, ids] = 0.0
    lp[at[ids == boundary], blank] = -np.float32(cap) / 2
    return lp


def keyword_states(seqs: np.ndarray, seq_len: np.ndarray, blank: int, boundary: int,
                   separator: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The CTC paths of entries: (state classes (C, S) int64, PAD past each path; whether state ``s`` may be entered
    from ``s - 2`` (C, S) uint8; states per path (C,) int64).

    ``seqs``: (C, M) phoneme ids padded with PAD, ``boundary`` between words. A path of ``n`` phonemes has
    ``2n - 1`` states: phoneme, gap, phoneme, ..., phoneme; a gap is the blank inside a word and ``separator`` (the
    :func:`frame_costs` column) between words. A phoneme state may skip the gap before it unless it repeats the
    phoneme before the gap.
    """
    seqs = np.asarray(seqs, np.int64)
    c, m = seqs.shape
    valid = (np.arange(m)[None, :] < np.asarray(seq_len)[:, None]) & (seqs != PAD)
    is_ph = valid & (seqs != boundary)
    nph = is_ph.sum(axis=1)
    n_max = max(int(nph.max()) if c else 0, 1)
    # phonemes packed to the left, and whether a boundary came before each
    order = np.argsort(~is_ph, axis=1, kind="stable")
    ph = np.where(np.arange(m)[None, :] < nph[:, None], np.take_along_axis(seqs, order, axis=1), PAD)[:, :n_max]
    if ph.shape[1] < n_max:
        ph = np.pad(ph, ((0, 0), (0, n_max - ph.shape[1])), constant_values=PAD)
    bcount = np.cumsum(valid & (seqs == boundary), axis=1)  # boundaries up to each position
    before = np.take_along_axis(bcount, order, axis=1)[:, :n_max]  # boundaries before each packed phoneme
    if before.shape[1] < n_max:
        before = np.pad(before, ((0, 0), (0, n_max - before.shape[1])))
    sep = np.zeros((c, n_max), bool)
    sep[:, 1:] = before[:, 1:] > before[:, :-1]  # a boundary between phoneme k - 1 and k
    s_max = 2 * n_max - 1
    states = np.full((c, s_max), PAD, np.int64)
    states[:, 0::2] = ph
    gap = np.where(sep[:, 1:], separator, blank)
    has = np.arange(1, n_max)[None, :] < nph[:, None]
    states[:, 1::2] = np.where(has, gap, PAD)
    skip = np.zeros((c, s_max), np.uint8)
    skip[:, 2::2] = (ph[:, 1:] != ph[:, :-1]) & has
    return states, skip, np.maximum(2 * nph - 1, 0).astype(np.int64)


def keyword_costs(costs: np.ndarray, states: np.ndarray, skip: np.ndarray, nstates: np.ndarray,
                  lo: np.ndarray, hi: np.ndarray, threads: int = 1, limit: np.ndarray | None = None) -> KeywordCosts:
    """The cheapest CTC path of each entry inside frames ``[lo, hi)`` of ``costs`` (:func:`frame_costs`).

    ``states``/``skip``/``nstates`` from :func:`keyword_states`. Returns (cost (C,) float32, first frame (C,) int64,
    last frame (C,) int64 of the path); cost :data:`BIG` and frames -1 where no path fits (window shorter than the
    entry's phonemes) or, with ``limit`` (C,) float32, where every path costs more than the entry's limit (partial
    paths over it are dropped: costs only grow along a path, so this never changes a cost within the limit).
    Compiled when built (split over ``threads`` threads for many entries), else :func:`keyword_costs_numpy`; the
    results are identical.
    """
    limit = np.full(len(nstates), BIG, np.float32) if limit is None else np.asarray(limit, np.float32)
    ext = verify.compiled_module()
    if ext is None or not hasattr(ext, "keyword"):  # not built, or built before the keyword DP existed
        return keyword_costs_numpy(costs, states, skip, nstates, lo, hi, limit)
    limit = np.ascontiguousarray(limit)
    costs = np.ascontiguousarray(costs, np.float32)
    states = np.ascontiguousarray(states, np.int64)
    skip = np.ascontiguousarray(skip, np.uint8)
    nstates, lo, hi = (np.ascontiguousarray(a, np.int64) for a in (nstates, lo, hi))
    c, s = states.shape
    out = np.empty(c, np.float32)
    first = np.empty(c, np.int64)
    last = np.empty(c, np.int64)

    def run(a: int, b: int) -> None:  # the extension releases the GIL: chunks run in parallel
        ext.keyword(costs, states[a:b], skip[a:b], nstates[a:b], lo[a:b], hi[a:b], limit[a:b], out[a:b],
                    first[a:b], last[a:b], b - a, s, costs.shape[0], costs.shape[1])

    parts = min(max(threads, 1), c // _MIN_CHUNK)
    if parts <= 1:
        run(0, c)
    else:
        cuts = np.linspace(0, c, parts + 1).astype(int)
        list(worker_pool().map(run, cuts[:-1].tolist(), cuts[1:].tolist()))
    return out, first, last


_MIN_CHUNK = 32  # fewer entries per thread are not worth a hand-off
_POOL: ThreadPoolExecutor | None = None


def worker_pool() -> ThreadPoolExecutor:
    """The threads the compiled searches split their work over (they release the GIL), shared by the process."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="nim4asr-keyword")
    return _POOL


def keyword_costs_numpy(costs: np.ndarray, states: np.ndarray, skip: np.ndarray, nstates: np.ndarray,
                        lo: np.ndarray, hi: np.ndarray, limit: np.ndarray | None = None) -> KeywordCosts:
    """:func:`keyword_costs` in numpy: vectorised over the entries, one step per frame of the longest window.

    Recursion, for path state ``s`` at frame ``t``: ``D[t, s] = cost[t, class(s)] + min(D[t-1, s], D[t-1, s-1],
    D[t-1, s-2] if skip[s])`` (the first of equal minima, in that order, gives the path's first frame); state 0
    starts afresh at every frame (``D[t, 0] = cost[t, class(0)]``, since the frames before the path cost nothing;
    its first frame stays where ``D[t-1, 0]`` is 0, so a path starts at the first frame of a free run). The result
    is the smallest ``D[t, last]`` over the window (the earliest frame on ties).
    """
    costs = np.asarray(costs, np.float32)
    states = np.asarray(states, np.int64)
    c, s_max = states.shape
    lo = np.asarray(lo, np.int64)
    if (lo < 0).any():
        raise ValueError("frame windows must start at frame 0 or later")
    hi = np.minimum(np.asarray(hi, np.int64), costs.shape[0])
    nstates = np.asarray(nstates, np.int64)
    lim = (np.full(c, BIG, np.float32) if limit is None else np.asarray(limit, np.float32))[:, None]
    best = np.full(c, BIG, np.float32)
    first = np.full(c, -1, np.int64)
    last = np.full(c, -1, np.int64)
    if c == 0 or s_max == 0:
        return best, first, last
    width = np.maximum(hi - lo, 0)
    steps = int(width.max())
    cls = np.where(states >= 0, states, 0)
    impossible = states < 0
    sk = np.asarray(skip, bool)
    d = np.full((c, s_max), BIG, np.float32)
    st = np.zeros((c, s_max), np.int64)
    rows = np.arange(c)
    end_state = np.maximum(nstates - 1, 0)
    can = nstates > 0
    for f in range(steps):
        active = (f < width) & can
        t = np.minimum(lo + f, costs.shape[0] - 1)
        cf = costs[t[:, None], cls]
        cf[impossible] = BIG
        # predecessors: stay, s - 1, s - 2 (where allowed); the first of equal minima wins
        m = d.copy()
        ms = st.copy()
        p1 = np.full((c, s_max), BIG, np.float32)
        p1[:, 1:] = d[:, :-1]
        s1 = np.zeros((c, s_max), np.int64)
        s1[:, 1:] = st[:, :-1]
        take = p1 < m
        m[take], ms[take] = p1[take], s1[take]
        p2 = np.full((c, s_max), BIG, np.float32)
        p2[:, 2:] = d[:, :-2]
        p2[~sk] = BIG
        s2 = np.zeros((c, s_max), np.int64)
        s2[:, 2:] = st[:, :-2]
        take = p2 < m
        m[take], ms[take] = p2[take], s2[take]
        # state 0 starts afresh (the frames before the path cost nothing), or stays where staying is as cheap
        ms[:, 0] = np.where(d[:, 0] <= 0.0, st[:, 0], lo + f)
        m[:, 0] = 0.0
        new = np.minimum(m + cf, BIG)
        new[new > lim] = BIG
        d = np.where(active[:, None], new, d)
        st = np.where(active[:, None], ms, st)
        fin = d[rows, end_state]
        better = active & (fin < best)
        best[better] = fin[better]
        first[better] = st[rows, end_state][better]
        last[better] = (lo + f)[better]
    return best, first, last
