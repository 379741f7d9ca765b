"""The verification stage of a search: accept and score (entry row, hypothesis position) candidates.

Two verifiers, chosen by ``SearchOptions.verifier``:

* **greedy**: edit distance of the whole entry against the greedy phoneme string from the candidate's position
  (:func:`.verify.align_scores`), accepted by :meth:`~.options.SearchOptions.max_cost`;
* **posterior**: the CTC keyword cost of the entry over the frames around the candidate's span
  (:mod:`.ctc_score`), from the CTC log-posteriors, or from one-hot "posteriors" of a symbol string (text
  evidence); accepted by :meth:`~.options.SearchOptions.max_keyword_cost`.

Both record accepted candidates in a ``Best`` map (entry row -> best hit so far) that the search ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import ctc_score
from .entries import EntryTable
from .options import MAX_PHONEMES, SearchOptions
from .verify import PAD, align_scores

__all__ = ["Best", "FrameEvidence", "entry_matrix", "first_pairs", "frame_evidence", "length_bound", "merge_windows",
           "record_keyword_hits", "verify_greedy", "verify_posterior"]

Best = dict[int, tuple[float, int, int, str]]  # entry row -> (score, start, end, method) of its best hit so far


@dataclass(frozen=True)
class FrameEvidence:
    """What the posterior verifier reads beside a cleaned hypothesis."""

    costs: np.ndarray  # (T, V + 1) float32 frame costs (ctc_score.frame_costs)
    frames: np.ndarray  # (len(hyp),) int64: the frame where each symbol of the cleaned hypothesis was emitted
    one_hot: bool  # built from the symbols (text evidence), not from a CTC head


def frame_evidence(logprobs: np.ndarray, frames: np.ndarray, cap: float, blank: int, boundary: int,
                   one_hot: bool = False) -> FrameEvidence:
    """:class:`FrameEvidence` of log-posteriors ``(T, V)`` whose greedy path, cleaned, was emitted at ``frames``."""
    return FrameEvidence(ctc_score.frame_costs(logprobs, cap, blank, boundary), np.asarray(frames, np.int64),
                         one_hot)


def first_pairs(rows: np.ndarray, st: np.ndarray, sim: np.ndarray, hyp_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate (row, start) pairs most similar first, each pair once."""
    order = np.argsort(-sim, kind="stable")
    rows, st = rows[order], st[order]
    _, firsts = np.unique(rows * (hyp_len + 1) + st, return_index=True)
    keep = np.sort(firsts)
    return rows[keep], st[keep]


def entry_matrix(ent: EntryTable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(phoneme ids (C, M) int64 padded with PAD, lengths (C,) int64) of entry table rows, boundaries included."""
    elen = (ent.offsets[rows + 1] - ent.offsets[rows]).astype(np.int64)
    m = max(int(elen.max()) if len(elen) else 0, 1)
    idx = ent.offsets[rows][:, None] + np.arange(m)[None, :]
    emat = np.where(np.arange(m)[None, :] < elen[:, None],
                    ent.flat[np.minimum(idx, max(len(ent.flat) - 1, 0))].astype(np.int64), PAD)
    return emat, elen


def verify_greedy(ent: EntryTable, hyp: np.ndarray, rows: np.ndarray, st: np.ndarray, sim: np.ndarray,
                  opt: SearchOptions, boundary: int, sub_cost: np.ndarray | None, best: Best) -> None:
    """Verify candidates by edit distance against the greedy string, most similar first (``max_verify``)."""
    if len(rows) == 0:
        return
    rows, st = first_pairs(rows, st, sim, len(hyp))
    elen = (ent.offsets[rows + 1] - ent.offsets[rows]).astype(np.int64)
    slack = np.maximum(2, elen // 3)
    tlen = np.minimum(elen + slack, len(hyp) - st)
    if opt.prune:
        feasible = length_bound(ent, hyp, boundary, rows, st, tlen) <= opt.max_cost(ent.nphon[rows]) + 1e-4
        rows, st, tlen = rows[feasible], st[feasible], tlen[feasible]
    rows, st, tlen = rows[: opt.max_verify], st[: opt.max_verify], tlen[: opt.max_verify]
    if len(rows) == 0:
        return
    emat, elen = entry_matrix(ent, rows)
    n = int(tlen.max())
    tidx = st[:, None] + np.arange(n)[None, :]
    tmat = np.where(np.arange(n)[None, :] < tlen[:, None], hyp[np.minimum(tidx, len(hyp) - 1)].astype(np.int64),
                    PAD)
    cost, matched = align_scores(emat, elen, tmat, tlen, boundary, word_end=True,
                                 text_is_final=st + tlen >= len(hyp),
                                 sub_cost=sub_cost if opt.phoneme_costs else None)
    nphon = np.maximum(ent.nphon[rows], 1)
    score = 1.0 - cost / nphon
    accept = cost <= opt.max_cost(nphon) + 1e-4  # float32 costs are multiples of 0.25: exact
    for r, s, sc, ml, ok in zip(rows.tolist(), st.tolist(), score.tolist(), matched.tolist(), accept.tolist()):
        if not ok:
            continue
        end = s + ml
        while end > s and hyp[end - 1] == boundary:
            end -= 1
        _record(best, r, sc, s, end)


def verify_posterior(ent: EntryTable, hyp: np.ndarray, evidence: FrameEvidence, rows: np.ndarray, st: np.ndarray,
                     sim: np.ndarray, opt: SearchOptions, blank: int, boundary: int, best: Best) -> None:
    """Verify candidates by their CTC keyword cost over the frames around their span, most similar first
    (``max_verify``); a hit's span is the hypothesis symbols emitted inside its path's frames."""
    if len(rows) == 0:
        return
    rows, st = first_pairs(rows, st, sim, len(hyp))
    rows, st = rows[: opt.max_verify], st[: opt.max_verify]
    # frames from the candidate's first symbol to where its entry would end if the head had kept every phoneme,
    # widened by frame_margin on both sides; one entry's overlapping windows are searched as one
    frames = evidence.frames
    n_frames = evidence.costs.shape[0]
    margin = opt.frame_margin if not evidence.one_hot else ctc_score.ONE_HOT_GAP
    elen = (ent.offsets[rows + 1] - ent.offsets[rows]).astype(np.int64)
    lo = np.maximum(frames[st] - margin, 0)
    hi = np.minimum(frames[np.minimum(st + elen, len(hyp)) - 1] + margin + 1, n_frames)
    allowed = opt.max_keyword_cost(ent.nphon[rows]) >= 0.0  # an entry without allowance is matched exactly only
    rows, lo, hi = merge_windows(rows[allowed], lo[allowed], hi[allowed])
    if len(rows) == 0:
        return
    emat, elen = entry_matrix(ent, rows)
    states, skip, nstates = ctc_score.keyword_states(emat, elen, blank, boundary, evidence.costs.shape[1] - 1)
    nphon = np.maximum(ent.nphon[rows], 1)
    limit = (opt.max_keyword_cost(nphon, evidence.one_hot) + 1e-4).astype(np.float32)  # paths over it are dropped
    cost, first, final = ctc_score.keyword_costs(evidence.costs, states, skip, nstates, lo, hi, opt.threads, limit)
    record_keyword_hits(best, ent, evidence, rows, cost, first, final, opt)


def record_keyword_hits(best: Best, ent: EntryTable, evidence: FrameEvidence, rows: np.ndarray, cost: np.ndarray,
                        first: np.ndarray, last: np.ndarray, opt: SearchOptions) -> None:
    """Record the entry rows whose keyword ``cost`` (path over frames ``first..last``) the posterior rule accepts;
    a hit's span is the hypothesis symbols emitted inside its path's frames."""
    nphon = np.maximum(ent.nphon[rows], 1)
    accept = cost <= (opt.max_keyword_cost(nphon, evidence.one_hot) + 1e-4).astype(np.float32)
    score = 1.0 - cost / (opt.frame_cap * nphon)
    frames = evidence.frames
    start = np.searchsorted(frames, first, side="left")
    end = np.maximum(np.searchsorted(frames, last, side="right"), start)
    for r, sc, s, e in zip(rows[accept].tolist(), score[accept].tolist(), start[accept].tolist(),
                           end[accept].tolist()):
        _record(best, r, sc, s, e)


def merge_windows(rows: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame windows ``[lo, hi)`` of each entry row with overlapping ones merged: (rows, lo, hi), by row."""
    order = np.lexsort((lo, rows))
    rows, lo, hi = rows[order], lo[order], hi[order]
    same = np.zeros(len(rows), bool)
    same[1:] = rows[1:] == rows[:-1]
    # running end of the windows of the same row so far: a window starts a new group unless it overlaps it
    run_hi = hi.copy()
    new = ~same
    for i in np.flatnonzero(same):  # few per utterance (hundreds); a loop keeps it exact
        if lo[i] <= run_hi[i - 1]:
            run_hi[i] = max(run_hi[i - 1], hi[i])
        else:
            new[i] = True
    group = np.cumsum(new) - 1
    starts = np.flatnonzero(new)
    out_hi = np.zeros(len(starts), np.int64)
    np.maximum.at(out_hi, group, hi)
    return rows[starts], lo[starts], out_hi


def _record(best: Best, r: int, sc: float, s: int, end: int) -> None:
    old = best.get(r)
    if old is None or sc > old[0]:
        best[r] = (round(sc, 4), s, end, "approx" if old is None or old[3] != "exact" else "exact")


def length_bound(ent: EntryTable, hyp: np.ndarray, boundary: int, rows: np.ndarray, st: np.ndarray,
                  tlen: np.ndarray) -> np.ndarray:
    """Lower bound on each (entry row, start) pair's greedy verification cost: the phoneme-count difference.

    Every edit that changes the number of phonemes (boundaries excluded) by one costs 1, so aligning an entry
    of n phonemes to a span of p phonemes costs at least |n - p|; the bound is the smallest such difference
    over the spans :func:`.verify.align_scores` may end at (word ends within ``tlen`` of the start).
    """
    is_b = hyp == boundary
    cum = np.concatenate([[0], np.cumsum(~is_b)])  # phonemes in hyp[:j]
    word_end = np.concatenate([np.flatnonzero(is_b), [len(hyp)]])  # exclusive end of every word
    span = cum[word_end][None, :] - cum[st][:, None]  # (pairs, words): phonemes from the start to each end
    valid = (word_end[None, :] > st[:, None]) & (word_end[None, :] - st[:, None] <= tlen[:, None])
    diff = np.abs(ent.nphon[rows].astype(np.int64)[:, None] - span)
    return np.where(valid, diff, MAX_PHONEMES * 4).min(axis=1)
