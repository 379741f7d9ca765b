"""Batch workers on Ray: actors holding one loaded bundle each, spread over the cluster's nodes.

Ray restarts an actor whose process or node died (``max_restarts``) and retries the calls it had in flight
(``max_task_retries``); a call that still fails comes back to the driver as a lost attempt, and a dead actor is
replaced. The driver's ledger stays the single source of truth: a result is committed only under its current lease,
so a call Ray ran twice is written once. Needs ``pip install 'nim4asr-edge[batch]'``; the actors' nodes need the SDK
and the bundle at the same path.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from ..errors import BatchError, require
from .ledger import Task
from .work import Event, FileWorker, WorkerSpec

__all__ = ["RayPool"]

log = logging.getLogger(__name__)

ACTOR_RESTARTS = 3  # Ray restarts a dead actor this many times (on any node with room)
TASK_RETRIES = 3  # and retries each call it had in flight this many times


class _BatchActor:
    """The Ray actor: one FileWorker, plus the node it runs on."""

    def __init__(self, spec: WorkerSpec) -> None:
        self.worker = FileWorker(spec)

    def describe(self) -> dict[str, Any]:
        import ray

        return {**self.worker.describe(), "node": ray.get_runtime_context().get_node_id(),
                "node_ip": ray.util.get_node_ip_address()}

    def run(self, source: str, name: str) -> dict[str, Any]:
        return self.worker.run(source, name)


class RayPool:
    """``workers`` Ray actors (``threads`` CPUs each) given at most ``depth`` files at a time. ``address``: the
    cluster to join; None joins the one this process is connected to, or starts a local one on loopback."""

    def __init__(self, spec: WorkerSpec, workers: int, address: str | None = None, depth: int = 2,
                 resources: dict[str, float] | None = None) -> None:
        if address is None and "ray" not in sys.modules:
            # a local instance stays on 127.0.0.1: on Linux, Ray otherwise binds to the machine's outward address
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        self._ray = ray = require("ray", "batch")
        self.spec = spec
        self.depth = depth
        self._owns_ray = False
        if not ray.is_initialized():
            if address:
                ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            else:
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # a local job does not report usage
                cpus = max(os.cpu_count() or 1, workers * spec.options.threads)
                ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                         logging_level=logging.WARNING, log_to_driver=False)
            self._owns_ray = True
        self._actor_cls = ray.remote(max_restarts=ACTOR_RESTARTS, max_task_retries=TASK_RETRIES)(_BatchActor)
        self._options = {"num_cpus": spec.options.threads, "resources": resources or {},
                         "scheduling_strategy": "SPREAD"}
        self._actors = [self._new_actor() for _ in range(workers)]
        self._inflight: dict[Any, tuple[Task, int, Any]] = {}  # object ref -> (task, actor index, actor)
        self._info: list[dict[str, Any]] = []
        self.replaced = 0

    def _new_actor(self):
        return self._actor_cls.options(**self._options).remote(self.spec)

    def wait_ready(self, timeout: float = 600.0) -> list[dict[str, Any]]:
        """Block until every actor has loaded its recognizer (BatchError with the actors' error if one cannot)."""
        ray = self._ray
        try:
            self._info = ray.get([a.describe.remote() for a in self._actors], timeout=timeout)
        except ray.exceptions.GetTimeoutError as exc:
            raise BatchError(f"the Ray actors did not load the bundle within {timeout:.0f} s (not enough "
                             f"resources for {len(self._actors)} actors of {self._options['num_cpus']} CPUs?)") from exc
        except ray.exceptions.RayError as exc:
            raise BatchError(f"a Ray batch actor could not load the recognizer: {_cause(exc)}") from exc
        return self.describe()

    def describe(self) -> list[dict[str, Any]]:
        """Each actor's node, host, pid and threads (as they were when the actors became ready)."""
        return list(self._info)

    @property
    def free_slots(self) -> int:
        return self.depth * len(self._actors) - len(self._inflight)

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    def submit(self, task: Task) -> None:
        """Hand ``task`` to the actor with the fewest files in flight."""
        load = [0] * len(self._actors)
        for _, i, _ in self._inflight.values():
            load[i] += 1
        i = min(range(len(self._actors)), key=load.__getitem__)
        ref = self._actors[i].run.remote(task.source, task.name)
        self._inflight[ref] = (task, i, self._actors[i])

    def poll(self, timeout: float) -> list[Event]:
        """Results that arrived within ``timeout`` seconds; calls Ray gave up on come back as lost attempts."""
        ray = self._ray
        if not self._inflight:
            time.sleep(timeout)
            return []
        refs = list(self._inflight)
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)  # the first result ends the wait
        if ready:  # and whatever else is ready by then
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        events = []
        for ref in ready:
            task, i, actor = self._inflight.pop(ref)
            try:
                events.append(Event(task, payload=ray.get(ref)))
            except ray.exceptions.ActorDiedError as exc:
                events.append(Event(task, lost=f"Ray actor died: {_cause(exc)}"))
                self._replace(i, actor)
            except ray.exceptions.RayError as exc:  # actor unavailable, task error, node gone, ...
                events.append(Event(task, lost=f"Ray: {_cause(exc)}"))
        return events

    def _replace(self, i: int, actor: Any) -> None:
        """A fresh actor in place of one Ray gave up on (its remaining calls fail and are reported lost)."""
        if self._actors[i] is not actor:
            return  # already replaced
        log.warning("batch: Ray actor %d died for good; starting a new one", i)
        self._actors[i] = self._new_actor()
        self.replaced += 1

    def close(self) -> None:
        """Kill the actors, and shut Ray down if this pool started or joined it."""
        ray = self._ray
        for actor in self._actors:
            try:
                ray.kill(actor)
            except Exception as exc:  # already dead, or the cluster is gone
                log.debug("batch: could not kill a Ray actor: %s", exc)
        self._actors = []
        self._inflight.clear()
        if self._owns_ray:
            ray.shutdown()


def _cause(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__
