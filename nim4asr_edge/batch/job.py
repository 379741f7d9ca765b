"""The batch driver: expand the inputs into the ledger, hand files to a pool of workers (local processes or Ray
actors), and commit each result: outputs replaced atomically first, then the ledger, then the JSONL.

Exactly once, whatever is killed when: a file's outputs are whole files (``os.replace``) and only a committed
``done`` row counts; a file that was running when the driver died is run again and overwrites the same outputs;
the JSONL is appended from the ledger behind a mark the ledger keeps (see :func:`outputs.sync_jsonl`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..durable import fsync_dir
from ..errors import BatchError
from .inputs import expand_inputs
from .ledger import Ledger
from .outputs import (
    JobFiles,
    JobLock,
    sync_jsonl,
    write_atomic,
    write_error_report,
)
from .progress import BatchSummary, Progress
from .work import OUTPUT_FORMATS, Event, WorkerSpec

__all__ = ["BatchOptions", "job_definition", "run_batch", "worker_threads"]

log = logging.getLogger(__name__)

_SYNC_EVERY = 2.0  # seconds between JSONL appends while the job runs (and always at its end)
_EXECUTION_ONLY = ("threads", "tune_decode_threads", "verify")  # recognizer options that do not change outputs


@dataclass(frozen=True)
class BatchOptions:
    workers: int = 1  # worker processes (local) or actors (Ray), each holding one loaded bundle
    threads: int = 0  # threads per worker for the encoder and the LLM; 0: worker_threads(workers)
    max_failures: int = 3  # times a file may be lost to a dying worker before it is marked failed
    force: bool = False  # start the job over when the output directory holds a different job definition
    retry_failed: bool = False  # give the files that failed in earlier runs another try
    ray: bool = False  # run on Ray instead of local processes
    ray_address: str | None = None  # the Ray cluster to join (None: start a local one)
    progress: bool = True  # a progress bar on stderr (when it is a terminal)
    depth: int = 2  # files handed to each worker at a time (the next is ready when one finishes)

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads < 0 or self.max_failures < 1 or self.depth < 1:
            raise ValueError("workers, max_failures and depth must be >= 1, threads >= 0")


def worker_threads(workers: int, threads: int = 0) -> int:
    """Threads per worker: ``threads`` when given, else this machine's cores shared out (at least 1), so N workers
    never ask for more threads than there are cores (2 cores: 1 worker x 2 threads, or 2 workers x 1 thread)."""
    return threads or max(1, (os.cpu_count() or 1) // workers)


def _digest(path: Path) -> str:
    """sha256 of a file, or of a directory's file names and sizes."""
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}\0{f.stat().st_size}\n".encode())
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def _resolve_bundle(spec: WorkerSpec) -> WorkerSpec:
    if spec.bundle is not None:
        return dataclasses.replace(spec, bundle=str(Path(spec.bundle).resolve()))
    from ..models import reference_bundle_path

    return dataclasses.replace(spec, bundle=str(reference_bundle_path().resolve()))


def job_definition(inputs: str, spec: WorkerSpec) -> dict[str, Any]:
    """What makes two runs the same job: the inputs, the bundle (its manifest's hash), the recognizer options that
    change outputs, hotwords, hints and output formats. Worker and thread counts are not part of it."""
    bundle = Path(spec.bundle or ".")
    manifest = bundle / "manifest.json"
    options = {k: v for k, v in dataclasses.asdict(spec.options).items() if k not in _EXECUTION_ONLY}
    pattern = inputs if not Path(inputs).exists() else str(Path(inputs).resolve())
    return {
        "inputs": os.path.abspath(os.path.expanduser(pattern)),
        "bundle": str(bundle),
        "bundle_manifest_sha256": _digest(manifest) if manifest.is_file() else None,
        "options": options,
        "hotwords": [spec.hotwords, _digest(Path(spec.hotwords))] if spec.hotwords else None,
        "hints": list(spec.hints),
        "formats": list(spec.formats),
        "withheld": dataclasses.asdict(spec.withheld),
    }


def _open_pool(spec: WorkerSpec, options: BatchOptions):
    if options.ray:
        from .ray_runner import RayPool

        return RayPool(spec, options.workers, address=options.ray_address, depth=options.depth)
    from .local import LocalPool

    return LocalPool(spec, options.workers, depth=options.depth)


def _check_definition(ledger: Ledger, definition: dict, force: bool) -> None:
    old = ledger.get_meta("definition")
    if old is None:
        ledger.set_meta("definition", definition)
        return
    # a round trip through JSON, so tuples and lists compare equal
    import json

    new = json.loads(json.dumps(definition))
    if old == new:
        return
    changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    if not force:
        raise BatchError(f"the output directory holds a different batch job ({', '.join(changed)} changed); run "
                         "the same command to continue it, choose another output directory, or pass --force to "
                         "start this job over in it")
    log.warning("batch: job definition changed (%s); starting over (--force)", ", ".join(changed))
    ledger.reset()
    ledger.set_meta("definition", new)


def run_batch(inputs: str | os.PathLike, out_dir: str | os.PathLike, spec: WorkerSpec,
              options: BatchOptions = BatchOptions()) -> BatchSummary:
    """Run (or continue) the batch job of ``inputs`` (a directory, manifest or glob) into ``out_dir``.

    Raises BatchError when ``out_dir`` holds a different job (unless ``options.force``), another process runs it,
    or the workers cannot load the bundle. Files the SDK refuses (corrupt, empty, unsupported audio) fail alone and
    are listed in ``errors.jsonl``; they never stop the job.
    """
    t0 = time.perf_counter()
    bad = sorted(set(spec.formats) - set(OUTPUT_FORMATS))
    if bad or not spec.formats:
        raise BatchError(f"unknown output format(s) {', '.join(bad) or '(none)'}; choose from "
                         f"{', '.join(OUTPUT_FORMATS)}")
    threads = spec.options.threads or worker_threads(options.workers, options.threads)
    spec = _resolve_bundle(dataclasses.replace(spec, options=dataclasses.replace(spec.options, threads=threads)))
    files = JobFiles(out_dir)
    files.state.mkdir(parents=True, exist_ok=True)
    with JobLock(files.lock), Ledger(files.ledger) as ledger:
        files.prepare()
        _check_definition(ledger, job_definition(os.fspath(inputs), spec), options.force)
        ledger.add_files(expand_inputs(inputs))
        recovered = ledger.recover()
        if recovered:
            log.info("batch: %d file(s) left running by an earlier run will run again", recovered)
        if options.retry_failed:
            ledger.retry_failed()
        sync_jsonl(ledger, files)
        driver = _Driver(ledger, files, spec, options)
        try:
            driver.run()
        finally:
            sync_jsonl(ledger, files)
            write_error_report(ledger, files)
        counts = ledger.counts()
        return BatchSummary(
            total=sum(counts.values()), done=counts["done"], failed=counts["failed"],
            pending=counts["pending"] + counts["running"], processed=driver.processed, failed_now=driver.failed_now,
            retried=driver.retried, audio_seconds=round(driver.audio, 3),
            wall_seconds=round(time.perf_counter() - t0, 3), work_seconds=round(driver.work_seconds, 3),
            workers=options.workers, threads=threads, mode="ray" if options.ray else "local", out_dir=str(files.out))


class _Driver:
    """One run's loop: claim, submit, commit."""

    def __init__(self, ledger: Ledger, files: JobFiles, spec: WorkerSpec, options: BatchOptions) -> None:
        self.ledger, self.files, self.spec, self.options = ledger, files, spec, options
        self.run_id = f"{uuid.uuid4().hex[:12]}"
        self.processed = self.failed_now = self.retried = 0
        self.audio = 0.0
        self.work_seconds = 0.0

    def run(self) -> None:
        todo = self.ledger.counts()["pending"]
        if todo == 0:
            return
        pool = _open_pool(self.spec, self.options)
        progress = Progress(todo, disabled=not self.options.progress)
        try:
            self.ledger.set_meta("workers", pool.wait_ready())
            start = time.perf_counter()
            last_sync = start
            while True:
                for task in self.ledger.claim(pool.free_slots, self.run_id):
                    pool.submit(task)
                if pool.inflight == 0 and not self.ledger.counts()["pending"]:
                    break  # (pending files and nothing in flight: a restarted worker is still loading)
                for event in pool.poll(0.5):
                    self._commit(event, progress)
                if time.perf_counter() - last_sync > _SYNC_EVERY:
                    sync_jsonl(self.ledger, self.files)
                    last_sync = time.perf_counter()
            self.work_seconds = time.perf_counter() - start
        finally:
            progress.close()
            pool.close()

    def _commit(self, event: Event, progress: Progress) -> None:
        task = event.task
        if event.lost is not None:
            state = self.ledger.fail(task, event.lost, lost=True, max_failures=self.options.max_failures)
            if state == "pending":
                self.retried += 1
            elif state == "failed":
                self.failed_now += 1
                progress.write(f"nim4asr-edge batch: failed: {task.source}: {event.lost}")
                progress.update(0.0, self.failed_now)
            return
        payload = event.payload or {}
        if not payload.get("ok"):
            if self.ledger.fail(task, payload.get("error", "no result")) == "failed":
                self.failed_now += 1
                progress.write(f"nim4asr-edge batch: failed: {task.source}: {payload.get('error')}")
                progress.update(0.0, self.failed_now)
            return
        if not self.ledger.is_current(task):
            return  # a late duplicate of an attempt already settled
        for fmt, text in payload["outputs"].items():
            write_atomic(self.files.output(task.name, fmt), text, self.files.tmp, sync_dir=False)
        fsync_dir(self.files.output(task.name, "txt").parent)  # the renames are durable before the commit
        if self.ledger.complete(task, payload["record"], payload["duration"]):
            self.processed += 1
            self.audio += payload["duration"]
            progress.update(payload["duration"], self.failed_now)
