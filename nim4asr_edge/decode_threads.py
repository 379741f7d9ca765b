"""How many threads decode single tokens: chosen from measured token times, and kept right while decoding."""

from __future__ import annotations

import copy
import statistics
import time
from collections import deque
from typing import Callable

__all__ = ["ThreadChooser", "best_seconds"]


def best_seconds(decode: Callable[[], object], steps: int) -> float:
    """The fastest of ``steps`` calls of ``decode``, after one more that is not counted (it wakes the threads)."""
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        decode()
        times.append(time.perf_counter() - t)
    return min(times[1:] or times)


class ThreadChooser:
    """Chooses 1 thread or ``n`` for llama.cpp's single-token decodes from their measured times, token by token.

    Why: llama.cpp's OpenMP threads spin briefly before they sleep (the SDK's default wait policy, see ``_llama``).
    On an idle CPU that makes several threads the fastest choice (full size, 2 threads: 26 tok/s, 1 thread: 20);
    when another process or stream wants a core, the spinning threads wait on each other and 2 threads fall to
    6.3 tok/s while 1 thread keeps 19 (``bench/omp_wait_policy.py``). The thread count can change between two
    tokens; the wait policy cannot. So: decode with the choice that was faster when last measured; re-measure the
    other every ``explore`` tokens (the interval doubles each time the other loses, up to ``max_explore``), and at
    once when the current choice's recent median has become ``slowdown`` times its median when it was chosen.

    ``one_s`` / ``many_s``: the load-time measurements (seconds per token; ``inf`` = not measured). Prefill follows
    (:meth:`threads`): when decoding moves from ``n`` threads to 1 because ``n`` slowed down, prefill takes 1 thread
    too (full size beside a busy process: 112-118 tok/s with 1 thread, 86-102 with 2 spinning ones).
    """

    def __init__(self, n: int, one_s: float, many_s: float, *, window: int = 6, probe: int = 3,
                 explore: int = 32, max_explore: int = 1024, slowdown: float = 1.3, margin: float = 0.9) -> None:
        if n < 2:
            raise ValueError(f"ThreadChooser needs n >= 2 threads to choose from, got {n}")
        self.n = n
        self._probe, self._explore, self._max_explore = probe, explore, max_explore
        self._slowdown, self._margin = slowdown, margin
        self._recent = {1: deque([one_s], maxlen=window), n: deque([many_s], maxlen=window)}
        self.current = 1 if one_s < margin * many_s else n  # the threads the next decode uses
        self._home = self._initial = self.current  # the choice kept; current differs from it only during a probe
        self._baseline = self._median(self._home)
        self._interval = explore
        self._since = 0  # tokens decoded with the home choice since the last probe
        self._probe_left = 0  # tokens of the probe still to decode with the other choice
        self._skip = False  # the next token follows a switch: it wakes the threads, so its time is not kept
        self.switches = 0  # times the home choice changed

    def _median(self, threads: int) -> float:
        return statistics.median(self._recent[threads])

    def threads(self, n_batch: int) -> tuple[int, int]:
        """(decode threads, prefill threads) now; ``n_batch``: the configured prefill threads. Prefill drops to 1
        only while decoding has moved from ``n`` to 1 (a busy CPU), not when 1 thread was faster from the start (a
        small model: its prefill still gains from more threads)."""
        return self.current, 1 if self._contended() else n_batch

    def _contended(self) -> bool:
        return self._initial == self.n and self._home == 1

    def record(self, seconds: float) -> bool:
        """Record the time of the decode just made with ``current`` threads; True when :meth:`threads` changed."""
        before = self.current, self._contended()
        if self._skip:
            self._skip = False
        else:
            self._recent[self.current].append(seconds)
        if self._probe_left:
            self._probe_left -= 1
            if not self._probe_left:
                self._settle()
            return (self.current, self._contended()) != before
        self._since += 1
        if self._since >= self._interval or self._median(self._home) > self._slowdown * self._baseline:
            other = self.n if self._home == 1 else 1
            self._recent[other].clear()
            self.current, self._probe_left, self._skip, self._since = other, self._probe + 1, True, 0
        return (self.current, self._contended()) != before

    def _settle(self) -> None:
        """The probe is over: keep the other choice if it was clearly faster, else go back to the home one."""
        other, home = self.current, self._home
        if self._median(other) < self._margin * self._median(home):
            self._home, self._interval = other, self._explore
            self.switches += 1
        else:
            self.current, self._skip = home, True
            self._interval = min(2 * self._interval, self._max_explore)
        self._baseline = self._median(self._home)

    def copy(self) -> "ThreadChooser":
        """An independent chooser starting from this one's measurements (a forked session's)."""
        return copy.deepcopy(self)
