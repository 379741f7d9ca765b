"""Huge pages for large native buffers: only the page size changes, never the contents."""

from __future__ import annotations

import ctypes
from collections.abc import Iterator

import numpy as np
import pytest

from nim4asr_edge.hotwords import hugepages

_libc = ctypes.CDLL(None)
_libc.malloc.restype = ctypes.c_void_p
_libc.malloc.argtypes = [ctypes.c_size_t]
_libc.free.argtypes = [ctypes.c_void_p]


@pytest.fixture
def native_buffer() -> Iterator:
    """A function allocating a buffer with plain malloc, as hnswlib does (numpy advises its own big arrays)."""
    held = []

    def alloc(nbytes: int) -> np.ndarray:
        ptr = _libc.malloc(nbytes)
        held.append(ptr)
        buf = np.ctypeslib.as_array((ctypes.c_int64 * (nbytes // 8)).from_address(ptr))
        buf[:] = np.arange(len(buf))
        return buf

    yield alloc
    for ptr in held:
        _libc.free(ptr)


def test_new_mappings_are_backed_by_huge_pages_and_keep_their_contents(native_buffer):
    if not hugepages.enabled():
        pytest.skip("transparent huge pages are not in madvise mode here")
    before = hugepages.anonymous_mappings()
    buf = native_buffer(48 << 20)
    start = buf.ctypes.data
    assert any(a <= start < b for a, b in hugepages.anonymous_mappings() - before)
    assert hugepages.huge_page_bytes(start, start + buf.nbytes) == 0
    hugepages.advise_new_mappings(before, min_bytes=16 << 20, background=False)
    huge = hugepages.huge_page_bytes(start, start + buf.nbytes)
    if huge == 0 and ctypes.get_errno() == 22:
        pytest.skip("this kernel has no MADV_COLLAPSE")
    assert huge >= 32 << 20
    assert np.array_equal(buf, np.arange(len(buf)))


def test_turned_off_and_small_mappings_are_left_alone(native_buffer, monkeypatch):
    before = hugepages.anonymous_mappings()
    buf = native_buffer(40 << 20)
    start = buf.ctypes.data
    # What the process had before is not ours to judge: after other tests (numpy advises its big arrays, and malloc
    # may hand back such memory) a fresh buffer can already hold huge pages; the calls below must add none.
    baseline = hugepages.huge_page_bytes(start, start + buf.nbytes)
    assert hugepages.advise_new_mappings(before, background=False) is None  # under MIN_BYTES
    monkeypatch.setenv("NIM4ASR_EDGE_HUGE_PAGES", "0")
    assert not hugepages.enabled()
    assert hugepages.advise_new_mappings(before, min_bytes=1, background=False) is None
    assert hugepages.huge_page_bytes(start, start + buf.nbytes) == baseline
