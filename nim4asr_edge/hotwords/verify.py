"""The verifier: batched edit distance of hotword entries against hypothesis spans (compiled ``_align.c``, or numpy).

:func:`align_scores`: for each (entry, text) pair, the cheapest edit script that turns the whole entry into a prefix
of the text (free end), vectorised over pairs. Word boundaries cost half as much to insert or delete as phonemes,
since the CTC head misplaces them more often than it invents phonemes; substitutions may cost less than 1 for pairs
the CTC head confuses (``sub_cost``, see costs.py). The compiled verifier is an optional extension built by
setup.py; without it :func:`align_scores_numpy` runs, with the same results.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

__all__ = ["PAD", "align_scores", "align_scores_numpy", "compiled_available", "compiled_module", "use_compiled"]

try:  # the compiled verifier (optional extension, built by setup.py)
    from . import _align as _built
except ImportError:  # pragma: no cover - depends on the build
    _built = None

_compiled = _built  # the verifier align_scores runs (None: numpy); see use_compiled

PAD = -1  # padding value in id matrices


def compiled_available() -> bool:
    """Whether the compiled verifier was built (``pip install`` with a C compiler)."""
    return _built is not None


def compiled_module() -> ModuleType | None:
    """The compiled extension the verifiers run now (None: their numpy implementations; see :func:`use_compiled`)."""
    return _compiled


def use_compiled(enabled: bool) -> bool:
    """Run the compiled verifiers (if built) or the numpy ones in :func:`align_scores` and
    :func:`.ctc_score.keyword_costs`, process-wide; returns whether the compiled one ran before. For benchmarks and
    tests comparing the two; results are the same either way."""
    global _compiled
    was = _compiled is not None
    _compiled = _built if enabled else None
    return was


def align_scores(entries: np.ndarray, entry_len: np.ndarray, texts: np.ndarray, text_len: np.ndarray,
                 boundary: int, word_end: bool = False,
                 text_is_final: np.ndarray | None = None,
                 sub_cost: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edit cost of each entry against the best-matching prefix of its text, and that prefix's length.

    Runs the compiled verifier (``_align.c``) when it was built, else :func:`align_scores_numpy`; both give the same
    results (see that function for the arguments).
    """
    if _compiled is None:
        return align_scores_numpy(entries, entry_len, texts, text_len, boundary, word_end, text_is_final, sub_cost)
    c, m = entries.shape
    n = texts.shape[1]
    cost = np.empty(c, np.float32)
    matched = np.empty(c, np.int64)
    final = np.ones(c, np.uint8) if text_is_final is None else np.ascontiguousarray(text_is_final, np.uint8)
    sub = b"" if sub_cost is None else np.ascontiguousarray(sub_cost, np.float32)
    if sub_cost is not None and c and max(int(entries.max()), int(texts.max())) >= sub_cost.shape[0] - 1:
        raise ValueError(f"symbol ids reach past the {sub_cost.shape[0] - 1} symbols of the substitution costs")
    _compiled.align(np.ascontiguousarray(entries, np.int64), np.ascontiguousarray(texts, np.int64),
                    np.ascontiguousarray(entry_len, np.int64), np.ascontiguousarray(text_len, np.int64), final, sub,
                    cost, matched, c, m, n, 0 if sub_cost is None else sub_cost.shape[0] - 1, int(boundary),
                    bool(word_end))
    return cost, matched


def align_scores_numpy(entries: np.ndarray, entry_len: np.ndarray, texts: np.ndarray, text_len: np.ndarray,
                       boundary: int, word_end: bool = False,
                       text_is_final: np.ndarray | None = None,
                       sub_cost: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Edit cost of each entry against the best-matching prefix of its text, and that prefix's length.

    entries: (C, M) int ids padded with PAD; texts: (C, N) int ids padded with PAD. Substitution and phoneme
    insertion/deletion cost 1; inserting or deleting the word boundary `boundary` costs 0.5. `sub_cost`, if given,
    is a (V + 1, V + 1) matrix of substitution costs [entry symbol, text symbol] over ids < V, whose last row and
    column (where PAD = -1 lands) must be large (see :class:`~.costs.PhonemeCosts`). With `word_end`, the
    matched prefix must end at a word boundary, or at the end of a text whose `text_is_final` is True (the text
    is the rest of the hypothesis, not a cut-off window; default: all True).
    Returns (cost (C,) float32, matched_text_len (C,) int64).
    """
    c, m = entries.shape
    n = texts.shape[1]
    ins = np.where(texts == boundary, 0.5, 1.0).astype(np.float32)
    ins[texts == PAD] = 0.0
    prefix = np.zeros((c, n + 1), np.float32)
    np.cumsum(ins, axis=1, out=prefix[:, 1:])
    big = np.float32(1e9)
    valid_end = np.arange(n + 1)[None, :] <= text_len[:, None]
    if word_end:
        at_boundary = np.zeros((c, n + 1), bool)
        at_boundary[:, 1:] = texts == boundary  # prefix of length j is followed by text[j] ...
        at_boundary[:, :-1] = texts == boundary
        final = np.ones(c, bool) if text_is_final is None else np.asarray(text_is_final, bool)
        at_boundary[np.arange(c)[final], np.minimum(text_len, n)[final]] = True
        valid_end &= at_boundary
    row = prefix.copy()  # D[0][j]: insert text[:j]
    best = np.where(entry_len == 0, 0.0, big).astype(np.float32)
    best_j = np.zeros(c, np.int64)
    for i in range(1, m + 1):
        e = entries[:, i - 1]
        dele = np.where(e == boundary, 0.5, 1.0).astype(np.float32)[:, None]
        tmp = np.empty_like(row)
        tmp[:, 0] = row[:, 0] + dele[:, 0]
        if sub_cost is None:
            sub = (texts != e[:, None]).astype(np.float32)
            sub[texts == PAD] = big
        else:
            sub = sub_cost[e[:, None], texts]
        np.minimum(row[:, :-1] + sub, row[:, 1:] + dele, out=tmp[:, 1:])
        # horizontal moves (insert text symbols): D[j] = min_k<=j tmp[k] + prefix[j] - prefix[k]
        row = np.minimum.accumulate(tmp - prefix, axis=1) + prefix
        done = entry_len == i
        if done.any():
            masked = np.where(valid_end[done], row[done], big)
            best[done] = masked.min(axis=1)
            best_j[done] = masked.argmin(axis=1)
    return best, best_j
