"""The HNSW graph (hnswlib, inner-product space): creating, loading (huge pages), querying, renumbering a saved one.

Labels are store ids; vectors are the entries' embeddings (embed.py). A graph allocated or loaded here is backed by
transparent huge pages where the system offers them (hugepages.py); a saved graph may be renumbered in
breadth-first node order (hnsw_layout.py) and is used only if it answers a sample of queries as the original does.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import hnswlib
import numpy as np

from . import hnsw_layout, hugepages
from .options import IndexOptions

__all__ = ["SPACE", "GraphProbe", "KnnFn", "adopt_renumbered", "knn", "load_graph", "new_graph", "probe",
           "renumbered_copy"]

log = logging.getLogger("nim4asr_edge.hotwords")

SPACE = "ip"  # inner product over L2-normalised vectors: distance = 1 - cosine
GraphProbe = tuple[np.ndarray, np.ndarray, np.ndarray, int]  # sample vectors, their labels and distances, ef
KnnFn = Callable[[np.ndarray, int, int, Callable[[int], bool] | None], tuple[np.ndarray, np.ndarray]]


def new_graph(options: IndexOptions, capacity: int, huge_pages: bool = False) -> hnswlib.Index:
    """An empty graph for up to ``capacity`` entries. ``huge_pages``: its memory (still untouched) is advised to come
    as huge pages when the build fills it."""
    graph = hnswlib.Index(space=SPACE, dim=options.dim)
    before = hugepages.anonymous_mappings() if huge_pages else None
    graph.init_index(max_elements=capacity, M=options.M, ef_construction=options.ef_construction, random_seed=100)
    if before is not None:
        hugepages.advise_new_mappings(before, collapse=False)  # still empty: faults bring huge pages
    return graph


def load_graph(path: Path, dim: int, capacity: int) -> tuple[hnswlib.Index, threading.Thread | None]:
    """A saved graph, backed by huge pages where the system offers them, and the thread collapsing its pages into
    huge pages while it runs (hugepages.py; None: nothing to do). hnswlib raises RuntimeError on an unloadable
    file."""
    graph = hnswlib.Index(space=SPACE, dim=dim)
    before = hugepages.anonymous_mappings()
    graph.load_index(str(path), max_elements=capacity)
    return graph, hugepages.advise_new_mappings(before)


def knn(graph: hnswlib.Index, vecs: np.ndarray, k: int, threads: int,
        filt: Callable[[int], bool] | None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest labels of each vector and their distances; where fewer than ``k`` live neighbours are found
    the row is filled up with label -1 at distance 2."""
    try:
        return graph.knn_query(vecs, k=k, num_threads=threads, filter=filt)
    except RuntimeError:
        # hnswlib refuses when it finds fewer than k live neighbours for some query: ask row by row.
        labels = np.full((len(vecs), k), -1, np.int64)
        dist = np.full((len(vecs), k), 2.0, np.float32)
        for i, v in enumerate(vecs):
            kk = k
            while kk > 0:
                try:
                    lab, dd = graph.knn_query(v[None, :], k=kk, num_threads=1, filter=filt)
                    labels[i, :kk], dist[i, :kk] = lab[0], dd[0]
                    break
                except RuntimeError:
                    kk //= 2
        return labels, dist


# ------------------------------------------------------------------------------------------------- renumbering
def renumbered_copy(path: Path, dim: int) -> Path | None:
    """Write the breadth-first renumbering of the saved graph at ``path`` beside it (``<path>.bfs``); None when
    its layout is not one hnsw_layout.py recognises (nothing written)."""
    out = path.with_name(path.name + ".bfs")
    return out if hnsw_layout.reorder_file(path, out, dim) else None


def probe(graph: hnswlib.Index, ids: np.ndarray, ef: int) -> GraphProbe:
    """A sample of the graph's own vectors (about 256) and their 10 nearest neighbours at ``ef`` (sets its ef)."""
    ids = ids[:: max(1, len(ids) // 256)]
    sample = np.asarray(graph.get_items(ids.tolist()), np.float32)
    graph.set_ef(ef)
    labels, dist = graph.knn_query(sample, k=10, num_threads=1)
    return sample, labels, dist, ef


def adopt_renumbered(path: Path, renumbered: Path, expected: GraphProbe, dim: int,
                     capacity: int) -> tuple[hnswlib.Index, threading.Thread | None]:
    """Load the renumbered graph and keep it (it replaces the file at ``path``) if it answers ``expected`` (a
    :func:`probe` of the original) as the original did, else load the original from ``path`` back; returns as
    :func:`load_graph` does.

    The caller drops the original graph first, so only one graph is in memory at a time (10M entries: 6.6 GB each).
    """
    sample, want_labels, want_dist, ef = expected
    graph = loaded = None
    try:
        graph, loaded = load_graph(renumbered, dim, capacity)
        graph.set_ef(ef)
        got_labels, got_dist = graph.knn_query(sample, k=10, num_threads=1)
        # the same graph: the same neighbours (labels may swap only between equally distant homophones)
        same = np.array_equal(got_labels, want_labels) and np.mean(np.all(got_dist == want_dist, axis=1)) >= 0.98
    except RuntimeError:  # unloadable, or fewer than k neighbours found: not the same graph
        same = False
    if same:
        os.replace(renumbered, path)
        return graph, loaded
    log.warning("renumbered HNSW graph answers differently; keeping insertion order")
    del graph, loaded
    renumbered.unlink(missing_ok=True)
    return load_graph(path, dim, capacity)
