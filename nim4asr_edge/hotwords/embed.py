"""Hashed n-gram embeddings of phoneme sequences, and exact nearest neighbours over them (numpy).

* A phoneme sequence is an int array of inventory indices ("|" included).
* :func:`embed` maps sequences to L2-normalised float32 vectors: signed feature hashing of phoneme 1-, 2- and
  3-grams over ``^ sequence $`` (start/end markers anchor the ends), so sequences that share most n-grams are
  close in inner product. Deterministic (a fixed multiplicative hash, not Python's ``hash``).
* :func:`nearest` answers like the HNSW graph, exactly (small namespaces, benchmarks).

The verifier that checks the candidates these vectors find is in :mod:`.verify`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EmbeddingSpec", "embed", "nearest"]

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
