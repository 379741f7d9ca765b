"""Numeric core of hotword retrieval: phoneme codes, hashed n-gram embeddings, batched edit distance (numpy, and
an optional compiled verifier, ``_align.c``).

* A phoneme sequence is an int array of inventory indices ("|" included).
* :func:`embed` maps sequences to L2-normalised float32 vectors: signed feature hashing of phoneme 1-, 2- and
  3-grams over ``^ sequence $`` (start/end markers anchor the ends), so sequences that share most n-grams are
  close in inner product. Deterministic (a fixed multiplicative hash, not Python's ``hash``).
* :func:`align_scores` is the verifier: for each (entry, text) pair, the cheapest edit script that turns the whole
  entry into a prefix of the text (free end), vectorised over pairs. Word boundaries cost half as much to insert
  or delete as phonemes, since the CTC head misplaces them more often than it invents phonemes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PAD", "EmbeddingSpec", "align_scores", "align_scores_numpy", "embed", "nearest"]

try:  # the compiled verifier (optional extension, built by setup.py)
    from . import _align as _compiled
except ImportError:  # pragma: no cover - depends on the build
    _compiled = None

PAD = -1  # padding value in id matrices
_MUL1 = np.uint64(0x9E3779B97F4A7C15)  # 64-bit golden-ratio multiplier (Fibonacci hashing)
_MUL2 = np.uint64(0xC2B2AE3D27D4EB4F)
_BASE = 256  # symbol codes are < 256 (inventory size + 2 markers)


@dataclass(frozen=True)
class EmbeddingSpec:
    """How sequences become vectors; recorded in the index sidecar (a different spec means a rebuild)."""

    dim: int = 128  # vector width (power of two)
    weights: tuple[float, float, float] = (1.0, 1.0, 0.0)  # weight of 1-, 2- and 3-grams
    version: int = 1  # bump when the hashing changes

    def to_json(self) -> dict:
        return {"dim": self.dim, "weights": list(self.weights), "version": self.version}

    @classmethod
    def from_json(cls, d: dict) -> EmbeddingSpec:
        return cls(dim=int(d["dim"]), weights=tuple(float(w) for w in d["weights"]), version=int(d["version"]))


def embed(seqs: list[np.ndarray], n_symbols: int, spec: EmbeddingSpec) -> np.ndarray:
    """(len(seqs), spec.dim) float32, rows L2-normalised; an empty sequence gives a zero row."""
    if n_symbols + 2 > _BASE:
        raise ValueError(f"inventory of {n_symbols} symbols is too large for the embedding (max {_BASE - 2})")
    dim = spec.dim
    if dim & (dim - 1):
        raise ValueError(f"embedding dim must be a power of two, not {dim}")
    n = len(seqs)
    if n == 0:
        return np.zeros((0, dim), np.float32)
    start, end = n_symbols, n_symbols + 1
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=n)
    # Flatten as  ^ s0 $ ^ s1 $ ...  and remember which row each position belongs to.
    total = int(lengths.sum()) + 2 * n
    flat = np.empty(total, np.int64)
    row_of = np.repeat(np.arange(n), lengths + 2)
    offsets = np.zeros(n + 1, np.int64)
    np.cumsum(lengths + 2, out=offsets[1:])
    flat[offsets[:-1]] = start
    flat[offsets[1:] - 1] = end
    inner = np.ones(total, bool)
    inner[offsets[:-1]] = False
    inner[offsets[1:] - 1] = False
    if lengths.sum():
        flat[inner] = np.concatenate([np.asarray(s, np.int64) for s in seqs if len(s)])
    out = np.zeros(n * dim, np.float64)
    shift = np.uint64(64 - dim.bit_length() + 1)
    for order, weight in enumerate(spec.weights, start=1):
        if weight == 0 or total < order:
            continue
        m = total - order + 1
        code = np.full(m, order, np.int64)
        for k in range(order):
            code = code * _BASE + flat[k : k + m]
        same_row = row_of[:m] == row_of[order - 1 : order - 1 + m]
        code, rows = code[same_row], row_of[:m][same_row]
        h = code.astype(np.uint64) * _MUL1
        bucket = (h >> shift).astype(np.int64)
        sign = np.where(((code.astype(np.uint64) * _MUL2) >> np.uint64(63)) == 1, -weight, weight)
        out += np.bincount(rows * dim + bucket, weights=sign, minlength=n * dim)
    vec = out.reshape(n, dim)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    np.divide(vec, norm, out=vec, where=norm > 0)
    return vec.astype(np.float32)


def nearest(vecs: np.ndarray, mat: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product neighbours of each row of ``vecs`` among the rows of ``mat``: (labels, 1 - similarity),
    best first, ``k`` per row (fewer if ``mat`` has fewer rows), as hnswlib's ``ip`` space reports them."""
    k = min(k, len(mat))
    if k == 0:
        return np.zeros((len(vecs), 0), np.int64), np.zeros((len(vecs), 0), np.float32)
    sims = vecs @ mat.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    s = np.take_along_axis(sims, top, axis=1)
    order = np.argsort(-s, axis=1, kind="stable")
    dist = (1.0 - np.take_along_axis(s, order, axis=1)).astype(np.float32)
    return labels[np.take_along_axis(top, order, axis=1)], dist


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
