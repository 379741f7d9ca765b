"""Transparent huge pages for the HNSW graph (Linux).

A search visits a few thousand graph nodes spread over hundreds of megabytes, so with 4 KiB pages nearly every
visit misses the TLB. hnswlib allocates the graph with ``malloc``, which glibc backs with 4 KiB pages unless the
process was started with ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``, and most distributions enable transparent
huge pages only for memory that asks for them (``madvise`` mode). So after hnswlib has allocated (or loaded) a
graph, :func:`advise_new_mappings` finds the anonymous mappings that appeared and asks the kernel to back them with
2 MiB pages: ``MADV_HUGEPAGE``, then ``MADV_COLLAPSE`` (Linux 6.1+) to do it now rather than whenever khugepaged
gets there. Only the page size changes, never the contents; every failure is ignored (other systems, older
kernels, THP off). 1 M entries: lookups 0.86x the time, ~0.7 s to collapse (``bench/hotwords_memory_layout.py``).

``NIM4ASR_EDGE_HUGE_PAGES=0`` turns it off.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading

__all__ = ["advise_new_mappings", "anonymous_mappings", "enabled", "huge_page_bytes"]

log = logging.getLogger("nim4asr_edge.hotwords")

MIN_BYTES = 64 << 20  # smaller mappings are not worth a collapse (an index of ~100k entries)
_HUGE = 2 << 20
_MADV_HUGEPAGE, _MADV_COLLAPSE = 14, 25
_THP_MODE = "/sys/kernel/mm/transparent_hugepage/enabled"


def enabled() -> bool:
    """Whether advising can help here: Linux, THP in ``madvise`` mode (``always`` needs no advice), not turned off."""
    if not sys.platform.startswith("linux") or os.environ.get("NIM4ASR_EDGE_HUGE_PAGES", "1") == "0":
        return False
    try:
        with open(_THP_MODE, encoding="ascii") as f:
            return "[madvise]" in f.read()
    except OSError:
        return False


def anonymous_mappings() -> set[tuple[int, int]]:
    """(start, end) of this process's anonymous memory mappings (heap included); empty where unknown."""
    out = set()
    try:
        with open("/proc/self/maps", encoding="ascii") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 5 or (len(parts) == 6 and parts[5] == "[heap]"):
                    a, b = parts[0].split("-")
                    out.add((int(a, 16), int(b, 16)))
    except OSError:
        pass
    return out


def _madvise(start: int, length: int, advice: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    libc.madvise.restype = ctypes.c_int
    return libc.madvise(start, length, advice)  # ctypes releases the GIL for the call


def advise_new_mappings(before: set[tuple[int, int]], min_bytes: int = MIN_BYTES, collapse: bool = True,
                        background: bool = True) -> threading.Thread | None:
    """Back the anonymous mappings of at least ``min_bytes`` that are not in ``before`` with huge pages.

    ``before`` comes from :func:`anonymous_mappings` taken just before the allocation. Without ``collapse`` only
    pages touched from now on come as huge pages (right after allocating, before filling). With ``background`` the
    collapse runs in a daemon thread (returned), so opening an index does not wait for it; searches meanwhile
    just run on the pages as they are.
    """
    if not enabled():
        return None
    ranges = []
    for a, b in sorted(anonymous_mappings() - before):
        s, e = -(-a // _HUGE) * _HUGE, b // _HUGE * _HUGE  # whole huge pages inside the mapping
        if b - a >= min_bytes and e > s:
            ranges.append((s, e - s))
    if not ranges:
        return None

    def run() -> None:
        for start, length in ranges:
            if _madvise(start, length, _MADV_HUGEPAGE) == 0 and collapse \
                    and _madvise(start, length, _MADV_COLLAPSE) != 0:
                log.debug("MADV_COLLAPSE failed (errno %d); khugepaged will collapse later", ctypes.get_errno())

    if not (background and collapse):
        run()
        return None
    t = threading.Thread(target=run, name="nim4asr-hugepages", daemon=True)
    t.start()
    return t


def huge_page_bytes(start: int, end: int) -> int:
    """Bytes of [start, end) backed by transparent huge pages (from /proc/self/smaps; 0 where unknown)."""
    total, inside = 0, False
    try:
        with open("/proc/self/smaps", encoding="ascii") as f:
            for line in f:
                head = line.split()[0]
                if "-" in head and not head.endswith(":"):
                    a, b = (int(x, 16) for x in head.split("-"))
                    inside = a < end and b > start
                elif inside and head == "AnonHugePages:":
                    total += int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return 0
    return total
