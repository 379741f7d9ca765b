"""Local batch workers: N processes (spawned, not forked), each holding one loaded Recognizer, fed over pipes.

A worker that dies (killed, out of memory, a native crash) is restarted and its files are reported lost, so the
driver retries them. A worker whose driver is gone sees its pipe close and exits.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import signal
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

from ..errors import BatchError
from .ledger import Task
from .work import Event, FileWorker, WorkerSpec

__all__ = ["LocalPool"]

log = logging.getLogger(__name__)


def _worker_main(spec: WorkerSpec, conn: Connection) -> None:  # runs in the child process
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle
    try:
        worker = FileWorker(spec)
    except Exception as exc:  # reported to the driver, which stops the job with it
        conn.send(("init_error", f"{type(exc).__name__}: {exc}"))
        return
    try:
        conn.send(("ready", worker.describe()))
        while True:
            msg = conn.recv()
            if msg is None:
                return
            lease, source, name = msg
            try:
                conn.send(("result", lease, worker.run(source, name)))
            except Exception as exc:  # not the SDK's refusal (that is a payload): the driver retries the file
                conn.send(("lost", lease, f"{type(exc).__name__}: {exc}"))
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        return  # the driver is gone
    finally:
        worker.close()


@dataclass
class _Proc:
    process: Any
    conn: Connection
    inflight: dict[str, Task] = field(default_factory=dict)  # lease -> task
    info: dict[str, Any] | None = None  # set when the worker said it is ready


class LocalPool:
    """``workers`` local processes, each given at most ``depth`` files at a time."""

    def __init__(self, spec: WorkerSpec, workers: int, depth: int = 2, max_restarts: int | None = None) -> None:
        if workers < 1:
            raise BatchError("workers must be >= 1")
        self.spec = spec
        self.depth = depth
        self.restarts = 0
        self.max_restarts = max_restarts if max_restarts is not None else 5 * workers
        self._ctx = mp.get_context("spawn")
        self._procs: list[_Proc] = []
        try:
            self._procs = [self._start() for _ in range(workers)]
        except BaseException:
            self.close()
            raise

    def _start(self) -> _Proc:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(target=_worker_main, args=(self.spec, child), daemon=True,
                                    name="nim4asr-batch-worker")
        process.start()
        child.close()
        return _Proc(process, parent)

    def wait_ready(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Block until every worker has loaded its recognizer; raise BatchError with the worker's error if one
        cannot."""
        import time

        deadline = time.monotonic() + timeout
        while any(p.info is None for p in self._procs):
            if time.monotonic() > deadline:
                raise BatchError(f"the batch workers did not load the bundle within {timeout:.0f} s")
            self.poll(0.5)
        return self.describe()

    def describe(self) -> list[dict[str, Any]]:
        """Each ready worker's host, pid and threads."""
        return [p.info for p in self._procs if p.info is not None]

    @property
    def free_slots(self) -> int:
        return sum(self.depth - len(p.inflight) for p in self._procs if p.info is not None)

    @property
    def inflight(self) -> int:
        return sum(len(p.inflight) for p in self._procs)

    def submit(self, task: Task) -> None:
        """Hand ``task`` to the ready worker with the fewest files in flight."""
        proc = min((p for p in self._procs if p.info is not None), key=lambda p: len(p.inflight))
        proc.inflight[task.lease] = task
        try:
            proc.conn.send((task.lease, task.source, task.name))
        except (BrokenPipeError, OSError):
            pass  # its death is noticed by poll(), which reports the task lost

    def poll(self, timeout: float) -> list[Event]:
        """Results, refusals and lost attempts that arrived within ``timeout`` seconds (a dead worker is
        restarted)."""
        waitables = [p.conn for p in self._procs] + [p.process.sentinel for p in self._procs]
        ready = set(wait(waitables, timeout))
        events: list[Event] = []
        for i, proc in enumerate(list(self._procs)):
            dead = proc.process.sentinel in ready
            try:
                while proc.conn.poll():
                    events.extend(self._handle(proc, proc.conn.recv()))
            except (EOFError, OSError):
                dead = True
            if dead:
                events.extend(self._replace(i, proc))
        return events

    def _handle(self, proc: _Proc, msg: tuple) -> list[Event]:
        kind = msg[0]
        if kind == "ready":
            proc.info = msg[1]
            return []
        if kind == "init_error":
            raise BatchError(f"a batch worker could not load the recognizer: {msg[1]}")
        task = proc.inflight.pop(msg[1], None)
        if task is None:
            return []
        return [Event(task, payload=msg[2])] if kind == "result" else [Event(task, lost=msg[2])]

    def _replace(self, i: int, proc: _Proc) -> list[Event]:
        proc.process.join(1.0)
        code = proc.process.exitcode
        reason = f"worker process {proc.process.pid} died (exit code {code})"
        log.warning("%s with %d file(s) in flight; restarting it", reason, len(proc.inflight))
        events = [Event(t, lost=reason) for t in proc.inflight.values()]
        proc.conn.close()
        self.restarts += 1
        if self.restarts > self.max_restarts:
            raise BatchError(f"batch workers died {self.restarts} times (last: {reason}); stopping the job")
        self._procs[i] = self._start()
        return events

    def close(self) -> None:
        """Stop every worker (politely, then by force)."""
        for p in self._procs:
            try:
                p.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        for p in self._procs:
            p.process.join(5.0)
            if p.process.is_alive():
                p.process.kill()
                p.process.join(5.0)
            p.conn.close()
        self._procs = []
