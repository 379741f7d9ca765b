"""Renumber the nodes of a saved hnswlib graph so that neighbours sit near each other in memory.

hnswlib stores node i's links, vector and label at ``i * size_data_per_element`` in one block, in insertion order,
so the neighbours a search visits are scattered over the whole block: nearly every visit misses the cache and the
TLB. Numbering the nodes in breadth-first order from the entry point puts each node's neighbours in a few
contiguous runs. The graph, the vectors and the labels do not change, only the internal ids, so searches return
the same results (the index checks a sample before it uses a renumbered file).

File layout (hnswlib ``saveIndex``; no version field, so every size is checked against the file's length): a
96-byte header; ``n`` records of ``size_data_per_element`` bytes (a uint32 whose low 16 bits count the level-0
links, ``maxM0`` uint32 neighbour ids, the vector, a size_t label); then per node a uint32 byte count and its
upper-level link lists (per level a uint32 count and ``maxM`` ids).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

__all__ = ["LayoutError", "bfs_order", "read_graph", "read_header", "reorder_file"]

log = logging.getLogger("nim4asr_edge.hotwords")

_HEADER = 96


class LayoutError(ValueError):
    """The file is not an hnswlib index this module understands."""


def read_header(path: str | os.PathLike, dim: int) -> dict:
    """The header fields of a saved index, checked against each other, ``dim`` and the file's length (nothing else
    is read); LayoutError on anything unexpected."""
    size = Path(path).stat().st_size
    if size < _HEADER:
        raise LayoutError("shorter than the header")
    head = np.fromfile(path, np.uint8, _HEADER)
    u64 = head[:48].view(np.uint64)
    off0, _max_el, n, per, label_off, data_off = (int(x) for x in u64)
    ep = int(head[52:56].view(np.uint32)[0])
    max_m, max_m0, m = (int(x) for x in head[56:80].view(np.uint64))
    links0 = 4 + 4 * max_m0
    if not (off0 == 0 and data_off == links0 and per == links0 + 4 * dim + 8 and label_off == links0 + 4 * dim
            and max_m == m and max_m0 == 2 * m and (ep < n or n == 0) and _HEADER + n * per + 4 * n <= size):
        raise LayoutError("header fields do not describe an hnswlib index of this dimension")
    return {"n": n, "per": per, "ep": ep, "max_m": max_m, "max_m0": max_m0}


def read_graph(path: str | os.PathLike, dim: int) -> dict:
    """Header fields and views of a saved, non-empty index (level-0 block memory-mapped); LayoutError on anything
    unexpected."""
    head = read_header(path, dim)
    n, per = head["n"], head["per"]
    if n == 0:
        raise LayoutError("the graph is empty")
    level0 = np.memmap(path, np.uint8, "r", offset=_HEADER, shape=(n, per))
    upper = np.memmap(path, np.uint8, "r", offset=_HEADER + n * per)
    return {**head, "level0": level0, "upper": upper}


def _upper_offsets(upper: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, byte count) of every node's upper-level block."""
    starts = np.empty(n, np.int64)
    sizes = np.empty(n, np.int64)
    buf = memoryview(upper)
    pos = 0
    for i in range(n):
        if pos + 4 > len(buf):
            raise LayoutError("upper-level link lists are truncated")
        s = int.from_bytes(buf[pos : pos + 4], "little")
        starts[i], sizes[i] = pos + 4, s
        pos += 4 + s
    if pos != len(buf):
        raise LayoutError("upper-level link lists do not end with the file")
    return starts, sizes


def bfs_order(neighbours: np.ndarray, counts: np.ndarray, start: int) -> np.ndarray:
    """Old ids in breadth-first order from ``start`` over level-0 links; unreachable nodes follow in id order."""
    n = len(counts)
    seen = np.zeros(n, bool)
    order = []
    frontier = np.array([start], np.int64)
    seen[start] = True
    cols = np.arange(neighbours.shape[1])[None, :]
    while len(frontier):
        order.append(frontier)
        nb = neighbours[frontier][cols < counts[frontier][:, None]].astype(np.int64)
        nb = nb[(nb < n)]
        nb = nb[~seen[nb]]
        _, first = np.unique(nb, return_index=True)
        frontier = nb[np.sort(first)]  # children in their parents' order
        seen[frontier] = True
    order.append(np.flatnonzero(~seen))
    return np.concatenate(order)


def reorder_file(src: str | os.PathLike, dst: str | os.PathLike, dim: int) -> bool:
    """Write ``src`` renumbered in BFS order to ``dst``; False (``dst`` not written) when the layout is not
    understood. The caller checks that the result answers like ``src`` before using it."""
    try:
        g = read_graph(src, dim)
        n, max_m0, max_m = g["n"], g["max_m0"], g["max_m"]
        level0, upper = g["level0"], g["upper"]
        starts, sizes = _upper_offsets(upper, n)
        if np.any(sizes % (4 + 4 * max_m)):
            raise LayoutError("upper-level block sizes are not whole link lists")
        counts = np.ascontiguousarray(level0[:, 0:2]).view(np.uint16).ravel()
        neighbours = np.ascontiguousarray(level0[:, 4 : 4 + 4 * max_m0]).view(np.uint32)
        if np.any(counts > max_m0):
            raise LayoutError("a node has more level-0 links than the graph allows")
        perm = bfs_order(neighbours, counts, g["ep"])
        new_id = np.empty(n, np.uint32)
        new_id[perm] = np.arange(n, dtype=np.uint32)
        cols = np.arange(max_m0)[None, :]
        with open(dst, "wb") as f:
            head = bytearray(np.fromfile(src, np.uint8, _HEADER).tobytes())
            head[52:56] = int(new_id[g["ep"]]).to_bytes(4, "little")
            f.write(head)
            for lo in range(0, n, 1 << 16):  # level-0 records, renumbered, in bounded memory
                rows = np.array(level0[perm[lo : lo + (1 << 16)]])
                nb = rows[:, 4 : 4 + 4 * max_m0].view(np.uint32)
                valid = cols < rows[:, 0:2].view(np.uint16)
                nb[valid] = new_id[nb[valid]]
                f.write(rows.tobytes())
            for old in perm:
                s = int(sizes[old])
                f.write(s.to_bytes(4, "little"))
                if s:
                    block = np.array(upper[starts[old] : starts[old] + s]).view(np.uint32).reshape(-1, 1 + max_m)
                    for lst in block:
                        c = int(lst[0] & 0xFFFF)
                        lst[1 : 1 + c] = new_id[lst[1 : 1 + c]]
                    f.write(block.tobytes())
    except (LayoutError, IndexError, ValueError) as exc:
        log.info("hnsw graph %s left in insertion order: %s", src, exc)
        Path(dst).unlink(missing_ok=True)
        return False
    return True
