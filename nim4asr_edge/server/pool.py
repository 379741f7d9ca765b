"""A pool of LLM contexts over one loaded bundle, with a bounded queue in front of it.

Each context is a :class:`~nim4asr_edge.decoding.PromptedDecoder` on its own llama.cpp context (KV cache) forked
from the shared weights; recognition runs on a worker thread per context, never on the event loop. A request that
finds every context busy waits in a FIFO queue of at most ``queue`` entries; beyond that :class:`Busy` is raised
(the server answers 429 with Retry-After).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, AsyncIterator, Callable, TypeVar

if TYPE_CHECKING:
    from ..decoding import PromptedDecoder
    from ..engine import SegmentEngine

__all__ = ["Busy", "ContextPool"]

log = logging.getLogger("nim4asr_edge.server")

T = TypeVar("T")


class Busy(Exception):
    """Every context is busy and the queue is full."""


class ContextPool:
    """``contexts`` decoders and their worker threads. Create and use it on one event loop."""

    def __init__(self, engine: "SegmentEngine", contexts: int, queue: int) -> None:
        self.contexts = contexts
        self.queue = queue
        self._free: list[PromptedDecoder] = []
        try:
            for _ in range(contexts):
                self._free.append(engine.new_decoder())
        except BaseException:
            self._close_decoders(self._free)
            raise
        self._all = list(self._free)
        self._waiters: deque[asyncio.Future] = deque()
        self._executor = ThreadPoolExecutor(contexts, thread_name_prefix="nim4asr-server")
        self.in_flight = 0  # slots held (recognitions running or streams open)
        self._exclusive = asyncio.Lock()  # one exclusive holder at a time (two half-filled ones would deadlock)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator["PromptedDecoder"]:
        """Hold one context (waiting in the queue if needed) for the body of the ``async with``."""
        decoder = await self._acquire()
        try:
            yield decoder
        finally:
            self._release(decoder)

    @asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        """Hold every context: nothing recognises meanwhile (hotword edits). Queues like any request; raises
        :class:`Busy` when the queue is full."""
        async with self._exclusive:
            held: list = []
            try:
                for _ in range(self.contexts):
                    held.append(await self._acquire())
                yield
            finally:
                for decoder in held:
                    self._release(decoder)

    async def run(self, fn: Callable[..., T], *args) -> T:
        """``fn(decoder, *args)`` on a worker thread with a context of the pool; raises :class:`Busy`."""
        async with self.slot() as decoder:
            return await self.to_thread(fn, decoder, *args)

    async def to_thread(self, fn: Callable[..., T], *args) -> T:
        """``fn(*args)`` on one of the pool's worker threads (call it while holding a slot)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _acquire(self) -> "PromptedDecoder":
        if self._free and not self._waiters:
            self.in_flight += 1
            return self._free.pop()
        if len(self._waiters) >= self.queue:
            raise Busy(f"all {self.contexts} contexts are busy and {len(self._waiters)} requests are waiting")
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            decoder = await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():  # handed a context while being cancelled: give it back
                self.in_flight += 1
                self._release(waiter.result())
            raise
        self.in_flight += 1
        return decoder

    def _release(self, decoder: "PromptedDecoder") -> None:
        self.in_flight -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(decoder)
                return
        self._free.append(decoder)

    def close(self) -> None:
        """Wait for running work, then free every context (idempotent)."""
        self._executor.shutdown(wait=True)
        self._close_decoders(self._all)
        self._all, self._free = [], []

    @staticmethod
    def _close_decoders(decoders: list) -> None:
        for d in decoders:
            d.llm.close()
