"""Split long audio at low-energy points so the LLM never sees an overlong input."""

from __future__ import annotations

import numpy as np

__all__ = ["split_points"]


def split_points(
    samples: np.ndarray,
    sample_rate: int,
    max_seconds: float = 30.0,
    search_seconds: float = 10.0,
    min_seconds: float = 1.0,
) -> list[tuple[int, int]]:
    """[(start, end)] sample ranges, each at most ``max_seconds`` long, cut at the quietest 100 ms window.

    The cut for each segment is searched in its last ``search_seconds``; with no quiet spot the cut lands at the
    lowest-energy point anyway, so a segment is never longer than ``max_seconds``; no cut leaves a last
    segment shorter than ``min_seconds``.
    """
    if not 0 < min_seconds < search_seconds < max_seconds:
        raise ValueError("need 0 < min_seconds < search_seconds < max_seconds")
    n = len(samples)
    max_len = int(max_seconds * sample_rate)
    if n <= max_len:
        return [(0, n)]
    hop = sample_rate // 100  # 10 ms energy resolution
    win = 10  # 100 ms smoothing, in hops
    n_hops = n // hop
    energy = np.square(samples[: n_hops * hop].reshape(n_hops, hop), dtype=np.float64).mean(axis=1)
    smooth = np.convolve(energy, np.ones(win) / win, mode="same")
    segments: list[tuple[int, int]] = []
    start = 0
    while n - start > max_len:
        lo = (start + max_len - int(search_seconds * sample_rate)) // hop
        hi = min(start + max_len, n - int(min_seconds * sample_rate)) // hop
        lo = max(lo, start // hop + 1)
        cut = (lo + int(np.argmin(smooth[lo:hi]))) * hop
        segments.append((start, cut))
        start = cut
    segments.append((start, n))
    return segments
